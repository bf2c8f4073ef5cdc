"""Devnets of real `stateless node start` processes on loopback: the library behind `stateless devnet`.

    async with open_process_devnet(3, tmp_path, accounts=2) as net:
        await net.wait_for_peers(1)
        info = await net.get_info(0)

Nodes start one after another; node i bootstraps to every earlier node (the first libp2p address of its
banner) and must print its `ready` line within `start_timeout`. If a node fails, every node already started
is stopped and HubError `unavailable` names the node and the cause taken from its log (a port in use, ...).
Stopping sends SIGINT (Ctrl-C) to every node, newest first, and SIGKILL to whatever still runs after
`stop_timeout`.

Each node runs in a session of its own: a terminal's Ctrl-C reaches only the parent, which then stops the
nodes in order (a node never gets a second SIGINT while it shuts down), and a detached devnet outlives the
command that started it. A node's stdout goes to `<data dir>/stdout.log` and its log (stderr) to
`<data dir>/node.log`: files rather than pipes, so a node never writes into a pipe whose reader is gone. The
banner is read back from the file as it grows.

Ports: 0 = any free ports. With a base port P, node i listens for gRPC on P+i, for libp2p on P+100+i and
(when `node start` has `--metrics-port`) for metrics on P+200+i.

`devnet.json` in the devnet directory records the nodes (pids, addresses), so `stateless devnet status` and
`down` find a devnet that another process started: see `DevnetState`, `load_state`, `node_process_alive` and
`stop_node_pids`.

Blocking code (system tests, benchmarks) starts single nodes with `NodeProcessSync` (command line from
`node_start_argv`) and stops them with `stop_node_processes`: the same files, banner parsing, failure
messages and SIGINT-then-SIGKILL as a devnet, without trio.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import grpc
import trio

from devnet._accounts import DevnetAccount, write_devnet_accounts
from devnet._modes import ADVERSARY_MODES, HONEST
from protocols.errors import HubError
from protocols.proto import request_response_pb2 as rr
from protocols.proto import rpc_pb2_grpc

MAX_NODES: Final = 64
#: With a base port P: gRPC P+i, libp2p P+GOSSIP_PORT_OFFSET+i, metrics P+METRICS_PORT_OFFSET+i.
GOSSIP_PORT_OFFSET: Final = 100
METRICS_PORT_OFFSET: Final = 200
#: Ports below this are the well-known (privileged) ports; a devnet stays out of them.
MIN_BASE_PORT: Final = 1024
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 20.0
#: After SIGKILL a process is gone within milliseconds unless the kernel is stuck; do not wait forever.
KILL_TIMEOUT: Final = 5.0
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
STATE_FILE: Final = "devnet.json"
STATE_VERSION: Final = 1
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


# ------------------------------------------------------------------------------------------------ nodes


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


@dataclass(frozen=True, slots=True)
class NodePorts:
    """The ports one node is started with (0 = any free port; metrics None = no metrics flag)."""

    rpc: int
    gossip: int
    metrics: int | None


def check_devnet_options(n: int, base_port: int, modes: Mapping[int, str] | None = None) -> None:
    """Raise ValueError (one readable sentence) unless `n` nodes fit with `base_port` and `modes`.

    `modes` maps node indexes to adversary modes; node 0 stays honest (clients and the other nodes
    start from it), and so must at least one node for the devnet to be a network of hubs.
    """
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"a devnet has 1 to {MAX_NODES} nodes, got {n}")
    for index, mode in (modes or {}).items():
        if not 0 <= index < n:
            raise ValueError(f"node {index} does not exist in a devnet of {n} nodes (they are 0 to {n - 1})")
        if mode != HONEST and mode not in ADVERSARY_MODES:
            raise ValueError(f"unknown mode {mode!r} for node {index}; known: {', '.join(ADVERSARY_MODES)}")
        if index == 0 and mode != HONEST:
            raise ValueError("node 0 must be honest: clients and the other nodes start from it")
    if base_port == 0:
        return
    highest = base_port + METRICS_PORT_OFFSET + n - 1
    if base_port < MIN_BASE_PORT:
        raise ValueError(
            f"base port {base_port} is a well-known port (below {MIN_BASE_PORT}); "
            f"use {MIN_BASE_PORT} or more, or 0 for any free ports"
        )
    if highest > 65_535:
        raise ValueError(
            f"base port {base_port} is too high for {n} nodes: their ports run up to {highest} "
            f"(gRPC from P, libp2p from P+{GOSSIP_PORT_OFFSET}, metrics from P+{METRICS_PORT_OFFSET}); "
            f"use at most {65_535 - METRICS_PORT_OFFSET - n + 1}"
        )


def node_ports(index: int, base_port: int, *, metrics: bool) -> NodePorts:
    """The ports of node `index` for a base port (0 = every port free)."""
    if base_port == 0:
        return NodePorts(0, 0, 0 if metrics else None)
    return NodePorts(
        base_port + index,
        base_port + GOSSIP_PORT_OFFSET + index,
        base_port + METRICS_PORT_OFFSET + index if metrics else None,
    )


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


# ------------------------------------------------------------------------------------------------ status


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's process and what it answered over gRPC (None fields: it did not answer)."""

    node: ProcessNode
    running: bool
    info: rr.HubInfoResponse | None = None
    known_peers: int | None = None
    error: str | None = None


def _rpc_problem(err: grpc.RpcError) -> str:
    code = err.code() if isinstance(err, grpc.Call) else None
    return f"gRPC {code.name if code is not None else 'error'}"


def query_status(
    nodes: Sequence[ProcessNode],
    *,
    rpc_timeout: float = 2.0,
    running: Sequence[bool] | None = None,
    stubs: Sequence[Any] | None = None,
) -> list[NodeStatus]:
    """GetInfo and GetCurrentPeers of every running node, all calls in flight at once (blocking).

    `running[i]` says whether node i's process is alive (default: `node_process_alive`); `stubs[i]` is a
    HubService stub to use for it (default: a channel opened and closed here).
    """
    states = list(running) if running is not None else [node_process_alive(n.pid, n.data_dir) for n in nodes]
    with contextlib.ExitStack() as stack:
        calls: list[tuple[Any, Any] | None] = []
        for i, (node, up) in enumerate(zip(nodes, states, strict=True)):
            if not up or not node.honest:  # an adversary has no gRPC to ask
                calls.append(None)
                continue
            if stubs is not None:
                hub = stubs[i]
            else:
                hub = rpc_pb2_grpc.HubServiceStub(stack.enter_context(grpc.insecure_channel(node.rpc_target)))
            calls.append(
                (
                    hub.GetInfo.future(rr.HubInfoRequest(), timeout=rpc_timeout),
                    hub.GetCurrentPeers.future(rr.Empty(), timeout=rpc_timeout),
                )
            )
        out = []
        for node, up, call in zip(nodes, states, calls, strict=True):
            if call is None:
                out.append(NodeStatus(node, running=up))
                continue
            try:
                info: rr.HubInfoResponse = call[0].result()
                peers: rr.ContactInfoResponse = call[1].result()
            except grpc.RpcError as e:
                out.append(NodeStatus(node, running=True, error=_rpc_problem(e)))
                continue
            out.append(NodeStatus(node, running=True, info=info, known_peers=len(peers.contacts)))
        return out


# ------------------------------------------------------------------------------------------------ state file


@dataclass(frozen=True, slots=True)
class DevnetState:
    """What devnet.json records about a devnet of node processes."""

    base_dir: Path
    started_at: float
    nodes: list[ProcessNode]
    #: The `stateless devnet up` process that stops the nodes on Ctrl-C; None when detached.
    supervisor_pid: int | None = None
    genesis: Path | None = None
    fids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The devnet.json document."""
        return {
            "version": STATE_VERSION,
            "dir": str(self.base_dir),
            "started_at": self.started_at,
            "supervisor_pid": self.supervisor_pid,
            "genesis": None if self.genesis is None else str(self.genesis),
            "fids": self.fids,
            "nodes": [n.to_json() for n in self.nodes],
        }

    def running_nodes(self) -> list[ProcessNode]:
        """The nodes whose processes are alive."""
        return [n for n in self.nodes if node_process_alive(n.pid, n.data_dir)]


def state_path(base_dir: Path) -> Path:
    """Where the state of the devnet in `base_dir` is kept."""
    return base_dir / STATE_FILE


def save_state(state: DevnetState) -> Path:
    """Write devnet.json atomically (a concurrent `status` never reads half a file)."""
    path = state_path(state.base_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_state(base_dir: Path) -> DevnetState | None:
    """Read devnet.json of `base_dir`; None if there is none, HubError if it is damaged."""
    path = state_path(base_dir)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HubError("bad_request.invalid_param", f"{path}: cannot read devnet state: {e}") from None
    try:
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise ValueError(f"expected an object with version {STATE_VERSION}")
        supervisor = doc.get("supervisor_pid")
        genesis = doc.get("genesis")
        return DevnetState(
            base_dir=base_dir,
            started_at=float(doc["started_at"]),
            nodes=[ProcessNode.from_json(n) for n in doc["nodes"]],
            supervisor_pid=None if supervisor is None else int(supervisor),
            genesis=None if genesis is None else Path(genesis),
            fids=[int(f) for f in doc.get("fids", [])],
        )
    except (KeyError, TypeError, ValueError) as e:
        raise HubError("bad_request.invalid_param", f"{path}: damaged devnet state: {e}") from None


# ------------------------------------------------------------------------------------------------ starting


def _failure_cause(log_path: Path) -> str:
    """The node's own one-line `error: ...`, else its last log line."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    return lines[-1][:300] if lines else "no output"


def _prepare_dir(base_dir: Path) -> Path:
    base_dir = base_dir.resolve()  # absolute: node command lines are matched against it (node_process_alive)
    base_dir.mkdir(parents=True, exist_ok=True)
    return base_dir


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
        f"{name} failed to start: {_failure_cause(log_path)} (exit code {returncode}; log {log_path})",
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


async def _stop_processes(
    members: Sequence[tuple[ProcessNode | str, trio.Process]], stop_timeout: float
) -> list[StopResult]:
    """SIGINT to our running children, newest first; SIGKILL after `stop_timeout`. Shielded."""
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


class ProcessDevnet:
    """Running node processes of a devnet, with gRPC helpers that wait for states instead of sleeping.

    The `wait_*` helpers poll GetInfo (nothing pushes peer counts or trie roots to a client); bound them
    with `trio.fail_after`.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        genesis: Path | None = None,
        accounts: Sequence[DevnetAccount] = (),
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.base_dir = base_dir
        self.genesis = genesis
        self.accounts = list(accounts)
        self.nodes: list[ProcessNode] = []
        self.started_at = time.time()
        self.stop_timeout = stop_timeout
        self._procs: list[trio.Process] = []
        #: The command line of each node, so `restart` starts it again exactly as before.
        self._argvs: list[list[str]] = []
        self._channels: dict[int, grpc.Channel] = {}
        self._stopped: list[StopResult] | None = None

    def __getitem__(self, i: int) -> ProcessNode:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[ProcessNode]:
        return iter(self.nodes)

    def _add(self, node: ProcessNode, proc: trio.Process, argv: Sequence[str] = ()) -> None:
        self.nodes.append(node)
        self._procs.append(proc)
        self._argvs.append(list(argv))

    async def kill(self, i: int) -> None:
        """SIGKILL node `i` (no shutdown at all: a crash) and wait for it to be gone; its data dir stays."""
        proc = self._procs[i]
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with trio.move_on_after(KILL_TIMEOUT):
                await proc.wait()
        channel = self._channels.pop(i, None)
        if channel is not None:
            channel.close()

    async def restart(self, i: int, *, start_timeout: float = START_TIMEOUT) -> ProcessNode:
        """Start node `i` again with the same command line and data dir (after `kill` or an exit).

        Its peer id stays (the key is in the data dir); with free ports (base port 0) its addresses change,
        which `nodes[i]` then shows. HubError `unavailable` if it does not come up.
        """
        if self._stopped is not None:
            raise HubError("unavailable", "this devnet has been stopped")
        if self._procs[i].returncode is None:
            await self.kill(i)
        old = self.nodes[i]
        # Starting truncates the log; keep the one that ends with the crash beside it.
        with contextlib.suppress(OSError):
            old.log_path.replace(old.log_path.with_name(old.log_path.name + ".prev"))
        node, proc = await _launch(
            old.name,
            self._argvs[i],
            old.data_dir,
            start_timeout=start_timeout,
            stop_timeout=self.stop_timeout,
        )
        self.nodes[i], self._procs[i] = node, proc
        return node

    def returncodes(self) -> list[int | None]:
        """Exit status of each node process, None while it runs."""
        return [p.returncode for p in self._procs]

    def state(self, *, supervisor_pid: int | None = None) -> DevnetState:
        """The devnet as devnet.json records it."""
        return DevnetState(
            base_dir=self.base_dir,
            started_at=self.started_at,
            nodes=list(self.nodes),
            supervisor_pid=supervisor_pid,
            genesis=self.genesis,
            fids=[a.fid for a in self.accounts],
        )

    # --------------------------------------------------------------------------------------------- gRPC

    def stub(self, i: int) -> Any:
        """A blocking HubService stub for node `i` (call it from a worker thread: `trio.to_thread`)."""
        if self._stopped is not None:
            raise HubError("unavailable", "this devnet has been stopped")
        if not self.nodes[i].honest:
            raise HubError(
                "bad_request.invalid_param", f"{self.nodes[i].name} is an adversary: it has no gRPC"
            )
        if i not in self._channels:
            self._channels[i] = grpc.insecure_channel(self.nodes[i].rpc_target)
        return rpc_pb2_grpc.HubServiceStub(self._channels[i])

    async def get_info(self, i: int, *, rpc_timeout: float = 5.0) -> rr.HubInfoResponse:
        """GetInfo of node `i`."""
        call = functools.partial(self.stub(i).GetInfo, rr.HubInfoRequest(), timeout=rpc_timeout)
        info: rr.HubInfoResponse = await trio.to_thread.run_sync(call, abandon_on_cancel=True)
        return info

    async def status(self, *, rpc_timeout: float = 2.0) -> list[NodeStatus]:
        """`query_status` of every node (from a worker thread); running means its process has not exited."""
        # Looked up here, not in the worker thread: trio.Process and the channel cache are not thread-safe.
        query = functools.partial(
            query_status,
            list(self.nodes),
            rpc_timeout=rpc_timeout,
            running=[proc.returncode is None for proc in self._procs],
            stubs=[self.stub(i) if node.honest else None for i, node in enumerate(self.nodes)],
        )
        return await trio.to_thread.run_sync(query, abandon_on_cancel=True)

    def _check_running(self) -> None:
        for node, proc in zip(self.nodes, self._procs, strict=True):
            if proc.returncode is not None:
                raise HubError(
                    "unavailable",
                    f"{node.name} exited with code {proc.returncode}: {_failure_cause(node.log_path)} "
                    f"(log {node.log_path})",
                )

    async def poll_until(self, check: Callable[[], Awaitable[bool]], *, poll: float = 0.1) -> None:
        """Return once `await check()` is true (asked every `poll` s); HubError if a node exits first.

        For states a client can only ask about (nothing is pushed to it): bans, peers, roots, ...
        """
        while True:
            self._check_running()
            if await check():
                return
            await trio.sleep(poll)

    async def wait_until(self, predicate: Callable[[list[NodeStatus]], bool], *, poll: float = 0.1) -> None:
        """Return once `predicate(statuses)` holds (re-asked every `poll` s); HubError if a node exits."""

        async def check() -> bool:
            return predicate(await self.status())

        await self.poll_until(check, poll=poll)

    async def wait_for_peers(self, n: int, *, poll: float = 0.1) -> None:
        """Return once every honest node reports at least `n` connected peers; HubError if a node exits."""
        await self.wait_until(
            lambda statuses: all(
                s.info is not None and s.info.connected_peers >= n for s in statuses if s.node.honest
            ),
            poll=poll,
        )

    async def wait_converged(self, *, poll: float = 0.1) -> None:
        """Return once every honest node reports the same sync-trie root; HubError if a node exits."""

        def converged(statuses: list[NodeStatus]) -> bool:
            roots = {s.info.root_hash if s.info is not None else None for s in statuses if s.node.honest}
            return len(roots) == 1 and None not in roots

        await self.wait_until(converged, poll=poll)

    # --------------------------------------------------------------------------------------------- stop

    async def stop(self) -> list[StopResult]:
        """Stop every node (SIGINT newest first, SIGKILL after `stop_timeout`); idempotent, shielded."""
        if self._stopped is None:
            self._stopped = await _stop_processes(
                list(zip(self.nodes, self._procs, strict=True)), self.stop_timeout
            )
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
        return self._stopped


async def _launch(
    name: str,
    argv: list[str],
    data_dir: Path,
    *,
    start_timeout: float,
    stop_timeout: float,
) -> tuple[ProcessNode, trio.Process]:
    """Start one node and wait for its banner; on any failure it is stopped again before raising."""
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
        await _stop_processes([(name, proc)], stop_timeout)
        raise
    return node, proc


async def start_process_devnet(
    n: int,
    base_dir: Path,
    *,
    rpc_base_port: int = 0,
    log_level: str = "info",
    extra_args: Sequence[str] = (),
    genesis: Path | None = None,
    accounts: int = 0,
    metrics: bool | None = None,
    start_timeout: float = START_TIMEOUT,
    stop_timeout: float = STOP_TIMEOUT,
    command: Sequence[str] | None = None,
    on_started: Callable[[ProcessDevnet, ProcessNode], None] | None = None,
    modes: Mapping[int, str] | None = None,
) -> ProcessDevnet:
    """Start `n` node processes under `base_dir/node-<i>` one by one and return them running.

    Nothing stops them when this returns: call `stop()` (or use `open_process_devnet`). A detached devnet
    is just one that is never stopped by its starter. `accounts=K` writes `base_dir/genesis.json` with K
    test accounts and their key files (devnet/_accounts.py); `genesis=path` uses an existing file instead.
    `metrics` passes `--metrics-port` (None: if this installation's `node start` has it). `on_started` is
    called after each node is ready (progress, or recording state so nothing is ever untracked).
    `modes` turns nodes into adversaries (`stateless devnet adversary MODE`, no gRPC): honest nodes
    bootstrap to the honest nodes before them; an adversary dials those too and (but `eclipse`) every hub
    it hears of. `extra_args` go to honest nodes only.
    If a node fails, the nodes already started are stopped and HubError `unavailable` says which and why.
    """
    check_devnet_options(n, rpc_base_port, modes)
    if log_level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    if genesis is not None and accounts:
        raise ValueError("give either genesis= or accounts=, not both")
    base_dir = _prepare_dir(base_dir)
    written: list[DevnetAccount] = []
    if accounts:
        devnet_genesis = write_devnet_accounts(base_dir, accounts)
        genesis, written = devnet_genesis.path, devnet_genesis.accounts
    elif genesis is not None:
        genesis = genesis.resolve()
    with_metrics = node_supports_metrics_port() if metrics is None else metrics
    cmd = list(command) if command is not None else node_command()
    net = ProcessDevnet(base_dir, genesis=genesis, accounts=written, stop_timeout=stop_timeout)
    try:
        for i in range(n):
            name = f"node-{i}"
            data_dir = base_dir / name
            ports = node_ports(i, rpc_base_port, metrics=with_metrics)
            mode = (modes or {}).get(i, HONEST)
            honest_before = [node.libp2p_addr for node in net.nodes if node.honest]
            if mode == HONEST:
                argv = node_start_argv(
                    data_dir,
                    rpc_port=ports.rpc,
                    gossip_port=ports.gossip,
                    metrics_port=ports.metrics,
                    log_level=log_level,
                    genesis=genesis,
                    bootstrap=honest_before,
                    extra_args=extra_args,
                    command=cmd,
                )
            else:
                argv = [
                    *cmd, "devnet", "adversary", mode, "--data-dir", str(data_dir), "--network", "devnet",
                    "--gossip-port", str(ports.gossip), "--log-level", log_level,
                ]  # fmt: skip
                if genesis is not None:
                    argv += ["--genesis", str(genesis)]
                if honest_before:
                    argv += ["--bootstrap", *honest_before]
            node, proc = await _launch(
                name, argv, data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout
            )
            net._add(node, proc, argv)
            if on_started is not None:
                on_started(net, node)
    except BaseException:
        await net.stop()
        raise
    return net


@asynccontextmanager
async def open_process_devnet(
    n: int,
    base_dir: Path,
    *,
    rpc_base_port: int = 0,
    log_level: str = "info",
    extra_args: Sequence[str] = (),
    genesis: Path | None = None,
    accounts: int = 0,
    metrics: bool | None = None,
    start_timeout: float = START_TIMEOUT,
    stop_timeout: float = STOP_TIMEOUT,
    command: Sequence[str] | None = None,
    modes: Mapping[int, str] | None = None,
) -> AsyncIterator[ProcessDevnet]:
    """`start_process_devnet` as a context: every node is stopped on exit, also on errors and Ctrl-C."""
    net = await start_process_devnet(
        n,
        base_dir,
        rpc_base_port=rpc_base_port,
        log_level=log_level,
        extra_args=extra_args,
        genesis=genesis,
        accounts=accounts,
        metrics=metrics,
        start_timeout=start_timeout,
        stop_timeout=stop_timeout,
        command=command,
        modes=modes,
    )
    try:
        yield net
    finally:
        await net.stop()


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
