"""Diff sync: find what we and a peer hold differently by walking both sync tries, then exchange it.

A session with one peer compares trie nodes from the root down, descending only into children whose
hashes differ. Where the peer has a bucket we lack (or our bucket differs), we page through its sync ids
and fetch the messages we miss; where we hold ids it lacks, we push those messages to it. So one session
leaves both sides with the union, not only the side that asked (both nodes also run their own sessions).

Every answer costs a round trip, so a session keeps several in flight. The differing subtrees found on
the way down go to a bounded queue served by `WALKERS` walker tasks; a walker that finds the queue full
handles the subtree itself, depth first, so memory stays bounded for a trie of any size and the walk
never waits on itself. Ids to fetch go to `FETCH_WORKERS` fetch tasks, and ids to push are pushed in
batches; both buffers are shared by the walkers and flushed once the walk is done. All of them borrow one
of `SESSION_STREAMS` streams for each request. A differing subtree small enough on both sides
(`SMALL_SUBTREE`) is listed in one page instead of descended into, if the ids listed hash to what its
parent node claimed (after a partition most of the difference is many small subtrees), and a second whose
buckets differ in several places is listed whole.

Nothing a peer says is trusted: every trie node must hash to what it claims (else the peer is penalised
for a lying answer), id listings must be in order, in range and not much longer than the trie claimed, a
leaf bucket listed whole must hash to the count and hash sent with it, returned messages must be the ones
asked for, and every message goes through the same validation as one submitted over RPC (a bad one
costs the peer score). The first lie ends the whole session, whichever task met it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, Protocol

import trio

from node.engine import HubEngine
from p2p import HubHost, SyncClient, SyncPeerError
from protocols import crdt
from protocols.errors import HubError
from protocols.messages import decode_message
from protocols.proto import message_pb2 as pb
from protocols.proto import p2p_pb2

log = logging.getLogger("stateless.sync")

#: Sync ids fetched per page and messages fetched or pushed per request.
ID_PAGE: Final = 1024
MESSAGE_BATCH: Final = 256
#: Tasks fetching messages within one session (one request each at a time).
FETCH_WORKERS: Final = 2
#: Tasks walking differing subtrees within one session (one request each at a time).
WALKERS: Final = 4
#: Streams one session opens to its peer, shared by walkers and fetch workers one request at a time, so
#: also the requests it has in flight. A server takes 4 per peer (p2p MAX_STREAMS_PER_PEER); one is left for
#: the streams of the previous session, which the server may not have seen closed yet.
SESSION_STREAMS: Final = 3
#: Differing subtrees waiting for a walker; beyond it the walker that found one walks it itself.
WORK_QUEUE: Final = 256
#: A differing subtree holding at most this many ids on either side is listed in one page (one round
#: trip) instead of descended into (a trip per level and per differing bucket). The listing must hash to
#: the subtree's entry in its parent, else the walk descends after all.
SMALL_SUBTREE: Final = ID_PAGE
#: Long sessions log their progress this often (seconds).
PROGRESS_EVERY: Final = 5.0

#: Rejections that say nothing bad about the sender, though we cannot vouch for the message either: we
#: do not (yet) know the fid or key that signed it, or the fid has no storage.
UNVERIFIABLE: Final = frozenset(
    {"bad_request.unknown_fid", "bad_request.unknown_signer", "bad_request.no_storage"}
)


def is_invalid(err: HubError) -> bool:
    """Whether a rejection proves the message was forged or corrupt (and its sender misbehaved)."""
    return err.code.startswith(("bad_request.validation_failure", "bad_request.parse_failure"))


class Penaliser(Protocol):
    """Where sessions report provable misbehaviour (the network service's peer scores)."""

    def __call__(self, peer_id: str, offence: str, times: int = 1) -> None: ...


@dataclass
class IngestResult:
    """What happened to messages received from a peer."""

    merged: int = 0
    duplicate: int = 0
    rejected: int = 0
    invalid: int = 0
    unverifiable: int = 0


async def ingest(
    engine: HubEngine, raws: Sequence[bytes], *, origin: str
) -> tuple[IngestResult, list[pb.Message]]:
    """Decode, skip what we already hold, validate and merge messages from a peer; nothing trusted."""
    result = IngestResult()
    fresh: list[pb.Message] = []
    with engine.read() as kv:
        for raw in raws:
            try:
                message = decode_message(raw)
            except HubError:
                result.invalid += 1
                continue
            # A cheap lookup first: most gossip is a message we merged already from another peer. A claimed
            # hash we know can only be skipped, never stored, so trusting it here is harmless.
            if message.data.fid and crdt.has_message(kv, message.data.fid, message.hash):
                result.duplicate += 1
                continue
            fresh.append(message)
    merged: list[pb.Message] = []
    if fresh:
        for item in await engine.submit_many(fresh, origin=origin):
            if isinstance(item, pb.Message):
                merged.append(item)
            elif is_invalid(item):
                result.invalid += 1
            elif item.code == "bad_request.duplicate":
                result.duplicate += 1
            elif item.code in (
                "bad_request.unknown_fid",
                "bad_request.unknown_signer",
                "bad_request.no_storage",
            ):
                result.unverifiable += 1
            else:
                result.rejected += 1
    result.merged = len(merged)
    return result, merged


@dataclass
class PeerSyncStatus:
    """Progress and outcome of syncing with one peer (GetSyncStatus)."""

    peer_id: str
    syncing: bool = False
    in_sync: bool | None = None  # None: never compared
    sessions: int = 0
    last_started: float = 0.0
    last_finished: float = 0.0
    last_error: str = ""
    last_bad_sync: float = 0.0
    divergence_prefix: bytes = b""
    their_messages: int = 0
    our_messages: int = 0
    fetched: int = 0
    pushed: int = 0
    merged: int = 0
    # Totals over all sessions.
    total_fetched: int = 0
    total_pushed: int = 0
    total_merged: int = 0


def _answer_node(answer: p2p_pb2.TrieNodeAnswer) -> crdt.TrieNode:
    children = tuple(crdt.TrieChild(c.byte, c.count, bytes(c.hash)) for c in answer.children)
    return crdt.TrieNode(bytes(answer.prefix), answer.count, bytes(answer.hash), children)


def node_answer(node: crdt.TrieNode) -> p2p_pb2.TrieNodeAnswer:
    """Our trie node as a sync answer."""
    return p2p_pb2.TrieNodeAnswer(
        prefix=node.prefix,
        count=node.count,
        hash=node.hash,
        children=[p2p_pb2.TrieChildEntry(byte=c.byte, count=c.count, hash=c.hash) for c in node.children],
    )


class _Bad(Exception):
    """The peer provably misbehaved; ends the session with a penalty."""

    def __init__(self, offence: str, message: str) -> None:
        super().__init__(message)
        self.offence = offence


def _sole_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a session's task group: a protocol violation first, then a peer failure."""
    for kind in (_Bad, SyncPeerError):
        match, _ = group.split(kind)
        if match is not None:
            first: BaseException = match
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            return first
    return group


class _Streams:
    """A session's sync streams to its peer: at most `size`, opened when first needed, each lent out for
    one request at a time, all closed by `aclose`."""

    def __init__(self, host: HubHost, peer_id: str, size: int) -> None:
        self._host = host
        self._peer = peer_id
        self._slots = trio.Semaphore(size)
        self._idle: list[SyncClient] = []
        self._opened: list[SyncClient] = []

    @asynccontextmanager
    async def client(self) -> AsyncIterator[SyncClient]:
        """A stream with no request outstanding, for one request (waits while all are busy)."""
        async with self._slots:
            if self._idle:
                client = self._idle.pop()
            else:
                client = await SyncClient.open(self._host, self._peer)
                self._opened.append(client)
            yield client
            # Only after a complete answer: a stream whose request failed may still carry a stray frame.
            self._idle.append(client)

    async def aclose(self) -> None:
        """Close every stream opened, even when the session is being cancelled (each close is bounded)."""
        opened, self._opened, self._idle = self._opened, [], []
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for client in opened:
                    nursery.start_soon(client.close)


@dataclass(frozen=True, slots=True)
class _Subtree:
    """A child whose hash differs between the peer's trie and ours (an entry is None where it is empty)."""

    prefix: bytes
    theirs: crdt.TrieChild | None
    mine: crdt.TrieChild | None


class SyncSession:
    """One diff-sync session with one peer, over at most `SESSION_STREAMS` streams; `run` it once."""

    def __init__(
        self,
        engine: HubEngine,
        host: HubHost,
        peer_id: str,
        status: PeerSyncStatus,
        penalise: Penaliser,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._peer = peer_id
        self._status = status
        self._penalise = penalise
        self._clock = clock
        self._streams = _Streams(host, peer_id, SESSION_STREAMS)
        self._missing_send, self._missing_recv = trio.open_memory_channel[list[bytes]](FETCH_WORKERS * 2)
        self._work_send, self._work_recv = trio.open_memory_channel[_Subtree](WORK_QUEUE)
        # Subtrees queued or being walked; the queue is closed when it drops to 0 (nothing can add more).
        self._unfinished = 0
        self._last_progress = 0.0
        self._missing_buf: list[bytes] = []
        self._extra_buf: list[bytes] = []

    def _local_node(self, prefix: bytes) -> crdt.TrieNode:
        with self._engine.read() as kv:
            return crdt.trie_node(kv, prefix)

    def _local_ids(self, prefix: bytes) -> list[bytes]:
        out: list[bytes] = []
        after: bytes | None = None
        with self._engine.read() as kv:
            while True:
                page = crdt.sync_ids_under(kv, prefix, after=after, limit=ID_PAGE)
                out.extend(page)
                if len(page) < ID_PAGE:
                    return out
                after = page[-1]

    async def _their_node(self, prefix: bytes) -> crdt.TrieNode:
        async with self._streams.client() as client:
            answer = await client.trie_node(prefix)
        node = _answer_node(answer)
        if node.prefix != prefix:
            raise _Bad("bad_sync_answer", f"asked for node {prefix.hex()}, got {node.prefix.hex()}")
        if len(prefix) < crdt.LEAF_PREFIX_BYTES:
            problem = crdt.check_interior_node(node)
            if problem is not None:
                raise _Bad("bad_sync_answer", f"trie node {prefix.hex() or 'root'}: {problem}")
        return node

    async def _their_id_pages(
        self, prefix: bytes, claimed: int
    ) -> AsyncIterator[tuple[list[bytes], p2p_pb2.SyncIdsAnswer]]:
        """The peer's sync ids under `prefix`, a page at a time (with the answer that carried them, empty
        pages included), never many more than its trie claimed.

        Some slack over `claimed` allows for messages the peer merged since it answered; a peer that keeps
        sending beyond that is lying (and would otherwise make us hold unbounded lists).
        """
        # Generous: a busy prefix can grow a lot while a long listing is paged through.
        allowed = 2 * claimed + ID_PAGE
        seen = 0
        after: bytes | None = None
        while True:
            async with self._streams.client() as client:
                page = await client.sync_ids(prefix, after, ID_PAGE)
            ids = [bytes(i) for i in page.sync_ids]
            for sid in ids:
                if len(sid) != crdt.SYNC_ID_BYTES or not sid.startswith(prefix) or (after and sid <= after):
                    raise _Bad(
                        "bad_sync_answer", f"sync id list under {prefix.hex()} is out of order or range"
                    )
                after = sid
            seen += len(ids)
            if seen > allowed:
                raise _Bad(
                    "bad_sync_answer", f"more than the {claimed} sync ids claimed under {prefix.hex()}"
                )
            yield ids, page
            if not page.more or not ids:
                return

    async def _their_ids(self, prefix: bytes, claimed: int) -> list[bytes]:
        out: list[bytes] = []
        async for ids, _ in self._their_id_pages(prefix, claimed):
            out.extend(ids)
        return out

    def _diverged(self, prefix: bytes) -> None:
        # The earliest difference (sync ids sort by time), whichever walker found it first.
        s = self._status
        if not s.divergence_prefix or prefix < s.divergence_prefix:
            s.divergence_prefix = prefix

    async def _exchange(self, prefix: bytes, their_ids: list[bytes]) -> None:
        """Fetch what they list under `prefix` and we lack; push what we hold there and they did not list."""
        ours = set(self._local_ids(prefix))
        theirs = set(their_ids)
        missing = sorted(theirs - ours)
        extra = sorted(ours - theirs)
        if missing or extra:
            self._diverged(prefix)
        await self._want(missing)
        await self._offer(extra)

    async def _reconcile_leaf(self, prefix: bytes, theirs: crdt.TrieChild) -> None:
        their_ids: list[bytes] = []
        answers: list[p2p_pb2.SyncIdsAnswer] = []
        async for ids, answer in self._their_id_pages(prefix, theirs.count):
            their_ids.extend(ids)
            answers.append(answer)
        if len(answers) == 1 and answers[0].bucket_hash:
            # The bucket's count and hash came with the ids, from one snapshot: if they disagree the
            # peer is provably lying (a stale parent entry, by contrast, only means it took writes).
            first = answers[0]
            problem = crdt.check_leaf_ids(prefix, first.bucket_count, bytes(first.bucket_hash), their_ids)
            if problem is not None:
                raise _Bad("bad_sync_answer", f"bucket {prefix.hex()}: {problem}")
        await self._exchange(prefix, their_ids)

    async def _offer_ours(self, prefix: bytes) -> None:
        """Offer everything we hold under `prefix` (they hold nothing there), a page at a time."""
        self._diverged(prefix)
        after: bytes | None = None
        while True:
            with self._engine.read() as kv:
                page = crdt.sync_ids_under(kv, prefix, after=after, limit=ID_PAGE)
            await self._offer(page)
            if len(page) < ID_PAGE:
                return
            after = page[-1]

    async def _want(self, ids: list[bytes]) -> None:
        """Queue ids to fetch; they go to the fetch workers in full batches (one request each)."""
        self._missing_buf.extend(ids)
        while len(self._missing_buf) >= MESSAGE_BATCH:
            # Taken before the first await, so walkers adding at the same time never send an id twice.
            batch, self._missing_buf = self._missing_buf[:MESSAGE_BATCH], self._missing_buf[MESSAGE_BATCH:]
            await self._missing_send.send(batch)

    async def _offer(self, ids: list[bytes]) -> None:
        """Queue ids to push; pushed in full batches (many small buckets would otherwise cost a trip each)."""
        self._extra_buf.extend(ids)
        if len(self._extra_buf) >= MESSAGE_BATCH:
            batch, self._extra_buf = self._extra_buf, []
            await self._push(batch)

    async def _flush(self) -> None:
        """Send what the walk left in the buffers (once every walker is done)."""
        if self._missing_buf:
            batch, self._missing_buf = self._missing_buf, []
            await self._missing_send.send(batch)
        if self._extra_buf:
            batch, self._extra_buf = self._extra_buf, []
            await self._push(batch)

    async def _push(self, ids: list[bytes]) -> None:
        for i in range(0, len(ids), MESSAGE_BATCH):
            chunk = ids[i : i + MESSAGE_BATCH]
            with self._engine.read() as kv:
                raws = [
                    m.SerializeToString() for sid in chunk if (m := crdt.load_by_sync_id(kv, sid)) is not None
                ]
            if raws:
                async with self._streams.client() as client:
                    answer = await client.push(raws)
                self._status.pushed += answer.merged
                self._status.total_pushed += answer.merged
            self._progress()

    async def _walk(self, root: crdt.TrieNode) -> None:
        """Walk every subtree where their root and ours differ, with `WALKERS` tasks."""
        async with trio.open_nursery() as nursery:
            for _ in range(WALKERS):
                nursery.start_soon(self._walker)
            self._unfinished += 1  # the root, descended here
            await self._descend(root)
            self._finished()

    async def _walker(self) -> None:
        async for subtree in self._work_recv:
            await self._reconcile(subtree)
            self._finished()

    def _finished(self) -> None:
        self._unfinished -= 1
        if not self._unfinished:
            self._work_send.close()  # every walker's loop ends once the queue is empty

    async def _descend(self, node: crdt.TrieNode) -> None:
        """Hand every child of their interior node whose hash differs from ours to the walkers."""
        mine = {c.byte: c for c in self._local_node(node.prefix).children}
        theirs = {c.byte: c for c in node.children}
        differing = sorted(
            b
            for b in mine.keys() | theirs.keys()
            if b not in mine or b not in theirs or mine[b].hash != theirs[b].hash
        )
        if len(node.prefix) == crdt.LEAF_PREFIX_BYTES - 1 and len(differing) > 1:
            # One busy second of activity spread over many buckets: list the whole second in one paged
            # answer instead of a round trip per bucket.
            await self._exchange(node.prefix, await self._their_ids(node.prefix, node.count))
            return
        for byte in differing:
            subtree = _Subtree(node.prefix + bytes([byte]), theirs.get(byte), mine.get(byte))
            try:
                self._work_send.send_nowait(subtree)
            except trio.WouldBlock:
                # Queue full: walk it here, depth first, which bounds the queue whatever the trie's size.
                await self._reconcile(subtree)
            else:
                self._unfinished += 1

    async def _reconcile(self, subtree: _Subtree) -> None:
        """Exchange what differs under one differing child, descending further where it must."""
        prefix, t, m = subtree.prefix, subtree.theirs, subtree.mine
        if t is None:
            await self._offer_ours(prefix)
        elif len(prefix) == crdt.LEAF_PREFIX_BYTES:
            await self._reconcile_leaf(prefix, t)
        elif m is None:
            # We hold nothing here: skip the descent and fetch their ids as they are listed.
            self._diverged(prefix)
            async for ids, _ in self._their_id_pages(prefix, t.count):
                await self._want(ids)
        elif max(t.count, m.count) <= SMALL_SUBTREE:
            their_ids = await self._their_ids(prefix, t.count)
            if len(their_ids) == t.count and crdt.subtree_hash(prefix, their_ids) == t.hash:
                await self._exchange(prefix, their_ids)
            else:
                # Not the ids its trie committed to: it took writes since, or it lies. Descend after all,
                # where every node and leaf bucket it sends is checked.
                log.debug("peer %s: ids under %s changed during the walk", self._peer, prefix.hex())
                await self._descend_into(prefix, t)
        else:
            await self._descend_into(prefix, t)

    async def _descend_into(self, prefix: bytes, theirs: crdt.TrieChild) -> None:
        child = await self._their_node(prefix)
        if child.hash != theirs.hash:
            log.debug("peer %s: node %s changed during the walk", self._peer, prefix.hex())
        await self._descend(child)

    async def _fetch_worker(self) -> None:
        async for ids in self._missing_recv:
            wanted = set(ids)
            async with self._streams.client() as client:
                raws = await client.messages(ids)
            if len(raws) > len(ids):
                raise _Bad("bad_sync_answer", "more messages than asked for")
            result, merged = await ingest(self._engine, raws, origin="sync")
            # Anything merged must be one of the ids we asked for: a peer that answers with other
            # (valid) messages is not lying about data, but it is not following the protocol either.
            stray = sum(1 for m in merged if crdt.sync_id_of(m) not in wanted)
            if result.invalid:
                self._penalise(self._peer, "invalid_message", result.invalid)
            if stray:
                raise _Bad("bad_sync_answer", f"{stray} messages that were not asked for")
            self._status.fetched += len(raws)
            self._status.merged += result.merged
            self._status.total_fetched += len(raws)
            self._status.total_merged += result.merged
            self._progress()

    def _progress(self) -> None:
        now = self._clock()
        if now - self._last_progress >= PROGRESS_EVERY and self._status.last_started < now - PROGRESS_EVERY:
            self._last_progress = now
            s = self._status
            log.info(
                "sync with %s: fetched %d, merged %d, pushed %d (theirs %d, ours %d messages)",
                self._peer, s.fetched, s.merged, s.pushed, s.their_messages, s.our_messages,
            )  # fmt: skip

    async def run(self) -> None:
        """Compare and exchange until both tries agreed at the time of the walk; raises SyncPeerError."""
        s = self._status
        s.fetched = s.pushed = s.merged = 0
        s.divergence_prefix = b""
        try:
            root = await self._their_node(b"")
            ours = self._local_node(b"")
            s.their_messages, s.our_messages = root.count, ours.count
            if root.hash == ours.hash:
                s.in_sync = True
                return
            s.in_sync = False
            try:
                async with trio.open_nursery() as nursery:
                    for _ in range(FETCH_WORKERS):
                        nursery.start_soon(self._fetch_worker)
                    async with self._missing_send:
                        await self._walk(root)
                        await self._flush()
            except BaseExceptionGroup as group:
                raise _sole_cause(group) from None
            after = self._local_node(b"")
            s.our_messages = after.count
            s.in_sync = after.hash == (await self._their_node(b"")).hash
        except _Bad as e:
            s.last_bad_sync = self._clock()
            raise SyncPeerError(f"peer {self._peer}: {e}", offence=e.offence) from None
        finally:
            await self._streams.aclose()


@dataclass
class SyncStatusBook:
    """Per-peer sync status, for GetSyncStatus and `stateless client sync-status`."""

    peers: dict[str, PeerSyncStatus] = field(default_factory=dict)

    def get(self, peer_id: str) -> PeerSyncStatus:
        """The status record of a peer, created on first use."""
        status = self.peers.get(peer_id)
        if status is None:
            status = self.peers[peer_id] = PeerSyncStatus(peer_id)
        return status

    @property
    def syncing(self) -> bool:
        """Whether any session is running."""
        return any(s.syncing for s in self.peers.values())
