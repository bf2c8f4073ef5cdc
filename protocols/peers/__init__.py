"""Peer bookkeeping rules (scores, bans, rate limits) with no I/O: the network layer supplies the clock."""

from protocols.peers._scores import (
    DEFAULT_BAN_SECONDS,
    DEFAULT_BAN_THRESHOLD,
    DEFAULT_HALF_LIFE,
    PENALTIES,
    PeerRecord,
    PeerScore,
    PeerScores,
    TokenBucket,
)

__all__ = [
    "DEFAULT_BAN_SECONDS",
    "DEFAULT_BAN_THRESHOLD",
    "DEFAULT_HALF_LIFE",
    "PENALTIES",
    "PeerRecord",
    "PeerScore",
    "PeerScores",
    "TokenBucket",
]
