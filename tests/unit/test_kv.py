"""Ordered key-value contract (`ReadKV.scan`): MemoryKV and the LMDB transaction adapter must agree.

The store's queries and merge rules rely on exact scan semantics (prefix bounds, strict `after`,
reverse order, prefixes ending in 0xff), so the in-memory fake is held to the same conformance tests as
the real LMDB adapter the node uses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.storage._lmdb import TxnKV
from protocols.crdt import MemoryKV, WriteKV, prefix_end

KEYS = [b"a", b"a\x00", b"a\x01", b"a\xff", b"a\xff\x00", b"a\xff\xff", b"ab", b"b", b"\xff", b"\xff\xff"]


@pytest.fixture(scope="module")
def lmdb_env() -> Iterator[lmdb.Environment]:
    with tempfile.TemporaryDirectory() as d:
        env = lmdb.open(d, map_size=1 << 24)
        try:
            yield env
        finally:
            env.close()


@pytest.fixture(params=["memory", "lmdb"])
def kv(request: pytest.FixtureRequest, lmdb_env: lmdb.Environment) -> Iterator[WriteKV]:
    """An empty WriteKV of each implementation (the LMDB one is an aborted write transaction)."""
    if request.param == "memory":
        yield MemoryKV()
        return
    txn = lmdb_env.begin(write=True)
    try:
        yield TxnKV(txn)
    finally:
        txn.abort()


def fill(kv: WriteKV, keys: list[bytes] = KEYS) -> None:
    # Insert out of order so sortedness comes from the implementation, not from insertion order.
    for k in reversed(keys):
        kv.put(k, b"v" + k)


def keys_of(pairs: Iterator[tuple[bytes, bytes]]) -> list[bytes]:
    out = []
    for k, v in pairs:
        assert v == b"v" + k
        out.append(k)
    return out


# ---------------------------------------------------------------------------------------------- basics


def test_get_put_overwrite_delete(kv: WriteKV) -> None:
    assert kv.get(b"k") is None
    kv.put(b"k", b"1")
    assert kv.get(b"k") == b"1"
    kv.put(b"k", b"2")
    assert kv.get(b"k") == b"2"
    assert [k for k, _ in kv.scan(b"")] == [b"k"]  # an overwrite adds no second key
    kv.delete(b"k")
    assert kv.get(b"k") is None
    kv.delete(b"k")  # deleting an absent key is a no-op
    kv.delete(b"never")
    assert list(kv.scan(b"")) == []


def test_memorykv_len_and_items() -> None:
    kv = MemoryKV()
    fill(kv)
    kv.put(b"a", b"va")  # overwrite
    assert len(kv) == len(KEYS)
    assert [k for k, _ in kv.items()] == sorted(KEYS)
    kv.delete(b"ab")
    assert len(kv) == len(KEYS) - 1
    assert b"ab" not in [k for k, _ in kv.items()]


# ---------------------------------------------------------------------------------------------- scan


def test_forward_and_reverse_prefix(kv: WriteKV) -> None:
    fill(kv)
    expected = [b"a", b"a\x00", b"a\x01", b"ab", b"a\xff", b"a\xff\x00", b"a\xff\xff"]
    assert keys_of(kv.scan(b"a")) == expected
    assert keys_of(kv.scan(b"a", reverse=True)) == expected[::-1]


def test_empty_prefix_is_everything(kv: WriteKV) -> None:
    fill(kv)
    assert keys_of(kv.scan(b"")) == sorted(KEYS)
    assert keys_of(kv.scan(b"", reverse=True)) == sorted(KEYS, reverse=True)


def test_prefix_ending_in_ff(kv: WriteKV) -> None:
    fill(kv)
    assert keys_of(kv.scan(b"a\xff")) == [b"a\xff", b"a\xff\x00", b"a\xff\xff"]
    assert keys_of(kv.scan(b"a\xff", reverse=True)) == [b"a\xff\xff", b"a\xff\x00", b"a\xff"]
    # All-0xff prefixes have no upper bound key (prefix_end is None).
    assert keys_of(kv.scan(b"\xff")) == [b"\xff", b"\xff\xff"]
    assert keys_of(kv.scan(b"\xff", reverse=True)) == [b"\xff\xff", b"\xff"]
    assert keys_of(kv.scan(b"\xff\xff", reverse=True)) == [b"\xff\xff"]


def test_prefix_with_no_keys(kv: WriteKV) -> None:
    fill(kv)
    for prefix in (b"a\x02", b"aa", b"c", b"\x00", b"\xff\xff\xff"):
        assert list(kv.scan(prefix)) == []
        assert list(kv.scan(prefix, reverse=True)) == []


def test_scan_of_empty_store(kv: WriteKV) -> None:
    assert list(kv.scan(b"")) == []
    assert list(kv.scan(b"", reverse=True)) == []
    assert list(kv.scan(b"a", after=b"a\x01")) == []
    assert list(kv.scan(b"a", after=b"a\x01", reverse=True)) == []


def test_after_is_strict_forward(kv: WriteKV) -> None:
    fill(kv)
    assert keys_of(kv.scan(b"a", after=b"a")) == [
        b"a\x00",
        b"a\x01",
        b"ab",
        b"a\xff",
        b"a\xff\x00",
        b"a\xff\xff",
    ]
    assert keys_of(kv.scan(b"a", after=b"a\xff")) == [b"a\xff\x00", b"a\xff\xff"]
    assert keys_of(kv.scan(b"a", after=b"a\xff\xff")) == []
    # A key that is not stored: start at the next stored one.
    assert keys_of(kv.scan(b"a", after=b"a\x02")) == [b"ab", b"a\xff", b"a\xff\x00", b"a\xff\xff"]


def test_after_is_strict_reverse(kv: WriteKV) -> None:
    fill(kv)
    assert keys_of(kv.scan(b"a", after=b"a\xff\xff", reverse=True)) == [
        b"a\xff\x00",
        b"a\xff",
        b"ab",
        b"a\x01",
        b"a\x00",
        b"a",
    ]
    assert keys_of(kv.scan(b"a", after=b"a\xff", reverse=True)) == [b"ab", b"a\x01", b"a\x00", b"a"]
    assert keys_of(kv.scan(b"a", after=b"a", reverse=True)) == []
    assert keys_of(kv.scan(b"a", after=b"a\x02", reverse=True)) == [b"a\x01", b"a\x00", b"a"]
    # `after` beyond the last key of the prefix, still inside it.
    assert keys_of(kv.scan(b"a\xff", after=b"a\xff\xff\xff", reverse=True)) == [
        b"a\xff\xff",
        b"a\xff\x00",
        b"a\xff",
    ]


def test_after_walks_pages_like_a_token(kv: WriteKV) -> None:
    fill(kv)
    for reverse in (False, True):
        seen: list[bytes] = []
        after: bytes | None = None
        while True:
            page = keys_of(kv.scan(b"a", after=after, reverse=reverse))[:2]
            if not page:
                break
            seen.extend(page)
            after = page[-1]
        assert seen == keys_of(kv.scan(b"a", reverse=reverse))


def test_scan_sees_deletes_and_inserts(kv: WriteKV) -> None:
    fill(kv)
    kv.delete(b"a\xff")
    kv.put(b"a\x80", b"va\x80")
    assert keys_of(kv.scan(b"a\x80")) == [b"a\x80"]
    assert b"a\xff" not in keys_of(kv.scan(b"a"))
    assert keys_of(kv.scan(b"a", after=b"ab")) == [b"a\x80", b"a\xff\x00", b"a\xff\xff"]


def test_prefix_end() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\xfe") == b"a\xff"
    assert prefix_end(b"a\xff\xff") == b"b"
    assert prefix_end(b"\xff") is None
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None


# ---------------------------------------------------------------------------------------------- model check

_byte = st.sampled_from([0x00, 0x01, 0x7F, 0xFE, 0xFF])
_key = st.lists(_byte, min_size=1, max_size=4).map(bytes)
_prefix = st.lists(_byte, min_size=0, max_size=3).map(bytes)


@settings(max_examples=150, deadline=None)
@given(
    keys=st.sets(_key, max_size=30),
    deleted=st.sets(_key, max_size=5),
    prefix=_prefix,
    after_suffix=st.none() | st.lists(_byte, max_size=3).map(bytes),
    reverse=st.booleans(),
)
def test_scan_matches_sorted_model(
    lmdb_env: lmdb.Environment,
    keys: set[bytes],
    deleted: set[bytes],
    prefix: bytes,
    after_suffix: bytes | None,
    reverse: bool,
) -> None:
    """Both implementations equal a naive filter-and-sort, for `after` anywhere inside the prefix."""
    after = None if after_suffix is None else prefix + after_suffix
    remaining = keys - deleted
    model = sorted(k for k in remaining if k.startswith(prefix))
    if after is not None:
        model = [k for k in model if k > after]
    if reverse:
        model = sorted(
            (k for k in remaining if k.startswith(prefix) and (after is None or k < after)), reverse=True
        )

    mem = MemoryKV()
    txn = lmdb_env.begin(write=True)
    try:
        for impl in (mem, TxnKV(txn)):
            fill(impl, sorted(keys))
            for k in deleted:
                impl.delete(k)
            assert keys_of(impl.scan(prefix, after=after, reverse=reverse)) == model
    finally:
        txn.abort()
