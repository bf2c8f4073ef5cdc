"""`stateless devnet up|status|down`: a local network of node processes on loopback.

`up` starts N `stateless node start` processes in DIR (default .devnet), node i bootstrapping to every node
before it, with a genesis registering K test accounts whose signer keys it writes to DIR/keys/fid-<fid>.key
(devnet only: the keys derive from a public seed). It prints a table of the nodes and records them in
DIR/devnet.json. In the foreground it then shows a status line until Ctrl-C, which stops every node; with
--detach the nodes keep running and `status` and `down` find them through devnet.json.

Ports: by default any free ports. With --base-port P node i listens for gRPC on P+i, for libp2p on P+100+i
and for metrics on P+200+i.

The devnet library (devnet/) is imported inside the handlers: other commands never load it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

from node.cli._adversary_cmd import register as register_adversary
from node.cli._client_cmd import timeout_arg
from node.cli._node_cmd import LOG_LEVELS
from node.cli._output import CliError, UsageError, format_duration, iso_unix
from protocols.errors import HubError

if TYPE_CHECKING:
    from devnet._node_process import ProcessNode, StopResult
    from devnet._processes import DevnetState, NodeStatus, ProcessDevnet
    from devnet._summary import Totals

DEFAULT_DIR: Final = Path(".devnet")
DEFAULT_NODES: Final = 3
DEFAULT_ACCOUNTS: Final = 3
#: `up` waits this long for every node to have a peer before it shows the table anyway (with a warning).
CONNECT_TIMEOUT: Final = 30.0
STATUS_INTERVAL: Final = 1.0
#: Without a terminal the status line is printed when it changes, and at least this often.
QUIET_STATUS_INTERVAL: Final = 30.0
LOCK_FILE: Final = ".devnet.lock"

# --- arguments


def _bounded_int(text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"{what} must be an integer from {low} to {high}, got {text!r}")
    return int(text)


def nodes_arg(text: str) -> int:
    """argparse type: a number of devnet nodes, 1 to 64."""
    from devnet._processes import MAX_NODES

    return _bounded_int(text, 1, MAX_NODES, "number of nodes")


def accounts_arg(text: str) -> int:
    """argparse type: a number of test accounts, 0 to 1000."""
    from devnet._accounts import MAX_ACCOUNTS

    return _bounded_int(text, 0, MAX_ACCOUNTS, "number of test accounts")


def base_port_arg(text: str) -> int:
    """argparse type: 0 (any free ports) or a first port from 1024 to 65535."""
    from devnet._processes import MIN_BASE_PORT

    if text.isdigit() and int(text) == 0:
        return 0
    if not text.isdigit() or not MIN_BASE_PORT <= int(text) <= 65_535:
        raise argparse.ArgumentTypeError(
            f"base port must be 0 (any free ports) or from {MIN_BASE_PORT} to 65535 "
            f"(ports below {MIN_BASE_PORT} are well-known ports), got {text!r}"
        )
    return int(text)


def mode_arg(text: str) -> tuple[int, str]:
    """argparse type: `I=MODE`, node I runs as the adversary MODE (devnet/_modes.py)."""
    from devnet._modes import ADVERSARY_MODES

    index, sep, mode = text.partition("=")
    index = index.strip().removeprefix("node-")
    if not sep or not index.isdigit():
        raise argparse.ArgumentTypeError(f"expected I=MODE (e.g. 2=forge), got {text!r}")
    if mode not in ADVERSARY_MODES:
        raise argparse.ArgumentTypeError(
            f"unknown adversary mode {mode!r} in {text!r}; known: {', '.join(ADVERSARY_MODES)}"
        )
    return int(index), mode


def _modes(pairs: Sequence[tuple[int, str]]) -> dict[int, str]:
    modes: dict[int, str] = {}
    for index, mode in pairs:
        if modes.get(index, mode) != mode:
            raise UsageError(f"node {index} is given two modes: {modes[index]} and {mode}")
        modes[index] = mode
    return modes


# --- output helpers


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _shown(path: Path, base_dir: Path, shown_dir: str) -> str:
    """`path` below the devnet dir, spelled from the dir as the user gave it (relative stays relative)."""
    try:
        return str(Path(shown_dir) / path.relative_to(base_dir))
    except ValueError:
        return str(path)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _roots_verdict(statuses: Sequence[NodeStatus]) -> str:
    """Whether the honest nodes hold the same messages (adversaries have no trie to compare)."""
    honest = [s for s in statuses if s.node.honest]
    roots = [s.info.root_hash for s in honest if s.info is not None]
    if not roots:
        return "unknown (no node answered)"
    unanswered = sum(1 for s in honest if s.info is None)
    verdict = "equal" if len(set(roots)) == 1 else f"differ ({len(set(roots))} distinct)"
    return verdict + (f", {unanswered} node(s) did not answer" if unanswered else "")


# --- up


class _DirLock:
    """An exclusive lock on DIR while `up` starts (and, in the foreground, runs) a devnet there."""

    def __init__(self, base_dir: Path, shown_dir: str) -> None:
        self._path = base_dir / LOCK_FILE
        self._shown_dir = shown_dir
        self._fd = -1

    def __enter__(self) -> _DirLock:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the nodes
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise CliError(
                f"another `stateless devnet up` is running in {self._shown_dir}; "
                f"see `stateless devnet status --dir {self._shown_dir}`"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _refuse_if_running(base_dir: Path, shown_dir: str) -> None:
    from devnet._processes import load_state

    try:
        state = load_state(base_dir)
    except HubError as e:
        raise CliError(f"{e.message}; remove the file if no devnet is running there") from None
    running = state.running_nodes() if state is not None else []
    if running:
        pids = ", ".join(f"{n.name} pid {n.pid}" for n in running)
        raise CliError(
            f"a devnet is already running in {shown_dir} ({pids}); "
            f"stop it first with `stateless devnet down --dir {shown_dir}`"
        )


class _Interrupts:
    """SIGINT, SIGTERM and SIGHUP end the current phase of `up` (starting, connecting, showing status)."""

    def __init__(self) -> None:
        self.count = 0
        self._scope: trio.CancelScope | None = None

    def phase(self) -> trio.CancelScope:
        scope = trio.CancelScope()
        if self.count:
            scope.cancel()
        self._scope = scope
        return scope

    async def watch(self, signals: Any) -> None:
        async for _signum in signals:
            self.count += 1
            if self._scope is not None:
                self._scope.cancel()
            if self.count > 1:
                _err("still stopping the nodes (each gets SIGKILL if it takes too long)...")


def _print_table(net: ProcessDevnet, shown_dir: str) -> None:
    rows = [
        [n.name, n.mode, n.peer_id, n.rpc_target or "-", n.metrics_url or "-", n.libp2p_addr]
        for n in net.nodes
    ]
    print(_table(["NAME", "MODE", "PEER ID", "GRPC", "METRICS", "LIBP2P"], rows))
    if net.accounts:
        first, last = net.accounts[0], net.accounts[-1]
        fids = f"fid {first.fid}" if first is last else f"fids {first.fid}-{last.fid}"
        keys = _shown(net.base_dir / "keys", net.base_dir, shown_dir)
        print(
            f"test accounts (devnet only, the keys are public): {fids}, signer keys in {keys}/fid-<fid>.key"
        )
        key = _shown(first.key_file or Path(), net.base_dir, shown_dir)
        print(
            f'  stateless client cast "hello" --fid {first.fid} --key {key} --rpc {net.nodes[0].rpc_target}'
        )
    logs = _shown(net.base_dir, net.base_dir, shown_dir)
    print(f"logs: {logs}/node-<i>/node.log   state: {logs}/devnet.json", flush=True)


def _node_cell(status: NodeStatus, returncode: int | None) -> str:
    if returncode is not None:
        return f"{status.node.name}: exited ({returncode})"
    if not status.node.honest:
        return f"{status.node.name}: {status.node.mode}"
    if status.info is None:
        return f"{status.node.name}: {status.error or 'no answer'}"
    info = status.info
    text = f"{status.node.name}: {_plural(info.connected_peers, 'peer')}, {info.db_stats.num_messages} msgs"
    return text + (", syncing" if info.is_syncing else "")


def _status_line(statuses: Sequence[NodeStatus], returncodes: Sequence[int | None], width: int | None) -> str:
    cells = [_node_cell(s, rc) for s, rc in zip(statuses, returncodes, strict=True)]
    line = " | ".join(cells)
    if width is None or len(line) <= width:
        return line
    # Too wide for the terminal: one summary instead of a cell per node.
    infos = [s.info for s, rc in zip(statuses, returncodes, strict=True) if s.info is not None and rc is None]
    up = sum(1 for rc in returncodes if rc is None)
    if not infos:
        return f"{len(statuses)} nodes: {up} running, none answering"
    peers = [i.connected_peers for i in infos]
    msgs = [i.db_stats.num_messages for i in infos]
    syncing = sum(1 for i in infos if i.is_syncing)
    return (
        f"{len(statuses)} nodes: {up} running, peers {min(peers)}-{max(peers)}, "
        f"msgs {min(msgs)}-{max(msgs)}, {syncing} syncing"
    )[:width]


async def _show_status(net: ProcessDevnet, started: float) -> bool:
    """Print a status line every second until cancelled (Ctrl-C); False if every node exited first."""
    tty = sys.stderr.isatty()
    last, last_printed = "", 0.0
    try:
        while True:
            statuses = await net.status(rpc_timeout=1.0)
            codes = net.returncodes()
            width = shutil.get_terminal_size().columns - 1 if tty else None
            elapsed = f"[{format_duration(int(time.monotonic() - started))}] "
            line = _status_line(statuses, codes, None if width is None else width - len(elapsed))
            now = time.monotonic()
            if tty:
                sys.stderr.write("\r\x1b[K" + elapsed + line)
                sys.stderr.flush()
            elif line != last or now - last_printed >= QUIET_STATUS_INTERVAL:
                _err(elapsed + line)
                last, last_printed = line, now
            if all(code is not None for code in codes):
                return False
            await trio.sleep(STATUS_INTERVAL)
    finally:
        if tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _summary(
    statuses: Sequence[NodeStatus], results: Sequence[StopResult], ran_for: float, stop_timeout: float
) -> str:
    lines = [f"stopped {_plural(len(results), 'node')} after {format_duration(int(ran_for))}"]
    for status, result in zip(statuses, results, strict=True):
        messages = "? messages" if status.info is None else f"{status.info.db_stats.num_messages} messages"
        if not status.node.honest:
            messages = f"adversary ({status.node.mode})"
        if result.outcome == "killed":
            how = f"killed (still running {stop_timeout:g} s after SIGINT)"
        elif result.outcome == "not running":
            how = f"had exited with code {result.returncode}"
        else:
            how = f"exit code {result.returncode}"
        lines.append(f"  {result.name}  {messages}  {how}")
    lines.append(f"trie roots: {_roots_verdict(statuses)}")
    return "\n".join(lines)


async def _up(args: argparse.Namespace, base_dir: Path) -> int:
    interrupts = _Interrupts()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupts.watch, signals)
            try:
                return await _up_body(args, base_dir, interrupts)
            finally:
                nursery.cancel_scope.cancel()


async def _up_body(args: argparse.Namespace, base_dir: Path, interrupts: _Interrupts) -> int:
    from devnet._processes import save_state, start_process_devnet, state_path

    shown_dir = str(args.dir)
    supervisor = None if args.detach else os.getpid()
    started = time.monotonic()
    modes = _modes(args.mode)

    def on_started(net: ProcessDevnet, node: ProcessNode) -> None:
        # Recorded as each node comes up, so even a killed `up` leaves nothing `down` cannot find.
        save_state(net.state(supervisor_pid=supervisor))
        _err(f"  {node.name} ready ({len(net)}/{args.nodes})  gRPC {node.rpc_target}")

    _err(f"starting {_plural(args.nodes, 'node')} in {shown_dir} ...")
    with interrupts.phase() as starting:
        try:
            net = await start_process_devnet(
                args.nodes,
                base_dir,
                rpc_base_port=args.base_port,
                log_level=args.log_level,
                accounts=args.accounts,
                on_started=on_started,
                modes=modes,
                extra_args=[] if args.max_peers is None else ["--max-peers", str(args.max_peers)],
            )
        except BaseException:
            state_path(base_dir).unlink(missing_ok=True)  # its nodes are stopped
            raise
    if starting.cancelled_caught:
        state_path(base_dir).unlink(missing_ok=True)
        raise CliError("interrupted while starting; every node started has been stopped", exit_code=130)

    keep_running = False
    try:
        if len(net) > 1:
            with interrupts.phase(), trio.move_on_after(CONNECT_TIMEOUT) as connecting:
                await net.wait_for_peers(1)
            if connecting.cancelled_caught:
                _err(f"warning: not every node has a peer after {CONNECT_TIMEOUT:g} s; see the node logs")
        if interrupts.count:
            raise CliError("interrupted while connecting; every node has been stopped", exit_code=130)
        save_state(net.state(supervisor_pid=supervisor))
        _print_table(net, shown_dir)
        if args.detach:
            print(f"running in the background; stop with `stateless devnet down --dir {shown_dir}`")
            keep_running = True
            return 0
        _err("Ctrl-C stops every node")
        every_node_exited = False
        if not interrupts.count:
            with interrupts.phase():
                every_node_exited = not await _show_status(net, started)
        final = await net.status(rpc_timeout=2.0)
        totals = await _scrape_totals([n.metrics_url for n in net.nodes])
        results = await net.stop()
        print(_summary(final, results, time.monotonic() - started, net.stop_timeout), flush=True)
        _print_totals(totals, nodes=sum(1 for n in net.nodes if n.honest))
        failed = [f"{r.name} (exit code {r.returncode})" for r in results if r.returncode not in (0, None)]
        if every_node_exited and not failed:
            _err("every node was stopped from outside (`stateless devnet down` or a signal)")
            return 0
        if every_node_exited:
            raise CliError(f"every node exited before Ctrl-C: {', '.join(failed)}; see their node.log")
        unclean = [r.name for r in results if not r.clean]
        if unclean:
            raise CliError(f"not every node stopped cleanly: {', '.join(unclean)} (see their node.log)")
        return 0
    finally:
        if not keep_running:
            await net.stop()
            state_path(base_dir).unlink(missing_ok=True)


async def _scrape_totals(urls: Sequence[str | None]) -> Totals:
    from devnet._summary import metrics_urls, scrape_all

    return await trio.to_thread.run_sync(scrape_all, metrics_urls(urls), abandon_on_cancel=True)


def _print_totals(totals: Totals, *, nodes: int) -> None:
    from devnet._summary import summary_lines

    print("\n".join(summary_lines(totals, nodes=nodes)), flush=True)


def _cmd_up(args: argparse.Namespace) -> int:
    from devnet._processes import check_devnet_options

    try:
        check_devnet_options(args.nodes, args.base_port, _modes(args.mode))
    except ValueError as e:
        raise UsageError(str(e)) from None
    shown_dir = str(args.dir)
    base_dir = args.dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    with _DirLock(base_dir, shown_dir):
        _refuse_if_running(base_dir, shown_dir)
        return int(trio.run(_up, args, base_dir))


# --- status


def _require_state(base_dir: Path, shown_dir: str) -> DevnetState:
    from devnet._processes import load_state

    state = load_state(base_dir)
    if state is None:
        raise CliError(
            f"no devnet in {shown_dir} (no devnet.json there); start one with `stateless devnet up`"
        )
    return state


def _node_state(status: NodeStatus) -> str:
    if not status.running:
        return "stopped"
    # An adversary has no gRPC: its process running is all there is to know.
    return "running" if status.info is not None or not status.node.honest else "unreachable"


def _status_json(state: DevnetState, statuses: Sequence[NodeStatus]) -> dict[str, Any]:
    nodes = []
    for s in statuses:
        entry: dict[str, Any] = {**s.node.to_json(), "state": _node_state(s), "running": s.running}
        info = s.info
        entry.update(
            peers=None if info is None else info.connected_peers,
            known_peers=s.known_peers,
            messages=None if info is None else info.db_stats.num_messages,
            syncing=None if info is None else info.is_syncing,
            root_hash=None if info is None else info.root_hash,
            error=s.error,
        )
        nodes.append(entry)
    return {
        "dir": str(state.base_dir),
        "started_at": iso_unix(int(state.started_at)),
        "supervisor_pid": state.supervisor_pid,
        "genesis": None if state.genesis is None else str(state.genesis),
        "fids": state.fids,
        "running": sum(1 for s in statuses if s.running),
        "roots": _roots_verdict([s for s in statuses if s.running]),
        "nodes": nodes,
    }


def _cmd_status(args: argparse.Namespace) -> int:
    from devnet._node_process import node_process_alive
    from devnet._processes import query_status

    shown_dir = str(args.dir)
    state = _require_state(args.dir.resolve(), shown_dir)
    statuses = query_status(state.nodes, rpc_timeout=args.timeout)
    running = sum(1 for s in statuses if s.running)
    if args.json:
        print(json.dumps(_status_json(state, statuses), indent=2))
    else:
        uptime = format_duration(int(time.time() - state.started_at))
        if state.supervisor_pid is None:
            mode = "detached"
        elif node_process_alive(state.supervisor_pid):
            mode = f"run by `stateless devnet up` (pid {state.supervisor_pid})"
        else:
            mode = f"its `stateless devnet up` (pid {state.supervisor_pid}) is gone"
        print(f"devnet in {shown_dir}: {running} of {_plural(len(statuses), 'node')} running, "
              f"started {iso_unix(int(state.started_at))} ({uptime} ago), {mode}")  # fmt: skip
        rows = []
        for s in statuses:
            info = s.info
            rows.append([
                s.node.name, s.node.mode, _node_state(s), str(s.node.pid),
                "-" if info is None else str(info.connected_peers),
                "-" if info is None else str(info.db_stats.num_messages),
                "-" if info is None else ("yes" if info.is_syncing else "no"),
                s.node.rpc_target or "-", s.node.metrics_url or "-",
            ])  # fmt: skip
        headers = ["NAME", "MODE", "STATE", "PID", "PEERS", "MESSAGES", "SYNCING", "GRPC", "METRICS"]
        print(_table(headers, rows))
        if running:
            print(f"trie roots: {_roots_verdict([s for s in statuses if s.running])}")
    if not running:
        raise CliError(f"no node of the devnet in {shown_dir} is running")
    return 0


# --- down


def _purge(base_dir: Path, state: DevnetState | None) -> list[Path]:
    """Remove what `up` created in `base_dir` (node dirs, keys, genesis, state), nothing else."""
    from devnet._accounts import GENESIS_FILE, KEYS_DIR
    from devnet._node_process import LOG_FILE
    from devnet._processes import STATE_FILE

    removed: list[Path] = []
    node_dirs = {n.data_dir for n in state.nodes} if state is not None else set()
    node_dirs |= {p for p in base_dir.glob("node-*") if (p / "peer.key").exists() or (p / LOG_FILE).exists()}
    for path in sorted(node_dirs):
        if path.is_dir() and path.parent == base_dir:
            shutil.rmtree(path)
            removed.append(path)
    for key in sorted((base_dir / KEYS_DIR).glob("fid-*.key")):
        key.unlink()
        removed.append(key)
    for name in (GENESIS_FILE, STATE_FILE, LOCK_FILE):
        if (base_dir / name).exists():
            (base_dir / name).unlink()
            removed.append(base_dir / name)
    for directory in (base_dir / KEYS_DIR, base_dir):
        with contextlib.suppress(OSError):  # kept if something else is in it
            directory.rmdir()
    return removed


def _cmd_down(args: argparse.Namespace) -> int:
    from devnet._node_process import stop_node_pids
    from devnet._processes import load_state, state_path

    shown_dir = str(args.dir)
    base_dir = args.dir.resolve()
    state = load_state(base_dir)
    if state is None and not args.purge:
        raise CliError(f"no devnet in {shown_dir} (no devnet.json there); nothing to stop")
    if state is not None:
        running = state.running_nodes()
        totals = trio.run(_scrape_totals, [n.metrics_url for n in running]) if running else None
        results = trio.run(partial(stop_node_pids, state.nodes, stop_timeout=args.timeout))
        for r in results:
            how = {
                "stopped": "stopped",
                "killed": f"killed (still running {args.timeout:g} s after SIGINT)",
                "not running": "was not running",
            }[r.outcome]
            print(f"{r.name}  pid {r.pid}  {how}")
        if totals is not None:
            _print_totals(totals, nodes=sum(1 for n in running if n.honest))
        still = [n.name for n in state.running_nodes()]
        if still:
            raise CliError(f"could not stop {', '.join(still)}; devnet.json is kept so you can retry")
        state_path(base_dir).unlink(missing_ok=True)
    if args.purge:
        removed = _purge(base_dir, state)
        what = "its node data, keys and genesis" if removed else "nothing to remove"
        print(
            f"devnet in {shown_dir} is down; {what} removed" if removed else f"devnet in {shown_dir}: {what}"
        )
    else:
        print(f"devnet in {shown_dir} is down; data kept (`stateless devnet down --purge` removes it)")
    return 0


# --- scenario


def _cmd_scenario(args: argparse.Namespace) -> int:
    from devnet._scenarios import SCENARIOS, run_scenario

    if args.list or args.name is None:
        if args.name is None and not args.list:
            raise UsageError("give a scenario NAME, or --list")
        if args.json:
            print(json.dumps([{"name": n, "description": d} for n, (_f, d) in SCENARIOS.items()], indent=2))
        else:
            print(_table(["SCENARIO", "WHAT IT CHECKS"], [[n, d] for n, (_f, d) in SCENARIOS.items()]))
        return 0
    if args.name not in SCENARIOS:
        raise UsageError(f"unknown scenario {args.name!r}; known: {', '.join(SCENARIOS)}")
    import tempfile

    if args.dir is not None:
        base_dir = args.dir.resolve() / args.name
        if base_dir.exists() and any(base_dir.iterdir()):
            raise CliError(f"{base_dir} is not empty: a scenario starts from nothing (remove it first)")
        base_dir.mkdir(parents=True, exist_ok=True)
        keep = True
    else:
        base_dir = Path(tempfile.mkdtemp(prefix=f"stateless-scenario-{args.name}-"))
        keep = False
    # The nodes' logs (bans, refused streams: expected here) go to a file, not over the PASS/FAIL lines.
    import logging

    import p2p  # noqa: F401  (py-libp2p sets up its own stderr logger on import: replaced below)

    log_file = logging.FileHandler(base_dir / "scenario.log")
    log_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[log_file], force=True)
    libp2p_log = logging.getLogger("libp2p")
    libp2p_log.handlers.clear()
    libp2p_log.propagate = True
    libp2p_log.setLevel(logging.WARNING)
    try:
        result = trio.run(partial(run_scenario, args.name, base_dir, size=args.size))
    finally:
        logging.getLogger().removeHandler(log_file)
        log_file.close()
    if not keep and result.passed:
        shutil.rmtree(base_dir, ignore_errors=True)
    if args.json:
        print(json.dumps({**result.to_json(), "dir": str(base_dir)}, indent=2))
    else:
        print(f"{'PASS' if result.passed else 'FAIL'}  {result.name} ({args.size})")
        width = max((len(key) for key in result.figures), default=0)
        for key, value in result.figures.items():
            print(f"  {key:<{width}}  {value}")
        for line in result.details:
            print(f"  ! {line}")
        if not result.passed:
            print(f"  data kept in {base_dir}")
    return 0 if result.passed else 1


# --- parser


def register(subparsers: Any) -> None:
    """Add `devnet` and its commands to the top-level subparsers."""
    devnet = subparsers.add_parser(
        "devnet",
        help="run a local network of hub nodes on loopback",
        description="Run a local network of hub node processes on loopback, with test accounts.",
    )
    sub = devnet.add_subparsers(dest="devnet_command", metavar="COMMAND", required=True)

    up = sub.add_parser(
        "up",
        help="start N nodes, show their addresses and a live status line until Ctrl-C",
        description="Start N `stateless node start` processes on loopback, node i bootstrapping to every "
        "node before it, with a genesis registering test accounts (signer keys in DIR/keys/fid-<fid>.key; "
        "devnet only, the keys are public). Prints a table of the nodes, then a status line every second "
        "until Ctrl-C, which stops every node. With --detach the nodes keep running in the background.",
    )
    up.add_argument(
        "--nodes",
        type=nodes_arg,
        default=DEFAULT_NODES,
        metavar="N",
        help=f"how many nodes (default {DEFAULT_NODES})",
    )
    up.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"data, logs, keys and state of the devnet (default {DEFAULT_DIR})",
    )
    up.add_argument(
        "--base-port",
        type=base_port_arg,
        default=0,
        metavar="P",
        help="node i listens for gRPC on P+i, libp2p on P+100+i, metrics on P+200+i "
        "(default 0: any free ports)",
    )
    up.add_argument(
        "--accounts",
        type=accounts_arg,
        default=DEFAULT_ACCOUNTS,
        metavar="K",
        help=f"test accounts (fids 1..K) in the genesis (default {DEFAULT_ACCOUNTS})",
    )
    up.add_argument(
        "--mode",
        type=mode_arg,
        action="append",
        default=[],
        metavar="I=MODE",
        help="run node I as an adversary: forge, withhold, flood, lie or eclipse (repeatable; node 0 stays "
        "honest). See `stateless devnet adversary --help`",
    )
    up.add_argument(
        "--max-peers",
        type=nodes_arg,
        default=None,
        metavar="N",
        help="connection slots of each honest node (node start --max-peers; default 64)",
    )
    up.add_argument(
        "--detach",
        action="store_true",
        help="leave the nodes running in the background and exit after the table",
    )
    up.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="node log verbosity (default info)"
    )
    up.set_defaults(handler=_cmd_up)

    status = sub.add_parser(
        "status",
        help="show the nodes of a devnet: running or not, peers, messages",
        description="Show each node of the devnet in DIR: process, peers, messages, sync. "
        "Exits with 1 if no node is running.",
    )
    status.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, metavar="DIR", help=f"devnet dir (default {DEFAULT_DIR})"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument(
        "--timeout",
        type=timeout_arg,
        default=2.0,
        metavar="SECONDS",
        help="deadline for each gRPC call (default 2)",
    )
    status.set_defaults(handler=_cmd_status)

    down = sub.add_parser(
        "down",
        help="stop every node of a devnet",
        description="Stop every node of the devnet in DIR: SIGINT, then SIGKILL for any still running after "
        "the timeout. Data is kept unless --purge.",
    )
    down.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, metavar="DIR", help=f"devnet dir (default {DEFAULT_DIR})"
    )
    down.add_argument("--purge", action="store_true", help="also remove the node data, keys and genesis")
    down.add_argument(
        "--timeout",
        type=timeout_arg,
        default=20.0,
        metavar="SECONDS",
        help="how long each node may take to stop before SIGKILL (default 20)",
    )
    down.set_defaults(handler=_cmd_down)

    scenario = sub.add_parser(
        "scenario",
        help="run a named network scenario (adversaries, partitions, churn) and print PASS/FAIL",
        description="Run a named scenario on a throwaway devnet and print PASS or FAIL with its figures "
        "(exit code 0 on PASS, 1 on FAIL). --list shows the scenarios.",
    )
    scenario.add_argument("name", nargs="?", metavar="NAME", help="the scenario to run")
    scenario.add_argument("--list", action="store_true", help="list the scenarios and exit")
    scenario.add_argument(
        "--size", choices=("small", "medium"), default="small", help="how much traffic (default small)"
    )
    scenario.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the scenario's data in DIR/NAME (default: a temporary dir, removed on PASS)",
    )
    scenario.add_argument("--json", action="store_true", help="print the result as JSON")
    scenario.set_defaults(handler=_cmd_scenario)

    register_adversary(sub)
