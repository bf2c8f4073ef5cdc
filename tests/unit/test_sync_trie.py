"""The Merkle prefix trie of sync ids: encoding (known answers), incremental flushes against a model built
from the spec, the diff walk hubs use to find what they lack, maintenance by the merge rules, migration,
the checks for untrusted peers' nodes, flush cost, and the consistency checker's trie pass."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import blake3
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from node.storage import check_consistency
from protocols.crdt import (
    EMPTY_HASH,
    LEAF_PREFIX_BYTES,
    SYNC_ID_BYTES,
    UNIT_LIMITS,
    MemoryKV,
    SyncIdParts,
    TrieChild,
    TrieNode,
    add_sync_id,
    check_interior_node,
    check_leaf_ids,
    ensure_sync_trie,
    flush_trie,
    has_sync_id,
    interior_hash,
    leaf_hash,
    load_by_sync_id,
    merge_message,
    merge_onchain_event,
    parse_sync_id,
    rebuild_sync_trie,
    remove_sync_id,
    sync_id,
    sync_id_of,
    sync_ids_under,
    trie_node,
    trie_root,
)
from protocols.crdt._keys import META_SYNC_TRIE_VERSION, T_MSG, T_SYNC, T_TRIE, T_TRIE_DIRTY
from protocols.errors import HubError
from protocols.messages import farcaster_now, make_account_events, public_key_bytes
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr
from tests.factories import cast_add, cast_remove, link, new_key, reaction, signer_remove, user_data

NOW_MS = time.time_ns() // 1_000_000
NOW_S = NOW_MS // 1000
BASE = farcaster_now() - 100_000

KEY_A = new_key(seed=501)
KEY_B = new_key(seed=502)
KEY_C = new_key(seed=503)


# ---------------------------------------------------------------------------------------------- model


def h20(data: bytes) -> bytes:
    """BLAKE3 truncated to 20 bytes, straight from the blake3 package."""
    return blake3.blake3(data).digest(length=20)


def sid(ts: int, digest: bytes, fid: int, mtype: int) -> bytes:
    """A sync id laid out by hand: ts u32 | hash 20 | fid u64 | type u8."""
    assert len(digest) == 20
    return ts.to_bytes(4, "big") + digest + fid.to_bytes(8, "big") + bytes([mtype])


def model_nodes(ids: Iterable[bytes]) -> dict[bytes, TrieNode]:
    """Every non-empty node of the trie over `ids`, built recursively from the spec (independent code)."""
    nodes: dict[bytes, TrieNode] = {}

    def build(prefix: bytes, under: list[bytes]) -> TrieNode:
        if len(prefix) == 5:
            node = TrieNode(prefix, len(under), h20(b"".join(under)), ())
        else:
            groups: dict[int, list[bytes]] = {}
            for i in under:
                groups.setdefault(i[len(prefix)], []).append(i)
            children = []
            for byte in sorted(groups):
                child = build(prefix + bytes([byte]), groups[byte])
                children.append(TrieChild(byte, child.count, child.hash))
            encoded = b"".join(bytes([c.byte]) + c.count.to_bytes(4, "big") + c.hash for c in children)
            node = TrieNode(prefix, sum(c.count for c in children), h20(encoded), tuple(children))
        nodes[prefix] = node
        return node

    everything = sorted(set(ids))
    if everything:
        build(b"", everything)
    return nodes


def persisted(kv: MemoryKV) -> dict[bytes, TrieNode]:
    """Every persisted node, read through the public API."""
    return {k[len(T_TRIE) :]: trie_node(kv, k[len(T_TRIE) :]) for k, _ in kv.scan(T_TRIE)}


def sync_set(kv: MemoryKV) -> set[bytes]:
    return {k[len(T_SYNC) :] for k, _ in kv.scan(T_SYNC)}


def assert_trie_is(kv: MemoryKV, ids: set[bytes]) -> None:
    """The flushed trie of `kv` is exactly the model trie over `ids`, and nothing is left dirty."""
    assert sync_set(kv) == ids
    assert list(kv.scan(T_TRIE_DIRTY)) == []
    expected = model_nodes(ids)
    assert persisted(kv) == expected
    assert trie_root(kv) == expected.get(b"", TrieNode(b"", 0, EMPTY_HASH, ()))


def store_of_ids(ids: Iterable[bytes], flush_every: int = 0) -> MemoryKV:
    kv = MemoryKV()
    for n, i in enumerate(ids, 1):
        add_sync_id(kv, i)
        if flush_every and n % flush_every == 0:
            flush_trie(kv)
    flush_trie(kv)
    return kv


# Few timestamps sharing byte prefixes and few first hash bytes, so ids collide in buckets and subtrees.
TIMESTAMPS = [0, 0x01020304, 0x01020305, 0x01020404, 0x01030000, 0x7F000000, 0xFFFFFFFF]
sync_ids = st.builds(
    lambda ts, first, rest, fid, mtype: sid(ts, bytes([first]) + rest, fid, mtype),
    st.sampled_from(TIMESTAMPS),
    st.sampled_from([0, 1, 0x80, 0xFF]),
    st.binary(min_size=19, max_size=19),
    st.integers(0, 3),
    st.sampled_from([1, 3, 5]),
)
id_sets = st.sets(sync_ids, max_size=40)


# ---------------------------------------------------------------------------------------------- sync ids


def test_sync_id_layout_and_parse() -> None:
    digest = bytes(range(20))
    raw = sync_id(0x01020304, digest, 0x1122334455667788, 7)
    assert raw == bytes.fromhex("01020304") + digest + bytes.fromhex("1122334455667788") + b"\x07"
    assert len(raw) == SYNC_ID_BYTES == 33
    assert parse_sync_id(raw) == SyncIdParts(
        timestamp=0x01020304, hash=digest, fid=0x1122334455667788, type=7
    )


def test_sync_id_of_message() -> None:
    m = cast_add(KEY_A, 9, "x", timestamp=BASE)
    assert sync_id_of(m) == sid(BASE, bytes(m.hash), 9, pb.MESSAGE_TYPE_CAST_ADD)


@pytest.mark.parametrize("length", [0, 1, 32, 34, 100])
def test_parse_sync_id_rejects_wrong_length(length: int) -> None:
    with pytest.raises(HubError) as exc:
        parse_sync_id(bytes(length))
    assert exc.value.code == "bad_request.invalid_param"


@pytest.mark.parametrize(
    "args",
    [
        (-1, bytes(20), 1, 1),
        (1 << 32, bytes(20), 1, 1),
        (1, bytes(19), 1, 1),
        (1, bytes(20), 1 << 64, 1),
        (1, bytes(20), 1, 256),
    ],
)
def test_sync_id_rejects_out_of_range_fields(args: tuple[int, bytes, int, int]) -> None:
    with pytest.raises(HubError) as exc:
        sync_id(*args)
    assert exc.value.code == "bad_request.invalid_param"


# ---------------------------------------------------------------------------------------------- known answers


def test_empty_trie() -> None:
    kv = MemoryKV()
    assert flush_trie(kv) == 0
    assert trie_root(kv) == TrieNode(b"", 0, EMPTY_HASH, ())
    assert bytes(20) == EMPTY_HASH
    assert interior_hash([]) == EMPTY_HASH
    assert trie_node(kv, b"\x01\x02\x03\x04\x05") == TrieNode(b"\x01\x02\x03\x04\x05", 0, EMPTY_HASH, ())
    assert not trie_node(kv, b"\x01").is_leaf and trie_node(kv, b"\x01" * 5).is_leaf


def test_known_answer_single_id() -> None:
    one = sid(0x01020304, b"\xaa" * 20, 7, 1)
    kv = store_of_ids([one])
    # Leaf bucket 01 02 03 04 aa holds the one id; each ancestor has one child.
    leaf = h20(one)
    n4 = h20(b"\xaa" + b"\x00\x00\x00\x01" + leaf)
    n3 = h20(b"\x04" + b"\x00\x00\x00\x01" + n4)
    n2 = h20(b"\x03" + b"\x00\x00\x00\x01" + n3)
    n1 = h20(b"\x02" + b"\x00\x00\x00\x01" + n2)
    root = h20(b"\x01" + b"\x00\x00\x00\x01" + n1)
    assert trie_node(kv, bytes.fromhex("01020304aa")) == TrieNode(bytes.fromhex("01020304aa"), 1, leaf, ())
    assert trie_node(kv, bytes.fromhex("01020304")) == TrieNode(
        bytes.fromhex("01020304"), 1, n4, (TrieChild(0xAA, 1, leaf),)
    )
    assert trie_root(kv) == TrieNode(b"", 1, root, (TrieChild(0x01, 1, n1),))
    # The record encodings themselves: count u64 | hash, then the children.
    assert kv.get(T_TRIE + bytes.fromhex("01020304aa")) == (1).to_bytes(8, "big") + leaf
    assert kv.get(T_TRIE) == (1).to_bytes(8, "big") + root + b"\x01" + (1).to_bytes(4, "big") + n1
    assert root.hex() == "e5c370abd52591a36e67b17f224565c63c46db8d"


def test_known_answer_three_ids() -> None:
    a = sid(0x01020304, b"\x10" + b"\x01" * 19, 1, 1)
    b = sid(0x01020304, b"\x10" + b"\x02" * 19, 2, 1)  # same bucket as a, sorts after it
    c = sid(0x01020404, b"\x20" * 20, 1, 3)  # shares 01 02 with a and b
    kv = store_of_ids([c, b, a])

    def u32(n: int) -> bytes:
        return n.to_bytes(4, "big")

    bucket_ab = h20(a + b)
    bucket_c = h20(c)
    n_0304 = h20(b"\x10" + u32(2) + bucket_ab)
    n_0404 = h20(b"\x20" + u32(1) + bucket_c)
    n_03 = h20(b"\x04" + u32(2) + n_0304)
    n_04 = h20(b"\x04" + u32(1) + n_0404)
    n_02 = h20(b"\x03" + u32(2) + n_03 + b"\x04" + u32(1) + n_04)
    n_01 = h20(b"\x02" + u32(3) + n_02)
    root = h20(b"\x01" + u32(3) + n_01)
    assert trie_node(kv, bytes.fromhex("0102")) == TrieNode(
        bytes.fromhex("0102"), 3, n_02, (TrieChild(3, 2, n_03), TrieChild(4, 1, n_04))
    )
    assert trie_root(kv) == TrieNode(b"", 3, root, (TrieChild(1, 3, n_01),))
    assert leaf_hash([a, b]) == bucket_ab
    assert interior_hash([TrieChild(3, 2, n_03), TrieChild(4, 1, n_04)]) == n_02
    assert root.hex() == "51ba13ba1935dc5a17d555524fc3b5ca6ed353f3"
    # Removing b changes its bucket and every ancestor, nothing else.
    remove_sync_id(kv, b)
    assert flush_trie(kv) == 1
    assert_trie_is(kv, {a, c})
    assert trie_node(kv, bytes.fromhex("01020404")).hash == n_0404


# ---------------------------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(
    pool=st.lists(sync_ids, min_size=1, max_size=30, unique=True),
    ops=st.lists(
        st.tuples(st.sampled_from(["add", "add", "remove", "flush"]), st.integers(0, 29)), max_size=80
    ),
)
def test_any_order_and_flush_split_matches_the_model(pool: list[bytes], ops: list[tuple[str, int]]) -> None:
    kv = MemoryKV()
    live: set[bytes] = set()
    for kind, index in ops:
        one = pool[index % len(pool)]
        if kind == "add":
            add_sync_id(kv, one)
            live.add(one)
        elif kind == "remove":
            remove_sync_id(kv, one)
            live.discard(one)
        else:
            flush_trie(kv)
            assert_trie_is(kv, live)
    flush_trie(kv)
    assert_trie_is(kv, live)
    # The same as building the final set in one go.
    assert list(kv.scan(T_TRIE)) == list(store_of_ids(sorted(live)).scan(T_TRIE))


@settings(max_examples=100, deadline=None)
@given(ids=id_sets, seed=st.integers(0, 1000), flush_every=st.integers(0, 7))
def test_same_set_same_root(ids: set[bytes], seed: int, flush_every: int) -> None:
    shuffled = sorted(ids)
    random.Random(seed).shuffle(shuffled)
    one, other = store_of_ids(sorted(ids)), store_of_ids(shuffled, flush_every)
    assert trie_root(one) == trie_root(other)
    assert list(one.scan(T_TRIE)) == list(other.scan(T_TRIE))


@settings(max_examples=100, deadline=None)
@given(a=id_sets, b=id_sets)
def test_different_sets_different_roots(a: set[bytes], b: set[bytes]) -> None:
    if a == b:
        return
    assert trie_root(store_of_ids(a)).hash != trie_root(store_of_ids(b)).hash


# ---------------------------------------------------------------------------------------------- diff walk


def diff_walk(ours: MemoryKV, theirs: MemoryKV) -> tuple[set[bytes], int]:
    """How diff sync uses the trie: compare a node on both sides and descend only into children whose
    hashes differ; at a differing leaf bucket, list both sides' ids. Each node of `theirs` is checked as a
    peer's answer would be. Returns the ids in exactly one store and how many nodes were compared."""
    found: set[bytes] = set()
    visited = 0
    pending = [b""]
    while pending:
        prefix = pending.pop()
        visited += 1
        mine, peer = trie_node(ours, prefix), trie_node(theirs, prefix)
        if mine.hash == peer.hash:
            continue
        if len(prefix) == LEAF_PREFIX_BYTES:
            their_ids = sync_ids_under(theirs, prefix, limit=10_000)
            assert check_leaf_ids(prefix, peer.count, peer.hash, their_ids) is None
            found |= set(sync_ids_under(ours, prefix, limit=10_000)) ^ set(their_ids)
            continue
        assert check_interior_node(peer) is None
        my_children = {c.byte: c.hash for c in mine.children}
        their_children = {c.byte: c.hash for c in peer.children}
        for byte in sorted(my_children.keys() | their_children.keys()):
            if my_children.get(byte) != their_children.get(byte):
                pending.append(prefix + bytes([byte]))
    return found, visited


@settings(max_examples=100, deadline=None)
@given(common=id_sets, only_a=id_sets, only_b=id_sets)
def test_walk_finds_exactly_the_symmetric_difference(
    common: set[bytes], only_a: set[bytes], only_b: set[bytes]
) -> None:
    a, b = common | only_a, common | only_b
    found, visited = diff_walk(store_of_ids(a), store_of_ids(b))
    assert found == a ^ b
    if a == b:
        assert visited == 1  # equal roots: nothing to descend into


def test_walk_descends_only_into_differing_subtrees() -> None:
    rng = random.Random(5)
    common = {sid(ts, rng.randbytes(20), 1, 1) for ts in range(1000, 1400) for _ in range(3)}
    extra = sid(1200, rng.randbytes(20), 2, 1)
    found, visited = diff_walk(store_of_ids(common), store_of_ids(common | {extra}))
    assert found == {extra}
    # One path from the root to the leaf, plus each level's differing child only.
    assert visited == LEAF_PREFIX_BYTES + 1


# ---------------------------------------------------------------------------------------------- reads


def test_sync_ids_under_pages_and_prefixes() -> None:
    rng = random.Random(1)
    ids = sorted({sid(ts, rng.randbytes(20), 1, 1) for ts in (5, 6, 7) for _ in range(20)})
    kv = store_of_ids(ids)
    assert sync_ids_under(kv, b"", limit=10_000) == ids
    assert sync_ids_under(kv, b"", limit=7) == ids[:7]
    assert sync_ids_under(kv, b"", after=ids[6], limit=7) == ids[7:14]
    six = (6).to_bytes(4, "big")
    under_six = [i for i in ids if i.startswith(six)]
    assert sync_ids_under(kv, six, limit=100) == under_six
    assert sync_ids_under(kv, six, after=under_six[3], limit=100) == under_six[4:]
    # An `after` outside the prefix: before it lists from the start, beyond it lists nothing.
    assert sync_ids_under(kv, six, after=ids[0], limit=100) == under_six
    assert sync_ids_under(kv, six, after=ids[-1], limit=100) == []
    assert sync_ids_under(kv, ids[5], limit=100) == [ids[5]]
    assert has_sync_id(kv, ids[0]) and not has_sync_id(kv, ids[0][:-1] + b"\x09")
    assert not has_sync_id(kv, b"short")


@pytest.mark.parametrize(
    "call",
    [
        lambda kv: sync_ids_under(kv, bytes(34), limit=1),
        lambda kv: sync_ids_under(kv, b"", limit=0),
        lambda kv: sync_ids_under(kv, b"", limit=10_001),
        lambda kv: sync_ids_under(kv, b"", after=bytes(34), limit=1),
        lambda kv: trie_node(kv, bytes(6)),
        lambda kv: load_by_sync_id(kv, bytes(32)),
        lambda kv: add_sync_id(kv, bytes(32)),
        lambda kv: remove_sync_id(kv, bytes(34)),
    ],
)
def test_bad_parameters_are_invalid_param(call: Callable[[MemoryKV], object]) -> None:
    with pytest.raises(HubError) as exc:
        call(MemoryKV())
    assert exc.value.code == "bad_request.invalid_param"


# ---------------------------------------------------------------------------------------------- peer checks


def test_check_interior_node_accepts_real_nodes() -> None:
    rng = random.Random(2)
    kv = store_of_ids({sid(ts, rng.randbytes(20), 1, 1) for ts in range(0, 70_000, 333)})
    for prefix, node in persisted(kv).items():
        if len(prefix) < LEAF_PREFIX_BYTES:
            assert check_interior_node(node) is None, prefix
    assert check_interior_node(TrieNode(b"\x01\x02", 0, EMPTY_HASH, ())) is None


def _good_node() -> TrieNode:
    children = (TrieChild(3, 2, h20(b"x")), TrieChild(9, 5, h20(b"y")))
    return TrieNode(b"\x01\x02", 7, interior_hash(children), children)


def _rehashed(children: tuple[TrieChild, ...]) -> TrieNode:
    """A node whose count is right for `children` (the hash cannot be: they do not encode), so only the
    children are at fault."""
    return TrieNode(b"\x01\x02", sum(c.count for c in children), h20(b"whatever"), children)


BAD_NODES: dict[str, tuple[TrieNode, str]] = {
    "leaf prefix": (replace(_good_node(), prefix=b"\x01" * 5), "not an interior node"),
    "too long prefix": (replace(_good_node(), prefix=b"\x01" * 9), "not an interior node"),
    "unsorted": (_rehashed((TrieChild(9, 5, h20(b"y")), TrieChild(3, 2, h20(b"x")))), "strictly increasing"),
    "duplicate byte": (
        _rehashed((TrieChild(3, 2, h20(b"x")), TrieChild(3, 5, h20(b"y")))),
        "strictly increasing",
    ),
    "byte too big": (_rehashed((TrieChild(3, 2, h20(b"x")), TrieChild(256, 5, h20(b"y")))), "out of range"),
    "negative byte": (_rehashed((TrieChild(-1, 2, h20(b"x")),)), "out of range"),
    "zero count": (_rehashed((TrieChild(3, 0, h20(b"x")), TrieChild(9, 5, h20(b"y")))), "has count 0"),
    "huge count": (_rehashed((TrieChild(3, 2**32, h20(b"x")),)), "has count"),
    "short child hash": (_rehashed((TrieChild(3, 2, b"\x01" * 19),)), "19 bytes"),
    "count not the sum": (replace(_good_node(), count=8), "not the sum"),
    "wrong hash": (replace(_good_node(), hash=h20(b"z")), "hash does not match"),
    "short hash": (replace(_good_node(), hash=_good_node().hash[:19]), "hash does not match"),
    "empty with count": (TrieNode(b"", 1, EMPTY_HASH, ()), "count 0 and the empty hash"),
    "empty with hash": (TrieNode(b"", 0, h20(b""), ()), "count 0 and the empty hash"),
}


@pytest.mark.parametrize("name", list(BAD_NODES))
def test_check_interior_node_rejects(name: str) -> None:
    node, reason = BAD_NODES[name]
    assert check_interior_node(_good_node()) is None
    problem = check_interior_node(node)
    assert problem is not None and reason in problem, problem


def _leaf() -> tuple[bytes, list[bytes]]:
    prefix = bytes.fromhex("0000000510")
    return prefix, sorted(prefix + bytes([i]) * 28 for i in (1, 2, 3))


BAD_LEAVES: dict[str, tuple[Callable[[bytes, list[bytes]], tuple[bytes, int, bytes, list[bytes]]], str]] = {
    "interior prefix": (lambda p, ids: (p[:4], 3, leaf_hash(ids), ids), "not a leaf bucket"),
    "short id": (lambda p, ids: (p, 3, leaf_hash(ids), [ids[0], ids[1][:-1], ids[2]]), "32 bytes"),
    "id outside prefix": (
        lambda p, ids: (p, 3, leaf_hash(ids), [*ids[:2], b"\x01" + ids[2][1:]]),
        "not under prefix",
    ),
    "unsorted": (lambda p, ids: (p, 3, leaf_hash(ids), [ids[1], ids[0], ids[2]]), "strictly increasing"),
    "duplicate": (lambda p, ids: (p, 3, leaf_hash(ids), [ids[0], ids[0], ids[2]]), "strictly increasing"),
    "missing id": (lambda p, ids: (p, 3, leaf_hash(ids), ids[:2]), "2 ids listed but the bucket counts 3"),
    "extra count": (lambda p, ids: (p, 4, leaf_hash(ids), ids), "bucket counts 4"),
    "wrong hash": (lambda p, ids: (p, 3, leaf_hash(ids[:2]), ids), "do not hash"),
    "swapped id": (lambda p, ids: (p, 3, leaf_hash(ids), [*ids[:2], ids[2][:-1] + b"\xff"]), "do not hash"),
}


@pytest.mark.parametrize("name", list(BAD_LEAVES))
def test_check_leaf_ids_rejects(name: str) -> None:
    prefix, ids = _leaf()
    assert check_leaf_ids(prefix, 3, leaf_hash(ids), ids) is None
    assert check_leaf_ids(prefix, 0, EMPTY_HASH, []) is None  # an empty bucket is consistent too
    make, reason = BAD_LEAVES[name]
    problem = check_leaf_ids(*make(prefix, ids))
    assert problem is not None and reason in problem, problem


# ---------------------------------------------------------------------------------------------- cost


class CountingKV(MemoryKV):
    """Counts writes of trie records and bucket scans."""

    def __init__(self) -> None:
        super().__init__()
        self.trie_writes = 0

    def put(self, key: bytes, value: bytes) -> None:
        if key.startswith(T_TRIE):
            self.trie_writes += 1
        super().put(key, value)


def test_flushing_a_second_of_500_ids_recomputes_at_most_256_buckets() -> None:
    rng = random.Random(3)
    kv = CountingKV()
    for round_ in range(2):
        kv.trie_writes = 0
        ids = [sid(BASE, rng.randbytes(20), rng.randrange(1, 1000), 1) for _ in range(500)]
        for one in ids:
            add_sync_id(kv, one)
        buckets = flush_trie(kv)
        assert buckets == len({i[:LEAF_PREFIX_BYTES] for i in ids}) <= 256
        # Each bucket once, then each of the five ancestors once: not 500 x depth.
        assert kv.trie_writes <= buckets + LEAF_PREFIX_BYTES
        assert trie_root(kv).count == 500 * (round_ + 1)


def test_reflushing_an_unchanged_bucket_writes_nothing() -> None:
    kv = CountingKV()
    one = sid(BASE, b"\x05" * 20, 1, 1)
    add_sync_id(kv, one)
    flush_trie(kv)
    add_sync_id(kv, one)  # already there: the bucket is dirty but unchanged
    kv.trie_writes = 0
    assert flush_trie(kv) == 1
    assert kv.trie_writes == 0
    assert_trie_is(kv, {one})


# ---------------------------------------------------------------------------------------------- merges


def register(kv: MemoryKV, fid: int, *keys: Ed25519PrivateKey) -> None:
    for e in make_account_events(fid, [public_key_bytes(k) for k in keys], block_timestamp=NOW_S):
        merge_onchain_event(kv, e, now_ms=NOW_MS)


@pytest.fixture
def kv() -> MemoryKV:
    """A store with the sync trie enabled (fresh: nothing to index), fid 1 (keys A, B) and fid 2 (key C)."""
    store = MemoryKV()
    assert ensure_sync_trie(store) == 0
    assert store.get(META_SYNC_TRIE_VERSION) is not None
    register(store, 1, KEY_A, KEY_B)
    register(store, 2, KEY_C)
    return store


def stored_messages(kv: MemoryKV) -> list[pb.Message]:
    return [pb.Message.FromString(raw) for _, raw in kv.scan(T_MSG)]


def assert_synced(kv: MemoryKV) -> None:
    """After a flush: T_SYNC is the stored messages' ids, the trie is the model's and a rebuild's."""
    flush_trie(kv)
    ids = {sync_id_of(m) for m in stored_messages(kv)}
    assert_trie_is(kv, ids)
    for m in stored_messages(kv):
        assert load_by_sync_id(kv, sync_id_of(m)) == m
    rebuilt = MemoryKV()
    for k, v in kv.scan(T_MSG):
        rebuilt.put(k, v)
    assert rebuild_sync_trie(rebuilt) == len(ids)
    assert list(rebuilt.scan(T_TRIE)) == list(kv.scan(T_TRIE))
    assert check_consistency(kv) == []


def merge(kv: MemoryKV, m: pb.Message) -> None:
    merge_message(kv, m, now_ms=NOW_MS)


def test_merges_and_crdt_displacement_keep_sync_ids(kv: MemoryKV) -> None:
    target = pb.CastId(fid=2, hash=bytes([5]) * 20)
    add = cast_add(KEY_A, 1, "to be removed", timestamp=BASE + 1)
    follow = link(KEY_A, 1, 2, timestamp=BASE + 2)
    kept = [
        cast_add(KEY_A, 1, "kept", timestamp=BASE),
        reaction(KEY_A, 1, target, timestamp=BASE + 3),
        user_data(KEY_C, 2, pb.USER_DATA_TYPE_BIO, "old", timestamp=BASE + 4),
    ]
    for m in [add, follow, *kept]:
        merge(kv, m)
    assert_synced(kv)
    assert has_sync_id(kv, sync_id_of(add))

    remove = cast_remove(KEY_A, 1, add.hash, timestamp=BASE + 5)
    unfollow = link(KEY_A, 1, 2, remove=True, timestamp=BASE + 6)
    newer_bio = user_data(KEY_C, 2, pb.USER_DATA_TYPE_BIO, "new", timestamp=BASE + 7)
    for m in (remove, unfollow, newer_bio):
        merge(kv, m)  # each displaces one stored message; no flush in between, like one write batch
    assert_synced(kv)
    for gone in (add, follow, kept[2]):
        assert not has_sync_id(kv, sync_id_of(gone))
        assert load_by_sync_id(kv, sync_id_of(gone)) is None
    for here in (remove, unfollow, newer_bio, *kept[:2]):
        assert has_sync_id(kv, sync_id_of(here))
    assert trie_root(kv).count == 5


def test_load_by_sync_id_needs_the_right_type(kv: MemoryKV) -> None:
    m = cast_add(KEY_A, 1, "typed", timestamp=BASE)
    merge(kv, m)
    right = sync_id_of(m)
    assert load_by_sync_id(kv, right) == m
    assert load_by_sync_id(kv, right[:-1] + bytes([pb.MESSAGE_TYPE_CAST_REMOVE])) is None
    assert load_by_sync_id(kv, right[:-1] + b"\xee") is None  # not a stored type


def test_pruning_removes_sync_ids(kv: MemoryKV, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(UNIT_LIMITS, rr.STORE_TYPE_CASTS, (3, 3))
    casts = [cast_add(KEY_A, 1, f"cast {i}", timestamp=BASE + i) for i in range(6)]
    for m in casts:
        merge(kv, m)
    assert_synced(kv)
    assert {sync_id_of(m) for m in casts[3:]} == sync_set(kv)


def test_signer_revocation_removes_sync_ids(kv: MemoryKV) -> None:
    by_a = [cast_add(KEY_A, 1, f"a {i}", timestamp=BASE + i) for i in range(4)]
    by_b = [cast_add(KEY_B, 1, f"b {i}", timestamp=BASE + 10 + i) for i in range(2)]
    for m in [*by_a, *by_b]:
        merge(kv, m)
    flush_trie(kv)
    merge_onchain_event(kv, signer_remove(1, KEY_A), now_ms=NOW_MS)
    assert_synced(kv)
    assert sync_set(kv) == {sync_id_of(m) for m in by_b}


def test_rejected_merge_writes_no_sync_id(kv: MemoryKV) -> None:
    m = cast_add(KEY_A, 1, "once", timestamp=BASE)
    merge(kv, m)
    flush_trie(kv)
    before = kv.items()
    with pytest.raises(HubError):
        merge(kv, m)
    assert kv.items() == before


# ---------------------------------------------------------------------------------------------- migration


def test_ensure_sync_trie_indexes_an_old_database_once(kv: MemoryKV) -> None:
    messages = [cast_add(KEY_A, 1, f"old {i}", timestamp=BASE + i) for i in range(10)]
    messages += [reaction(KEY_C, 2, f"https://example.com/{i}", timestamp=BASE + i) for i in range(5)]
    for m in messages:
        merge(kv, m)
    # What a database written before the trie looks like: messages, no T_SYNC/T_TRIE, no marker.
    for table in (T_SYNC, T_TRIE, T_TRIE_DIRTY):
        for k in [k for k, _ in kv.scan(table)]:
            kv.delete(k)
    kv.delete(META_SYNC_TRIE_VERSION)
    assert check_consistency(kv) == []  # without the marker the trie is not checked
    assert ensure_sync_trie(kv) == len(messages)
    assert ensure_sync_trie(kv) == 0
    assert_synced(kv)


def test_rebuild_replaces_a_wrong_trie(kv: MemoryKV) -> None:
    for i in range(5):
        merge(kv, cast_add(KEY_A, 1, f"c {i}", timestamp=BASE + i))
    flush_trie(kv)
    add_sync_id(kv, sid(BASE, b"\x01" * 20, 1, 1))  # a stray id and a dirty marker
    kv.put(T_TRIE + b"\x09", b"junk")
    assert rebuild_sync_trie(kv) == 5
    assert_synced(kv)


# ---------------------------------------------------------------------------------------------- checker


def _populated() -> MemoryKV:
    store = MemoryKV()
    ensure_sync_trie(store)
    register(store, 1, KEY_A)
    for i in range(6):
        merge(store, cast_add(KEY_A, 1, f"c {i}", timestamp=BASE + i))
    merge(store, link(KEY_A, 1, 2, timestamp=BASE + 7))
    flush_trie(store)
    return store


def _first(kv: MemoryKV, table: bytes) -> bytes:
    return next(k for k, _ in kv.scan(table))


def _retype(kv: MemoryKV) -> None:
    k = _first(kv, T_SYNC)
    kv.delete(k)
    kv.put(k[:-1] + bytes([pb.MESSAGE_TYPE_CAST_REMOVE]), b"")


def _tamper_leaf(kv: MemoryKV) -> None:
    k = next(k for k, _ in kv.scan(T_TRIE) if len(k) == 1 + LEAF_PREFIX_BYTES)
    raw = kv.get(k) or b""
    kv.put(k, raw[:-1] + bytes([raw[-1] ^ 1]))


TRIE_CORRUPTIONS: dict[str, tuple[Callable[[MemoryKV], None], str]] = {
    "sync id missing": (lambda kv: kv.delete(_first(kv, T_SYNC)), "sync id is missing"),
    "sync id of nothing": (
        lambda kv: kv.put(T_SYNC + sid(BASE, b"\x03" * 20, 1, 1), b""),
        "points at a missing",
    ),
    "sync id of another type": (_retype, "says type 2"),
    "sync id of unstored type": (
        lambda kv: kv.put(T_SYNC + sid(BASE, b"\x03" * 20, 1, 99), b""),
        "not stored",
    ),
    "short sync id": (lambda kv: kv.put(T_SYNC + b"\x01\x02", b""), "has 2 bytes"),
    "dirty marker left": (lambda kv: kv.put(T_TRIE_DIRTY + b"\x00" * 5, b""), "still marked dirty"),
    "leaf hash changed": (_tamper_leaf, "a rebuild gives"),
    "root missing": (lambda kv: kv.delete(T_TRIE), "sync trie node 0x is missing"),
    "stale node": (lambda kv: kv.put(T_TRIE + b"\xee\xee", b"\x00" * 28), "stale"),
    "long trie key": (lambda kv: kv.put(T_TRIE + b"\x00" * 6, b""), "6-byte prefix"),
    "malformed record": (lambda kv: kv.put(T_TRIE, b"\x01"), "malformed record"),
}


@pytest.mark.parametrize("name", list(TRIE_CORRUPTIONS))
def test_checker_reports_trie_corruption(name: str) -> None:
    corrupt, expected = TRIE_CORRUPTIONS[name]
    kv = _populated()
    assert check_consistency(kv) == []
    corrupt(kv)
    problems = check_consistency(kv)
    assert any(expected in p for p in problems), problems
    # A database that predates the trie is not held to it.
    kv.delete(META_SYNC_TRIE_VERSION)
    assert not any("sync" in p for p in check_consistency(kv))
