"""Peer bookkeeping rules (scores, bans, rate limits, connection slots) with no I/O.

The network layer supplies the clock and the connections."""

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
from protocols.peers._slots import (
    DEFAULT_OUTBOUND_RESERVE,
    Slot,
    choose_evictions,
    network_group,
    outbound_reserve,
)

__all__ = [
    "DEFAULT_BAN_SECONDS",
    "DEFAULT_BAN_THRESHOLD",
    "DEFAULT_HALF_LIFE",
    "DEFAULT_OUTBOUND_RESERVE",
    "PENALTIES",
    "PeerRecord",
    "PeerScore",
    "PeerScores",
    "Slot",
    "TokenBucket",
    "choose_evictions",
    "network_group",
    "outbound_reserve",
]
