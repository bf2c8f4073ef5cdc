"""Read queries of the message store over MemoryKV: listings, pagination, the event log and its retention."""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.crdt import (
    DEFAULT_PAGE_SIZE,
    EVENT_SEQ_BITS,
    MAX_PAGE_SIZE,
    MemoryKV,
    Page,
    casts_by_fid,
    casts_by_mention,
    casts_by_parent,
    event_id_floor,
    events_after,
    events_pruned_to,
    fid_count,
    fids,
    get_cast,
    get_event,
    get_reaction,
    id_register_event,
    last_event_id,
    links_by_fid,
    links_by_target,
    merge_message,
    merge_onchain_event,
    message_count,
    oldest_event_id,
    onchain_events,
    prune_events,
    reactions_by_fid,
    reactions_by_target,
    signers_by_fid,
    user_data_by_fid,
    verifications_by_fid,
)
from protocols.errors import HubError
from protocols.messages import (
    FARCASTER_EPOCH,
    farcaster_now,
    make_account_events,
    public_key_bytes,
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
    link,
    new_key,
    reaction,
    user_data,
    verification_remove,
)

NOW_MS = time.time_ns() // 1_000_000
NOW_S = NOW_MS // 1000
BASE = farcaster_now() - 100_000

KEY_A = new_key(seed=201)
KEY_B = new_key(seed=202)
KEY_C = new_key(seed=203)
KEYS = {1: KEY_A, 2: KEY_B, 3: KEY_C}

LIKE = pb.REACTION_TYPE_LIKE
RECAST = pb.REACTION_TYPE_RECAST


# ---------------------------------------------------------------------------------------------- helpers


def valid(m: pb.Message) -> pb.Message:
    return validate_message(m, network=DEVNET, now=farcaster_now())


def register(kv: MemoryKV, fid: int, key: Ed25519PrivateKey, now_ms: int = NOW_MS) -> list[he.HubEvent]:
    out: list[he.HubEvent] = []
    for e in make_account_events(fid, [public_key_bytes(key)], block_timestamp=NOW_S):
        out += merge_onchain_event(kv, e, now_ms=now_ms)
    return out


def merge(kv: MemoryKV, m: pb.Message, now_ms: int = NOW_MS) -> list[he.HubEvent]:
    return merge_message(kv, valid(m), now_ms=now_ms)


def hashes(messages: list[pb.Message]) -> list[bytes]:
    return [bytes(m.hash) for m in messages]


def invalid_param(fn: object) -> None:
    assert callable(fn)
    with pytest.raises(HubError) as exc:
        fn()
    assert exc.value.code == "bad_request.invalid_param"


def not_found(fn: object) -> None:
    assert callable(fn)
    with pytest.raises(HubError) as exc:
        fn()
    assert exc.value.code == "not_found"


def walk(query: object, size: int, reverse: bool = False) -> tuple[list[list[bytes]], list[bytes | None]]:
    """Follow tokens to the end; return the pages (as hashes) and the token after each page."""
    assert callable(query)
    pages: list[list[bytes]] = []
    tokens: list[bytes | None] = []
    token: bytes | None = None
    while True:
        items, token = query(Page(size=size, token=token, reverse=reverse))
        pages.append(hashes(items))
        tokens.append(token)
        if token is None:
            return pages, tokens
        assert len(pages) < 100, "pagination does not terminate"


@pytest.fixture
def kv() -> MemoryKV:
    """fids 1, 2, 3 with one signer and one storage unit each."""
    store = MemoryKV()
    for fid, key in KEYS.items():
        register(store, fid, key)
    return store


# ---------------------------------------------------------------------------------------------- pagination


def test_casts_by_fid_pages_forward_and_reverse(kv: MemoryKV) -> None:
    casts = [cast_add(KEY_A, 1, f"c{i}", timestamp=BASE + i) for i in range(7)]
    for m in reversed(casts):  # arrival order does not matter, listing is by time
        merge(kv, m)
    merge(kv, cast_add(KEY_B, 2, "other fid", timestamp=BASE + 3))
    h = hashes(casts)

    pages, tokens = walk(lambda p: casts_by_fid(kv, 1, p), 3)
    assert pages == [h[0:3], h[3:6], h[6:7]]
    assert tokens[-1] is None and all(t is not None for t in tokens[:-1])

    pages, _ = walk(lambda p: casts_by_fid(kv, 1, p), 3, reverse=True)
    assert pages == [h[6:3:-1], h[3:0:-1], h[0:1]]

    # A last page that is exactly full hands out no token.
    pages, tokens = walk(lambda p: casts_by_fid(kv, 1, p), 7)
    assert pages == [h] and tokens == [None]
    pages, _ = walk(lambda p: casts_by_fid(kv, 1, p), 1)
    assert pages == [[x] for x in h]

    items, token = casts_by_fid(kv, 1, Page())
    assert hashes(items) == h and token is None
    assert casts_by_fid(kv, 9, Page()) == ([], None)


def test_pages_skip_removed_and_filtered_items(kv: MemoryKV) -> None:
    casts = [cast_add(KEY_A, 1, f"c{i}", timestamp=BASE + 2 * i) for i in range(5)]
    for m in casts:
        merge(kv, m)
    # Removes live in the same store between the adds; pages must still be full.
    merge(kv, cast_remove(KEY_A, 1, casts[1].hash, timestamp=BASE + 3))
    merge(kv, cast_remove(KEY_A, 1, bytes([1]) * 20, timestamp=BASE + 5))
    live = hashes([casts[0], casts[2], casts[3], casts[4]])
    pages, _ = walk(lambda p: casts_by_fid(kv, 1, p), 2)
    assert pages == [live[:2], live[2:]]


def test_token_from_another_query_is_rejected(kv: MemoryKV) -> None:
    for i in range(3):
        merge(kv, cast_add(KEY_A, 1, f"c{i}", timestamp=BASE + i))
        merge(kv, cast_add(KEY_B, 2, f"d{i}", timestamp=BASE + i, parent="https://example.com/a"))
        merge(kv, reaction(KEY_A, 1, "https://example.com/a", timestamp=BASE + i, reaction_type=(i % 2) + 1))
    _, token = casts_by_fid(kv, 1, Page(size=1))
    assert token is not None
    assert casts_by_fid(kv, 1, Page(size=1, token=token))[0]  # valid where it came from
    invalid_param(lambda: casts_by_fid(kv, 2, Page(token=token)))
    invalid_param(lambda: reactions_by_fid(kv, 1, None, Page(token=token)))
    invalid_param(lambda: links_by_fid(kv, 1, None, Page(token=token)))
    invalid_param(lambda: casts_by_parent(kv, "https://example.com/a", Page(token=token)))
    invalid_param(lambda: fids(kv, Page(token=token)))
    _, parent_token = casts_by_parent(kv, "https://example.com/a", Page(size=1))
    assert parent_token is not None
    invalid_param(lambda: casts_by_parent(kv, "https://example.com/b", Page(token=parent_token)))
    invalid_param(lambda: casts_by_fid(kv, 2, Page(token=parent_token)))
    invalid_param(lambda: casts_by_fid(kv, 1, Page(token=b"garbage")))


def test_page_of_request() -> None:
    assert rr.FidRequest(fid=1).HasField("page_size") is False
    assert Page.of(rr.FidRequest(fid=1)) == Page(size=DEFAULT_PAGE_SIZE, token=None, reverse=False)
    assert Page.of(rr.FidRequest(fid=1, page_size=5, page_token=b"t", reverse=True)) == Page(5, b"t", True)
    assert Page.of(rr.FidRequest(fid=1, page_size=0)).size == DEFAULT_PAGE_SIZE
    assert Page.of(rr.FidRequest(fid=1, page_size=10**6)).size == MAX_PAGE_SIZE
    assert Page.of(rr.FidRequest(fid=1, page_token=b"")).token is None
    assert Page.of(rr.FidsRequest(page_size=2, reverse=False)) == Page(2, None, False)


# ---------------------------------------------------------------------------------------------- casts


def test_casts_by_parent_url_and_cast_id(kv: MemoryKV) -> None:
    url = "https://example.com/channel"
    root = cast_add(KEY_C, 3, "root", timestamp=BASE)
    parent = pb.CastId(fid=3, hash=root.hash)
    merge(kv, root)
    url_replies = [
        cast_add(KEY_A, 1, "u1", timestamp=BASE + 1, parent=url),
        cast_add(KEY_B, 2, "u2", timestamp=BASE + 2, parent=url),
        cast_add(KEY_A, 1, "u3", timestamp=BASE + 3, parent=url),
    ]
    cast_replies = [
        cast_add(KEY_B, 2, "r1", timestamp=BASE + 1, parent=parent),
        cast_add(KEY_A, 1, "r2", timestamp=BASE + 4, parent=parent),
        cast_add(KEY_B, 2, "r3", timestamp=BASE + 5, parent=parent),
    ]
    for m in [*url_replies[::-1], *cast_replies[::-1]]:
        merge(kv, m)
    merge(kv, cast_add(KEY_A, 1, "elsewhere", timestamp=BASE + 2, parent="https://example.com/other"))
    merge(kv, cast_add(KEY_A, 1, "other cast", timestamp=BASE + 2, parent=pb.CastId(fid=3, hash=bytes(20))))

    assert hashes(casts_by_parent(kv, url, Page())[0]) == hashes(url_replies)
    assert hashes(casts_by_parent(kv, parent, Page())[0]) == hashes(cast_replies)
    assert hashes(casts_by_parent(kv, url, Page(reverse=True))[0]) == hashes(url_replies[::-1])
    pages, _ = walk(lambda p: casts_by_parent(kv, parent, p), 2)
    assert pages == [hashes(cast_replies[:2]), hashes(cast_replies[2:])]
    assert casts_by_parent(kv, "https://example.com/none", Page()) == ([], None)

    merge(kv, cast_remove(KEY_B, 2, cast_replies[0].hash, timestamp=BASE + 10))
    merge(kv, cast_remove(KEY_B, 2, url_replies[1].hash, timestamp=BASE + 10))
    assert hashes(casts_by_parent(kv, parent, Page())[0]) == hashes(cast_replies[1:])
    assert hashes(casts_by_parent(kv, url, Page())[0]) == hashes([url_replies[0], url_replies[2]])


def test_casts_by_parent_url_that_extends_another(kv: MemoryKV) -> None:
    short = cast_add(KEY_A, 1, "short", timestamp=BASE, parent="https://example.com/a")
    long = cast_add(KEY_B, 2, "long", timestamp=BASE + 1, parent="https://example.com/ab")
    merge(kv, short)
    merge(kv, long)
    assert hashes(casts_by_parent(kv, "https://example.com/a", Page())[0]) == [bytes(short.hash)]
    assert hashes(casts_by_parent(kv, "https://example.com/ab", Page())[0]) == [bytes(long.hash)]


def test_reactions_by_target_url_that_extends_another(kv: MemoryKV) -> None:
    short = reaction(KEY_A, 1, "https://example.com/a", timestamp=BASE)
    long = reaction(KEY_B, 2, "https://example.com/ab", timestamp=BASE + 1)
    merge(kv, short)
    merge(kv, long)
    assert hashes(reactions_by_target(kv, "https://example.com/a", None, Page())[0]) == [bytes(short.hash)]
    assert hashes(reactions_by_target(kv, "https://example.com/ab", None, Page())[0]) == [bytes(long.hash)]


def test_query_by_oversized_url_fails_cleanly(kv: MemoryKV) -> None:
    url = "https://example.com/" + "a" * 70_000
    queries: list[Callable[[], object]] = [
        lambda: casts_by_parent(kv, url, Page()),
        lambda: reactions_by_target(kv, url, None, Page()),
        lambda: get_reaction(kv, 1, LIKE, url),
    ]
    for query in queries:
        try:
            result = query()
        except HubError as e:
            assert e.code in ("bad_request.invalid_param", "not_found")
        else:
            assert result == ([], None)


SPOOF_TS = 0x0A414243  # "\nABC" as big-endian bytes: an ASCII timestamp in 2026


def _cast_whose_key_suffix_is_utf8(fid: int, key: Ed25519PrivateKey) -> tuple[pb.Message, str]:
    """A cast whose timestamp|hash|fid bytes happen to be valid UTF-8 (1 in ~10^5 casts; seed pre-found)."""
    for n in range(17588, 10**7):
        m = cast_add(key, fid, f"victim {n}", timestamp=SPOOF_TS)
        try:
            suffix = (struct.pack(">I", SPOOF_TS) + bytes(m.hash) + struct.pack(">Q", fid)).decode()
        except UnicodeDecodeError:
            continue
        return m, suffix
    raise AssertionError("unreachable")


def _spoof_setup(kv: MemoryKV) -> tuple[str, pb.Message, pb.Message, pb.Message]:
    """An unrelated cast (no parent), an honest reply to `url`, and a reply to `url` + the victim's key bytes."""
    victim, suffix = _cast_whose_key_suffix_is_utf8(3, KEY_C)
    url = "https://example.com/a"
    honest = cast_add(KEY_A, 1, "honest reply", timestamp=BASE, parent=url)
    crafted = cast_add(KEY_B, 2, "crafted", timestamp=BASE, parent=url + suffix)
    for m in (victim, honest, crafted):
        merge(kv, m)
    return url, victim, honest, crafted


def test_spoof_setup_is_accepted(kv: MemoryKV) -> None:
    """Preconditions of the next test: every message is valid and merged, the crafted URL lists its reply."""
    assert farcaster_now() > SPOOF_TS
    _url, victim, _honest, crafted = _spoof_setup(kv)
    assert not victim.data.cast_add_body.HasField("parent_url")
    assert get_cast(kv, 3, victim.hash) == victim
    parent_url = crafted.data.cast_add_body.parent_url
    assert hashes(casts_by_parent(kv, parent_url, Page())[0]) == [bytes(crafted.hash)]


def test_casts_by_parent_url_cannot_be_spoofed_by_a_longer_url(kv: MemoryKV) -> None:
    url, _victim, honest, _crafted = _spoof_setup(kv)
    assert hashes(casts_by_parent(kv, url, Page())[0]) == [bytes(honest.hash)]


def test_casts_by_mention(kv: MemoryKV) -> None:
    a = cast_add(KEY_A, 1, "hi @3", timestamp=BASE + 1, mentions=[3], mentions_positions=[3])
    b = cast_add(KEY_B, 2, "@3 @1", timestamp=BASE + 2, mentions=[3, 1], mentions_positions=[0, 1])
    c = cast_add(KEY_A, 1, "hi @3 again", timestamp=BASE + 3, mentions=[3], mentions_positions=[3])
    for m in (c, b, a):
        merge(kv, m)
    assert hashes(casts_by_mention(kv, 3, Page())[0]) == hashes([a, b, c])
    assert hashes(casts_by_mention(kv, 1, Page())[0]) == hashes([b])
    assert hashes(casts_by_mention(kv, 3, Page(reverse=True, size=2))[0]) == hashes([c, b])
    assert casts_by_mention(kv, 2, Page()) == ([], None)
    merge(kv, cast_remove(KEY_B, 2, b.hash, timestamp=BASE + 4))
    assert hashes(casts_by_mention(kv, 3, Page())[0]) == hashes([a, c])
    assert casts_by_mention(kv, 1, Page()) == ([], None)


def test_get_cast(kv: MemoryKV) -> None:
    m = cast_add(KEY_A, 1, timestamp=BASE)
    merge(kv, m)
    assert get_cast(kv, 1, m.hash) == m
    not_found(lambda: get_cast(kv, 2, m.hash))
    not_found(lambda: get_cast(kv, 1, bytes(20)))
    remove = cast_remove(KEY_A, 1, m.hash, timestamp=BASE + 1)
    merge(kv, remove)
    not_found(lambda: get_cast(kv, 1, m.hash))
    not_found(lambda: get_cast(kv, 1, remove.hash))  # a remove is not a cast


# ---------------------------------------------------------------------------------------------- reactions, links


def test_reactions_by_target_with_type_filter(kv: MemoryKV) -> None:
    target = pb.CastId(fid=3, hash=bytes([3]) * 20)
    likes = [reaction(KEY_A, 1, target, timestamp=BASE + 1), reaction(KEY_B, 2, target, timestamp=BASE + 3)]
    recasts = [
        reaction(KEY_A, 1, target, reaction_type=RECAST, timestamp=BASE + 2),
        reaction(KEY_C, 3, target, reaction_type=RECAST, timestamp=BASE + 4),
    ]
    for m in [*likes, *recasts]:
        merge(kv, m)
    merge(kv, reaction(KEY_A, 1, pb.CastId(fid=3, hash=bytes([4]) * 20), timestamp=BASE))
    merge(kv, reaction(KEY_A, 1, "https://example.com/", timestamp=BASE))

    everything = [likes[0], recasts[0], likes[1], recasts[1]]
    assert hashes(reactions_by_target(kv, target, None, Page())[0]) == hashes(everything)
    assert hashes(reactions_by_target(kv, target, LIKE, Page())[0]) == hashes(likes)
    assert hashes(reactions_by_target(kv, target, RECAST, Page())[0]) == hashes(recasts)
    pages, _ = walk(lambda p: reactions_by_target(kv, target, LIKE, p), 1)
    assert pages == [hashes(likes[:1]), hashes(likes[1:])]
    pages, _ = walk(lambda p: reactions_by_target(kv, target, RECAST, p), 1, reverse=True)
    assert pages == [hashes(recasts[1:]), hashes(recasts[:1])]
    assert len(reactions_by_target(kv, "https://example.com/", None, Page())[0]) == 1

    merge(kv, reaction(KEY_B, 2, target, remove=True, timestamp=BASE + 10))
    assert hashes(reactions_by_target(kv, target, LIKE, Page())[0]) == hashes(likes[:1])
    assert hashes(reactions_by_fid(kv, 1, RECAST, Page())[0]) == hashes(recasts[:1])
    assert len(reactions_by_fid(kv, 1, None, Page())[0]) == 4
    assert reactions_by_fid(kv, 2, None, Page()) == ([], None)


def test_links_by_target_and_fid(kv: MemoryKV) -> None:
    follows = [link(KEY_A, 1, 3, timestamp=BASE + 1), link(KEY_B, 2, 3, timestamp=BASE + 2)]
    block = link(KEY_A, 1, 3, link_type="block", timestamp=BASE + 3)
    other = link(KEY_A, 1, 2, timestamp=BASE + 4)
    for m in [*follows, block, other]:
        merge(kv, m)
    assert hashes(links_by_target(kv, 3, None, Page())[0]) == hashes([*follows, block])
    assert hashes(links_by_target(kv, 3, "follow", Page())[0]) == hashes(follows)
    assert hashes(links_by_target(kv, 3, "block", Page())[0]) == hashes([block])
    assert hashes(links_by_target(kv, 3, "follow", Page(size=1, reverse=True))[0]) == hashes(follows[1:])
    assert hashes(links_by_fid(kv, 1, None, Page())[0]) == hashes([follows[0], block, other])
    assert hashes(links_by_fid(kv, 1, "follow", Page())[0]) == hashes([follows[0], other])

    merge(kv, link(KEY_A, 1, 3, remove=True, timestamp=BASE + 10))
    assert hashes(links_by_target(kv, 3, "follow", Page())[0]) == hashes(follows[1:])
    assert hashes(links_by_fid(kv, 1, "follow", Page())[0]) == hashes([other])


def test_user_data_and_verifications_by_fid(kv: MemoryKV) -> None:
    bio = user_data(KEY_A, 1, pb.USER_DATA_TYPE_BIO, "bio", timestamp=BASE + 2)
    pfp = user_data(KEY_A, 1, pb.USER_DATA_TYPE_PFP, "https://x.test/p.png", timestamp=BASE + 1)
    merge(kv, bio)
    merge(kv, pfp)
    assert hashes(user_data_by_fid(kv, 1, Page())[0]) == hashes([pfp, bio])
    merge(kv, verification_remove(KEY_A, 1, bytes([1]) * 20, timestamp=BASE))
    assert verifications_by_fid(kv, 1, Page()) == ([], None)  # removes are never listed


# ---------------------------------------------------------------------------------------------- identity


def test_fids_listing(kv: MemoryKV) -> None:
    register(kv, 10, KEY_A)
    register(kv, 5, KEY_A)
    assert fids(kv, Page())[0] == [1, 2, 3, 5, 10]
    assert fid_count(kv) == 5
    pages: list[list[int]] = []
    token: bytes | None = None
    while True:
        page, token = fids(kv, Page(size=2, token=token))
        pages.append(page)
        if token is None:
            break
    assert pages == [[1, 2], [3, 5], [10]]
    assert fids(kv, Page(size=3, reverse=True))[0] == [10, 5, 3]
    assert fids(MemoryKV(), Page()) == ([], None)


def test_identity_queries(kv: MemoryKV) -> None:
    assert id_register_event(kv, 2).type == oc.EVENT_TYPE_ID_REGISTER
    not_found(lambda: id_register_event(kv, 99))
    signers, _ = signers_by_fid(kv, 2, Page())
    assert [bytes(e.signer_event_body.key) for e in signers] == [public_key_bytes(KEY_B)]
    events, token = onchain_events(kv, 1, 0, Page(size=2))
    assert len(events) == 2 and token is not None
    rest, token = onchain_events(kv, 1, 0, Page(size=2, token=token))
    assert len(rest) == 1 and token is None
    assert [e.type for e in onchain_events(kv, 1, oc.EVENT_TYPE_STORAGE_RENT, Page())[0]] == [
        oc.EVENT_TYPE_STORAGE_RENT
    ]


# ---------------------------------------------------------------------------------------------- events


def test_event_ids_strictly_increase_even_if_the_clock_goes_back() -> None:
    kv = MemoryKV()
    clock = [NOW_MS, NOW_MS - 10_000, NOW_MS - 20_000, NOW_MS, NOW_MS + 5, NOW_MS + 5, NOW_MS - 1]
    events: list[he.HubEvent] = []
    events += register(kv, 1, KEY_A, now_ms=clock[0])  # 3 events in one millisecond
    for i, now in enumerate(clock[1:]):
        evs = merge(kv, cast_add(KEY_A, 1, f"c{i}", timestamp=BASE + i), now_ms=now)
        assert all(e.timestamp == now for e in evs)
        events += evs
    ids = [e.id for e in events]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert ids[0] == event_id_floor(NOW_MS)
    assert ids[0] >> EVENT_SEQ_BITS == NOW_MS - FARCASTER_EPOCH * 1000
    assert ids[1:3] == [ids[0] + 1, ids[0] + 2]
    # Once the clock moves past everything issued, ids follow the clock again.
    assert ids[-3] == event_id_floor(NOW_MS + 5)
    assert last_event_id(kv) == ids[-1]
    assert event_id_floor(0) == 0  # before the epoch clamps to zero


def test_events_after_and_get_event() -> None:
    kv = MemoryKV()
    events = register(kv, 1, KEY_A)
    for i in range(4):
        events += merge(kv, cast_add(KEY_A, 1, f"c{i}", timestamp=BASE + i), now_ms=NOW_MS + 1 + i)
    ids = [e.id for e in events]
    listed = events_after(kv, None, 100)
    assert [i for i, _ in listed] == ids
    assert [he.HubEvent.FromString(raw) for _, raw in listed] == events
    assert [i for i, _ in events_after(kv, ids[2], 2)] == ids[3:5]
    assert [i for i, _ in events_after(kv, ids[2] + 1, 100)] == ids[3:]  # an id between events
    assert events_after(kv, ids[-1], 10) == []
    assert [i for i, _ in events_after(kv, 0, 1)] == ids[:1]
    for e in events:
        assert get_event(kv, e.id) == e
    not_found(lambda: get_event(kv, ids[-1] + 1))
    assert oldest_event_id(kv) == ids[0]
    assert oldest_event_id(MemoryKV()) is None
    assert last_event_id(MemoryKV()) == 0
    merge_types = [e.type for e in events]
    assert merge_types == [he.HUB_EVENT_TYPE_MERGE_ON_CHAIN_EVENT] * 3 + [he.HUB_EVENT_TYPE_MERGE_MESSAGE] * 4


def _events_at(times_ms: list[int]) -> tuple[MemoryKV, list[int]]:
    """A store with the account events at times_ms[0] and one cast event at each later time."""
    kv = MemoryKV()
    ids = [e.id for e in register(kv, 1, KEY_A, now_ms=times_ms[0])]
    for i, t in enumerate(times_ms[1:]):
        ids += [e.id for e in merge(kv, cast_add(KEY_A, 1, f"c{i}", timestamp=BASE + i), now_ms=t)]
    return kv, ids


def test_prune_events_deletes_only_events_older_than_retention() -> None:
    kv, ids = _events_at([NOW_MS, NOW_MS + 1000, NOW_MS + 2000, NOW_MS + 3000])
    assert len(ids) == 6
    messages_before = [(k, v) for k, v in kv.items() if k[:1] == b"\x01"]
    assert events_pruned_to(kv) == 0

    # Nothing is older than the retention window yet.
    assert prune_events(kv, now_ms=NOW_MS + 1000, retention_ms=2000) == 0
    assert events_pruned_to(kv) == 0
    assert oldest_event_id(kv) == ids[0]

    # The window now starts at NOW_MS + 1500: the three account events and the first cast's go.
    assert prune_events(kv, now_ms=NOW_MS + 3500, retention_ms=2000) == 4
    assert events_pruned_to(kv) == ids[3]
    assert oldest_event_id(kv) == ids[4]
    assert [i for i, _ in events_after(kv, None, 100)] == ids[4:]
    assert [i for i, _ in events_after(kv, ids[0], 100)] == ids[4:]
    not_found(lambda: get_event(kv, ids[3]))
    assert get_event(kv, ids[4]).id == ids[4]
    # Messages and the id counter are untouched; new events keep counting up.
    assert [(k, v) for k, v in kv.items() if k[:1] == b"\x01"] == messages_before
    assert message_count(kv) == 3
    assert last_event_id(kv) == ids[-1]
    new = merge(kv, cast_add(KEY_A, 1, "after prune", timestamp=BASE + 50), now_ms=NOW_MS + 3500)
    assert new[0].id > ids[-1]

    # The exact horizon: an event at the boundary millisecond is kept.
    assert prune_events(kv, now_ms=NOW_MS + 4000, retention_ms=2000) == 0
    assert prune_events(kv, now_ms=NOW_MS + 4001, retention_ms=2000) == 1
    assert events_pruned_to(kv) == ids[4]


def test_prune_events_is_bounded_by_max_deletes() -> None:
    kv, ids = _events_at([NOW_MS, NOW_MS + 1, NOW_MS + 2, NOW_MS + 3])
    far = NOW_MS + 10_000
    assert prune_events(kv, now_ms=far, retention_ms=1000, max_deletes=2) == 2
    assert events_pruned_to(kv) == ids[1]
    assert oldest_event_id(kv) == ids[2]
    assert prune_events(kv, now_ms=far, retention_ms=1000, max_deletes=3) == 3
    assert events_pruned_to(kv) == ids[4]
    assert prune_events(kv, now_ms=far, retention_ms=1000, max_deletes=3) == 1
    assert events_pruned_to(kv) == ids[5]
    assert prune_events(kv, now_ms=far, retention_ms=1000, max_deletes=3) == 0
    assert events_pruned_to(kv) == ids[5]
    assert oldest_event_id(kv) is None
    assert last_event_id(kv) == ids[-1]
