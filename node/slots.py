"""Connection slots: keep a node's peers within `--max-peers` without letting sybils eclipse it.

The rules are in protocols/peers/_slots.py; this module feeds them the live connections (direction and
remote address from the libp2p host, usefulness from the network service) and disconnects their choices.
An evicted peer that reconnects within `EVICTION_COOLDOWN` seconds is dropped again at once, so a flood
of reconnecting sybils costs the node handshakes only, never a slot.

py-libp2p refuses connections (in and out) beyond its own limit; it is set `connection_limit(max_peers)`,
a little above `max_peers`, so that a dial of ours or an honest newcomer always gets through and the
rules, not arrival order, decide who stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

import trio

from p2p import HubHost
from protocols.peers import Slot, choose_evictions, network_group, outbound_reserve

log = logging.getLogger("stateless.network")

#: Seconds during which an evicted peer is refused again on sight.
EVICTION_COOLDOWN: Final = 60.0
#: Evicted peers remembered for the cooldown at most (fresh sybil identities are free).
MAX_COOLING: Final = 4096
#: Evictions are logged (at info) at most this often, with the running total.
EVICTION_REPORT_EVERY: Final = 60.0


def connection_limit(max_peers: int) -> int:
    """py-libp2p's hard connection cap for a node keeping `max_peers` peers: room for newcomers."""
    return max_peers + max(4, max_peers // 4)


def bootstrap_peer_ids(addrs: Iterable[str]) -> frozenset[str]:
    """The peer ids named by bootstrap addresses (`.../p2p/<peer id>`)."""
    return frozenset(addr.rsplit("/p2p/", 1)[1] for addr in addrs if "/p2p/" in addr)


class ConnectionSlots:
    """Enforces the slot rules on a host's connections; `enforce` after every new connection."""

    def __init__(
        self,
        host: HubHost,
        *,
        max_peers: int,
        protected: frozenset[str] = frozenset(),
        score: Callable[[str], float] = lambda _peer: 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_peers < 1:
            raise ValueError(f"max_peers must be at least 1, got {max_peers}")
        self.max_peers = max_peers
        self.reserve = outbound_reserve(max_peers)
        self.protected = protected
        self._host = host
        self._score = score
        self._clock = clock
        self._since: dict[str, float] = {}
        self._useful: dict[str, float] = {}
        self._cooling: dict[str, float] = {}
        self._leaving: set[str] = set()
        self._chosen: set[str] = set()
        self.evictions = 0
        self._last_report = float("-inf")

    def mark_chosen(self, peer_id: str) -> None:
        """We dialled this peer by our own choice (a contact we picked): it may use an outbound slot.

        Other outbound connections (a DHT lookup, a stream opened to a peer that had just left) compete
        with inbound ones: otherwise any peer that got us to dial it back would hold a reserved slot.
        """
        self._chosen.add(peer_id)

    def _is_ours(self, peer_id: str, outbound: bool) -> bool:
        return outbound and (peer_id in self._chosen or peer_id in self.protected)

    def mark_useful(self, peer_id: str) -> None:
        """The peer just gave us data we did not have (merged messages): worth keeping under pressure."""
        self._useful[peer_id] = self._clock()

    def slots(self) -> list[Slot]:
        """The connected peers (not those being evicted) as the rules see them."""
        now = self._clock()
        live = {c.peer_id: c for c in self._host.connections() if c.peer_id not in self._leaving}
        for pid in [p for p in self._since if p not in live]:
            del self._since[pid]
            self._useful.pop(pid, None)
        self._chosen.intersection_update(live)
        return [
            Slot(
                peer_id=pid,
                outbound=self._is_ours(pid, conn.outbound),
                connected_at=self._since.setdefault(pid, now),
                group=network_group(conn.remote_ip),
                score=self._score(pid),
                last_useful=self._useful.get(pid, 0.0),
                protected=pid in self.protected,
            )
            for pid, conn in live.items()
        ]

    def outbound_count(self) -> int:
        """Peers in outbound slots: bootstrap peers and contacts we chose to dial."""
        return sum(1 for c in self._host.connections() if self._is_ours(c.peer_id, c.outbound))

    def _cooling_down(self, peer_id: str, now: float) -> bool:
        until = self._cooling.get(peer_id)
        if until is None:
            return False
        if until <= now:
            del self._cooling[peer_id]
            return False
        return True

    def choose(self) -> list[str]:
        """Peers to disconnect now: inbound peers still cooling down, then what the rules pick."""
        now = self._clock()
        slots = self.slots()
        back = {
            s.peer_id for s in slots if not (s.outbound or s.protected) and self._cooling_down(s.peer_id, now)
        }
        rest = [s for s in slots if s.peer_id not in back]
        return sorted(back) + choose_evictions(rest, max_peers=self.max_peers, reserve=self.reserve)

    async def enforce(self) -> list[str]:
        """Disconnect the peers `choose` picks (in parallel); returns their ids."""
        victims = self.choose()
        if not victims:
            return []
        now = self._clock()
        if len(self._cooling) + len(victims) > MAX_COOLING:
            for pid in sorted(self._cooling, key=self._cooling.__getitem__)[: len(victims)]:
                del self._cooling[pid]
        for pid in victims:
            self._cooling[pid] = now + EVICTION_COOLDOWN
        self._leaving.update(victims)
        self.evictions += len(victims)
        log.debug("connection slots full: evicting %s", ", ".join(victims))
        if now - self._last_report >= EVICTION_REPORT_EVERY:
            # Under a sybil flood this happens many times a second: one line a minute says enough.
            log.info(
                "connection slots full: %d peer(s) evicted in all (%d inbound, %d outbound slots)",
                self.evictions, self.max_peers - self.reserve, self.reserve,
            )  # fmt: skip
            self._last_report = now
        try:
            async with trio.open_nursery() as nursery:
                for pid in victims:
                    nursery.start_soon(self._host.disconnect, pid)
        finally:
            self._leaving.difference_update(victims)
        return victims
