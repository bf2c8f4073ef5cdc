"""Fetching blobs between real libp2p hosts on 127.0.0.1: several providers, liars, resume, DHT, bad DAGs.

Each peer is a HubHost with a BlobStore in its own tmp dir. Honest peers run the real exchange
(node.blobs.open_block_exchange); liars are small block servers written here that speak the wire format
but corrupt, truncate, withhold or never send blocks, or break the framing. What must hold: a fetch
completes and verifies as long as one honest provider serves it, each liar is charged exactly the offence
it committed (protocols.peers.PENALTIES) while withholders cost nothing, and a bad DAG or a lone liar
ends the fetch with a clear HubError and leaves nothing behind once GC has run.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID

from node.blobs import (
    BlobFetcher,
    BlobStore,
    BlockExchange,
    FetchProgress,
    ProviderFinder,
    open_block_exchange,
)
from p2p import (
    BLOCKS_PROTOCOL_ID,
    MAX_BLOCK_FRAME,
    BlockClient,
    BlockPeerError,
    FrameReader,
    HubHost,
    encode_frame,
    load_or_create_peer_key,
    open_host,
)
from p2p._blocks_wire import MAX_BLOCK_REQUEST_FRAME, MAX_STREAMS_PER_PEER
from protocols.blobs import (
    CODEC_DAG_PB,
    MAX_BLOCK_BYTES,
    MAX_FANOUT,
    Block,
    Cid,
    DagBuilder,
    DagLink,
    DagNode,
    block_cid,
    encode_dag_node,
)
from protocols.errors import HubError
from protocols.proto import p2p_pb2

#: Generous bound on anything that takes milliseconds on loopback.
WAIT = 30.0
#: Small chunks and nodes give DAGs of many blocks (and three levels) from little data.
SMALL = {"chunk_size": 4096, "max_links": 8}


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def build(data: bytes, **layout: Any) -> tuple[Cid, dict[Cid, bytes]]:
    builder = DagBuilder(**layout)
    blocks = builder.feed(data)
    root, rest = builder.finish()
    return root, {b.cid: b.data for b in blocks + rest}


def put(store: BlobStore, root: Cid, blocks: dict[Cid, bytes]) -> None:
    session = store.open_blob(None, pin=True)
    store.put_blocks([Block(c, d) for c, d in blocks.items()], session=session)
    assert store.commit_blob(session, root).complete


def read_all(store: BlobStore, root: Cid) -> bytes:
    return b"".join(store.read(root))


def assert_nothing_kept(store: BlobStore, root: Cid) -> None:
    """After a failed fetch: no complete blob, and GC leaves no block behind."""
    info = store.stat(root)
    assert info is None or not info.complete
    store.gc()
    assert store.stat(root) is None
    assert store.usage().blocks == 0


@dataclass
class Peer:
    name: str
    host: HubHost
    store: BlobStore
    penalties: list[tuple[str, str]] = field(default_factory=list)
    exchange: BlockExchange | None = None

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id

    @property
    def addr(self) -> str:
        return self.host.info.listen_addrs[0]

    def penalise(self, peer_id: str, offence: str) -> None:
        self.penalties.append((peer_id, offence))

    def fetcher(self, providers: Any = None, **options: Any) -> BlobFetcher:
        finder = providers if providers is not None else ProviderFinder(self.host, penalise=self.penalise)
        return BlobFetcher(self.store, self.host, finder, self.penalise, **options)


@asynccontextmanager
async def open_peer(
    tmp_path: Path, name: str, *, exchange: bool = True, dht: bool = False, **options: Any
) -> AsyncIterator[Peer]:
    """A host and a store; with `exchange`, the node's real block exchange (serving and fetching)."""
    home = tmp_path / name
    home.mkdir()
    store = BlobStore(home / "blobs.lmdb")
    try:
        async with open_host(load_or_create_peer_key(home / "peer.key"), listen_port=0) as host:
            peer = Peer(name, host, store)
            if not exchange:
                yield peer
                return
            async with open_block_exchange(
                host, store, penalise=peer.penalise, dht=dht, reannounce_interval=0, **options
            ) as ex:
                peer.exchange = ex
                yield peer
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ liars


class LyingServer:
    """A block server for a fixed set of blocks that lies in one way (`lie`), after `honest` blocks.

    It always answers `have` truthfully, so connected-peer discovery lists it as a provider.
    """

    def __init__(self, blocks: dict[Cid, bytes], lie: str, *, honest: int = 0) -> None:
        self.blocks = blocks
        self.lie = lie
        self.honest = honest
        self.asked: list[Cid] = []
        self.served: list[Cid] = []

    def answer(self, want: list[bytes]) -> bytes | None:
        cids = [Cid.from_bytes(raw) for raw in want]
        self.asked += cids
        response = p2p_pb2.BlockResponse()
        lie = self.lie
        if len(self.served) < self.honest:
            lie = "none"
        if lie == "silent":
            return None
        if lie == "oversized_frame":
            return _uvarint(MAX_BLOCK_FRAME + 1)
        if lie == "garbage":
            return encode_frame(b"\xff\xff\xff")
        for raw, cid in zip(want, cids, strict=True):
            data = self.blocks.get(cid)
            if data is None or lie in ("withhold", "stop"):
                response.dont_have.append(raw)
                continue
            if lie == "corrupt":
                data = bytes([data[0] ^ 1]) + data[1:]
            elif lie == "truncate":
                data = data[: len(data) // 2]
            elif lie == "oversized_block":
                data = b"\0" * (MAX_BLOCK_BYTES + 1)
            else:
                self.served.append(cid)
            response.blocks.append(p2p_pb2.BlockEntry(cid=raw, data=data))
        if lie == "unasked":
            extra = block_cid(b"not asked for", 0x55, 0x12)
            response.blocks.append(p2p_pb2.BlockEntry(cid=extra.to_bytes(), data=b"not asked for"))
        return encode_frame(response.SerializeToString())

    async def handle(self, stream: Any) -> None:
        reader = FrameReader(stream, max_size=MAX_BLOCK_REQUEST_FRAME)
        try:
            while (frame := await reader.read()) is not None:
                request = p2p_pb2.BlockRequest.FromString(frame)
                if request.have:
                    held = [raw for raw in request.have if Cid.from_bytes(raw) in self.blocks]
                    await stream.write(encode_frame(p2p_pb2.BlockResponse(have=held).SerializeToString()))
                    continue
                out = self.answer(list(request.want))
                if out is not None:
                    await stream.write(out)
        except Exception:
            pass  # the fetcher hung up on us


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@asynccontextmanager
async def open_liar(tmp_path: Path, name: str, server: LyingServer) -> AsyncIterator[Peer]:
    async with open_peer(tmp_path, name, exchange=False) as peer:
        peer.host.libp2p_host.set_stream_handler(BLOCKS_PROTOCOL_ID, server.handle)
        yield peer


class Providers:
    """A fixed provider list (the fetcher's discovery, made deterministic for a test)."""

    def __init__(self, peers: Sequence[str]) -> None:
        self.peers = list(peers)

    async def find(self, root: Cid, *, limit: int) -> list[str]:
        return self.peers[:limit]


async def connect(peer: Peer, *others: Peer) -> None:
    for other in others:
        await peer.host.connect(other.addr)


# ------------------------------------------------------------------------------------------ tests


async def test_fetch_across_three_nodes(tmp_path: Path) -> None:
    data = payload(600_000, seed=1)
    root, blocks = build(data, **SMALL)
    with trio.fail_after(WAIT):
        async with open_peer(tmp_path, "a") as a, open_peer(tmp_path, "b") as b:
            put(a.store, root, blocks)
            await connect(b, a)
            assert b.exchange is not None and a.exchange is not None
            seen: list[FetchProgress] = []
            info = await b.exchange.fetch(root, progress=seen.append)
            assert info.complete and info.size == len(data) and info.blocks_total == len(blocks)
            assert read_all(b.store, root) == data
            assert a.exchange.served_blocks == len(blocks)
            last = seen[-1]
            assert (last.size, last.blocks_done, last.blocks_total) == (len(data), len(blocks), len(blocks))
            assert last.bytes_done == last.bytes_total == sum(len(d) for d in blocks.values())
            assert last.bytes_fetched == last.bytes_done and last.rate > 0 and last.providers == 1
            assert [p.bytes_done for p in seen] == sorted(p.bytes_done for p in seen)

            # C fetches from both A and B: different blocks from each, every block exactly once.
            async with open_peer(tmp_path, "c") as c:
                await connect(c, a, b)
                assert c.exchange is not None
                before = a.exchange.served_blocks + b.exchange.served_blocks
                info = await c.exchange.fetch(root, pin=True)
                assert info.complete and info.pinned and read_all(c.store, root) == data
                from_a = a.exchange.served_blocks - len(blocks)
                from_b = b.exchange.served_blocks
                assert from_a > 0 and from_b > 0
                assert a.exchange.served_blocks + b.exchange.served_blocks - before == len(blocks)
                assert not (a.penalties or b.penalties or c.penalties)

        # A is gone: D fetches from B alone.
        async with open_peer(tmp_path, "b2") as b2, open_peer(tmp_path, "d") as d:
            put(b2.store, root, blocks)
            await connect(d, b2)
            assert d.exchange is not None
            assert (await d.exchange.fetch(root)).complete
            assert read_all(d.store, root) == data


async def test_fetch_of_full_size_chunks(tmp_path: Path) -> None:
    data = payload(3 * 262_144 + 12_345, seed=2)  # four 256 KiB-chunk leaves under one root
    root, blocks = build(data)
    with trio.fail_after(WAIT):
        async with open_peer(tmp_path, "a") as a, open_peer(tmp_path, "b") as b:
            put(a.store, root, blocks)
            await connect(b, a)
            assert b.exchange is not None
            assert (await b.exchange.fetch(root)).complete
            assert read_all(b.store, root) == data
            # A blob already complete is not fetched again.
            assert (await b.exchange.fetch(root)).complete


async def test_one_honest_provider_among_liars(tmp_path: Path) -> None:
    """Of 4 providers, 3 serve corrupted, truncated or no blocks; the honest one completes the fetch."""
    data = payload(400_000, seed=3)
    root, blocks = build(data, **SMALL)
    corrupt = LyingServer(blocks, "corrupt")
    truncate = LyingServer(blocks, "truncate")
    withhold = LyingServer(blocks, "withhold")
    with trio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            honest = await stack.enter_async_context(open_peer(tmp_path, "honest"))
            liars = [
                await stack.enter_async_context(open_liar(tmp_path, name, server))
                for name, server in (("corrupt", corrupt), ("truncate", truncate), ("withhold", withhold))
            ]
            me = await stack.enter_async_context(open_peer(tmp_path, "me"))
            put(honest.store, root, blocks)
            await connect(me, *liars, honest)
            # Real discovery: every provider says it has the root.
            assert me.exchange is not None
            found = await me.exchange.finder.find(root, limit=8)
            assert sorted(found) == sorted(p.peer_id for p in [*liars, honest])
            # Liars first in line, so each of them is certainly asked.
            fetcher = me.fetcher(Providers([p.peer_id for p in liars] + [honest.peer_id]))
            info = await fetcher.fetch(root)
            assert info.complete and read_all(me.store, root) == data
            assert corrupt.asked and truncate.asked and withhold.asked
            assert sorted(me.penalties) == sorted(
                [(liars[0].peer_id, "invalid_message"), (liars[1].peer_id, "invalid_message")]
            )
            assert not honest.penalties


async def test_silent_provider_is_routed_around(tmp_path: Path) -> None:
    data = payload(100_000, seed=4)
    root, blocks = build(data, **SMALL)
    silent = LyingServer(blocks, "silent")
    with trio.fail_after(WAIT):
        async with (
            open_liar(tmp_path, "silent", silent) as quiet,
            open_peer(tmp_path, "honest") as honest,
            open_peer(tmp_path, "me") as me,
        ):
            put(honest.store, root, blocks)
            await connect(me, quiet, honest)
            fetcher = me.fetcher(Providers([quiet.peer_id, honest.peer_id]), request_timeout=0.5)
            assert (await fetcher.fetch(root)).complete
            assert read_all(me.store, root) == data
            assert silent.asked and not me.penalties


@pytest.mark.parametrize(
    ("lie", "offence"),
    [
        ("corrupt", "invalid_message"),
        ("truncate", "invalid_message"),
        ("unasked", "bad_sync_answer"),
        ("oversized_block", "oversized_frame"),
        ("oversized_frame", "oversized_frame"),
        ("garbage", "malformed_frame"),
    ],
)
async def test_a_lone_liar_fails_the_fetch_and_pays(tmp_path: Path, lie: str, offence: str) -> None:
    root, blocks = build(payload(50_000, seed=5), **SMALL)
    server = LyingServer(blocks, lie)
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "liar", server) as liar, open_peer(tmp_path, "me") as me:
            await connect(me, liar)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "unavailable.not_found_on_network"
            assert err.value.message.startswith(f"cannot fetch 1 blocks of {root}: no provider has them")
            assert me.penalties == [(liar.peer_id, offence)]
            assert_nothing_kept(me.store, root)


async def test_no_provider_at_all(tmp_path: Path) -> None:
    root, _ = build(payload(10_000, seed=6), **SMALL)
    with trio.fail_after(WAIT):
        async with open_peer(tmp_path, "me") as me:
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "unavailable.not_found_on_network"
            assert "cannot fetch 1 blocks of" in err.value.message
            assert_nothing_kept(me.store, root)


async def test_resume_fetches_only_missing_blocks(tmp_path: Path) -> None:
    data = payload(300_000, seed=7)
    root, blocks = build(data, **SMALL)
    quitter = LyingServer(blocks, "stop", honest=30)
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "quitter", quitter) as q, open_peer(tmp_path, "me") as me:
            await connect(me, q)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            stored = [cid for cid in blocks if me.store.has_block(cid)]
            missing = len(blocks) - len(stored)
            assert len(stored) >= 30 and missing > 0
            assert err.value.code == "unavailable.not_found_on_network"
            assert err.value.message.startswith(f"cannot fetch {missing} blocks of {root}")
            assert not me.penalties  # running out of blocks is not a lie

            honest_server = LyingServer(blocks, "none")
            async with open_liar(tmp_path, "honest", honest_server) as honest:
                await connect(me, honest)
                seen: list[FetchProgress] = []
                info = await me.exchange.fetch(root, progress=seen.append)
                assert info.complete and read_all(me.store, root) == data
                assert sorted(map(str, honest_server.asked)) == sorted(
                    str(c) for c in blocks if c not in stored
                )
                assert seen[-1].bytes_fetched < seen[-1].bytes_done


async def test_a_cancelled_fetch_resumes(tmp_path: Path) -> None:
    data = payload(300_000, seed=14)
    root, blocks = build(data, **SMALL)
    server = LyingServer(blocks, "none")
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "honest", server) as honest, open_peer(tmp_path, "me") as me:
            await connect(me, honest)
            assert me.exchange is not None
            with trio.CancelScope() as scope:

                def stop_after_first_write(_: FetchProgress) -> None:
                    scope.cancel()

                await me.exchange.fetch(root, progress=stop_after_first_write)
            assert scope.cancelled_caught
            stored = {cid for cid in blocks if me.store.has_block(cid)}
            assert 0 < len(stored) < len(blocks)
            first = list(server.asked)
            server.asked.clear()
            assert (await me.exchange.fetch(root)).complete
            assert read_all(me.store, root) == data
            assert not stored & set(server.asked)
            assert set(server.asked) | stored == set(blocks)
            assert len(first) >= len(stored)


async def test_dht_finds_a_provider_we_are_not_connected_to(tmp_path: Path) -> None:
    data = payload(200_000, seed=8)
    root, blocks = build(data, **SMALL)
    with trio.fail_after(WAIT):
        async with (
            open_peer(tmp_path, "provider", dht=True) as a,
            open_peer(tmp_path, "middle", dht=True) as b,
            open_peer(tmp_path, "fetcher", dht=True) as c,
        ):
            assert a.exchange is not None and c.exchange is not None
            assert a.exchange.dht is not None and c.exchange.dht is not None
            put(a.store, root, blocks)
            await connect(a, b)
            await connect(c, b)
            assert await a.exchange.announce_all() == 1  # what the periodic re-announcement does
            a.exchange.announce(root)
            await a.exchange.wait_announced()
            assert a.exchange.announced == 1
            assert a.peer_id not in c.host.connected_peers()
            assert await c.exchange.finder.ask_connected(root) == []  # B does not have it
            info = await c.exchange.fetch(root)
            assert info.complete and read_all(c.store, root) == data
            assert a.peer_id in c.host.connected_peers()
            # Fetching announced C as a provider too.
            await c.exchange.wait_announced()
            assert c.exchange.announced == 1


class BrokenDht:
    """A DHT whose every call fails: fetches must not notice."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"DHT is broken ({name})")


async def test_a_failing_dht_never_fails_a_fetch(tmp_path: Path) -> None:
    data = payload(50_000, seed=9)
    root, blocks = build(data, **SMALL)
    with trio.fail_after(WAIT):
        async with open_peer(tmp_path, "a") as a, open_peer(tmp_path, "me") as me:
            put(a.store, root, blocks)
            await connect(me, a)
            assert me.exchange is not None
            me.exchange.finder.dht = BrokenDht()  # type: ignore[assignment]
            assert await me.exchange.finder.provide(root) is False
            assert (await me.exchange.fetch(root)).complete


async def test_absurd_fanout_is_refused(tmp_path: Path) -> None:
    leaf = b"x" * 10
    leaf_cid = block_cid(leaf, 0x55, 0x12)
    n = MAX_FANOUT + 1
    node = DagNode(
        tuple(DagLink(leaf_cid, len(leaf)) for _ in range(n)), n * len(leaf), (len(leaf),) * n, b""
    )
    data = encode_dag_node(node)
    root = block_cid(data, CODEC_DAG_PB, 0x12)
    server = LyingServer({root: data, leaf_cid: leaf}, "none")
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "author", server) as author, open_peer(tmp_path, "me") as me:
            await connect(me, author)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "bad_request.invalid_param"
            assert f"more than {MAX_FANOUT} links" in err.value.message
            assert not me.penalties  # the provider sent what was asked; the DAG's author is at fault
            assert not me.store.has_block(root)
            assert_nothing_kept(me.store, root)


def chain(depth: int) -> tuple[Cid, dict[Cid, bytes]]:
    """A DAG that is a single path of `depth` dag-pb nodes over one leaf (valid hashes throughout)."""
    leaf = b"deep"
    cid = block_cid(leaf, 0x55, 0x12)
    blocks = {cid: leaf}
    tsize = len(leaf)
    for _ in range(depth):
        data = encode_dag_node(DagNode((DagLink(cid, tsize),), len(leaf), (len(leaf),), b""))
        cid = block_cid(data, CODEC_DAG_PB, 0x12)
        blocks[cid] = data
        tsize += len(data)
    return cid, blocks


async def test_a_dag_deeper_than_32_levels_is_refused(tmp_path: Path) -> None:
    root, blocks = chain(33)  # its leaf is 33 links below the root
    server = LyingServer(blocks, "none")
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "author", server) as author, open_peer(tmp_path, "me") as me:
            await connect(me, author)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "bad_request.invalid_param"
            assert "deeper than 32 levels" in err.value.message
            assert not me.penalties
            assert len(server.asked) <= 33
            assert_nothing_kept(me.store, root)

        # A leaf 32 links below the root is fine (and readable: iter_file_blocks has the same limit).
        root, blocks = chain(32)
        async with (
            open_liar(tmp_path, "author2", LyingServer(blocks, "none")) as author,
            open_peer(tmp_path, "me2") as me,
        ):
            await connect(me, author)
            assert me.exchange is not None
            assert (await me.exchange.fetch(root)).complete
            assert read_all(me.store, root) == b"deep"


async def test_a_node_that_links_to_itself(tmp_path: Path) -> None:
    """A cycle cannot hash right: a node claiming to link to its own CID is a lie about that CID."""
    root, blocks = build(payload(20_000, seed=10), **SMALL)
    selfish = encode_dag_node(DagNode((DagLink(root, 1),), 1, (1,), b""))
    server = LyingServer({**blocks, root: selfish}, "none")
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "cycler", server) as cycler, open_peer(tmp_path, "me") as me:
            await connect(me, cycler)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "unavailable.not_found_on_network"
            assert me.penalties == [(cycler.peer_id, "invalid_message")]
            assert_nothing_kept(me.store, root)


async def test_block_server_rejects_bad_requests(tmp_path: Path) -> None:
    root, blocks = build(payload(20_000, seed=11), **SMALL)
    with trio.fail_after(WAIT):
        async with (
            open_peer(tmp_path, "server") as server,
            open_peer(tmp_path, "client", exchange=False) as client,
        ):
            put(server.store, root, blocks)
            await connect(client, server)

            async def raw_request(payload: bytes) -> bytes | None:
                stream = await client.host.libp2p_host.new_stream(
                    ID.from_base58(server.peer_id), [BLOCKS_PROTOCOL_ID]
                )
                await stream.write(payload)
                reader = FrameReader(stream, max_size=MAX_BLOCK_FRAME)
                try:
                    return await reader.read()
                except Exception:
                    return None

            # Each is answered by the server closing the stream (after charging us).
            too_many = p2p_pb2.BlockRequest(want=[c.to_bytes() for c in list(blocks)[:5]])
            assert await raw_request(encode_frame(too_many.SerializeToString())) is None
            assert await raw_request(encode_frame(b"\xff\xff\xff")) is None
            assert await raw_request(_uvarint(MAX_BLOCK_REQUEST_FRAME + 1)) is None
            assert server.penalties == [
                (client.peer_id, "oversized_frame"),
                (client.peer_id, "malformed_frame"),
                (client.peer_id, "oversized_frame"),
            ]

            # At most MAX_STREAMS_PER_PEER streams per peer: the next one is reset.
            clients = [
                await BlockClient.open(client.host, server.peer_id) for _ in range(MAX_STREAMS_PER_PEER)
            ]
            for c in clients:
                assert await c.have([root]) == [root]
            with pytest.raises(BlockPeerError):  # the reset may come before or after negotiation ends
                extra = await BlockClient.open(client.host, server.peer_id)
                await extra.have([root])

            # An honest exchange, pipelined on one stream: have, want, dont_have for what it lacks.
            unknown = block_cid(b"nobody has this", 0x55, 0x12)
            leaves = [c for c in blocks if c.codec != CODEC_DAG_PB][:8]
            async with trio.open_nursery() as nursery:
                results: dict[int, Any] = {}

                async def ask(i: int, cids: list[Cid]) -> None:
                    results[i] = await clients[0].want(cids)

                nursery.start_soon(ask, 0, leaves[:4])
                nursery.start_soon(ask, 1, leaves[4:])
                results[2] = await clients[0].have([root, unknown])
            assert results[0] == ({c: blocks[c] for c in leaves[:4]}, [])
            assert results[1] == ({c: blocks[c] for c in leaves[4:]}, [])
            assert results[2] == [root]
            got, lacking = await clients[0].want([root, unknown])
            assert got == {root: blocks[root]} and lacking == [unknown]
            assert not client.penalties and server.penalties[3:] == []
            for c in clients:
                await c.close()


async def test_repeated_chunks_single_block_blobs_and_a_tiny_buffer(tmp_path: Path) -> None:
    zeros = bytes(300_000)  # every leaf (and most nodes) the same block: fetched once each
    zeros_root, zeros_blocks = build(zeros, **SMALL)
    tiny_root, tiny_blocks = build(b"hello, blob")  # a single raw block is its own root
    mixed = payload(100_000, seed=12)
    mixed_root, mixed_blocks = build(mixed, **SMALL)
    assert tiny_root.codec != CODEC_DAG_PB and len(zeros_blocks) < 10
    with trio.fail_after(WAIT):
        async with open_peer(tmp_path, "a") as a, open_peer(tmp_path, "me") as me:
            for root, blocks in (
                (zeros_root, zeros_blocks),
                (tiny_root, tiny_blocks),
                (mixed_root, mixed_blocks),
            ):
                put(a.store, root, blocks)
            await connect(me, a)
            assert me.exchange is not None
            assert (await me.exchange.fetch(zeros_root)).complete
            assert read_all(me.store, zeros_root) == zeros
            info = await me.exchange.fetch(tiny_root)
            assert info.complete and info.size == len(b"hello, blob")
            assert read_all(me.store, tiny_root) == b"hello, blob"
            # A budget smaller than one request: one request at a time, still no deadlock.
            fetcher = me.fetcher(max_buffered_bytes=1)
            assert (await fetcher.fetch(mixed_root)).complete
            assert read_all(me.store, mixed_root) == mixed


async def test_a_long_path_through_a_shared_subtree_is_refused(tmp_path: Path) -> None:
    """A subtree first reached near the root, then again far below it: the longer path counts."""
    top, deep = chain(20)  # its leaf is 20 links below `top`
    leaf = b"deep"
    cid, blocks = top, dict(deep)
    tsize = sum(len(d) for d in deep.values())
    for _ in range(14):  # a second path to `top`, 14 nodes long
        data = encode_dag_node(DagNode((DagLink(cid, tsize),), len(leaf), (len(leaf),), b""))
        cid = block_cid(data, CODEC_DAG_PB, 0x12)
        blocks[cid] = data
        tsize += len(data)
    root_data = encode_dag_node(
        DagNode((DagLink(top, 1), DagLink(cid, tsize)), 2 * len(leaf), (len(leaf), len(leaf)), b"")
    )
    root = block_cid(root_data, CODEC_DAG_PB, 0x12)
    blocks[root] = root_data
    with trio.fail_after(WAIT):
        async with (
            open_liar(tmp_path, "author", LyingServer(blocks, "none")) as author,
            open_peer(tmp_path, "me") as me,
        ):
            await connect(me, author)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "bad_request.invalid_param"
            assert "deeper than 32 levels" in err.value.message
            assert_nothing_kept(me.store, root)


async def test_a_crowd_of_withholders_cannot_hide_the_honest_provider(tmp_path: Path) -> None:
    """More withholders than the fetch uses at once: once they are exhausted, it looks again."""
    data = payload(60_000, seed=13)
    root, blocks = build(data, **SMALL)
    with trio.fail_after(WAIT):
        async with (
            open_liar(tmp_path, "w1", LyingServer(blocks, "withhold")) as w1,
            open_liar(tmp_path, "w2", LyingServer(blocks, "withhold")) as w2,
            open_peer(tmp_path, "honest") as honest,
            open_peer(tmp_path, "me") as me,
        ):
            put(honest.store, root, blocks)
            await connect(me, w1, w2, honest)
            fetcher = me.fetcher(Providers([w1.peer_id, w2.peer_id, honest.peer_id]), max_providers=2)
            assert (await fetcher.fetch(root)).complete
            assert read_all(me.store, root) == data
            assert not me.penalties
