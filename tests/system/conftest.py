"""Fixtures for system tests: real `stateless node start` processes on loopback with port 0.

`NodeProcess` starts a node with devnet's blocking launcher (`devnet.NodeProcessSync`: its stdout and log
go to `stdout.log` and `node.log` in the data dir), waits for its banner (with a deadline, never a sleep)
to learn the gRPC address, and stops it with SIGINT or SIGKILL. The `node_procs` fixture kills whatever a
test left running, so a failing test never leaks a node.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devnet import NodeProcessSync, node_command, node_start_argv
from devnet import node_env as node_env  # the environment of CLI processes, for the tests
from protocols.messages import public_key_bytes

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
#: How to run the `stateless` CLI of this source tree.
stateless_command = node_command


def write_genesis(
    path: Path, accounts: list[tuple[int, Ed25519PrivateKey]], *, storage_units: int = 1
) -> Path:
    """A devnet genesis file registering each (fid, signer key)."""
    doc = {
        "network": "devnet",
        "accounts": [
            {"fid": fid, "signers": ["0x" + public_key_bytes(key).hex()], "storage_units": storage_units}
            for fid, key in accounts
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def start_args(data_dir: Path, genesis: Path | None) -> list[str]:
    """`node start` arguments for a loopback node on free ports."""
    return node_start_argv(data_dir, genesis=genesis, command=())


class NodeProcess:
    """One `stateless node start` child process, spawned at once; `wait_ready` reads its banner."""

    def __init__(
        self,
        data_dir: Path,
        genesis: Path | None,
        name: str,
        extra: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        """`prefix` goes before the command, e.g. `ip netns exec NS` to run the node in a namespace."""
        argv = node_start_argv(data_dir, genesis=genesis, extra_args=extra or ())
        self.process = NodeProcessSync(name, argv, data_dir, prefix=prefix or (), stop_timeout=STOP_TIMEOUT)
        self.process.spawn()
        assert self.process.proc is not None
        self.proc = self.process.proc
        self.log_path = self.process.log_path

    @property
    def rpc_target(self) -> str:
        return self.process.rpc_target

    @property
    def libp2p_addrs(self) -> tuple[str, ...]:
        return self.process.libp2p_addrs

    def stderr_tail(self, n: int = 20) -> str:
        """The last lines the node logged (for assertion messages)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """Block until the banner's `ready` line; returns the gRPC HOST:PORT."""
        return self.process.wait_ready(timeout).rpc_target

    def read_rest(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Every line the node printed, once it has exited."""
        self.wait(timeout)
        return self.process.stdout_path.read_text(errors="replace").splitlines()

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl-C: SIGINT, then wait for the exit code."""
        self.process.interrupt()
        return self.wait(timeout)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node did not exit within {timeout} s:\n{self.stderr_tail()}") from None

    def cleanup(self) -> None:
        self.process.kill()


class NodeProcesses:
    """Starts nodes for one test and kills leftovers at teardown."""

    def __init__(self) -> None:
        self._started: list[NodeProcess] = []

    def start(
        self,
        data_dir: Path,
        genesis: Path | None = None,
        extra: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> NodeProcess:
        node = NodeProcess(data_dir, genesis, f"node{len(self._started)}", extra, prefix)
        self._started.append(node)
        return node

    def cleanup(self) -> None:
        for node in self._started:
            node.cleanup()


@pytest.fixture
def node_procs() -> Iterator[NodeProcesses]:
    procs = NodeProcesses()
    try:
        yield procs
    finally:
        procs.cleanup()
