"""The concurrent diff-sync walk (node/sync.py) against a real node served over real libp2p streams.

A node syncs with a plain host that answers from another node's store, so one session is all that runs
(the session a node starts on connect is refused while the server is disarmed) and its counters can be
checked exactly: every id fetched or pushed once, none lost in the batches the walkers share. First, the
pure check behind listing small subtrees: a listing is trusted only if it hashes to the subtree's entry in
its parent node, so `subtree_hash` must agree with the persisted trie for every interior node.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import node.sync
from devnet import FAST_SETTINGS, LocalDevnet, open_devnet, with_settings
from node.runner import NodeHandle
from p2p import (
    MAX_SYNC_FRAME,
    SYNC_PROTOCOL_ID,
    FrameReader,
    HubHost,
    SyncPeerError,
    encode_frame,
    load_or_create_peer_key,
    open_host,
    serve_sync_stream,
)
from p2p._sync_wire import _answer
from protocols import crdt
from protocols.crdt import MemoryKV, add_sync_id, flush_trie, sync_ids_under, trie_node
from protocols.messages import farcaster_now
from protocols.proto import message_pb2 as pb
from protocols.proto import p2p_pb2
from tests import factories as f

FID = 71
#: No periodic sync rounds: the only sessions are the one on connect and the one a test starts.
QUIET = with_settings(FAST_SETTINGS, sync_interval=3600.0)


@pytest.fixture
def key() -> Any:
    return f.new_key()


@pytest.fixture
def genesis(tmp_path: Path, key: Any) -> Path:
    return f.genesis_file(tmp_path / "genesis.json", {FID: key})


def holds(node: NodeHandle, message: pb.Message) -> bool:
    with node.engine.read() as kv:
        return crdt.has_message(kv, message.data.fid, bytes(message.hash))


def root_hash(node: NodeHandle) -> bytes:
    with node.engine.read() as kv:
        return crdt.trie_root(kv).hash


def base_timestamp() -> int:
    """One of the last seconds under the previous 2-byte prefix (65536 s): the timestamps a test uses
    below it share the trie's upper levels in every run (a 3-byte prefix spans 256 s)."""
    return (farcaster_now() // 65536) * 65536 - 10


def casts_at(key: Any, label: str, timestamps: Sequence[int]) -> list[pb.Message]:
    return [f.cast_add(key, FID, f"{label} {i}", timestamp=ts) for i, ts in enumerate(timestamps)]


async def store(node: NodeHandle, messages: Sequence[pb.Message]) -> None:
    results = await node.engine.submit_many(list(messages), origin="sync")
    assert all(isinstance(r, pb.Message) for r in results), [
        r for r in results if not isinstance(r, pb.Message)
    ]


@dataclass
class SyncServer:
    """A plain host serving sync with `handle`; refuses every stream until armed, and counts live ones."""

    host: HubHost
    armed: bool = False
    live: int = 0
    served: int = 0
    all_closed: trio.Event = field(default_factory=trio.Event)

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id

    async def wait_all_closed(self) -> None:
        """Until every stream a session opened has been closed by it (the server sees the end)."""
        if self.live:
            self.all_closed = trio.Event()
            await self.all_closed.wait()


@asynccontextmanager
async def open_sync_server(
    data_dir: Path, handle: Callable[[Any, str], Awaitable[None]]
) -> AsyncIterator[SyncServer]:
    await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
    async with open_host(load_or_create_peer_key(data_dir / "peer.key"), listen_port=0) as host:
        server = SyncServer(host)

        async def on_stream(stream: Any) -> None:
            if not server.armed:
                await stream.reset()
                return
            server.live += 1
            server.served += 1
            try:
                await handle(stream, str(stream.muxed_conn.peer_id))
            finally:
                server.live -= 1
                if not server.live:
                    server.all_closed.set()

        host.libp2p_host.set_stream_handler(SYNC_PROTOCOL_ID, on_stream)
        yield server


async def connect_quietly(net: LocalDevnet, node: NodeHandle, server: SyncServer) -> None:
    """Connect, and wait out the session the node starts on connect (refused: the server is disarmed)."""

    def done() -> bool:
        status = node.network.sync_status.peers.get(server.peer_id)
        return status is not None and status.sessions >= 1 and not status.syncing

    with trio.fail_after(15):
        await server.host.connect(node.host.info.listen_addrs[0])
        await net.wait_until(done)
    server.armed = True


def offences(node: NodeHandle, peer_id: str) -> dict[str, int]:
    for record in node.network.scores.snapshot(time.time()):
        if record.peer_id == peer_id:
            return record.offences
    return {}


# ------------------------------------------------------------------------------------------ subtree_hash

# Few timestamps sharing byte prefixes and few first hash bytes, so ids share buckets and subtrees.
TIMESTAMPS = [0, 0x01020304, 0x01020305, 0x01020404, 0x01030000, 0x7F000000, 0xFFFFFFFF]
sync_ids = st.builds(
    lambda ts, first, rest: ts.to_bytes(4, "big") + bytes([first]) + rest,
    st.sampled_from(TIMESTAMPS),
    st.sampled_from([0, 1, 0x80, 0xFF]),
    st.binary(min_size=28, max_size=28),
)


def store_of(ids: set[bytes]) -> MemoryKV:
    kv = MemoryKV()
    for i in ids:
        add_sync_id(kv, i)
    flush_trie(kv)
    return kv


@settings(max_examples=100, deadline=None)
@given(ids=st.sets(sync_ids, max_size=40))
def test_subtree_hash_matches_the_persisted_trie(ids: set[bytes]) -> None:
    kv = store_of(ids)
    prefixes = {b""} | {i[:n] for i in ids for n in range(1, crdt.LEAF_PREFIX_BYTES)}
    for prefix in prefixes:
        listed = sync_ids_under(kv, prefix, limit=10_000)
        assert crdt.subtree_hash(prefix, listed) == trie_node(kv, prefix).hash, prefix.hex()


def test_a_listing_with_an_id_missing_or_added_does_not_match() -> None:
    rng = random.Random(7)
    ids = {bytes([1, 2, 3, 4, rng.choice([0, 9])]) + rng.randbytes(28) for _ in range(30)}
    kv = store_of(ids)
    prefix = b"\x01\x02"
    listed = sync_ids_under(kv, prefix, limit=10_000)
    claimed = trie_node(kv, prefix).hash
    assert crdt.subtree_hash(prefix, listed) == claimed
    assert crdt.subtree_hash(prefix, listed[1:]) != claimed
    extra = sorted([*listed, b"\x01\x02\x03\x04\x05" + bytes(28)])
    assert crdt.subtree_hash(prefix, extra) != claimed
    assert crdt.subtree_hash(prefix, []) == crdt.EMPTY_HASH
    with pytest.raises(ValueError):
        crdt.subtree_hash(bytes(crdt.LEAF_PREFIX_BYTES), [])


# ------------------------------------------------------------------------------------------ tests


async def test_walkers_ask_about_several_subtrees_at_once(
    tmp_path: Path, genesis: Path, key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Id listings of different subtrees are in flight together: the server answers none of them until
    two are outstanding at once, so a walk asking one at a time would never finish."""
    monkeypatch.setattr(node.sync, "SMALL_SUBTREE", 0)  # descend to the 256-second subtrees, never list
    base = base_timestamp()
    shared = casts_at(key, "shared", [base])
    # Four 256-second subtrees the node holds nothing in, all under the same 2-byte prefix as `shared`.
    theirs = casts_at(key, "theirs", [base - 300 * k for k in range(1, 5)])
    outstanding = 0
    peak = 0
    both_asked = trio.Event()

    async with (
        open_devnet(1, tmp_path / "a", genesis=genesis, settings=QUIET) as net,
        open_devnet(1, tmp_path / "b", genesis=genesis, settings=QUIET) as source_net,
    ):
        a, source = net[0], source_net[0]
        await store(a, shared)
        await store(source, shared + theirs)

        async def gated(stream: Any, peer_id: str) -> None:
            nonlocal outstanding, peak
            reader = FrameReader(stream, max_size=MAX_SYNC_FRAME)
            with suppress(Exception):  # the session closing its streams ends these loops
                while (frame := await reader.read()) is not None:
                    request = p2p_pb2.SyncRequest.FromString(frame)
                    if request.WhichOneof("kind") == "sync_ids":
                        outstanding += 1
                        peak = max(peak, outstanding)
                        if outstanding >= 2:
                            both_asked.set()
                        await both_asked.wait()
                        outstanding -= 1
                    response = await _answer(source.network, peer_id, request)
                    await stream.write(encode_frame(response.SerializeToString()))

        async with open_sync_server(tmp_path / "server", gated) as server:
            await connect_quietly(net, a, server)
            with trio.fail_after(10):
                status = await a.network.sync_now(server.peer_id)
                await server.wait_all_closed()

        assert both_asked.is_set() and peak >= 2
        assert status.in_sync and status.fetched == len(theirs) and status.pushed == 0
        assert all(holds(a, m) for m in theirs)
        assert server.served <= node.sync.SESSION_STREAMS
        assert status.divergence_prefix == crdt.sync_id_of(theirs[-1])[:3]  # the earliest difference


@pytest.mark.parametrize(
    ("small_subtree", "work_queue"),
    [
        pytest.param(node.sync.SMALL_SUBTREE, node.sync.WORK_QUEUE, id="defaults"),
        pytest.param(0, node.sync.WORK_QUEUE, id="descend-to-leaves"),
        pytest.param(0, 0, id="descend-queue-full"),
    ],
)
async def test_a_divergence_across_many_subtrees_converges_in_one_session(
    tmp_path: Path,
    genesis: Path,
    key: Any,
    monkeypatch: pytest.MonkeyPatch,
    small_subtree: int,
    work_queue: int,
) -> None:
    """Hundreds of seconds over about nine 256-second subtrees differ both ways, some in the same second:
    one session fetches and pushes each missing message exactly once and leaves both sides equal."""
    monkeypatch.setattr(node.sync, "SMALL_SUBTREE", small_subtree)
    monkeypatch.setattr(node.sync, "WORK_QUEUE", work_queue)
    base = base_timestamp()
    shared = casts_at(key, "shared", [base - 7 * i - 5 for i in range(40)])
    ours = casts_at(key, "ours", [base - 7 * i for i in range(300)])
    # Mostly seconds of their own, and every fifth second of ours. Neither 341 nor 300 is a multiple of the
    # batch size, so the last ids to fetch and to push only go out with the flush after the walk.
    theirs = casts_at(
        key, "theirs", [base - 7 * i - 3 for i in range(281)] + [base - 7 * i for i in range(0, 300, 5)]
    )

    async with (
        open_devnet(1, tmp_path / "a", genesis=genesis, settings=QUIET) as net,
        open_devnet(1, tmp_path / "b", genesis=genesis, settings=QUIET) as source_net,
    ):
        a, source = net[0], source_net[0]
        await store(a, shared + ours)
        await store(source, shared + theirs)
        active: dict[str, int] = {}

        async def honest(stream: Any, peer_id: str) -> None:
            await serve_sync_stream(stream, source.network, active)

        async with open_sync_server(tmp_path / "server", honest) as server:
            await connect_quietly(net, a, server)
            with trio.fail_after(30):
                status = await a.network.sync_now(server.peer_id)
                await server.wait_all_closed()

        assert status.in_sync and not status.last_error
        assert (status.fetched, status.merged, status.pushed) == (len(theirs), len(theirs), len(ours))
        assert root_hash(a) == root_hash(source)
        assert all(holds(a, m) for m in theirs) and all(holds(source, m) for m in ours)
        assert offences(a, server.peer_id) == {}


@pytest.mark.parametrize("small_subtree", [node.sync.SMALL_SUBTREE, 0], ids=["defaults", "descend-to-leaves"])
async def test_a_lie_met_by_one_walker_ends_the_session_once(
    tmp_path: Path, genesis: Path, key: Any, monkeypatch: pytest.MonkeyPatch, small_subtree: int
) -> None:
    """Every id listing short of one id (a leaf bucket's with its true hash): a small subtree's listing
    does not hash to what the trie claimed, so the walk descends to the leaf buckets, where the lie is
    provable. Walkers meet it in several subtrees at once; the session ends with one bad_sync_answer and
    closes all its streams."""
    monkeypatch.setattr(node.sync, "SMALL_SUBTREE", small_subtree)
    base = base_timestamp()
    # Seconds in many subtrees where both sides hold a cast and they hold one more: one bucket of each
    # second differs, so the walk lists leaf buckets (which come with their hash) one at a time.
    seconds = [base - 300 * k for k in range(8)]
    shared = casts_at(key, "shared", seconds)
    theirs = casts_at(key, "theirs", seconds)

    class DropsOneId:
        def __init__(self, honest: Any) -> None:
            self._honest = honest

        def __getattr__(self, name: str) -> Any:
            return getattr(self._honest, name)

        def sync_ids(self, prefix: bytes, after: bytes | None, limit: int) -> p2p_pb2.SyncIdsAnswer:
            answer: p2p_pb2.SyncIdsAnswer = self._honest.sync_ids(prefix, after, limit)
            if answer.sync_ids:
                del answer.sync_ids[0]
            return answer

        def penalise(self, peer_id: str, offence: str) -> None:
            pass

    async with (
        open_devnet(1, tmp_path / "a", genesis=genesis, settings=QUIET) as net,
        open_devnet(1, tmp_path / "b", genesis=genesis, settings=QUIET) as source_net,
    ):
        a, source = net[0], source_net[0]
        await store(a, shared)
        await store(source, shared + theirs)
        liar = DropsOneId(source.network)
        active: dict[str, int] = {}

        async def lying(stream: Any, peer_id: str) -> None:
            await serve_sync_stream(stream, liar, active)

        async with open_sync_server(tmp_path / "server", lying) as server:
            await connect_quietly(net, a, server)
            with trio.fail_after(15):
                with pytest.raises(SyncPeerError) as failure:
                    await a.network.sync_now(server.peer_id)
                await server.wait_all_closed()

        assert failure.value.offence == "bad_sync_answer"
        assert "bucket" in failure.value.message
        assert offences(a, server.peer_id) == {"bad_sync_answer": 1}
        assert a.network.sync_status.peers[server.peer_id].last_bad_sync > 0
