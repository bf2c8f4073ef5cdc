"""Which connections to drop when peers want more slots than a node has: the eclipse defence, no I/O.

An eclipse attacker opens many connections (from many cheap identities) to a node until every slot is
taken by its sybils, so the node hears only what the attacker chooses. Honest minority means one honest
connection is enough; the rules below make it very hard to lose that last one:

- Outbound connections (peers *we* chose: bootstrap peers, contacts we dialled) have reserved slots that
  inbound connections can never take: inbound peers are held to `max_peers - outbound_reserve`.
- Protected peers (bootstrap peers, the operator's list) are never evicted.
- When inbound connections are over their limit, some inbound peers are kept whatever comes next, as in
  Bitcoin Core's eviction: the longest-connected peer of each distinct network group (an attacker rarely
  controls many /16s), the peers that most recently gave us data we did not have (an attacker who relays
  valid new data is doing the honest nodes' work), and the older half of the rest by connection time (an
  attacker cannot displace peers that were there first, only churn its own connections).
- Of the rest, the victim comes from the network group holding the most connections: the lowest score
  first, then the youngest connection. A fresh sybil usually evicts itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

#: Outbound slots reserved by default, and the share of max_peers they may take at most.
DEFAULT_OUTBOUND_RESERVE: Final = 8
#: Per protection rule, how many inbound peers it keeps at most.
PROTECT_PER_GROUP_RULE: Final = 4
PROTECT_USEFUL: Final = 4


@dataclass(frozen=True, slots=True)
class Slot:
    """One connected peer as the eviction rules see it."""

    peer_id: str
    outbound: bool
    #: When the peer's oldest live connection was made (any clock, same as `last_useful`).
    connected_at: float
    #: The network group of its address (see `network_group`); peers of one group compete for eviction.
    group: str = ""
    score: float = 0.0
    #: When it last gave us data we did not have (0: never).
    last_useful: float = 0.0
    #: Never evicted (bootstrap peers, operator allow list).
    protected: bool = False


def outbound_reserve(max_peers: int, wanted: int = DEFAULT_OUTBOUND_RESERVE) -> int:
    """Slots kept for outbound connections: `wanted`, but never more than a quarter of `max_peers` (at
    least one, when there are two slots or more, so inbound peers can never take them all)."""
    if max_peers < 2:
        return 0
    return max(1, min(wanted, max_peers // 4))


def network_group(ip: str) -> str:
    """The group connections compete in: the /16 of an IPv4 address, the /32 of an IPv6 one.

    Loopback and unparseable addresses form one group each, so a local devnet is one group.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    if isinstance(addr, ipaddress.IPv4Address):
        return str(ipaddress.ip_network(f"{addr}/16", strict=False))
    return str(ipaddress.ip_network(f"{addr}/32", strict=False))


def _kept_inbound(candidates: Sequence[Slot]) -> set[str]:
    """Inbound peers the rules keep (see the module docstring); the rest may be evicted."""
    kept: set[str] = set()

    def keep(ordered: Iterable[Slot], n: int) -> None:
        for slot in ordered:
            if n <= 0:
                return
            if slot.peer_id not in kept:
                kept.add(slot.peer_id)
                n -= 1

    oldest_per_group: dict[str, Slot] = {}
    for slot in sorted(candidates, key=lambda s: s.connected_at):
        oldest_per_group.setdefault(slot.group, slot)
    keep(sorted(oldest_per_group.values(), key=lambda s: s.connected_at), PROTECT_PER_GROUP_RULE)
    useful = [s for s in candidates if s.last_useful > 0]
    keep(sorted(useful, key=lambda s: -s.last_useful), PROTECT_USEFUL)
    rest = [s for s in candidates if s.peer_id not in kept]
    keep(sorted(rest, key=lambda s: s.connected_at), len(rest) // 2)
    return kept


def _victim(candidates: Sequence[Slot]) -> Slot | None:
    if not candidates:
        return None
    kept = _kept_inbound(candidates)
    pool = [s for s in candidates if s.peer_id not in kept]
    if not pool:
        # Every candidate is worth keeping; the newest is the one that asked last, so it goes.
        return max(candidates, key=lambda s: s.connected_at)
    sizes: dict[str, int] = {}
    for slot in pool:
        sizes[slot.group] = sizes.get(slot.group, 0) + 1
    # Ties between equally big groups go to the group with the youngest connection: the attacker's.
    youngest = {g: max(s.connected_at for s in pool if s.group == g) for g in sizes}
    group = max(sizes, key=lambda g: (sizes[g], youngest[g]))
    return min((s for s in pool if s.group == group), key=lambda s: (s.score, -s.connected_at))


def choose_evictions(slots: Sequence[Slot], *, max_peers: int, reserve: int) -> list[str]:
    """Peer ids to disconnect so that at most `max_peers` stay, inbound ones at most `max_peers - reserve`.

    Outbound and protected peers are never chosen: more of them than `max_peers` stay over the limit (we
    only dial when there is room, and operators choose their protected peers).
    """
    if max_peers < 1:
        raise ValueError(f"max_peers must be at least 1, got {max_peers}")
    if not 0 <= reserve < max_peers:
        raise ValueError(f"the outbound reserve must be 0..{max_peers - 1}, got {reserve}")
    inbound = [s for s in slots if not s.outbound]
    evictable = [s for s in inbound if not s.protected]
    total = len(slots)
    inbound_limit = max_peers - reserve
    evicted: list[str] = []
    while evictable and (total > max_peers or len(inbound) > inbound_limit):
        victim = _victim(evictable)
        assert victim is not None
        evicted.append(victim.peer_id)
        evictable.remove(victim)
        inbound.remove(victim)
        total -= 1
    return evicted
