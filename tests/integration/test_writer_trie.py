"""The writer flushes the sync trie once per group commit (`Writer(finalize=crdt.flush_trie)`), over real
LMDB: after every batch the persisted trie equals a rebuild from the stored messages, a failed job leaves
neither its sync id nor a trace in the trie, and a failing finalizer fails (and rolls back) the batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio

from node.storage import LmdbStore, TxnKV, Writer, check_consistency
from protocols import crdt
from protocols.crdt._keys import META_SYNC_TRIE_VERSION, T_MSG, T_SYNC, T_TRIE, T_TRIE_DIRTY
from protocols.errors import HubError
from protocols.messages import farcaster_now
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from tests import factories as f

NOW_MS = time.time_ns() // 1_000_000
BASE = farcaster_now() - 10_000
KEY_A = f.new_key(seed=601)
KEY_B = f.new_key(seed=602)


def merge_op(m: pb.Message) -> Callable[[TxnKV], object]:
    return partial(crdt.merge_message, message=m, now_ms=NOW_MS)


def onchain_op(event: oc.OnChainEvent) -> Callable[[TxnKV], object]:
    return partial(crdt.merge_onchain_event, event=event, now_ms=NOW_MS)


def merge_then_fail(m: pb.Message) -> Callable[[TxnKV], object]:
    def op(kv: TxnKV) -> object:
        crdt.merge_message(kv, m, now_ms=NOW_MS)
        raise RuntimeError("job failed after merging")

    return op


def assert_trie_matches_rebuild(store: LmdbStore) -> crdt.TrieNode:
    """The committed trie equals one rebuilt from scratch out of the committed messages."""
    with store.read() as kv:
        assert check_consistency(kv) == []
        assert list(kv.scan(T_TRIE_DIRTY)) == []
        rebuilt = crdt.MemoryKV()
        for k, v in kv.scan(T_MSG):
            rebuilt.put(k, v)
        crdt.rebuild_sync_trie(rebuilt)
        assert list(kv.scan(T_SYNC)) == list(rebuilt.scan(T_SYNC))
        assert list(kv.scan(T_TRIE)) == list(rebuilt.scan(T_TRIE))
        return crdt.trie_root(kv)


async def test_writer_finalize_keeps_the_trie_equal_to_a_rebuild(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "db")
    writer = Writer(store, finalize=crdt.flush_trie)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            with trio.fail_after(30):
                assert await writer.submit(crdt.ensure_sync_trie) == 0
                await writer.submit_many(
                    [onchain_op(e) for e in [*f.account(1, KEY_A), *f.account(2, KEY_B)]]
                )

                # Batch 1: many messages in the same second, all in one commit.
                same_second = [f.cast_add(KEY_A, 1, f"burst {i}", timestamp=BASE) for i in range(40)]
                same_second += [
                    f.reaction(KEY_B, 2, f"https://example.com/{i}", timestamp=BASE) for i in range(20)
                ]
                results = await writer.submit_many([merge_op(m) for m in same_second])
                assert not [r for r in results if isinstance(r, BaseException)]
                root = assert_trie_matches_rebuild(store)
                assert root.count == 60

                # Batch 2: displacements and failing jobs in between successful ones.
                doomed = f.cast_add(KEY_A, 1, "never stored", timestamp=BASE + 1)
                stray = crdt.sync_id(BASE + 2, b"\x42" * 20, 1, pb.MESSAGE_TYPE_CAST_ADD)

                def add_stray_then_fail(kv: TxnKV) -> None:
                    crdt.add_sync_id(kv, stray)
                    raise RuntimeError("rolled back")

                follow = f.link(KEY_A, 1, 2, timestamp=BASE + 3)
                ops = [
                    merge_op(f.cast_remove(KEY_A, 1, same_second[0].hash, timestamp=BASE + 4)),
                    merge_then_fail(doomed),
                    merge_op(follow),
                    add_stray_then_fail,
                    merge_op(f.link(KEY_A, 1, 2, remove=True, timestamp=BASE + 5)),
                    merge_op(same_second[1]),  # duplicate: rejected by the merge rules
                ]
                results = await writer.submit_many(ops)
                assert [type(r).__name__ for r in results] == [
                    "list",
                    "RuntimeError",
                    "list",
                    "RuntimeError",
                    "list",
                    "HubError",
                ]
                root = assert_trie_matches_rebuild(store)
                with store.read() as kv:
                    assert not crdt.has_sync_id(kv, crdt.sync_id_of(doomed))
                    assert not crdt.has_sync_id(kv, stray)
                    assert not crdt.has_sync_id(kv, crdt.sync_id_of(same_second[0]))
                    assert not crdt.has_sync_id(kv, crdt.sync_id_of(follow))
                    assert crdt.load_by_sync_id(kv, crdt.sync_id_of(doomed)) is None
                assert root.count == 60 - 1 + 1 + 1  # cast swapped for its remove, link remove added

                # Batch 3: revoking a signer removes every message it signed.
                await writer.submit(onchain_op(f.signer_remove(2, KEY_B)))
                root = assert_trie_matches_rebuild(store)
                assert root.count == 41
                with store.read() as kv:
                    assert kv.get(META_SYNC_TRIE_VERSION) is not None
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def test_failing_finalize_fails_the_whole_batch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = LmdbStore(tmp_path / "db")
    try:
        store.write_batch([crdt.ensure_sync_trie], finalize=crdt.flush_trie)
        events = [*f.account(1, KEY_A)]
        store.write_batch([onchain_op(e) for e in events], finalize=crdt.flush_trie)
        kept = f.cast_add(KEY_A, 1, "kept", timestamp=BASE)
        store.write_batch([merge_op(kept)], finalize=crdt.flush_trie)

        def broken(kv: TxnKV) -> None:
            crdt.flush_trie(kv)
            raise ValueError("finalizer bug")

        lost = [f.cast_add(KEY_A, 1, f"lost {i}", timestamp=BASE + i) for i in range(3)]
        results = store.write_batch([merge_op(m) for m in lost], finalize=broken)
        assert all(isinstance(r, HubError) and r.code == "unavailable.storage_failure" for r in results), (
            results
        )
        assert "finalizer" in caplog.text and "finalizer bug" in caplog.text
        with store.read() as kv:
            assert [crdt.sync_id_of(pb.Message.FromString(v)) for _, v in kv.scan(T_MSG)] == [
                crdt.sync_id_of(kept)
            ]
            assert crdt.trie_root(kv).count == 1
        assert_trie_matches_rebuild(store)
        # The store still works: the same messages commit with a working finalizer.
        results = store.write_batch([merge_op(m) for m in lost], finalize=crdt.flush_trie)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert assert_trie_matches_rebuild(store).count == 4
    finally:
        store.close()
