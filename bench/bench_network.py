"""Network benchmark: five `stateless node start` processes on loopback, gossip and diff sync between them.

    .venv/bin/python bench/bench_network.py [--quick] [--sync-messages N] [--skip SCENARIO] [--json]
    (`make bench-network` runs it with the defaults)

Every message is built and signed before any timing starts: distinct casts, reactions and links spread
round-robin over many fids that one genesis file registers (with enough storage units) on every node, with
timestamps spread over the last `--spread-minutes` so the sync trie has a realistic shape. A network is
`--nodes` processes started one after the other, node k bootstrapping to all nodes before it (a full mesh);
before any timing the script waits until every node has a connection to every other and a round of probe
messages (one submitted to each node) reaches all nodes within a second, i.e. gossip carries them. Nodes are
stopped with SIGINT, always, also when a scenario fails.

* baseline     one fresh node, SubmitBulkMessages in batches of `--batch`, one call in flight: the
               single-node ingest rate the network figures are compared with, measured in this run.
* propagation  a Subscribe(merge_message) stream on every node (a thread each, recording when each hash
               arrives), then one SubmitMessage every 1/`--prop-rate` s, round-robin over the nodes, open
               loop (a call does not wait for the previous one, so a slow node cannot lower the offered
               rate). Latency = latest arrival over all nodes minus send time; a message not on every node
               within `--settle` s counts as infinitely late.
* ladder       for each pacing in `--pace` and each rate R (increasing; stop at the first failure) a fresh
               network gets R msg/s for `--duration` s as SubmitBulkMessages batches, one batch to each node
               every `pace` s (nodes staggered). A rate passes if within `--settle` s after the last batch
               returns every node reports the expected GetInfo num_messages, and the achieved submit rate
               was at least 90% of R. On a failure the script watches `--observe` s longer and reports when
               (if) the network converged after all.
* sync         one node is loaded with `--sync-messages` messages; a fresh node bootstrapping to it is
               timed from its launch (and from its `ready` line) until GetInfo on it reports all of them
               (polled every 0.2 s).

Node CPU is read from /proc per process and per thread (trio loop, trio worker threads, gRPC threads); CPU
used by other processes during a scenario is what /proc/stat says processes used minus ours. Node logs
(`--log-level`, default info) are scanned for warnings, penalties, bans and diff-sync transfers.
`--profile DIR` runs node0 of each network (and the fresh sync node) under cProfile and summarises where its
trio loop spends its time; profiled nodes are slower, so take rates from an unprofiled run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import pstats
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without `pip install -e .`
    sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from bench.bench_ingest import (  # noqa: E402
    CALL_TIMEOUT,
    DEVNET,
    SUBMIT,
    SUBMIT_BULK,
    NodeProcess,
    Workload,
    _errcode,
    _key,
    bulk,
    bulk_requests,
    jsonable,
    log,
    machine,
    mixed_message_data,
    run_scenario,
    stop_nodes,
)
from devnet import ProcessNode, node_command  # noqa: E402
from protocols.messages import farcaster_now, sign_message_data  # noqa: E402
from protocols.proto import hub_event_pb2 as he  # noqa: E402
from protocols.proto import message_pb2 as pb  # noqa: E402
from protocols.proto import request_response_pb2 as rr  # noqa: E402
from protocols.proto import rpc_pb2_grpc  # noqa: E402

GOAL_RATE: Final = 2000.0  # msg/s network-wide with full convergence
GOAL_P99_S: Final = 1.0  # p99 propagation at 100 msg/s
GOAL_SYNC_RATE: Final = 20_000.0  # msg/s for a fresh node
HUBBLE_PEAK: Final = 500.0  # Farcaster's Hubble network, for reference (from the issue)
PER_FID: Final = 2000  # messages per fid: 1000 casts, 500 reactions, 500 links, far below 5 units' limits
PROBES: Final = 200  # probe messages, set apart from the workload (warm-up rounds use 1 per node)
CONNECT_TIMEOUT: Final = 60.0
WARMUP_ROUNDS: Final = 8
WARMUP_FAST_S: Final = 1.0  # a probe round this fast went by gossip, not by a later diff sync
ACHIEVED_SHARE: Final = 0.9  # ladder: a rung the client could not push at >= 90% of R does not count
POLL_S: Final = 0.2
SCENARIOS: Final = ("baseline", "propagation", "ladder", "sync")


# ------------------------------------------------------------------------------------------------ workload


def build_pool(n: int, *, fids: int, units: int, spread_s: int) -> Workload:
    """`n` distinct signed messages with timestamps spread over `spread_s`, plus PROBES probe casts.

    1/2 casts, 1/4 reactions, 1/4 links, fids interleaved, so any prefix of the pool is spread over every
    fid and over a prefix of the time range. Probes (in `warmup`) are casts stamped a minute ago.
    """
    keys = {fid: _key(fid) for fid in range(1, fids + 1)}
    now = farcaster_now()
    start = now - 60 - spread_s
    built: list[pb.Message] = []
    for i in range(n):
        fid = 1 + i % fids
        timestamp = start + (i * spread_s) // max(1, n)
        d = mixed_message_data(
            i, fids, timestamp, text="network benchmark cast", target=b"network target", link_base=2_000_000
        )
        built.append(sign_message_data(d, keys[fid]))
    probes = []
    for i in range(PROBES):
        fid = 1 + i % fids
        d = pb.MessageData(fid=fid, timestamp=now - 60, network=DEVNET, type=pb.MESSAGE_TYPE_CAST_ADD)
        d.cast_add_body.text = f"network benchmark probe {i}"
        probes.append(sign_message_data(d, keys[fid]).SerializeToString())
    return Workload(
        keys=keys, units=units, warmup=probes, messages=built, raws=[m.SerializeToString() for m in built]
    )


# ------------------------------------------------------------------------------------------------ processes


def _thread_role(pid: int, main_name: str, tid: int, name: str) -> str:
    """Which part of a networked node a thread is, from its id and OS name."""
    if tid == pid:
        return "trio loop"  # libp2p (noise, yamux, gossipsub), sync, engine, the gRPC bridge
    if name == main_name or name.startswith("grpc") or name in ("event_engine", "lifeguard"):
        # Python 3.11 does not name threads at the OS level: an unnamed one is grpc.aio's server thread.
        return "gRPC threads"
    return "trio workers"  # trio names its worker threads: validation batches and the LMDB writer


class NetNode(NodeProcess):
    """bench_ingest's NodeProcess at a chosen log level, maybe under cProfile, with launch and ready times.

    A network's nodes are stopped together (`stop_nodes`), so none gets a second SIGINT while it shuts down.
    """

    def __init__(
        self,
        workdir: Path,
        genesis: Path,
        *,
        bootstrap: Sequence[str] = (),
        log_level: str = "info",
        profile_to: Path | None = None,
    ) -> None:
        command = node_command()
        if profile_to is not None and len(command) == 1:
            # cProfile of the main thread (the trio loop) over the node's whole life, dumped at exit.
            command = [sys.executable, "-m", "cProfile", "-o", str(profile_to), *command]
        super().__init__(workdir, genesis, bootstrap=bootstrap, log_level=log_level, command=command)
        self.launched_at = 0.0
        self.ready_at = 0.0

    def launch(self) -> ProcessNode:
        self.launched_at = time.perf_counter()
        node = super().launch()
        self.ready_at = time.perf_counter()
        return node

    def roles_since(self, before: dict[int, tuple[str, float]]) -> dict[str, float]:
        """CPU seconds by thread role since the `thread_cpu()` snapshot `before` (live threads only)."""
        threads = self.thread_cpu()
        main_name = threads.get(self.pid, ("", 0.0))[0]
        out: dict[str, float] = {}
        for tid, (name, cpu) in threads.items():
            role = _thread_role(self.pid, main_name, tid, name)
            out[role] = out.get(role, 0.0) + cpu - before.get(tid, (name, 0.0))[1]
        return out


def _system_busy() -> tuple[float, float]:
    """CPU seconds the whole machine (all CPUs) spent in processes, and in interrupts, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    tick = os.sysconf("SC_CLK_TCK")
    return sum(values[:3]) / tick, sum(values[5:7]) / tick


@dataclass
class CpuMeter:
    """CPU of our node processes, of this client and of everything else, between `start` and `stop`."""

    nodes: Sequence[NetNode]
    started: float = 0.0
    wall_s: float = 0.0
    _nodes0: list[float] = field(default_factory=list)
    _threads0: list[dict[int, tuple[str, float]]] = field(default_factory=list)
    _client0: float = 0.0
    _busy0: tuple[float, float] = (0.0, 0.0)
    result: dict[str, Any] = field(default_factory=dict)

    def start(self) -> CpuMeter:
        self._nodes0 = [n.cpu_seconds() for n in self.nodes]
        self._threads0 = [n.thread_cpu() for n in self.nodes]
        self._client0 = time.process_time()
        self._busy0 = _system_busy()
        self.started = time.perf_counter()
        return self

    def stop(self, late: Sequence[NetNode] = ()) -> dict[str, Any]:
        """The figures; nodes in `late` were started after `start` and count with their whole life."""
        self.wall_s = time.perf_counter() - self.started
        everyone = [*self.nodes, *late]
        nodes = [n.cpu_seconds() - c0 for n, c0 in zip(self.nodes, self._nodes0, strict=True)]
        nodes += [n.cpu_seconds() for n in late]
        roles: dict[str, float] = {}
        threads0 = [*self._threads0, *({} for _ in late)]
        for node, before, total in zip(everyone, threads0, nodes, strict=True):
            by_role = node.roles_since(before)
            for role, cpu in by_role.items():
                roles[role] = roles.get(role, 0.0) + cpu
            roles["exited threads"] = roles.get("exited threads", 0.0) + max(
                0.0, total - sum(by_role.values())
            )
        client = time.process_time() - self._client0
        busy1 = _system_busy()
        busy, irq = busy1[0] - self._busy0[0], busy1[1] - self._busy0[1]
        self.result = {
            "wall_s": self.wall_s,
            "node_cpu_s": {n.name: c for n, c in zip(everyone, nodes, strict=True)},
            "node_roles_cpu_s": roles,
            "client_cpu_s": client,
            # We start no other processes, so the rest of the process time is other people's. Interrupt
            # time (loopback TCP runs partly in softirq) is ours and theirs alike, so it is shown apart.
            "others_cores": max(0.0, busy - sum(nodes) - client) / self.wall_s if self.wall_s else 0.0,
            "irq_cores": irq / self.wall_s if self.wall_s else 0.0,
            "loadavg": os.getloadavg(),
        }
        return self.result


class Network:
    """`size` node processes, node k bootstrapping to nodes 0..k-1; all stopped with SIGINT on exit."""

    def __init__(
        self, workdir: Path, genesis: Path, size: int, log_level: str, profile_to: Path | None = None
    ) -> None:
        self.workdir = workdir
        self._profile_to = profile_to
        self.nodes: list[NetNode] = []
        self._genesis = genesis
        self._size = size
        self._log_level = log_level
        self._channels: list[grpc.Channel] = []
        self._stubs: list[Any] = []
        self.start_s = 0.0

    def __enter__(self) -> Network:
        t0 = time.perf_counter()
        try:
            for k in range(self._size):
                bootstrap = [node.libp2p_addrs[0] for node in self.nodes]
                profile = self._profile_to if k == 0 else None  # one node is enough: they do the same
                node = NetNode(self.workdir / f"node{k}", self._genesis, bootstrap=bootstrap,
                               log_level=self._log_level, profile_to=profile)  # fmt: skip
                self.nodes.append(node)
                node.launch()
                self._channels.append(grpc.insecure_channel(node.rpc_target))
                self._stubs.append(rpc_pb2_grpc.HubServiceStub(self._channels[-1]))
            self._wait_connected()
        except BaseException:
            self.__exit__()
            raise
        self.start_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        for channel in self._channels:
            channel.close()
        bad = stop_nodes(self.nodes)
        if bad:
            log(f"  nodes exited with non-zero codes: {bad}")

    @property
    def targets(self) -> list[str]:
        return [n.rpc_target for n in self.nodes]

    def info(self, k: int) -> rr.HubInfoResponse:
        """GetInfo of node k."""
        response: rr.HubInfoResponse = self._stubs[k].GetInfo(rr.HubInfoRequest(db_stats=True), timeout=30)
        return response

    def counts(self) -> list[int]:
        """db_stats.num_messages of every node."""
        return [int(self.info(k).db_stats.num_messages) for k in range(len(self.nodes))]

    def roots(self) -> list[str]:
        """Sync trie root hash of every node."""
        return [self.info(k).root_hash for k in range(len(self.nodes))]

    def _wait_connected(self) -> None:
        deadline = time.perf_counter() + CONNECT_TIMEOUT
        while True:
            peers = [int(self.info(k).connected_peers) for k in range(len(self.nodes))]
            if min(peers) >= len(self.nodes) - 1:
                return
            if time.perf_counter() > deadline:
                raise RuntimeError(f"network did not connect within {CONNECT_TIMEOUT:.0f} s: peers {peers}")
            time.sleep(POLL_S)

    def submit(self, k: int, raw: bytes) -> None:
        """SubmitMessage of pre-serialised bytes to node k."""
        self._channels[k].unary_unary(SUBMIT, None, None)(raw, timeout=CALL_TIMEOUT)

    def warm_up(self, probes: Iterator[bytes]) -> list[float]:
        """Probe rounds (one message to each node, wait until every node holds all) until one is fast.

        A fast round means gossip carries messages between all nodes; the first rounds after start-up
        may wait for gossipsub's mesh (a heartbeat) or for a diff sync.
        """
        rounds: list[float] = []
        for _ in range(WARMUP_ROUNDS):
            expected = max(self.counts()) + len(self.nodes)
            t0 = time.perf_counter()
            for k in range(len(self.nodes)):
                self.submit(k, next(probes))
            while min(self.counts()) < expected and time.perf_counter() - t0 < 30:
                time.sleep(0.05)
            rounds.append(time.perf_counter() - t0)
            if rounds[-1] < WARMUP_FAST_S:
                break
        log(f"    warm-up probe rounds: {', '.join(f'{r:.2f} s' for r in rounds)}")
        return rounds


def _probe_feed(workload: Workload) -> Iterator[bytes]:
    return iter(workload.warmup)


# ------------------------------------------------------------------------------------------------ node logs


LOG_LINE: Final = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (\w+)\s+(\S+): (.*)$")
PEER_ID: Final = re.compile(r"\b(12D3KooW|Qm)\w{20,}")
SYNCED: Final = re.compile(r"synced with \S+: fetched (\d+) \(merged (\d+)\), pushed (\d+)")
PENALTY: Final = re.compile(r"peer \S+: (\w+) x(\d+)")


def scan_logs(nodes: Sequence[NetNode]) -> dict[str, Any]:
    """What the node logs say: warnings and errors (normalised, counted), penalties, diff-sync repairs."""
    problems: Counter[str] = Counter()
    penalties: Counter[str] = Counter()
    sessions = fetched = merged = pushed = tracebacks = 0
    for node in nodes:
        with contextlib.suppress(OSError), open(node.log_path, errors="replace") as f:
            for line in f:
                if line.startswith("Traceback"):
                    tracebacks += 1
                m = LOG_LINE.match(line.rstrip("\n"))
                if m is None:
                    continue
                level, logger, text = m.groups()
                if level in ("WARNING", "ERROR", "CRITICAL"):
                    shape = re.sub(r"\d+(\.\d+)?", "N", PEER_ID.sub("<peer>", text))
                    problems[f"{level} {logger}: {shape[:160]}"] += 1
                if (s := SYNCED.search(text)) is not None:
                    sessions += 1
                    fetched += int(s.group(1))
                    merged += int(s.group(2))
                    pushed += int(s.group(3))
                if (p := PENALTY.search(text)) is not None:
                    penalties[p.group(1)] += int(p.group(2))
    return {
        "problems": dict(problems.most_common(12)),
        "problem_lines": sum(problems.values()),
        "tracebacks": tracebacks,
        "penalties": dict(penalties),
        "sync_sessions_with_transfer": sessions,
        "sync_fetched": fetched,
        "sync_merged": merged,
        "sync_pushed": pushed,
    }


def keep_logs(nodes: Sequence[NetNode], into: Path | None, scenario: str) -> None:
    """Copy node logs out of the temporary directory (--keep-logs)."""
    if into is None:
        return
    target = into / scenario
    target.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        with contextlib.suppress(OSError):
            shutil.copy(node.log_path, target / f"{node.name}.log")


# ------------------------------------------------------------------------------------------------ profiles


#: Parts of a node's trio loop worth naming: (label, file suffix, function name). They overlap (cumulative).
PROFILE_PARTS: Final = (
    ("gossip in: pubsub push_msg (incl. our validator)", "libp2p/pubsub/pubsub.py", "push_msg"),
    ("  our bundle validator (_on_bundle)", "node/network.py", "_on_bundle"),
    ("gossip out: gossipsub publish (own + forwarded)", "libp2p/pubsub/gossipsub.py", "publish"),
    ("gossipsub IDONTWANT control messages", "libp2p/pubsub/gossipsub.py", "emit_idontwant"),
    ("signed peer record attached to an RPC", "libp2p/peer/peerstore.py", "env_to_send_in_RPC"),
    ("signed peer record checked in an RPC", "libp2p/pubsub/utils.py", "maybe_consume_signed_record"),
    ("yamux window updates", "libp2p/stream_muxer/yamux/yamux.py", "send_window_update"),
    ("noise: encrypt and write a frame", "libp2p/security/noise/io.py", "write_msg"),
    ("noise: read and decrypt a frame", "libp2p/security/noise/io.py", "read_msg"),
    ("socket send (loopback: incl. receiver's TCP)", "~", "<method 'send' of '_socket.socket' objects>"),
    ("diff sync: ingest of fetched/pushed messages", "node/sync.py", "ingest"),
    ("diff sync: requests as a client", "p2p/_sync_wire.py", "request"),
    ("diff sync: serving a peer", "p2p/_sync_wire.py", "serve_sync_stream"),
)
#: Exact call counts (plain functions, not coroutines, whose resumptions cProfile counts as calls).
PROFILE_COUNTS: Final = (
    ("gossip messages received (first copies)", "libp2p/pubsub/validators.py", "signature_validator"),
    ("Farcaster messages decoded from peers", "protocols/messages/_validation.py", "decode_message"),
    ("pubsub RPCs sent", "libp2p/peer/peerstore.py", "env_to_send_in_RPC"),
    ("pubsub RPCs received", "libp2p/pubsub/utils.py", "maybe_consume_signed_record"),
    ("noise frames encrypted", "libp2p/security/noise/io.py", "encrypt"),
    ("socket send calls", "~", "<method 'send' of '_socket.socket' objects>"),
)
EPOLL: Final = "<method 'poll' of 'select.epoll' objects>"


def profile_summary(path: Path) -> dict[str, Any]:
    """Busy time of a profiled node's trio loop and the share of it spent in each of PROFILE_PARTS.

    cProfile's default clock is wall time, so on a loaded machine time spent descheduled counts too; the
    shares are indicative. Worker threads (validation batches, LMDB commits) are not in the profile.
    """
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in table.values())
    idle = sum(row[2] for func, row in table.items() if func[2] == EPOLL)
    busy = max(total - idle, 1e-9)
    parts: dict[str, float] = {}
    for label, suffix, name in PROFILE_PARTS:
        cum = sum(
            row[3]
            for (filename, _, fname), row in table.items()
            if fname == name and filename.replace(os.sep, "/").endswith(suffix)
        )
        parts[label] = cum / busy
    counts: dict[str, int] = {}
    for label, suffix, name in PROFILE_COUNTS:
        counts[label] = sum(
            row[1]
            for (filename, _, fname), row in table.items()
            if fname == name and filename.replace(os.sep, "/").endswith(suffix)
        )
    return {"file": str(path), "busy_s": busy, "idle_s": idle, "share_of_busy": parts, "counts": counts}


def with_profile(result: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """`result` with the profile written to `path` summarised in it (if there is one)."""
    if path is not None and path.exists():
        try:
            result["profile"] = profile_summary(path)
        except Exception as e:  # a broken profile must not lose the figures
            result["profile"] = {"file": str(path), "error": str(e)}
    return result


# ------------------------------------------------------------------------------------------------ scenarios


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def _summary(values: Sequence[float]) -> dict[str, float]:
    s = sorted(values)
    return {
        "p50": percentile(s, 0.50),
        "p90": percentile(s, 0.90),
        "p99": percentile(s, 0.99),
        "max": s[-1] if s else math.nan,
    }


def baseline(workdir: Path, genesis: Path, pool: Workload, n: int, batch: int) -> dict[str, Any]:
    """Single-node SubmitBulkMessages ingest, one call in flight, on a fresh node (as in bench_ingest)."""
    workload = Workload(pool.keys, pool.units, pool.warmup, pool.messages[:n], pool.raws[:n])
    requests = bulk_requests(workload.messages, batch)
    result = run_scenario(
        f"baseline bulk {batch}", workdir, genesis, workload, lambda node, e, o: bulk(node, requests, 1, e, o)
    )
    return {
        "messages": result.messages,
        "merged": result.merged,
        "batch": batch,
        "wall_s": result.wall_s,
        "rate": result.rate,
        "server_cpu_us": result.server_cpu_us,
        "server_threads_us": {k: v / result.messages * 1e6 for k, v in result.server_threads_s.items()},
        "errors": result.errors,
    }


class Arrivals:
    """A Subscribe(merge_message) stream per node, each read by a thread recording hash -> arrival time."""

    def __init__(self, targets: Sequence[str]) -> None:
        self.seen: list[dict[bytes, float]] = [{} for _ in targets]
        self.errors: list[str] = []
        self._channels = [grpc.insecure_channel(t) for t in targets]
        self._calls: list[Any] = []
        self._threads: list[threading.Thread] = []
        request = rr.SubscribeRequest(event_types=[he.HUB_EVENT_TYPE_MERGE_MESSAGE])
        for k, channel in enumerate(self._channels):
            call = rpc_pb2_grpc.HubServiceStub(channel).Subscribe(request)
            self._calls.append(call)
            thread = threading.Thread(target=self._follow, args=(k, call), name=f"subscribe-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _follow(self, k: int, call: Any) -> None:
        seen = self.seen[k]
        try:
            for event in call:
                arrived = time.perf_counter()
                seen.setdefault(bytes(event.merge_message_body.message.hash), arrived)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.errors.append(f"node{k}: {e.code()} {e.details()}")

    def everywhere(self, hashes: Sequence[bytes]) -> bool:
        """Whether every node's stream has seen every one of `hashes`."""
        return all(h in seen for seen in self.seen for h in hashes)

    def close(self) -> None:
        for call in self._calls:
            call.cancel()
        for thread in self._threads:
            thread.join(5)
        for channel in self._channels:
            channel.close()


async def _open_loop(
    targets: Sequence[str], raws: Sequence[bytes], rate: float
) -> tuple[list[float], Counter[str], float, float, int]:
    """SubmitMessage of raws[k] to node k % len(targets) at t0 + k / rate, not waiting for earlier calls.

    Open loop, so a slow node does not lower the offered rate (and hide its own latency): returns each
    message's send time, the error counts, t0, the time of the last send and the most calls in flight.
    """
    size = len(targets)
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    sent = [math.nan] * len(raws)
    errors: Counter[str] = Counter()
    in_flight = most = 0
    try:
        for channel in channels:
            await channel.channel_ready()
        calls = [channel.unary_unary(SUBMIT, None, None) for channel in channels]

        async def one(k: int) -> None:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            sent[k] = time.perf_counter()
            try:
                await calls[k % size](raws[k], timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as e:
                errors[_errcode(e)] += 1
            finally:
                in_flight -= 1

        tasks: list[asyncio.Task[None]] = []
        t0 = time.perf_counter() + 0.05
        for k in range(len(raws)):
            if (delay := t0 + k / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k)))
        last = time.perf_counter()
        await asyncio.gather(*tasks)
    finally:
        for channel in channels:
            await channel.close(None)
    return sent, errors, t0, last, most


def propagation(
    workdir: Path, genesis: Path, pool: Workload, *, size: int, rate: float, seconds: float, settle: float,
    log_level: str, logs_to: Path | None, profile_to: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Submit-to-visible-everywhere latency at a steady `rate` of single SubmitMessage calls."""
    n = max(1, int(rate * seconds))
    raws = pool.raws[:n]
    hashes = [bytes(m.hash) for m in pool.messages[:n]]
    log(f"  propagation: starting {size} nodes ...")
    with Network(workdir / "propagation", genesis, size, log_level, profile_to) as net:
        arrivals = Arrivals(net.targets)
        try:
            probes = list(pool.warmup[: size * WARMUP_ROUNDS])
            warm = net.warm_up(iter(probes))
            last_probes = [
                bytes(pb.Message.FromString(p).hash) for p in probes[(len(warm) - 1) * size :][:size]
            ]
            deadline = time.perf_counter() + 10
            while not arrivals.everywhere(last_probes):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"Subscribe streams did not see the warm-up probes: {arrivals.errors}")
                time.sleep(0.05)
            log(f"  propagation: {n:,} messages at {rate:g} msg/s, round-robin over {size} nodes ...")
            meter = CpuMeter(net.nodes).start()
            sent, errors, t0, last_sent, most = asyncio.run(_open_loop(net.targets, raws, rate))
            while not arrivals.everywhere(hashes) and time.perf_counter() < last_sent + settle:
                time.sleep(0.1)
            cpu = meter.stop()
        finally:
            arrivals.close()
        start_s = net.start_s
    logs = scan_logs(net.nodes)
    keep_logs(net.nodes, logs_to, "propagation")
    shutil.rmtree(workdir / "propagation", ignore_errors=True)
    everywhere: list[float] = []  # latency of each message to its last node; inf if beyond `settle`
    local: list[float] = []
    by_quarter: list[list[float]] = [[], [], [], []]
    late = 0
    for k, (h, at) in enumerate(zip(hashes, sent, strict=True)):
        times = [seen.get(h) for seen in arrivals.seen]
        if (mine := times[k % size]) is not None:
            local.append(mine - at)
        arrived = [t for t in times if t is not None]
        if len(arrived) == size and max(arrived) - at <= settle:
            everywhere.append(max(arrived) - at)
        else:
            everywhere.append(math.inf)  # never (in time) counts as infinitely late in the percentiles
            late += 1
        by_quarter[min(3, 4 * k // n)].append(everywhere[-1])
    result = {
        "nodes": size,
        "messages": n,
        "target_rate": rate,
        "achieved_rate": n / (last_sent - t0),
        "most_in_flight": most,
        "network_start_s": start_s,
        "warmup_rounds_s": warm,
        "latency_s": _summary(everywhere),
        "latency_by_quarter_s": [_summary(q) for q in by_quarter],
        "local_latency_s": _summary(local),
        "never_everywhere": late,
        "submit_errors": dict(errors),
        "stream_errors": arrivals.errors,
        "cpu": cpu,
        "logs": logs,
    }
    lat = _summary(everywhere)
    log(f"  propagation: p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}, never everywhere {late}")
    return result


async def _paced_load(
    targets: Sequence[str], requests: Sequence[bytes], batch_gap: float, counts: Callable[[], list[int]],
    expected: int, settle: float, observe: float,
) -> dict[str, Any]:  # fmt: skip
    """Send batch j at t0 + j * batch_gap to node j % len(targets) (one call in flight per node), then
    poll GetInfo until every node holds `expected` messages (or `settle` + `observe` s have passed)."""
    size = len(targets)
    errors: Counter[str] = Counter()
    lag = 0.0
    finished: list[float] = []
    channels = [grpc.aio.insecure_channel(t) for t in targets]
    try:
        for channel in channels:
            await channel.channel_ready()
        t0 = time.perf_counter() + 0.05

        async def feed(k: int) -> None:
            nonlocal lag
            call = channels[k].unary_unary(SUBMIT_BULK, None, None)
            for j in range(k, len(requests), size):
                due = t0 + j * batch_gap
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                lag = max(lag, time.perf_counter() - due)
                try:
                    raw = await call(requests[j], timeout=CALL_TIMEOUT)
                except grpc.aio.AioRpcError as e:
                    errors[_errcode(e)] += 1
                    continue
                for entry in rr.SubmitBulkMessagesResponse.FromString(raw).messages:
                    if entry.WhichOneof("response") == "message_error":
                        errors[entry.message_error.errCode] += 1
            finished.append(time.perf_counter())

        await asyncio.gather(*(feed(k) for k in range(size)))
    finally:
        for channel in channels:
            await channel.close(None)
    stopped = max(finished)
    samples: list[tuple[float, list[int]]] = []
    converged_after: float | None = None
    while True:
        # GetInfo through the blocking stubs on a worker thread, so the polling itself is timed fairly.
        now_counts = await asyncio.to_thread(counts)
        now = time.perf_counter() - stopped
        samples.append((now, now_counts))
        if min(now_counts) >= expected:
            converged_after = now
            break
        if now > settle + observe:
            break
        await asyncio.sleep(POLL_S)
    return {
        "t0": t0,
        "stopped": stopped,
        "load_s": stopped - t0,
        "max_lag_s": lag,
        "errors": dict(errors),
        "converged_after_s": converged_after,
        "counts_at_settle": next((c for t, c in samples if t >= settle), samples[-1][1]),
        "final_counts": samples[-1][1],
    }


def ladder_rung(
    workdir: Path, genesis: Path, pool: Workload, *, size: int, rate: float, pace: float, duration: float,
    settle: float, observe: float, log_level: str, logs_to: Path | None, profile_to: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """A fresh network, `rate` msg/s for `duration` s, then: does every node hold everything in `settle` s?

    Each node gets one SubmitBulkMessages batch about every `pace` s (the nodes staggered evenly).
    """
    n = int(rate * duration)
    batch = max(1, min(1000, round(rate * pace / size)))
    requests = bulk_requests(pool.messages[:n], batch)
    name = f"ladder-{rate:g}-pace-{pace:g}"
    log(f"  ladder {rate:g} msg/s, pace {pace:g} s: starting {size} nodes ...")
    with Network(workdir / name, genesis, size, log_level, profile_to) as net:
        warm = net.warm_up(_probe_feed(pool))
        before = net.counts()
        if len(set(before)) != 1:
            raise RuntimeError(f"nodes differ before the load: {before}")
        expected = before[0] + n
        log(f"  ladder {rate:g} msg/s: {n:,} messages in batches of {batch} over {duration:g} s ...")
        meter = CpuMeter(net.nodes).start()
        load = asyncio.run(
            _paced_load(net.targets, requests, batch / rate, net.counts, expected, settle, observe)
        )
        cpu = meter.stop()
        roots = net.roots()
        start_s = net.start_s
    # Read after the nodes stopped, so problems during shutdown are counted too.
    logs = scan_logs(net.nodes)
    keep_logs(net.nodes, logs_to, name)
    shutil.rmtree(workdir / name, ignore_errors=True)
    achieved = n / load["load_s"]
    converged = load["converged_after_s"]
    passed = converged is not None and converged <= settle and achieved >= ACHIEVED_SHARE * rate
    result = {
        "rate": rate,
        "pace_s": pace,
        "messages": n,
        "batch": batch,
        "achieved_rate": achieved,
        "network_start_s": start_s,
        "warmup_rounds_s": warm,
        **{k: v for k, v in load.items() if k not in ("t0", "stopped")},
        "expected_per_node": expected,
        "roots_equal": len(set(roots)) == 1,
        "passed": passed,
        "cpu": cpu,
        "logs": logs,
    }
    log(
        f"  ladder {rate:g} msg/s: achieved {achieved:,.0f} msg/s, converged "
        + (f"{converged:.1f} s after the load" if converged is not None else "NOT within the window")
        + f" -> {'pass' if passed else 'FAIL'}"
    )
    return result


def sync(
    workdir: Path, genesis: Path, pool: Workload, *, n: int, batch: int, log_level: str, logs_to: Path | None,
    profile_to: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Load `n` messages into one node, then time a fresh node bootstrapping to it until it holds them all."""
    requests = bulk_requests(pool.messages[:n], batch)
    log(f"  sync: loading {n:,} messages into a source node ...")
    source = NetNode(workdir / "sync" / "source", genesis, log_level=log_level)
    with source, grpc.insecure_channel(source.rpc_target) as channel:
        errors: Counter[str] = Counter()
        out: dict[str, float] = {}
        bulk(source, requests, 1, errors, out)
        stub = rpc_pb2_grpc.HubServiceStub(channel)
        info = stub.GetInfo(rr.HubInfoRequest(db_stats=True), timeout=30)
        held = int(info.db_stats.num_messages)
        if held != n:
            log(f"  sync: the source holds {held:,} messages, not {n:,} (load errors {dict(errors)})")
        log(f"  sync: loaded at {n / out['wall']:,.0f} msg/s; starting a fresh node bootstrapping to it ...")
        deadline_s = max(60.0, n / 1000 + 60)
        samples: list[tuple[float, int]] = []
        fresh = NetNode(workdir / "sync" / "fresh", genesis, bootstrap=source.libp2p_addrs[:1],
                        log_level=log_level, profile_to=profile_to)  # fmt: skip
        meter = CpuMeter([source]).start()
        with fresh, grpc.insecure_channel(fresh.rpc_target) as fresh_channel:
            fresh_stub = rpc_pb2_grpc.HubServiceStub(fresh_channel)
            done: float | None = None
            while True:
                count = int(
                    fresh_stub.GetInfo(rr.HubInfoRequest(db_stats=True), timeout=30).db_stats.num_messages
                )
                now = time.perf_counter()
                samples.append((now - fresh.launched_at, count))
                if count >= held:
                    done = now
                    break
                if now - fresh.launched_at > deadline_s:
                    break
                time.sleep(POLL_S)
            cpu = meter.stop(late=[fresh])  # the fresh node from its launch: start-up included
            roots_equal = (
                fresh_stub.GetInfo(rr.HubInfoRequest(), timeout=30).root_hash
                == stub.GetInfo(rr.HubInfoRequest(), timeout=30).root_hash
            )
            launched, ready = fresh.launched_at, fresh.ready_at
    logs = scan_logs([source, fresh])
    keep_logs([source, fresh], logs_to, "sync")
    shutil.rmtree(workdir / "sync", ignore_errors=True)

    def reached(share: float) -> float | None:
        return next((t for t, c in samples if c >= share * held), None)

    result: dict[str, Any] = {
        "messages": n,
        "held_by_source": held,
        "load_rate": n / out["wall"],
        "load_server_cpu_us": out["server"] / n * 1e6,
        "load_errors": dict(errors),
        "start_to_ready_s": ready - launched,
        "synced": done is not None,
        "final_count": samples[-1][1],
        "from_launch_s": (done - launched) if done is not None else None,
        "from_ready_s": (done - ready) if done is not None else None,
        "half_s": reached(0.5),
        "ninety_s": reached(0.9),
        "roots_equal": roots_equal,
        "cpu": cpu,
        "logs": logs,
    }
    if done is not None:
        result["rate_from_launch"] = held / (done - launched)
        result["rate_from_ready"] = held / (done - ready)
        took = done - launched
        log(f"  sync: {held:,} messages in {took:.1f} s from launch ({held / took:,.0f} msg/s)")
    else:
        log(f"  sync: NOT done after {deadline_s:.0f} s: the fresh node holds {samples[-1][1]:,} of {held:,}")
    return result


# ------------------------------------------------------------------------------------------------ report


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return "never" if math.isinf(seconds) else f"{seconds * 1000:,.0f} ms"


def _cpu_line(cpu: dict[str, Any], messages: int, label: str) -> list[str]:
    per_node = {k: v / messages * 1e6 for k, v in cpu["node_cpu_s"].items()}
    roles = {k: v / messages * 1e6 for k, v in cpu["node_roles_cpu_s"].items() if v > 0}
    return [
        f"  node CPU per {label}: "
        + ", ".join(f"{k} {v:,.0f} us" for k, v in per_node.items())
        + f"; all nodes {sum(per_node.values()):,.0f} us ("
        + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(roles.items(), key=lambda kv: -kv[1]))
        + ")",
        f"  client CPU {cpu['client_cpu_s'] / messages * 1e6:,.0f} us/msg; other processes on the machine "
        f"used {cpu['others_cores']:.2f} cores on average, interrupts {cpu['irq_cores']:.2f} cores; load "
        f"average then {cpu['loadavg'][0]:.2f}",
    ]


def _log_lines(logs: dict[str, Any]) -> list[str]:
    lines = [
        f"  node logs: {logs['problem_lines']} warning/error lines, {logs['tracebacks']} tracebacks; "
        f"diff sync moved {logs['sync_fetched']:,} fetched / {logs['sync_pushed']:,} pushed in "
        f"{logs['sync_sessions_with_transfer']} sessions; penalties {logs['penalties'] or '-'}"
    ]
    for text, count in logs["problems"].items():
        lines.append(f"    {count:>6} x {text}")
    return lines


def _profile_lines(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    if "error" in profile:
        return [f"  profile {profile['file']}: {profile['error']}"]
    lines = [
        f"  cProfile of the node's trio loop ({profile['file']}): busy {profile['busy_s']:.1f} s, "
        f"in epoll {profile['idle_s']:.1f} s; cumulative share of the busy time (parts overlap):"
    ]
    for label, share in profile["share_of_busy"].items():
        if share >= 0.005:
            lines.append(f"    {share:>6.1%}  {label}")
    lines.append("    counts: " + ", ".join(f"{label} {n:,}" for label, n in profile["counts"].items()))
    return lines


def render(report: dict[str, Any]) -> str:
    """The human-readable report."""
    m = report["machine"]
    s = report["scenarios"]
    base = s.get("baseline")
    base_rate = base["rate"] if base and "rate" in base else None
    lines = [
        f"Network benchmark: {report['nodes']} node processes on loopback ({report['node_mode']})",
        f"date {m['date']}; {m['nproc']} CPUs ({m['cpu']}); Python {m['python']}; load average at start "
        f"{m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f}; total run {report['run_s']:.0f} s",
        f"pool: {report['pool']:,} messages over {report['fids']} fids x {report['units']} storage units, "
        f"timestamps spread over {report['spread_minutes']:g} min",
    ]
    for key in SCENARIOS:
        r = s.get(key)
        if r is not None and "error" in r:
            lines += ["", f"{key}: FAILED: {r['error']}"]
    if base and "rate" in base:
        lines += [
            "",
            f"baseline: one node, SubmitBulkMessages {base['messages']:,} messages in batches of "
            f"{base['batch']}, "
            f"one call in flight: {base['rate']:,.0f} msg/s, {base['server_cpu_us']:,.0f} us server CPU/msg, "
            f"merged {base['merged']:,}, errors {base['errors'] or '-'}",
        ]
    p = s.get("propagation")
    if p and "latency_s" in p:
        lat, loc = p["latency_s"], p["local_latency_s"]
        lines += [
            "",
            f"propagation: {p['messages']:,} SubmitMessage calls at {p['target_rate']:g} msg/s (achieved "
            f"{p['achieved_rate']:.1f}), round-robin over {p['nodes']} nodes; Subscribe stream on every node",
            f"  submit -> visible on all {p['nodes']} nodes: p50 {_ms(lat['p50'])}, p90 {_ms(lat['p90'])}, "
            f"p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}; not everywhere within {report['settle']:g} s: "
            f"{p['never_everywhere']}",
            "  the same by quarter of the run (p50 / p99): "
            + ", ".join(f"{_ms(q['p50'])} / {_ms(q['p99'])}" for q in p["latency_by_quarter_s"]),
            f"  submit -> visible on the node it was sent to (single-node baseline): p50 {_ms(loc['p50'])}, "
            f"p99 {_ms(loc['p99'])}, max {_ms(loc['max'])}; most SubmitMessage calls in flight "
            f"{p['most_in_flight']}",
            f"  errors: submit {p['submit_errors'] or '-'}, streams {p['stream_errors'] or '-'}; "
            f"network start {p['network_start_s']:.1f} s, warm-up rounds "
            + ", ".join(f"{x:.2f}" for x in p["warmup_rounds_s"])
            + " s",
            *_cpu_line(p["cpu"], p["messages"], "message"),
            *_log_lines(p["logs"]),
            *_profile_lines(p.get("profile")),
        ]
    ladder = s.get("ladder", {})
    for lad in ladder.get("ladders", []):
        lines += [
            "",
            f"sustained network-wide rate, pace {lad['pace_s']:g} s: SubmitBulkMessages, one batch to each "
            f"node every {lad['pace_s']:g} s (nodes staggered), {report['duration']:g} s per rate, a fresh "
            f"network per rate; pass = every node holds every message within {report['settle']:g} s after"
            f" the load stops and the achieved rate is >= {ACHIEVED_SHARE:.0%} of the target",
            f"{'rate':>7}{'batch':>7}{'achieved':>10}{'max lag s':>11}{'converged s':>13}{'roots equal':>13}"
            f"{'CPU us/msg':>12}{'CPU bound':>11}  result  errors",
        ]
        cores = m["usable_cpus"]
        for r in lad["rungs"]:
            if "error" in r:
                lines.append(f"{r['rate']:>7,.0f}  FAILED: {r['error']}")
                continue
            total_us = sum(r["cpu"]["node_cpu_s"].values()) / r["messages"] * 1e6
            conv = r["converged_after_s"]
            lines.append(
                f"{r['rate']:>7,.0f}{r['batch']:>7}{r['achieved_rate']:>10,.0f}{r['max_lag_s']:>11.2f}"
                f"{(f'{conv:.1f}' if conv is not None else 'never'):>13}"
                f"{'yes' if r['roots_equal'] else 'no':>13}"
                f"{total_us:>12,.0f}{cores * 1e6 / total_us:>11,.0f}  {'pass' if r['passed'] else 'FAIL':<6}"
                f"  {r['errors'] or '-'}"
            )
            if not r["passed"]:
                lines.append(
                    f"{'':>7}counts {report['settle']:g} s after the load: {r['counts_at_settle']}, at the "
                    f"end of the window: {r['final_counts']} (expected {r['expected_per_node']:,} each)"
                )
        lines.append(
            f"  (CPU us/msg = CPU of all {report['nodes']} nodes from load start to convergence or the end "
            f"of the window, per message submitted; CPU bound = {cores} cores / that)"
        )
        for r in lad["rungs"]:
            if "cpu" in r:
                lines += [
                    f"  at {r['rate']:,.0f} msg/s (warm-up probe rounds "
                    + ", ".join(f"{x:.2f}" for x in r["warmup_rounds_s"]) + " s):",
                    *_cpu_line(r["cpu"], r["messages"], "message"),
                    *_log_lines(r["logs"]),
                    *_profile_lines(r.get("profile")),
                ]  # fmt: skip
        best = lad["best_rate"]
        lines.append(
            f"  highest passing rate at pace {lad['pace_s']:g} s: "
            + (f"{best:,.0f} msg/s" if best else "none")
        )
        if best and base_rate:
            lines[-1] += f" = {best / base_rate:.2f}x the single-node ingest baseline"
    y = s.get("sync")
    if y and "messages" in y:
        lines += [
            "",
            f"fresh-node sync: source loaded with {y['messages']:,} messages at {y['load_rate']:,.0f} msg/s "
            f"({y['load_server_cpu_us']:,.0f} us CPU/msg); a fresh node with --bootstrap to it:",
        ]
        if y["synced"]:
            lines.append(
                f"  held all {y['held_by_source']:,} after {y['from_launch_s']:.1f} s from launch "
                f"({y['rate_from_launch']:,.0f} msg/s), {y['from_ready_s']:.1f} s from its ready line "
                f"({y['rate_from_ready']:,.0f} msg/s); start-up {y['start_to_ready_s']:.1f} s; 50% at "
                f"{y['half_s']:.1f} s, 90% at {y['ninety_s']:.1f} s; roots equal: {y['roots_equal']}"
            )
            if base_rate:
                lines[-1] += f"; {y['rate_from_launch'] / base_rate:.2f}x the single-node ingest baseline"
        else:
            lines.append(f"  NOT synced in time: it holds {y['final_count']:,} of {y['held_by_source']:,}")
        lines += [
            *_cpu_line(y["cpu"], y["messages"], "message synced"),
            *_log_lines(y["logs"]),
            *_profile_lines(y.get("profile")),
        ]
    goals = report["goals"]
    lines += ["", "goals:"]
    for g in goals.values():
        verdict = "not measured" if g["met"] is None else ("met" if g["met"] else "NOT met")
        lines.append(f"  {g['text']}: {g['value']} -> {verdict}")
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal of the issue, its measured value and whether it was met (None: not measured)."""
    s = report["scenarios"]
    out: dict[str, dict[str, Any]] = {}
    ladder = s.get("ladder", {})
    best = ladder.get("best_rate") if "ladders" in ladder else None
    out["rate"] = {
        "text": f">= {GOAL_RATE:,.0f} msg/s network-wide with full convergence (Hubble peaked near "
        f"{HUBBLE_PEAK:.0f}/s)",
        "value": f"{best:,.0f} msg/s" if best else ("none passed" if "ladders" in ladder else "-"),
        "met": None if "ladders" not in ladder else bool(best and best >= GOAL_RATE),
    }
    p = s.get("propagation", {})
    p99 = p.get("latency_s", {}).get("p99")
    measured = p99 is not None and not math.isnan(p99)
    out["p99"] = {
        "text": f"p99 propagation < {GOAL_P99_S:g} s at 100 msg/s",
        "value": f"{_ms(p99)} ({p.get('never_everywhere', 0)} of {p.get('messages', 0)} not everywhere "
        f"within {report['settle']:g} s, counted as infinite)"
        if measured
        else "-",
        "met": None if not measured else bool(p99 < GOAL_P99_S),
    }
    y = s.get("sync", {})
    rate = y.get("rate_from_launch")
    out["sync"] = {
        "text": f"fresh-node sync >= {GOAL_SYNC_RATE:,.0f} msg/s",
        "value": f"{rate:,.0f} msg/s" if rate else ("did not finish" if "synced" in y else "-"),
        "met": None if "synced" not in y else bool(rate and rate >= GOAL_SYNC_RATE),
    }
    return out


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report (text, or JSON with --json)."""
    parser = argparse.ArgumentParser(
        description="Network benchmark, 5 local nodes (see the module docstring)."
    )
    add = parser.add_argument
    add("--json", action="store_true", help="print the report as JSON")
    add("--quick", action="store_true", help="small sizes for a run of about a minute")
    add("--skip", action="append", default=[], choices=SCENARIOS, help="leave a scenario out (repeatable)")
    add("--nodes", type=int, default=5, help="nodes in the network (default 5)")
    add("--baseline-messages", type=int, help="baseline size (default 10000; quick 2000)")
    add("--batch", type=int, default=500, help="bulk batch size for the baseline and loading (default 500)")
    add("--prop-rate", type=float, default=100.0, help="propagation msg/s (default 100)")
    add("--prop-seconds", type=float, help="propagation duration (default 20; quick 5)")
    add(
        "--rates",
        help="ladder rates, comma-separated (default 250,500,750,1000,1500,2000,3000; quick 250,1000)",
    )
    add("--pace", help="ladder: seconds between batches to one node, comma-separated; a ladder for each "
        "(default 1,0.1; quick 1)")  # fmt: skip
    add("--duration", type=float, help="seconds of load per ladder rate (default 10; quick 5)")
    add("--settle", type=float, default=10.0, help="convergence deadline in s (default 10)")
    add("--observe", type=float, default=20.0, help="after a failed rate, watch this many s more")
    add("--sync-messages", type=int, help="fresh-node sync size (default 100000; quick 5000)")
    add("--units", type=int, default=5, help="storage units per fid (default 5)")
    add("--spread-minutes", type=float, default=10.0, help="timestamp spread (default 10)")
    add("--log-level", default="info", choices=("debug", "info", "warning", "error"),
        help="node log level (default info: sync and penalty lines are counted)")  # fmt: skip
    add("--keep-logs", type=Path, metavar="DIR", help="copy every node's log into DIR")
    add("--profile", type=Path, metavar="DIR", help="run node0 of each network and the fresh sync node "
        "under cProfile, write the stats to DIR and summarise them (slows those nodes down)")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    baseline_n = args.baseline_messages or (2000 if quick else 10_000)
    prop_seconds = args.prop_seconds or (5.0 if quick else 20.0)
    default_rates = "250,1000" if quick else "250,500,750,1000,1500,2000,3000"
    rates = sorted(float(r) for r in (args.rates or default_rates).split(","))
    paces = [float(p) for p in (args.pace or ("1" if quick else "1,0.1")).split(",")]
    duration = args.duration or (5.0 if quick else 10.0)
    sync_n = args.sync_messages or (5000 if quick else 100_000)
    if (
        args.nodes < 2
        or not 1 <= args.batch <= 1000
        or min(rates + paces) <= 0
        or min(sync_n, baseline_n) < 1
    ):
        parser.error("need --nodes >= 2, --batch 1..1000, positive rates, paces and sizes")
    for folder in (args.keep_logs, args.profile):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    run_started = time.perf_counter()
    info = machine()
    sizes = [1]
    if "baseline" not in args.skip:
        sizes.append(baseline_n)
    if "propagation" not in args.skip:
        sizes.append(int(args.prop_rate * prop_seconds))
    if "ladder" not in args.skip:
        sizes.append(int(max(rates) * duration))
    if "sync" not in args.skip:
        sizes.append(sync_n)
    pool_n = max(sizes)
    fids = max(20, math.ceil(pool_n / PER_FID))
    log(f"building and signing {pool_n + PROBES:,} messages over {fids} fids ...")
    pool = build_pool(pool_n, fids=fids, units=args.units, spread_s=int(args.spread_minutes * 60))

    report: dict[str, Any] = {
        "machine": info,
        "node_mode": (
            "`stateless node start`"
            if len(node_command()) == 1
            else "`python -c 'from node.cli import main ...' node start`, the console script not installed"
        )
        + "; clients in this process",
        "nodes": args.nodes,
        "pool": pool_n,
        "fids": fids,
        "units": args.units,
        "spread_minutes": args.spread_minutes,
        "settle": args.settle,
        "duration": duration,
        "profiled": args.profile is not None,
        "scenarios": {},
    }
    scenarios: dict[str, Any] = report["scenarios"]

    def profile_path(name: str) -> Path | None:
        return None if args.profile is None else args.profile / f"{name}.prof"

    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
        workdir = Path(tmp)
        genesis = workdir / "genesis.json"
        genesis.write_text(json.dumps(pool.genesis()))
        common: dict[str, Any] = {"log_level": args.log_level, "logs_to": args.keep_logs}

        def attempt(key: str, body: Callable[[], dict[str, Any]]) -> None:
            if key in args.skip:
                return
            try:
                scenarios[key] = body()
            except Exception as e:  # a failed scenario is reported; the others still run
                log(f"  {key}: FAILED: {type(e).__name__}: {e}")
                scenarios[key] = {"error": f"{type(e).__name__}: {e}"}

        def run_propagation() -> dict[str, Any]:
            result = propagation(
                workdir, genesis, pool, size=args.nodes, rate=args.prop_rate, seconds=prop_seconds,
                settle=args.settle, profile_to=profile_path("propagation-node0"), **common,
            )  # fmt: skip
            return with_profile(result, profile_path("propagation-node0"))

        def run_ladder() -> dict[str, Any]:
            ladders: list[dict[str, Any]] = []
            for pace in paces:
                rungs: list[dict[str, Any]] = []
                for rate in rates:
                    where = profile_path(f"ladder-{rate:g}-pace-{pace:g}-node0")
                    try:
                        rung = ladder_rung(
                            workdir, genesis, pool, size=args.nodes, rate=rate, pace=pace, duration=duration,
                            settle=args.settle, observe=args.observe, profile_to=where, **common,
                        )  # fmt: skip
                        rung = with_profile(rung, where)
                    except Exception as e:
                        log(f"  ladder {rate:g} msg/s: FAILED: {type(e).__name__}: {e}")
                        rung = {
                            "rate": rate,
                            "pace_s": pace,
                            "error": f"{type(e).__name__}: {e}",
                            "passed": False,
                        }
                    rungs.append(rung)
                    if not rung["passed"]:
                        break
                passing = [r["rate"] for r in rungs if r["passed"]]
                ladders.append({"pace_s": pace, "rungs": rungs, "best_rate": max(passing, default=None)})
            best = [x["best_rate"] for x in ladders if x["best_rate"]]
            return {"ladders": ladders, "best_rate": max(best, default=None)}

        def run_sync() -> dict[str, Any]:
            where = profile_path("sync-fresh")
            result = sync(workdir, genesis, pool, n=sync_n, batch=args.batch, profile_to=where, **common)
            return with_profile(result, where)

        log("scenarios:")
        attempt("baseline", lambda: baseline(workdir, genesis, pool, baseline_n, args.batch))
        attempt("propagation", run_propagation)
        attempt("ladder", run_ladder)
        attempt("sync", run_sync)
    info["loadavg_end"] = os.getloadavg()
    report["run_s"] = time.perf_counter() - run_started
    report["goals"] = goals(report)
    if args.json:
        print(json.dumps(jsonable(report), indent=2))
    else:
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
