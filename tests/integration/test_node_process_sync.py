"""NodeProcessSync: devnet's blocking launcher (system tests, benchmarks) starts a real `stateless node
start`, reads its banner from `<data dir>/stdout.log` and stops it with SIGINT; a start that fails, hangs or
prints half a banner stops the process and names the node and the cause."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import grpc
import pytest

from devnet import NodeProcessSync, node_process_alive, node_start_argv, stop_node_processes
from protocols.errors import HubError
from protocols.proto import request_response_pb2 as rr
from protocols.proto import rpc_pb2_grpc

START_TIMEOUT = 60.0


def python(code: str) -> list[str]:
    """A stand-in for a node: this interpreter running `code`."""
    return [sys.executable, "-c", code]


def test_node_start_argv_is_a_loopback_devnet_hub(tmp_path: Path) -> None:
    argv = node_start_argv(
        tmp_path, genesis=tmp_path / "g.json", bootstrap=["/ip4/1"], extra_args=["--x"], command=()
    )
    assert argv[:4] == ["node", "start", "--data-dir", str(tmp_path)]
    assert argv[argv.index("--rpc-port") + 1] == argv[argv.index("--gossip-port") + 1] == "0"
    assert argv[argv.index("--genesis") + 1] == str(tmp_path / "g.json")
    assert argv[-3:] == ["--bootstrap", "/ip4/1", "--x"]
    assert "--metrics-port" not in argv


def test_start_read_banner_and_stop_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # `env` execs the node: a prefix such as `ip netns exec NS` leaves the node's own pid and signals.
    hub = NodeProcessSync(
        "hub",
        node_start_argv(data_dir, log_level="warning"),
        data_dir,
        prefix=["env"],
        start_timeout=START_TIMEOUT,
    )
    other = NodeProcessSync("never-started", ["false"], tmp_path / "other")
    with hub:
        node = hub.node
        assert node.name == "hub" and node.pid == hub.pid and node.data_dir == data_dir
        assert node_process_alive(hub.pid, data_dir)
        assert node.peer_id and hub.libp2p_addrs[0].endswith(f"/p2p/{node.peer_id}")
        assert (node.log_path, node.stdout_path) == (data_dir / "node.log", data_dir / "stdout.log")
        with grpc.insecure_channel(hub.rpc_target) as channel:
            info = rpc_pb2_grpc.HubServiceStub(channel).GetInfo(rr.HubInfoRequest(), timeout=10)
        assert info.rpc_address == hub.rpc_target
        results = stop_node_processes([hub, other])
    assert [(r.name, r.outcome) for r in results] == [("hub", "stopped"), ("never-started", "not running")]
    assert results[0].clean and results[0].pid == node.pid
    assert hub.stop() == results[0]  # leaving `with` stopped nothing more
    assert not node_process_alive(node.pid)
    assert node.stdout_path.read_text().splitlines()[-1] == "stopped"


def test_a_node_that_fails_to_start_is_named_with_its_cause(tmp_path: Path) -> None:
    # Another "node" holds the data dir lock, so this one refuses to start.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    lock = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    hub = NodeProcessSync("hub-7", node_start_argv(data_dir), data_dir, start_timeout=START_TIMEOUT)
    try:
        with pytest.raises(HubError) as caught:
            hub.launch()
    finally:
        os.close(lock)
    assert caught.value.code == "unavailable"
    message = caught.value.message
    assert message.startswith("hub-7 failed to start: ")
    assert "in use by another node" in message
    assert f"log {data_dir / 'node.log'}" in message
    assert hub.returncode not in (0, None)


def test_an_exit_before_ready_reports_the_error_line(tmp_path: Path) -> None:
    code = "import sys; print('starting', flush=True); sys.exit('error: port 1 in use')"
    hub = NodeProcessSync("hub", python(code), tmp_path)
    with pytest.raises(
        HubError, match=r"^unavailable: hub failed to start: port 1 in use \(exit code 1; log "
    ):
        hub.launch()


def test_a_command_that_cannot_run(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-stateless"
    with pytest.raises(HubError, match=f"^unavailable: hub failed to start: {missing}: No such file"):
        NodeProcessSync("hub", [str(missing)], tmp_path).launch()


def test_too_slow_or_half_a_banner_stops_the_process(tmp_path: Path) -> None:
    slow = NodeProcessSync(
        "slow", python("import time; time.sleep(60)"), tmp_path / "slow", start_timeout=0.2
    )
    with pytest.raises(HubError, match=r"^unavailable: slow did not print its ready line within 0.2 s"):
        slow.launch()
    assert slow.returncode is not None  # stopped by SIGINT (a KeyboardInterrupt in the sleep)
    half = NodeProcessSync(
        "half", python("import time; print('ready', flush=True); time.sleep(60)"), tmp_path / "half"
    )
    with pytest.raises(HubError, match=r"^unavailable: half printed no peer id, libp2p or gRPC address"):
        half.launch()
    assert half.returncode is not None
    with pytest.raises(HubError, match="half is not ready"):
        _ = half.rpc_target
