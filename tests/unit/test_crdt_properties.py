"""Property tests of the merge rules: order independence, agreement with a small model, pruning keeps the newest.

Signing is the slow part, so every message is built and validated once at import; hypothesis only picks
subsets (with repeats, which exercise duplicates) and arrival orders.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.crdt import (
    UNIT_LIMITS,
    MemoryKV,
    fid_count,
    flush_trie,
    merge_message,
    merge_onchain_event,
    message_count,
    store_count,
)
from protocols.crdt._keys import T_EVENT, T_META, T_MSG, read_u64
from protocols.errors import HubError
from protocols.messages import (
    blake3_160,
    farcaster_now,
    make_account_events,
    public_key_bytes,
    sign_eth_address_claim,
    sign_message_data,
    validate_message,
)
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr
from tests.factories import (
    DEVNET,
    cast_add,
    cast_remove,
    data,
    link,
    new_key,
    reaction,
    user_data,
)

NOW_MS = time.time_ns() // 1_000_000
NOW_S = NOW_MS // 1000
T = farcaster_now() - 100_000

KEY_A = new_key(seed=301)
KEY_B = new_key(seed=302)
KEY_C = new_key(seed=303)

SETUP = [
    *make_account_events(1, [public_key_bytes(KEY_A), public_key_bytes(KEY_B)], block_timestamp=NOW_S),
    *make_account_events(2, [public_key_bytes(KEY_C)], block_timestamp=NOW_S),
]

REMOVES = {
    pb.MESSAGE_TYPE_CAST_REMOVE,
    pb.MESSAGE_TYPE_REACTION_REMOVE,
    pb.MESSAGE_TYPE_LINK_REMOVE,
    pb.MESSAGE_TYPE_VERIFICATION_REMOVE,
}
STORE = {
    pb.MESSAGE_TYPE_CAST_ADD: rr.STORE_TYPE_CASTS,
    pb.MESSAGE_TYPE_CAST_REMOVE: rr.STORE_TYPE_CASTS,
    pb.MESSAGE_TYPE_REACTION_ADD: rr.STORE_TYPE_REACTIONS,
    pb.MESSAGE_TYPE_REACTION_REMOVE: rr.STORE_TYPE_REACTIONS,
    pb.MESSAGE_TYPE_LINK_ADD: rr.STORE_TYPE_LINKS,
    pb.MESSAGE_TYPE_LINK_REMOVE: rr.STORE_TYPE_LINKS,
    pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS: rr.STORE_TYPE_VERIFICATIONS,
    pb.MESSAGE_TYPE_VERIFICATION_REMOVE: rr.STORE_TYPE_VERIFICATIONS,
    pb.MESSAGE_TYPE_USER_DATA_ADD: rr.STORE_TYPE_USER_DATA,
}


# ---------------------------------------------------------------------------------------------- model


def slot(m: pb.Message) -> tuple[object, ...]:
    """The conflict key of a message, written independently of the store's key encoding."""
    d = m.data
    t = d.type
    if t == pb.MESSAGE_TYPE_CAST_ADD:
        key: object = bytes(m.hash)
    elif t == pb.MESSAGE_TYPE_CAST_REMOVE:
        key = bytes(d.cast_remove_body.target_hash)
    elif t in (pb.MESSAGE_TYPE_REACTION_ADD, pb.MESSAGE_TYPE_REACTION_REMOVE):
        b = d.reaction_body
        target = (
            b.target_url
            if b.WhichOneof("target") == "target_url"
            else (b.target_cast_id.fid, b.target_cast_id.hash)
        )
        key = (b.type, target)
    elif t in (pb.MESSAGE_TYPE_LINK_ADD, pb.MESSAGE_TYPE_LINK_REMOVE):
        key = (d.link_body.type, d.link_body.target_fid)
    elif t == pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS:
        key = bytes(d.verification_add_address_body.address)
    elif t == pb.MESSAGE_TYPE_VERIFICATION_REMOVE:
        key = bytes(d.verification_remove_body.address)
    else:
        key = d.user_data_body.type
    return (d.fid, STORE[t], key)


def rank(m: pb.Message) -> tuple[object, ...]:
    """Farcaster's conflict order: casts remove-wins, everything else (timestamp, remove beats add, hash)."""
    d = m.data
    is_remove = d.type in REMOVES
    if STORE[d.type] == rr.STORE_TYPE_CASTS:
        return (is_remove, d.timestamp, bytes(m.hash))
    return (d.timestamp, is_remove, bytes(m.hash))


def winners(messages: Sequence[pb.Message]) -> dict[tuple[object, ...], pb.Message]:
    best: dict[tuple[object, ...], pb.Message] = {}
    for m in messages:
        k = slot(m)
        if k not in best or rank(m) > rank(best[k]):
            best[k] = m
    return best


def age(m: pb.Message) -> tuple[int, bytes]:
    """Pruning order: oldest first by (timestamp, hash)."""
    return (m.data.timestamp, bytes(m.hash))


# ---------------------------------------------------------------------------------------------- harness


def fresh() -> MemoryKV:
    kv = MemoryKV()
    for e in SETUP:
        merge_onchain_event(kv, e, now_ms=NOW_MS)
    return kv


def run(messages: Sequence[pb.Message], allowed: frozenset[str]) -> MemoryKV:
    kv = fresh()
    for m in messages:
        try:
            merge_message(kv, m, now_ms=NOW_MS)
        except HubError as e:
            assert e.code in allowed, e
    return kv


def state(kv: MemoryKV) -> list[tuple[bytes, bytes]]:
    """Every key except the event log and meta counters (event ids depend on arrival order).

    The sync trie is flushed first: which buckets are marked dirty depends on what was stored along the
    way (a displaced message marks its bucket), but the flushed trie must not.
    """
    flush_trie(kv)
    return [(k, v) for k, v in kv.items() if not k.startswith((T_EVENT, T_META))]


def stored_hashes(kv: MemoryKV, store: int | None = None) -> set[bytes]:
    out = set()
    for key, raw in kv.scan(T_MSG):
        if store is None or key[9] == store:
            out.add(bytes(pb.Message.FromString(raw).hash))
    return out


def assert_counts(kv: MemoryKV) -> None:
    per: dict[tuple[int, int], int] = {}
    for key, _ in kv.scan(T_MSG):
        k = (read_u64(key[1:9]), key[9])
        per[k] = per.get(k, 0) + 1
    for fid in (1, 2):
        for store in set(STORE.values()):
            assert store_count(kv, fid, store) == per.get((fid, store), 0)
    assert message_count(kv) == sum(per.values())


def valid(m: pb.Message) -> pb.Message:
    return validate_message(m, network=DEVNET, now=farcaster_now())


def reencoded(m: pb.Message, key: Ed25519PrivateKey) -> pb.Message:
    """Equal content, body field first: another message (other hash) with the same timestamp and key."""
    d = m.data
    header = pb.MessageData(type=d.type, fid=d.fid, timestamp=d.timestamp, network=d.network)
    body = pb.MessageData()
    name = d.WhichOneof("body")
    assert name is not None
    getattr(body, name).CopyFrom(getattr(d, name))
    raw = body.SerializeToString() + header.SerializeToString()
    digest = blake3_160(raw)
    return pb.Message(
        hash=digest,
        hash_scheme=pb.HASH_SCHEME_BLAKE3,
        signature=key.sign(digest),
        signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
        signer=public_key_bytes(key),
        data_bytes=raw,
    )


def verification_add(fid: int, ts: int, block_byte: int) -> pb.Message:
    block_hash = bytes([block_byte]) * 32
    address, signature = sign_eth_address_claim(bytes([7]) * 32, fid, block_hash, DEVNET)
    d = data(fid, pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS, ts)
    body = d.verification_add_address_body
    body.address, body.block_hash, body.claim_signature = address, block_hash, signature
    body.protocol = pb.PROTOCOL_ETHEREUM
    return sign_message_data(d, KEY_A)


# ---------------------------------------------------------------------------------------------- pool (a)


def _mixed_pool() -> list[pb.Message]:
    url, url2 = "https://example.com/a", "https://example.com/b"
    c0 = cast_add(KEY_A, 1, "c0", timestamp=T, parent=url, mentions=[2], mentions_positions=[0])
    d0 = cast_add(KEY_C, 2, "d0", timestamp=T + 1, mentions=[1], mentions_positions=[0])
    c1 = cast_add(KEY_B, 1, "c1", timestamp=T + 1, parent=pb.CastId(fid=2, hash=d0.hash))
    c2 = cast_add(KEY_A, 1, "c2", timestamp=T + 2, mentions=[2, 1], mentions_positions=[0, 1])
    c3 = cast_add(KEY_B, 1, "c3", timestamp=T + 6, parent=url)
    d1 = cast_add(KEY_C, 2, "d1", timestamp=T + 4, parent=url)
    target = pb.CastId(fid=2, hash=d0.hash)
    like_url2 = reaction(KEY_C, 2, url2, timestamp=T + 5)
    addr = verification_add(1, T, 9)
    pool = [
        c0,
        c1,
        c2,
        c3,
        d0,
        d1,
        cast_remove(KEY_A, 1, c0.hash, timestamp=T),  # same timestamp as its target
        cast_remove(KEY_B, 1, c1.hash, timestamp=T + 5),
        # Two removes of c1 with one timestamp: the tie is broken by hash. (The hash covers only the data,
        # so the same data signed by another key would be a duplicate, not a second remove.)
        reencoded(cast_remove(KEY_A, 1, c1.hash, timestamp=T + 5), KEY_A),
        cast_remove(KEY_A, 1, bytes([9]) * 20, timestamp=T + 3),  # target never seen
        cast_remove(KEY_A, 1, c3.hash, timestamp=T + 2),  # older than its target: remove-wins all the same
        cast_remove(KEY_C, 2, d1.hash, timestamp=T + 6),
        reaction(KEY_A, 1, target, timestamp=T),
        reaction(KEY_A, 1, target, remove=True, timestamp=T),  # tie: remove beats add
        reaction(KEY_B, 1, target, timestamp=T + 2),
        reaction(KEY_A, 1, target, reaction_type=pb.REACTION_TYPE_RECAST, timestamp=T + 1),
        reaction(KEY_C, 2, target, timestamp=T + 3),
        reaction(KEY_C, 2, target, remove=True, timestamp=T + 2),
        reaction(KEY_A, 1, url2, timestamp=T + 1),
        like_url2,
        reencoded(like_url2, KEY_C),  # same content and timestamp, other hash
        link(KEY_A, 1, 2, timestamp=T),
        link(KEY_A, 1, 2, remove=True, timestamp=T + 1),
        link(KEY_B, 1, 2, timestamp=T + 1),
        link(KEY_A, 1, 2, link_type="block", timestamp=T),
        link(KEY_C, 2, 1, timestamp=T + 2),
        link(KEY_C, 2, 1, remove=True, timestamp=T + 4),
        user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "a", timestamp=T),
        user_data(KEY_B, 1, pb.USER_DATA_TYPE_BIO, "b", timestamp=T),
        user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "c", timestamp=T + 1),
        user_data(KEY_A, 1, pb.USER_DATA_TYPE_DISPLAY, "Name", timestamp=T),
        user_data(KEY_C, 2, pb.USER_DATA_TYPE_DISPLAY, "x", timestamp=T + 3),
        addr,
        verification_add(1, T, 10),  # same address and timestamp, other block hash
        verification_add(1, T + 2, 11),
    ]
    d = data(1, pb.MESSAGE_TYPE_VERIFICATION_REMOVE, T + 1)
    d.verification_remove_body.address = addr.data.verification_add_address_body.address
    d.verification_remove_body.protocol = pb.PROTOCOL_ETHEREUM
    pool.append(sign_message_data(d, KEY_B))
    return [valid(m) for m in pool]


POOL = _mixed_pool()
OK_CODES = frozenset({"bad_request.duplicate", "bad_request.conflict"})


def test_pool_messages_are_distinct_and_conflict_somewhere() -> None:
    assert len({bytes(m.hash) for m in POOL}) == len(POOL)
    assert len(winners(POOL)) < len(POOL) - 8
    assert len({bytes(m.hash) for m in PRUNE_POOL}) == len(PRUNE_POOL)


def two_orders(pool_size: int) -> st.SearchStrategy[tuple[list[int], list[int]]]:
    """A random subset of the pool plus a few repeats (duplicates), in two independent arrival orders."""
    subset = st.tuples(
        st.lists(st.booleans(), min_size=pool_size, max_size=pool_size),
        st.lists(st.integers(0, pool_size - 1), max_size=6),
    ).map(lambda t: [i for i, keep in enumerate(t[0]) if keep] + t[1])
    return subset.flatmap(lambda xs: st.tuples(st.permutations(xs), st.permutations(xs)))


@settings(max_examples=150, deadline=None)
@given(two_orders(len(POOL)))
def test_any_arrival_order_gives_the_same_store(orders: tuple[list[int], list[int]]) -> None:
    first, second = ([POOL[i] for i in order] for order in orders)
    kv1 = run(first, OK_CODES)
    kv2 = run(second, OK_CODES)
    assert state(kv1) == state(kv2)
    assert message_count(kv1) == message_count(kv2)
    assert fid_count(kv1) == fid_count(kv2) == 2

    # The survivors are exactly the model's winners, and the store holds nothing but them: merging
    # only the winners into an empty store gives byte-identical tables and indexes.
    best = winners(first)
    assert stored_hashes(kv1) == {bytes(m.hash) for m in best.values()}
    only_winners = run(sorted(best.values(), key=age), frozenset())
    assert state(only_winners) == state(kv1)
    assert_counts(kv1)


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(len(POOL))), st.lists(st.integers(0, len(POOL) - 1), max_size=4))
def test_whole_pool_in_any_order(order: list[int], repeats: list[int]) -> None:
    messages = [POOL[i] for i in order + repeats]
    kv = run(messages, OK_CODES)
    reference = run(POOL, OK_CODES)
    assert state(kv) == state(reference)
    assert stored_hashes(kv) == {bytes(m.hash) for m in winners(POOL).values()}
    assert_counts(kv)


# ---------------------------------------------------------------------------------------------- pool (b)


def _prune_pool() -> list[pb.Message]:
    """Casts (timestamps may tie; removes strictly newer than their targets) and reactions (distinct
    timestamps within one key): the cases where "keep the newest winners" is well defined."""
    casts = [cast_add(KEY_A, 1, f"p{i}", timestamp=T + ts) for i, ts in enumerate([0, 0, 1, 2, 2, 3, 5, 6])]
    removes = [
        cast_remove(KEY_A, 1, casts[0].hash, timestamp=T + 1),
        cast_remove(KEY_A, 1, casts[3].hash, timestamp=T + 4),
        cast_remove(KEY_B, 1, casts[3].hash, timestamp=T + 7),
        cast_remove(KEY_A, 1, casts[4].hash, timestamp=T + 3),
        cast_remove(KEY_A, 1, casts[7].hash, timestamp=T + 8),
    ]
    x, y, z = (pb.CastId(fid=2, hash=bytes([b]) * 20) for b in (1, 2, 3))
    reactions = [
        reaction(KEY_A, 1, x, timestamp=T),
        reaction(KEY_A, 1, x, remove=True, timestamp=T + 2),
        reaction(KEY_B, 1, x, timestamp=T + 4),
        reaction(KEY_A, 1, y, timestamp=T + 1),
        reaction(KEY_A, 1, y, remove=True, timestamp=T + 3),
        reaction(KEY_A, 1, z, timestamp=T + 2),
        reaction(KEY_A, 1, "https://example.com/z", timestamp=T + 2),
    ]
    return [valid(m) for m in [*casts, *removes, *reactions]]


PRUNE_POOL = _prune_pool()
PRUNE_CODES = frozenset({"bad_request.duplicate", "bad_request.conflict", "bad_request.prunable"})


@settings(max_examples=200, deadline=None)
@given(
    two_orders(len(PRUNE_POOL)),
    st.integers(1, 5),
    st.integers(1, 4),
)
def test_pruning_keeps_the_newest_winners(
    orders: tuple[list[int], list[int]], cast_limit: int, reaction_limit: int
) -> None:
    first, second = ([PRUNE_POOL[i] for i in order] for order in orders)
    limits = {rr.STORE_TYPE_CASTS: cast_limit, rr.STORE_TYPE_REACTIONS: reaction_limit}
    with pytest.MonkeyPatch.context() as mp:
        for store, limit in limits.items():
            mp.setitem(UNIT_LIMITS, store, (limit, limit))
        kv1 = run(first, PRUNE_CODES)
        kv2 = run(second, PRUNE_CODES)
    best = winners(first)
    for store, limit in limits.items():
        in_store = [m for m in best.values() if STORE[m.data.type] == store]
        newest = sorted(in_store, key=age)[-limit:]
        assert stored_hashes(kv1, store) == {bytes(m.hash) for m in newest}
        assert store_count(kv1, 1, store) == min(limit, len(in_store))
    assert state(kv1) == state(kv2)
    assert_counts(kv1)
