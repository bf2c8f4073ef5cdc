"""One `stateless node start` process (or `devnet adversary` process): its command line, start, banner, stop.

    argv = node_start_argv(data_dir)
    node, proc = await launch_node("hub", argv, data_dir, start_timeout=60, stop_timeout=20)
    ...
    await stop_launched_nodes([(node, proc)], stop_timeout=20)

Starting a node runs its command line (`node_start_argv`, `node_command`, `node_env`) and follows its
stdout to the `ready` line of its banner (`parse_banner`), which gives the `ProcessNode`: its pid, peer id
and addresses. If it exits first, takes longer than `start_timeout` or prints an incomplete banner, it is
stopped and HubError `unavailable` names it and the cause taken from its log (a port in use, ...).
Stopping sends SIGINT (Ctrl-C), and SIGKILL to whatever still runs after `stop_timeout`.

Each node runs in a session of its own: a terminal's Ctrl-C reaches only the parent, which then stops the
nodes in order (a node never gets a second SIGINT while it shuts down), and a detached devnet outlives the
command that started it. A node's stdout goes to `<data dir>/stdout.log` and its log (stderr) to
`<data dir>/node.log`: files rather than pipes, so a node never writes into a pipe whose reader is gone. The
banner is read back from the file as it grows.

The same node, three ways:
- async (trio), as children: `launch_node` and `stop_launched_nodes` (what devnet/_processes.py builds on);
- async, not our children (a detached devnet found again by pid): `node_process_alive` and `stop_node_pids`;
- blocking code (system tests, benchmarks), without trio: `NodeProcessSync` and `stop_node_processes`, with
  the same files, banner parsing, failure messages and SIGINT-then-SIGKILL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import trio

from devnet._modes import HONEST
from protocols.errors import HubError

START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 20.0
#: After SIGKILL a process is gone within milliseconds unless the kernel is stuck; do not wait forever.
KILL_TIMEOUT: Final = 5.0
LOG_FILE: Final = "node.log"
STDOUT_FILE: Final = "stdout.log"
#: How often the growing stdout file is re-read while a node starts (its exit is noticed at once).
_BANNER_POLL: Final = 0.05
_STOPPED: Final = "stopped"
_KILLED: Final = "killed"
_NOT_RUNNING: Final = "not running"


# ------------------------------------------------------------------------------------------------ banner


@dataclass(frozen=True, slots=True)
class Banner:
    """What `stateless node start` printed before `ready` (see node.runner.print_banner)."""

    peer_id: str = ""
    libp2p_addrs: tuple[str, ...] = ()
    rpc_target: str = ""
    metrics_url: str | None = None
    data_dir: str = ""
    ready: bool = False
    #: `honest` for `node start`; an adversary prints its mode.
    mode: str = HONEST


_BANNER_LINE: Final = re.compile(r"^\s+(peer id|libp2p|gRPC|metrics|data dir|mode)\s+(\S.*?)\s*$")


def parse_banner(lines: Iterable[str]) -> Banner:
    """Parse a node's banner lines; unknown lines are ignored, so the banner may grow new rows."""
    peer_id, rpc, data_dir, mode = "", "", "", HONEST
    metrics: str | None = None
    addrs: list[str] = []
    for line in lines:
        if line.startswith("ready"):
            return Banner(peer_id, tuple(addrs), rpc, metrics, data_dir, ready=True, mode=mode)
        match = _BANNER_LINE.match(line)
        if match is None:
            continue
        label, value = match.groups()
        if label == "peer id":
            peer_id = value
        elif label == "libp2p":
            addrs.append(value)
        elif label == "gRPC":
            rpc = value
        elif label == "metrics":
            metrics = value
        elif label == "mode":
            mode = value
        else:
            data_dir = value
    return Banner(peer_id, tuple(addrs), rpc, metrics, data_dir, ready=False, mode=mode)


# ------------------------------------------------------------------------------------------------ node


@dataclass(frozen=True, slots=True)
class ProcessNode:
    """One node process of a devnet: where it listens and where its files are."""

    name: str
    pid: int
    peer_id: str
    libp2p_addrs: tuple[str, ...]
    rpc_target: str
    metrics_url: str | None
    data_dir: Path
    log_path: Path
    stdout_path: Path
    #: `honest`, or the adversary mode it runs (devnet/_modes.py); an adversary has no gRPC.
    mode: str = HONEST

    @property
    def honest(self) -> bool:
        """Whether this is a hub node (not an adversary)."""
        return self.mode == HONEST

    @property
    def libp2p_addr(self) -> str:
        """The first libp2p address (with /p2p/<peer id>): what other nodes bootstrap to."""
        return self.libp2p_addrs[0]

    def to_json(self) -> dict[str, Any]:
        """The node as a JSON object (an entry of devnet.json)."""
        return {
            "name": self.name,
            "pid": self.pid,
            "peer_id": self.peer_id,
            "libp2p": list(self.libp2p_addrs),
            "rpc": self.rpc_target,
            "metrics": self.metrics_url,
            "data_dir": str(self.data_dir),
            "log": str(self.log_path),
            "stdout": str(self.stdout_path),
            "mode": self.mode,
        }

    @classmethod
    def from_json(cls, doc: Any) -> ProcessNode:
        """Inverse of `to_json`; raises ValueError on a malformed entry."""
        if not isinstance(doc, dict):
            raise ValueError("a node entry must be an object")
        try:
            metrics = doc.get("metrics")
            node = cls(
                name=str(doc["name"]),
                pid=int(doc["pid"]),
                peer_id=str(doc["peer_id"]),
                libp2p_addrs=tuple(str(a) for a in doc["libp2p"]),
                rpc_target=str(doc["rpc"]),
                metrics_url=None if metrics is None else str(metrics),
                data_dir=Path(doc["data_dir"]),
                log_path=Path(doc["log"]),
                stdout_path=Path(doc["stdout"]),
                mode=str(doc.get("mode", HONEST)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed node entry: {e!r}") from None
        if node.pid <= 0:
            raise ValueError(f"node {node.name} has pid {node.pid}")
        return node


def _console_script() -> Path | None:
    script = Path(sys.executable).parent / "stateless"
    return script if script.is_file() and os.access(script, os.X_OK) else None


def node_command() -> list[str]:
    """How to run `stateless` from this installation.

    The console script beside this interpreter when there is one; otherwise the same entry point through
    this interpreter (then `node_env` puts this source tree on the import path).
    """
    script = _console_script()
    if script is not None:
        return [str(script)]
    return [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())"]


def node_env() -> dict[str, str]:
    """Environment of node processes: ours, unbuffered; without a console script, this tree importable."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if _console_script() is None:
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def node_start_argv(
    data_dir: Path,
    *,
    rpc_port: int = 0,
    gossip_port: int = 0,
    metrics_port: int | None = None,
    log_level: str = "info",
    genesis: Path | None = None,
    bootstrap: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
) -> list[str]:
    """The command line of a devnet hub: `node start` on `data_dir` (0 = any free port).

    `command` is how to run `stateless` (default `node_command()`; `()` gives the arguments alone);
    `metrics_port` None passes no `--metrics-port`; `extra_args` come last.
    """
    argv = [
        *(node_command() if command is None else command), "node", "start", "--data-dir", str(data_dir),
        "--network", "devnet", "--rpc-port", str(rpc_port), "--gossip-port", str(gossip_port),
        "--log-level", log_level,
    ]  # fmt: skip
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port)]
    if genesis is not None:
        argv += ["--genesis", str(genesis)]
    if bootstrap:
        argv += ["--bootstrap", *bootstrap]
    return argv + list(extra_args)


@functools.cache
def node_supports_metrics_port() -> bool:
    """Whether this installation's `node start` takes `--metrics-port` (asked of its own parser)."""
    from node.cli import UsageError, build_parser  # the CLI's parser, not needed otherwise

    try:
        build_parser().parse_args(["node", "start", "--data-dir", ".", "--metrics-port", "0"])
    except UsageError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ liveness


def _proc_state(pid: int) -> str | None:
    """The state letter in /proc/<pid>/stat (Z = zombie), or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "X" if Path("/proc/self").exists() else None
    except OSError:
        return None
    # The command name in parentheses may contain spaces and parentheses: the state follows the last ')'.
    rest = stat.rpartition(")")[2].split()
    return rest[0] if rest else None


def _proc_args(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def node_process_alive(pid: int, data_dir: Path | None = None) -> bool:
    """Whether `pid` runs (a zombie does not count); with `data_dir`, also that it is the node using it.

    The data dir check (from /proc/<pid>/cmdline, where there is a /proc) keeps a recycled pid from being
    taken for a devnet node, so `down` never signals an unrelated process.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not a node we started
    state = _proc_state(pid)
    if state in ("Z", "X"):
        return False
    if data_dir is not None:
        args = _proc_args(pid)
        if args is not None and str(data_dir) not in args:
            return False
    return True


async def _wait_pid_gone(pid: int) -> None:
    """Return once `pid` (not necessarily our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd here (old kernel, not Linux): look every so often
        fd = -1
    if fd >= 0:
        try:
            await trio.lowlevel.wait_readable(fd)  # a pidfd becomes readable when the process exits
        finally:
            os.close(fd)
        return
    while True:
        if not node_process_alive(pid):
            return
        await trio.sleep(_BANNER_POLL)


@dataclass(frozen=True, slots=True)
class StopResult:
    """How stopping one node went: `outcome` is "stopped" (after SIGINT), "killed" or "not running"."""

    name: str
    pid: int
    outcome: str
    #: The exit status when the node was our child (negative: killed by that signal); else None.
    returncode: int | None = None

    @property
    def clean(self) -> bool:
        """Stopped by SIGINT with exit status 0 (or an unknown status: not our child)."""
        return self.outcome == _STOPPED and self.returncode in (0, None)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def stop_node_pids(
    nodes: Sequence[ProcessNode], *, stop_timeout: float = STOP_TIMEOUT
) -> list[StopResult]:
    """Stop node processes that are not our children (a detached devnet): SIGINT, then SIGKILL.

    SIGINT goes to every running node, newest first; whatever still runs `stop_timeout` seconds later gets
    SIGKILL. Results are in the order of `nodes`.
    """
    with trio.CancelScope(shield=True):
        running = [n for n in nodes if node_process_alive(n.pid, n.data_dir)]
        signalled = {n.pid for n in reversed(running) if _signal(n.pid, signal.SIGINT)}
        gone: set[int] = set()

        async def wait_gone(pid: int) -> None:
            await _wait_pid_gone(pid)
            gone.add(pid)

        with trio.move_on_after(stop_timeout):
            async with trio.open_nursery() as nursery:
                for pid in signalled:
                    nursery.start_soon(wait_gone, pid)
        killed = {pid for pid in signalled - gone if _signal(pid, signal.SIGKILL)}
        with trio.move_on_after(KILL_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for pid in killed:
                    nursery.start_soon(_wait_pid_gone, pid)
    outcomes = {pid: _KILLED if pid in killed else _STOPPED for pid in signalled}
    return [StopResult(n.name, n.pid, outcomes.get(n.pid, _NOT_RUNNING)) for n in nodes]


# ------------------------------------------------------------------------------------------------ starting


def node_failure_cause(log_path: Path) -> str:
    """Why a node failed, from its log at `log_path`: its own one-line `error: ...`, else its last line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1][:300] if lines else "no output"


def _open_logs(stdout_path: Path, log_path: Path) -> tuple[int, int]:
    stdout_path.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        err = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except BaseException:
        os.close(out)
        raise
    return out, err


def _spawn_options(out: int, err: int) -> dict[str, Any]:
    """What both launchers give the process: files rather than pipes, and a session of its own."""
    return {
        "stdin": subprocess.DEVNULL,
        "stdout": out,
        "stderr": err,
        "env": node_env(),
        "start_new_session": True,  # see the module docstring: Ctrl-C and detached devnets
    }


def _exec_failure(name: str, argv: Sequence[str], err: OSError) -> HubError:
    return HubError("unavailable", f"{name} failed to start: {argv[0]}: {err.strerror or err}")


def _exit_failure(name: str, returncode: int, log_path: Path) -> HubError:
    return HubError(
        "unavailable",
        f"{name} failed to start: {node_failure_cause(log_path)} (exit code {returncode}; log {log_path})",
    )


def _timeout_failure(name: str, start_timeout: float, log_path: Path) -> HubError:
    return HubError(
        "unavailable", f"{name} did not print its ready line within {start_timeout:g} s (log {log_path})"
    )


def _banner_so_far(output: bytes) -> Banner:
    """The banner in a node's stdout as far as it has been written (complete lines only)."""
    return parse_banner(output[: output.rfind(b"\n") + 1].decode(errors="replace").splitlines())


def _ready_node(
    name: str, pid: int, banner: Banner, data_dir: Path, stdout_path: Path, log_path: Path
) -> ProcessNode:
    """The node a `ready` banner describes; HubError if the banner lacks an address it must have."""
    if (banner.mode == HONEST and not banner.rpc_target) or not banner.libp2p_addrs or not banner.peer_id:
        raise HubError(
            "unavailable", f"{name} printed no peer id, libp2p or gRPC address in its banner ({stdout_path})"
        )
    return ProcessNode(
        name=name,
        pid=pid,
        peer_id=banner.peer_id,
        libp2p_addrs=banner.libp2p_addrs,
        rpc_target=banner.rpc_target,
        metrics_url=banner.metrics_url,
        data_dir=data_dir,
        log_path=log_path,
        stdout_path=stdout_path,
        mode=banner.mode,
    )


def _stop_outcome(pid: int, signalled: set[int], killed: set[int]) -> str:
    return _KILLED if pid in killed else _STOPPED if pid in signalled else _NOT_RUNNING


async def _read_banner(
    name: str, proc: trio.Process, stdout_path: Path, log_path: Path, start_timeout: float
) -> Banner:
    """Follow the node's stdout file until its `ready` line; HubError if it exits or takes too long."""
    output = b""
    async with await trio.open_file(stdout_path, "rb") as f:
        with trio.move_on_after(start_timeout):
            while True:
                output += await f.read()
                banner = _banner_so_far(output)
                if banner.ready:
                    return banner
                if proc.returncode is not None:
                    raise _exit_failure(name, proc.returncode, log_path)
                # An exit is noticed at once, new output within a poll interval (a file has no event for it).
                with trio.move_on_after(_BANNER_POLL):
                    await proc.wait()
    raise _timeout_failure(name, start_timeout, log_path)


async def stop_launched_nodes(
    members: Sequence[tuple[ProcessNode | str, trio.Process]], stop_timeout: float
) -> list[StopResult]:
    """Stop nodes that `launch_node` started (node or name, and process; oldest first). Shielded.

    SIGINT goes to every running one, newest first; whatever still runs `stop_timeout` seconds later gets
    SIGKILL. Results are in the order of `members`.
    """
    results: list[StopResult] = []
    with trio.CancelScope(shield=True):
        running = [(m, p) for m, p in members if p.returncode is None]
        for _m, proc in reversed(running):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        with trio.move_on_after(stop_timeout):
            for _m, proc in reversed(running):
                await proc.wait()
        killed = set()
        for _m, proc in running:
            if proc.returncode is None:
                killed.add(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        with trio.move_on_after(KILL_TIMEOUT):
            for _m, proc in running:
                await proc.wait()
        signalled = {p.pid for _m, p in running}
        for member, proc in members:
            name = member if isinstance(member, str) else member.name
            results.append(
                StopResult(name, proc.pid, _stop_outcome(proc.pid, signalled, killed), proc.returncode)
            )
    return results


async def launch_node(
    name: str,
    argv: list[str],
    data_dir: Path,
    *,
    start_timeout: float,
    stop_timeout: float,
) -> tuple[ProcessNode, trio.Process]:
    """Start `argv` as node `name` and wait for the `ready` line of its banner; return it and its process.

    Its stdout and log go to files in `data_dir` (truncated first), and it runs in a session of its own.
    HubError `unavailable` names it and the cause if it cannot be run, exits first, takes longer than
    `start_timeout` or prints an incomplete banner; on any failure (also a cancellation) a started process
    is stopped as `stop_launched_nodes` does before raising. Stop a ready node with `stop_launched_nodes`.
    """
    stdout_path, log_path = data_dir / STDOUT_FILE, data_dir / LOG_FILE
    out, err = _open_logs(stdout_path, log_path)
    try:
        proc = await trio.lowlevel.open_process(argv, **_spawn_options(out, err))
    except OSError as e:
        raise _exec_failure(name, argv, e) from None
    finally:
        os.close(out)
        os.close(err)
    try:
        banner = await _read_banner(name, proc, stdout_path, log_path, start_timeout)
        node = _ready_node(name, proc.pid, banner, data_dir, stdout_path, log_path)
    except BaseException:
        await stop_launched_nodes([(name, proc)], stop_timeout)
        raise
    return node, proc


# ------------------------------------------------------------------------------------------------ blocking


class NodeProcessSync:
    """One node process for blocking code (tests, benchmarks), started and stopped as a devnet's are.

        with NodeProcessSync("hub", node_start_argv(data_dir), data_dir) as hub:
            channel = grpc.insecure_channel(hub.rpc_target)

    `spawn` starts `prefix + argv` (stdout to `<data dir>/stdout.log`, log to `<data dir>/node.log`, in a
    session of its own) and `wait_ready` follows the stdout file to the `ready` line; `node` then has the
    addresses of the banner. If the node exits first, takes longer than `start_timeout` or prints an
    incomplete banner, it is stopped and HubError `unavailable` names it and the cause from its log. A
    `prefix` (`ip netns exec NS`) must exec the command, so that the pid and the signals are the node's.
    `stop` (also on leaving `with`) sends SIGINT, and SIGKILL after `stop_timeout`; `stop_node_processes`
    stops several nodes at once.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        data_dir: Path,
        *,
        prefix: Sequence[str] = (),
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.name = name
        self.argv = [*prefix, *argv]
        self.data_dir = data_dir
        self.stdout_path = data_dir / STDOUT_FILE
        self.log_path = data_dir / LOG_FILE
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.interrupted = False
        self._node: ProcessNode | None = None

    def __enter__(self) -> Self:
        self.launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def node(self) -> ProcessNode:
        """The node as its banner describes it; HubError before `wait_ready` has returned."""
        if self._node is None:
            raise HubError("unavailable", f"{self.name} is not ready")
        return self._node

    @property
    def rpc_target(self) -> str:
        """The gRPC HOST:PORT of the banner."""
        return self.node.rpc_target

    @property
    def libp2p_addrs(self) -> tuple[str, ...]:
        """The libp2p addresses of the banner (with /p2p/<peer id>)."""
        return self.node.libp2p_addrs

    @property
    def pid(self) -> int:
        """The process id (with a prefix that execs, the node's)."""
        return self._started().pid

    @property
    def returncode(self) -> int | None:
        """The exit status, None while it runs or before `spawn`."""
        return None if self.proc is None else self.proc.poll()

    def _started(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise HubError("unavailable", f"{self.name} has not been started")
        return self.proc

    def spawn(self) -> None:
        """Start the process without waiting for it; HubError if it cannot be run at all."""
        if self.proc is not None:
            raise HubError("unavailable", f"{self.name} has been started already")
        out, err = _open_logs(self.stdout_path, self.log_path)
        try:
            self.proc = subprocess.Popen(self.argv, **_spawn_options(out, err))
        except OSError as e:
            raise _exec_failure(self.name, self.argv, e) from None
        finally:
            os.close(out)
            os.close(err)

    def wait_ready(self, timeout: float | None = None) -> ProcessNode:
        """Block until the `ready` line, at most `timeout` seconds (default `start_timeout`).

        On any failure (also an interrupt while waiting) the node is stopped before raising.
        """
        if self._node is not None:
            return self._node
        proc = self._started()
        try:
            banner = self._follow_banner(proc, self.start_timeout if timeout is None else timeout)
            node = _ready_node(self.name, proc.pid, banner, self.data_dir, self.stdout_path, self.log_path)
        except BaseException:
            self.stop()
            raise
        self._node = node
        return node

    def launch(self) -> ProcessNode:
        """`spawn`, then `wait_ready`."""
        self.spawn()
        return self.wait_ready()

    def _follow_banner(self, proc: subprocess.Popen[bytes], timeout: float) -> Banner:
        deadline = time.monotonic() + timeout
        output = b""
        with self.stdout_path.open("rb") as f:
            while True:
                output += f.read()
                banner = _banner_so_far(output)
                if banner.ready:
                    return banner
                code = proc.poll()
                if code is not None:
                    raise _exit_failure(self.name, code, self.log_path)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timeout_failure(self.name, timeout, self.log_path)
                # As in `_read_banner`: an exit ends the wait (Popen looks every few ms), new output is seen
                # within a poll interval.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(min(_BANNER_POLL, remaining))

    def interrupt(self) -> None:
        """Send SIGINT (Ctrl-C) once, without waiting: a node never gets a second one while it shuts down."""
        if self.proc is not None and self.proc.poll() is None and not self.interrupted:
            self.interrupted = True
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL (no shutdown at all: a crash) and wait for the process to be gone; its data dir stays."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            _wait_exit(self.proc, time.monotonic() + KILL_TIMEOUT)

    def stop(self) -> StopResult:
        """SIGINT, then SIGKILL if it still runs after `stop_timeout`; idempotent."""
        return stop_node_processes([self], stop_timeout=self.stop_timeout)[0]


def _wait_exit(proc: subprocess.Popen[bytes], deadline: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(max(0.0, deadline - time.monotonic()))


def stop_node_processes(
    nodes: Sequence[NodeProcessSync], *, stop_timeout: float = STOP_TIMEOUT
) -> list[StopResult]:
    """Stop blocking-launched nodes as a devnet stops its own: SIGINT, then SIGKILL.

    SIGINT goes to every running node, newest first (none gets a second); whatever still runs `stop_timeout`
    seconds later gets SIGKILL. Results are in the order of `nodes`; a node never spawned is "not running".
    """
    running = [(n, n.proc) for n in nodes if n.proc is not None and n.proc.poll() is None]
    for node, _proc in reversed(running):
        node.interrupt()
    deadline = time.monotonic() + stop_timeout
    for _node, proc in reversed(running):
        _wait_exit(proc, deadline)
    killed: set[int] = set()
    for _node, proc in running:
        if proc.poll() is None:
            killed.add(proc.pid)
            proc.kill()
    deadline = time.monotonic() + KILL_TIMEOUT
    for _node, proc in running:
        _wait_exit(proc, deadline)
    signalled = {n.proc.pid for n in nodes if n.proc is not None and n.interrupted}
    return [
        StopResult(n.name, n.proc.pid, _stop_outcome(n.proc.pid, signalled, killed), n.proc.poll())
        if n.proc is not None
        else StopResult(n.name, 0, _NOT_RUNNING)
        for n in nodes
    ]
