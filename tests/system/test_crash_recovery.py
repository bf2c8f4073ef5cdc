"""Crash safety: kill -9 a real node under load, restart it, and check that nothing acknowledged was lost.

Also the offline consistency checker itself (`node.storage.check_consistency`), which the crash test
relies on: a consistent store passes, and each kind of corruption is reported.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.storage import LmdbStore, check_consistency
from protocols import crdt
from protocols.crdt._keys import (
    META_MESSAGE_COUNT,
    T_BY_MENTION,
    T_BY_PARENT,
    T_BY_SIGNER,
    T_COUNT,
    T_CRDT,
    T_HASH,
    T_LINK_BY_TARGET,
    T_MSG,
    T_REACTION_BY_TARGET,
    u64,
)
from protocols.messages import FARCASTER_EPOCH
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr
from protocols.proto import rpc_pb2_grpc
from tests import factories as f
from tests.system.conftest import (
    REPO,
    STOP_TIMEOUT,
    NodeProcess,
    NodeProcesses,
    node_env,
    start_args,
    stateless_command,
    write_genesis,
)

FID = 1
T0 = 120_000_000  # a fixed Farcaster time, so the unit-test store is the same on every run

# ------------------------------------------------------------------------------------------------
# check_consistency on an in-memory store


def _populated() -> crdt.MemoryKV:
    """A store using every table: casts with parents and mentions, removes, reactions, links, user data."""
    kv = crdt.MemoryKV()
    key, other = f.new_key(1), f.new_key(2)
    now_ms = (FARCASTER_EPOCH + T0 + 100) * 1000
    for event in [*f.account(FID, key, block_timestamp=FARCASTER_EPOCH + T0), *f.account(2, other)]:
        crdt.merge_onchain_event(kv, event, now_ms=now_ms)
    root = f.cast_add(key, FID, "root", timestamp=T0)
    parent_id = pb.CastId(fid=FID, hash=root.hash)
    messages = [
        root,
        f.cast_add(
            key,
            FID,
            "reply @x @y",
            timestamp=T0 + 1,
            parent=parent_id,
            mentions=[2, 3],
            mentions_positions=[6, 9],
        ),
        f.cast_add(key, FID, "by url", timestamp=T0 + 2, parent="https://example.com/a"),
        f.cast_add(key, FID, "doomed", timestamp=T0 + 3),
        f.reaction(key, FID, parent_id, timestamp=T0 + 4),
        f.reaction(
            key, FID, "https://example.com/b", reaction_type=pb.REACTION_TYPE_RECAST, timestamp=T0 + 5
        ),
        f.link(key, FID, 2, timestamp=T0 + 6),
        f.link(key, FID, 3, timestamp=T0 + 7),
        f.link(key, FID, 3, remove=True, timestamp=T0 + 8),  # displaces the add above
        f.user_data(key, FID, pb.USER_DATA_TYPE_DISPLAY, "Alice", timestamp=T0 + 9),
        f.cast_add(other, 2, "second fid", timestamp=T0 + 10),
    ]
    for m in messages:
        crdt.merge_message(kv, m, now_ms=now_ms)
    doomed = messages[3]
    crdt.merge_message(kv, f.cast_remove(key, FID, doomed.hash, timestamp=T0 + 11), now_ms=now_ms)
    return kv


def _first_key(kv: crdt.MemoryKV, prefix: bytes) -> bytes:
    return next(k for k, _ in kv.items() if k.startswith(prefix))


def _cast_key(kv: crdt.MemoryKV, text: str) -> bytes:
    for k, v in kv.items():
        if k.startswith(T_MSG) and pb.Message.FromString(v).data.cast_add_body.text == text:
            return k
    raise AssertionError(text)


def test_consistent_store_has_no_problems() -> None:
    kv = _populated()
    # Every index table is populated, so the reverse passes really run.
    for table in (T_MSG, T_CRDT, T_HASH, T_BY_SIGNER, T_BY_PARENT, T_BY_MENTION, T_REACTION_BY_TARGET):
        assert any(k.startswith(table) for k, _ in kv.items()), table
    assert any(k.startswith(T_LINK_BY_TARGET) for k, _ in kv.items())
    assert check_consistency(kv) == []
    assert check_consistency(crdt.MemoryKV()) == []


def _delete_first(table: bytes) -> Callable[[crdt.MemoryKV], None]:
    return lambda kv: kv.delete(_first_key(kv, table))


def _corrupt_message(kv: crdt.MemoryKV) -> None:
    k = _cast_key(kv, "root")
    m = pb.Message.FromString(kv.get(k) or b"")
    m.data_bytes = m.data_bytes[:-1] + bytes([m.data_bytes[-1] ^ 1])
    m.ClearField("data")
    kv.put(k, m.SerializeToString())


def _garbage_message(kv: crdt.MemoryKV) -> None:
    kv.put(_cast_key(kv, "root"), b"\xff\xff\xff")


def _move_message(kv: crdt.MemoryKV) -> None:
    k = _cast_key(kv, "by url")
    raw = kv.get(k) or b""
    kv.delete(k)
    kv.put(k[:-1] + bytes([k[-1] ^ 1]), raw)


def _drop_primary(kv: crdt.MemoryKV) -> None:
    kv.delete(_cast_key(kv, "reply @x @y"))


def _bump_count(kv: crdt.MemoryKV) -> None:
    k = _first_key(kv, T_COUNT)
    kv.put(k, (int.from_bytes(kv.get(k) or b"\0\0\0\0", "big") + 1).to_bytes(4, "big"))


def _phantom_counter(kv: crdt.MemoryKV) -> None:
    kv.put(T_COUNT + u64(99) + bytes([rr.STORE_TYPE_CASTS]), (3).to_bytes(4, "big"))


def _bump_total(kv: crdt.MemoryKV) -> None:
    kv.put(META_MESSAGE_COUNT, u64(1234))


def _dangling_parent(kv: crdt.MemoryKV) -> None:
    kv.put(T_BY_PARENT + b"u" + b"https://nowhere" + (7).to_bytes(4, "big") + b"\x01" * 20 + u64(FID), b"")


def _foreign_index(kv: crdt.MemoryKV) -> None:
    # Points at a real message that has no such entry (a mention it never made).
    k = _cast_key(kv, "root")
    kv.put(T_BY_MENTION + u64(42) + k[10:] + u64(FID), b"")


def _wrong_reaction_value(kv: crdt.MemoryKV) -> None:
    k = _first_key(kv, T_REACTION_BY_TARGET)
    kv.put(k, b"\x09")


def _two_in_one_slot(kv: crdt.MemoryKV) -> None:
    # The link remove displaced the link add; put the loser back as if the displacement half-happened.
    key = f.new_key(1)
    loser = f.link(key, FID, 3, timestamp=T0 + 7)
    other = crdt.MemoryKV()
    now_ms = (FARCASTER_EPOCH + T0 + 100) * 1000
    for event in f.account(FID, key, block_timestamp=FARCASTER_EPOCH + T0):
        crdt.merge_onchain_event(other, event, now_ms=now_ms)
    crdt.merge_message(other, loser, now_ms=now_ms)
    for k, v in other.items():
        if k.startswith((T_MSG, T_HASH, T_BY_SIGNER, T_LINK_BY_TARGET)):
            kv.put(k, v)


CORRUPTIONS: dict[str, tuple[Callable[[crdt.MemoryKV], None], str]] = {
    "hash index missing": (_delete_first(T_HASH), "hash index entry is missing"),
    "crdt slot missing": (_delete_first(T_CRDT), "CRDT slot is missing"),
    "signer index missing": (_delete_first(T_BY_SIGNER), "signer index entry is missing"),
    "parent index missing": (_delete_first(T_BY_PARENT), "parent index entry is missing"),
    "mention index missing": (_delete_first(T_BY_MENTION), "mention index entry"),
    "reaction index missing": (_delete_first(T_REACTION_BY_TARGET), "reaction index entry is missing"),
    "link index missing": (_delete_first(T_LINK_BY_TARGET), "link-target index entry is missing"),
    "data_bytes flipped": (_corrupt_message, "hash is not the BLAKE3-160 digest"),
    "garbage message": (_garbage_message, "is not a valid Message"),
    "message under wrong key": (_move_message, "stored under the wrong key"),
    "primary deleted": (_drop_primary, "points at a missing message"),
    "store counter off": (_bump_count, "message counter says"),
    "counter without messages": (
        _phantom_counter,
        "fid 99 STORE_TYPE_CASTS: message counter says 3, 0 stored",
    ),
    "total off": (_bump_total, "total message count says 1234"),
    "dangling parent entry": (_dangling_parent, "parent index entry"),
    "foreign index entry": (_foreign_index, "does not belong to the message"),
    "wrong index value": (_wrong_reaction_value, "does not belong"),
    "two messages in one slot": (_two_in_one_slot, "two messages in one slot"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_reported(name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    kv = _populated()
    corrupt(kv)
    problems = check_consistency(kv)
    assert any(expected in p for p in problems), problems


def test_problem_list_is_capped() -> None:
    kv = _populated()
    for k in [k for k, _ in kv.items() if k.startswith((T_HASH, T_BY_SIGNER))]:
        kv.delete(k)
    problems = check_consistency(kv, max_problems=3)
    assert len(problems) == 4
    assert problems[-1].startswith("... and ") and problems[-1].endswith("more problems not shown")


# ------------------------------------------------------------------------------------------------
# real node processes


@dataclass
class _Load:
    """Several threads submitting distinct casts, reactions and links; records what was acknowledged."""

    target: str
    key: Ed25519PrivateKey
    cycle: int
    threads: int = 4
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Condition = field(init=False)
    sent: dict[bytes, pb.Message] = field(default_factory=dict)
    acked: dict[bytes, pb.Message] = field(default_factory=dict)
    in_flight: int = 0
    killing: bool = False
    unexpected: list[str] = field(default_factory=list)
    running: int = 0

    def __post_init__(self) -> None:
        self.progress = threading.Condition(self.lock)

    def message(self, worker: int, i: int) -> pb.Message:
        tag = f"{self.cycle}/{worker}/{i}"
        kind = i % 3
        if kind == 0:
            return f.cast_add(self.key, FID, f"cast {tag}")
        if kind == 1:
            return f.reaction(self.key, FID, f"https://example.com/{tag}")
        return f.link(self.key, FID, 1_000_000 * (self.cycle + 1) + 10_000 * worker + i)

    def worker(self, worker: int) -> None:
        channel = grpc.insecure_channel(self.target)
        stub = rpc_pb2_grpc.HubServiceStub(channel)
        try:
            i = 0
            while True:
                m = self.message(worker, i)
                i += 1
                with self.lock:
                    if self.killing:
                        return
                    self.sent[bytes(m.hash)] = m
                    self.in_flight += 1
                try:
                    stub.SubmitMessage(m, timeout=15)
                except grpc.RpcError as e:
                    with self.lock:
                        self.in_flight -= 1
                        if not self.killing:
                            self.unexpected.append(f"{e.code()}: {e.details()}")
                        self.progress.notify_all()
                    return
                with self.lock:
                    self.in_flight -= 1
                    self.acked[bytes(m.hash)] = m
                    self.progress.notify_all()
        finally:
            channel.close()
            with self.lock:
                self.running -= 1
                self.progress.notify_all()

    def run_until_killed(self, node: NodeProcess, acks: int, timeout: float = 30.0) -> int:
        """Submit until `acks` acknowledgements, then SIGKILL the node mid-flight; returns calls in flight."""
        workers = [threading.Thread(target=self.worker, args=(w,), daemon=True) for w in range(self.threads)]
        self.running = len(workers)
        for t in workers:
            t.start()
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.acked) < acks and self.running and not self.unexpected:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"only {len(self.acked)} acks in {timeout} s"
                self.progress.wait(remaining)
            assert not self.unexpected, self.unexpected[:5]
            assert len(self.acked) >= acks, f"workers stopped after {len(self.acked)} acks"
            self.killing = True
            in_flight = self.in_flight
            # Killed under the lock: no worker starts a call in between, so `in_flight` counts the
            # submissions that were outstanding when the node died.
            node.proc.send_signal(signal.SIGKILL)
        node.wait()
        for t in workers:
            t.join(STOP_TIMEOUT)
            assert not t.is_alive(), "a submitter hung after the node was killed"
        assert not self.unexpected, self.unexpected[:5]
        return in_flight


def _all(call: Callable[[bytes | None], rr.MessagesResponse]) -> list[pb.Message]:
    out: list[pb.Message] = []
    token: bytes | None = None
    while True:
        page = call(token)
        out.extend(page.messages)
        if not page.next_page_token:
            return out
        token = page.next_page_token


def _stored_hashes(target: str) -> set[bytes]:
    """Every live cast, reaction and link of FID, read through the public API."""
    with grpc.insecure_channel(target) as channel:
        hub = rpc_pb2_grpc.HubServiceStub(channel)
        casts = _all(
            lambda t: hub.GetCastsByFid(rr.FidRequest(fid=FID, page_size=1000, page_token=t), timeout=10)
        )
        reactions = _all(
            lambda t: hub.GetReactionsByFid(
                rr.ReactionsByFidRequest(fid=FID, page_size=1000, page_token=t), timeout=10
            )
        )
        links = _all(
            lambda t: hub.GetLinksByFid(
                rr.LinksByFidRequest(fid=FID, page_size=1000, page_token=t), timeout=10
            )
        )
    return {bytes(m.hash) for m in [*casts, *reactions, *links]}


def _check_point_reads(target: str, acked: dict[bytes, pb.Message]) -> None:
    with grpc.insecure_channel(target) as channel:
        hub = rpc_pb2_grpc.HubServiceStub(channel)
        for digest, m in acked.items():
            d = m.data
            if d.type == pb.MESSAGE_TYPE_CAST_ADD:
                got = hub.GetCast(pb.CastId(fid=FID, hash=digest), timeout=10)
            elif d.type == pb.MESSAGE_TYPE_REACTION_ADD:
                got = hub.GetReaction(
                    rr.ReactionRequest(
                        fid=FID, reaction_type=d.reaction_body.type, target_url=d.reaction_body.target_url
                    ),
                    timeout=10,
                )
            else:
                got = hub.GetLink(
                    rr.LinkRequest(fid=FID, link_type=d.link_body.type, target_fid=d.link_body.target_fid),
                    timeout=10,
                )
            assert bytes(got.hash) == digest


def _stop_and_check_db(node: NodeProcess, data_dir: Path) -> None:
    assert node.interrupt() == 0, node.stderr_tail()
    assert node.read_rest()[-1] == "stopped"
    store = LmdbStore(data_dir / "hub.lmdb")
    try:
        with store.read() as kv:
            problems = check_consistency(kv)
    finally:
        store.close()
    assert problems == [], "\n".join(problems[:20])


@pytest.mark.system
def test_kill_9_under_load_loses_no_acknowledged_message(node_procs: NodeProcesses, tmp_path: Path) -> None:
    key = f.new_key()
    genesis = write_genesis(tmp_path / "genesis.json", [(FID, key)], storage_units=10)
    data_dir = tmp_path / "data"
    acked: dict[bytes, pb.Message] = {}
    sent: dict[bytes, pb.Message] = {}
    in_flight_at_kill = []
    for cycle, kill_after in enumerate((100, 250, 400)):
        node = node_procs.start(data_dir, genesis)
        load = _Load(node.wait_ready(), key, cycle)
        in_flight_at_kill.append(load.run_until_killed(node, kill_after))
        acked.update(load.acked)
        sent.update(load.sent)

        node = node_procs.start(data_dir, genesis)
        target = node.wait_ready()
        stored = _stored_hashes(target)
        lost = set(acked) - stored
        assert not lost, f"cycle {cycle}: {len(lost)} acknowledged messages lost after kill -9"
        assert stored <= set(sent), "the node holds messages nobody sent"
        _check_point_reads(target, load.acked)
        _stop_and_check_db(node, data_dir)
    # The kills really interrupted submissions (all workers submit back to back, so calls were pending).
    assert sum(in_flight_at_kill) > 0, in_flight_at_kill
    assert len(sent) > len(acked)


@pytest.mark.system
def test_sigint_stops_cleanly(node_procs: NodeProcesses, tmp_path: Path) -> None:
    key = f.new_key()
    genesis = write_genesis(tmp_path / "genesis.json", [(FID, key)])
    node = node_procs.start(tmp_path / "data", genesis)
    target = node.wait_ready()
    cast = f.cast_add(key, FID, "before stop")
    with grpc.insecure_channel(target) as channel:
        assert rpc_pb2_grpc.HubServiceStub(channel).SubmitMessage(cast, timeout=10).hash == cast.hash
    assert node.interrupt() == 0, node.stderr_tail()
    out = node.read_rest()
    assert out[-1] == "stopped", out
    assert "Traceback" not in node.stderr_tail(200)
    _restarted_has(node_procs, tmp_path / "data", genesis, cast)


def _restarted_has(node_procs: NodeProcesses, data_dir: Path, genesis: Path, cast: pb.Message) -> None:
    node = node_procs.start(data_dir, genesis)
    with grpc.insecure_channel(node.wait_ready()) as channel:
        got = rpc_pb2_grpc.HubServiceStub(channel).GetCast(pb.CastId(fid=FID, hash=cast.hash), timeout=10)
    assert got.hash == cast.hash
    _stop_and_check_db(node, data_dir)


@pytest.mark.system
def test_second_node_on_same_data_dir_is_refused(node_procs: NodeProcesses, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = node_procs.start(data_dir)
    target = first.wait_ready()
    second = subprocess.run(
        [*stateless_command(), *start_args(data_dir, None)],
        capture_output=True,
        text=True,
        timeout=60,
        env=node_env(),
        cwd=REPO,
    )
    assert second.returncode != 0
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith("error: ") and "in use" in lines[0], lines
    assert "ready" not in second.stdout
    # The first node is unharmed and still serving.
    with grpc.insecure_channel(target) as channel:
        info = rpc_pb2_grpc.HubServiceStub(channel).GetInfo(rr.HubInfoRequest(), timeout=10)
    assert info.rpc_address == target
    assert first.interrupt() == 0
