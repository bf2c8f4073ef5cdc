"""Merge rules of the message store over MemoryKV: identity, remove-wins casts, last-write-wins stores,
storage limits with pruning, and that a rejected merge writes nothing."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.crdt import (
    UNIT_LIMITS,
    MemoryKV,
    Page,
    casts_by_fid,
    casts_by_mention,
    casts_by_parent,
    fid_count,
    get_cast,
    get_link,
    get_reaction,
    get_signer,
    get_user_data,
    get_verification,
    has_message,
    is_signer_active,
    links_by_fid,
    links_by_target,
    merge_message,
    merge_onchain_event,
    message_count,
    onchain_events,
    reactions_by_fid,
    reactions_by_target,
    signers_by_fid,
    store_count,
    store_limit,
    user_data_by_fid,
    verifications_by_fid,
)
from protocols.crdt._keys import T_MSG, read_u64
from protocols.errors import HubError
from protocols.messages import (
    LEGACY_STORAGE_UNIT_CUTOFF,
    ONE_YEAR_SECONDS,
    blake3_160,
    farcaster_now,
    make_account_events,
    make_signer_event,
    public_key_bytes,
    sign_eth_address_claim,
    sign_message_data,
    validate_message,
)
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr
from tests.factories import (
    DEVNET,
    cast_add,
    cast_remove,
    data,
    link,
    new_key,
    reaction,
    signer_remove,
    user_data,
    verification_remove,
)

NOW_MS = time.time_ns() // 1_000_000
NOW_S = NOW_MS // 1000
#: Message timestamps (Farcaster seconds) are BASE + small offsets: all in the past, all distinct per test.
BASE = farcaster_now() - 100_000

KEY_A = new_key(seed=101)
KEY_B = new_key(seed=102)
KEY_C = new_key(seed=103)
ETH_KEY = bytes([7]) * 32

CASTS = rr.STORE_TYPE_CASTS
REACTIONS = rr.STORE_TYPE_REACTIONS
LINKS = rr.STORE_TYPE_LINKS
USER_DATA = rr.STORE_TYPE_USER_DATA
VERIFICATIONS = rr.STORE_TYPE_VERIFICATIONS
ALL_STORES = (CASTS, REACTIONS, LINKS, USER_DATA, VERIFICATIONS)

MERGE = he.HUB_EVENT_TYPE_MERGE_MESSAGE
PRUNE = he.HUB_EVENT_TYPE_PRUNE_MESSAGE
REVOKE = he.HUB_EVENT_TYPE_REVOKE_MESSAGE
ONCHAIN = he.HUB_EVENT_TYPE_MERGE_ON_CHAIN_EVENT


# ---------------------------------------------------------------------------------------------- helpers


def valid(m: pb.Message) -> pb.Message:
    """Validate like the node does before merging (re-parses `data` from `data_bytes`)."""
    return validate_message(m, network=DEVNET, now=farcaster_now())


def register(
    kv: MemoryKV, fid: int, *keys: Ed25519PrivateKey, units: int = 1, block_timestamp: int = NOW_S
) -> list[oc.OnChainEvent]:
    events = make_account_events(
        fid, [public_key_bytes(k) for k in keys], storage_units=units, block_timestamp=block_timestamp
    )
    for e in events:
        merge_onchain_event(kv, e, now_ms=NOW_MS)
    return events


def merge(kv: MemoryKV, m: pb.Message, now_ms: int = NOW_MS) -> list[he.HubEvent]:
    return merge_message(kv, valid(m), now_ms=now_ms)


def rejected(kv: MemoryKV, m: pb.Message, code: str, now_ms: int = NOW_MS) -> None:
    """The merge fails with `code` and leaves every key of the store untouched."""
    before = kv.items()
    with pytest.raises(HubError) as exc:
        merge(kv, m, now_ms)
    assert exc.value.code == code, exc.value
    assert kv.items() == before


def onchain_rejected(kv: MemoryKV, event: oc.OnChainEvent, code: str) -> None:
    before = kv.items()
    with pytest.raises(HubError) as exc:
        merge_onchain_event(kv, event, now_ms=NOW_MS)
    assert exc.value.code == code, exc.value
    assert kv.items() == before


def stored(kv: MemoryKV, fid: int | None = None, store: int | None = None) -> list[pb.Message]:
    """Messages in the primary table (optionally of one fid / store), in key order."""
    out = []
    for key, raw in kv.scan(T_MSG):
        if fid is not None and read_u64(key[1:9]) != fid:
            continue
        if store is not None and key[9] != store:
            continue
        out.append(pb.Message.FromString(raw))
    return out


def hashes(messages: list[pb.Message]) -> list[bytes]:
    return [bytes(m.hash) for m in messages]


def check_counts(kv: MemoryKV) -> None:
    """Per-store counters and the global message count equal what the primary table holds."""
    per: Counter[tuple[int, int]] = Counter()
    for key, _ in kv.scan(T_MSG):
        per[(read_u64(key[1:9]), key[9])] += 1
    for (fid, store), n in per.items():
        assert store_count(kv, fid, store) == n
    for fid in {f for f, _ in per} | {1, 2, 3}:
        for store in ALL_STORES:
            assert store_count(kv, fid, store) == per.get((fid, store), 0)
    assert message_count(kv) == sum(per.values())


def types(events: list[he.HubEvent]) -> list[int]:
    return [e.type for e in events]


def not_found(fn: Callable[[], object]) -> None:
    with pytest.raises(HubError) as exc:
        fn()
    assert exc.value.code == "not_found"


def signed_raw(raw: bytes, key: Ed25519PrivateKey) -> pb.Message:
    """A message over exactly `raw` as data_bytes (for non-canonical but valid encodings)."""
    digest = blake3_160(raw)
    return pb.Message(
        hash=digest,
        hash_scheme=pb.HASH_SCHEME_BLAKE3,
        signature=key.sign(digest),
        signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
        signer=public_key_bytes(key),
        data_bytes=raw,
    )


def reencoded(m: pb.Message, key: Ed25519PrivateKey) -> pb.Message:
    """The same MessageData with the body field first: a distinct message (other hash) with equal content."""
    d = m.data
    header = pb.MessageData(type=d.type, fid=d.fid, timestamp=d.timestamp, network=d.network)
    body = pb.MessageData()
    name = d.WhichOneof("body")
    assert name is not None
    getattr(body, name).CopyFrom(getattr(d, name))
    return signed_raw(body.SerializeToString() + header.SerializeToString(), key)


def verification_add(
    key: Ed25519PrivateKey, fid: int, *, timestamp: int, block_hash: bytes = bytes([9]) * 32
) -> pb.Message:
    address, signature = sign_eth_address_claim(ETH_KEY, fid, block_hash, DEVNET)
    d = data(fid, pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS, timestamp)
    body = d.verification_add_address_body
    body.address = address
    body.block_hash = block_hash
    body.claim_signature = signature
    body.protocol = pb.PROTOCOL_ETHEREUM
    return sign_message_data(d, key)


ETH_ADDRESS = sign_eth_address_claim(ETH_KEY, 1, bytes([9]) * 32, DEVNET)[0]


@pytest.fixture
def kv() -> MemoryKV:
    """A store with fid 1 (signers A and B) and fid 2 (signer C), one storage unit each."""
    store = MemoryKV()
    register(store, 1, KEY_A, KEY_B)
    register(store, 2, KEY_C)
    return store


# ---------------------------------------------------------------------------------------------- identity


def test_unregistered_fid_is_unknown_fid() -> None:
    rejected(MemoryKV(), cast_add(KEY_A, 1, timestamp=BASE), "bad_request.unknown_fid")


def test_unknown_signer(kv: MemoryKV) -> None:
    rejected(kv, cast_add(KEY_C, 1, timestamp=BASE), "bad_request.unknown_signer")  # C is fid 2's key
    rejected(kv, cast_add(new_key(seed=999), 1, timestamp=BASE), "bad_request.unknown_signer")
    assert hashes(stored(kv)) == []


def test_account_events_register_signers_and_storage(kv: MemoryKV) -> None:
    assert fid_count(kv) == 2
    assert is_signer_active(kv, 1, public_key_bytes(KEY_A))
    assert is_signer_active(kv, 1, public_key_bytes(KEY_B))
    assert not is_signer_active(kv, 1, public_key_bytes(KEY_C))
    assert bytes(get_signer(kv, 1, public_key_bytes(KEY_A)).signer_event_body.key) == public_key_bytes(KEY_A)
    assert len(signers_by_fid(kv, 1, Page())[0]) == 2
    assert store_limit(kv, 1, CASTS, NOW_S) == UNIT_LIMITS[CASTS][1]


def test_signer_remove_revokes_every_message_of_that_key(kv: MemoryKV) -> None:
    url = "https://example.com/topic"
    target = pb.CastId(fid=2, hash=bytes([5]) * 20)
    by_a = [
        cast_add(KEY_A, 1, "reply", timestamp=BASE + 1, parent=url, mentions=[2], mentions_positions=[0]),
        cast_add(KEY_A, 1, "plain", timestamp=BASE + 2),
        cast_remove(KEY_A, 1, bytes([3]) * 20, timestamp=BASE + 3),
        reaction(KEY_A, 1, target, timestamp=BASE + 4),
        link(KEY_A, 1, 2, timestamp=BASE + 5),
        user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "hi", timestamp=BASE + 6),
        verification_remove(KEY_A, 1, bytes([4]) * 20, timestamp=BASE + 7),
    ]
    by_b = cast_add(KEY_B, 1, "from b", timestamp=BASE + 8, parent=url)
    by_c = cast_add(KEY_C, 2, "other fid", timestamp=BASE + 9, mentions=[2], mentions_positions=[0])
    for m in [*by_a, by_b, by_c]:
        merge(kv, m)
    assert message_count(kv) == 9

    events = merge_onchain_event(kv, signer_remove(1, KEY_A), now_ms=NOW_MS)

    assert types(events) == [ONCHAIN] + [REVOKE] * len(by_a)
    assert sorted(bytes(e.revoke_message_body.message.hash) for e in events[1:]) == sorted(hashes(by_a))
    assert all(e.revoke_message_body.message.signer == public_key_bytes(KEY_A) for e in events[1:])
    assert [e.id for e in events] == sorted({e.id for e in events})
    # Every index of the revoked messages is gone; other signers' messages are untouched.
    not_found(lambda: get_cast(kv, 1, by_a[0].hash))
    not_found(lambda: get_reaction(kv, 1, pb.REACTION_TYPE_LIKE, target))
    not_found(lambda: get_link(kv, 1, "follow", 2))
    not_found(lambda: get_user_data(kv, 1, pb.USER_DATA_TYPE_BIO))
    assert hashes(casts_by_fid(kv, 1, Page())[0]) == [bytes(by_b.hash)]
    assert hashes(casts_by_parent(kv, url, Page())[0]) == [bytes(by_b.hash)]
    assert hashes(casts_by_mention(kv, 2, Page())[0]) == [bytes(by_c.hash)]
    assert reactions_by_target(kv, target, None, Page())[0] == []
    assert reactions_by_fid(kv, 1, None, Page())[0] == []
    assert links_by_fid(kv, 1, None, Page())[0] == []
    assert links_by_target(kv, 2, None, Page())[0] == []
    assert user_data_by_fid(kv, 1, Page())[0] == []
    assert not any(has_message(kv, 1, m.hash) for m in by_a)
    assert get_cast(kv, 1, by_b.hash).hash == by_b.hash
    assert get_cast(kv, 2, by_c.hash).hash == by_c.hash
    for store in (REACTIONS, LINKS, USER_DATA, VERIFICATIONS):
        assert store_count(kv, 1, store) == 0
    assert store_count(kv, 1, CASTS) == 1
    assert hashes(stored(kv)) == hashes([by_b, by_c])  # key order: fid 1 before fid 2
    check_counts(kv)
    # The key is no longer usable, not even to resubmit what it signed before.
    assert not is_signer_active(kv, 1, public_key_bytes(KEY_A))
    not_found(lambda: get_signer(kv, 1, public_key_bytes(KEY_A)))
    rejected(kv, by_a[1], "bad_request.unknown_signer")
    rejected(kv, cast_add(KEY_A, 1, "new", timestamp=BASE + 20), "bad_request.unknown_signer")
    merge(kv, cast_add(KEY_B, 1, "b still works", timestamp=BASE + 21))


def test_signer_remove_without_messages_emits_only_the_onchain_event(kv: MemoryKV) -> None:
    merge(kv, cast_add(KEY_B, 1, timestamp=BASE))
    events = merge_onchain_event(kv, signer_remove(1, KEY_A), now_ms=NOW_MS)
    assert types(events) == [ONCHAIN]
    assert message_count(kv) == 1


def test_removed_key_readded_stays_removed(kv: MemoryKV) -> None:
    merge_onchain_event(kv, signer_remove(1, KEY_A), now_ms=NOW_MS)
    readd = make_signer_event(1, public_key_bytes(KEY_A), add=True, block_timestamp=NOW_S + 10)
    assert types(merge_onchain_event(kv, readd, now_ms=NOW_MS)) == [ONCHAIN]
    assert not is_signer_active(kv, 1, public_key_bytes(KEY_A))
    not_found(lambda: get_signer(kv, 1, public_key_bytes(KEY_A)))
    assert [bytes(e.signer_event_body.key) for e in signers_by_fid(kv, 1, Page())[0]] == [
        public_key_bytes(KEY_B)
    ]
    rejected(kv, cast_add(KEY_A, 1, timestamp=BASE), "bad_request.unknown_signer")


def test_signer_remove_of_never_added_key_blocks_a_later_add(kv: MemoryKV) -> None:
    key = new_key(seed=555)
    merge_onchain_event(
        kv, make_signer_event(1, public_key_bytes(key), add=False, block_timestamp=NOW_S), now_ms=NOW_MS
    )
    merge_onchain_event(
        kv, make_signer_event(1, public_key_bytes(key), add=True, block_timestamp=NOW_S), now_ms=NOW_MS
    )
    assert not is_signer_active(kv, 1, public_key_bytes(key))


def test_signer_added_later_becomes_active(kv: MemoryKV) -> None:
    key = new_key(seed=556)
    rejected(kv, cast_add(key, 1, timestamp=BASE), "bad_request.unknown_signer")
    merge_onchain_event(
        kv, make_signer_event(1, public_key_bytes(key), add=True, block_timestamp=NOW_S), now_ms=NOW_MS
    )
    merge(kv, cast_add(key, 1, timestamp=BASE))


def test_duplicate_onchain_event(kv: MemoryKV) -> None:
    event = make_signer_event(1, public_key_bytes(new_key(seed=557)), add=True, block_timestamp=NOW_S)
    merge_onchain_event(kv, event, now_ms=NOW_MS)
    onchain_rejected(kv, event, "bad_request.duplicate")
    # Same transaction hash and log index is the identity of an event, whatever the body says.
    other = oc.OnChainEvent()
    other.CopyFrom(event)
    other.signer_event_body.event_type = oc.SIGNER_EVENT_TYPE_REMOVE
    onchain_rejected(kv, other, "bad_request.duplicate")
    assert is_signer_active(kv, 1, bytes(event.signer_event_body.key))
    # A different log index of the same transaction is another event.
    third = oc.OnChainEvent()
    third.CopyFrom(event)
    third.log_index += 1
    merge_onchain_event(kv, third, now_ms=NOW_MS)


def test_id_register_twice_is_duplicate(kv: MemoryKV) -> None:
    again = make_account_events(3, [], block_timestamp=NOW_S)[0]
    again.fid = 1
    onchain_rejected(kv, again, "bad_request.duplicate")
    assert fid_count(kv) == 2


def test_signer_event_for_unregistered_fid(kv: MemoryKV) -> None:
    event = make_signer_event(77, public_key_bytes(KEY_A), add=True, block_timestamp=NOW_S)
    onchain_rejected(kv, event, "bad_request.unknown_fid")


def test_malformed_onchain_event_is_rejected_without_writes(kv: MemoryKV) -> None:
    event = make_signer_event(1, b"short", add=True, block_timestamp=NOW_S)
    onchain_rejected(kv, event, "bad_request.invalid_param")


def test_onchain_events_are_recorded_in_chain_order(kv: MemoryKV) -> None:
    events, _ = onchain_events(kv, 1, 0, Page())
    assert sorted(e.type for e in events) == sorted(
        [oc.EVENT_TYPE_ID_REGISTER, oc.EVENT_TYPE_STORAGE_RENT, oc.EVENT_TYPE_SIGNER, oc.EVENT_TYPE_SIGNER]
    )
    signers, _ = onchain_events(kv, 1, oc.EVENT_TYPE_SIGNER, Page())
    assert [e.log_index for e in signers] == [2, 3]


def test_no_storage_units() -> None:
    kv = MemoryKV()
    reg, _rent, signer = make_account_events(5, [public_key_bytes(KEY_A)], block_timestamp=NOW_S)
    merge_onchain_event(kv, reg, now_ms=NOW_MS)
    merge_onchain_event(kv, signer, now_ms=NOW_MS)
    assert store_limit(kv, 5, CASTS, NOW_S) == 0
    rejected(kv, cast_add(KEY_A, 5, timestamp=BASE), "bad_request.no_storage")


def test_expired_storage_is_no_storage() -> None:
    kv = MemoryKV()
    bought = LEGACY_STORAGE_UNIT_CUTOFF + 1000  # 2024 units: one year
    register(kv, 5, KEY_A, block_timestamp=bought)
    expiry_ms = (bought + ONE_YEAR_SECONDS) * 1000
    merge(kv, cast_add(KEY_A, 5, timestamp=BASE), now_ms=expiry_ms - 1000)
    rejected(kv, cast_add(KEY_A, 5, timestamp=BASE + 1), "bad_request.no_storage", now_ms=expiry_ms)


def test_store_limits_by_unit_kind_and_expiry() -> None:
    kv = MemoryKV()
    legacy = LEGACY_STORAGE_UNIT_CUTOFF - 1000
    register(kv, 5, KEY_A, units=2, block_timestamp=legacy)
    register(kv, 6, KEY_A, units=3, block_timestamp=LEGACY_STORAGE_UNIT_CUTOFF)
    for store in ALL_STORES:
        assert store_limit(kv, 5, store, legacy) == 2 * UNIT_LIMITS[store][0]
        assert store_limit(kv, 6, store, LEGACY_STORAGE_UNIT_CUTOFF) == 3 * UNIT_LIMITS[store][1]
    # Legacy units last two years, 2024 units one; expiry is exclusive.
    assert store_limit(kv, 5, CASTS, legacy + 2 * ONE_YEAR_SECONDS - 1) > 0
    assert store_limit(kv, 5, CASTS, legacy + 2 * ONE_YEAR_SECONDS) == 0
    assert store_limit(kv, 6, CASTS, LEGACY_STORAGE_UNIT_CUTOFF + ONE_YEAR_SECONDS - 1) > 0
    assert store_limit(kv, 6, CASTS, LEGACY_STORAGE_UNIT_CUTOFF + ONE_YEAR_SECONDS) == 0


def test_identity_checks_come_before_duplicate_check(kv: MemoryKV) -> None:
    m = cast_add(KEY_A, 1, timestamp=BASE)
    merge(kv, m)
    rejected(kv, m, "bad_request.duplicate")
    merge_onchain_event(kv, signer_remove(1, KEY_A), now_ms=NOW_MS)
    rejected(kv, m, "bad_request.unknown_signer")


# ---------------------------------------------------------------------------------------------- casts


def test_cast_add_merges_and_indexes(kv: MemoryKV) -> None:
    parent = pb.CastId(fid=2, hash=bytes([8]) * 20)
    m = cast_add(
        KEY_A, 1, "hi", timestamp=BASE, parent=parent, mentions=[2, 2, 3], mentions_positions=[0, 0, 1]
    )
    events = merge(kv, m)
    assert types(events) == [MERGE]
    assert events[0].merge_message_body.message.hash == m.hash
    assert list(events[0].merge_message_body.deleted_messages) == []
    assert get_cast(kv, 1, m.hash).data.cast_add_body.text == "hi"
    assert hashes(casts_by_parent(kv, parent, Page())[0]) == [bytes(m.hash)]
    assert hashes(casts_by_mention(kv, 2, Page())[0]) == [bytes(m.hash)]  # listed once despite two mentions
    assert hashes(casts_by_mention(kv, 3, Page())[0]) == [bytes(m.hash)]
    assert has_message(kv, 1, m.hash)
    check_counts(kv)


def test_cast_remove_after_add_deletes_the_add(kv: MemoryKV) -> None:
    url = "https://example.com/a"
    add = cast_add(KEY_A, 1, timestamp=BASE, parent=url, mentions=[2], mentions_positions=[0])
    remove = cast_remove(KEY_B, 1, add.hash, timestamp=BASE + 5)  # another signer of the same fid may remove
    merge(kv, add)
    events = merge(kv, remove)
    assert types(events) == [MERGE]
    body = events[0].merge_message_body
    assert body.message.hash == remove.hash
    assert hashes(list(body.deleted_messages)) == [bytes(add.hash)]
    not_found(lambda: get_cast(kv, 1, add.hash))
    assert casts_by_fid(kv, 1, Page())[0] == []
    assert casts_by_parent(kv, url, Page())[0] == []
    assert casts_by_mention(kv, 2, Page())[0] == []
    assert not has_message(kv, 1, add.hash)
    assert has_message(kv, 1, remove.hash)
    assert hashes(stored(kv)) == [bytes(remove.hash)]
    assert store_count(kv, 1, CASTS) == 1
    check_counts(kv)
    # The removed add can never come back, nor a duplicate remove.
    rejected(kv, add, "bad_request.conflict")
    rejected(kv, remove, "bad_request.duplicate")


@pytest.mark.parametrize("add_offset", [-5, 0, 5, 10_000])
def test_cast_remove_before_add_wins_whatever_the_timestamps(kv: MemoryKV, add_offset: int) -> None:
    add = cast_add(KEY_A, 1, timestamp=BASE + add_offset)
    remove = cast_remove(KEY_A, 1, add.hash, timestamp=BASE)
    merge(kv, remove)
    rejected(kv, add, "bad_request.conflict")
    not_found(lambda: get_cast(kv, 1, add.hash))
    assert hashes(stored(kv)) == [bytes(remove.hash)]
    check_counts(kv)


def test_cast_remove_with_older_timestamp_still_removes(kv: MemoryKV) -> None:
    add = cast_add(KEY_A, 1, timestamp=BASE + 100)
    merge(kv, add)
    events = merge(kv, cast_remove(KEY_A, 1, add.hash, timestamp=BASE))
    assert hashes(list(events[0].merge_message_body.deleted_messages)) == [bytes(add.hash)]
    not_found(lambda: get_cast(kv, 1, add.hash))


def test_duplicate_cast(kv: MemoryKV) -> None:
    m = cast_add(KEY_A, 1, timestamp=BASE)
    merge(kv, m)
    rejected(kv, m, "bad_request.duplicate")
    check_counts(kv)


def test_same_data_signed_by_another_key_is_a_duplicate(kv: MemoryKV) -> None:
    # The hash covers only the data, so which signer's copy is kept depends on arrival order (as in
    # Farcaster); the second copy changes nothing.
    by_a = cast_add(KEY_A, 1, "same", timestamp=BASE)
    by_b = cast_add(KEY_B, 1, "same", timestamp=BASE)
    assert by_a.hash == by_b.hash and by_a.signer != by_b.signer
    merge(kv, by_a)
    rejected(kv, by_b, "bad_request.duplicate")
    assert stored(kv)[0].signer == public_key_bytes(KEY_A)


def test_two_removes_of_one_cast_keep_the_later(kv: MemoryKV) -> None:
    add = cast_add(KEY_A, 1, timestamp=BASE)
    early = cast_remove(KEY_A, 1, add.hash, timestamp=BASE + 1)
    late = cast_remove(KEY_A, 1, add.hash, timestamp=BASE + 2)
    merge(kv, add)
    merge(kv, early)
    events = merge(kv, late)
    assert hashes(list(events[0].merge_message_body.deleted_messages)) == [bytes(early.hash)]
    rejected(kv, early, "bad_request.conflict")
    assert hashes(stored(kv)) == [bytes(late.hash)]
    kv2 = MemoryKV()
    register(kv2, 1, KEY_A, KEY_B)
    register(kv2, 2, KEY_C)
    merge(kv2, late)
    rejected(kv2, early, "bad_request.conflict")
    rejected(kv2, add, "bad_request.conflict")
    assert hashes(stored(kv2)) == [bytes(late.hash)]


def test_cast_remove_only_touches_its_own_fid(kv: MemoryKV) -> None:
    add = cast_add(KEY_A, 1, timestamp=BASE)
    merge(kv, add)
    merge(kv, cast_remove(KEY_C, 2, add.hash, timestamp=BASE + 1))
    assert get_cast(kv, 1, add.hash).hash == add.hash
    check_counts(kv)


# ---------------------------------------------------------------------------------------------- last write wins


@dataclass(frozen=True)
class Kind:
    """One last-write-wins store: builders of conflicting messages (same CRDT key) and its queries."""

    name: str
    store: int
    add: Callable[[int, int], pb.Message]  # (timestamp, variant) -> message; variants differ in content
    remove: Callable[[int], pb.Message] | None
    current: Callable[[MemoryKV], pb.Message]  # the live add, or HubError not_found
    listed: Callable[[MemoryKV], list[pb.Message]]


TARGET = pb.CastId(fid=2, hash=bytes([6]) * 20)


def _reaction_add(ts: int, variant: int) -> pb.Message:
    m = reaction(KEY_A, 1, TARGET, timestamp=ts)
    return reencoded(m, KEY_A) if variant else m


def _link_add(ts: int, variant: int) -> pb.Message:
    d = link(KEY_A, 1, 3, timestamp=ts).data
    if variant:
        d.link_body.displayTimestamp = variant
    return sign_message_data(d, KEY_A)


KINDS = [
    Kind(
        "reaction",
        REACTIONS,
        _reaction_add,
        lambda ts: reaction(KEY_B, 1, TARGET, remove=True, timestamp=ts),
        lambda kv: get_reaction(kv, 1, pb.REACTION_TYPE_LIKE, TARGET),
        lambda kv: (
            reactions_by_fid(kv, 1, None, Page())[0] + reactions_by_target(kv, TARGET, None, Page())[0]
        ),
    ),
    Kind(
        "link",
        LINKS,
        _link_add,
        lambda ts: link(KEY_B, 1, 3, remove=True, timestamp=ts),
        lambda kv: get_link(kv, 1, "follow", 3),
        lambda kv: links_by_fid(kv, 1, None, Page())[0] + links_by_target(kv, 3, None, Page())[0],
    ),
    Kind(
        "verification",
        VERIFICATIONS,
        lambda ts, v: verification_add(KEY_A, 1, timestamp=ts, block_hash=bytes([9 + v]) * 32),
        lambda ts: verification_remove(KEY_B, 1, ETH_ADDRESS, timestamp=ts),
        lambda kv: get_verification(kv, 1, ETH_ADDRESS),
        lambda kv: verifications_by_fid(kv, 1, Page())[0],
    ),
    Kind(
        "user_data",
        USER_DATA,
        lambda ts, v: user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, f"bio {v}", timestamp=ts),
        None,
        lambda kv: get_user_data(kv, 1, pb.USER_DATA_TYPE_BIO),
        lambda kv: user_data_by_fid(kv, 1, Page())[0],
    ),
]


@pytest.fixture(params=KINDS, ids=lambda k: k.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    k: Kind = request.param
    return k


def newer_than(kind: Kind, ts: int) -> pb.Message:
    """A message of the same CRDT key as kind.add(...): a remove, or another add for user data."""
    return kind.remove(ts) if kind.remove is not None else kind.add(ts, 1)


def test_lww_newer_displaces_older(kv: MemoryKV, kind: Kind) -> None:
    old = kind.add(BASE, 0)
    new = newer_than(kind, BASE + 10)
    merge(kv, old)
    assert kind.current(kv).hash == old.hash
    events = merge(kv, new)
    assert types(events) == [MERGE]
    assert hashes(list(events[0].merge_message_body.deleted_messages)) == [bytes(old.hash)]
    assert hashes(stored(kv, 1, kind.store)) == [bytes(new.hash)]
    if kind.remove is not None:
        not_found(lambda: kind.current(kv))
        assert kind.listed(kv) == []
    else:
        assert kind.current(kv).hash == new.hash
    assert not has_message(kv, 1, old.hash)
    check_counts(kv)
    # Anything older than the winner loses, including the displaced message itself.
    rejected(kv, old, "bad_request.conflict")
    rejected(kv, kind.add(BASE + 5, 2), "bad_request.conflict")
    if kind.remove is not None:
        # A later add revives the key.
        newest = kind.add(BASE + 20, 0)
        merge(kv, newest)
        assert kind.current(kv).hash == newest.hash
        assert hashes(kind.listed(kv))[0] == bytes(newest.hash)
        check_counts(kv)


def test_lww_older_arriving_later_conflicts(kv: MemoryKV, kind: Kind) -> None:
    old = kind.add(BASE, 0)
    new = newer_than(kind, BASE + 10)
    merge(kv, new)
    rejected(kv, old, "bad_request.conflict")
    assert hashes(stored(kv, 1, kind.store)) == [bytes(new.hash)]
    check_counts(kv)


@pytest.mark.parametrize("kind", [k for k in KINDS if k.remove is not None], ids=lambda k: k.name)
def test_lww_same_timestamp_remove_beats_add(kv: MemoryKV, kind: Kind) -> None:
    assert kind.remove is not None
    add, remove = kind.add(BASE, 0), kind.remove(BASE)
    merge(kv, add)
    merge(kv, remove)
    not_found(lambda: kind.current(kv))
    kv2 = MemoryKV()
    register(kv2, 1, KEY_A, KEY_B)
    merge(kv2, remove)
    rejected(kv2, add, "bad_request.conflict")
    assert hashes(stored(kv, 1, kind.store)) == hashes(stored(kv2, 1, kind.store)) == [bytes(remove.hash)]


def test_lww_same_timestamp_and_type_higher_hash_wins(kv: MemoryKV, kind: Kind) -> None:
    x, y = kind.add(BASE, 0), kind.add(BASE, 1)
    assert x.hash != y.hash
    hi, lo = (x, y) if bytes(x.hash) > bytes(y.hash) else (y, x)
    # Low first: the high one displaces it.
    merge(kv, lo)
    events = merge(kv, hi)
    assert hashes(list(events[0].merge_message_body.deleted_messages)) == [bytes(lo.hash)]
    assert kind.current(kv).hash == hi.hash
    # High first: the low one loses.
    kv2 = MemoryKV()
    register(kv2, 1, KEY_A, KEY_B)
    merge(kv2, hi)
    rejected(kv2, lo, "bad_request.conflict")
    assert kind.current(kv2).hash == hi.hash
    assert hashes(stored(kv, 1, kind.store)) == hashes(stored(kv2, 1, kind.store)) == [bytes(hi.hash)]


def test_lww_duplicate(kv: MemoryKV, kind: Kind) -> None:
    m = kind.add(BASE, 0)
    merge(kv, m)
    rejected(kv, m, "bad_request.duplicate")


def test_reaction_types_and_targets_are_separate_keys(kv: MemoryKV) -> None:
    like = reaction(KEY_A, 1, TARGET, timestamp=BASE)
    recast = reaction(KEY_A, 1, TARGET, reaction_type=pb.REACTION_TYPE_RECAST, timestamp=BASE)
    on_url = reaction(KEY_A, 1, "https://example.com/", timestamp=BASE)
    other_fid = reaction(KEY_C, 2, TARGET, timestamp=BASE)
    for m in (like, recast, on_url, other_fid):
        merge(kv, m)
    merge(kv, reaction(KEY_A, 1, TARGET, remove=True, timestamp=BASE + 1))
    not_found(lambda: get_reaction(kv, 1, pb.REACTION_TYPE_LIKE, TARGET))
    assert get_reaction(kv, 1, pb.REACTION_TYPE_RECAST, TARGET).hash == recast.hash
    assert get_reaction(kv, 1, pb.REACTION_TYPE_LIKE, "https://example.com/").hash == on_url.hash
    assert get_reaction(kv, 2, pb.REACTION_TYPE_LIKE, TARGET).hash == other_fid.hash
    check_counts(kv)


def test_link_types_are_separate_keys(kv: MemoryKV) -> None:
    follow = link(KEY_A, 1, 3, timestamp=BASE)
    block = link(KEY_A, 1, 3, link_type="block", timestamp=BASE)
    merge(kv, follow)
    merge(kv, block)
    merge(kv, link(KEY_A, 1, 3, link_type="block", remove=True, timestamp=BASE + 1))
    assert get_link(kv, 1, "follow", 3).hash == follow.hash
    not_found(lambda: get_link(kv, 1, "block", 3))


def test_user_data_types_are_separate_keys(kv: MemoryKV) -> None:
    bio = user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "bio", timestamp=BASE)
    name = user_data(KEY_A, 1, pb.USER_DATA_TYPE_DISPLAY, "Name", timestamp=BASE)
    merge(kv, bio)
    merge(kv, name)
    assert sorted(hashes(user_data_by_fid(kv, 1, Page())[0])) == sorted(hashes([bio, name]))


def test_verification_remove_of_solana_address_is_its_own_key(kv: MemoryKV) -> None:
    add = verification_add(KEY_A, 1, timestamp=BASE)
    merge(kv, add)
    d = data(1, pb.MESSAGE_TYPE_VERIFICATION_REMOVE, BASE + 1)
    d.verification_remove_body.address = bytes([1]) * 32
    d.verification_remove_body.protocol = pb.PROTOCOL_SOLANA
    merge(kv, sign_message_data(d, KEY_A))
    assert get_verification(kv, 1, ETH_ADDRESS).hash == add.hash
    assert hashes(verifications_by_fid(kv, 1, Page())[0]) == [bytes(add.hash)]
    check_counts(kv)


# ---------------------------------------------------------------------------------------------- storage limits


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(UNIT_LIMITS, CASTS, (3, 3))
    monkeypatch.setitem(UNIT_LIMITS, REACTIONS, (2, 2))
    monkeypatch.setitem(UNIT_LIMITS, USER_DATA, (2, 2))


def casts(n: int, start: int = 0, key: Ed25519PrivateKey = KEY_A, fid: int = 1) -> list[pb.Message]:
    return [cast_add(key, fid, f"cast {start + i}", timestamp=BASE + start + i) for i in range(n)]


@pytest.mark.usefixtures("small_limits")
def test_merging_beyond_the_limit_prunes_the_oldest(kv: MemoryKV) -> None:
    first = casts(3)
    for m in first:
        assert types(merge(kv, m)) == [MERGE]
    newer = cast_add(KEY_A, 1, "newest", timestamp=BASE + 10)
    events = merge(kv, newer)
    assert types(events) == [MERGE, PRUNE]
    assert events[1].prune_message_body.message.hash == first[0].hash
    assert events[1].id > events[0].id
    assert hashes(casts_by_fid(kv, 1, Page())[0]) == hashes([first[1], first[2], newer])
    not_found(lambda: get_cast(kv, 1, first[0].hash))
    assert not has_message(kv, 1, first[0].hash)
    assert store_count(kv, 1, CASTS) == 3
    check_counts(kv)
    # Other fids and other stores have their own limits.
    for m in casts(3, key=KEY_C, fid=2):
        assert types(merge(kv, m)) == [MERGE]
    assert types(merge(kv, reaction(KEY_A, 1, TARGET, timestamp=BASE))) == [MERGE]
    check_counts(kv)


@pytest.mark.usefixtures("small_limits")
def test_message_older_than_everything_kept_is_prunable(kv: MemoryKV) -> None:
    for m in casts(3, start=10):
        merge(kv, m)
    rejected(kv, cast_add(KEY_A, 1, "too old", timestamp=BASE), "bad_request.prunable")
    # A pruned message that comes back is older than everything kept too.
    oldest = casts(1, start=5)[0]
    kv2 = MemoryKV()
    register(kv2, 1, KEY_A)
    merge(kv2, oldest)
    for m in casts(3, start=10):
        merge(kv2, m)
    assert not has_message(kv2, 1, oldest.hash)
    rejected(kv2, oldest, "bad_request.prunable")
    check_counts(kv2)


@pytest.mark.usefixtures("small_limits")
def test_pruning_ties_are_broken_by_hash(kv: MemoryKV) -> None:
    same = [cast_add(KEY_A, 1, f"tie {i}", timestamp=BASE) for i in range(4)]
    ordered = sorted(same, key=lambda m: bytes(m.hash))
    for m in same:
        try:
            merge(kv, m)
        except HubError as e:
            assert e.code == "bad_request.prunable"
            assert m.hash == ordered[0].hash
    assert sorted(hashes(stored(kv, 1, CASTS))) == hashes(ordered[1:])
    check_counts(kv)


@pytest.mark.usefixtures("small_limits")
def test_displacing_merge_in_a_full_store_prunes_nothing(kv: MemoryKV) -> None:
    first = casts(3)
    for m in first:
        merge(kv, m)
    # A remove replaces its target: the count does not grow, so nothing is pruned, even though the
    # remove is older than two of the kept messages.
    events = merge(kv, cast_remove(KEY_A, 1, first[0].hash, timestamp=BASE + 1))
    assert types(events) == [MERGE]
    assert hashes(list(events[0].merge_message_body.deleted_messages)) == [bytes(first[0].hash)]
    assert store_count(kv, 1, CASTS) == 3
    check_counts(kv)


@pytest.mark.usefixtures("small_limits")
def test_removes_count_and_are_pruned(kv: MemoryKV) -> None:
    removes = [cast_remove(KEY_A, 1, bytes([i]) * 20, timestamp=BASE + i) for i in range(1, 4)]
    for m in removes:
        merge(kv, m)
    newer = cast_add(KEY_A, 1, timestamp=BASE + 10)
    events = merge(kv, newer)
    assert types(events) == [MERGE, PRUNE]
    assert events[1].prune_message_body.message.hash == removes[0].hash
    check_counts(kv)


@pytest.mark.usefixtures("small_limits")
def test_lww_store_limits(kv: MemoryKV) -> None:
    bio = user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "b", timestamp=BASE)
    name = user_data(KEY_A, 1, pb.USER_DATA_TYPE_DISPLAY, "n", timestamp=BASE + 1)
    url = user_data(KEY_A, 1, pb.USER_DATA_TYPE_URL, "https://x.test", timestamp=BASE + 2)
    merge(kv, bio)
    merge(kv, name)
    events = merge(kv, url)
    assert types(events) == [MERGE, PRUNE]
    assert events[1].prune_message_body.message.hash == bio.hash
    not_found(lambda: get_user_data(kv, 1, pb.USER_DATA_TYPE_BIO))
    # The slot is free again, but an older value than everything kept is prunable.
    rejected(
        kv, user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "older", timestamp=BASE - 1), "bad_request.prunable"
    )
    newer_bio = user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "newer", timestamp=BASE + 3)
    events = merge(kv, newer_bio)
    assert types(events) == [MERGE, PRUNE]
    assert events[1].prune_message_body.message.hash == name.hash
    check_counts(kv)


@pytest.mark.usefixtures("small_limits")
def test_more_units_more_room() -> None:
    kv = MemoryKV()
    register(kv, 1, KEY_A, units=2)
    assert store_limit(kv, 1, CASTS, NOW_S) == 6
    for m in casts(6):
        assert types(merge(kv, m)) == [MERGE]
    assert types(merge(kv, casts(1, start=6)[0])) == [MERGE, PRUNE]
    check_counts(kv)


@pytest.mark.usefixtures("small_limits")
def test_expired_units_shrink_the_store_at_the_next_merge() -> None:
    kv = MemoryKV()
    early = NOW_S - ONE_YEAR_SECONDS + 1000  # its unit expires 1000 s from now
    register(kv, 1, KEY_A, block_timestamp=early)
    rent = make_account_events(1, [], storage_units=1, block_timestamp=NOW_S)[1]
    merge_onchain_event(kv, rent, now_ms=NOW_MS)
    assert store_limit(kv, 1, CASTS, NOW_S) == 6
    kept = casts(6)
    for m in kept:
        merge(kv, m)
    later_ms = (NOW_S + 2000) * 1000
    assert store_limit(kv, 1, CASTS, later_ms // 1000) == 3
    # Four must go: a message older than the fourth oldest would be pruned at once.
    rejected(kv, cast_add(KEY_A, 1, "between", timestamp=BASE + 2), "bad_request.prunable", now_ms=later_ms)
    newest = casts(1, start=10)[0]
    events = merge(kv, newest, now_ms=later_ms)
    assert types(events) == [MERGE] + [PRUNE] * 4
    assert [e.prune_message_body.message.hash for e in events[1:]] == [m.hash for m in kept[:4]]
    assert hashes(stored(kv, 1, CASTS)) == hashes([*kept[4:], newest])
    check_counts(kv)


# ---------------------------------------------------------------------------------------------- atomicity


def test_every_rejection_leaves_the_store_untouched(kv: MemoryKV, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(UNIT_LIMITS, CASTS, (1, 1))
    add = cast_add(KEY_A, 1, timestamp=BASE + 5)
    merge(kv, add)
    rejected(kv, add, "bad_request.duplicate")
    rejected(kv, cast_add(KEY_A, 1, "old", timestamp=BASE), "bad_request.prunable")
    rejected(kv, cast_add(KEY_A, 99, timestamp=BASE), "bad_request.unknown_fid")
    rejected(kv, cast_add(KEY_C, 1, timestamp=BASE), "bad_request.unknown_signer")
    merge(kv, cast_remove(KEY_A, 1, add.hash, timestamp=BASE + 6))
    rejected(kv, add, "bad_request.conflict")


def test_events_of_a_merge_are_returned_and_stored(kv: MemoryKV) -> None:
    m = cast_add(KEY_A, 1, timestamp=BASE)
    events = merge(kv, m, now_ms=NOW_MS + 5)
    assert len(events) == 1
    ev = events[0]
    assert ev.timestamp == NOW_MS + 5
    stored_events = [he.HubEvent.FromString(v) for _, v in kv.scan(b"\x20")]
    assert stored_events[-1] == ev
