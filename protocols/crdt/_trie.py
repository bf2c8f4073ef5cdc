"""A persisted Merkle prefix trie over the sync ids of the stored messages, for diff sync between hubs.

A sync id is `timestamp (u32) | message hash (20) | fid (u64) | message type (1)`: 33 bytes, timestamp
first so the trie is ordered by time, the hash next so that ids within one second spread uniformly.

The trie has a fixed depth. A node is named by a prefix of 0..5 bytes: the root is b"", prefixes of 1-4
bytes are the timestamp bytes, and a 5-byte prefix (timestamp + first hash byte) is a leaf bucket whose
hash is BLAKE3-160 of its sorted ids concatenated. An interior node lists its non-empty children sorted by
byte, each as `byte (1) | count (u32) | hash (20)`, and its hash is BLAKE3-160 of that list. Two hubs
compare roots, then descend only into children whose hashes differ, and finally exchange leaf id lists.

Maintenance is split so that ingest stays cheap. Storing or deleting a message only puts/deletes its
row in T_SYNC and marks its leaf bucket dirty (two puts). `flush_trie`, run once per write batch,
recomputes each dirty bucket and then each affected ancestor once, bottom up: a batch of hundreds of
messages in one second costs at most 256 bucket scans plus five interior updates.

Persisted records (T_TRIE + prefix): a leaf bucket is `count u64 | hash 20`; an interior node is
`count u64 | hash 20 | encoded children`. A missing record is an empty node.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError

from protocols.crdt._keys import (
    META_SYNC_TRIE_VERSION,
    STORE_OF_TYPE,
    T_MSG,
    T_SYNC,
    T_TRIE,
    T_TRIE_DIRTY,
    msg_key,
    u32,
)
from protocols.crdt._kv import ReadKV, WriteKV
from protocols.errors import HubError
from protocols.messages import blake3_160
from protocols.proto import message_pb2 as pb

SYNC_ID_BYTES: Final = 33
LEAF_PREFIX_BYTES: Final = 5
EMPTY_HASH: Final = bytes(20)

#: Bumped when the sync id or node encoding changes: `ensure_sync_trie` then rebuilds.
SYNC_TRIE_VERSION: Final = 1
MAX_SYNC_IDS_PAGE: Final = 10_000

_HASH_BYTES: Final = 20
_TS_HASH_BYTES: Final = 4 + _HASH_BYTES
_CHILD_BYTES: Final = 1 + 4 + _HASH_BYTES
_HEAD_BYTES: Final = 8 + _HASH_BYTES
_U32_MAX: Final = 0xFFFF_FFFF

_SYNC_ID: Final = struct.Struct(">I20sQB")
_FID_TYPE: Final = struct.Struct(">QB")
_CHILD: Final = struct.Struct(">BI20s")
_HEAD: Final = struct.Struct(">Q20s")
_CHILD_COUNT: Final = struct.Struct(">I")

#: Rows handled per scan while rebuilding, so nothing is written while a scan is open and memory stays flat.
_CHUNK: Final = 4096


def _invalid(message: str) -> HubError:
    return HubError("bad_request.invalid_param", message)


# ---------------------------------------------------------------------------------------------- sync ids


@dataclass(frozen=True, slots=True)
class SyncIdParts:
    """The fields of a sync id."""

    timestamp: int
    hash: bytes
    fid: int
    type: int


def sync_id(timestamp: int, digest: bytes, fid: int, message_type: int) -> bytes:
    """The 33-byte sync id `timestamp u32 | hash 20 | fid u64 | type u8` (all big-endian)."""
    if len(digest) != _HASH_BYTES:
        raise _invalid(f"message hash is {len(digest)} bytes, not {_HASH_BYTES}")
    try:
        return _SYNC_ID.pack(timestamp, bytes(digest), fid, message_type)
    except struct.error as e:
        raise _invalid(f"sync id field out of range: {e}") from None


def sync_id_of(message: pb.Message) -> bytes:
    """The sync id of a (validated) message, from `message.data` and `message.hash`."""
    d = message.data
    return sync_id(d.timestamp, bytes(message.hash), d.fid, d.type)


def sync_id_from_ts_hash(tsh: bytes, fid: int, message_type: int) -> bytes:
    """The sync id from the store's `timestamp | hash` key part (the ingest path, so no checks)."""
    return tsh + _FID_TYPE.pack(fid, message_type)


def parse_sync_id(raw: bytes) -> SyncIdParts:
    """Split a sync id into its fields; HubError invalid_param unless it is exactly 33 bytes."""
    if len(raw) != SYNC_ID_BYTES:
        raise _invalid(f"sync id is {len(raw)} bytes, not {SYNC_ID_BYTES}")
    timestamp, digest, fid, message_type = _SYNC_ID.unpack(raw)
    return SyncIdParts(timestamp=timestamp, hash=digest, fid=fid, type=message_type)


# ---------------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class TrieChild:
    """One non-empty child of an interior node: its byte below the parent, id count and hash."""

    byte: int
    count: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class TrieNode:
    """A trie node. `children` is () for leaf buckets and empty nodes."""

    prefix: bytes
    count: int
    hash: bytes
    children: tuple[TrieChild, ...]

    @property
    def is_leaf(self) -> bool:
        """Whether this is a leaf bucket (a 5-byte prefix), whose ids are listed rather than children."""
        return len(self.prefix) == LEAF_PREFIX_BYTES


def _encode_child(byte: int, count: int, digest: bytes) -> bytes:
    if len(digest) != _HASH_BYTES:
        raise _invalid(f"child hash is {len(digest)} bytes, not {_HASH_BYTES}")
    try:
        return _CHILD.pack(byte, count, digest)
    except struct.error as e:
        raise _invalid(f"trie child field out of range: {e}") from None


def interior_hash(children: Sequence[TrieChild]) -> bytes:
    """Hash of an interior node: BLAKE3-160 of its children encoded in order; EMPTY_HASH if none."""
    if not children:
        return EMPTY_HASH
    return blake3_160(b"".join(_encode_child(c.byte, c.count, c.hash) for c in children))


def leaf_hash(sorted_ids: Sequence[bytes]) -> bytes:
    """Hash of a leaf bucket: BLAKE3-160 of its sorted ids concatenated; EMPTY_HASH if none."""
    if not sorted_ids:
        return EMPTY_HASH
    return blake3_160(b"".join(sorted_ids))


def check_interior_node(node: TrieNode) -> str | None:
    """Check a peer's interior node for internal consistency: None if it is, else a one-line reason.

    This proves nothing about the peer's messages, only that the node is well formed and that its hash
    commits to exactly the children it lists, so a descent can trust the child hashes it compares.
    """
    if not 0 <= len(node.prefix) < LEAF_PREFIX_BYTES:
        return f"prefix of {len(node.prefix)} bytes is not an interior node"
    if not node.children:
        if node.count != 0 or node.hash != EMPTY_HASH:
            return "node without children must have count 0 and the empty hash"
        return None
    previous = -1
    for c in node.children:
        if not 0 <= c.byte <= 0xFF:
            return f"child byte {c.byte} is out of range"
        if c.byte <= previous:
            return f"child byte {c.byte} is not after {previous}: children must be strictly increasing"
        previous = c.byte
        if not 1 <= c.count <= _U32_MAX:
            return f"child {c.byte} has count {c.count}, not 1..{_U32_MAX}"
        if len(c.hash) != _HASH_BYTES:
            return f"child {c.byte} hash is {len(c.hash)} bytes, not {_HASH_BYTES}"
    total = sum(c.count for c in node.children)
    if node.count != total:
        return f"count {node.count} is not the sum of the children's counts ({total})"
    if node.hash != interior_hash(node.children):
        return "hash does not match the children"
    return None


def check_leaf_ids(prefix: bytes, count: int, digest: bytes, ids: Sequence[bytes]) -> str | None:
    """Check a peer's complete id list of a leaf bucket against the bucket's count and hash.

    None if every id is a 33-byte sync id under `prefix`, they are strictly increasing, there are `count`
    of them and they hash to `digest`; else a one-line reason.
    """
    if len(prefix) != LEAF_PREFIX_BYTES:
        return f"prefix of {len(prefix)} bytes is not a leaf bucket"
    previous = b""
    for sid in ids:
        if len(sid) != SYNC_ID_BYTES:
            return f"sync id of {len(sid)} bytes, not {SYNC_ID_BYTES}"
        if not sid.startswith(prefix):
            return f"sync id 0x{sid.hex()} is not under prefix 0x{prefix.hex()}"
        if sid <= previous:
            return f"sync id 0x{sid.hex()} is not after the previous one: ids must be strictly increasing"
        previous = sid
    if len(ids) != count:
        return f"{len(ids)} ids listed but the bucket counts {count}"
    if leaf_hash(ids) != digest:
        return "ids do not hash to the bucket's hash"
    return None


def subtree_hash(prefix: bytes, sorted_ids: Sequence[bytes]) -> bytes:
    """The hash the sync trie gives the interior node at `prefix` (0-4 bytes) holding exactly `sorted_ids`
    (ascending, distinct, all under `prefix`): leaf buckets first, then one level up at a time."""
    if len(prefix) >= LEAF_PREFIX_BYTES:
        raise ValueError(f"prefix {prefix.hex()} is a leaf bucket, not an interior node")
    # (prefix, count, hash) of the non-empty nodes of one level, in order.
    level: list[tuple[bytes, int, bytes]] = []
    for leaf, group in itertools.groupby(sorted_ids, key=lambda sid: sid[:LEAF_PREFIX_BYTES]):
        ids = list(group)
        level.append((leaf, len(ids), leaf_hash(ids)))
    for depth in range(LEAF_PREFIX_BYTES - 1, len(prefix) - 1, -1):
        parents = []
        for parent, nodes in itertools.groupby(level, key=lambda node: node[0][:depth]):
            children = [TrieChild(child[-1], count, digest) for child, count, digest in nodes]
            parents.append((parent, sum(c.count for c in children), interior_hash(children)))
        level = parents
    return level[0][2] if level else EMPTY_HASH


def _decode_children(body: bytes) -> tuple[TrieChild, ...]:
    return tuple(TrieChild(b, n, h) for b, n, h in _CHILD.iter_unpack(body))


def _empty(prefix: bytes) -> TrieNode:
    return TrieNode(prefix=prefix, count=0, hash=EMPTY_HASH, children=())


def _decode(prefix: bytes, record: bytes) -> TrieNode:
    count, digest = _HEAD.unpack_from(record)
    children = () if len(prefix) == LEAF_PREFIX_BYTES else _decode_children(record[_HEAD_BYTES:])
    return TrieNode(prefix=prefix, count=count, hash=digest, children=children)


def _interior_record(encoded_children: list[bytes]) -> bytes:
    """Record of an interior node from its encoded children in byte order (non-empty list)."""
    body = b"".join(encoded_children)
    total = sum(_CHILD_COUNT.unpack_from(c, 1)[0] for c in encoded_children)
    return _HEAD.pack(total, blake3_160(body)) + body


def _leaf_record(ids: Sequence[bytes]) -> bytes:
    return _HEAD.pack(len(ids), leaf_hash(ids))


def _child_entry(prefix: bytes, record: bytes) -> bytes:
    """The entry a node's parent lists for it (its last prefix byte, count and hash)."""
    count, digest = _HEAD.unpack_from(record)
    if count > _U32_MAX:
        raise HubError("unknown", f"trie node 0x{prefix.hex()} holds {count} ids, more than a u32 count")
    return _CHILD.pack(prefix[-1], count, digest)


# ---------------------------------------------------------------------------------------------- reads


def trie_node(kv: ReadKV, prefix: bytes) -> TrieNode:
    """The persisted node at `prefix` (0..5 bytes) as of the last flush; an empty node if there is none."""
    if not 0 <= len(prefix) <= LEAF_PREFIX_BYTES:
        raise _invalid(f"trie prefix is {len(prefix)} bytes, not 0..{LEAF_PREFIX_BYTES}")
    prefix = bytes(prefix)
    record = kv.get(T_TRIE + prefix)
    return _empty(prefix) if record is None else _decode(prefix, record)


def trie_root(kv: ReadKV) -> TrieNode:
    """The persisted root node (count and hash of every stored message's sync id)."""
    return trie_node(kv, b"")


def sync_ids_under(kv: ReadKV, prefix: bytes, *, after: bytes | None = None, limit: int) -> list[bytes]:
    """Up to `limit` (1..10,000) stored sync ids starting with `prefix` (0..33 bytes), sorted, after `after`.

    `after` pages: pass the last id of the previous page. It need not lie under `prefix`.
    """
    if not 0 <= len(prefix) <= SYNC_ID_BYTES:
        raise _invalid(f"sync id prefix is {len(prefix)} bytes, not 0..{SYNC_ID_BYTES}")
    if not 1 <= limit <= MAX_SYNC_IDS_PAGE:
        raise _invalid(f"limit {limit} is not 1..{MAX_SYNC_IDS_PAGE}")
    start: bytes | None = None
    if after is not None:
        if len(after) > SYNC_ID_BYTES:
            raise _invalid(f"after is {len(after)} bytes, more than {SYNC_ID_BYTES}")
        if after.startswith(prefix):
            start = T_SYNC + after
        elif after > prefix:
            return []  # after everything under the prefix
        # else: before everything under the prefix; scan it from the start
    rows = kv.scan(T_SYNC + prefix, after=start)
    return [key[len(T_SYNC) :] for key, _ in itertools.islice(rows, limit)]


def has_sync_id(kv: ReadKV, sid: bytes) -> bool:
    """Whether a message with this sync id is stored (False for anything not 33 bytes)."""
    return len(sid) == SYNC_ID_BYTES and kv.get(T_SYNC + sid) is not None


def load_by_sync_id(kv: ReadKV, sid: bytes) -> pb.Message | None:
    """The stored message with this sync id, or None (HubError invalid_param unless 33 bytes)."""
    parts = parse_sync_id(sid)
    store = STORE_OF_TYPE.get(parts.type)
    if store is None:
        return None
    raw = kv.get(msg_key(parts.fid, store, u32(parts.timestamp) + parts.hash))
    if raw is None:
        return None
    message = pb.Message.FromString(raw)
    # The primary key has no type: a forged id with a wrong type must not find the message.
    return message if sync_id_of(message) == sid else None


# ---------------------------------------------------------------------------------------------- writes


def add_sync_id(kv: WriteKV, sid: bytes) -> None:
    """Record a stored message's sync id and mark its leaf bucket for the next flush."""
    if len(sid) != SYNC_ID_BYTES:
        raise _invalid(f"sync id is {len(sid)} bytes, not {SYNC_ID_BYTES}")
    kv.put(T_SYNC + sid, b"")
    kv.put(T_TRIE_DIRTY + sid[:LEAF_PREFIX_BYTES], b"")


def remove_sync_id(kv: WriteKV, sid: bytes) -> None:
    """Forget a deleted message's sync id and mark its leaf bucket for the next flush."""
    if len(sid) != SYNC_ID_BYTES:
        raise _invalid(f"sync id is {len(sid)} bytes, not {SYNC_ID_BYTES}")
    kv.delete(T_SYNC + sid)
    kv.put(T_TRIE_DIRTY + sid[:LEAF_PREFIX_BYTES], b"")


def _write_record(kv: WriteKV, prefix: bytes, old: bytes | None, record: bytes | None) -> bool:
    """Replace a node's record `old` by `record` (None: no node); whether it changed."""
    if old == record:
        return False
    if record is None:
        kv.delete(T_TRIE + prefix)
    else:
        kv.put(T_TRIE + prefix, record)
    return True


def flush_trie(kv: WriteKV) -> int:
    """Bring the persisted trie up to date with T_SYNC; returns how many leaf buckets were recomputed.

    Each dirty bucket is rescanned once; then, level by level, each parent of a changed node is
    updated once (its changed child entries replaced, the node rehashed), so the cost follows the number
    of distinct buckets touched, not the number of ids added or removed.
    """
    dirty = [key[len(T_TRIE_DIRTY) :] for key, _ in kv.scan(T_TRIE_DIRTY)]
    # changed[parent prefix][child byte] = the child's new entry, or None if it became empty.
    changed: dict[bytes, dict[int, bytes | None]] = {}
    for leaf in dirty:
        kv.delete(T_TRIE_DIRTY + leaf)
        if len(leaf) != LEAF_PREFIX_BYTES:  # pragma: no cover - only add/remove_sync_id write markers
            continue
        ids = [key[len(T_SYNC) :] for key, _ in kv.scan(T_SYNC + leaf)]
        record = _leaf_record(ids) if ids else None
        if _write_record(kv, leaf, kv.get(T_TRIE + leaf), record):
            entry = None if record is None else _child_entry(leaf, record)
            changed.setdefault(leaf[:-1], {})[leaf[-1]] = entry
    while changed:  # one level per round, leaves' parents first; the root changes nothing above it
        above: dict[bytes, dict[int, bytes | None]] = {}
        for prefix, updates in changed.items():
            old = kv.get(T_TRIE + prefix)
            body = old[_HEAD_BYTES:] if old is not None else b""
            entries = {body[i]: body[i : i + _CHILD_BYTES] for i in range(0, len(body), _CHILD_BYTES)}
            for byte, entry in updates.items():
                if entry is None:
                    entries.pop(byte, None)
                else:
                    entries[byte] = entry
            record = _interior_record([entries[b] for b in sorted(entries)]) if entries else None
            if _write_record(kv, prefix, old, record) and prefix:
                entry = None if record is None else _child_entry(prefix, record)
                above.setdefault(prefix[:-1], {})[prefix[-1]] = entry
        changed = above
    return len(dirty)


# ---------------------------------------------------------------------------------------------- rebuild


def _chunked_keys(kv: ReadKV, prefix: bytes) -> Iterator[list[tuple[bytes, bytes]]]:
    """Rows under `prefix` in chunks; no scan is open while a chunk is handed out, so callers may write."""
    after: bytes | None = None
    while True:
        chunk = list(itertools.islice(kv.scan(prefix, after=after), _CHUNK))
        if not chunk:
            return
        yield chunk
        after = chunk[-1][0]


def build_trie_nodes(sorted_ids: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(prefix, record) of every node of the trie over `sorted_ids` (ascending, distinct), children first.

    The from-scratch construction, streaming: memory is one open node per level. The rebuild and the
    consistency checker use it as the reference the incremental `flush_trie` must agree with.
    """
    # open_[level] = (prefix, encoded children so far) of the node being filled at that level.
    open_: list[tuple[bytes, list[bytes]]] = []
    leaf: bytes | None = None
    leaf_ids: list[bytes] = []

    def close_to(level: int) -> Iterator[tuple[bytes, bytes]]:
        while len(open_) > level:
            prefix, children = open_.pop()
            record = _interior_record(children)
            yield prefix, record
            if open_:
                open_[-1][1].append(_child_entry(prefix, record))

    def finish_leaf(prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        record = _leaf_record(leaf_ids)
        yield prefix, record
        open_[-1][1].append(_child_entry(prefix, record))

    for sid in sorted_ids:
        prefix = sid[:LEAF_PREFIX_BYTES]
        if prefix != leaf:
            if leaf is not None:
                yield from finish_leaf(leaf)
            # Close the open nodes this leaf is not under, then open the ones it is.
            depth = 0
            while depth < len(open_) and open_[depth][0] == prefix[:depth]:
                depth += 1
            yield from close_to(depth)
            open_.extend((prefix[:level], []) for level in range(depth, LEAF_PREFIX_BYTES))
            leaf, leaf_ids = prefix, []
        leaf_ids.append(sid)
    if leaf is not None:
        yield from finish_leaf(leaf)
    yield from close_to(0)


def _stored_sync_ids(kv: ReadKV) -> Iterator[bytes]:
    for chunk in _chunked_keys(kv, T_SYNC):
        for key, _ in chunk:
            yield key[len(T_SYNC) :]


def rebuild_sync_trie(kv: WriteKV) -> int:
    """Drop T_SYNC, T_TRIE and the dirty markers and rebuild them from the stored messages; returns ids."""
    for table in (T_SYNC, T_TRIE, T_TRIE_DIRTY):
        for chunk in _chunked_keys(kv, table):
            for key, _ in chunk:
                kv.delete(key)
    indexed = 0
    for chunk in _chunked_keys(kv, T_MSG):
        for _, raw in chunk:
            try:
                sid = sync_id_of(pb.Message.FromString(raw))
            except (DecodeError, HubError):
                continue  # unreadable rows are the consistency checker's to report
            kv.put(T_SYNC + sid, b"")
            indexed += 1
    for prefix, record in build_trie_nodes(_stored_sync_ids(kv)):
        kv.put(T_TRIE + prefix, record)
    return indexed


def ensure_sync_trie(kv: WriteKV) -> int:
    """Build the sync trie of a database written before it existed; returns ids indexed (0 if current).

    Run once at start, inside a write transaction, before any merge.
    """
    version = u32(SYNC_TRIE_VERSION)
    if kv.get(META_SYNC_TRIE_VERSION) == version:
        return 0
    indexed = rebuild_sync_trie(kv)
    kv.put(META_SYNC_TRIE_VERSION, version)
    return indexed
