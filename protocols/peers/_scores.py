"""Peer scores and bans: how a node remembers who sent it bad data.

Honest-minority rule: nothing is accepted because peers agree, so scores never decide what is true; they
only decide whom to keep talking to. Only provable misbehaviour costs score (a bad signature, a malformed
frame, an answer that contradicts itself), never disagreement. Scores decay back toward zero, so an
honest peer that once relayed something odd recovers; a peer that drops below the threshold is banned for
a while and disconnected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

#: Score lost per offence. Chosen so that a handful of provably bad frames, or a few dozen forged
#: messages, ban a peer, while occasional benign noise (a rate-limit hiccup) does not.
PENALTIES: Final[dict[str, float]] = {
    # fails hash, signature, or format rules: someone forged or corrupted it (also a blob block whose bytes
    # do not hash to the CID asked for: servers check blocks before sending, so it is never innocent)
    "invalid_message": 10.0,
    "malformed_frame": 25.0,  # a gossip payload or sync frame that does not parse
    "oversized_frame": 50.0,  # more bytes or messages than the protocol allows
    # a sync or block-exchange answer that contradicts itself or returns what was not asked
    "bad_sync_answer": 25.0,
    "rate_limited": 2.0,  # more than its share of our validation work
    "wrong_network": 100.0,  # contact info for another network: never useful, drop at once
}
DEFAULT_BAN_THRESHOLD: Final = -100.0
DEFAULT_BAN_SECONDS: Final = 600.0
#: Misbehaviour is forgotten with this half-life (seconds).
DEFAULT_HALF_LIFE: Final = 300.0


@dataclass
class PeerRecord:
    """What we know about one peer's behaviour."""

    score: float = 0.0
    updated: float = 0.0
    banned_until: float = 0.0
    offences: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PeerScore:
    """A snapshot of one peer's record for APIs and logs."""

    peer_id: str
    score: float
    banned_until: float
    offences: dict[str, int]


class PeerScores:
    """Decaying per-peer scores with a ban threshold. Pure: the caller passes the time."""

    def __init__(
        self,
        *,
        ban_threshold: float = DEFAULT_BAN_THRESHOLD,
        ban_seconds: float = DEFAULT_BAN_SECONDS,
        half_life: float = DEFAULT_HALF_LIFE,
    ) -> None:
        if ban_threshold >= 0:
            raise ValueError("ban_threshold must be negative")
        self.ban_threshold = ban_threshold
        self.ban_seconds = ban_seconds
        self._decay = math.log(2) / half_life if half_life > 0 else 0.0
        self._peers: dict[str, PeerRecord] = {}

    def _record(self, peer_id: str, now: float) -> PeerRecord:
        record = self._peers.get(peer_id)
        if record is None:
            record = self._peers[peer_id] = PeerRecord(updated=now)
        elif now > record.updated:
            record.score *= math.exp(-self._decay * (now - record.updated))
            record.updated = now
        return record

    def penalise(self, peer_id: str, offence: str, now: float, times: int = 1) -> bool:
        """Charge `times` offences of a kind; True if this call banned the peer."""
        if times <= 0:
            return False
        try:
            cost = PENALTIES[offence]
        except KeyError:
            raise ValueError(f"unknown offence {offence!r}") from None
        record = self._record(peer_id, now)
        record.offences[offence] = record.offences.get(offence, 0) + times
        record.score -= cost * times
        if record.score <= self.ban_threshold and record.banned_until <= now:
            record.banned_until = now + self.ban_seconds
            return True
        return False

    def ban(self, peer_id: str, now: float, seconds: float | None = None) -> None:
        """Ban a peer outright (an operator decision, or a wrong network)."""
        record = self._record(peer_id, now)
        length = self.ban_seconds if seconds is None else seconds
        record.banned_until = max(record.banned_until, now + length)

    def is_banned(self, peer_id: str, now: float) -> bool:
        """Whether the peer is banned at `now`."""
        record = self._peers.get(peer_id)
        return record is not None and record.banned_until > now

    def score(self, peer_id: str, now: float) -> float:
        """The decayed score (0 for peers never penalised)."""
        if peer_id not in self._peers:
            return 0.0
        return self._record(peer_id, now).score

    def snapshot(self, now: float) -> list[PeerScore]:
        """Every peer with a record, worst first."""
        out = []
        for peer_id in list(self._peers):
            record = self._record(peer_id, now)
            out.append(
                PeerScore(
                    peer_id,
                    record.score,
                    record.banned_until if record.banned_until > now else 0.0,
                    dict(record.offences),
                )
            )
        return sorted(out, key=lambda p: p.score)

    def forget_idle(self, now: float, *, epsilon: float = 0.5) -> int:
        """Drop records that have decayed to nothing and are not banned (bounds memory); returns how many."""
        idle = [
            peer_id
            for peer_id in list(self._peers)
            if abs(self._record(peer_id, now).score) < epsilon and self._peers[peer_id].banned_until <= now
        ]
        for peer_id in idle:
            del self._peers[peer_id]
        return len(idle)


class TokenBucket:
    """A rate limit: `rate` tokens per second, holding at most `burst`. Pure: the caller passes the time."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, n: float, now: float) -> bool:
        """Spend `n` tokens if available; False (and nothing spent) otherwise. ValueError if `n` < 0."""
        if not n >= 0:  # also NaN: either would add tokens instead of spending them, lifting the limit
            raise ValueError(f"cannot take {n} tokens")
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
        if n > self._tokens:
            return False
        self._tokens -= n
        return True
