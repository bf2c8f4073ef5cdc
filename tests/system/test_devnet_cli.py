"""`stateless devnet up|status|down` as a user runs them: real node processes, detached and in the foreground.

A cast posted with a devnet account's key to the first node of a detached devnet reaches the third;
`down` leaves no process behind; a second `up` in a running devnet's directory is refused; Ctrl-C stops a
foreground devnet with a summary; a port in use fails with one line naming the node, and nothing keeps running.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from devnet import node_process_alive
from tests.processes import processes_under
from tests.system.conftest import REPO, node_env, stateless_command
from tests.system.test_cli_walkthrough import cli, cli_json

pytestmark = pytest.mark.system

TIMEOUT = 90.0


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    """A devnet directory; at teardown nothing started under it may still run (leftovers are killed)."""
    directory = tmp_path.resolve() / "dn"
    yield directory
    left = processes_under(tmp_path.resolve())
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "processes outlived the test"


class Lines:
    """A child's output stream read line by line in a thread, so the test can wait with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """The first new line for which `predicate(line)` holds; AssertionError at EOF or the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no such line within {timeout} s; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"stream ended; saw {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line

    def rest(self, timeout: float = TIMEOUT) -> list[str]:
        """Every remaining line until EOF."""
        self._thread.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return self.seen
            if line is not None:
                self.seen.append(line)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_detached_devnet_up_status_cast_down(devnet_dir: Path) -> None:
    d = str(devnet_dir)
    up = cli("devnet", "up", "--nodes", "3", "--detach", "--dir", d, "--log-level", "warning")
    for name in ("node-0", "node-1", "node-2"):
        assert name in up.stdout
    assert "fid-1.key" in up.stdout

    # `up` returns once every node has a peer, so no waiting here.
    status = cli_json("devnet", "status", "--dir", d)
    nodes = status["nodes"]
    assert status["running"] == 3 and [n["state"] for n in nodes] == ["running"] * 3, status
    assert all(n["peers"] >= 1 for n in nodes), nodes
    pids = [n["pid"] for n in nodes]
    assert "running" in cli("devnet", "status", "--dir", d).stdout

    second = cli("devnet", "up", "--nodes", "1", "--dir", d, check=False)
    assert second.returncode == 1
    assert error_lines(second.stderr) == [second.stderr.strip()]
    assert "already running" in second.stderr and "devnet down" in second.stderr

    # A cast signed with a devnet account's key reaches node 3 (replayed from its first event on, so
    # the order of the two commands does not matter).
    listener = subprocess.Popen(
        [*stateless_command(), "client", "subscribe", "--from-id", "0", "--type", "merge_message",
         "--count", "1", "--rpc", nodes[2]["rpc"]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=node_env(),
    )  # fmt: skip
    try:
        key = devnet_dir / "keys" / "fid-1.key"
        cli("client", "cast", "hello devnet", "--fid", "1", "--key", str(key), "--rpc", nodes[0]["rpc"])
        out, err = listener.communicate(timeout=TIMEOUT)
    finally:
        listener.kill()
        listener.wait()
    assert listener.returncode == 0, err
    assert "hello devnet" in out

    down = cli("devnet", "down", "--dir", d)
    assert down.stdout.count(" stopped") == 3, down.stdout
    # What the devnet did, summed from the nodes' metrics before they stopped: the cast merged on node 0
    # (local) and reached the two others (by gossip or sync).
    assert "totals from /metrics of 3 of 3 node(s)" in down.stdout, down.stdout
    merged = next(line for line in down.stdout.splitlines() if "messages merged" in line)
    assert merged.split()[2] == "3" and "local 1" in merged, merged
    assert not any(node_process_alive(pid) for pid in pids)
    assert not (devnet_dir / "devnet.json").exists()
    assert (devnet_dir / "node-0").is_dir()  # data kept without --purge
    gone = cli("devnet", "status", "--dir", d, check=False)
    assert gone.returncode == 1 and "no devnet" in gone.stderr
    cli("devnet", "down", "--dir", d, "--purge")
    assert not devnet_dir.exists()


def test_foreground_devnet_stops_on_ctrl_c(devnet_dir: Path) -> None:
    proc = subprocess.Popen(
        [*stateless_command(), "devnet", "up", "--nodes", "2", "--dir", str(devnet_dir), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO,
        env=node_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        out.wait_for(lambda line: line.startswith("node-1 "))  # the table
        first_status = err.wait_for(lambda line: line.startswith("["))
        assert "node-0:" in first_status and "node-1:" in first_status
        pids = [n["pid"] for n in json.loads((devnet_dir / "devnet.json").read_text())["nodes"]]
        assert all(node_process_alive(pid) for pid in pids)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0, "\n".join(err.rest())
        summary = "\n".join(out.rest())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped 2 nodes after" in summary
    assert summary.count("exit code 0") == 2
    assert "trie roots: equal" in summary
    assert "totals from /metrics of 2 of 2 node(s)" in summary
    assert not any(node_process_alive(pid) for pid in pids)
    assert not (devnet_dir / "devnet.json").exists()


def _base_port_with_second_taken() -> tuple[int, socket.socket]:
    """A base port P whose node-1 gRPC port P+1 is held by a listening socket (returned), the rest free."""
    for _ in range(20):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        base = taken.getsockname()[1] - 1
        needed = [base, base + 100, base + 101, base + 200, base + 201]
        if base >= 1024 and base + 201 <= 65_535 and all(_free(p) for p in needed):
            return base, taken
        taken.close()
    raise AssertionError("found no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_port_in_use_fails_with_one_line_and_leaves_nothing(devnet_dir: Path) -> None:
    base, taken = _base_port_with_second_taken()
    with taken:
        up = cli(
            "devnet", "up", "--nodes", "2", "--base-port", str(base), "--dir", str(devnet_dir), check=False
        )
    assert up.returncode == 1
    errors = error_lines(up.stderr)
    assert len(errors) == 1 and "Traceback" not in up.stderr, up.stderr
    assert errors[0].startswith("error: node-1 failed to start: ")
    assert f"{base + 1}" in errors[0] and "in use" in errors[0]
    assert "node-0 ready" in up.stderr  # the first node did start, and was stopped again
    assert processes_under(devnet_dir) == []
    assert not (devnet_dir / "devnet.json").exists()


def test_invalid_options_are_usage_errors(devnet_dir: Path) -> None:
    for args, words in [
        (["--nodes", "0"], "from 1 to 64"),
        (["--nodes", "65"], "from 1 to 64"),
        (["--base-port", "80"], "well-known"),
        (["--base-port", "65500"], "too high"),
        (["--mode", "0=forge"], "node 0 must be honest"),
        (["--mode", "1=evil"], "unknown adversary mode 'evil'"),
        (["--mode", "forge"], "expected I=MODE"),
        (["--nodes", "2", "--mode", "5=lie"], "node 5 does not exist"),
        (["--mode", "1=lie", "--mode", "1=forge"], "node 1 is given two modes"),
        (["--max-peers", "0"], "from 1 to 64"),
    ]:
        run = cli("devnet", "up", *args, "--dir", str(devnet_dir), check=False)
        assert run.returncode == 2, run.stderr
        assert error_lines(run.stderr) == [run.stderr.strip()] and words in run.stderr
    assert not devnet_dir.exists()


def test_a_devnet_with_an_adversary(devnet_dir: Path) -> None:
    d = str(devnet_dir)
    up = cli(
        "devnet",
        "up",
        "--nodes",
        "3",
        "--mode",
        "1=withhold",
        "--detach",
        "--dir",
        d,
        "--log-level",
        "warning",
    )
    table = {line.split()[0]: line.split() for line in up.stdout.splitlines() if line.startswith("node-")}
    assert [table[name][1] for name in ("node-0", "node-1", "node-2")] == ["honest", "withhold", "honest"]
    assert table["node-1"][3] == "-"  # no gRPC
    status = cli_json("devnet", "status", "--dir", d)
    assert [(n["mode"], n["state"]) for n in status["nodes"]] == [
        ("honest", "running"),
        ("withhold", "running"),
        ("honest", "running"),
    ], status
    assert status["roots"] == "equal"
    down = cli("devnet", "down", "--dir", d)
    assert down.stdout.count(" stopped") == 3 and "of 2 of 2 node(s)" in down.stdout, down.stdout
