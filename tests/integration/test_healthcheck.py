"""devnet/healthcheck.py, the container healthcheck, against a real node's gRPC health service."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import trio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from devnet.healthcheck import check_health, main
from node.runner import NodeHandle

REPO = Path(__file__).resolve().parents[2]


async def _main(*argv: str) -> int:
    # Blocking gRPC call: off the trio thread, which the node's server needs.
    return await trio.to_thread.run_sync(main, list(argv))


async def _run(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, *argv], cwd=REPO, capture_stdout=True, capture_stderr=True, check=False
    )


@pytest.fixture
def closed_port() -> int:
    """A loopback port that was just bound and released, so nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def not_serving() -> Iterator[str]:
    """A bare gRPC health service that reports NOT_SERVING, as a node does while it shuts down."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


async def test_a_running_node_is_healthy(node: NodeHandle, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(20):
        assert await _main(node.rpc_target) == 0
        assert capsys.readouterr().out == "SERVING\n"
        # Each API service reports its own status too.
        assert await _main(node.rpc_target, "--service", "HubService") == 0
        status = await trio.to_thread.run_sync(lambda: check_health(node.rpc_target, service="HubService"))
        assert status == "SERVING"


async def test_unknown_service_is_unhealthy(node: NodeHandle, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(20):
        assert await _main(node.rpc_target, "--service", "NoSuchService") == 1
    assert "NOT_FOUND" in capsys.readouterr().err


async def test_not_serving_is_unhealthy(not_serving: str, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(20):
        assert await _main(not_serving) == 1
    assert capsys.readouterr().out == "NOT_SERVING\n"


async def test_nothing_listening_is_unhealthy(closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(20):
        assert await _main(f"127.0.0.1:{closed_port}", "--timeout", "5") == 1
    err = capsys.readouterr().err
    assert err.startswith("unhealthy: UNAVAILABLE"), err


@pytest.mark.parametrize(
    "argv", [[], ["localhost"], ["127.0.0.1:99999"], ["127.0.0.1:2283", "--timeout", "0"]]
)
async def test_bad_arguments_exit_1_not_docker_reserved_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _main(*argv) == 1
    assert capsys.readouterr().err


async def test_runs_as_a_module_the_way_the_image_runs_it(node: NodeHandle) -> None:
    with trio.fail_after(60):
        result = await _run("-m", "devnet.healthcheck", node.rpc_target)
    assert (result.returncode, result.stdout) == (0, b"SERVING\n"), result.stderr


async def test_probe_imports_nothing_of_the_node() -> None:
    """Docker runs the probe every few seconds in every container: it must not pay for importing the node
    and libp2p (over a second of CPU), which needs `devnet/__init__` to import its submodules lazily."""
    probe = (
        "import sys, devnet.healthcheck; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'node', 'p2p', 'libp2p', 'trio'})))"
    )
    with trio.fail_after(30):
        result = await _run("-c", probe)
    assert (result.returncode, result.stdout) == (0, b"\n"), result
