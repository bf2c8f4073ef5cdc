"""Several real nodes in one process: gossip, diff sync, convergence (libp2p on 127.0.0.1, LMDB in tmp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from devnet import LocalDevnet, open_devnet, open_forger, open_withholder
from node.runner import NodeHandle
from protocols import crdt
from protocols.messages import farcaster_now, public_key_bytes
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import p2p_pb2
from protocols.proto import request_response_pb2 as rr
from tests import factories as f
from tests.conftest import Client

FID = 41
OTHER_FID = 42


@pytest.fixture
def keys() -> dict[int, Any]:
    return {FID: f.new_key(), OTHER_FID: f.new_key()}


@pytest.fixture
def genesis(tmp_path: Path, keys: dict[int, Any]) -> Path:
    return f.genesis_file(tmp_path / "genesis.json", keys)


def holds(node: NodeHandle, message: pb.Message) -> bool:
    with node.engine.read() as kv:
        return crdt.has_message(kv, message.data.fid, message.hash)


async def test_cast_reaches_all_five_nodes(tmp_path: Path, genesis: Path, keys: dict[int, Any]) -> None:
    async with open_devnet(5, tmp_path, genesis=genesis) as net:
        cast = f.cast_add(keys[FID], FID, "hello network")
        await net[0].engine.submit(cast)
        with trio.fail_after(30):
            await net.wait_until(lambda: all(holds(n, cast) for n in net.nodes))
            await net.wait_converged()


async def _submit_all(node: NodeHandle, messages: list[pb.Message]) -> None:
    results = await node.engine.submit_many(messages)
    bad = [r for r in results if not isinstance(r, pb.Message)]
    assert not bad, bad


async def test_late_joiner_catches_up_by_sync(tmp_path: Path) -> None:
    """10,000 messages already in a 2-node network; a third node joins and gets them all by diff sync."""
    fids = {100 + i: f.new_key() for i in range(4)}
    genesis = f.genesis_file(tmp_path / "genesis.json", fids, units=5)
    ts = farcaster_now() - 3600
    messages = [
        f.cast_add(key, fid, f"history {i}", timestamp=ts + i // 10)
        for fid, key in fids.items()
        for i in range(2500)
    ]
    async with open_devnet(2, tmp_path / "a", genesis=genesis) as net:
        # History, not news: stored on both nodes without being gossiped (origin "sync" is never
        # republished), so nothing about it lingers in gossipsub's caches for the newcomer to get.
        for node in net.nodes:
            for i in range(0, len(messages), 1000):
                results = await node.engine.submit_many(messages[i : i + 1000], origin="sync")
                # The second node may already have some from syncing with the first.
                assert all(isinstance(r, pb.Message) or r.code == "bad_request.duplicate" for r in results)
        with trio.fail_after(120):
            await net.wait_converged()
        # The third node joins after the fact and connects to one node: no gossip carries the history.
        async with open_devnet(1, tmp_path / "late", genesis=genesis) as late_net:
            late = late_net[0]
            await late.host.connect(net[0].host.info.listen_addrs[0])
            both = LocalDevnet([net[0], late])
            with trio.fail_after(120):
                await both.wait_converged()
            with late.engine.read() as kv:
                assert crdt.message_count(kv) == len(messages)
            # Every message arrived by sync: fetched by the late node, or pushed to it by the others (it may
            # also have dialled the second node, learnt from contact info).
            everyone = LocalDevnet([*net.nodes, late])

            def idle() -> bool:
                return not any(n.network.sync_status.syncing for n in everyone.nodes)

            with trio.fail_after(60):  # the counters settle when the sessions end
                await everyone.wait_until(idle)
            fetched = sum(s.total_merged for s in late.network.sync_status.peers.values())
            pushed = sum(n.network.sync_status.get(late.peer_id).total_pushed for n in net.nodes)
            assert fetched + pushed == len(messages)
            assert late.network.stats.messages_merged == 0  # none of it came by gossip


def store_view(node: NodeHandle, fids: list[int]) -> dict[str, Any]:
    """What clients would read from a node: every list query for these fids, as comparable values."""
    view: dict[str, Any] = {}
    page = crdt.Page(size=1000)
    with node.engine.read() as kv:
        for fid in fids:
            view[f"casts/{fid}"] = [bytes(m.hash) for m in crdt.casts_by_fid(kv, fid, page)[0]]
            view[f"reactions/{fid}"] = [bytes(m.hash) for m in crdt.reactions_by_fid(kv, fid, None, page)[0]]
            view[f"links/{fid}"] = [bytes(m.hash) for m in crdt.links_by_fid(kv, fid, None, page)[0]]
        view["count"] = crdt.message_count(kv)
    return view


async def test_partition_then_heal_converges(tmp_path: Path, genesis: Path, keys: dict[int, Any]) -> None:
    key = keys[FID]
    async with open_devnet(4, tmp_path, genesis=genesis) as net:
        side_a, side_b = net.nodes[:2], net.nodes[2:]
        shared = f.cast_add(key, FID, "before the split")
        await net[0].engine.submit(shared)
        with trio.fail_after(30):
            await net.wait_converged()

        net.partition(side_a, side_b)
        ts = farcaster_now()
        # Both sides write, including conflicts: a remove on B of a cast only A has, a follow on A and an
        # unfollow on B, and a like on A with an unlike on B at the same second (remove wins the tie).
        a_only = f.cast_add(key, FID, "side A", timestamp=ts)
        await side_a[0].engine.submit(a_only)
        await side_b[0].engine.submit(f.cast_remove(key, FID, a_only.hash, timestamp=ts + 1))
        await side_a[1].engine.submit(f.link(key, FID, OTHER_FID, timestamp=ts))
        await side_b[1].engine.submit(f.link(key, FID, OTHER_FID, timestamp=ts + 2, remove=True))
        target = pb.CastId(fid=FID, hash=shared.hash)
        await side_a[0].engine.submit(f.reaction(key, FID, target, timestamp=ts))
        await side_b[0].engine.submit(f.reaction(key, FID, target, timestamp=ts, remove=True))
        await side_b[1].engine.submit(f.cast_add(key, FID, "side B", timestamp=ts))
        with trio.fail_after(30):
            await net.wait_converged(nodes=side_a)
            await net.wait_converged(nodes=side_b)
        assert net.roots(side_a)[0] != net.roots(side_b)[0]

        await net.heal()
        with trio.fail_after(60):
            await net.wait_converged()
        views = [store_view(n, [FID, OTHER_FID]) for n in net.nodes]
        assert all(v == views[0] for v in views)
        final = views[0]
        assert bytes(a_only.hash) not in final[f"casts/{FID}"]  # the remove won
        assert final[f"links/{FID}"] == []  # the later unfollow won
        assert final[f"reactions/{FID}"] == []  # remove wins the timestamp tie


async def test_adversarial_majority(tmp_path: Path, genesis: Path, keys: dict[int, Any]) -> None:
    """Two honest nodes, each with five peers: three forgers, a withholder and the other honest node.

    The forgers gossip forged signatures, corrupted messages, garbage and floods, and lie in sync; the
    withholder forwards nothing and never answers sync. The honest nodes must store none of the bad
    messages, ban the three forgers, and still converge through their one honest link.
    """
    key = keys[FID]
    victim_public = public_key_bytes(key)
    async with (
        open_devnet(2, tmp_path / "honest", genesis=genesis) as net,
        open_forger(tmp_path / "f1") as f1,
        open_forger(tmp_path / "f2") as f2,
        open_forger(tmp_path / "f3") as f3,
        open_withholder(tmp_path / "w") as withholder,
    ):
        forgers = [f1, f2, f3]
        honest = net.nodes
        with trio.fail_after(30):
            for adversary in [*forgers, withholder]:
                for node in honest:
                    await adversary.host.connect(node.host.info.listen_addrs[0])
            for forger in forgers:
                for node in honest:
                    await forger.gossip.wait_for_subscriber(node.peer_id, forger.gossip.messages_topic)

        genuine = f.cast_add(key, FID, "genuine, but about to be corrupted")
        forged: list[bytes] = []
        for forger in forgers:
            batch = forger.forged_casts(FID, victim_public, 20, network=pb.FARCASTER_NETWORK_DEVNET)
            forged += batch
            await forger.publish_bundle(batch)
            await forger.publish_bundle([forger.corrupted(genuine)])
            await forger.publish_payload(b"\xff\x00 not a bundle")
            for _ in range(20):  # flood
                flood = forger.forged_casts(FID, victim_public, 5, network=pb.FARCASTER_NETWORK_DEVNET)
                forged += flood
                await forger.publish_bundle(flood)

        # Honest traffic on both sides, including a conflict (a remove on one side of a cast on the other).
        on_first = [f.cast_add(key, FID, f"honest one {i}") for i in range(10)]
        on_second = [f.cast_add(keys[OTHER_FID], OTHER_FID, f"honest two {i}") for i in range(10)]
        await _submit_all(honest[0], on_first)
        await _submit_all(honest[1], on_second)
        await honest[1].engine.submit(f.cast_remove(key, FID, on_first[0].hash))

        def done() -> bool:
            banned = all(n.network.is_banned(fg.peer_id) for n in honest for fg in forgers)
            everything = all(holds(n, m) for n in honest for m in on_first[1:] + on_second)
            return banned and everything and len(set(net.roots())) == 1

        with trio.fail_after(60):
            await net.wait_until(done)

        forged_hashes = {bytes(pb.Message.FromString(raw).hash) for raw in forged}
        for node in honest:
            with node.engine.read() as kv:
                assert not any(crdt.has_message(kv, FID, h) for h in forged_hashes)
                assert not crdt.has_message(kv, FID, bytes(genuine.hash))  # the corrupted copy
            assert not node.network.is_banned(withholder.peer_id)  # withholding is not provable
            assert not node.network.is_banned(honest[0].peer_id) and not node.network.is_banned(
                honest[1].peer_id
            )


async def test_network_rpcs_and_subscribe_from_network(
    tmp_path: Path, genesis: Path, keys: dict[int, Any]
) -> None:
    async with open_devnet(2, tmp_path, genesis=genesis) as net:
        first, second = net.nodes
        client = Client(second.rpc_target)
        try:
            received: list[he.HubEvent] = []

            def consume() -> None:
                stream = client.hub.Subscribe(
                    rr.SubscribeRequest(from_id=0, event_types=[he.HUB_EVENT_TYPE_MERGE_MESSAGE]), timeout=30
                )
                for event in stream:
                    received.append(event)
                    stream.cancel()
                    break

            cast = f.cast_add(keys[FID], FID, "from the other node")
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.to_thread.run_sync, consume)
                    await first.engine.submit(cast)
            assert received[0].merge_message_body.message.hash == cast.hash

            # Wait until each side has the other's contact info (with its gRPC address, announced once
            # the server listens) and a finished sync session.
            def known() -> bool:
                return all(
                    other.peer_id in node.network.contacts
                    and node.network.contacts[other.peer_id].info.body.rpc_address.port != 0
                    and node.network.sync_status.get(other.peer_id).last_finished > 0
                    for node, other in ((first, second), (second, first))
                )

            with trio.fail_after(30):
                await net.wait_until(known)
            peers = await client.call(client.hub.GetCurrentPeers, rr.Empty())
            [peer] = [p for p in peers.contacts if p.peer_id == first.peer_id]
            assert peer.connected and peer.score == 0 and peer.banned_until == 0
            assert peer.network == pb.FARCASTER_NETWORK_DEVNET and peer.listen_addrs
            assert peer.rpc_address.port == int(first.rpc_target.rsplit(":", 1)[1])

            status = await client.call(client.hub.GetSyncStatus, rr.SyncStatusRequest(peerId=first.peer_id))
            [entry] = status.sync_status
            assert entry.peerId == first.peer_id and entry.connected and entry.sessions >= 1
            assert entry.ourMessages == 1

            info = await client.call(client.hub.GetInfo, rr.HubInfoRequest(db_stats=True))
            assert info.connected_peers == 1
            with second.engine.read() as kv:
                assert info.root_hash == crdt.trie_root(kv).hash.hex()
        finally:
            client.close()


@pytest.mark.parametrize(
    ("network", "version"),
    [(pb.FARCASTER_NETWORK_MAINNET, 1), (pb.FARCASTER_NETWORK_DEVNET, 99)],
    ids=["other-network", "other-version"],
)
async def test_contact_info_from_another_network_or_version_drops_the_peer(
    tmp_path: Path, genesis: Path, network: int, version: int
) -> None:
    async with open_devnet(1, tmp_path / "n", genesis=genesis) as net, open_forger(tmp_path / "f") as peer:
        node = net[0]
        with trio.fail_after(30):
            await peer.host.connect(node.host.info.listen_addrs[0])
            await peer.gossip.wait_for_subscriber(node.peer_id, peer.gossip.contact_topic)
        info = p2p_pb2.ContactInfo(peer_id=peer.peer_id, protocol_version=version)
        info.body.network = network  # type: ignore[assignment]
        info.body.timestamp = 1
        await peer.gossip.publish(peer.gossip.contact_topic, info.SerializeToString())
        with trio.fail_after(30):
            await net.wait_until(lambda: node.network.is_banned(peer.peer_id))
            await net.wait_until(lambda: peer.peer_id not in node.host.connected_peers())
        assert peer.peer_id not in node.network.contacts


async def test_a_node_left_alone_redials_its_bootstrap_peers(tmp_path: Path, genesis: Path) -> None:
    async with open_devnet(2, tmp_path, genesis=genesis) as net:
        first, second = net.nodes  # the second bootstrapped to the first
        with trio.fail_after(30):
            await net.wait_until(lambda: first.peer_id in second.host.connected_peers())
        await second.host.disconnect(first.peer_id)
        await first.host.disconnect(second.peer_id)
        with trio.fail_after(30):  # the periodic round (2 s in FAST_SETTINGS) notices and redials
            await net.wait_until(lambda: first.peer_id in second.host.connected_peers())
