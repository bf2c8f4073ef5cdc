"""Who has a blob: asking connected peers, kad-dht provider records, and the block exchange's wiring.

`ProviderFinder` asks every connected peer (a `have` request for the root, over the block protocol)
and, at the same time, looks the root up in the DHT; providers found there that we are not connected
to are dialled with the addresses their records carry. `find` returns the complete list (what
FindProviders wants); `find_each` hands each provider over the moment it is known, so a fetch starts
on the connected peers that hold the blob while the DHT lookup goes on, and DHT providers join it
later. Answers are claims, not proof: a provider that lies about having blocks is found out, and
routed around, by the fetcher. The DHT is optional and never on the critical path: if it fails, times
out, or is off, connected peers still serve the fetch.

`open_block_exchange` runs the whole exchange for a node: it serves our blocks to peers, runs the DHT
(server mode) as a background service, announces blobs as they are stored or fetched, re-announces every
complete blob periodically, and builds the `BlobFetcher` that fetches with all of it.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import multiaddr
import trio
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import background_trio_service

from node.blobs._fetch import DEFAULT_MAX_PROVIDERS, BlobFetcher, FetchProgress
from node.blobs._store import BlobInfo, BlobStore
from p2p import BLOCKS_PROTOCOL_ID, BlockClient, BlockPeerError, HubHost, serve_block_stream
from p2p._blocks_wire import DEFAULT_MAX_CONCURRENT_ANSWERS
from protocols.blobs import Cid
from protocols.errors import HubError

log = logging.getLogger("stateless.blobs.providers")

#: How long connected peers get to answer "do you have this root?".
ASK_TIMEOUT: Final = 5.0
#: Connected peers asked at most per lookup (a random sample if there are more).
MAX_PEERS_ASKED: Final = 32
#: Longest a DHT lookup (including dialling the providers it finds) may take.
DHT_TIMEOUT: Final = 10.0
#: Once a connected peer is known to have the blob, `find`'s DHT lookup gets only this much longer
#: (`find_each`, which fetches use, never waits for the DHT).
DHT_GRACE: Final = 2.0
#: Longest one DHT announcement may take.
PROVIDE_TIMEOUT: Final = 30.0
#: Complete blobs are announced again this often (records expire after 48 h; peers come and go).
DEFAULT_REANNOUNCE_INTERVAL: Final = 1800.0
#: The first re-announcement round waits this long (or the interval, if shorter) after start, so that
#: bootstrap peers are connected by then.
_FIRST_REANNOUNCE_DELAY: Final = 60.0
#: Announcements waiting to be sent; beyond it they are dropped (the next round re-announces).
_ANNOUNCE_QUEUE: Final = 1024
#: DHT announcements running at once.
_ANNOUNCE_CONCURRENCY: Final = 4
#: Addresses tried per provider found in the DHT.
_MAX_DIAL_ADDRS: Final = 4
_LIST_PAGE: Final = 256
#: Bound on stopping the DHT service at exit.
_STOP_TIMEOUT: Final = 5.0


def _allow_all(_peer_id: str) -> bool:
    return True


async def _abort_all(clients: list[BlockClient]) -> None:
    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(client.abort)


def _dial_addrs(peer_id: str, addrs: list[Any]) -> list[str]:
    """Dialable `/ip4|ip6/.../tcp/<port>/p2p/<peer id>` strings from a DHT record's addresses."""
    out: list[str] = []
    for addr in addrs:
        try:
            text = str(addr)
            parsed = multiaddr.Multiaddr(text)
            names = [p.name for p in parsed.protocols()]
        except Exception:
            continue
        if names[-1:] == ["p2p"]:
            if parsed.value_for_protocol("p2p") != peer_id:
                continue  # a record naming someone else's address: not this provider
            names = names[:-1]
            text = text[: text.rindex("/p2p/")]
        if len(names) != 2 or names[0] not in ("ip4", "ip6") or names[1] != "tcp":
            continue
        candidate = f"{text}/p2p/{peer_id}"
        if candidate not in out:
            out.append(candidate)
        if len(out) >= _MAX_DIAL_ADDRS:
            break
    return out


class ProviderFinder:
    """Finds peers that may serve a blob: connected peers that say they hold its root, and DHT providers.

    `allow(peer_id)` filters out peers we refuse to talk to (banned); `penalise(peer_id, offence)` is told
    of peers whose `have` answers break the protocol. `dht` may be set or cleared at any time.
    """

    def __init__(
        self,
        host: HubHost,
        *,
        dht: KadDHT | None = None,
        allow: Callable[[str], bool] = _allow_all,
        penalise: Callable[[str, str], None] | None = None,
        ask_timeout: float = ASK_TIMEOUT,
        dht_timeout: float = DHT_TIMEOUT,
        dht_grace: float = DHT_GRACE,
        max_asked: int = MAX_PEERS_ASKED,
    ) -> None:
        self.host = host
        self.dht = dht
        self.allow = allow
        self.penalise = penalise
        self.ask_timeout = ask_timeout
        self.dht_timeout = dht_timeout
        self.dht_grace = dht_grace
        self.max_asked = max_asked
        #: A long-lived nursery for DHT lookups that outlast a `find` (set by open_block_exchange).
        self.background: trio.Nursery | None = None

    async def find(self, root: Cid, *, limit: int = DEFAULT_MAX_PROVIDERS) -> list[str]:
        """Up to `limit` peer ids, all connected when this returns, that may serve the blob `root`.

        Connected peers that say they hold the root come first, then DHT providers (dialled if needed).
        Never raises for network trouble: a peer or the DHT failing just contributes nothing. Once a
        connected peer has the blob, the DHT gets only `dht_grace` more seconds; with `background` set,
        a lookup that overruns is left to finish there rather than cancelled (cancelling py-libp2p
        midway through a write can break a connection, see p2p._blocks_wire).
        """
        found: list[str] = []
        own = self.host.info.peer_id

        def add(peers: list[str]) -> None:
            for peer_id in peers:
                if peer_id != own and peer_id not in found and len(found) < limit and self.allow(peer_id):
                    found.append(peer_id)

        dht_found: list[str] = []  # filled as providers connect, so what was found before a deadline counts
        wait_dht = trio.CancelScope(deadline=trio.current_time() + self.dht_timeout)

        async def via_peers() -> None:
            add(await self.ask_connected(root))
            if len(found) >= limit:
                wait_dht.cancel()
            elif found:
                wait_dht.deadline = min(wait_dht.deadline, trio.current_time() + self.dht_grace)

        async def via_dht() -> None:
            with wait_dht:
                await self._lookup_dht(root, limit, dht_found.append)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(via_peers)
            if self.dht is not None:
                nursery.start_soon(via_dht)
        add(list(dht_found))
        return found

    async def find_each(
        self, root: Cid, found: Callable[[str], None], *, limit: int = DEFAULT_MAX_PROVIDERS
    ) -> None:
        """Call `found(peer_id)` for each peer that may serve `root` as soon as it is known; then return.

        The same peers as `find` (connected, allowed, not us, each once, at most `limit`), but nobody
        waits for anybody: a connected peer is handed over as soon as it answers that it holds the
        root, a DHT provider as soon as it is connected. Returns when the connected peers have answered
        (each within `ask_timeout`) and the DHT lookup is over (within `dht_timeout`), or at once when
        `limit` peers were found. `found` is never called after this returns (or is cancelled); it must
        not block, and what it raises is logged, not propagated. Cancelling this is cheap and safe: the
        `have` requests still pending are reset, and with `background` set the DHT lookup finishes
        there, its late finds dropped.
        """
        own = self.host.info.peer_id
        seen: set[str] = set()
        live = True

        with trio.CancelScope() as scope:

            def deliver(peer_id: str) -> None:
                if not live or peer_id == own or peer_id in seen or len(seen) >= limit:
                    return
                if not self.allow(peer_id):
                    return
                seen.add(peer_id)
                if len(seen) >= limit:
                    scope.cancel()
                try:
                    found(peer_id)
                except Exception:
                    # A DHT lookup may deliver from the background nursery: never let it die of this.
                    log.exception("handing over provider %s of %s failed", peer_id, root)

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._ask_connected_each, root, deliver)
                    if self.dht is not None:
                        nursery.start_soon(self._lookup_dht, root, limit, deliver)
            finally:
                live = False

    async def ask_connected(self, root: Cid) -> list[str]:
        """Connected peers that answer `have` for the root (in the order they answered)."""
        holders: list[str] = []
        await self._ask_connected_each(root, holders.append)
        return holders

    async def _ask_connected_each(self, root: Cid, found: Callable[[str], None]) -> None:
        """Ask connected peers (a random sample of `max_asked`) for the root; `found` each that has it.

        If cancelled, the requests still pending are reset (they are shielded, see p2p._blocks_wire), so
        a silent peer does not hold this up until `ask_timeout`.
        """
        own = self.host.info.peer_id
        peers = [p for p in self.host.connected_peers() if p != own and self.allow(p)]
        random.shuffle(peers)
        pending: set[BlockClient] = set()
        remaining = min(len(peers), self.max_asked)
        all_answered = trio.Event()
        stopping = False

        async def ask(peer_id: str) -> None:
            nonlocal remaining
            client: BlockClient | None = None
            try:
                with trio.move_on_after(self.ask_timeout):
                    client = await BlockClient.open(self.host, peer_id, request_timeout=self.ask_timeout)
                    if stopping:  # opened (shielded) after the others were reset: don't start a request
                        return
                    pending.add(client)
                    if await client.have([root]):
                        found(peer_id)
            except BlockPeerError as e:
                if e.offence is not None and self.penalise is not None:
                    self.penalise(peer_id, e.offence)
                log.debug("asking %s for %s: %s", peer_id, root, e.message)
            finally:
                if client is not None:
                    pending.discard(client)
                    await client.close()
                remaining -= 1
                if not remaining:
                    all_answered.set()

        async with trio.open_nursery() as nursery:
            for peer_id in peers[: self.max_asked]:
                nursery.start_soon(ask, peer_id)
            if remaining:
                try:
                    await all_answered.wait()
                finally:
                    stopping = True
                    if pending:
                        with trio.CancelScope(shield=True):
                            await _abort_all(list(pending))

    async def ask_dht(self, root: Cid, *, limit: int = DEFAULT_MAX_PROVIDERS) -> list[str]:
        """Providers of `root` in the DHT, each connected (dialled if needed); [] without DHT or on error."""
        out: list[str] = []
        await self._ask_dht_each(root, limit, out.append)
        return out

    async def _lookup_dht(self, root: Cid, limit: int, found: Callable[[str], None]) -> None:
        """`_ask_dht_each` within `dht_timeout`. With `background` set it runs there and this only waits
        for it: cancelling this then stops the wait, not the lookup, and `found` may still be called
        later (callers ignore such late calls)."""

        async def lookup(done: trio.Event | None) -> None:
            try:
                with trio.move_on_after(self.dht_timeout):
                    await self._ask_dht_each(root, limit, found)
            finally:
                if done is not None:
                    done.set()

        background = self.background
        if background is None:
            await lookup(None)
            return
        done = trio.Event()
        background.start_soon(lookup, done)
        with trio.move_on_after(self.dht_timeout):
            await done.wait()

    async def _ask_dht_each(self, root: Cid, limit: int, found: Callable[[str], None]) -> None:
        """DHT providers of `root`, each passed to `found` once connected (dialled if needed)."""
        dht = self.dht
        if dht is None:
            return
        own = self.host.info.peer_id
        try:
            await self.refresh_routing_table(dht)
            infos = await dht.find_providers(str(root), count=limit * 2)
        except Exception as e:  # py-libp2p's DHT raises many types; it must never fail a fetch
            log.info("DHT lookup of %s failed: %s", root, e)
            return
        connected = set(self.host.connected_peers())
        out: list[str] = []
        to_dial: list[tuple[str, list[str]]] = []
        for info in infos:
            peer_id = str(info.peer_id)
            if peer_id == own or peer_id in out or not self.allow(peer_id):
                continue
            if peer_id in connected:
                out.append(peer_id)
                found(peer_id)
            elif all(peer_id != pending for pending, _ in to_dial):
                to_dial.append((peer_id, _dial_addrs(peer_id, list(info.addrs))))

        async def dial(peer_id: str, addrs: list[str]) -> None:
            for addr in addrs:
                try:
                    await self.host.connect(addr)
                except HubError as e:
                    log.debug("dialling DHT provider %s at %s: %s", peer_id, addr, e.message)
                    continue
                out.append(peer_id)
                found(peer_id)
                return

        async with trio.open_nursery() as nursery:
            for peer_id, addrs in to_dial[: max(0, limit - len(out))]:
                nursery.start_soon(dial, peer_id, addrs)

    async def refresh_routing_table(self, dht: KadDHT) -> None:
        """Put connected peers into the DHT's routing table (py-libp2p only adds peers that query us)."""
        with trio.move_on_after(self.ask_timeout):
            for peer_id in self.host.connected_peers():
                if not self.allow(peer_id):
                    continue
                peer = ID.from_base58(peer_id)
                if not dht.routing_table.peer_in_table(peer):
                    await dht.add_peer(peer)

    async def provide(self, root: Cid) -> bool:
        """Announce in the DHT that we hold `root`; False (logged) without a DHT or on failure."""
        dht = self.dht
        if dht is None:
            return False
        try:
            with trio.move_on_after(PROVIDE_TIMEOUT):
                await self.refresh_routing_table(dht)
                return bool(await dht.provide(str(root)))
        except Exception as e:  # py-libp2p's DHT raises many types; announcing is best effort
            log.info("announcing %s in the DHT failed: %s", root, e)
            return False
        log.info("announcing %s in the DHT timed out", root)
        return False


class BlockExchange:
    """A node's running block exchange (from `open_block_exchange`): serving, announcing, fetching.

    Also the `BlockSource` our block server answers from: the local store, refusing peers `allow` refuses.
    """

    def __init__(
        self,
        host: HubHost,
        store: BlobStore,
        finder: ProviderFinder,
        fetcher: BlobFetcher,
        *,
        allow: Callable[[str], bool],
        penalise: Callable[[str, str], None],
        max_concurrent_answers: int = DEFAULT_MAX_CONCURRENT_ANSWERS,
    ) -> None:
        self.host = host
        self.store = store
        self.finder = finder
        self.fetcher = fetcher
        self._allow = allow
        self._penalise = penalise
        self.served_blocks = 0
        self.served_bytes = 0
        self.announced = 0
        send, recv = trio.open_memory_channel[Cid](_ANNOUNCE_QUEUE)
        self._announce_send = send
        self._announce_recv = recv
        self._announce_idle = trio.Event()
        self._announce_idle.set()
        self._announcing = 0
        self._active: dict[str, int] = {}
        self._answers = trio.CapacityLimiter(max_concurrent_answers)
        self._stopping = trio.Event()
        self._dht_done = trio.Event()

    @property
    def dht(self) -> KadDHT | None:
        """The DHT, while it runs."""
        return self.finder.dht

    # BlockSource

    def allow(self, peer_id: str) -> bool:
        """BlockSource: peers we refuse (banned) are not served."""
        return self._allow(peer_id)

    def get_block(self, cid: Cid) -> bytes | None:
        """BlockSource: a block from the store."""
        data = self.store.get_block(cid)
        if data is not None:
            self.served_blocks += 1
            self.served_bytes += len(data)
        return data

    def has_block(self, cid: Cid) -> bool:
        """BlockSource: whether the store holds a block."""
        return self.store.has_block(cid)

    def penalise(self, peer_id: str, offence: str) -> None:
        """BlockSource: charge a peer that broke the protocol talking to our server."""
        self._penalise(peer_id, offence)

    # fetching and announcing

    async def fetch(
        self, root: Cid, *, progress: Callable[[FetchProgress], None] | None = None, pin: bool = False
    ) -> BlobInfo:
        """`BlobFetcher.fetch` (see there); the blob is announced in the DHT once complete."""
        return await self.fetcher.fetch(root, progress=progress, pin=pin)

    def announce(self, root: Cid) -> None:
        """Announce soon, in the background, that we hold the complete blob `root` (call after a put)."""
        try:
            self._announce_send.send_nowait(root)
        except trio.WouldBlock:
            log.debug("announcement queue full; %s waits for the next re-announcement round", root)
            return
        self._announcing += 1
        if self._announce_idle.is_set():
            self._announce_idle = trio.Event()

    async def wait_announced(self) -> None:
        """Return once every announcement queued so far has been sent (or has failed)."""
        await self._announce_idle.wait()

    async def announce_all(self) -> int:
        """Announce every complete blob in the store now; returns how many were announced."""
        count = 0
        after: Cid | None = None
        limiter = trio.CapacityLimiter(_ANNOUNCE_CONCURRENCY)

        async def one(root: Cid) -> None:
            nonlocal count
            async with limiter:
                if await self.finder.provide(root):
                    count += 1

        while True:
            page = await trio.to_thread.run_sync(
                functools.partial(self.store.list_blobs, after=after, limit=_LIST_PAGE)
            )
            async with trio.open_nursery() as nursery:
                for info in page:
                    if info.complete:
                        nursery.start_soon(one, info.root)
            if len(page) < _LIST_PAGE:
                return count
            after = page[-1].root

    async def _announcer(self) -> None:
        slots = trio.Semaphore(_ANNOUNCE_CONCURRENCY)

        async def one(root: Cid) -> None:
            try:
                if await self.finder.provide(root):
                    self.announced += 1
            finally:
                slots.release()
                self._announcing -= 1
                if not self._announcing:
                    self._announce_idle.set()

        async with trio.open_nursery() as nursery:
            async for root in self._announce_recv:
                await slots.acquire()  # at most a few announcements in flight; the rest wait in the queue
                nursery.start_soon(one, root)

    async def _reannouncer(self, interval: float) -> None:
        await trio.sleep(min(interval, _FIRST_REANNOUNCE_DELAY))
        while True:
            try:
                count = await self.announce_all()
                log.info("re-announced %d complete blobs in the DHT", count)
            except HubError as e:
                log.warning("re-announcing blobs failed: %s", e)
            await trio.sleep(interval)

    async def _serve(self, stream: Any) -> None:
        await serve_block_stream(stream, self, self._active, limiter=self._answers)


async def _run_dht(exchange: BlockExchange, *, task_status: trio.TaskStatus[None]) -> None:
    """Run the DHT until cancelled; if it fails, log it and carry on without it."""
    libp2p_host = exchange.host.libp2p_host
    started = False
    # py-libp2p 0.8.1 logs every inbound DHT stream its asker closes as a warning; keep real errors only
    # (unless the operator configured that logger).
    dht_log = logging.getLogger("libp2p.kad_dht.kad_dht")
    if dht_log.level == logging.NOTSET:
        dht_log.setLevel(logging.ERROR)
    try:
        dht = KadDHT(libp2p_host, DHTMode.SERVER)
        async with background_trio_service(dht):
            exchange.finder.dht = dht
            started = True
            task_status.started()
            # Left by returning, not by cancellation, so the service stops in an orderly way.
            await exchange._stopping.wait()
            exchange.finder.dht = None
    except Exception as e:  # the DHT is optional: connected peers still serve fetches
        log.warning("the DHT stopped (%s); blobs are found through connected peers only", e)
    finally:
        exchange.finder.dht = None
        libp2p_host.remove_stream_handler(KAD_PROTOCOL_ID)
        exchange._dht_done.set()
        if not started:
            task_status.started()


@asynccontextmanager
async def open_block_exchange(
    host: HubHost,
    store: BlobStore,
    *,
    penalise: Callable[[str, str], None],
    allow: Callable[[str], bool] = _allow_all,
    dht: bool = True,
    reannounce_interval: float = DEFAULT_REANNOUNCE_INTERVAL,
    max_concurrent_answers: int = DEFAULT_MAX_CONCURRENT_ANSWERS,
    clock: Callable[[], float] = time.time,
    **fetcher_options: Any,
) -> AsyncIterator[BlockExchange]:
    """Serve, announce and fetch blocks on `host` until the block ends.

    `penalise(peer_id, offence)` and `allow(peer_id)` are the node's peer scores (NetworkService.penalise
    and `not NetworkService.is_banned`). With `dht`, a kad-dht server runs alongside (a failure of it is
    logged and leaves discovery to connected peers); complete blobs are announced every
    `reannounce_interval` seconds. `fetcher_options` go to `BlobFetcher` (timeouts, parallelism).
    """
    finder = ProviderFinder(host, allow=allow, penalise=penalise)
    fetcher = BlobFetcher(store, host, finder, penalise, clock=clock, **fetcher_options)
    exchange = BlockExchange(
        host, store, finder, fetcher, allow=allow, penalise=penalise,
        max_concurrent_answers=max_concurrent_answers,
    )  # fmt: skip
    fetcher.announce = exchange.announce
    libp2p_host = host.libp2p_host
    libp2p_host.set_stream_handler(BLOCKS_PROTOCOL_ID, exchange._serve)
    try:
        async with trio.open_nursery() as nursery:
            finder.background = nursery
            if dht:
                await nursery.start(_run_dht, exchange)
            else:
                exchange._dht_done.set()
            nursery.start_soon(exchange._announcer)
            if dht and reannounce_interval > 0:
                nursery.start_soon(exchange._reannouncer, reannounce_interval)
            try:
                yield exchange
            finally:
                finder.background = None
                exchange._stopping.set()
                with trio.move_on_after(_STOP_TIMEOUT, shield=True):
                    await exchange._dht_done.wait()
                nursery.cancel_scope.cancel()
    finally:
        libp2p_host.remove_stream_handler(BLOCKS_PROTOCOL_ID)
