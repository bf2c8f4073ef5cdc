"""Real nodes against real misbehaving peers: bad gossip, bad sync requests, lying sync answers, bans, floods.

What must hold whatever a peer sends: nothing invalid is stored, the sender loses exactly the score its
offence costs (protocols.peers.PENALTIES), the node neither crashes nor buffers without bound, and it keeps
serving everyone else. Small adversaries are built here where devnet's Forger does not fit: a gossip-only
peer (no sync handler, so the node's own sync attempts cost it nothing), plain hosts speaking raw frames,
and sync servers that answer from a real node's store but lie about messages.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11

from devnet import FAST_SETTINGS, LocalDevnet, open_devnet, open_forger, with_settings
from node.network import MAX_BUNDLE_MESSAGES
from node.runner import NodeHandle
from p2p import (
    MAX_GOSSIP_PAYLOAD,
    MAX_MESSAGES_PER_REQUEST,
    MAX_SYNC_FRAME,
    SYNC_PROTOCOL_ID,
    FrameError,
    FrameReader,
    Gossip,
    HubHost,
    SyncPeerError,
    encode_frame,
    load_or_create_peer_key,
    open_gossip,
    open_host,
    serve_sync_stream,
)
from p2p._sync_wire import MAX_STREAMS_PER_PEER
from protocols import crdt
from protocols.errors import HubError
from protocols.messages import public_key_bytes
from protocols.peers import PENALTIES
from protocols.proto import message_pb2 as pb
from protocols.proto import p2p_pb2
from tests import factories as f

FID = 61
DEVNET = pb.FARCASTER_NETWORK_DEVNET
#: No periodic sync rounds: sessions in these tests are the ones a test starts (or the one on connect).
QUIET = with_settings(FAST_SETTINGS, sync_interval=3600.0)
#: Scores decay (half-life 300 s) while a test runs; a few seconds cost well under one point.
DECAY_SLACK = 1.0


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def key() -> Any:
    return f.new_key()


@pytest.fixture
def genesis(tmp_path: Path, key: Any) -> Path:
    return f.genesis_file(tmp_path / "genesis.json", {FID: key})


def holds(node: NodeHandle, message: pb.Message | bytes) -> bool:
    if isinstance(message, bytes):
        message = pb.Message.FromString(message)
    with node.engine.read() as kv:
        return crdt.has_message(kv, message.data.fid, bytes(message.hash))


def message_count(node: NodeHandle) -> int:
    with node.engine.read() as kv:
        return crdt.message_count(kv)


def offences(node: NodeHandle, peer_id: str) -> dict[str, int]:
    for record in node.network.scores.snapshot(time.time()):
        if record.peer_id == peer_id:
            return record.offences
    return {}


def score(node: NodeHandle, peer_id: str) -> float:
    return node.network.scores.score(peer_id, time.time())


def cost(**counts: int) -> float:
    return -sum(PENALTIES[offence] * n for offence, n in counts.items())


def casts(key: Any, label: str, n: int) -> list[pb.Message]:
    return [f.cast_add(key, FID, f"{label} {i}") for i in range(n)]


def forged_casts(victim: Any, n: int, label: str = "forged") -> list[bytes]:
    """Casts naming `victim`'s registered key as signer but signed by another key."""
    impostor = f.new_key()
    out = []
    for i in range(n):
        message = f.cast_add(impostor, FID, f"{label} {i}")
        message.signer = public_key_bytes(victim)
        out.append(message.SerializeToString())
    return out


def corrupted(message: pb.Message | bytes) -> bytes:
    """A copy of a genuine message whose data no longer matches its hash."""
    bad = pb.Message.FromString(message if isinstance(message, bytes) else message.SerializeToString())
    bad.data_bytes = bytes(bad.data_bytes) + b"\x00"
    return bad.SerializeToString()


def uvarint(n: int) -> bytes:
    """A frame length prefix on its own."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def raws(messages: Sequence[pb.Message]) -> list[bytes]:
    return [m.SerializeToString() for m in messages]


def bundle(items: Sequence[bytes]) -> bytes:
    return p2p_pb2.MessageBundle(messages=list(items)).SerializeToString()


@asynccontextmanager
async def open_plain_host(data_dir: Path) -> AsyncIterator[HubHost]:
    """A libp2p host with no protocols of ours: it speaks only what a test writes on raw streams."""
    await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
    async with open_host(load_or_create_peer_key(data_dir / "peer.key"), listen_port=0) as host:
        yield host


@dataclass
class GossipPeer:
    """Joins gossip and publishes whatever a test asks, forwards nothing, and serves no sync at all.

    Without a sync handler a node's sync attempts fail as unreachable, which costs no score, so every
    penalty this peer collects comes from what it gossips.
    """

    host: HubHost
    gossip: Gossip

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id

    async def join(self, node: NodeHandle) -> None:
        await self.host.connect(node.host.info.listen_addrs[0])
        await self.gossip.wait_for_subscriber(node.peer_id, self.gossip.messages_topic)

    async def publish(self, payload: bytes) -> None:
        """Publish any payload on the messages topic, even one Gossip.publish would refuse as too big."""
        await self.gossip._pubsub.publish(self.gossip.messages_topic, payload)


async def _drop(_sender: str, _origin: str, _payload: bytes) -> bool:
    return False


@asynccontextmanager
async def open_gossip_peer(data_dir: Path) -> AsyncIterator[GossipPeer]:
    async with (
        open_plain_host(data_dir) as host,
        open_gossip(
            host, network="devnet", on_bundle=_drop, on_contact=_drop, heartbeat_interval=0.2
        ) as gossip,
    ):
        yield GossipPeer(host, gossip)


async def open_sync_stream(host: HubHost, node: NodeHandle) -> tuple[Any, FrameReader]:
    stream = await host.libp2p_host.new_stream(ID.from_base58(node.peer_id), [SYNC_PROTOCOL_ID])
    return stream, FrameReader(stream, max_size=MAX_SYNC_FRAME)


async def ask(stream: Any, reader: FrameReader, request: p2p_pb2.SyncRequest | bytes) -> p2p_pb2.SyncResponse:
    payload = request if isinstance(request, bytes) else request.SerializeToString()
    await stream.write(encode_frame(payload))
    frame = await reader.read()
    assert frame is not None, "the server closed the stream instead of answering"
    return p2p_pb2.SyncResponse.FromString(frame)


async def assert_closed_by_peer(reader: FrameReader) -> None:
    """The server ended the stream (closed or reset) without sending anything more."""
    try:
        frame = await reader.read()
    except FrameError as e:
        raise AssertionError(f"the server sent a broken frame: {e}") from e
    except Exception:
        return  # a reset surfaces as one of py-libp2p's stream errors
    assert frame is None, frame


async def wait_for(net: LocalDevnet, predicate: Callable[[], bool], timeout: float = 15.0) -> None:  # noqa: ASYNC109
    with trio.fail_after(timeout):
        await net.wait_until(predicate)


async def wait_for_session_on_connect(net: LocalDevnet, node: NodeHandle, peer_id: str) -> None:
    """A node syncs with every peer that connects; wait for that session to end so it cannot overlap."""

    def done() -> bool:
        status = node.network.sync_status.peers.get(peer_id)
        return status is not None and status.sessions >= 1 and not status.syncing

    await wait_for(net, done)


# ------------------------------------------------------------------------------------------ gossip


async def test_bundle_with_valid_and_forged_messages(tmp_path: Path, genesis: Path, key: Any) -> None:
    """The valid part is merged and spreads; the forged part is stored nowhere and costs the sender."""
    async with (
        open_devnet(2, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_gossip_peer(tmp_path / "adv") as adv,
    ):
        a, b = net.nodes
        with trio.fail_after(15):
            await adv.join(a)
        valid = casts(key, "valid", 3)
        forged = forged_casts(key, 2)
        broken = corrupted(f.cast_add(key, FID, "about to be corrupted"))
        mixed = [valid[0].SerializeToString(), forged[0], valid[1].SerializeToString(), broken]
        mixed += [forged[1], valid[2].SerializeToString()]
        forwarded_before = a.network.stats.bundles_forwarded

        await adv.publish(bundle(mixed))
        await wait_for(net, lambda: all(holds(n, m) for n in net.nodes for m in valid))
        await wait_for(net, lambda: offences(a, adv.peer_id).get("invalid_message") == 3)

        for node in net.nodes:
            assert not any(holds(node, raw) for raw in [*forged, broken])
        assert offences(a, adv.peer_id) == {"invalid_message": 3}
        assert score(a, adv.peer_id) == pytest.approx(cost(invalid_message=3), abs=DECAY_SLACK)
        assert not a.network.is_banned(adv.peer_id)
        # The bundle itself stopped at the first honest node; its valid messages went on in a's own bundle.
        assert a.network.stats.bundles_forwarded == forwarded_before
        assert a.network.stats.invalid_in == 3
        assert b.network.stats.invalid_in == 0
        assert b.network.scores.snapshot(time.time()) == []


async def test_malformed_and_oversized_gossip(tmp_path: Path, genesis: Path, key: Any) -> None:
    """Garbage, too many messages, too many bytes: each rejected unread with its own offence."""
    async with (
        open_devnet(2, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_gossip_peer(tmp_path / "garbage") as garbage,
        open_gossip_peer(tmp_path / "many") as many,
        open_gossip_peer(tmp_path / "big") as big,
    ):
        a, b = net.nodes
        with trio.fail_after(15):
            for peer in (garbage, many, big):
                await peer.join(a)
        # Genuine messages inside the oversized bundles: rejected anyway, because they are never looked at.
        too_many = casts(key, "one of too many", MAX_BUNDLE_MESSAGES + 1)
        inside_big = f.cast_add(key, FID, "inside a too-big payload")
        big_payload = bundle([inside_big.SerializeToString(), bytes(MAX_GOSSIP_PAYLOAD)])
        assert len(big_payload) > MAX_GOSSIP_PAYLOAD
        messages_in_before = a.network.stats.messages_in

        await garbage.publish(b"\xff\x00 not a bundle")
        await many.publish(bundle(raws(too_many)))
        await big.publish(big_payload)
        await wait_for(
            net,
            lambda: (
                offences(a, garbage.peer_id) == {"malformed_frame": 1}
                and offences(a, many.peer_id) == {"oversized_frame": 1}
                and offences(a, big.peer_id) == {"oversized_frame": 1}
            ),
        )

        assert score(a, garbage.peer_id) == pytest.approx(cost(malformed_frame=1), abs=DECAY_SLACK)
        assert score(a, many.peer_id) == pytest.approx(cost(oversized_frame=1), abs=DECAY_SLACK)
        assert score(a, big.peer_id) == pytest.approx(cost(oversized_frame=1), abs=DECAY_SLACK)
        assert message_count(a) == message_count(b) == 0
        assert a.network.stats.messages_in == messages_in_before  # not one message was validated
        assert b.network.scores.snapshot(time.time()) == []  # none of it was forwarded

        # The node keeps serving: a penalised (not banned) peer's genuine cast is accepted and spreads,
        # and so is one submitted locally.
        from_peer = f.cast_add(key, FID, "genuine, from a penalised peer")
        local = f.cast_add(key, FID, "local")
        await garbage.publish(bundle([from_peer.SerializeToString()]))
        await a.engine.submit(local)
        await wait_for(net, lambda: all(holds(n, m) for n in net.nodes for m in (from_peer, local)))
        assert not any(holds(n, m) for n in net.nodes for m in [*too_many, inside_big])


async def send_raw_gossip(host: HubHost, peer_id: str, data: bytes) -> None:
    """Write bytes straight onto a gossipsub stream, below every validator, and wait for it to be dropped."""
    stream = await host.libp2p_host.new_stream(ID.from_base58(peer_id), [PROTOCOL_ID_V11])
    await stream.write(data)
    await assert_closed_by_peer(FrameReader(stream, max_size=1 << 20))


async def test_unreadable_gossip_rpc_does_not_take_the_node_down(
    tmp_path: Path, genesis: Path, key: Any
) -> None:
    """Raw garbage, or a frame past py-libp2p's RPC size limit, on gossipsub itself ends that stream only."""
    async with (
        open_devnet(2, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_plain_host(tmp_path / "raw") as raw,
    ):
        a, b = net.nodes
        with trio.fail_after(15):
            await raw.connect(a.host.info.listen_addrs[0])
            await send_raw_gossip(raw, a.peer_id, encode_frame(b"\xff\xff\xff this is not an RPC"))
            await send_raw_gossip(raw, a.peer_id, uvarint(4 * MAX_GOSSIP_PAYLOAD) + b"\x00" * 100)
        cast = f.cast_add(key, FID, "still gossiping")
        await a.engine.submit(cast)
        await wait_for(net, lambda: holds(b, cast))
        assert b.peer_id in a.host.connected_peers()


async def test_gossip_reports_a_peer_sending_unparseable_rpcs(tmp_path: Path) -> None:
    """open_gossip's on_bad_rpc hears of the peer before its stream is dropped, so a node can penalise it."""
    reported: list[str] = []
    async with (
        open_plain_host(tmp_path / "listener") as listener,
        open_gossip(listener, network="t", on_bundle=_drop, on_contact=_drop, on_bad_rpc=reported.append),
        open_plain_host(tmp_path / "raw") as raw,
    ):
        with trio.fail_after(15):
            await raw.connect(listener.info.listen_addrs[0])
            await send_raw_gossip(raw, listener.info.peer_id, encode_frame(b"\xff\xff\xff not an RPC"))
        assert reported == [raw.info.peer_id]
        # A frame past the size limit is refused by py-libp2p before we see it: dropped, not reported.
        with trio.fail_after(15):
            await send_raw_gossip(raw, listener.info.peer_id, uvarint(4 * MAX_GOSSIP_PAYLOAD))
        assert reported == [raw.info.peer_id]


async def test_unparseable_gossip_rpc_costs_the_sender(tmp_path: Path, genesis: Path) -> None:
    async with (
        open_devnet(1, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_plain_host(tmp_path / "raw") as raw,
    ):
        a = net[0]
        with trio.fail_after(15):
            await raw.connect(a.host.info.listen_addrs[0])
            await send_raw_gossip(raw, a.peer_id, encode_frame(b"\xff\xff\xff this is not an RPC"))
        # The report comes before the stream is dropped, so the penalty is in by now.
        assert offences(a, raw.info.peer_id) == {"malformed_frame": 1}


async def test_banned_peer_is_cut_off(tmp_path: Path, genesis: Path, key: Any) -> None:
    """Below the threshold: disconnected, its gossip ignored, listed as banned with a negative score."""
    async with (
        open_devnet(2, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_gossip_peer(tmp_path / "adv") as adv,
    ):
        a, _ = net.nodes
        with trio.fail_after(15):
            await adv.join(a)
        # Three distinct oversized bundles: 3 x 50 crosses the -100 threshold even after some decay.
        for i in range(3):
            await adv.publish(bundle([b"%d" % i] * (MAX_BUNDLE_MESSAGES + 1)))
        await wait_for(net, lambda: a.network.is_banned(adv.peer_id))
        await wait_for(net, lambda: adv.peer_id not in a.host.connected_peers())

        assert a.network.stats.bans == 1
        assert offences(a, adv.peer_id).get("oversized_frame", 0) >= 2
        [entry] = [p for p in a.network.peers() if p.peer_id == adv.peer_id]
        assert entry.banned_until > time.time()
        assert entry.score <= -100
        assert not entry.connected

        # Its gossip is ignored while the ban lasts, without even being counted or parsed.
        cast = f.cast_add(key, FID, "from a banned peer")
        bundles_in, record = a.network.stats.bundles_in, offences(a, adv.peer_id)
        payload = bundle([cast.SerializeToString()])
        assert await a.network._on_bundle(adv.peer_id, adv.peer_id, payload) is False
        assert await a.network._on_bundle(adv.peer_id, adv.peer_id, b"\xff garbage") is False
        assert a.network.stats.bundles_in == bundles_in
        assert offences(a, adv.peer_id) == record
        assert not holds(a, cast)
        # Coming back does not help: the node drops the new connection too.
        with contextlib.suppress(Exception):
            await adv.host.connect(a.host.info.listen_addrs[0])
        await wait_for(net, lambda: adv.peer_id not in a.host.connected_peers())
        assert a.network.is_banned(adv.peer_id)


async def test_flood_beyond_rate_limit_is_dropped_unvalidated(
    tmp_path: Path, genesis: Path, key: Any
) -> None:
    """Past its budget a peer's bundles are dropped before validation, at a small cost to its score."""
    settings = with_settings(QUIET, peer_rate=0.01, peer_burst=10)
    async with (
        open_devnet(2, tmp_path / "net", genesis=genesis, settings=settings) as net,
        open_gossip_peer(tmp_path / "flood") as flood,
    ):
        a, _ = net.nodes
        with trio.fail_after(15):
            await flood.join(a)
        within = casts(key, "within budget", 10)
        await flood.publish(bundle(raws(within[:5])))
        await flood.publish(bundle(raws(within[5:])))
        await wait_for(net, lambda: all(holds(a, m) for m in within))
        assert a.network.stats.rate_limited == 0

        # Over budget: each bundle carries a forged message, which would cost 10 if it were validated.
        excess: list[bytes] = []
        for i in range(3):
            batch = raws(casts(key, f"over budget {i}", 4)) + forged_casts(key, 1, f"forged {i}")
            excess += batch
            await flood.publish(bundle(batch))
        await wait_for(net, lambda: a.network.stats.rate_limited == 3)

        assert offences(a, flood.peer_id) == {"rate_limited": 3}
        assert score(a, flood.peer_id) == pytest.approx(cost(rate_limited=3), abs=DECAY_SLACK)
        assert a.network.stats.messages_in == 10
        assert a.network.stats.invalid_in == 0
        assert not any(holds(node, raw) for node in net.nodes for raw in excess)


async def test_a_payload_rejected_from_one_peer_is_still_validated_from_another(tmp_path: Path) -> None:
    """Validators judge the sender as well as the payload, so a rejection must not be reused for a relay.

    H1 publishes; H3 rejects H1's copy (as a node rejects a banned or rate-limited sender); H2 relays the
    same payload only after that, and H3 must run its validator again for H2's copy.
    """
    rejected_from_h1 = trio.Event()
    accepted_from_h2 = trio.Event()
    ids: dict[str, str] = {}

    async def relay(_sender: str, _origin: str, _payload: bytes) -> bool:
        await rejected_from_h1.wait()
        return True

    async def judge(sender: str, _origin: str, _payload: bytes) -> bool:
        if sender == ids["h1"]:
            rejected_from_h1.set()
            return False
        accepted_from_h2.set()
        return True

    async with (
        open_plain_host(tmp_path / "h1") as h1,
        open_plain_host(tmp_path / "h2") as h2,
        open_plain_host(tmp_path / "h3") as h3,
        open_gossip(h1, network="t", on_bundle=_drop, on_contact=_drop, heartbeat_interval=0.2) as g1,
        open_gossip(h2, network="t", on_bundle=relay, on_contact=_drop, heartbeat_interval=0.2) as g2,
        open_gossip(h3, network="t", on_bundle=judge, on_contact=_drop, heartbeat_interval=0.2) as g3,
    ):
        ids["h1"] = h1.info.peer_id
        topic = g1.messages_topic
        with trio.fail_after(20):
            await h1.connect(h2.info.listen_addrs[0])
            await h1.connect(h3.info.listen_addrs[0])
            await h2.connect(h3.info.listen_addrs[0])
            await g1.wait_for_subscriber(h2.info.peer_id, topic)
            await g1.wait_for_subscriber(h3.info.peer_id, topic)
            await g2.wait_for_subscriber(h3.info.peer_id, topic)
            await g3.wait_for_subscriber(h2.info.peer_id, topic)
            await g1.publish(topic, b"judged by sender")
            await rejected_from_h1.wait()
            await accepted_from_h2.wait()


# ------------------------------------------------------------------------------------------ sync server


async def test_sync_server_rejects_bad_requests(tmp_path: Path, genesis: Path, key: Any) -> None:
    """Garbage, oversized frames, empty requests and too many ids are penalised; others are still served."""
    async with (
        open_devnet(2, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_plain_host(tmp_path / "asker") as asker,
        open_plain_host(tmp_path / "garbler") as garbler,
        open_plain_host(tmp_path / "varint") as varint,
    ):
        a, b = net.nodes
        await a.engine.submit_many(casts(key, "stored", 3))
        with trio.fail_after(15):
            await net.wait_converged()
            for host in (asker, garbler, varint):
                await host.connect(a.host.info.listen_addrs[0])

        # Requests that break the protocol but not the framing: an error answer, the stream stays open.
        with trio.fail_after(15):
            stream, reader = await open_sync_stream(asker, a)
            empty = await ask(stream, reader, b"")
            assert empty.WhichOneof("kind") == "error"
            assert empty.error.code == "bad_request.parse_failure"
            ids = [bytes(crdt.SYNC_ID_BYTES)] * (MAX_MESSAGES_PER_REQUEST + 1)
            flood = await ask(stream, reader, p2p_pb2.SyncRequest(messages=p2p_pb2.SyncIdList(sync_ids=ids)))
            assert flood.WhichOneof("kind") == "error"
            assert flood.error.code == "bad_request.invalid_param"
            # Bad parameters are not misbehaviour worth a penalty, just an error (or nothing found).
            deep = await ask(stream, reader, p2p_pb2.SyncRequest(trie_node=bytes(40)))
            assert deep.WhichOneof("kind") == "error"
            odd_ids = [b"short", bytes(100), b""]
            none = await ask(
                stream, reader, p2p_pb2.SyncRequest(messages=p2p_pb2.SyncIdList(sync_ids=odd_ids))
            )
            assert none.WhichOneof("kind") == "messages" and not none.messages.messages
            page = await ask(
                stream,
                reader,
                p2p_pb2.SyncRequest(
                    sync_ids=p2p_pb2.SyncIdsQuery(prefix=bytes(60), after=bytes(70), limit=0)
                ),
            )
            assert page.WhichOneof("kind") == "error"
            # Still answering on the same stream, correctly.
            root = await ask(stream, reader, p2p_pb2.SyncRequest(trie_node=b""))
            assert root.WhichOneof("kind") == "trie_node"
            assert bytes(root.trie_node.hash) == net.roots([a])[0]
            assert root.trie_node.count == 3
            # Streams per peer are capped: three more are served, a fifth open one is refused.
            streams = [(stream, reader)]
            for _ in range(MAX_STREAMS_PER_PEER - 1):
                streams.append(await open_sync_stream(asker, a))
                answer = await ask(*streams[-1], p2p_pb2.SyncRequest(trie_node=b""))
                assert answer.WhichOneof("kind") == "trie_node"
            with pytest.raises(Exception):  # noqa: B017  # refused while opening, or reset at the first request
                await ask(*await open_sync_stream(asker, a), p2p_pb2.SyncRequest(trie_node=b""))
            for s, _ in streams:
                await s.close()
        assert offences(a, asker.info.peer_id) == {"malformed_frame": 1, "oversized_frame": 1}
        assert score(a, asker.info.peer_id) == pytest.approx(
            cost(malformed_frame=1, oversized_frame=1), abs=DECAY_SLACK
        )

        # Framing-level breakage: the server penalises and hangs up.
        with trio.fail_after(15):
            stream, reader = await open_sync_stream(garbler, a)
            await stream.write(encode_frame(b"\xff\xff\xff not a request"))
            await assert_closed_by_peer(reader)
            # A length past the limit ends the stream at once: the server does not wait for the body.
            stream, reader = await open_sync_stream(garbler, a)
            await stream.write(uvarint(MAX_SYNC_FRAME + 1))
            await assert_closed_by_peer(reader)
        await wait_for(
            net, lambda: offences(a, garbler.info.peer_id) == {"malformed_frame": 1, "oversized_frame": 1}
        )

        with trio.fail_after(15):
            stream, reader = await open_sync_stream(varint, a)
            await stream.write(b"\xff" * 11)  # a length varint that never ends
            await assert_closed_by_peer(reader)
        await wait_for(net, lambda: offences(a, varint.info.peer_id) == {"malformed_frame": 1})

        for peer in (asker, garbler, varint):
            assert not a.network.is_banned(peer.info.peer_id)
        # The node goes on serving honest peers.
        with trio.fail_after(15):
            more = f.cast_add(key, FID, "after the bad requests")
            await b.engine.submit_many([more], origin="sync")  # not gossiped: only sync can carry it
            status = await b.network.sync_now(a.peer_id)
        assert status.in_sync
        assert holds(a, more)


# ------------------------------------------------------------------------------------------ sync client


async def test_sync_with_a_peer_whose_trie_lies(tmp_path: Path, genesis: Path, key: Any) -> None:
    """A trie node whose hash does not commit to its children ends the session and costs the liar."""
    async with (
        open_devnet(1, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_forger(tmp_path / "forger") as forger,
    ):
        a = net[0]
        await a.engine.submit(f.cast_add(key, FID, "something to compare"))
        with trio.fail_after(15):
            await forger.host.connect(a.host.info.listen_addrs[0])
        await wait_for_session_on_connect(net, a, forger.peer_id)
        before_count = offences(a, forger.peer_id).get("bad_sync_answer", 0)
        before = score(a, forger.peer_id)

        with trio.fail_after(15), pytest.raises(SyncPeerError) as failure:
            await a.network.sync_now(forger.peer_id)

        assert failure.value.offence == "bad_sync_answer"
        assert offences(a, forger.peer_id).get("bad_sync_answer") == before_count + 1
        assert score(a, forger.peer_id) == pytest.approx(before + cost(bad_sync_answer=1), abs=DECAY_SLACK)
        status = a.network.sync_status.peers[forger.peer_id]
        assert status.last_bad_sync > 0 and status.last_error
        assert message_count(a) == 1


Lie = Callable[[list[bytes], list[bytes]], list[bytes]]


class LyingSource:
    """Answers sync from a real node's store (so the trie walk checks out) but lies about messages.

    Disarmed it refuses every stream, so the session a node starts on connect fails without a penalty
    and only the sessions a test starts meet the lie.
    """

    def __init__(self, honest: Any, lie: Lie) -> None:
        self._honest = honest
        self._lie = lie
        self.armed = False
        self.asked: list[list[bytes]] = []

    def allow(self, peer_id: str) -> bool:
        return self.armed

    def trie_node(self, prefix: bytes) -> p2p_pb2.TrieNodeAnswer:
        return self._honest.trie_node(prefix)

    def sync_ids(self, prefix: bytes, after: bytes | None, limit: int) -> p2p_pb2.SyncIdsAnswer:
        return self._honest.sync_ids(prefix, after, limit)

    def messages(self, sync_ids: Sequence[bytes]) -> list[bytes]:
        ids = [bytes(s) for s in sync_ids]
        self.asked.append(ids)
        return self._lie(ids, self._honest.messages(ids))

    async def push(self, peer_id: str, messages: list[bytes]) -> p2p_pb2.PushAnswer:
        return p2p_pb2.PushAnswer(merged=0, rejected=len(messages))

    def penalise(self, peer_id: str, offence: str) -> None:
        pass


@asynccontextmanager
async def open_lying_server(data_dir: Path, source: LyingSource) -> AsyncIterator[HubHost]:
    async with open_plain_host(data_dir) as host:
        active: dict[str, int] = {}

        async def handle(stream: Any) -> None:
            await serve_sync_stream(stream, source, active)

        host.libp2p_host.set_stream_handler(SYNC_PROTOCOL_ID, handle)
        yield host


async def test_sync_answers_with_wrong_or_invalid_messages(tmp_path: Path, genesis: Path, key: Any) -> None:
    """Messages not asked for, more than asked for, or invalid ones: penalised, nothing invalid stored."""
    held = casts(key, "held by the source", 4)
    unasked = casts(key, "never asked for", 4)
    lies = itertools.count()

    def other_messages(ids: list[bytes], found: list[bytes]) -> list[bytes]:
        return raws(unasked[: len(ids)])

    def too_many(ids: list[bytes], found: list[bytes]) -> list[bytes]:
        return [*found, *raws(unasked)]

    def invalid(ids: list[bytes], found: list[bytes]) -> list[bytes]:
        # One invalid answer per id asked for, alternately a corrupted copy and a forgery.
        return [corrupted(raw) if next(lies) % 2 else forged_casts(key, 1)[0] for raw in found]

    async with (
        open_devnet(1, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_devnet(1, tmp_path / "source", genesis=genesis, settings=QUIET) as source_net,
    ):
        a, source = net[0], source_net[0]
        await source.engine.submit_many(held, origin="sync")

        async def session_with(name: str, lie: Lie) -> tuple[str, Any]:
            liar = LyingSource(source.network, lie)
            async with open_lying_server(tmp_path / name, liar) as host:
                with trio.fail_after(15):
                    await host.connect(a.host.info.listen_addrs[0])
                await wait_for_session_on_connect(net, a, host.info.peer_id)
                assert offences(a, host.info.peer_id) == {}
                liar.armed = True
                with trio.fail_after(15):
                    try:
                        outcome: Any = await a.network.sync_now(host.info.peer_id)
                    except SyncPeerError as e:
                        outcome = e
                assert liar.asked, "the session never asked for messages"
                return host.info.peer_id, outcome

        # Valid messages, but not the ones asked for: a protocol violation.
        liar_id, outcome = await session_with("other", other_messages)
        assert isinstance(outcome, SyncPeerError) and outcome.offence == "bad_sync_answer"
        assert offences(a, liar_id) == {"bad_sync_answer": 1}
        assert score(a, liar_id) == pytest.approx(cost(bad_sync_answer=1), abs=DECAY_SLACK)
        assert not any(holds(a, m) for m in held)

        # More answers than questions: refused before any of it is looked at.
        count = message_count(a)
        liar_id, outcome = await session_with("many", too_many)
        assert isinstance(outcome, SyncPeerError) and outcome.offence == "bad_sync_answer"
        assert offences(a, liar_id) == {"bad_sync_answer": 1}
        assert message_count(a) == count

        # Corrupted and forged messages: each one costs, none is stored, the session ends out of sync.
        liar_id, outcome = await session_with("invalid", invalid)
        assert not isinstance(outcome, SyncPeerError), outcome
        assert outcome.in_sync is False
        assert offences(a, liar_id) == {"invalid_message": 4}
        assert score(a, liar_id) == pytest.approx(cost(invalid_message=4), abs=DECAY_SLACK)
        assert message_count(a) == count
        assert not any(holds(a, m) for m in held)


async def test_sync_answers_that_break_framing(tmp_path: Path, genesis: Path, key: Any) -> None:
    """A sync server answering with garbage, or announcing a frame past the limit, is penalised for it."""
    async with open_devnet(1, tmp_path / "net", genesis=genesis, settings=QUIET) as net:
        a = net[0]
        await a.engine.submit(f.cast_add(key, FID, "something to compare"))

        async def session_with(name: str, answer: bytes) -> tuple[str, SyncPeerError]:
            armed = False

            async def handle(stream: Any) -> None:
                if not armed:
                    await stream.reset()
                    return
                with contextlib.suppress(Exception):
                    await FrameReader(stream, max_size=MAX_SYNC_FRAME).read()
                    await stream.write(answer)
                    # Hold the stream open: the client must give up on what it got, not on an EOF.
                    await FrameReader(stream, max_size=MAX_SYNC_FRAME).read()

            async with open_plain_host(tmp_path / name) as host:
                host.libp2p_host.set_stream_handler(SYNC_PROTOCOL_ID, handle)
                with trio.fail_after(15):
                    await host.connect(a.host.info.listen_addrs[0])
                await wait_for_session_on_connect(net, a, host.info.peer_id)
                armed = True
                with trio.fail_after(15), pytest.raises(SyncPeerError) as failure:
                    await a.network.sync_now(host.info.peer_id)
                return host.info.peer_id, failure.value

        liar_id, error = await session_with("garbage", encode_frame(b"\xff\xff\xff not a response"))
        assert error.offence == "malformed_frame"
        assert offences(a, liar_id) == {"malformed_frame": 1}

        liar_id, error = await session_with("huge", uvarint(MAX_SYNC_FRAME + 1))
        assert error.offence == "oversized_frame"
        assert offences(a, liar_id) == {"oversized_frame": 1}
        assert score(a, liar_id) == pytest.approx(cost(oversized_frame=1), abs=DECAY_SLACK)

        liar_id, error = await session_with(
            "wrong-kind",
            encode_frame(p2p_pb2.SyncResponse(push=p2p_pb2.PushAnswer(merged=1)).SerializeToString()),
        )
        assert error.offence == "bad_sync_answer"
        assert offences(a, liar_id) == {"bad_sync_answer": 1}
        assert message_count(a) == 1


class EndlessIdsSource(LyingSource):
    """A well-formed trie root claiming a handful of messages under one child, then sync ids without end.

    It stops after `max_pages` pages only so that a node that never stops asking cannot eat the test
    machine's memory; an honest client has given up long before, since the root promised `count` ids.
    """

    def __init__(self, count: int, max_pages: int) -> None:
        super().__init__(None, lambda ids, found: [])
        self.count = count
        self.max_pages = max_pages
        self.pages = 0
        self._next = itertools.count(1)
        self._child = crdt.TrieChild(byte=0x05, count=count, hash=bytes(range(20)))

    def trie_node(self, prefix: bytes) -> p2p_pb2.TrieNodeAnswer:
        if prefix:
            raise HubError("not_found", "ask for the ids instead")
        children = [p2p_pb2.TrieChildEntry(byte=self._child.byte, count=self.count, hash=self._child.hash)]
        return p2p_pb2.TrieNodeAnswer(
            prefix=b"", count=self.count, hash=crdt.interior_hash([self._child]), children=children
        )

    def sync_ids(self, prefix: bytes, after: bytes | None, limit: int) -> p2p_pb2.SyncIdsAnswer:
        self.pages += 1
        pad = crdt.SYNC_ID_BYTES - len(prefix)
        ids = [prefix + next(self._next).to_bytes(pad, "big") for _ in range(limit)]
        return p2p_pb2.SyncIdsAnswer(sync_ids=ids, more=self.pages < self.max_pages)

    def messages(self, sync_ids: Sequence[bytes]) -> list[bytes]:
        self.asked.append([bytes(s) for s in sync_ids])
        return []


async def test_sync_ids_beyond_the_claimed_count_are_refused(tmp_path: Path, genesis: Path) -> None:
    """A peer whose trie root promises 5 ids but whose id pages never end: refused within a page of slack."""
    source = EndlessIdsSource(count=5, max_pages=20)
    async with (
        open_devnet(1, tmp_path / "net", genesis=genesis, settings=QUIET) as net,
        open_lying_server(tmp_path / "endless", source) as host,
    ):
        a = net[0]
        with trio.fail_after(15):
            await host.connect(a.host.info.listen_addrs[0])
        await wait_for_session_on_connect(net, a, host.info.peer_id)
        source.armed = True
        with trio.fail_after(30):
            try:
                status = await a.network.sync_now(host.info.peer_id)
            except SyncPeerError as e:
                assert e.offence == "bad_sync_answer"
            else:
                asked = sum(len(ids) for ids in source.asked)
                raise AssertionError(
                    f"no error after {source.pages} pages of ids (in sync: {status.in_sync}); then asked for "
                    f"{asked} messages when the root promised {source.count}"
                )
        # Refused once the ids exceed the claim by more than the slack the client allows for messages the
        # peer merged meanwhile (one page): nothing close to the 20 pages the liar would send.
        assert source.pages <= 2
        assert offences(a, host.info.peer_id) == {"bad_sync_answer": 1}


async def test_contact_info_flood_is_bounded(tmp_path: Path, genesis: Path) -> None:
    """Fresh identities cost nothing, so one relaying peer gets a budget and the table a cap."""
    from node.network import CONTACT_BURST, CONTACT_RATE, MAX_CONTACTS

    async with open_devnet(1, tmp_path / "net", genesis=genesis, settings=QUIET) as net:
        node = net[0]
        sender = "12D3KooWMqHnpC3BZFzfBMvwnUbiBesneRgUWDBj3ymkg69q997c"
        accepted = 0
        started = time.monotonic()
        for i in range(int(CONTACT_BURST) + 50):
            origin = f"fake-{i}"
            info = p2p_pb2.ContactInfo(peer_id=origin, protocol_version=1)
            info.body.network = pb.FARCASTER_NETWORK_DEVNET
            info.body.timestamp = 1
            accepted += await node.network._on_contact(sender, origin, info.SerializeToString())
        elapsed = time.monotonic() - started
        # The budget refills at CONTACT_RATE per second while the loop runs (slowly, on a busy machine).
        assert accepted <= CONTACT_BURST + CONTACT_RATE * elapsed + 1
        refused = node.network.stats.rate_limited
        assert refused > 0 and accepted + refused <= CONTACT_BURST + 50
        assert offences(node, sender).get("rate_limited", 0) == refused
        assert len(node.network.contacts) <= MAX_CONTACTS
