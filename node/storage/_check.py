"""Offline consistency check of the message store's keyspace (after a crash, in tests, from admin tools).

The merge code keeps a primary table of messages and several derived tables (CRDT slots, hash index,
signer index, by-parent/mention/target indexes, per-store counters, the global message count) in one
transaction. After a crash or a bug they could disagree; this walks both directions:

* every stored message is intact (parses, its hash is the BLAKE3-160 of its data_bytes, its key is its
  fid/store/timestamp/hash), belongs to a registered fid and an active signer, and owns every derived entry
  it should have;
* every derived entry points at a stored message that wants exactly that entry;
* counters equal what is really stored;
* once the sync trie is built (its META marker is set): T_SYNC holds exactly the sync ids of the stored
  messages, no bucket is left marked dirty (every committed batch flushes), and every persisted trie
  node equals what a from-scratch build over T_SYNC gives, with no stale nodes. A database without the
  marker predates the trie (`protocols.crdt.ensure_sync_trie` has not run) and is not checked for it.

The entries a message should own are derived here from the key layout rather than taken from the merge
code, so a merge bug that writes the wrong key is caught instead of being checked against itself. Each
table is scanned once with point lookups for the other direction, so memory is bounded by the number of
problems kept (`max_problems`), not by the size of the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from google.protobuf.message import DecodeError

from protocols.crdt import LEAF_PREFIX_BYTES, SYNC_ID_BYTES, ReadKV
from protocols.crdt._keys import (
    HASH_LEN,
    META_LAST_EVENT_ID,
    META_MESSAGE_COUNT,
    META_SYNC_TRIE_VERSION,
    SIGNER_ACTIVE,
    STORE_OF_TYPE,
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
    T_REACTION_BY_TARGET,
    T_SIGNER,
    T_SYNC,
    T_TRIE,
    T_TRIE_DIRTY,
    TS_HASH_LEN,
    cast_target_key,
    crdt_key,
    msg_key,
    reaction_target_key,
    read_u32,
    read_u64,
    store_of,
    ts_hash,
    u64,
    url_target_key,
)
from protocols.crdt._trie import build_trie_nodes
from protocols.errors import HubError
from protocols.messages import blake3_160
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr

DEFAULT_MAX_PROBLEMS: Final = 1000

_FID_LEN: Final = 8
_MSG_KEY_LEN: Final = 1 + _FID_LEN + 1 + TS_HASH_LEN
_COUNT_KEY_LEN: Final = 1 + _FID_LEN + 1
#: Index keys of the by-parent/mention/target tables end with ts | hash | author fid.
_INDEX_TAIL_LEN: Final = TS_HASH_LEN + _FID_LEN
#: A persisted trie node: count u64 | hash, then (interior nodes) byte | count u32 | hash per child.
_TRIE_HEAD_LEN: Final = 8 + HASH_LEN
_TRIE_CHILD_LEN: Final = 1 + 4 + HASH_LEN

#: (key, value, what) of one derived entry.
_Entry = tuple[bytes, bytes, str]
#: Where an index entry says its message is: (fid, store, ts | hash), or None if the entry is malformed.
_Locator = Callable[[bytes, bytes], tuple[int, int, bytes] | None]


class _Problems:
    """Collects problem lines, keeping at most `limit` of them but counting all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, line: str) -> None:
        if len(self.lines) < self.limit:
            self.lines.append(line)
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"... and {self.dropped} more problems not shown"]
        return list(self.lines)


def _store_name(store: int) -> str:
    try:
        return rr.StoreType.Name(store)
    except ValueError:
        return f"store {store}"


def _where(fid: int, store: int, tsh: bytes) -> str:
    return f"message fid {fid} {_store_name(store)} ts {read_u32(tsh)} hash 0x{tsh[4:].hex()}"


def _parse(raw: bytes) -> tuple[pb.Message, pb.MessageData] | str:
    """The stored message and the MessageData its data_bytes hold, or why they cannot be read."""
    try:
        message = pb.Message.FromString(raw)
    except DecodeError as e:
        return f"is not a valid Message: {e}"
    if not message.data_bytes:
        return "has no data_bytes"
    try:
        data = pb.MessageData.FromString(message.data_bytes)
    except DecodeError as e:
        return f"has data_bytes that are not a valid MessageData: {e}"
    return message, data


def _wanted(message: pb.Message, data: pb.MessageData, store: int, tsh: bytes) -> list[_Entry]:
    """Every derived entry a stored message must own (the primary entry excluded)."""
    fid, digest = data.fid, bytes(message.hash)
    entries: list[_Entry] = [
        (T_CRDT + u64(fid) + bytes([store]) + crdt_key(data, digest), tsh, "CRDT slot"),
        (T_HASH + u64(fid) + digest, bytes([store]) + tsh, "hash index entry"),
        (T_BY_SIGNER + u64(fid) + bytes(message.signer) + bytes([store]) + tsh, b"", "signer index entry"),
    ]
    tail = tsh + u64(fid)
    if data.type == pb.MESSAGE_TYPE_CAST_ADD:
        body = data.cast_add_body
        parent = body.WhichOneof("parent")
        if parent == "parent_cast_id":
            entries.append(
                (T_BY_PARENT + cast_target_key(body.parent_cast_id) + tail, b"", "parent index entry")
            )
        elif parent == "parent_url":
            entries.append((T_BY_PARENT + url_target_key(body.parent_url) + tail, b"", "parent index entry"))
        for mentioned in set(body.mentions):
            entries.append(
                (T_BY_MENTION + u64(mentioned) + tail, b"", f"mention index entry for fid {mentioned}")
            )
    elif data.type == pb.MESSAGE_TYPE_REACTION_ADD:
        body_r = data.reaction_body
        entries.append(
            (
                T_REACTION_BY_TARGET + reaction_target_key(body_r) + tail,
                bytes([body_r.type]),
                "reaction index entry",
            )
        )
    elif data.type == pb.MESSAGE_TYPE_LINK_ADD:
        body_l = data.link_body
        entries.append(
            (
                T_LINK_BY_TARGET + u64(body_l.target_fid) + tail,
                body_l.type.encode(),
                "link-target index entry",
            )
        )
    return entries


def _check_message(kv: ReadKV, key: bytes, raw: bytes, problems: _Problems, *, sync: bool) -> None:
    fid, store, tsh = read_u64(key[1:9]), key[9], key[10:]
    where = _where(fid, store, tsh)
    parsed = _parse(raw)
    if isinstance(parsed, str):
        problems.add(f"{where} {parsed}")
        return
    message, data = parsed
    digest = bytes(message.hash)
    if digest != blake3_160(message.data_bytes):
        problems.add(f"{where}: hash is not the BLAKE3-160 digest of its data_bytes")
    if message.HasField("data") and message.data != data:
        problems.add(f"{where}: data differs from what data_bytes hold")
    try:
        real_store = store_of(data)
    except HubError as e:
        problems.add(f"{where}: {e.message}")
        return
    if (data.fid, real_store, ts_hash(data, digest)) != (fid, store, tsh):
        problems.add(
            f"{where} is stored under the wrong key; its content says fid {data.fid} "
            f"{_store_name(real_store)} ts {data.timestamp} hash 0x{digest.hex()}"
        )
        return
    if kv.get(T_ID_REGISTER + u64(fid)) is None:
        problems.add(f"{where}: fid {fid} is not registered")
    state = kv.get(T_SIGNER + u64(fid) + bytes(message.signer))
    if state is None or state[:1] != SIGNER_ACTIVE:
        problems.add(f"{where}: signer 0x{bytes(message.signer).hex()} is not an active key of fid {fid}")
    # The sync id from the layout (ts | hash | fid | type), not from the trie module's helpers.
    if sync and kv.get(T_SYNC + tsh + u64(fid) + bytes([data.type])) is None:
        problems.add(f"{where}: sync id is missing")
    for entry_key, value, what in _wanted(message, data, store, tsh):
        actual = kv.get(entry_key)
        if actual is None:
            problems.add(f"{where}: {what} is missing")
        elif actual != value:
            if what == "CRDT slot":
                problems.add(
                    f"{where}: its CRDT slot is held by ts|hash 0x{actual.hex()} (two messages in one slot)"
                )
            else:
                problems.add(f"{where}: {what} has value 0x{actual.hex()}, expected 0x{value.hex()}")


def _check_group_count(kv: ReadKV, fid: int, store: int, real: int, problems: _Problems) -> None:
    raw = kv.get(T_COUNT + u64(fid) + bytes([store]))
    if raw is None:
        problems.add(f"fid {fid} {_store_name(store)}: message counter is missing ({real} messages stored)")
    elif len(raw) != 4:
        problems.add(f"fid {fid} {_store_name(store)}: message counter is {len(raw)} bytes, not 4")
    elif read_u32(raw) != real:
        problems.add(f"fid {fid} {_store_name(store)}: message counter says {read_u32(raw)}, {real} stored")


def _check_messages(kv: ReadKV, problems: _Problems, *, sync: bool) -> int:
    """Forward pass over the primary table; returns how many primary entries there are."""
    total = 0
    group: tuple[int, int] | None = None
    group_count = 0
    for key, raw in kv.scan(T_MSG):
        total += 1
        if len(key) != _MSG_KEY_LEN:
            problems.add(f"message key 0x{key.hex()} has {len(key)} bytes, not {_MSG_KEY_LEN}")
            continue
        here = (read_u64(key[1:9]), key[9])
        if here != group:
            if group is not None:
                _check_group_count(kv, *group, group_count, problems)
            group, group_count = here, 0
        group_count += 1
        _check_message(kv, key, raw, problems, sync=sync)
    if group is not None:
        _check_group_count(kv, *group, group_count, problems)
    return total


def _check_index(kv: ReadKV, table: bytes, name: str, locate: _Locator, problems: _Problems) -> None:
    """Reverse pass: each entry of `table` must be one the message it points at wants."""
    for key, value in kv.scan(table):
        where = locate(key, value)
        if where is None:
            problems.add(f"{name} entry 0x{key.hex()} is malformed")
            continue
        fid, store, tsh = where
        raw = kv.get(msg_key(fid, store, tsh))
        if raw is None:
            problems.add(f"{name} entry 0x{key.hex()} points at a missing {_where(fid, store, tsh)}")
            continue
        parsed = _parse(raw)
        if isinstance(parsed, str):
            continue  # reported by the forward pass
        message, data = parsed
        try:
            wanted = _wanted(message, data, store, tsh)
        except HubError:
            continue  # an unstorable type; reported by the forward pass
        if not any(k == key and v == value for k, v, _ in wanted):
            problems.add(
                f"{name} entry 0x{key.hex()} does not belong to the {_where(fid, store, tsh)} it points at"
            )


def _locate_crdt(key: bytes, value: bytes) -> tuple[int, int, bytes] | None:
    if len(key) < _COUNT_KEY_LEN + 1 or len(value) != TS_HASH_LEN:
        return None
    return read_u64(key[1:9]), key[9], value


def _locate_hash(key: bytes, value: bytes) -> tuple[int, int, bytes] | None:
    if len(key) != 1 + _FID_LEN + HASH_LEN or len(value) != 1 + TS_HASH_LEN:
        return None
    return read_u64(key[1:9]), value[0], value[1:]


def _locate_signer(key: bytes, _value: bytes) -> tuple[int, int, bytes] | None:
    if len(key) < 1 + _FID_LEN + 1 + TS_HASH_LEN:
        return None
    return read_u64(key[1:9]), key[-TS_HASH_LEN - 1], key[-TS_HASH_LEN:]


def _locate_tail(store: int) -> _Locator:
    def locate(key: bytes, _value: bytes) -> tuple[int, int, bytes] | None:
        if len(key) < 1 + _INDEX_TAIL_LEN:
            return None
        tail = key[-_INDEX_TAIL_LEN:]
        return read_u64(tail[TS_HASH_LEN:]), store, tail[:TS_HASH_LEN]

    return locate


def _first(kv: ReadKV, prefix: bytes, *, reverse: bool = False) -> tuple[bytes, bytes] | None:
    return next(iter(kv.scan(prefix, reverse=reverse)), None)


def _check_counters(kv: ReadKV, total: int, problems: _Problems) -> None:
    # Counters of stores that hold messages were compared in the forward pass; the rest must be zero.
    for key, raw in kv.scan(T_COUNT):
        if len(key) != _COUNT_KEY_LEN or len(raw) != 4:
            problems.add(f"message counter 0x{key.hex()} = 0x{raw.hex()} is malformed")
            continue
        fid, store = read_u64(key[1:9]), key[9]
        if read_u32(raw) != 0 and _first(kv, T_MSG + key[1:]) is None:
            problems.add(f"fid {fid} {_store_name(store)}: message counter says {read_u32(raw)}, 0 stored")
    raw_total = kv.get(META_MESSAGE_COUNT)
    recorded = read_u64(raw_total) if raw_total else 0
    if recorded != total:
        problems.add(f"total message count says {recorded}, {total} stored")


def _check_events(kv: ReadKV, problems: _Problems) -> None:
    last = _first(kv, T_EVENT, reverse=True)
    if last is None:
        return
    raw = kv.get(META_LAST_EVENT_ID)
    recorded = read_u64(raw) if raw else 0
    newest = read_u64(last[0][1:])
    if newest > recorded:
        problems.add(f"event {newest} is stored but the last assigned event id is {recorded}")


def _check_sync_ids(kv: ReadKV, problems: _Problems) -> None:
    """Reverse pass over T_SYNC: each id must name a stored message of its type (forward: _check_message)."""
    for key, _ in kv.scan(T_SYNC):
        sid = key[len(T_SYNC) :]
        if len(sid) != SYNC_ID_BYTES:
            problems.add(f"sync id 0x{sid.hex()} has {len(sid)} bytes, not {SYNC_ID_BYTES}")
            continue
        fid, message_type = read_u64(sid[TS_HASH_LEN:]), sid[-1]
        store = STORE_OF_TYPE.get(message_type)
        if store is None:
            problems.add(f"sync id 0x{sid.hex()} has message type {message_type}, which is not stored")
            continue
        raw = kv.get(msg_key(fid, store, sid[:TS_HASH_LEN]))
        if raw is None:
            problems.add(f"sync id 0x{sid.hex()} points at a missing {_where(fid, store, sid[:TS_HASH_LEN])}")
            continue
        parsed = _parse(raw)
        if not isinstance(parsed, str) and parsed[1].type != message_type:
            problems.add(
                f"sync id 0x{sid.hex()} says type {message_type} but the "
                f"{_where(fid, store, sid[:TS_HASH_LEN])} it points at has type {parsed[1].type}"
            )


def _describe_node(record: bytes) -> str:
    if len(record) < _TRIE_HEAD_LEN or (len(record) - _TRIE_HEAD_LEN) % _TRIE_CHILD_LEN:
        return f"malformed record 0x{record.hex()}"
    children = (len(record) - _TRIE_HEAD_LEN) // _TRIE_CHILD_LEN
    return f"count {read_u64(record)} hash 0x{record[8:_TRIE_HEAD_LEN].hex()} with {children} children"


def _check_trie(kv: ReadKV, problems: _Problems) -> None:
    """The persisted trie equals a from-scratch build over T_SYNC, and nothing waits for a flush."""
    for key, _ in kv.scan(T_TRIE_DIRTY):
        problems.add(
            f"sync trie bucket 0x{key[len(T_TRIE_DIRTY) :].hex()} is still marked dirty (not flushed)"
        )
    ids = (key[len(T_SYNC) :] for key, _ in kv.scan(T_SYNC))
    for prefix, record in build_trie_nodes(ids):
        actual = kv.get(T_TRIE + prefix)
        if actual is None:
            problems.add(f"sync trie node 0x{prefix.hex()} is missing")
        elif actual != record:
            problems.add(
                f"sync trie node 0x{prefix.hex()} holds {_describe_node(actual)}, "
                f"a rebuild gives {_describe_node(record)}"
            )
    # Every node with an id under it was compared above; any other persisted node is stale.
    for key, _ in kv.scan(T_TRIE):
        prefix = key[len(T_TRIE) :]
        if len(prefix) > LEAF_PREFIX_BYTES:
            problems.add(
                f"sync trie key 0x{key.hex()} has a {len(prefix)}-byte prefix, more than {LEAF_PREFIX_BYTES}"
            )
        elif _first(kv, T_SYNC + prefix) is None:
            problems.add(f"sync trie node 0x{prefix.hex()} is stale: no sync id is under it")


def check_consistency(kv: ReadKV, *, max_problems: int = DEFAULT_MAX_PROBLEMS) -> list[str]:
    """Walk the whole message keyspace and describe every inconsistency found; [] means consistent.

    Pure and read-only: pass a snapshot (`LmdbStore.read()`, `MemoryKV`). At most `max_problems` lines
    are kept; a final line then says how many more there were.
    """
    problems = _Problems(max_problems)
    sync = kv.get(META_SYNC_TRIE_VERSION) is not None
    total = _check_messages(kv, problems, sync=sync)
    _check_index(kv, T_CRDT, "CRDT slot", _locate_crdt, problems)
    _check_index(kv, T_HASH, "hash index", _locate_hash, problems)
    _check_index(kv, T_BY_SIGNER, "signer index", _locate_signer, problems)
    _check_index(kv, T_BY_PARENT, "parent index", _locate_tail(rr.STORE_TYPE_CASTS), problems)
    _check_index(kv, T_BY_MENTION, "mention index", _locate_tail(rr.STORE_TYPE_CASTS), problems)
    _check_index(kv, T_REACTION_BY_TARGET, "reaction index", _locate_tail(rr.STORE_TYPE_REACTIONS), problems)
    _check_index(kv, T_LINK_BY_TARGET, "link-target index", _locate_tail(rr.STORE_TYPE_LINKS), problems)
    _check_counters(kv, total, problems)
    _check_events(kv, problems)
    if sync:
        _check_sync_ids(kv, problems)
        _check_trie(kv, problems)
    return problems.result()
