"""Diff sync: find what we and a peer hold differently by walking both sync tries, then exchange it.

A session with one peer compares trie nodes from the root down, descending only into children whose
hashes differ. Where the peer has a bucket we lack (or our bucket differs), we page through its sync ids
and fetch the messages we miss; where we hold ids it lacks, we push those messages to it. So one session
leaves both sides with the union, not only the side that asked (both nodes also run their own sessions).

Nothing a peer says is trusted: every trie node must hash to what it claims (else the peer is penalised
for a lying answer), returned messages must be the ones asked for, and every message goes through the
same validation as one submitted over RPC (a bad one costs the peer score).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
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
#: Requests for messages in flight at once within one session (each on its own stream).
FETCH_WORKERS: Final = 2
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


class SyncSession:
    """One diff-sync session with one peer over `FETCH_WORKERS + 1` streams."""

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
        self._host = host
        self._peer = peer_id
        self._status = status
        self._penalise = penalise
        self._clock = clock
        self._missing_send, self._missing_recv = trio.open_memory_channel[list[bytes]](FETCH_WORKERS * 2)
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

    async def _their_node(self, client: SyncClient, prefix: bytes) -> crdt.TrieNode:
        node = _answer_node(await client.trie_node(prefix))
        if node.prefix != prefix:
            raise _Bad("bad_sync_answer", f"asked for node {prefix.hex()}, got {node.prefix.hex()}")
        if len(prefix) < crdt.LEAF_PREFIX_BYTES:
            problem = crdt.check_interior_node(node)
            if problem is not None:
                raise _Bad("bad_sync_answer", f"trie node {prefix.hex() or 'root'}: {problem}")
        return node

    async def _their_id_pages(
        self, client: SyncClient, prefix: bytes, claimed: int
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

    async def _their_ids(self, client: SyncClient, prefix: bytes, claimed: int) -> list[bytes]:
        out: list[bytes] = []
        async for ids, _ in self._their_id_pages(client, prefix, claimed):
            out.extend(ids)
        return out

    async def _reconcile_leaf(self, client: SyncClient, prefix: bytes, theirs: crdt.TrieChild | None) -> None:
        their_ids: list[bytes] = []
        if theirs is not None:
            answers: list[p2p_pb2.SyncIdsAnswer] = []
            async for ids, answer in self._their_id_pages(client, prefix, theirs.count):
                their_ids.extend(ids)
                answers.append(answer)
            if len(answers) == 1 and answers[0].bucket_hash:
                # The bucket's count and hash came with the ids, from one snapshot: if they disagree the
                # peer is provably lying (a stale parent entry, by contrast, only means it took writes).
                first = answers[0]
                problem = crdt.check_leaf_ids(prefix, first.bucket_count, bytes(first.bucket_hash), their_ids)
                if problem is not None:
                    raise _Bad("bad_sync_answer", f"bucket {prefix.hex()}: {problem}")
        ours = set(self._local_ids(prefix))
        theirs_set = set(their_ids)
        missing = sorted(theirs_set - ours)
        extra = sorted(ours - theirs_set)
        await self._want(missing)
        await self._offer(client, extra)
        if missing or extra:
            self._status.divergence_prefix = self._status.divergence_prefix or prefix

    async def _want(self, ids: list[bytes]) -> None:
        """Queue ids to fetch; they go to the fetch workers in full batches (one request each)."""
        self._missing_buf.extend(ids)
        while len(self._missing_buf) >= MESSAGE_BATCH:
            batch, self._missing_buf = self._missing_buf[:MESSAGE_BATCH], self._missing_buf[MESSAGE_BATCH:]
            await self._missing_send.send(batch)

    async def _offer(self, client: SyncClient, ids: list[bytes]) -> None:
        """Queue ids to push; pushed in full batches (many small buckets would otherwise cost a trip each)."""
        self._extra_buf.extend(ids)
        if len(self._extra_buf) >= MESSAGE_BATCH:
            batch, self._extra_buf = self._extra_buf, []
            await self._push(client, batch)

    async def _flush(self, client: SyncClient) -> None:
        if self._missing_buf:
            batch, self._missing_buf = self._missing_buf, []
            await self._missing_send.send(batch)
        if self._extra_buf:
            batch, self._extra_buf = self._extra_buf, []
            await self._push(client, batch)

    async def _push(self, client: SyncClient, ids: list[bytes]) -> None:
        for i in range(0, len(ids), MESSAGE_BATCH):
            chunk = ids[i : i + MESSAGE_BATCH]
            with self._engine.read() as kv:
                raws = [
                    m.SerializeToString() for sid in chunk if (m := crdt.load_by_sync_id(kv, sid)) is not None
                ]
            if raws:
                answer = await client.push(raws)
                self._status.pushed += answer.merged
                self._status.total_pushed += answer.merged
            self._progress()

    async def _walk(self, client: SyncClient, node: crdt.TrieNode) -> None:
        """Descend from one of their interior nodes into every child whose hash differs from ours."""
        mine = {c.byte: c for c in self._local_node(node.prefix).children}
        theirs = {c.byte: c for c in node.children}
        differing = [
            b
            for b in mine.keys() | theirs.keys()
            if b not in mine or b not in theirs or mine[b].hash != theirs[b].hash
        ]
        if len(node.prefix) == crdt.LEAF_PREFIX_BYTES - 1 and len(differing) > 1:
            # One second of activity spread over many buckets: list the whole second in one paged answer
            # instead of a round trip per bucket (after a partition, that is most of the difference).
            their_ids = await self._their_ids(client, node.prefix, node.count)
            ours = set(self._local_ids(node.prefix))
            theirs_set = set(their_ids)
            await self._want(sorted(theirs_set - ours))
            await self._offer(client, sorted(ours - theirs_set))
            self._status.divergence_prefix = self._status.divergence_prefix or node.prefix
            return
        for byte in sorted(mine.keys() | theirs.keys()):
            t, m = theirs.get(byte), mine.get(byte)
            if t is not None and m is not None and t.hash == m.hash:
                continue
            child_prefix = node.prefix + bytes([byte])
            if t is None:
                await self._offer(client, self._local_ids(child_prefix))
            elif len(child_prefix) == crdt.LEAF_PREFIX_BYTES:
                await self._reconcile_leaf(client, child_prefix, t)
            elif m is None:
                # We hold nothing here: skip the descent and fetch their ids as they are listed.
                async for ids, _ in self._their_id_pages(client, child_prefix, t.count):
                    await self._want(ids)
                self._status.divergence_prefix = self._status.divergence_prefix or child_prefix
            else:
                child = await self._their_node(client, child_prefix)
                if child.hash != t.hash:
                    log.debug("peer %s: node %s changed during the walk", self._peer, child_prefix.hex())
                await self._walk(client, child)

    async def _fetch_worker(self) -> None:
        client = await SyncClient.open(self._host, self._peer)
        try:
            async for ids in self._missing_recv:
                wanted = set(ids)
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
        finally:
            await client.close()

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
        client = await SyncClient.open(self._host, self._peer)
        try:
            root = await self._their_node(client, b"")
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
                        await self._walk(client, root)
                        await self._flush(client)
            except BaseExceptionGroup as group:
                raise _sole_cause(group) from None
            after = self._local_node(b"")
            s.our_messages = after.count
            s.in_sync = after.hash == (await self._their_node(client, b"")).hash
        except _Bad as e:
            s.last_bad_sync = self._clock()
            raise SyncPeerError(f"peer {self._peer}: {e}", offence=e.offence) from None
        finally:
            await client.close()


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
