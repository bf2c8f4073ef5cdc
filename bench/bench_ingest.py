"""Ingest benchmark: how fast one node accepts signed messages, next to the per-message crypto floor.

    .venv/bin/python bench/bench_ingest.py [--messages N] [--json]      (`make bench` runs it)

Every message is built and signed before any timing starts: distinct casts, reactions and links spread
round-robin over several fids that a genesis file registers with enough storage units, serialised as our
own builder makes them (`data` and `data_bytes` both set). Each scenario gets a fresh node, started as a
separate process (`stateless node start`) so the client and the server do not share a GIL, and is fed the
same messages; the server's CPU is read from /proc, per thread, before and after:

* one-by-one   SubmitMessage from one client, one call in flight (c=1);
* concurrent   SubmitMessage with `--concurrency` calls in flight (one grpc.aio client);
* bulk         SubmitBulkMessages with `--batch` messages per call, one call in flight;
* bulk x4      the same with four calls in flight.

The baseline is BLAKE3-160 of `data_bytes` plus an Ed25519 verify (key decoding included) of every message,
single-threaded, measured in this same run: the CPU a node cannot avoid per message on this machine. It is
measured before and after the scenarios and the faster run is the floor, so ratios err against the node.
"x floor (rate)" is floor rate / achieved rate; "x floor (CPU)" is server CPU per message / floor CPU per
message, which is less sensitive to other load on the machine.

Finally the in-process merge path runs without gRPC (decode + `HubEngine.submit_many`, LMDB in a temp dir):
unprofiled as a whole and stage by stage (best of three), once as a what-if with validation spread over two
worker threads, and once under cProfile (the trio thread and the writer's worker thread) to show where the
time goes. "gRPC + bridge" is a scenario's server CPU per message minus that of the in-process path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import json
import math
import os
import platform
import pstats
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without `pip install -e .`
    sys.path.insert(0, str(REPO))

import blake3  # noqa: E402
import grpc  # noqa: E402
import trio  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from nacl.bindings import crypto_sign_open  # noqa: E402

from devnet import NodeProcessSync, node_command, node_start_argv, stop_node_processes  # noqa: E402
from node.engine import HubEngine  # noqa: E402
from node.genesis import load_genesis  # noqa: E402
from node.storage import LmdbStore, TxnKV, Writer  # noqa: E402
from protocols import crdt  # noqa: E402
from protocols.messages import (  # noqa: E402
    decode_message,
    farcaster_now,
    public_key_bytes,
    sign_message_data,
    to_farcaster_time,
    validate_message,
)
from protocols.proto import hub_event_pb2 as he  # noqa: E402
from protocols.proto import message_pb2 as pb  # noqa: E402
from protocols.proto import request_response_pb2 as rr  # noqa: E402

DEVNET: Final = pb.FARCASTER_NETWORK_DEVNET
WARMUP: Final = 200  # extra messages sent one by one before timing, so connection set-up is not measured
PER_FID: Final = 4000  # messages per fid: half are casts, far below 5 units x 2000 casts
GOAL_RATE: Final = 5000.0
GOAL_FLOOR_RATIO: Final = 3.0
SUBMIT: Final = "/HubService/SubmitMessage"
SUBMIT_BULK: Final = "/HubService/SubmitBulkMessages"
GET_INFO: Final = "/HubService/GetInfo"
CALL_TIMEOUT: Final = 120.0
START_TIMEOUT: Final = 120.0  # a node's start, to its ready line
STOP_TIMEOUT: Final = 30.0  # a node's shutdown after SIGINT, before SIGKILL


def log(text: str) -> None:
    """Progress goes to stderr so that `--json` output stays clean."""
    print(text, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ workload


@dataclass
class Workload:
    """Pre-signed messages and the genesis accounts that make them mergeable."""

    keys: dict[int, Ed25519PrivateKey]
    units: int
    warmup: list[bytes]
    messages: list[pb.Message]
    raws: list[bytes]

    def genesis(self) -> dict[str, Any]:
        """A genesis document registering every fid with its signer and storage."""
        return {
            "network": "devnet",
            "accounts": [
                {"fid": fid, "signers": ["0x" + public_key_bytes(key).hex()], "storage_units": self.units}
                for fid, key in self.keys.items()
            ],
        }


def _key(fid: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(blake3.blake3(b"bench signer %d" % fid).digest(length=32))


def mixed_message_data(
    i: int, fids: int, timestamp: int, *, text: str, target: bytes, link_base: int
) -> pb.MessageData:
    """Message `i` of a benchmark mix: 1/2 casts, 1/4 reactions, 1/4 links, fids interleaved.

    `text`, `target` (hashed into reaction targets) and `link_base` (first link target fid) keep the
    messages of different benchmarks distinct.
    """
    d = pb.MessageData(fid=1 + i % fids, timestamp=timestamp, network=DEVNET)
    kind = (i // fids) % 4
    if kind < 2:
        d.type = pb.MESSAGE_TYPE_CAST_ADD
        d.cast_add_body.text = f"{text} number {i}"
    elif kind == 2:
        d.type = pb.MESSAGE_TYPE_REACTION_ADD
        d.reaction_body.type = pb.REACTION_TYPE_LIKE
        reacted = d.reaction_body.target_cast_id
        reacted.fid = 1 + (i + 1) % fids
        reacted.hash = blake3.blake3(target + b" %d" % i).digest(length=20)
    else:
        d.type = pb.MESSAGE_TYPE_LINK_ADD
        d.link_body.type = "follow"
        d.link_body.target_fid = link_base + i
    return d


def jsonable(value: Any) -> Any:
    """A report with infinities and NaNs as null (JSON has neither) and tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def build_workload(n: int, *, fids: int, units: int) -> Workload:
    """`n` + WARMUP distinct signed messages: 1/2 casts, 1/4 reactions, 1/4 links, fids interleaved."""
    keys = {fid: _key(fid) for fid in range(1, fids + 1)}
    timestamp = farcaster_now() - 60
    built: list[pb.Message] = []
    for i in range(n + WARMUP):
        fid = 1 + i % fids
        d = mixed_message_data(
            i, fids, timestamp, text="ingest benchmark cast", target=b"target", link_base=1_000_000
        )
        built.append(sign_message_data(d, keys[fid]))
    raws = [m.SerializeToString() for m in built]
    return Workload(keys=keys, units=units, warmup=raws[:WARMUP], messages=built[WARMUP:], raws=raws[WARMUP:])


# ------------------------------------------------------------------------------------------------ baseline


@dataclass
class Floor:
    """One measurement of the per-message crypto floor (single thread)."""

    messages: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.messages * 1e6


def crypto_floor(messages: Sequence[pb.Message]) -> Floor:
    """BLAKE3-160 of data_bytes and Ed25519 verify of the hash, as raw as the libraries allow.

    Ed25519 through libsodium (PyNaCl's binding), the fastest verifier available to Python here and the
    one the node uses; OpenSSL's via pyca/cryptography takes about twice as long on this machine.
    """
    t0, c0 = time.perf_counter(), time.thread_time()
    for m in messages:
        digest = blake3.blake3(m.data_bytes).digest(length=20)
        crypto_sign_open(m.signature + digest, m.signer)
    return Floor(len(messages), time.perf_counter() - t0, time.thread_time() - c0)


# ------------------------------------------------------------------------------------------------ the node


def _stat_cpu(path: str) -> tuple[str, float]:
    """(name, utime + stime in seconds) from a /proc stat file."""
    with open(path) as f:
        text = f.read()
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    # After the name: state is field 3, utime 14 and stime 15 (proc(5)).
    return name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class NodeProcess(NodeProcessSync):
    """`stateless node start` on a fresh `<workdir>/data`, with its CPU (per thread) read from /proc.

    Launched by devnet's blocking launcher (`with` waits for the ready line, then stops it with SIGINT).
    """

    def __init__(
        self,
        workdir: Path,
        genesis: Path,
        *,
        bootstrap: Sequence[str] = (),
        log_level: str = "warning",
        command: Sequence[str] | None = None,
    ) -> None:
        data_dir = workdir / "data"
        argv = node_start_argv(
            data_dir, log_level=log_level, genesis=genesis, bootstrap=bootstrap, command=command
        )
        super().__init__(workdir.name, argv, data_dir, start_timeout=START_TIMEOUT, stop_timeout=STOP_TIMEOUT)

    def cpu_seconds(self) -> float:
        """User + system CPU of the node process, all threads (also those that have exited)."""
        return _stat_cpu(f"/proc/{self.pid}/stat")[1]

    def thread_cpu(self) -> dict[int, tuple[str, float]]:
        """CPU seconds of each live thread of the node, by thread id, with the thread's OS name."""
        out: dict[int, tuple[str, float]] = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with contextlib.suppress(OSError):  # the thread may exit while we look
                out[int(tid)] = _stat_cpu(f"/proc/{self.pid}/task/{tid}/stat")
        return out

    def thread_role(self, tid: int, name: str) -> str:
        """Which part of the node a thread is, from its id and OS name."""
        if tid == self.pid:
            return "trio loop"
        # Idle trio worker threads are named "Trio thread N"; the only steady user is the writer's commit.
        # Every other thread is gRPC's: its asyncio loop thread and the C-core's event engine threads.
        return "writer worker" if name.startswith("Trio thread") else "gRPC threads"

    def __exit__(self, *exc: object) -> None:
        stop_nodes([self])


def stop_nodes(nodes: Sequence[NodeProcess]) -> dict[str, int | None]:
    """SIGINT to every node at once, SIGKILL after STOP_TIMEOUT; the non-zero exit codes, by node."""
    results = stop_node_processes(nodes, stop_timeout=STOP_TIMEOUT)
    for result in results:
        if result.outcome == "killed":
            log(f"  {result.name} did not stop within {STOP_TIMEOUT:.0f} s of SIGINT: killed it")
    return {r.name: r.returncode for r in results if r.returncode not in (0, None)}


# ------------------------------------------------------------------------------------------------ scenarios


@dataclass
class Result:
    """One scenario against one fresh node."""

    name: str
    messages: int
    merged: int
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    errors: dict[str, int] = field(default_factory=dict)
    server_threads_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    @property
    def server_cpu_us(self) -> float:
        return self.server_cpu_s / self.messages * 1e6

    @property
    def client_cpu_us(self) -> float:
        return self.client_cpu_s / self.messages * 1e6


def _errcode(e: grpc.RpcError) -> str:
    details = e.details() if isinstance(e, grpc.Call) else None
    return (details or str(e)).split(":", 1)[0]


@contextlib.contextmanager
def _timed(node: NodeProcess, out: dict[str, float]) -> Iterator[None]:
    threads0 = node.thread_cpu()
    s0, c0, t0 = node.cpu_seconds(), time.process_time(), time.perf_counter()
    yield
    out["wall"] = time.perf_counter() - t0
    out["server"] = node.cpu_seconds() - s0
    out["client"] = time.process_time() - c0
    by_role: dict[str, float] = {}
    for tid, (name, cpu) in node.thread_cpu().items():
        role = "thread:" + node.thread_role(tid, name)
        by_role[role] = by_role.get(role, 0.0) + cpu - threads0.get(tid, (name, 0.0))[1]
    by_role["thread:exited threads"] = max(0.0, out["server"] - sum(by_role.values()))
    out.update(by_role)


def _warm_up(target: str, warmup: Sequence[bytes]) -> None:
    with grpc.insecure_channel(target) as channel:
        submit = channel.unary_unary(SUBMIT, None, None)
        for raw in warmup:
            submit(raw, timeout=CALL_TIMEOUT)


def _stored_messages(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        raw = channel.unary_unary(GET_INFO, None, None)(
            rr.HubInfoRequest().SerializeToString(), timeout=CALL_TIMEOUT
        )
    return int(rr.HubInfoResponse.FromString(raw).db_stats.num_messages)


def one_by_one(node: NodeProcess, raws: Sequence[bytes], errors: Counter[str], out: dict[str, float]) -> None:
    """SubmitMessage, one call at a time, from a blocking stub (request bytes pre-serialised)."""
    with grpc.insecure_channel(node.rpc_target) as channel:
        submit = channel.unary_unary(SUBMIT, None, None)
        with _timed(node, out):
            for raw in raws:
                try:
                    submit(raw, timeout=CALL_TIMEOUT)
                except grpc.RpcError as e:
                    errors[_errcode(e)] += 1


async def _aio_submit(
    node: NodeProcess, requests: Sequence[bytes], method: str, in_flight: int, out: dict[str, float]
) -> tuple[list[bytes], Counter[str]]:
    errors: Counter[str] = Counter()
    responses: list[bytes] = []
    async with grpc.aio.insecure_channel(node.rpc_target) as channel:
        call = channel.unary_unary(method, None, None)
        await channel.channel_ready()
        pending = iter(requests)

        async def worker() -> None:
            for request in pending:  # one shared iterator: each request is sent exactly once
                try:
                    responses.append(await call(request, timeout=CALL_TIMEOUT))
                except grpc.aio.AioRpcError as e:
                    errors[_errcode(e)] += 1

        with _timed(node, out):
            await asyncio.gather(*(worker() for _ in range(in_flight)))
    return responses, errors


def concurrent(
    node: NodeProcess, raws: Sequence[bytes], in_flight: int, errors: Counter[str], out: dict[str, float]
) -> None:
    """SubmitMessage with `in_flight` calls outstanding."""
    _, errs = asyncio.run(_aio_submit(node, raws, SUBMIT, in_flight, out))
    errors.update(errs)


def bulk_requests(messages: Sequence[pb.Message], batch: int) -> list[bytes]:
    """Pre-serialised SubmitBulkMessagesRequests of `batch` messages each."""
    return [
        rr.SubmitBulkMessagesRequest(messages=messages[i : i + batch]).SerializeToString()
        for i in range(0, len(messages), batch)
    ]


def bulk(
    node: NodeProcess, requests: Sequence[bytes], in_flight: int, errors: Counter[str], out: dict[str, float]
) -> None:
    """SubmitBulkMessages with `in_flight` calls outstanding; per-message errors read from the responses."""
    responses, errs = asyncio.run(_aio_submit(node, requests, SUBMIT_BULK, in_flight, out))
    errors.update(errs)
    for raw in responses:
        for entry in rr.SubmitBulkMessagesResponse.FromString(raw).messages:
            if entry.WhichOneof("response") == "message_error":
                errors[entry.message_error.errCode] += 1


def run_scenario(
    name: str,
    workdir: Path,
    genesis: Path,
    workload: Workload,
    body: Callable[[NodeProcess, Counter[str], dict[str, float]], None],
) -> Result:
    """Start a fresh node, warm it up, run `body` (which times itself), check the store, stop the node."""
    scenario_dir = workdir / re.sub(r"\W+", "_", name)
    scenario_dir.mkdir()
    log(f"  {name}: starting node ...")
    with NodeProcess(scenario_dir, genesis) as node:
        _warm_up(node.rpc_target, workload.warmup)
        errors: Counter[str] = Counter()
        out: dict[str, float] = {}
        body(node, errors, out)
        merged = _stored_messages(node.rpc_target) - len(workload.warmup)
    shutil.rmtree(scenario_dir / "data", ignore_errors=True)
    threads = {k.removeprefix("thread:"): v for k, v in out.items() if k.startswith("thread:")}
    result = Result(
        name, len(workload.raws), merged, out["wall"], out["server"], out["client"], dict(errors), threads
    )
    log(f"  {name}: {result.rate:,.0f} msg/s, server {result.server_cpu_us:,.0f} us CPU/msg, merged {merged}")
    return result


# ------------------------------------------------------------------------------------------------ in process


@dataclass
class Stages:
    """CPU microseconds per message of each stage of the merge path, measured without a profiler."""

    messages: int
    decode: float
    hash_signature: float
    other_rules: float
    merge_crdt: float
    lmdb: float
    engine_overhead: float
    submit_path_cpu: float
    submit_path_rate: float
    parallel_validation_cpu: float
    parallel_validation_rate: float


def _merge_op(message: pb.Message, now_ms: int, kv: TxnKV) -> list[he.HubEvent]:
    return crdt.merge_message(kv, message, now_ms=now_ms)


async def _engine(store: LmdbStore, nursery: trio.Nursery, genesis: Path) -> HubEngine:
    writer = Writer(store)
    await nursery.start(writer.run)
    engine = HubEngine(store, writer, network=DEVNET)
    await nursery.start(engine.run)
    for event in load_genesis(genesis, network_name="devnet"):
        await engine.submit_onchain_event(event)
    return engine


async def _submit_path(engine: HubEngine, raws: Sequence[bytes], batch: int) -> None:
    for i in range(0, len(raws), batch):
        results = await engine.submit_many([decode_message(r) for r in raws[i : i + batch]])
        bad = [r for r in results if not isinstance(r, pb.Message)]
        if bad:
            raise RuntimeError(f"in-process merge rejected {len(bad)} messages, first: {bad[0]}")


async def _parallel_validation_path(
    engine: HubEngine, raws: Sequence[bytes], batch: int, threads: int
) -> None:
    """What-if: the submit path with each batch validated on `threads` worker threads.

    pyca/cryptography releases the GIL inside Ed25519 verify, so this is how much a second core could take
    over. Merges go straight to the writer, as HubEngine.submit_many would after its own check.
    """

    def validate_all(chunk: list[pb.Message], now: int) -> list[pb.Message]:
        return [validate_message(m, network=DEVNET, now=now) for m in chunk]

    async def validate(parts: list[list[pb.Message]], k: int, chunk: list[pb.Message], now: int) -> None:
        parts[k] = await trio.to_thread.run_sync(validate_all, chunk, now)

    for i in range(0, len(raws), batch):
        decoded = [decode_message(r) for r in raws[i : i + batch]]
        now = to_farcaster_time(time.time())
        parts: list[list[pb.Message]] = [[] for _ in range(threads)]
        async with trio.open_nursery() as nursery:
            for k in range(threads):
                nursery.start_soon(validate, parts, k, decoded[k::threads], now)
        now_ms = int(time.time() * 1000)
        results = await engine.writer.submit_many(
            [partial(_merge_op, m, now_ms) for part in parts for m in part]
        )
        if any(isinstance(r, BaseException) for r in results):
            raise RuntimeError(f"what-if path: merge rejected a message: {results}")


def _onchain_op(event: Any, now_ms: int, kv: TxnKV) -> list[he.HubEvent]:
    return crdt.merge_onchain_event(kv, event, now_ms=now_ms)


def _time_stages(raws: Sequence[bytes], genesis: Path, store: LmdbStore, batch: int) -> dict[str, float]:
    """CPU seconds (this thread) of each stage of the merge path, run one after the other."""
    clock = time.thread_time
    now_ms = int(time.time() * 1000)
    events = load_genesis(genesis, network_name="devnet")
    store.write_batch([partial(_onchain_op, e, now_ms) for e in events])
    c0 = clock()
    decoded = [decode_message(r) for r in raws]
    c1 = clock()
    now = to_farcaster_time(time.time())
    checked = [validate_message(m, network=DEVNET, now=now) for m in decoded]
    c2 = clock()
    crypto = crypto_floor(checked).cpu_s
    c3 = clock()
    for i in range(0, len(checked), batch):
        results = store.write_batch([partial(_merge_op, m, now_ms) for m in checked[i : i + batch]])
        assert not any(isinstance(r, BaseException) for r in results), results
    c4 = clock()
    # The same merges over the in-memory KV: the CRDT logic without LMDB.
    mem = crdt.MemoryKV()
    for event in events:
        crdt.merge_onchain_event(mem, event, now_ms=now_ms)
    c5 = clock()
    for m in checked:
        crdt.merge_message(mem, m, now_ms=now_ms)
    c6 = clock()
    return {
        "decode": c1 - c0,
        "validate": c2 - c1,
        "crypto": crypto,
        "lmdb_merge": c4 - c3,
        "memory_merge": c6 - c5,
    }


REPEATS: Final = 3  # each measurement is repeated (fresh state each time) and the fastest kept


async def measure_in_process(
    raws: Sequence[bytes], genesis: Path, workdir: Path, batch: int
) -> tuple[Stages, pstats.Stats, float]:
    """Stage split (unprofiled) and a CPU-time cProfile of decode + HubEngine.submit_many over `raws`."""
    n = len(raws)
    stores: list[LmdbStore] = []

    def fresh_store(tag: str) -> LmdbStore:
        stores.append(LmdbStore(workdir / f"inproc-{tag}-{len(stores)}"))
        return stores[-1]

    path_cpu, path_wall = math.inf, math.inf
    par_cpu, par_wall = math.inf, math.inf
    best: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        for _ in range(REPEATS):
            # The whole in-process path, unprofiled: what the node does per message minus gRPC. Process
            # time, because the writer commits on a worker thread.
            engine = await _engine(fresh_store("path"), nursery, genesis)
            c0, t0 = time.process_time(), time.perf_counter()
            await _submit_path(engine, raws, batch)
            path_cpu = min(path_cpu, time.process_time() - c0)
            path_wall = min(path_wall, time.perf_counter() - t0)
            engine = await _engine(fresh_store("parallel"), nursery, genesis)
            c0, t0 = time.process_time(), time.perf_counter()
            await _parallel_validation_path(engine, raws, batch, 2)
            par_cpu = min(par_cpu, time.process_time() - c0)
            par_wall = min(par_wall, time.perf_counter() - t0)
            # The same work stage by stage, synchronously on this thread.
            for key, value in _time_stages(raws, genesis, fresh_store("stages"), batch).items():
                best[key] = min(best.get(key, math.inf), value)

        # Profiled: the trio thread, and through a wrapped write_batch the writer's worker thread. The
        # default (wall) clock: a CPU-time clock is a system call per event here and distorts far more;
        # the trio loop's waits show up as epoll time and are reported apart.
        store = fresh_store("profile")
        engine = await _engine(store, nursery, genesis)
        worker_profile = cProfile.Profile()
        write_batch = store.write_batch

        def profiled_write_batch(
            jobs: list[Callable[[TxnKV], Any]], finalize: Callable[[TxnKV], object] | None = None
        ) -> list[Any]:
            worker_profile.enable()
            try:
                return write_batch(jobs, finalize)
            finally:
                worker_profile.disable()

        store.write_batch = profiled_write_batch  # type: ignore[method-assign]
        main_profile = cProfile.Profile()
        t0 = time.perf_counter()
        main_profile.enable()
        await _submit_path(engine, raws, batch)
        main_profile.disable()
        profiled_wall = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    for s in stores:
        s.close()

    per = 1e6 / n
    stages = Stages(
        messages=n,
        decode=best["decode"] * per,
        hash_signature=best["crypto"] * per,
        # Differences of separately measured minima: near zero they are noise and may come out negative.
        other_rules=(best["validate"] - best["crypto"]) * per,
        merge_crdt=best["memory_merge"] * per,
        lmdb=(best["lmdb_merge"] - best["memory_merge"]) * per,
        engine_overhead=(path_cpu - best["decode"] - best["validate"] - best["lmdb_merge"]) * per,
        submit_path_cpu=path_cpu * per,
        submit_path_rate=n / path_wall,
        parallel_validation_cpu=par_cpu * per,
        parallel_validation_rate=n / par_wall,
    )
    stats = pstats.Stats(main_profile)
    stats.add(worker_profile)
    return stages, stats, profiled_wall


# ------------------------------------------------------------------------------------------------ profile


CATEGORIES: Final = (
    "decode",
    "validate: hash+signature",
    "validate: other rules",
    "merge (crdt)",
    "LMDB",
    "engine/writer/trio",
    "other",
    "waiting (epoll)",
)
Func = tuple[str, int, str]


def _own_category(func: Func) -> str | None:
    """The category a function belongs to by itself; None means "whoever calls it"."""
    filename, _, name = func
    path = filename.replace(os.sep, "/")
    if "'poll' of 'select.epoll'" in name:
        return "waiting (epoll)"
    if name in ("decode_message",):
        return "decode"
    if path.endswith("protocols/messages/_signing.py") and name in ("blake3_160", "ed25519_verify"):
        return "validate: hash+signature"
    if path.endswith("protocols/messages/_validation.py"):
        return None if name == "_parse_message_data" else "validate: other rules"
    if path.endswith("node/engine.py"):
        return {"check": "validate: other rules", "_merge": "merge (crdt)"}.get(name, "engine/writer/trio")
    if "/protocols/crdt/" in path:
        return "merge (crdt)"
    if path.endswith("node/storage/_lmdb.py"):
        return "LMDB"
    if path.endswith("node/storage/_writer.py") or "/trio/" in path or "/outcome/" in path:
        return "engine/writer/trio"
    if path.endswith("bench/bench_ingest.py"):
        return "other"
    return None


def profile_by_category(stats: pstats.Stats) -> dict[str, float]:
    """Self time per category; a function without its own category is split among its callers."""
    table: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Func, dict[str, float]] = {}

    def shares(func: Func, depth: int, seen: frozenset[Func]) -> dict[str, float]:
        own = _own_category(func)
        if own is not None:
            return {own: 1.0}
        if func in memo:
            return memo[func]
        callers: dict[Func, tuple[int, int, float, float]] = table[func][4] if func in table else {}
        total = sum(c[3] for c in callers.values())
        if depth > 12 or not callers or total <= 0:
            return {"other": 1.0}
        out: dict[str, float] = {}
        for caller, c in callers.items():
            if caller in seen:
                continue
            for cat, share in shares(caller, depth + 1, seen | {func}).items():
                out[cat] = out.get(cat, 0.0) + share * c[3] / total
        result = out or {"other": 1.0}
        if depth == 0:
            memo[func] = result
        return result

    totals = dict.fromkeys(CATEGORIES, 0.0)
    for func, (_, _, tottime, _, _) in table.items():
        for cat, share in shares(func, 0, frozenset()).items():
            totals[cat] += tottime * share
    return totals


def _func_label(func: Func) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    path = Path(filename)
    try:
        shown = str(path.relative_to(REPO))
    except ValueError:
        parts = path.parts
        shown = "/".join(parts[parts.index("site-packages") + 1 :]) if "site-packages" in parts else path.name
    return f"{shown}:{line}({name})"


def top_cumulative(stats: pstats.Stats, n_messages: int, limit: int) -> list[dict[str, Any]]:
    """The `limit` entries with the most cumulative time, skipping the benchmark's own frames."""
    table: dict[Func, Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda item: item[1][3], reverse=True)
    out = []
    for func, (_, ncalls, tottime, cumtime, _) in rows:
        if func[0].endswith("bench_ingest.py") or func[2] in ("<built-in method builtins.exec>",):
            continue
        out.append(
            {
                "function": _func_label(func),
                "category": _own_category(func) or "-",
                "ncalls": ncalls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "cum_us_per_msg": cumtime / n_messages * 1e6,
            }
        )
        if len(out) == limit:
            break
    return out


# ------------------------------------------------------------------------------------------------ report


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
    }


def render(report: dict[str, Any]) -> str:
    """The human-readable report."""
    m = report["machine"]
    floor = report["floor"]
    lines = [
        f"Ingest benchmark, {report['messages']:,} messages per scenario, {report['fids']} fids "
        f"x {report['units']} storage units",
        f"date {m['date']}; {m['nproc']} CPUs ({m['cpu']}); Python {m['python']}; "
        f"load average at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f}",
        f"node: {report['node_mode']}",
        "",
        f"crypto floor (BLAKE3-160 + Ed25519 verify, 1 core): {floor['rate']:,.0f} msg/s, "
        f"{floor['cpu_us']:.1f} us CPU/msg  (runs: "
        + ", ".join(f"{r['messages'] / r['wall_s']:,.0f} msg/s" for r in floor["runs"])
        + ")",
        "",
        f"{'scenario':<22}{'msg/s':>9}{'wall s':>9}{'server us/msg':>15}{'1-core msg/s':>14}"
        f"{'client us/msg':>15}{'x floor rate':>14}{'x floor CPU':>13}{'merged':>9}  errors",
    ]
    for r in report["scenarios"]:
        lines.append(
            f"{r['name']:<22}{r['rate']:>9,.0f}{r['wall_s']:>9.1f}{r['server_cpu_us']:>15,.0f}"
            f"{1e6 / r['server_cpu_us']:>14,.0f}{r['client_cpu_us']:>15,.0f}{r['x_floor_rate']:>14.2f}"
            f"{r['x_floor_cpu']:>13.2f}{r['merged']:>9}  {r['errors'] or '-'}"
        )
    lines.append(
        "(1-core msg/s = 1e6 / server us/msg: what the node's CPU cost allows on one dedicated core; "
        "x floor CPU = server us/msg / floor us/msg)"
    )
    roles = ("trio loop", "writer worker", "gRPC threads", "exited threads")
    lines += [
        "",
        "server CPU by thread, us per message:",
        f"{'':<22}" + "".join(f"{role:>16}" for role in roles),
    ]
    for r in report["scenarios"]:
        per = 1e6 / r["messages"]
        cells = "".join(f"{r['server_threads_s'].get(role, 0.0) * per:>16,.0f}" for role in roles)
        lines.append(f"{r['name']:<22}{cells}")
    best = max(report["scenarios"], key=lambda r: r["rate"])
    goal = report["goal"]
    lines += [
        "",
        f"goal: >= {GOAL_RATE:,.0f} msg/s and <= {GOAL_FLOOR_RATIO:.0f}x the floor. Best: {best['name']} "
        f"{best['rate']:,.0f} msg/s, {best['x_floor_rate']:.2f}x floor -> rate goal "
        f"{'met' if goal['rate_met'] else 'NOT met'}, "
        f"floor-ratio goal {'met' if goal['ratio_met'] else 'NOT met'}",
    ]
    st = report["in_process"]["stages"]
    total = sum(
        st[k] for k in ("decode", "hash_signature", "other_rules", "merge_crdt", "lmdb", "engine_overhead")
    )
    lines += [
        "",
        f"where the CPU goes, in process (no gRPC), {st['messages']:,} messages, "
        f"batches of {report['batch']}, unprofiled, us CPU per message:",
    ]
    for label, key in (
        ("decode (protobuf parse)", "decode"),
        ("validate: hash+signature", "hash_signature"),
        ("validate: other rules", "other_rules"),
        ("merge (crdt logic)", "merge_crdt"),
        ("LMDB (txns, get/put, commit)", "lmdb"),
        ("engine/writer/trio", "engine_overhead"),
    ):
        lines.append(f"  {label:<32}{st[key]:>8.1f}  {st[key] / total:>6.1%}")
    lines.append(
        f"  {'in-process submit path':<32}{st['submit_path_cpu']:>8.1f}  "
        f"({st['submit_path_rate']:,.0f} msg/s wall, "
        f"{st['submit_path_cpu'] / floor['cpu_us']:.2f}x floor CPU)"
    )
    lines.append(
        f"  {'what-if: validate on 2 threads':<32}{st['parallel_validation_cpu']:>8.1f}  "
        f"({st['parallel_validation_rate']:,.0f} msg/s wall)"
    )
    for r in report["scenarios"]:
        lines.append(
            f"  gRPC + bridge, {r['name']:<17}{r['server_cpu_us'] - st['submit_path_cpu']:>8.1f}"
            "  (server CPU/msg minus in-process path)"
        )
    prof = report["in_process"]["profile"]
    lines += [
        "",
        f"cProfile of decode + HubEngine.submit_many, {st['messages']:,} messages, "
        f"trio thread + writer thread (profiled run {prof['wall_s']:.1f} s; "
        "the profiler inflates Python-heavy parts):",
        "  self time by category: "
        + ", ".join(f"{k} {v:.0%}" for k, v in prof["category_share"].items() if v >= 0.005)
        + f" (plus {prof['waiting_s']:.2f} s the trio loop waited in epoll)",
        f"  {'cum s':>7} {'us/msg':>8} {'self s':>7} {'calls':>8}  {'category':<25} function",
    ]
    for row in prof["top"]:
        lines.append(
            f"  {row['cumtime_s']:>7.2f} {row['cum_us_per_msg']:>8.1f} {row['tottime_s']:>7.2f} "
            f"{row['ncalls']:>8}  {row['category']:<25} {row['function']}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report (text, or JSON with --json)."""
    parser = argparse.ArgumentParser(description="Ingest benchmark for one node (see the module docstring).")
    parser.add_argument("--messages", type=int, default=20_000, help="messages per scenario (default 20000)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--batch", type=int, default=500, help="SubmitBulkMessages batch size (default 500)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="calls in flight, concurrent (default 32)"
    )
    parser.add_argument("--units", type=int, default=5, help="storage units per fid (default 5)")
    parser.add_argument("--profile-messages", type=int, default=5000, help="in-process part (default 5000)")
    parser.add_argument(
        "--skip", action="append", default=[], choices=["one-by-one", "concurrent", "bulk", "bulk-x4"],
        help="leave a scenario out (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 1000:
        parser.error("--batch must be 1..1000 (the node's SubmitBulkMessages limit)")
    if args.messages < 1 or args.profile_messages < 1:
        parser.error("--messages and --profile-messages must be positive")

    info = machine()
    fids = max(20, math.ceil((args.messages + WARMUP) / PER_FID))
    log(f"building and signing {args.messages + WARMUP:,} messages over {fids} fids ...")
    workload = build_workload(args.messages, fids=fids, units=args.units)
    requests = bulk_requests(workload.messages, args.batch)

    floors = [crypto_floor(workload.messages)]
    log(f"crypto floor: {floors[0].rate:,.0f} msg/s")

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        genesis = workdir / "genesis.json"
        genesis.write_text(json.dumps(workload.genesis()))
        Body = Callable[[NodeProcess, Counter[str], dict[str, float]], None]
        scenarios: list[tuple[str, str, Body]] = [
            ("one-by-one", "one-by-one c=1", lambda node, e, o: one_by_one(node, workload.raws, e, o)),
            ("concurrent", f"concurrent c={args.concurrency}",
             lambda node, e, o: concurrent(node, workload.raws, args.concurrency, e, o)),
            ("bulk", f"bulk {args.batch}", lambda node, e, o: bulk(node, requests, 1, e, o)),
            ("bulk-x4", f"bulk {args.batch} x4", lambda node, e, o: bulk(node, requests, 4, e, o)),
        ]  # fmt: skip
        results: list[Result] = []
        log("scenarios (a fresh node process each):")
        for key, name, body in scenarios:
            if key not in args.skip:
                results.append(run_scenario(name, workdir, genesis, workload, body))

        log(f"in-process merge path over {min(args.profile_messages, args.messages):,} messages ...")
        profile_raws = workload.raws[: args.profile_messages]
        stages, stats, profiled_wall = trio.run(
            measure_in_process, profile_raws, genesis, workdir, args.batch
        )

    floors.append(crypto_floor(workload.messages))
    log(f"crypto floor again: {floors[1].rate:,.0f} msg/s")
    floor = max(floors, key=lambda f: f.rate)
    floor_cpu = min(f.cpu_us for f in floors)
    info["loadavg_end"] = os.getloadavg()

    categories = profile_by_category(stats)
    waiting = categories.pop("waiting (epoll)")
    cat_total = sum(categories.values()) or 1.0
    report: dict[str, Any] = {
        "machine": info,
        "node_mode": (
            "separate process, `stateless node start`"
            if len(node_command()) == 1
            else "separate process, `python -c 'from node.cli import main ...' node start` (the `stateless` "
            "console script is not installed; same entry point)"
        )
        + "; client in this process",
        "messages": args.messages,
        "fids": fids,
        "units": args.units,
        "batch": args.batch,
        "floor": {
            "rate": floor.rate,
            "cpu_us": floor_cpu,
            "runs": [asdict(f) for f in floors],
        },
        "scenarios": [
            {
                **asdict(r),
                "rate": r.rate,
                "server_cpu_us": r.server_cpu_us,
                "client_cpu_us": r.client_cpu_us,
                "x_floor_rate": floor.rate / r.rate,
                "x_floor_cpu": r.server_cpu_us / floor_cpu,
            }
            for r in results
        ],
        "in_process": {
            "stages": asdict(stages),
            "profile": {
                "wall_s": profiled_wall,
                "category_share": {k: v / cat_total for k, v in categories.items()},
                "waiting_s": waiting,
                "top": top_cumulative(stats, stages.messages, 25),
            },
        },
    }
    if results:
        best = max(results, key=lambda r: r.rate)
        report["goal"] = {
            "rate_met": best.rate >= GOAL_RATE,
            "ratio_met": floor.rate / best.rate <= GOAL_FLOOR_RATIO,
        }
    if args.json:
        print(json.dumps(report, indent=2))
    elif results:
        print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
