"""Devnets of real `stateless node start` processes on loopback: the library behind `stateless devnet`.

    async with open_process_devnet(3, tmp_path, accounts=2) as net:
        await net.wait_for_peers(1)
        info = await net.get_info(0)

Nodes start one after another; node i bootstraps to every earlier node (the first libp2p address of its
banner) and must print its `ready` line within `start_timeout`. If a node fails, every node already started
is stopped and HubError `unavailable` names the node and the cause taken from its log (a port in use, ...).
Stopping sends SIGINT (Ctrl-C) to every node, newest first, and SIGKILL to whatever still runs after
`stop_timeout`. Each node process (command line, files, banner, start and stop) is devnet/_node_process.py;
this module adds what makes them a devnet: ports, options, status, the state file and `ProcessDevnet`.

Ports: 0 = any free ports. With a base port P, node i listens for gRPC on P+i, for libp2p on P+100+i and
(when `node start` has `--metrics-port`) for metrics on P+200+i.

`devnet.json` in the devnet directory records the nodes (pids, addresses), so `stateless devnet status` and
`down` find a devnet that another process started: see `DevnetState`, `load_state` and `query_status` here,
and `node_process_alive` and `stop_node_pids` in devnet/_node_process.py.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
import trio

from devnet._accounts import DevnetAccount, write_devnet_accounts
from devnet._modes import ADVERSARY_MODES, HONEST
from devnet._node_process import (
    KILL_TIMEOUT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    ProcessNode,
    StopResult,
    launch_node,
    node_command,
    node_failure_cause,
    node_process_alive,
    node_start_argv,
    node_supports_metrics_port,
    stop_launched_nodes,
)
from protocols.errors import HubError
from protocols.proto import request_response_pb2 as rr
from protocols.proto import rpc_pb2_grpc

MAX_NODES: Final = 64
#: With a base port P: gRPC P+i, libp2p P+GOSSIP_PORT_OFFSET+i, metrics P+METRICS_PORT_OFFSET+i.
GOSSIP_PORT_OFFSET: Final = 100
METRICS_PORT_OFFSET: Final = 200
#: Ports below this are the well-known (privileged) ports; a devnet stays out of them.
MIN_BASE_PORT: Final = 1024
LOG_LEVELS: Final = ("debug", "info", "warning", "error")
STATE_FILE: Final = "devnet.json"
STATE_VERSION: Final = 1


# ------------------------------------------------------------------------------------------------ ports


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


def _prepare_dir(base_dir: Path) -> Path:
    base_dir = base_dir.resolve()  # absolute: node command lines are matched against it (node_process_alive)
    base_dir.mkdir(parents=True, exist_ok=True)
    return base_dir


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
        node, proc = await launch_node(
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
                    f"{node.name} exited with code {proc.returncode}: {node_failure_cause(node.log_path)} "
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
            self._stopped = await stop_launched_nodes(
                list(zip(self.nodes, self._procs, strict=True)), self.stop_timeout
            )
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()
        return self._stopped


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
            node, proc = await launch_node(
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
