"""Fixtures for system tests: real `stateless node start` processes on loopback with port 0.

`NodeProcess` starts a node, reads its banner line by line (with a deadline, never a sleep) to learn the
gRPC address, and stops it with SIGINT or SIGKILL. The `node_procs` fixture kills whatever a test left
running, so a failing test never leaks a node.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.messages import public_key_bytes

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def stateless_command() -> list[str]:
    """How to run the `stateless` CLI of this source tree.

    The venv's console script when the package is installed; otherwise the same entry point through
    this interpreter (the tree is then importable because the node runs with the repo as cwd/PYTHONPATH).
    """
    script = Path(sys.executable).parent / "stateless"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())"]


def node_env() -> dict[str, str]:
    """Environment for child processes: unbuffered output, this tree first on the import path."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


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
    args = ["node", "start", "--data-dir", str(data_dir), "--network", "devnet", "--rpc-port", "0"]
    args += ["--gossip-port", "0"]
    if genesis is not None:
        args += ["--genesis", str(genesis)]
    return args


class NodeProcess:
    """One `stateless node start` child process."""

    def __init__(
        self,
        data_dir: Path,
        genesis: Path | None,
        log_dir: Path,
        name: str,
        extra: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        """`prefix` goes before the command, e.g. `ip netns exec NS` to run the node in a namespace."""
        self.data_dir = data_dir
        self.log_path = log_dir / f"{name}.stderr"
        self._log: IO[str] = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*(prefix or []), *stateless_command(), *start_args(data_dir, genesis), *(extra or [])],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            env=node_env(),
        )
        self.stdout: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()
        self.rpc_target = ""
        self.libp2p_addrs: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)  # EOF: the process closed stdout (exited)

    def stderr_tail(self, n: int = 20) -> str:
        """The last lines the node logged (for assertion messages)."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def _next_line(self, deadline: float) -> str | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"node gave no output in time; stdout so far {self.stdout}\n{self.stderr_tail()}"
            )
        try:
            line = self._lines.get(timeout=remaining)
        except queue.Empty:
            raise AssertionError(
                f"node gave no output in time; stdout so far {self.stdout}\n{self.stderr_tail()}"
            ) from None
        if line is not None:
            self.stdout.append(line)
        return line

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        """Block until the banner's `ready` line; returns the gRPC HOST:PORT."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line(deadline)
            if line is None:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
                raise AssertionError(f"node exited with {code} before ready:\n{self.stderr_tail()}")
            if line.strip().startswith("gRPC"):
                self.rpc_target = line.split()[-1]
            if line.strip().startswith("libp2p"):
                self.libp2p_addrs.append(line.split()[-1])
            if line.startswith("ready"):
                assert self.rpc_target, f"banner had no gRPC line: {self.stdout}"
                return self.rpc_target

    def read_rest(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Every remaining stdout line until EOF."""
        deadline = time.monotonic() + timeout
        while self._next_line(deadline) is not None:
            pass
        return self.stdout

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl-C: SIGINT, then wait for the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def kill(self) -> None:
        """kill -9."""
        self.proc.send_signal(signal.SIGKILL)
        self.wait(STOP_TIMEOUT)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"node did not exit within {timeout} s:\n{self.stderr_tail()}") from None
        self._reader.join(timeout)
        self._log.close()
        return code

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        if not self._log.closed:
            self._log.close()


class NodeProcesses:
    """Starts nodes for one test and kills leftovers at teardown."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[NodeProcess] = []

    def start(
        self,
        data_dir: Path,
        genesis: Path | None = None,
        extra: list[str] | None = None,
        prefix: list[str] | None = None,
    ) -> NodeProcess:
        node = NodeProcess(data_dir, genesis, self._log_dir, f"node{len(self._started)}", extra, prefix)
        self._started.append(node)
        return node

    def cleanup(self) -> None:
        for node in self._started:
            node.cleanup()


@pytest.fixture
def node_procs(tmp_path: Path) -> Iterator[NodeProcesses]:
    procs = NodeProcesses(tmp_path)
    try:
        yield procs
    finally:
        procs.cleanup()
