"""open_process_devnet: real `stateless node start` processes wired by --bootstrap, stopped cleanly; a node
that fails half way stops the ones already started and names itself and the cause."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from devnet import (
    ProcessDevnet,
    ProcessNode,
    node_process_alive,
    open_devnet,
    open_process_devnet,
    start_process_devnet,
)
from protocols import crdt
from protocols.errors import HubError
from protocols.proto import hub_event_pb2 as he
from protocols.proto import request_response_pb2 as rr
from tests import factories as f
from tests.processes import processes_under

START_TIMEOUT = 60.0


@pytest.fixture
def base_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path.resolve() / "devnet"  # resolved: the devnet records absolute paths
    assert processes_under(tmp_path) == [], "a node process outlived its test"


def first_merge_with(stub: object, cast_hash: bytes) -> he.HubEvent:
    """Block until the node's event stream (replayed from its first event) shows the merge of `cast_hash`."""
    request = rr.SubscribeRequest(event_types=[he.HUB_EVENT_TYPE_MERGE_MESSAGE], from_id=0)
    stream = stub.Subscribe(request, timeout=START_TIMEOUT)  # type: ignore[attr-defined]
    try:
        for event in stream:
            if event.merge_message_body.message.hash == cast_hash:
                return event  # type: ignore[no-any-return]
    finally:
        stream.cancel()
    raise AssertionError("the event stream ended without the cast")


async def test_two_processes_gossip_converge_and_stop_cleanly(base_dir: Path) -> None:
    async with open_process_devnet(2, base_dir, accounts=1, log_level="warning") as net:
        assert [n.name for n in net] == ["node-0", "node-1"]
        assert net[0].peer_id != net[1].peer_id
        assert net.genesis == base_dir / "genesis.json"
        with trio.fail_after(START_TIMEOUT):
            await net.wait_for_peers(1)
        account = net.accounts[0]
        cast = f.cast_add(account.key, account.fid, "between two processes")
        await trio.to_thread.run_sync(partial(net.stub(0).SubmitMessage, cast, timeout=10))
        with trio.fail_after(START_TIMEOUT):
            event = await trio.to_thread.run_sync(
                first_merge_with, net.stub(1), cast.hash, abandon_on_cancel=True
            )
            await net.wait_converged()
        assert event.merge_message_body.message.data.cast_add_body.text == "between two processes"
        info = await net.get_info(1)
        assert info.db_stats.num_messages == 1
        pids = [n.pid for n in net]
    results = await net.stop()  # idempotent: what the context's exit already did
    assert [(r.name, r.outcome, r.returncode) for r in results] == [
        ("node-0", "stopped", 0),
        ("node-1", "stopped", 0),
    ]
    assert all(r.clean for r in results)
    assert not any(node_process_alive(pid) for pid in pids)
    assert (base_dir / "node-1" / "stdout.log").read_text().splitlines()[-1] == "stopped"


async def test_a_node_failing_half_way_stops_the_others(base_dir: Path) -> None:
    # Another "node" holds node-1's data dir lock, so node-1 refuses to start.
    (base_dir / "node-1").mkdir(parents=True)
    lock = os.open(base_dir / "node-1" / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    started: list[ProcessNode] = []

    def on_started(_net: ProcessDevnet, node: ProcessNode) -> None:
        assert node_process_alive(node.pid, node.data_dir)
        started.append(node)

    try:
        with trio.fail_after(2 * START_TIMEOUT), pytest.raises(HubError) as caught:
            await start_process_devnet(3, base_dir, log_level="warning", on_started=on_started)
    finally:
        os.close(lock)
    message = caught.value.message
    assert message.startswith("node-1 failed to start: ")
    assert "in use by another node" in message
    assert str(base_dir / "node-1" / "node.log") in message
    assert [n.name for n in started] == ["node-0"]
    assert not node_process_alive(started[0].pid)
    assert not await trio.Path(base_dir / "node-2").exists()


async def test_a_node_too_slow_to_start_is_stopped(base_dir: Path) -> None:
    with trio.fail_after(START_TIMEOUT), pytest.raises(HubError, match="node-0 did not print its ready line"):
        await start_process_devnet(2, base_dir, start_timeout=0.01)


async def test_bad_options_start_nothing(base_dir: Path) -> None:
    with pytest.raises(ValueError, match="1 to 64"):
        await start_process_devnet(0, base_dir)
    with pytest.raises(ValueError, match="well-known"):
        await start_process_devnet(2, base_dir, rpc_base_port=100)
    with pytest.raises(ValueError, match="log level"):
        await start_process_devnet(1, base_dir, log_level="loud")
    with pytest.raises(ValueError, match="node 0 must be honest"):
        await start_process_devnet(2, base_dir, modes={0: "forge"})
    with pytest.raises(ValueError, match="node 5 does not exist"):
        await start_process_devnet(2, base_dir, modes={5: "forge"})
    with pytest.raises(ValueError, match="unknown mode 'nice'"):
        await start_process_devnet(2, base_dir, modes={1: "nice"})
    assert not await trio.Path(base_dir).exists()


def _banned(stub: object) -> set[str]:
    peers = stub.GetCurrentPeers(rr.Empty(), timeout=5)  # type: ignore[attr-defined]
    return {c.peer_id for c in peers.contacts if c.banned_until}


async def test_adversarial_nodes_are_banned_and_honest_ones_still_converge(base_dir: Path) -> None:
    modes = {1: "forge", 2: "flood", 3: "eclipse"}
    async with open_process_devnet(5, base_dir, accounts=1, log_level="warning", modes=modes) as net:
        assert [n.mode for n in net] == ["honest", "forge", "flood", "eclipse", "honest"]
        assert [bool(n.rpc_target) for n in net] == [True, False, False, False, True]
        with pytest.raises(HubError, match="adversary"):
            net.stub(1)
        with trio.fail_after(START_TIMEOUT):
            await net.wait_for_peers(1)  # the honest nodes only
            # The forger and the flooder provably lie (bad signatures): node 0 bans both, whatever
            # else is going on (the eclipser's sybils keep knocking on node 0 meanwhile).
            liars = {net[1].peer_id, net[2].peer_id}

            async def both_banned() -> bool:
                return liars <= await trio.to_thread.run_sync(_banned, net.stub(0))

            await net.poll_until(both_banned)
        account = net.accounts[0]
        cast = f.cast_add(account.key, account.fid, "past the adversaries")
        await trio.to_thread.run_sync(partial(net.stub(0).SubmitMessage, cast, timeout=10))
        with trio.fail_after(START_TIMEOUT):
            await trio.to_thread.run_sync(first_merge_with, net.stub(4), cast.hash, abandon_on_cancel=True)
            await net.wait_converged()  # the honest nodes only
        statuses = await net.status()
        assert [s.running for s in statuses] == [True] * 5
        assert [s.info is None for s in statuses] == [False, True, True, True, False]
    results = await net.stop()
    assert all(r.clean for r in results), results
    for node in net.nodes[1:4]:
        lines = node.stdout_path.read_text().splitlines()
        assert f"  mode       {node.mode}" in lines and lines[-1] == "stopped"


async def test_in_process_devnet_with_test_accounts(tmp_path: Path) -> None:
    """open_devnet(accounts=K): the same genesis and key files, and wait_for_peers on in-process nodes."""
    with pytest.raises(ValueError, match="not both"):
        async with open_devnet(1, tmp_path / "x", genesis=tmp_path / "g.json", accounts=1):
            pass
    async with open_devnet(2, tmp_path / "net", accounts=2) as net:
        assert [a.fid for a in net.accounts] == [1, 2]
        assert net.genesis == tmp_path / "net" / "genesis.json"
        assert all(a.key_file is not None and a.key_file.name == f"fid-{a.fid}.key" for a in net.accounts)
        with trio.fail_after(30):
            await net.wait_for_peers(1)
        cast = f.cast_add(net.accounts[1].key, 2, "signed by a devnet account")
        await net[0].engine.submit(cast)

        def on_node_1() -> bool:
            with net[1].engine.read() as kv:
                return crdt.has_message(kv, 2, cast.hash)

        with trio.fail_after(30):
            await net.wait_until(on_node_1)
