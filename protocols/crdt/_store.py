"""Merge rules of the hub: CRDT conflicts, storage limits and pruning, identity, revocation, events.

Everything here is synchronous and runs inside one write transaction (`WriteKV`): a merge either applies
all of its writes and events or raises `HubError` having written nothing. Callers validate a message's
hash, signature and body (`protocols.messages.validate_message`) before merging it.

Conflict rules, Farcaster's:
* casts: remove-wins. A CAST_REMOVE beats the CAST_ADD it targets whatever their timestamps.
* reactions, links, verifications: last-write-wins by (timestamp, remove beats add, hash).
* user data: last-write-wins per (fid, type) by (timestamp, hash).
Storage: each store of a fid holds at most units x per-unit limit messages; the oldest by (timestamp,
hash) are pruned first, and a message that would itself be the one pruned is rejected as prunable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from protocols.crdt._keys import (
    META_EVENTS_PRUNED_TO,
    META_FID_COUNT,
    META_LAST_EVENT_ID,
    META_MESSAGE_COUNT,
    REMOVE_TYPES,
    SIGNER_ACTIVE,
    SIGNER_REMOVED,
    T_BY_MENTION,
    T_BY_PARENT,
    T_BY_SIGNER,
    T_COUNT,
    T_CRDT,
    T_EVENT,
    T_HASH,
    T_ID_REGISTER,
    T_LINK_BY_TARGET,
    T_MSG,
    T_ONCHAIN,
    T_ONCHAIN_SEEN,
    T_REACTION_BY_TARGET,
    T_SIGNER,
    cast_target_key,
    crdt_key,
    msg_key,
    reaction_target_key,
    read_u32,
    read_u64,
    store_of,
    ts_hash,
    u32,
    u64,
    url_target_key,
)
from protocols.crdt._kv import ReadKV, WriteKV
from protocols.crdt._trie import add_sync_id, remove_sync_id, sync_id_from_ts_hash
from protocols.errors import HubError
from protocols.messages._onchain import (
    LEGACY_STORAGE_UNIT_CUTOFF,
    storage_unit_expiry,
    validate_onchain_event,
)
from protocols.messages._time import FARCASTER_EPOCH
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr

#: Event ids are (milliseconds since the Farcaster epoch) << 12 | sequence, like Farcaster's, so an id
#: also says when the event happened and retention can be enforced by id range.
EVENT_SEQ_BITS: Final = 12
FARCASTER_EPOCH_MS: Final = FARCASTER_EPOCH * 1000

#: Messages per storage unit, per store: (legacy units, 2024 units). Farcaster's published limits.
UNIT_LIMITS: Final[dict[int, tuple[int, int]]] = {
    rr.STORE_TYPE_CASTS: (5000, 2000),
    rr.STORE_TYPE_LINKS: (2500, 1000),
    rr.STORE_TYPE_REACTIONS: (2500, 1000),
    rr.STORE_TYPE_USER_DATA: (50, 50),
    rr.STORE_TYPE_VERIFICATIONS: (25, 25),
    rr.STORE_TYPE_USERNAME_PROOFS: (5, 5),
}


def event_id_floor(now_ms: int) -> int:
    """The smallest event id that can be assigned at `now_ms` (unix milliseconds)."""
    return max(0, now_ms - FARCASTER_EPOCH_MS) << EVENT_SEQ_BITS


class _EventLog:
    """Assigns monotonically increasing ids and writes events in the caller's transaction."""

    def __init__(self, kv: WriteKV, now_ms: int) -> None:
        self._kv = kv
        self._now_ms = now_ms
        self.events: list[he.HubEvent] = []

    def emit(self, event: he.HubEvent) -> None:
        raw = self._kv.get(META_LAST_EVENT_ID)
        last = read_u64(raw) if raw else 0
        # max() keeps ids increasing even if the wall clock steps backwards.
        event.id = max(last + 1, event_id_floor(self._now_ms))
        event.timestamp = self._now_ms
        self._kv.put(T_EVENT + u64(event.id), event.SerializeToString())
        self._kv.put(META_LAST_EVENT_ID, u64(event.id))
        self.events.append(event)


def _add_counter(kv: WriteKV, key: bytes, delta: int, width: int = 8) -> None:
    raw = kv.get(key)
    value = (read_u64(raw) if width == 8 else read_u32(raw)) if raw else 0
    value += delta
    kv.put(key, u64(value) if width == 8 else u32(value))


def _signed_order(data: pb.MessageData, digest: bytes) -> tuple[int, int, bytes]:
    """Total order of two messages of one CRDT key: timestamp, then remove beats add, then hash."""
    return (data.timestamp, 1 if data.type in REMOVE_TYPES else 0, digest)


def incoming_wins(new: pb.Message, old: pb.Message) -> bool:
    """Whether `new` displaces `old`, two distinct messages with the same store and CRDT key."""
    nd, od = new.data, old.data
    if nd.type in (pb.MESSAGE_TYPE_CAST_ADD, pb.MESSAGE_TYPE_CAST_REMOVE):
        new_remove = nd.type == pb.MESSAGE_TYPE_CAST_REMOVE
        old_remove = od.type == pb.MESSAGE_TYPE_CAST_REMOVE
        if new_remove != old_remove:
            return new_remove
    return _signed_order(nd, new.hash) > _signed_order(od, old.hash)


# ---------------------------------------------------------------------------------------------- indexes


def _index_entries(message: pb.Message) -> list[tuple[bytes, bytes]]:
    """Every secondary-index entry of a stored message (the primary and CRDT entries excluded)."""
    d = message.data
    fid, h = d.fid, bytes(message.hash)
    store = store_of(d)
    tsh = ts_hash(d, h)
    entries = [
        (T_HASH + u64(fid) + h, bytes([store]) + tsh),
        (T_BY_SIGNER + u64(fid) + bytes(message.signer) + bytes([store]) + tsh, b""),
    ]
    if d.type == pb.MESSAGE_TYPE_CAST_ADD:
        body = d.cast_add_body
        parent = body.WhichOneof("parent")
        if parent == "parent_cast_id":
            entries.append((T_BY_PARENT + cast_target_key(body.parent_cast_id) + tsh + u64(fid), b""))
        elif parent == "parent_url":
            entries.append((T_BY_PARENT + url_target_key(body.parent_url) + tsh + u64(fid), b""))
        for mentioned in sorted(set(body.mentions)):
            entries.append((T_BY_MENTION + u64(mentioned) + tsh + u64(fid), b""))
    elif d.type == pb.MESSAGE_TYPE_REACTION_ADD:
        target = reaction_target_key(d.reaction_body)
        entries.append((T_REACTION_BY_TARGET + target + tsh + u64(fid), bytes([d.reaction_body.type])))
    elif d.type == pb.MESSAGE_TYPE_LINK_ADD:
        entries.append(
            (T_LINK_BY_TARGET + u64(d.link_body.target_fid) + tsh + u64(fid), d.link_body.type.encode())
        )
    return entries


def _insert(kv: WriteKV, message: pb.Message) -> None:
    d = message.data
    fid, store = d.fid, store_of(d)
    tsh = ts_hash(d, bytes(message.hash))
    kv.put(msg_key(fid, store, tsh), message.SerializeToString())
    # Every stored message has exactly one sync id: this and _remove are the only writers of T_MSG.
    add_sync_id(kv, sync_id_from_ts_hash(tsh, fid, d.type))
    kv.put(T_CRDT + u64(fid) + bytes([store]) + crdt_key(d, bytes(message.hash)), tsh)
    for key, value in _index_entries(message):
        kv.put(key, value)
    _add_counter(kv, T_COUNT + u64(fid) + bytes([store]), 1, width=4)
    _add_counter(kv, META_MESSAGE_COUNT, 1)


def _remove(kv: WriteKV, message: pb.Message) -> None:
    d = message.data
    fid, store = d.fid, store_of(d)
    tsh = ts_hash(d, bytes(message.hash))
    kv.delete(msg_key(fid, store, tsh))
    remove_sync_id(kv, sync_id_from_ts_hash(tsh, fid, d.type))
    ck = T_CRDT + u64(fid) + bytes([store]) + crdt_key(d, bytes(message.hash))
    # The CRDT slot may already belong to the message that displaced this one.
    if kv.get(ck) == tsh:
        kv.delete(ck)
    for key, _ in _index_entries(message):
        kv.delete(key)
    _add_counter(kv, T_COUNT + u64(fid) + bytes([store]), -1, width=4)
    _add_counter(kv, META_MESSAGE_COUNT, -1)


def load_message(kv: ReadKV, fid: int, store: int, tsh: bytes) -> pb.Message | None:
    """The stored message with this primary key, or None."""
    raw = kv.get(msg_key(fid, store, tsh))
    if raw is None:
        return None
    return pb.Message.FromString(raw)


# ---------------------------------------------------------------------------------------------- storage


def storage_units(kv: ReadKV, fid: int, now_unix: int) -> list[tuple[int, int]]:
    """Active (unexpired) rented units of `fid` as (unit type, units) pairs; unit type 0 legacy, 1 2024."""
    units: list[tuple[int, int]] = []
    prefix = T_ONCHAIN + u64(fid) + bytes([oc.EVENT_TYPE_STORAGE_RENT])
    for _, raw in kv.scan(prefix):
        event = oc.OnChainEvent.FromString(raw)
        if storage_unit_expiry(event) > now_unix:
            legacy = event.block_timestamp < LEGACY_STORAGE_UNIT_CUTOFF
            units.append((0 if legacy else 1, event.storage_rent_event_body.units))
    return units


def store_limit(kv: ReadKV, fid: int, store: int, now_unix: int) -> int:
    """How many messages `fid` may keep in `store` now."""
    per_unit = UNIT_LIMITS.get(store, (0, 0))
    return sum(per_unit[unit_type] * n for unit_type, n in storage_units(kv, fid, now_unix))


def store_count(kv: ReadKV, fid: int, store: int) -> int:
    """How many messages `fid` has in `store`."""
    raw = kv.get(T_COUNT + u64(fid) + bytes([store]))
    return read_u32(raw) if raw else 0


def _oldest(kv: ReadKV, fid: int, store: int, n: int, skip: bytes | None) -> list[bytes]:
    """ts|hash of the `n` oldest messages of a store, leaving out `skip`."""
    out: list[bytes] = []
    prefix = T_MSG + u64(fid) + bytes([store])
    for key, _ in kv.scan(prefix):
        tsh = key[len(prefix) :]
        if tsh != skip:
            out.append(tsh)
            if len(out) == n:
                break
    return out


# ---------------------------------------------------------------------------------------------- merging


def is_signer_active(kv: ReadKV, fid: int, key: bytes) -> bool:
    """Whether `key` is an active signer of `fid`."""
    state = kv.get(T_SIGNER + u64(fid) + key)
    return state is not None and state[:1] == SIGNER_ACTIVE


def check_mergeable(kv: ReadKV, message: pb.Message) -> None:
    """The identity checks of a merge, without writing: registered fid, active signer, not a duplicate."""
    d = message.data
    if kv.get(T_ID_REGISTER + u64(d.fid)) is None:
        raise HubError("bad_request.unknown_fid", f"fid {d.fid} is not registered on this hub")
    if not is_signer_active(kv, d.fid, bytes(message.signer)):
        raise HubError(
            "bad_request.unknown_signer",
            f"signer 0x{bytes(message.signer).hex()} is not an active key of fid {d.fid}",
        )
    if kv.get(T_HASH + u64(d.fid) + bytes(message.hash)) is not None:
        raise HubError("bad_request.duplicate", f"message 0x{bytes(message.hash).hex()} is already merged")


def merge_message(kv: WriteKV, message: pb.Message, *, now_ms: int) -> list[he.HubEvent]:
    """Merge a validated message and return its events; on rejection raise HubError having written nothing."""
    check_mergeable(kv, message)
    d = message.data
    fid, digest = d.fid, bytes(message.hash)
    store = store_of(d)
    limit = store_limit(kv, fid, store, now_ms // 1000)
    if limit == 0:
        raise HubError("bad_request.no_storage", f"fid {fid} has no active storage units")

    tsh = ts_hash(d, digest)
    existing: pb.Message | None = None
    held = kv.get(T_CRDT + u64(fid) + bytes([store]) + crdt_key(d, digest))
    if held is not None:
        existing = load_message(kv, fid, store, held)
        if existing is not None and not incoming_wins(message, existing):
            raise HubError(
                "bad_request.conflict",
                f"message 0x{bytes(existing.hash).hex()} already holds this slot and wins the conflict",
            )

    count_after = store_count(kv, fid, store) - (1 if existing is not None else 0) + 1
    to_prune = _oldest(kv, fid, store, count_after - limit, held) if count_after > limit else []
    if to_prune and tsh < to_prune[-1]:
        # The incoming message is among the oldest: it would be pruned at once, so it changes nothing.
        raise HubError(
            "bad_request.prunable", f"fid {fid}'s store is full and this message is older than all kept"
        )

    log = _EventLog(kv, now_ms)
    if existing is not None:
        _remove(kv, existing)
    _insert(kv, message)
    merged = he.HubEvent(type=he.HUB_EVENT_TYPE_MERGE_MESSAGE)
    merged.merge_message_body.message.CopyFrom(message)
    if existing is not None:
        merged.merge_message_body.deleted_messages.append(existing)
    log.emit(merged)
    for old_tsh in to_prune:
        old = load_message(kv, fid, store, old_tsh)
        if old is None:  # pragma: no cover - index and primary table are written together
            continue
        _remove(kv, old)
        pruned = he.HubEvent(type=he.HUB_EVENT_TYPE_PRUNE_MESSAGE)
        pruned.prune_message_body.message.CopyFrom(old)
        log.emit(pruned)
    return log.events


@dataclass(frozen=True, slots=True)
class Revocation:
    """What a signer removal revoked (for logs)."""

    fid: int
    key: bytes
    revoked: int


def merge_onchain_event(kv: WriteKV, event: oc.OnChainEvent, *, now_ms: int) -> list[he.HubEvent]:
    """Apply an identity event (register, signer add/remove, rent); revoke a removed signer's messages."""
    validate_onchain_event(event)
    seen = T_ONCHAIN_SEEN + bytes(event.transaction_hash) + u32(event.log_index)
    if kv.get(seen) is not None:
        raise HubError("bad_request.duplicate", "on-chain event already merged")
    fid = event.fid
    registered = kv.get(T_ID_REGISTER + u64(fid)) is not None
    log = _EventLog(kv, now_ms)
    revoke: list[pb.Message] = []

    if event.type == oc.EVENT_TYPE_ID_REGISTER:
        kind = event.id_register_event_body.event_type
        if kind == oc.ID_REGISTER_EVENT_TYPE_REGISTER:
            if registered:
                raise HubError("bad_request.duplicate", f"fid {fid} is already registered")
            _add_counter(kv, META_FID_COUNT, 1)
        elif not registered:
            raise HubError("bad_request.unknown_fid", f"fid {fid} is not registered")
        kv.put(T_ID_REGISTER + u64(fid), event.SerializeToString())
    elif event.type == oc.EVENT_TYPE_SIGNER:
        if not registered:
            raise HubError("bad_request.unknown_fid", f"fid {fid} is not registered")
        key = bytes(event.signer_event_body.key)
        slot = T_SIGNER + u64(fid) + key
        state = kv.get(slot)
        if event.signer_event_body.event_type == oc.SIGNER_EVENT_TYPE_ADD:
            # Key registry states only move forward: a removed key is never active again.
            if state is None or state[:1] != SIGNER_REMOVED:
                kv.put(slot, SIGNER_ACTIVE + event.SerializeToString())
        else:
            kv.put(slot, SIGNER_REMOVED + event.SerializeToString())
            prefix = T_BY_SIGNER + u64(fid) + key
            for k, _ in kv.scan(prefix):
                store, tsh = k[len(prefix)], k[len(prefix) + 1 :]
                message = load_message(kv, fid, store, tsh)
                if message is not None:
                    revoke.append(message)
    kv.put(
        T_ONCHAIN
        + u64(fid)
        + bytes([event.type])
        + u32(event.block_number)
        + u32(event.log_index)
        + bytes(event.transaction_hash),
        event.SerializeToString(),
    )
    kv.put(seen, b"")
    merged = he.HubEvent(type=he.HUB_EVENT_TYPE_MERGE_ON_CHAIN_EVENT)
    merged.merge_on_chain_event_body.on_chain_event.CopyFrom(event)
    log.emit(merged)
    for message in revoke:
        _remove(kv, message)
        revoked = he.HubEvent(type=he.HUB_EVENT_TYPE_REVOKE_MESSAGE)
        revoked.revoke_message_body.message.CopyFrom(message)
        log.emit(revoked)
    return log.events


def prune_events(kv: WriteKV, *, now_ms: int, retention_ms: int, max_deletes: int = 10_000) -> int:
    """Delete events older than the retention window, at most `max_deletes` per call; return how many."""
    horizon = T_EVENT + u64(event_id_floor(now_ms - retention_ms))
    doomed: list[bytes] = []
    for key, _ in kv.scan(T_EVENT):
        if key >= horizon or len(doomed) >= max_deletes:
            break
        doomed.append(key)
    for key in doomed:
        kv.delete(key)
    if doomed:
        # Subscribers compare their cursor with this to learn that they fell behind the window.
        kv.put(META_EVENTS_PRUNED_TO, doomed[-1][len(T_EVENT) :])
    return len(doomed)
