"""Fetching a blob from peers: several providers at once, every block verified on arrival, resumable.

One fetch walks the blob's DAG from its root: each dag-pb node is decoded as soon as it arrives (so its
children join the work queue) and internal nodes are always asked for before leaves, so the whole shape
of the DAG, and with it the exact amount of work, is known early. Every provider gets one worker with a
couple of streams, each with a couple of requests of up to four blocks in flight; all workers pull from
one queue, so different chunks come from different providers and a fast provider simply serves more.

Honest-minority rules (DESIGN.md section 1): a block is accepted only if we asked for it and it hashes to
its CID (`BlockClient.want` checks both). A provider that sends anything else is provably lying: it is
dropped for this fetch and penalised. A provider that says "don't have" or does not answer in time is
only marked as lacking those blocks, which go back to the queue for the others; one that keeps failing,
or has nothing at all, is dropped without penalty. Providers are put to work the moment discovery
finds them: connected peers that hold the blob serve it while the DHT is still being asked, and DHT
providers join the running fetch when they turn up. When every provider found is exhausted (and the
lookup is over), providers are looked for again (excluding those tried), so a crowd of withholders
cannot hide an honest one; the fetch fails only when no provider is left for some block. Problems of
the DAG itself (a node that is not a UnixFS file node, absurd fan-out, depth beyond 32, sizes that
contradict each other) are the blob author's doing, not the provider's: the fetch stops with a clear
error and nothing more is fetched.

Blocks already stored locally are never fetched again, so running a failed or interrupted fetch again
resumes it. Verified blocks are written in batches of about 4 MiB from a worker thread; the bytes of
requested and not yet written blocks are bounded by a budget, so block data in memory stays at a few MiB
whatever the blob's size and however many providers serve it (plus one answer frame, at most 4.5 MiB,
being read per stream). Bookkeeping costs a few hundred bytes per block of the DAG; a DAG of more than
`max_blocks` blocks is refused.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

import trio

from node.blobs._store import BlobInfo, BlobStore
from p2p import MAX_WANT_PER_REQUEST, BlockClient, BlockPeerError, HubHost
from p2p._blocks_wire import REQUEST_TIMEOUT
from protocols.blobs import CODEC_DAG_PB, MAX_BLOCK_BYTES, Block, Cid, decode_dag_node
from protocols.errors import HubError

log = logging.getLogger("stateless.blobs.fetch")

#: Providers one fetch uses at most.
DEFAULT_MAX_PROVIDERS: Final = 8
#: Streams per provider, and requests in flight on each. Measured with 64 MiB between two processes on
#: a shared 2-core machine: one stream with one request in flight moved 50-80 % of what a raw py-libp2p
#: stream copy did, 2 x 2 moved 70-99 %; end to end into the store, 38-57 MiB/s against 57-72 MiB/s.
STREAMS_PER_PROVIDER: Final = 2
PIPELINE_DEPTH: Final = 2
#: A DAG deeper than this is refused (that is how a cycle or a deliberately absurd layout shows).
MAX_DAG_DEPTH: Final = 32
#: Distinct blocks one fetch may discover (64 GiB of 256 KiB chunks): bounds the bookkeeping's memory.
DEFAULT_MAX_BLOCKS: Final = 1 << 18
#: Verified blocks are written to the store in transactions of about this size.
WRITE_BATCH_BYTES: Final = 4 * 1024 * 1024
#: Bytes of blocks requested or received and not yet written, over all providers of one fetch.
DEFAULT_MAX_BUFFERED_BYTES: Final = 8 * 1024 * 1024
#: Consecutive failures (timeouts, broken streams) after which a provider is left out of a fetch.
MAX_PROVIDER_FAILURES: Final = 3
#: A provider that has answered "don't have" to this many blocks and sent none is left out.
WITHHOLD_LIMIT: Final = 32
#: Times a fetch looks for more providers once all those found so far are exhausted.
MAX_DISCOVERY_ROUNDS: Final = 3

_QUEUED: Final = 0
_IN_FLIGHT: Final = 1
_RECEIVED: Final = 2
_DONE: Final = 3


@dataclass(frozen=True, slots=True)
class FetchProgress:
    """Where a fetch stands; handed to the progress callback after every write and at the end.

    Bytes and blocks count distinct blocks (a chunk repeated in the file is stored once), as BlobInfo
    does. `bytes_total` and `blocks_total` are -1 until every internal node of the DAG is known (they
    are fetched first, so that is early); `size` is the file's size, 0 until the root block is known.
    """

    root: Cid
    size: int
    bytes_done: int
    bytes_total: int
    blocks_done: int
    blocks_total: int
    bytes_fetched: int
    rate: float
    providers: int


class ProviderSource(Protocol):
    """Who might hold a blob (node.blobs.ProviderFinder implements it)."""

    async def find(self, root: Cid, *, limit: int) -> list[str]:
        """Peer ids, connected by the time this returns, that may serve the blob's blocks."""
        ...


@runtime_checkable
class IncrementalProviderSource(ProviderSource, Protocol):
    """A ProviderSource that can also hand providers over one at a time, as soon as each is found
    (node.blobs.ProviderFinder does). The fetcher uses `find_each` when the source has it, so that it
    can start before the slowest part of discovery is over."""

    async def find_each(self, root: Cid, found: Callable[[str], None], *, limit: int) -> None:
        """Call `found(peer_id)` for each peer (connected when handed over) that may serve the blob's
        blocks, at most `limit` distinct ones; return when no more will come. Never calls `found` after
        returning or being cancelled, and returns within a bounded time."""
        ...


def _unavailable(message: str) -> HubError:
    return HubError("unavailable.not_found_on_network", message)


@dataclass(eq=False)
class _Provider:
    peer_id: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    active: bool = True
    failures: int = 0
    served: int = 0
    lacked: int = 0
    streams: int = 0
    why: str = ""
    clients: set[BlockClient] = field(default_factory=set)


class _Budget:
    """Bytes held by requests in flight and blocks waiting to be written, capped (one oversized hold
    is let through when nothing else is held, so a single large request cannot wait forever)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self._freed = trio.Event()

    async def acquire(self, n: int) -> None:
        while self.used and self.used + n > self.cap:
            await self._freed.wait()
        self.used += n

    def charge(self, n: int) -> None:
        """Hold `n` more bytes at once (received beyond what was acquired for)."""
        self.used += n

    def release(self, n: int) -> None:
        self.used -= n
        freed, self._freed = self._freed, trio.Event()
        freed.set()


class _Fetch:
    """The state of one fetch: the DAG walked so far, the work queue, the providers."""

    def __init__(
        self,
        fetcher: BlobFetcher,
        root: Cid,
        session: str,
        progress: Callable[[FetchProgress], None] | None,
    ) -> None:
        self.f = fetcher
        self.store = fetcher.store
        self.root = root
        self.session = session
        self.progress = progress
        self.started = fetcher.clock()
        self.state: dict[Cid, int] = {}
        #: The deepest level each dag-pb node has been reached at.
        self.depth: dict[Cid, int] = {}
        #: File bytes a parent says each block holds (checked when the block arrives, then dropped).
        self.claimed: dict[Cid, int] = {}
        self.nodes_queue: deque[Cid] = deque()
        self.leaves_queue: deque[Cid] = deque()
        self.in_flight: dict[Cid, _Provider] = {}
        self.lacking: dict[Cid, set[str]] = {}
        #: dag-pb blocks received and not yet written (needed if the node is reached again deeper).
        self.unwritten_nodes: dict[Cid, bytes] = {}
        self.providers: dict[str, _Provider] = {}
        self.budget = _Budget(fetcher.max_buffered_bytes)
        self.received = 0
        self.opening = 0
        #: A discovery round's lookup is running (it may still find providers).
        self.looking = False
        #: Providers the current discovery round has put to work.
        self.round_fresh = 0
        self._lookup: trio.CancelScope | None = None
        self.fatal: BaseException | None = None
        self.size = 0
        self.blocks_done = 0
        self.bytes_done = 0
        self.known_bytes = 0
        self.unknown_nodes = 0
        self.bytes_fetched = 0
        self._changed = trio.Event()
        self._queue_grew = trio.Event()
        self._nursery: trio.Nursery | None = None
        send, recv = trio.open_memory_channel[Block](math.inf)  # bounded by the byte budget
        self._to_writer = send
        self._writer_inbox = recv

    # ---------------------------------------------------------------------------------- events

    def changed(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()

    def fail(self, error: BaseException) -> None:
        if self.fatal is None:
            self.fatal = error
        self.changed()

    def _push(self, cid: Cid, *, front: bool = False) -> None:
        queue = self.nodes_queue if cid.codec == CODEC_DAG_PB else self.leaves_queue
        if front:
            queue.appendleft(cid)
        else:
            queue.append(cid)
        self.state[cid] = _QUEUED
        grew, self._queue_grew = self._queue_grew, trio.Event()
        grew.set()

    # ---------------------------------------------------------------------------------- the DAG

    def discover(self, cid: Cid, depth: int, claimed: int | None) -> None:
        """A link to `cid` at `depth`: queue it, or expand it if it is already here."""
        if depth > MAX_DAG_DEPTH:
            raise HubError(
                "bad_request.invalid_param",
                f"blob {self.root}: DAG deeper than {MAX_DAG_DEPTH} levels (a cycle or an absurd layout)",
            )
        state = self.state.get(cid)
        if claimed is not None and state != _DONE:
            previous = self.claimed.setdefault(cid, claimed)
            if previous != claimed:
                raise HubError(
                    "bad_request.blob_corrupt",
                    f"blob {self.root}: block {cid} is said to hold {previous} and {claimed} file bytes",
                )
        if state is None:
            if len(self.state) >= self.f.max_blocks:
                raise HubError(
                    "bad_request.invalid_param",
                    f"blob {self.root}: DAG has more than {self.f.max_blocks} blocks, too many to fetch",
                )
            if cid.codec == CODEC_DAG_PB:
                self.depth[cid] = depth
                self.unknown_nodes += 1
            elif claimed is not None:
                self.known_bytes += claimed
            if cid.codec != CODEC_DAG_PB and claimed is not None:
                # A stored leaf need not be read: its parent says how long it is (checked when stored).
                if not self.store.has_block(cid):
                    self._push(cid)
                    return
                self.state[cid] = _DONE
                self._count_done(cid, claimed)
                del self.claimed[cid]
                return
            data = self.store.get_block(cid)
            if data is None:
                self._push(cid)
                return
            self.state[cid] = _DONE
            self._count_done(cid, len(data), data)
            if cid.codec == CODEC_DAG_PB:
                self._expand(cid, data, depth)
            self.claimed.pop(cid, None)
            return
        if cid.codec == CODEC_DAG_PB and depth > self.depth[cid]:
            # Reached again, deeper: walk its children again at the new depth, so a path longer than
            # MAX_DAG_DEPTH is found however the DAG shares subtrees (each node rises at most 32 times).
            self.depth[cid] = depth
            data = self.unwritten_nodes.get(cid)
            if data is None and state == _DONE:
                data = self.store.get_block(cid)
            if data is not None:
                self._expand(cid, data, depth)

    def _expand(self, cid: Cid, data: bytes, depth: int) -> None:
        try:
            node = decode_dag_node(data)
        except HubError as e:
            raise HubError(e.code, f"blob {self.root}: DAG node {cid}: {e.message}") from None
        expected = self.claimed.get(cid)
        if expected is not None and node.filesize != expected:
            raise HubError(
                "bad_request.blob_corrupt",
                f"blob {self.root}: node {cid} holds {node.filesize} file bytes; its parent says {expected}",
            )
        for link, size in zip(node.links, node.blocksizes, strict=True):
            self.discover(link.cid, depth + 1, size)

    def _count_done(self, cid: Cid, nbytes: int, data: bytes | None = None) -> None:
        self.blocks_done += 1
        self.bytes_done += nbytes
        if cid.codec == CODEC_DAG_PB:
            self.unknown_nodes -= 1
            self.known_bytes += nbytes
        elif cid not in self.claimed:
            self.known_bytes += nbytes
        if cid == self.root and data is not None:
            self.size = nbytes if cid.codec != CODEC_DAG_PB else decode_dag_node(data).filesize

    def accept(self, cid: Cid, data: bytes) -> None:
        """A verified block arrived: check it fits the DAG, queue its children, hand it to the writer."""
        if cid.codec == CODEC_DAG_PB:
            self._expand(cid, data, self.depth[cid])
            self.unwritten_nodes[cid] = data
        else:
            expected = self.claimed.get(cid)
            if expected is not None and len(data) != expected:
                raise HubError(
                    "bad_request.blob_corrupt",
                    f"blob {self.root}: raw block {cid} holds {len(data)} bytes; its parent says {expected}",
                )
        self.state[cid] = _RECEIVED
        self.received += 1
        self.bytes_fetched += len(data)
        self.f.bytes_fetched += len(data)
        self._to_writer.send_nowait(Block(cid, data))

    # ---------------------------------------------------------------------------------- work queue

    def _take(self, provider: _Provider) -> list[Cid]:
        """Up to MAX_WANT_PER_REQUEST queued blocks this provider is not known to lack; nodes first."""
        out: list[Cid] = []
        for queue in (self.nodes_queue, self.leaves_queue):
            skipped: list[Cid] = []
            while queue and len(out) < MAX_WANT_PER_REQUEST:
                cid = queue.popleft()
                if provider.peer_id in self.lacking.get(cid, ()):
                    skipped.append(cid)
                else:
                    out.append(cid)
            queue.extendleft(reversed(skipped))
            if len(out) >= MAX_WANT_PER_REQUEST:
                break
        for cid in out:
            self.state[cid] = _IN_FLIGHT
            self.in_flight[cid] = provider
        return out

    async def next_batch(self, provider: _Provider) -> list[Cid]:
        while True:
            if provider.active:
                batch = self._take(provider)
                if batch:
                    return batch
                await self._queue_grew.wait()
            else:
                await trio.sleep_forever()  # its cancel scope is being cancelled

    def requeue(self, batch: list[Cid], provider: _Provider, *, lacking: bool) -> None:
        """Put back what a request left unanswered (at the front: it was next in line)."""
        returned = False
        for cid in reversed(batch):
            if self.in_flight.get(cid) is not provider:
                continue
            del self.in_flight[cid]
            if lacking:
                self.lacking.setdefault(cid, set()).add(provider.peer_id)
            self._push(cid, front=not lacking)
            returned = True
        if returned:
            self.changed()

    def servable(self) -> bool:
        """Whether some queued block has an active provider not known to lack it."""
        active = [p.peer_id for p in self.providers.values() if p.active]
        if not active:
            return False
        for queue in (self.nodes_queue, self.leaves_queue):
            for cid in queue:
                lacking = self.lacking.get(cid, set())
                if any(peer not in lacking for peer in active):
                    return True
        return False

    def missing(self) -> int:
        return len(self.nodes_queue) + len(self.leaves_queue) + len(self.in_flight)

    # ---------------------------------------------------------------------------------- providers

    def drop(self, provider: _Provider, offence: str, why: str) -> None:
        """A provider lied: leave it out of this fetch and charge it."""
        if not provider.active:
            return
        log.warning("fetch of %s: dropping provider %s (%s): %s", self.root, provider.peer_id, offence, why)
        try:
            self.f.penalise(provider.peer_id, offence)
        except Exception:
            log.exception("penalising %s failed", provider.peer_id)
        self._leave(provider, f"{offence}: {why}")

    def retire(self, provider: _Provider, why: str) -> None:
        """A provider cannot help (gone, too slow, has nothing): leave it out, no penalty."""
        if not provider.active:
            return
        log.info("fetch of %s: leaving out provider %s: %s", self.root, provider.peer_id, why)
        self._leave(provider, why)

    def _leave(self, provider: _Provider, why: str) -> None:
        provider.active = False
        provider.why = why
        # Its blocks go back at once: its requests may take until their timeout to unwind.
        mine = [cid for cid, owner in self.in_flight.items() if owner is provider]
        self.requeue(mine, provider, lacking=False)
        if provider.clients and self._nursery is not None:
            self._nursery.start_soon(_abort_all, list(provider.clients))
        provider.scope.cancel()
        self.changed()

    def failed(self, provider: _Provider, error: BlockPeerError, batch: list[Cid]) -> None:
        if error.stale:  # the request that broke the stream is counted, not the ones queued behind it
            self.requeue(batch, provider, lacking=False)
            return
        if error.offence is not None:
            self.drop(provider, error.offence, error.message)
            self.requeue(batch, provider, lacking=False)
            return
        # Slow or gone: the blocks may still come from someone else.
        self.requeue(batch, provider, lacking=error.timed_out)
        provider.failures += 1
        if provider.failures >= MAX_PROVIDER_FAILURES:
            self.retire(provider, f"{provider.failures} failures in a row, last: {error.message}")

    # ---------------------------------------------------------------------------------- tasks

    async def provider_worker(self, provider: _Provider) -> None:
        with provider.scope:
            async with trio.open_nursery() as nursery:
                for _ in range(self.f.streams_per_provider):
                    nursery.start_soon(self._stream_worker, provider)

    async def _stream_worker(self, provider: _Provider) -> None:
        while provider.active:
            self.opening += 1
            try:
                client = await BlockClient.open(
                    self.f.host, provider.peer_id, request_timeout=self.f.request_timeout
                )
            except BlockPeerError as e:
                if provider.streams:
                    # Another stream to it works (the peer may cap streams per peer, and other fetches
                    # use some): carry on with fewer rather than count this against the provider.
                    return
                self.failed(provider, e, [])
                continue
            finally:
                self.opening -= 1
                self.changed()
            provider.streams += 1
            provider.clients.add(client)
            try:
                with trio.CancelScope() as stream_scope:
                    async with trio.open_nursery() as nursery:
                        for _ in range(self.f.pipeline_depth):
                            nursery.start_soon(self._requester, provider, client, stream_scope)
            finally:
                provider.streams -= 1
                provider.clients.discard(client)
                await client.close()

    async def _requester(
        self, provider: _Provider, client: BlockClient, stream_scope: trio.CancelScope
    ) -> None:
        while True:
            batch = await self.next_batch(provider)
            estimate = sum(self._estimate(cid) for cid in batch)
            held = 0
            try:
                await self.budget.acquire(estimate)
                held = estimate
                try:
                    blocks, lacking = await client.want(batch)
                except BlockPeerError as e:
                    self.failed(provider, e, batch)
                    await client.abort()  # the stream is out of step: reset it, open a new one
                    stream_scope.cancel()
                    return
                provider.failures = 0
                # Only blocks still ours: those of a provider left out meanwhile went back to the queue.
                mine = {cid: data for cid, data in blocks.items() if self.in_flight.get(cid) is provider}
                # The received bytes stay charged until the writer has stored them.
                self.budget.charge(sum(len(data) for data in mine.values()))
                for cid, data in mine.items():
                    del self.in_flight[cid]
                    provider.served += 1
                    try:
                        self.accept(cid, data)
                    except HubError as e:
                        self.fail(e)
                        return
                provider.lacked += len(lacking)
                self.requeue(lacking, provider, lacking=True)
                self.changed()
                if not provider.served and provider.lacked >= WITHHOLD_LIMIT:
                    self.retire(provider, f"it lacks all {provider.lacked} blocks asked for")
            finally:
                # Whatever is still ours (cancelled, dropped) goes back for the others.
                self.requeue(batch, provider, lacking=False)
                if held:
                    self.budget.release(held)

    def _estimate(self, cid: Cid) -> int:
        """Bytes a block will probably take (its parent's claim for raw leaves; an upper bound otherwise)."""
        claimed = self.claimed.get(cid)
        if cid.codec != CODEC_DAG_PB and claimed is not None:
            return max(1, min(claimed, MAX_BLOCK_BYTES))
        return 64 * 1024 if cid.codec == CODEC_DAG_PB else MAX_BLOCK_BYTES

    async def writer(self) -> None:
        inbox = self._writer_inbox
        async for first in inbox:
            batch = [first]
            size = len(first.data)
            while size < WRITE_BATCH_BYTES:
                try:
                    block = inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(block)
                size += len(block.data)
            try:
                # Verified on arrival by BlockClient.want: no need to hash every block a second time.
                put = functools.partial(self.store.put_blocks, batch, session=self.session, verified=True)
                await trio.to_thread.run_sync(put)
            except HubError as e:
                self.fail(e)
                return
            except Exception as e:
                log.exception("writing blocks of %s failed", self.root)
                self.fail(
                    HubError("unavailable.storage_failure", f"writing blocks of {self.root} failed: {e}")
                )
                return
            for block in batch:
                self.state[block.cid] = _DONE
                self.unwritten_nodes.pop(block.cid, None)
                self.received -= 1
                self._count_done(block.cid, len(block.data), block.data)
                # Checked on arrival; dropping it keeps a fetch's bookkeeping small.
                self.claimed.pop(block.cid, None)
            self.budget.release(size)
            self.report()
            self.changed()

    def report(self) -> None:
        if self.progress is None:
            return
        elapsed = max(self.f.clock() - self.started, 1e-9)
        complete_shape = self.unknown_nodes == 0
        progress = FetchProgress(
            root=self.root,
            size=self.size,
            bytes_done=self.bytes_done,
            bytes_total=self.known_bytes if complete_shape else -1,
            blocks_done=self.blocks_done,
            blocks_total=len(self.state) if complete_shape else -1,
            bytes_fetched=self.bytes_fetched,
            rate=self.bytes_fetched / elapsed,
            providers=sum(1 for p in self.providers.values() if p.active),
        )
        try:
            self.progress(progress)
        except Exception as e:
            self.fail(e)

    # ---------------------------------------------------------------------------------- the run

    def _settled(self) -> bool:
        """True when nothing more can happen: failed, complete, or stuck (see `stuck`)."""
        if self.fatal is not None:
            return True
        queued = len(self.nodes_queue) + len(self.leaves_queue)
        if not queued and not self.in_flight and not self.received:
            return True
        return self.stuck()

    def stuck(self) -> bool:
        """Whether blocks are missing that no remaining provider may have and no lookup still running
        may find one for (so nothing is under way)."""
        return (
            not self.looking
            and not self.in_flight
            and not self.received
            and not self.opening
            and not self.servable()
        )

    def _stuck_error(self) -> HubError:
        tried = len(self.providers)
        left_out = [f"{p.peer_id} left out: {p.why}" for p in self.providers.values() if not p.active]
        detail = f"{tried} provider{'s' if tried != 1 else ''} tried"
        if left_out:
            detail += "; " + "; ".join(left_out[:4])
        return _unavailable(
            f"cannot fetch {self.missing()} blocks of {self.root}: no provider has them ({detail})"
        )

    def _start_lookup(self, nursery: trio.Nursery) -> None:
        """Start a discovery round: each provider not tried yet is put to work as soon as it is found."""
        self.round_fresh = 0
        self.looking = True  # set now, so the round cannot look stuck before its lookup has begun
        self._lookup = scope = trio.CancelScope()
        # Ask for enough that peers already tried cannot crowd out new ones.
        limit = self.f.max_providers + len(self.providers)
        nursery.start_soon(self._look, scope, limit)

    async def _look(self, scope: trio.CancelScope, limit: int) -> None:
        source = self.f.providers
        try:
            with scope:
                if isinstance(source, IncrementalProviderSource):
                    await source.find_each(self.root, self._offer, limit=limit)
                else:
                    for peer_id in await source.find(self.root, limit=limit):
                        self._offer(peer_id)
        finally:
            self.looking = False
            self.changed()

    def _offer(self, peer_id: str) -> None:
        """Discovery found `peer_id`: if it is new and the round has room (max_providers), it starts now."""
        nursery = self._nursery
        if nursery is None or self.fatal is not None or not self.looking:
            return
        if peer_id == self.f.host.info.peer_id or peer_id in self.providers:
            return
        if self.round_fresh >= self.f.max_providers:
            return
        self.providers[peer_id] = provider = _Provider(peer_id)
        self.round_fresh += 1
        nursery.start_soon(self.provider_worker, provider)
        if self.round_fresh >= self.f.max_providers and self._lookup is not None:
            self._lookup.cancel()  # the round is full: nobody found from now on could join it
        self.changed()

    async def run(self) -> None:
        """Fetch every block of the DAG not stored yet; raises what ended the fetch, if not success.

        Providers start as discovery finds them (up to max_providers per round); a fetch that is
        complete does not wait for a lookup still running. When every provider found so far is
        exhausted and the round's lookup is over, providers are looked for again, excluding those
        already tried (so claims from a crowd of withholders cannot hide the one honest provider), for
        as long as each lookup turns up someone new, at most MAX_DISCOVERY_ROUNDS times.
        """
        self.discover(self.root, 0, None)
        if not self.missing():
            return  # every block was already here (an interrupted fetch, or a put that was not committed)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.writer)
            try:
                rounds = 0
                while True:
                    self._start_lookup(nursery)
                    while not self._settled():
                        await self._changed.wait()
                    if self.fatal is not None or not self.missing() or not self.round_fresh:
                        break
                    if rounds >= MAX_DISCOVERY_ROUNDS:
                        break
                    rounds += 1
                if self.fatal is None and self.missing():
                    self.fatal = self._stuck_error()
            finally:
                # Requests run shielded (p2p._blocks_wire), so resetting the streams of those still
                # pending is what ends them now: on success, failure and cancellation alike.
                self._nursery = None
                pending = [c for p in self.providers.values() for c in p.clients if c.broken or c.busy]
                with trio.CancelScope(shield=True):
                    await _abort_all(pending)
                nursery.cancel_scope.cancel()
        self.report()
        self._raise()

    def _raise(self) -> None:
        if self.fatal is not None:
            raise self.fatal


async def _abort_all(clients: list[BlockClient]) -> None:
    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(client.abort)


class BlobFetcher:
    """Fetches blobs into a BlobStore from whichever peers `providers` finds, verifying every block.

    `penalise(peer_id, offence)` is told of each provider caught lying (NetworkService.penalise fits);
    `announce(root)`, if given, is called after a fetch completes (to advertise the blob in the DHT).
    """

    def __init__(
        self,
        store: BlobStore,
        host: HubHost,
        providers: ProviderSource,
        penalise: Callable[[str, str], None],
        *,
        clock: Callable[[], float] = time.time,
        announce: Callable[[Cid], None] | None = None,
        max_providers: int = DEFAULT_MAX_PROVIDERS,
        streams_per_provider: int = STREAMS_PER_PROVIDER,
        pipeline_depth: int = PIPELINE_DEPTH,
        request_timeout: float = REQUEST_TIMEOUT,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_blocks: int = DEFAULT_MAX_BLOCKS,
    ) -> None:
        if max_providers < 1 or streams_per_provider < 1 or pipeline_depth < 1:
            raise ValueError("max_providers, streams_per_provider and pipeline_depth must be >= 1")
        self.store = store
        self.host = host
        self.providers = providers
        self.penalise = penalise
        self.clock = clock
        self.announce = announce
        self.max_providers = max_providers
        self.streams_per_provider = streams_per_provider
        self.pipeline_depth = pipeline_depth
        self.request_timeout = request_timeout
        self.max_buffered_bytes = max_buffered_bytes
        self.max_blocks = max_blocks
        #: Verified block bytes received from peers over all fetches (metrics).
        self.bytes_fetched = 0

    async def fetch(
        self, root: Cid, *, progress: Callable[[FetchProgress], None] | None = None, pin: bool = False
    ) -> BlobInfo:
        """Make the blob `root` complete in the store, fetching what is missing; returns its record.

        A blob already complete returns at once (pinned first if `pin`). Raises HubError
        unavailable.not_found_on_network ("cannot fetch N blocks of <cid>: no provider has them") when
        some block has no provider left, bad_request.invalid_param / bad_request.blob_corrupt for a DAG
        that is not a well-formed UnixFS file, unavailable.storage_full when it does not fit. What was
        fetched before a failure stays stored (until GC), so fetching again resumes.
        """
        info = self.store.stat(root)
        if info is not None and info.complete:
            if pin and not info.pinned:
                info = await trio.to_thread.run_sync(self.store.pin, root)
            return info
        session = await trio.to_thread.run_sync(functools.partial(self.store.open_blob, root, pin=pin))
        try:
            await _Fetch(self, root, session, progress).run()
            info = await trio.to_thread.run_sync(self.store.commit_blob, session, root)
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    await trio.to_thread.run_sync(self.store.abort_blob, session)
                except HubError as e:
                    log.debug("aborting the fetch session of %s: %s", root, e)
            raise
        if not info.complete:
            # Every block was stored by this fetch; only a concurrent removal can cause this.
            raise _unavailable(
                f"blob {root} is still incomplete after fetching ({info.blocks_present} blocks)"
            )
        if self.announce is not None:
            self.announce(root)
        return info
