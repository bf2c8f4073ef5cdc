"""The durable block store (node.blobs.BlobStore) on a real LMDB environment under tmp_path.

Blobs are built with protocols.blobs.DagBuilder; small layouts (1 KiB chunks, 3 links per node) give deep
DAGs from a few KiB so that GC, incompleteness and ranges cross several levels cheaply. The crash test runs
a real child process that is SIGKILLed in the middle of a put.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from node.blobs import BlobInfo, BlobStore, StoreUsage
from protocols.blobs import CHUNK_SIZE, CODEC_DAG_PB, CODEC_RAW, Block, Cid, DagBuilder
from protocols.errors import HubError

REPO = Path(__file__).resolve().parents[2]


class Layout(TypedDict, total=False):
    chunk_size: int
    max_links: int


SMALL = Layout(chunk_size=1024, max_links=3)
MiB = 1 << 20


class Clock:
    """Creation times one second apart, so "oldest first" is well defined."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def unavailable(reason: str) -> str:
    """The code the store raises for `reason`."""
    return f"unavailable.{reason}"


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def build(data: bytes, *, piece: int = 100_003, **layout: Unpack[Layout]) -> tuple[Cid, list[Block]]:
    """The blob's root and blocks in builder order (leaves first, root last), fed in odd-sized pieces."""
    builder = DagBuilder(**layout)
    blocks: list[Block] = []
    for pos in range(0, len(data), piece):
        blocks += builder.feed(data[pos : pos + piece])
    root, rest = builder.finish()
    return root, blocks + rest


def distinct(blocks: list[Block]) -> dict[Cid, bytes]:
    return {b.cid: b.data for b in blocks}


def put(
    store: BlobStore, data: bytes, *, pin: bool = True, batch: int = 16, **layout: Unpack[Layout]
) -> tuple[BlobInfo, list[Block]]:
    """Store a blob as the RPC put does: a put session, batches of blocks, then commit."""
    root, blocks = build(data, **layout)
    session = store.open_blob(None, pin=pin)
    for pos in range(0, len(blocks), batch):
        store.put_blocks(blocks[pos : pos + batch], session=session)
    return store.commit_blob(session, root), blocks


def totals(store: BlobStore) -> StoreUsage:
    """The store's usage without the file size (LMDB's page use varies with the commit history)."""
    return dataclasses.replace(store.usage(), file_bytes=0)


def read_all(store: BlobStore, root: Cid, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(root, start, end))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[BlobStore]:
    s = BlobStore(tmp_path / "blobs.lmdb", clock=clock)
    yield s
    s.close()


# ----------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * MiB + 12_345], ids=lambda n: f"{n}B"
)
def test_put_commit_read_round_trip(store: BlobStore, size: int) -> None:
    data = payload(size, seed=size)
    info, blocks = put(store, data)
    unique = distinct(blocks)
    assert info.complete and info.pinned
    assert info.size == size
    assert info.blocks_total == info.blocks_present == len(unique)
    assert info.bytes_stored == sum(len(d) for d in unique.values())
    assert store.stat(info.root) == info
    assert read_all(store, info.root) == data
    assert all(store.has_block(cid) and store.get_block(cid) == d for cid, d in unique.items())
    usage = store.usage()
    assert (usage.bytes_stored, usage.blocks, usage.blobs, usage.pinned_blobs) == (
        info.bytes_stored,
        len(unique),
        1,
        1,
    )
    assert usage.pinned_bytes == info.bytes_stored


def test_round_trip_64_mib(store: BlobStore) -> None:
    """The issue's 64 MiB round trip (about a second here: hashing twice and 16 durable commits)."""
    data = os.urandom(64 * MiB)
    info, blocks = put(store, data)
    assert info.complete and info.size == len(data)
    assert info.blocks_total == len(blocks) == 256 + 2 + 1  # 256 leaves, 2 nodes of <= 174 links, the root
    assert read_all(store, info.root) == data
    assert read_all(store, info.root, 63 * MiB + 5, 64 * MiB - 7) == data[63 * MiB + 5 : 64 * MiB - 7]


def test_deep_dag_round_trip_and_reopen(tmp_path: Path) -> None:
    data = payload(50_000, seed=3)
    path = tmp_path / "blobs.lmdb"
    first = BlobStore(path)
    info, _ = put(first, data, **SMALL)
    usage = totals(first)
    first.close()
    again = BlobStore(path)
    try:
        assert again.stat(info.root) == info
        assert read_all(again, info.root) == data
        assert totals(again) == usage
    finally:
        again.close()


def test_put_blocks_without_session_or_root_is_plain_block_storage(store: BlobStore) -> None:
    root, blocks = build(payload(5000), **SMALL)
    store.put_blocks(blocks)
    assert all(store.has_block(b.cid) for b in blocks)
    assert store.stat(root) is None
    assert store.gc().blocks_removed == len(distinct(blocks))  # nobody references them
    assert not any(store.has_block(b.cid) for b in blocks)


# ----------------------------------------------------------------------------------------- ranges


@pytest.fixture
def ranged(store: BlobStore) -> tuple[BlobStore, Cid, bytes]:
    data = payload(3 * CHUNK_SIZE + 1000, seed=9)
    info, _ = put(store, data)
    return store, info.root, data


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),
        (1, CHUNK_SIZE - 1),  # inside the first chunk
        (CHUNK_SIZE - 10, CHUNK_SIZE + 10),  # across a boundary
        (CHUNK_SIZE, 2 * CHUNK_SIZE),  # exactly one chunk
        (CHUNK_SIZE + 7, 3 * CHUNK_SIZE + 3),  # middle to middle, across several
        (2 * CHUNK_SIZE, None),  # from a boundary to the end
        (5, 5),  # empty
        (3 * CHUNK_SIZE + 1000, None),  # empty, at the end
    ],
)
def test_read_ranges(ranged: tuple[BlobStore, Cid, bytes], start: int, end: int | None) -> None:
    store, root, data = ranged
    assert read_all(store, root, start, end) == data[start:end]


def test_read_ranges_of_a_deep_dag(store: BlobStore) -> None:
    data = payload(20_000, seed=4)
    info, _ = put(store, data, **SMALL)
    for start, end in [(0, 1), (1023, 1025), (3000, 3072), (3072, 9216), (4097, 19_999), (20_000, 20_000)]:
        assert read_all(store, info.root, start, end) == data[start:end]


@pytest.mark.parametrize(
    ("start", "end"), [(0, 3 * CHUNK_SIZE + 1001), (3 * CHUNK_SIZE + 1001, None), (-1, 10), (10, 9)]
)
def test_read_range_outside_the_blob_is_refused_at_once(
    ranged: tuple[BlobStore, Cid, bytes], start: int, end: int | None
) -> None:
    store, root, _ = ranged
    with pytest.raises(HubError) as err:
        store.read(root, start, end)  # before the first piece is asked for
    assert err.value.code == "bad_request.invalid_param"


def test_read_unknown_blob_is_not_found(store: BlobStore) -> None:
    root, _ = build(b"never stored")
    with pytest.raises(HubError) as err:
        store.read(root)
    assert err.value.code == "not_found"


# ----------------------------------------------------------------------------------------- de-duplication


def test_same_blob_twice_is_stored_once(store: BlobStore, clock: Clock) -> None:
    data = payload(2 * CHUNK_SIZE + 5)
    first, _ = put(store, data, pin=False)
    usage = totals(store)
    second, _ = put(store, data, pin=False)
    assert second == first  # same record: creation time kept, nothing counted twice
    assert totals(store) == usage
    third, _ = put(store, data, pin=True)  # a pinning put of a stored blob pins it
    assert third.pinned and third.created == first.created
    assert store.usage().pinned_bytes == usage.bytes_stored


def test_overlapping_blobs_share_blocks(store: BlobStore) -> None:
    shared = payload(4 * CHUNK_SIZE, seed=1)  # chunk-aligned, so both DAGs have these four leaves
    a, blocks_a = put(store, shared + payload(CHUNK_SIZE // 2, seed=2))
    b, blocks_b = put(store, shared + payload(CHUNK_SIZE, seed=3))
    union = distinct(blocks_a) | distinct(blocks_b)
    assert len(union) < len(distinct(blocks_a)) + len(distinct(blocks_b))
    usage = store.usage()
    assert usage.blocks == len(union)
    assert usage.bytes_stored == sum(len(d) for d in union.values())
    assert a.bytes_stored + b.bytes_stored > usage.bytes_stored  # each blob counts its own blocks


def test_repeated_chunks_are_one_block(store: BlobStore) -> None:
    data = bytes(5 * CHUNK_SIZE)
    info, blocks = put(store, data)
    assert info.blocks_total == info.blocks_present == 2  # one zero leaf, one root listing it five times
    assert len(blocks) == 6
    assert info.bytes_stored == CHUNK_SIZE + len(blocks[-1].data)
    assert read_all(store, info.root) == data


# ----------------------------------------------------------------------------------------- corruption


def test_corrupt_block_refuses_the_whole_batch(store: BlobStore) -> None:
    _, blocks = build(payload(3 * CHUNK_SIZE))
    bad = Block(blocks[1].cid, blocks[1].data[:-1] + bytes([blocks[1].data[-1] ^ 1]))
    session = store.open_blob(None, pin=True)
    with pytest.raises(HubError) as err:
        store.put_blocks([blocks[0], bad, blocks[2]], session=session)
    assert err.value.code == "bad_request.blob_corrupt"
    assert not any(store.has_block(b.cid) for b in blocks)
    assert store.usage().bytes_stored == 0


def test_block_named_by_another_hash_is_corrupt(store: BlobStore) -> None:
    _, [a] = build(b"a")
    _, [b] = build(b"b")
    with pytest.raises(HubError) as err:
        store.put_blocks([Block(a.cid, b.data)])
    assert err.value.code == "bad_request.blob_corrupt"
    assert not store.has_block(a.cid)


# ----------------------------------------------------------------------------------------- pins and gc


def test_gc_removes_exactly_the_unpinned_blobs_and_their_own_blocks(store: BlobStore) -> None:
    base = payload(10 * 1024, seed=5)
    pinned, blocks_p = put(store, base, **SMALL)
    shares, blocks_s = put(
        store, base + payload(3000, seed=6), pin=False, **SMALL
    )  # shares leaves with `pinned`
    alone, blocks_a = put(store, payload(4000, seed=7), pin=False, **SMALL)
    keep, drop = distinct(blocks_p), (distinct(blocks_s) | distinct(blocks_a))
    only_unpinned = {cid: d for cid, d in drop.items() if cid not in keep}
    assert len(only_unpinned) < len(drop)  # some blocks are shared with the pinned blob

    result = store.gc()
    assert result.blobs_removed == 2
    assert result.blocks_removed == len(only_unpinned)
    assert result.bytes_freed == sum(len(d) for d in only_unpinned.values())
    assert store.stat(shares.root) is None and store.stat(alone.root) is None
    assert store.stat(pinned.root) == pinned
    assert all(store.has_block(cid) for cid in keep)
    assert not any(store.has_block(cid) for cid in only_unpinned)
    assert read_all(store, pinned.root) == base
    usage = store.usage()
    assert (usage.bytes_stored, usage.blocks, usage.blobs) == (pinned.bytes_stored, len(keep), 1)
    assert (store.gc().blobs_removed, store.gc().blocks_removed) == (0, 0)


def test_pin_and_unpin(store: BlobStore) -> None:
    info, _ = put(store, payload(6000), pin=False, **SMALL)
    assert store.usage().pinned_bytes == 0
    pinned = store.pin(info.root)
    assert pinned.pinned and store.pin(info.root) == pinned  # idempotent
    assert store.usage().pinned_bytes == info.bytes_stored and store.usage().pinned_blobs == 1
    assert store.gc().blobs_removed == 0
    assert not store.unpin(info.root).pinned
    assert store.usage().pinned_bytes == 0
    assert store.gc().blobs_removed == 1
    assert store.usage().bytes_stored == 0


def test_gc_spares_blocks_of_open_sessions(store: BlobStore) -> None:
    root, blocks = build(payload(8000, seed=8), **SMALL)
    session = store.open_blob(None, pin=False)
    store.put_blocks(blocks[:5], session=session)
    assert store.gc().blocks_removed == 0
    assert all(store.has_block(b.cid) for b in blocks[:5])
    store.put_blocks(blocks[5:], session=session)
    assert store.commit_blob(session, root).complete
    store.unpin(root)  # already unpinned; the record is what now holds the blocks
    assert store.gc().blobs_removed == 1
    assert store.usage().blocks == 0

    session = store.open_blob(None, pin=True)
    store.put_blocks(blocks[:3], session=session)
    store.abort_blob(session)
    assert store.gc().blocks_removed == len(distinct(blocks[:3]))


def test_gc_spares_an_open_fetch_then_collects_it_once_abandoned(store: BlobStore) -> None:
    root, blocks = build(payload(8000, seed=8), **SMALL)
    session = store.open_blob(root, pin=False)
    store.put_blocks(blocks[-3:], root=root)  # the fetch goes top-down: root first
    assert store.gc() == type(store.gc())(0, 0, 0)
    info = store.stat(root)
    assert info is not None and not info.complete and info.blocks_present == 3
    store.abort_blob(session)
    result = store.gc()
    assert (result.blobs_removed, result.blocks_removed) == (1, 3)
    assert store.stat(root) is None


def test_quota_evicts_unpinned_blobs_oldest_first(tmp_path: Path, clock: Clock) -> None:
    blobs = [payload(20_000, seed=s) for s in range(5)]
    size = sum(len(d) for d in distinct(build(blobs[0], **SMALL)[1]).values())
    store = BlobStore(tmp_path / "blobs.lmdb", quota_bytes=int(3.5 * size), clock=clock)
    try:
        pinned, _ = put(store, blobs[0], pin=True, **SMALL)
        older, _ = put(store, blobs[1], pin=False, **SMALL)
        newer, _ = put(store, blobs[2], pin=False, **SMALL)
        assert store.usage().bytes_stored == 3 * size
        fourth, _ = put(store, blobs[3], pin=False, **SMALL)  # needs room: the oldest unpinned goes
        assert store.stat(older.root) is None
        assert store.stat(newer.root) == newer and store.stat(pinned.root) == pinned
        fifth, _ = put(store, blobs[4], pin=True, **SMALL)
        assert store.stat(newer.root) is None and store.stat(fourth.root) == fourth
        assert store.usage().bytes_stored <= int(3.5 * size)
        assert read_all(store, fifth.root, 0, None) == blobs[4]
    finally:
        store.close()


def test_quota_refuses_when_pinned_data_alone_exceeds_it(tmp_path: Path, clock: Clock) -> None:
    quota = 100_000
    store = BlobStore(tmp_path / "blobs.lmdb", quota_bytes=quota, clock=clock)
    try:
        pinned, _ = put(store, payload(70_000, seed=1), pin=True, **SMALL)
        spare, _ = put(store, payload(20_000, seed=2), pin=False, **SMALL)
        usage = totals(store)
        _, blocks = build(payload(40_000, seed=3), **SMALL)
        session = store.open_blob(None, pin=False)
        with pytest.raises(HubError) as err:
            store.put_blocks(blocks, session=session)
        assert err.value.code == unavailable("storage_full")
        assert totals(store) == usage  # nothing written, nothing evicted in vain
        assert not any(store.has_block(b.cid) for b in blocks)
        assert store.stat(spare.root) == spare
        store.abort_blob(session)
        small, _ = put(store, payload(15_000, seed=4), pin=False, **SMALL)  # fits once `spare` goes
        assert store.stat(spare.root) is None and store.stat(small.root) == small
        assert store.stat(pinned.root) == pinned
    finally:
        store.close()


def test_quota_does_not_evict_blocks_of_open_sessions(tmp_path: Path, clock: Clock) -> None:
    store = BlobStore(tmp_path / "blobs.lmdb", quota_bytes=50_000, clock=clock)
    try:
        _, blocks = build(payload(40_000, seed=1), **SMALL)
        session = store.open_blob(None, pin=False)
        store.put_blocks(blocks[:20], session=session)
        _, other = build(payload(40_000, seed=2), **SMALL)
        with pytest.raises(HubError) as err:
            store.put_blocks(other)
        assert err.value.code == unavailable("storage_full")
        assert all(store.has_block(b.cid) for b in blocks[:20])
    finally:
        store.close()


def test_concurrent_puts_and_gc_from_threads(store: BlobStore) -> None:
    """Writers on several threads, GC running all along: every committed blob ends complete and readable."""
    shared = payload(6 * 1024, seed=50)
    datas = [shared + payload(3000 + 500 * i, seed=60 + i) for i in range(4)]
    results: dict[int, BlobInfo] = {}
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(i: int) -> None:
        try:
            results[i] = put(store, datas[i], pin=True, batch=3, **SMALL)[0]
        except BaseException as e:
            errors.append(e)

    def collector() -> None:
        while not done.is_set():
            store.gc()

    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(len(datas))]
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    done.set()
    gc_thread.join(timeout=60)
    assert not errors
    for i, data in enumerate(datas):
        assert results[i].complete
        assert read_all(store, results[i].root) == data
    store.gc()
    assert store.usage().bytes_stored == store.usage().pinned_bytes


# ----------------------------------------------------------------------------------------- incomplete blobs


def test_fetch_committed_with_missing_leaves_is_incomplete(store: BlobStore) -> None:
    data = payload(9000, seed=11)
    root, blocks = build(data, **SMALL)
    nodes = [b for b in blocks if b.cid.codec == CODEC_DAG_PB]
    leaves = [b for b in blocks if b.cid.codec == CODEC_RAW]
    total = len(distinct(blocks))
    session = store.open_blob(root, pin=True)
    store.put_blocks([*nodes, *leaves[:4]], root=root)
    info = store.commit_blob(session, root)
    assert not info.complete and info.pinned
    assert info.size == len(data)
    assert info.blocks_total == total
    assert info.blocks_present == len(nodes) + 4
    with pytest.raises(HubError) as err:
        store.read(root)
    assert err.value.code == unavailable("incomplete")

    session = store.open_blob(root, pin=True)  # resume: only the missing leaves
    store.put_blocks(leaves[4:], root=root)
    info = store.commit_blob(session, root)
    assert info.complete and info.blocks_present == info.blocks_total == total
    assert read_all(store, root) == data


def test_fetch_with_missing_internal_nodes_has_unknown_total(store: BlobStore) -> None:
    root, blocks = build(payload(9000, seed=12), **SMALL)
    session = store.open_blob(root, pin=False)
    opened = store.stat(root)  # a fetch has its record (incomplete) from the start
    assert opened == BlobInfo(root, 0, -1, 0, False, False, opened.created if opened else 0.0, 0)
    store.put_blocks(blocks[-1:], root=root)  # the root only
    info = store.commit_blob(session, root)
    assert (info.complete, info.blocks_total, info.blocks_present, info.size) == (False, -1, 1, 9000)
    assert store.gc().blobs_removed == 1  # incomplete and no session: garbage, pinned or not


def test_put_session_committed_without_all_blocks_is_incomplete(store: BlobStore) -> None:
    root, blocks = build(payload(5000, seed=13), **SMALL)
    session = store.open_blob(None, pin=True)
    store.put_blocks(blocks[:-4], session=session)
    info = store.commit_blob(session, root)
    assert (info.complete, info.blocks_present, info.size) == (False, 0, 0)  # root block absent


# ----------------------------------------------------------------------------------------- crash during put

_CHILD = """
import random, sys
from pathlib import Path
from node.blobs import BlobStore
from protocols.blobs import DagBuilder

path, mode, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
builder = DagBuilder()
blocks = builder.feed(random.Random(99).randbytes(size))
root, rest = builder.finish()
blocks += rest
store = BlobStore(path)
if mode == "fetch":
    session = store.open_blob(root, pin=True)
    put = lambda batch: store.put_blocks(batch, root=root)
else:
    session = store.open_blob(None, pin=True)
    put = lambda batch: store.put_blocks(batch, session=session)
for calls, pos in enumerate(range(0, len(blocks), 16), 1):
    put(blocks[pos : pos + 16])
    if calls == 2:
        print("writing", flush=True)
print("all blocks written", flush=True)
sys.stdin.read()  # never commits: waits for the kill
"""


@pytest.mark.parametrize("mode", ["put", "fetch"])
def test_crash_during_put_leaves_no_complete_blob(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "blobs.lmdb"
    kept_data = payload(CHUNK_SIZE * 3 + 17, seed=21)
    store = BlobStore(path)
    kept, _ = put(store, kept_data, pin=True)
    store.close()

    size = 32 * MiB
    root, _ = build(random.Random(99).randbytes(size))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), mode, str(size)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    guard = threading.Timer(60, child.kill)  # only if the child hangs before signalling
    guard.start()
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"writing\n"  # two commits done, more under way
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        guard.cancel()
        child.kill()
        child.wait()

    store = BlobStore(path)
    try:
        info = store.stat(root)
        if mode == "put":
            assert info is None  # a put has no record before commit_blob
        else:
            assert info is not None and not info.complete and info.pinned
        with pytest.raises(HubError):
            store.read(root)
        assert store.usage().bytes_stored > kept.bytes_stored  # the dead put's blocks, until GC
        result = store.gc()
        assert result.blobs_removed == (1 if mode == "fetch" else 0)
        assert result.blocks_removed >= 2 * 16
        usage = store.usage()
        assert (usage.bytes_stored, usage.blobs, usage.pinned_bytes) == (
            kept.bytes_stored,
            1,
            kept.bytes_stored,
        )
        assert store.stat(kept.root) == kept
        assert read_all(store, kept.root) == kept_data
    finally:
        store.close()


# ----------------------------------------------------------------------------------------- bad input


def test_unknown_roots(store: BlobStore) -> None:
    root, _ = build(b"unknown")
    assert store.stat(root) is None
    for op in (store.pin, store.unpin):
        with pytest.raises(HubError) as err:
            op(root)
        assert err.value.code == "not_found"


@pytest.mark.parametrize("session", ["", "xyz", "0" * 31, "G" * 32, "0" * 33, "A" * 32])
def test_malformed_session_ids(store: BlobStore, session: str) -> None:
    root, blocks = build(b"data")
    for call in (
        lambda: store.commit_blob(session, root),
        lambda: store.abort_blob(session),
        lambda: store.put_blocks(blocks, session=session),
    ):
        with pytest.raises(HubError) as err:
            call()
        assert err.value.code == "bad_request.invalid_param"
    assert not store.has_block(blocks[0].cid)


def test_unknown_and_ended_sessions(store: BlobStore) -> None:
    root, blocks = build(b"data")
    session = store.open_blob(None, pin=False)
    store.abort_blob(session)
    for call in (
        lambda: store.commit_blob(session, root),
        lambda: store.abort_blob(session),
        lambda: store.put_blocks(blocks, session=session),
        lambda: store.commit_blob("0" * 32, root),
    ):
        with pytest.raises(HubError) as err:
            call()
        assert err.value.code == "not_found"


def test_fetch_session_rules(store: BlobStore) -> None:
    root, blocks = build(b"wanted")
    other, _ = build(b"other")
    with pytest.raises(HubError) as err:
        store.put_blocks(blocks, root=root)  # no open session for this root
    assert err.value.code == "bad_request.invalid_param"
    session = store.open_blob(root, pin=False)
    with pytest.raises(HubError) as err:
        store.commit_blob(session, other)
    assert err.value.code == "bad_request.invalid_param"
    with pytest.raises(HubError) as err:
        store.put_blocks(blocks, root=other, session=session)
    assert err.value.code == "bad_request.invalid_param"
    store.put_blocks(blocks, session=session)
    assert store.commit_blob(session, root).complete


def test_list_blobs(store: BlobStore) -> None:
    infos = [put(store, payload(100, seed=s), pin=s % 2 == 0)[0] for s in range(7)]
    by_cid = sorted(infos, key=lambda i: i.root.to_bytes())
    assert store.list_blobs() == by_cid
    pages: list[BlobInfo] = []
    after: Cid | None = None
    for _ in range(10):
        page = store.list_blobs(after=after, limit=3)
        if not page:
            break
        pages += page
        after = page[-1].root
    assert pages == by_cid
    assert store.list_blobs(pinned_only=True) == [i for i in by_cid if i.pinned]
    with pytest.raises(HubError) as err:
        store.list_blobs(limit=0)
    assert err.value.code == "bad_request.invalid_param"


def test_read_of_a_blob_collected_meanwhile_fails(store: BlobStore) -> None:
    info, _ = put(store, payload(4 * CHUNK_SIZE, seed=30), pin=False)
    pieces = store.read(info.root)
    first = next(pieces)
    assert first
    store.gc()
    with pytest.raises(HubError) as err:
        list(itertools.islice(pieces, 10))
    assert err.value.code == "not_found"


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs.lmdb")
    store.close()
    store.close()  # idempotent
    with pytest.raises(HubError) as err:
        store.open_blob(None, pin=False)
    assert err.value.code == "unavailable.shutting_down"
