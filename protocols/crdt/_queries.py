"""Read queries over the message store, with Farcaster's pagination (page_size, page_token, reverse).

A page token is the store key of the last item returned, so paging is stable under concurrent writes
and costs one seek. Tokens are checked against the query's key prefix: a token from another query is
rejected rather than silently restarting somewhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from protocols.crdt._keys import (
    META_EVENTS_PRUNED_TO,
    META_FID_COUNT,
    META_LAST_EVENT_ID,
    META_MESSAGE_COUNT,
    SIGNER_ACTIVE,
    T_BY_MENTION,
    T_BY_PARENT,
    T_CRDT,
    T_EVENT,
    T_HASH,
    T_ID_REGISTER,
    T_LINK_BY_TARGET,
    T_MSG,
    T_ONCHAIN,
    T_REACTION_BY_TARGET,
    T_SIGNER,
    TS_HASH_LEN,
    cast_target_key,
    link_key_parts,
    read_u64,
    u64,
    url_target_key,
)
from protocols.crdt._kv import ReadKV
from protocols.crdt._store import load_message
from protocols.errors import HubError
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000

T = TypeVar("T")


class _Paged(Protocol):
    def HasField(self, field_name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Page:
    """One page request: up to `size` items after `token`, newest first if `reverse`."""

    size: int = DEFAULT_PAGE_SIZE
    token: bytes | None = None
    reverse: bool = False

    @staticmethod
    def of(request: _Paged) -> Page:
        """Read page_size / page_token / reverse from any Farcaster request that has them."""
        size = getattr(request, "page_size", 0) if request.HasField("page_size") else 0
        token = getattr(request, "page_token", b"") if request.HasField("page_token") else b""
        reverse = bool(getattr(request, "reverse", False)) if request.HasField("reverse") else False
        if size < 0:
            raise HubError("bad_request.invalid_param", "page_size must not be negative")
        size = DEFAULT_PAGE_SIZE if size == 0 else min(size, MAX_PAGE_SIZE)
        return Page(size=size, token=bytes(token) or None, reverse=reverse)


def paginate(
    kv: ReadKV, prefix: bytes, page: Page, load: Callable[[bytes, bytes], T | None]
) -> tuple[list[T], bytes | None]:
    """Items under `prefix` for which `load(key, value)` is not None, one page of them, and the next token."""
    if page.token is not None and not page.token.startswith(prefix):
        raise HubError("bad_request.invalid_param", "page_token does not belong to this query")
    items: list[T] = []
    last: bytes | None = None
    it: Iterator[tuple[bytes, bytes]] = kv.scan(prefix, after=page.token, reverse=page.reverse)
    for key, value in it:
        item = load(key, value)
        if item is None:
            continue
        if len(items) == page.size:
            return items, last  # one more matching item exists: hand out a token
        items.append(item)
        last = key
    return items, None


def _messages_by_fid(
    kv: ReadKV, fid: int, store: int, page: Page, keep: Callable[[pb.Message], bool]
) -> tuple[list[pb.Message], bytes | None]:
    def load(_key: bytes, raw: bytes) -> pb.Message | None:
        message = pb.Message.FromString(raw)
        return message if keep(message) else None

    return paginate(kv, T_MSG + u64(fid) + bytes([store]), page, load)


def _messages_by_index(
    kv: ReadKV, prefix: bytes, store: int, page: Page, keep: Callable[[bytes], bool] | None = None
) -> tuple[list[pb.Message], bytes | None]:
    """Index keys are prefix | ts | hash | fid; load the message each points at."""

    def load(key: bytes, value: bytes) -> pb.Message | None:
        if keep is not None and not keep(value):
            return None
        rest = key[len(prefix) :]
        tsh, fid = rest[:TS_HASH_LEN], read_u64(rest[TS_HASH_LEN:])
        return load_message(kv, fid, store, tsh)

    return paginate(kv, prefix, page, load)


def _current(kv: ReadKV, fid: int, store: int, ck: bytes, add_type: int) -> pb.Message | None:
    held = kv.get(T_CRDT + u64(fid) + bytes([store]) + ck)
    if held is None:
        return None
    message = load_message(kv, fid, store, held)
    if message is None or message.data.type != add_type:
        return None
    return message


def _require(message: pb.Message | None, what: str) -> pb.Message:
    if message is None:
        raise HubError("not_found", f"{what} not found")
    return message


# ---------------------------------------------------------------------------------------------- casts


def get_cast(kv: ReadKV, fid: int, digest: bytes) -> pb.Message:
    """The CAST_ADD with this id; not_found if absent or removed."""
    return _require(
        _current(kv, fid, rr.STORE_TYPE_CASTS, bytes(digest), pb.MESSAGE_TYPE_CAST_ADD),
        f"cast {fid}:0x{bytes(digest).hex()}",
    )


def casts_by_fid(kv: ReadKV, fid: int, page: Page) -> tuple[list[pb.Message], bytes | None]:
    """A fid's live casts in time order."""
    return _messages_by_fid(
        kv, fid, rr.STORE_TYPE_CASTS, page, lambda m: m.data.type == pb.MESSAGE_TYPE_CAST_ADD
    )


def casts_by_parent(kv: ReadKV, parent: pb.CastId | str, page: Page) -> tuple[list[pb.Message], bytes | None]:
    """Replies to a cast or URL, in time order."""
    target = url_target_key(parent) if isinstance(parent, str) else cast_target_key(parent)
    return _messages_by_index(kv, T_BY_PARENT + target, rr.STORE_TYPE_CASTS, page)


def casts_by_mention(kv: ReadKV, fid: int, page: Page) -> tuple[list[pb.Message], bytes | None]:
    """Casts mentioning `fid`, in time order."""
    return _messages_by_index(kv, T_BY_MENTION + u64(fid), rr.STORE_TYPE_CASTS, page)


# ---------------------------------------------------------------------------------------------- reactions


def get_reaction(kv: ReadKV, fid: int, reaction_type: int, target: pb.CastId | str) -> pb.Message:
    """The live reaction of `fid` of this type on this target."""
    tk = url_target_key(target) if isinstance(target, str) else cast_target_key(target)
    return _require(
        _current(kv, fid, rr.STORE_TYPE_REACTIONS, bytes([reaction_type]) + tk, pb.MESSAGE_TYPE_REACTION_ADD),
        "reaction",
    )


def reactions_by_fid(
    kv: ReadKV, fid: int, reaction_type: int | None, page: Page
) -> tuple[list[pb.Message], bytes | None]:
    """A fid's live reactions, optionally of one type."""
    return _messages_by_fid(
        kv,
        fid,
        rr.STORE_TYPE_REACTIONS,
        page,
        lambda m: (
            m.data.type == pb.MESSAGE_TYPE_REACTION_ADD
            and (reaction_type is None or m.data.reaction_body.type == reaction_type)
        ),
    )


def reactions_by_target(
    kv: ReadKV, target: pb.CastId | str, reaction_type: int | None, page: Page
) -> tuple[list[pb.Message], bytes | None]:
    """Live reactions on a cast or URL, optionally of one type."""
    tk = url_target_key(target) if isinstance(target, str) else cast_target_key(target)
    keep = None if reaction_type is None else (lambda v: v == bytes([reaction_type]))
    return _messages_by_index(kv, T_REACTION_BY_TARGET + tk, rr.STORE_TYPE_REACTIONS, page, keep)


# ---------------------------------------------------------------------------------------------- links


def get_link(kv: ReadKV, fid: int, link_type: str, target_fid: int) -> pb.Message:
    """The live link of `fid` of this type to `target_fid`."""
    return _require(
        _current(
            kv, fid, rr.STORE_TYPE_LINKS, link_key_parts(link_type, target_fid), pb.MESSAGE_TYPE_LINK_ADD
        ),
        "link",
    )


def links_by_fid(
    kv: ReadKV, fid: int, link_type: str | None, page: Page
) -> tuple[list[pb.Message], bytes | None]:
    """A fid's live links, optionally of one type."""
    return _messages_by_fid(
        kv,
        fid,
        rr.STORE_TYPE_LINKS,
        page,
        lambda m: (
            m.data.type == pb.MESSAGE_TYPE_LINK_ADD
            and (link_type is None or m.data.link_body.type == link_type)
        ),
    )


def links_by_target(
    kv: ReadKV, target_fid: int, link_type: str | None, page: Page
) -> tuple[list[pb.Message], bytes | None]:
    """Live links pointing at `target_fid`, optionally of one type."""
    keep = None if link_type is None else (lambda v: v == link_type.encode())
    return _messages_by_index(kv, T_LINK_BY_TARGET + u64(target_fid), rr.STORE_TYPE_LINKS, page, keep)


# ---------------------------------------------------------------------------- user data, verifications


def get_user_data(kv: ReadKV, fid: int, user_data_type: int) -> pb.Message:
    """The current USER_DATA_ADD of this type."""
    return _require(
        _current(kv, fid, rr.STORE_TYPE_USER_DATA, bytes([user_data_type]), pb.MESSAGE_TYPE_USER_DATA_ADD),
        "user data",
    )


def user_data_by_fid(kv: ReadKV, fid: int, page: Page) -> tuple[list[pb.Message], bytes | None]:
    """All current user data of a fid."""
    return _messages_by_fid(kv, fid, rr.STORE_TYPE_USER_DATA, page, lambda m: True)


def get_verification(kv: ReadKV, fid: int, address: bytes) -> pb.Message:
    """The live verification of `address` by `fid`."""
    return _require(
        _current(
            kv, fid, rr.STORE_TYPE_VERIFICATIONS, bytes(address), pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS
        ),
        "verification",
    )


def verifications_by_fid(kv: ReadKV, fid: int, page: Page) -> tuple[list[pb.Message], bytes | None]:
    """A fid's live verifications."""
    return _messages_by_fid(
        kv,
        fid,
        rr.STORE_TYPE_VERIFICATIONS,
        page,
        lambda m: m.data.type == pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS,
    )


# ---------------------------------------------------------------------------------------------- identity


def get_signer(kv: ReadKV, fid: int, key: bytes) -> oc.OnChainEvent:
    """The event that made `key` an active signer of `fid`; not_found if it is not active."""
    raw = kv.get(T_SIGNER + u64(fid) + bytes(key))
    if raw is None or raw[:1] != SIGNER_ACTIVE:
        raise HubError("not_found", f"no active signer 0x{bytes(key).hex()} for fid {fid}")
    return oc.OnChainEvent.FromString(raw[1:])


def signers_by_fid(kv: ReadKV, fid: int, page: Page) -> tuple[list[oc.OnChainEvent], bytes | None]:
    """The add events of a fid's active signers."""

    def load(_key: bytes, raw: bytes) -> oc.OnChainEvent | None:
        return oc.OnChainEvent.FromString(raw[1:]) if raw[:1] == SIGNER_ACTIVE else None

    return paginate(kv, T_SIGNER + u64(fid), page, load)


def onchain_events(
    kv: ReadKV, fid: int, event_type: int, page: Page
) -> tuple[list[oc.OnChainEvent], bytes | None]:
    """A fid's on-chain events of one type in chain order (all types if `event_type` is 0)."""
    prefix = T_ONCHAIN + u64(fid) + (bytes([event_type]) if event_type else b"")
    return paginate(kv, prefix, page, lambda _k, raw: oc.OnChainEvent.FromString(raw))


def id_register_event(kv: ReadKV, fid: int) -> oc.OnChainEvent:
    """The latest ID_REGISTER event of a fid."""
    raw = kv.get(T_ID_REGISTER + u64(fid))
    if raw is None:
        raise HubError("not_found", f"fid {fid} is not registered")
    return oc.OnChainEvent.FromString(raw)


def fids(kv: ReadKV, page: Page) -> tuple[list[int], bytes | None]:
    """Registered fids in ascending order."""
    return paginate(kv, T_ID_REGISTER, page, lambda key, _v: read_u64(key[1:]))


# ---------------------------------------------------------------------------------------------- events, stats


def get_event(kv: ReadKV, event_id: int) -> he.HubEvent:
    """One stored event by id."""
    raw = kv.get(T_EVENT + u64(event_id))
    if raw is None:
        raise HubError("not_found", f"event {event_id} not found (unknown or past the retention window)")
    return he.HubEvent.FromString(raw)


def events_after(kv: ReadKV, after_id: int | None, limit: int) -> list[tuple[int, bytes]]:
    """Up to `limit` stored events with id > `after_id` (all if None) as (id, HubEvent bytes)."""
    out: list[tuple[int, bytes]] = []
    after = None if after_id is None else T_EVENT + u64(after_id)
    for key, raw in kv.scan(T_EVENT, after=after):
        out.append((read_u64(key[1:]), raw))
        if len(out) >= limit:
            break
    return out


def oldest_event_id(kv: ReadKV) -> int | None:
    """The id of the oldest retained event, if any."""
    for key, _ in kv.scan(T_EVENT):
        return read_u64(key[1:])
    return None


def last_event_id(kv: ReadKV) -> int:
    """The id of the newest event ever written (0 if none)."""
    raw = kv.get(META_LAST_EVENT_ID)
    return read_u64(raw) if raw else 0


def message_count(kv: ReadKV) -> int:
    """Messages currently stored."""
    raw = kv.get(META_MESSAGE_COUNT)
    return read_u64(raw) if raw else 0


def fid_count(kv: ReadKV) -> int:
    """Registered fids."""
    raw = kv.get(META_FID_COUNT)
    return read_u64(raw) if raw else 0


def has_message(kv: ReadKV, fid: int, digest: bytes) -> bool:
    """Whether a message with this hash is stored for `fid`."""
    return kv.get(T_HASH + u64(fid) + bytes(digest)) is not None


def events_pruned_to(kv: ReadKV) -> int:
    """The highest event id retention has deleted (0 if none): a cursor below it has missed events."""
    raw = kv.get(META_EVENTS_PRUNED_TO)
    return read_u64(raw) if raw else 0
