"""The durable content-addressed block store: blocks de-duplicated by CID, blob records, pins and GC.

One LMDB environment of its own (`<data-dir>/blobs.lmdb`, opened through `node.storage.LmdbStore`, so
commits are fsync'd and the map grows on demand), one keyspace whose first byte names the table:

    B cid                 -> block bytes (verified against the CID before it is written)
    R cid                 -> refs u32, pins u32, size u64: how many blob records hold the block, how many
                             of those are pinned, and its length (kept here so GC never reads block data)
    U cid                 -> b"": index of blocks with refs == 0, the only ones GC may delete
    O root                -> blob record (see `_Record`)
    A created_us root     -> b"": blob records oldest first, for quota eviction
    M len(root) root cid  -> b"": the blob `root` holds block `cid` (one row per distinct block)
    \\0 "usage"           -> running totals (block bytes and count, pinned bytes, blobs, pinned blobs)

Reference counts and totals change in the same transaction as the rows they summarise, so GC and the
quota never scan the whole store (DESIGN.md section 5: Kubo's global mark-and-sweep is what to avoid).

Crash safety: a put's blocks are written under an in-memory session and belong to no record until
`commit_blob` walks the DAG and, in that one transaction, records membership and the `complete` flag.
A crash before it leaves blocks nobody references (GC reclaims them) and, for a fetch, a record that
says complete=False: never a partial blob that looks complete.
"""

from __future__ import annotations

import logging
import re
import secrets
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from node.storage import LmdbStore, TxnKV
from protocols.blobs import (
    CODEC_DAG_PB,
    Block,
    Cid,
    block_file_size,
    decode_dag_node,
    iter_file_blocks,
    verify_block,
)
from protocols.errors import HubError

log = logging.getLogger("stateless.blobs")

T = TypeVar("T")

#: Address space reserved for the map (sparse: the file grows with the data). Large so that growing it,
#: which LMDB only allows while no transaction is open in the process, is rare for a blob store.
MAP_SIZE: Final = 1 << 40

_BLOCK: Final = b"B"
_REF: Final = b"R"
_UNREF: Final = b"U"
_BLOB: Final = b"O"
_AGE: Final = b"A"
_MEMBER: Final = b"M"
_USAGE_KEY: Final = b"\x00usage"

_REF_FMT: Final = struct.Struct(">IIQ")
_USAGE_FMT: Final = struct.Struct(">QQQQQ")
_RECORD_FMT: Final = struct.Struct(">BBQqQQd")
_RECORD_VERSION: Final = 1
_FLAG_COMPLETE: Final = 1
_FLAG_PINNED: Final = 2
_AGE_FMT: Final = struct.Struct(">Q")

_SESSION_RE: Final = re.compile(r"[0-9a-f]{32}")
#: GC deletes in transactions of about this many rows: bounded memory and commit size, few fsyncs.
_GC_BATCH: Final = 4096


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What the store knows about one blob.

    `blocks_total` and `blocks_present` count distinct blocks (a file of repeated chunks stores each
    chunk once); `blocks_total` is -1 until every internal node of the DAG is stored.
    """

    root: Cid
    size: int
    blocks_total: int
    blocks_present: int
    complete: bool
    pinned: bool
    created: float
    bytes_stored: int


@dataclass(frozen=True, slots=True)
class GcResult:
    """What one garbage collection removed."""

    blobs_removed: int
    blocks_removed: int
    bytes_freed: int


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """Totals of the store: block bytes (each distinct block once), blocks, blobs, pins and the quota.

    `file_bytes` is the LMDB file's used size (pages, including free pages LMDB will reuse).
    """

    bytes_stored: int
    blocks: int
    blobs: int
    pinned_blobs: int
    pinned_bytes: int
    quota_bytes: int | None
    file_bytes: int


@dataclass(slots=True)
class _Session:
    """A put (root unknown until the end) or fetch (root known) in progress; lives in memory only."""

    root: Cid | None
    pin: bool
    blocks: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class _Record:
    size: int
    blocks_total: int
    blocks_present: int
    bytes_stored: int
    complete: bool
    pinned: bool
    created: float

    def pack(self) -> bytes:
        flags = (_FLAG_COMPLETE if self.complete else 0) | (_FLAG_PINNED if self.pinned else 0)
        return _RECORD_FMT.pack(
            _RECORD_VERSION,
            flags,
            self.size,
            self.blocks_total,
            self.blocks_present,
            self.bytes_stored,
            self.created,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> _Record:
        version, flags, size, total, present, stored, created = _RECORD_FMT.unpack(raw)
        if version != _RECORD_VERSION:
            raise HubError("unavailable.storage_failure", f"blob record version {version} is not supported")
        return cls(
            size, total, present, stored, bool(flags & _FLAG_COMPLETE), bool(flags & _FLAG_PINNED), created
        )

    def info(self, root: Cid) -> BlobInfo:
        return BlobInfo(
            root=root,
            size=self.size,
            blocks_total=self.blocks_total,
            blocks_present=self.blocks_present,
            complete=self.complete,
            pinned=self.pinned,
            created=self.created,
            bytes_stored=self.bytes_stored,
        )


@dataclass(slots=True)
class _Usage:
    bytes_stored: int = 0
    blocks: int = 0
    pinned_bytes: int = 0
    blobs: int = 0
    pinned_blobs: int = 0

    @classmethod
    def load(cls, raw: bytes | None) -> _Usage:
        return cls() if raw is None else cls(*_USAGE_FMT.unpack(raw))

    def pack(self) -> bytes:
        return _USAGE_FMT.pack(
            self.bytes_stored, self.blocks, self.pinned_bytes, self.blobs, self.pinned_blobs
        )


def _unavailable(reason: str, message: str) -> HubError:
    """HubError `unavailable.<reason>` (storage_full, incomplete)."""
    return HubError(f"unavailable.{reason}", message)


def _member_prefix(root_b: bytes) -> bytes:
    return _MEMBER + bytes((len(root_b),)) + root_b


def _age_key(created: float, root_b: bytes) -> bytes:
    return _AGE + _AGE_FMT.pack(max(0, int(created * 1_000_000))) + root_b


def _root_size(cid: Cid, data: bytes | None) -> int:
    if data is None:
        return 0
    try:
        return block_file_size(cid, data)
    except HubError:
        return 0  # not a UnixFS file: commit_blob reports it


class _Tx:
    """The store's bookkeeping inside one write transaction; `close` writes the totals back."""

    def __init__(self, kv: TxnKV) -> None:
        self.kv = kv
        self.usage = _Usage.load(kv.get(_USAGE_KEY))

    def close(self) -> None:
        self.kv.put(_USAGE_KEY, self.usage.pack())

    # blocks and reference counts

    def ref(self, cid_b: bytes) -> tuple[int, int, int] | None:
        raw = self.kv.get(_REF + cid_b)
        return None if raw is None else _REF_FMT.unpack(raw)

    def put_block(self, cid_b: bytes, data: bytes) -> bool:
        """Store a verified block unless present; True if it was new."""
        if self.kv.get(_REF + cid_b) is not None:
            return False
        self.kv.put(_BLOCK + cid_b, data)
        self.kv.put(_REF + cid_b, _REF_FMT.pack(0, 0, len(data)))
        self.kv.put(_UNREF + cid_b, b"")
        self.usage.bytes_stored += len(data)
        self.usage.blocks += 1
        return True

    def adjust(self, cid_b: bytes, d_refs: int, d_pins: int) -> int:
        """Change a stored block's counts; returns its new reference count."""
        found = self.ref(cid_b)
        assert found is not None, "membership rows only name stored blocks"
        refs, pins, size = found
        new_refs, new_pins = refs + d_refs, pins + d_pins
        assert new_refs >= 0 and 0 <= new_pins <= new_refs, "reference counts out of step"
        self.kv.put(_REF + cid_b, _REF_FMT.pack(new_refs, new_pins, size))
        if refs == 0 and new_refs > 0:
            self.kv.delete(_UNREF + cid_b)
        elif refs > 0 and new_refs == 0:
            self.kv.put(_UNREF + cid_b, b"")
        if pins == 0 and new_pins > 0:
            self.usage.pinned_bytes += size
        elif pins > 0 and new_pins == 0:
            self.usage.pinned_bytes -= size
        return new_refs

    def delete_block(self, cid_b: bytes) -> int:
        """Remove an unreferenced block; returns its size."""
        found = self.ref(cid_b)
        assert found is not None and found[0] == 0, "only unreferenced blocks are deleted"
        self.kv.delete(_BLOCK + cid_b)
        self.kv.delete(_REF + cid_b)
        self.kv.delete(_UNREF + cid_b)
        self.usage.bytes_stored -= found[2]
        self.usage.blocks -= 1
        return found[2]

    # blob records

    def record(self, root_b: bytes) -> _Record | None:
        raw = self.kv.get(_BLOB + root_b)
        return None if raw is None else _Record.unpack(raw)

    def create_record(self, root_b: bytes, rec: _Record) -> None:
        self.kv.put(_BLOB + root_b, rec.pack())
        self.kv.put(_age_key(rec.created, root_b), b"")
        self.usage.blobs += 1
        self.usage.pinned_blobs += rec.pinned

    def save_record(self, root_b: bytes, rec: _Record) -> None:
        self.kv.put(_BLOB + root_b, rec.pack())

    def members(self, root_b: bytes) -> list[bytes]:
        prefix = _member_prefix(root_b)
        return [key[len(prefix) :] for key, _ in self.kv.scan(prefix)]

    def add_member(self, root_b: bytes, rec: _Record, cid_b: bytes) -> None:
        key = _member_prefix(root_b) + cid_b
        if self.kv.get(key) is not None:
            return
        self.kv.put(key, b"")
        self.adjust(cid_b, 1, int(rec.pinned))
        found = self.ref(cid_b)
        assert found is not None
        rec.blocks_present += 1
        rec.bytes_stored += found[2]

    def remove_member(self, root_b: bytes, rec: _Record, cid_b: bytes) -> bool:
        """Drop a membership row; True if the block is now unreferenced."""
        self.kv.delete(_member_prefix(root_b) + cid_b)
        found = self.ref(cid_b)
        assert found is not None
        rec.blocks_present -= 1
        rec.bytes_stored -= found[2]
        return self.adjust(cid_b, -1, -int(rec.pinned)) == 0

    def set_pinned(self, root_b: bytes, rec: _Record, pinned: bool) -> None:
        if rec.pinned == pinned:
            return
        step = 1 if pinned else -1
        for cid_b in self.members(root_b):
            self.adjust(cid_b, 0, step)
        rec.pinned = pinned
        self.usage.pinned_blobs += step
        self.save_record(root_b, rec)

    def delete_record(self, root_b: bytes, rec: _Record) -> tuple[list[bytes], int]:
        """Remove a record and its membership; returns (blocks now unreferenced, rows touched)."""
        members = self.members(root_b)
        freed = [cid_b for cid_b in members if self.remove_member(root_b, rec, cid_b)]
        self.kv.delete(_BLOB + root_b)
        self.kv.delete(_age_key(rec.created, root_b))
        self.usage.blobs -= 1
        self.usage.pinned_blobs -= rec.pinned
        return freed, len(members) + 1


class BlobStore:
    """Blocks on the node's disk, de-duplicated by CID, with blob records, pins, GC and a byte quota.

    Every method is synchronous and thread-safe. Writers are serialised by an internal lock and return
    only once their transaction is durable, so trio code calls them through `trio.to_thread.run_sync`
    (hashing and LMDB commits release the GIL). Reads take no lock: each is an LMDB snapshot.
    """

    def __init__(
        self, path: Path, *, quota_bytes: int | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError("quota_bytes must be >= 0")
        self._db = LmdbStore(path, map_size=MAP_SIZE)
        self._quota = quota_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._closed = False
        self.path = path

    def close(self) -> None:
        """Close the environment; open sessions are dropped (their blocks become garbage)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sessions.clear()
                self._db.close()

    # ------------------------------------------------------------------------------------- blocks

    def has_block(self, cid: Cid) -> bool:
        """Whether the block is stored locally."""
        with self._db.read() as kv:
            return kv.get(_REF + cid.to_bytes()) is not None

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None if it is not stored (verified when it was written)."""
        with self._db.read() as kv:
            return kv.get(_BLOCK + cid.to_bytes())

    def put_blocks(
        self,
        blocks: Sequence[Block],
        *,
        root: Cid | None = None,
        session: str | None = None,
        verified: bool = False,
    ) -> None:
        """Verify and store blocks in one durable transaction (callers batch about 4 MiB).

        Any block that does not hash to its CID (or exceeds MAX_BLOCK_BYTES) fails the whole call with
        HubError bad_request.blob_corrupt and nothing is written. `verified=True` skips that re-hashing
        for blocks the caller has just hashed itself (a DagBuilder's output, or a fetch that verified
        each block on arrival): it is the most expensive step of a put. Blocks already stored are not written
        again. The blocks are protected from GC until their session ends: `session`'s if given, else the
        open fetch session(s) of `root`, else every open put session. With a fetch session (or `root`) the
        blocks are also recorded, durably, as members of that blob, so a fetch resumes after a crash.
        With a quota, unpinned blobs are evicted oldest first to make room; if pinned data (or data of
        open sessions) leaves no room, HubError unavailable.storage_full and nothing is written.
        """
        unique: dict[bytes, bytes] = {}
        for block in blocks:
            if not verified and not verify_block(block.cid, block.data):
                raise HubError(
                    "bad_request.blob_corrupt",
                    f"block {block.cid} ({len(block.data)} bytes) does not hash to its CID or is too large",
                )
            unique.setdefault(block.cid.to_bytes(), block.data)
        with self._lock:
            self._check_open()
            targets, member_root = self._targets(root, session)
            if not unique:
                return
            with self._db.read() as kv:
                new_bytes = sum(len(d) for c, d in unique.items() if kv.get(_REF + c) is None)
            # The batch's blocks may already be stored unreferenced: room-making must not drop them.
            self._make_room(new_bytes, strict=True, hold=set(unique))
            pin = any(s.pin for s in targets)
            member = (member_root, member_root.to_bytes()) if member_root is not None else None

            def job(kv: TxnKV) -> None:
                tx = _Tx(kv)
                if member is None:
                    for cid_b, data in unique.items():
                        tx.put_block(cid_b, data)
                    tx.close()
                    return
                blob, root_b = member
                rec = tx.record(root_b)
                if rec is None:
                    # open_blob created it and GC spares records with a live session; be robust anyway.
                    rec = _Record(0, -1, 0, 0, False, pin, self._clock())
                    tx.create_record(root_b, rec)
                for cid_b, data in unique.items():
                    tx.put_block(cid_b, data)
                    tx.add_member(root_b, rec, cid_b)
                if root_b in unique:
                    rec.size = _root_size(blob, unique[root_b])
                tx.save_record(root_b, rec)
                tx.close()

            self._write(job)
            for target in targets:
                target.blocks.update(unique)

    # ------------------------------------------------------------------------------------- blobs

    def open_blob(self, root: Cid | None, *, pin: bool) -> str:
        """Start a put (`root` None: known only at the end) or a fetch (`root` known); returns a session id.

        Blocks written under the session are protected from GC until `commit_blob` or `abort_blob`. A
        fetch durably creates the blob's record at once (complete=False) or, with `pin`, pins an
        existing one, so what it fetches survives a crash as an incomplete blob.
        """
        with self._lock:
            self._check_open()
            if root is not None:
                root_b = root.to_bytes()

                def job(kv: TxnKV) -> None:
                    tx = _Tx(kv)
                    rec = tx.record(root_b)
                    if rec is None:
                        size = _root_size(root, kv.get(_BLOCK + root_b))
                        tx.create_record(root_b, _Record(size, -1, 0, 0, False, pin, self._clock()))
                    elif pin:
                        tx.set_pinned(root_b, rec, True)
                    tx.close()

                self._write(job)
            session = secrets.token_hex(16)
            self._sessions[session] = _Session(root, pin)
            return session

    def commit_blob(self, session: str, root: Cid) -> BlobInfo:
        """End a session as the blob `root`: walk its DAG over local blocks and record what is there.

        In one durable transaction: creates (or updates) the record, records every stored block of the
        DAG as a member, counts the blocks, and sets complete only if every block is stored. A crash
        before this returns leaves no complete record. HubError invalid_param if `root` differs from the
        fetch session's root or a stored DAG node is not a UnixFS file node (the session then stays open).
        """
        with self._lock:
            self._check_open()
            current = self._session(session)
            if current.root is not None and current.root != root:
                raise HubError(
                    "bad_request.invalid_param", f"session {session} fetches {current.root}, not {root}"
                )
            root_b = root.to_bytes()

            def job(kv: TxnKV) -> _Record:
                tx = _Tx(kv)
                present, missing, known = _walk(tx, root)
                rec = tx.record(root_b)
                if rec is None:
                    rec = _Record(0, -1, 0, 0, False, current.pin, self._clock())
                    tx.create_record(root_b, rec)
                elif current.pin:
                    tx.set_pinned(root_b, rec, True)
                for cid_b in present:
                    tx.add_member(root_b, rec, cid_b)
                if known:
                    # Rows for blocks outside the DAG (a fetcher's stray put) would keep garbage alive.
                    for cid_b in tx.members(root_b):
                        if cid_b not in present:
                            tx.remove_member(root_b, rec, cid_b)
                rec.blocks_total = len(present) + missing if known else -1
                rec.complete = known and missing == 0
                rec.size = _root_size(root, kv.get(_BLOCK + root_b))
                tx.save_record(root_b, rec)
                tx.close()
                return rec

            rec = self._write(job)
            del self._sessions[session]
            self._make_room(0, strict=False, keep=root_b)
            return rec.info(root)

    def abort_blob(self, session: str) -> None:
        """End a session without a blob: its blocks become garbage unless a blob references them."""
        with self._lock:
            self._session(session)
            del self._sessions[session]

    def stat(self, root: Cid) -> BlobInfo | None:
        """The blob's record, or None if the store has none."""
        with self._db.read() as kv:
            raw = kv.get(_BLOB + root.to_bytes())
        return None if raw is None else _Record.unpack(raw).info(root)

    def list_blobs(
        self, *, pinned_only: bool = False, after: Cid | None = None, limit: int = 100
    ) -> list[BlobInfo]:
        """Blob records in CID byte order, starting after `after`, at most `limit` (>= 1) of them."""
        if limit < 1:
            raise HubError("bad_request.invalid_param", "limit must be at least 1")
        out: list[BlobInfo] = []
        with self._db.read() as kv:
            start = _BLOB + after.to_bytes() if after is not None else None
            for key, raw in kv.scan(_BLOB, after=start):
                rec = _Record.unpack(raw)
                if pinned_only and not rec.pinned:
                    continue
                out.append(rec.info(Cid.from_bytes(key[len(_BLOB) :])))
                if len(out) >= limit:
                    break
        return out

    def pin(self, root: Cid) -> BlobInfo:
        """Pin a blob: GC and the quota never remove a complete pinned blob. HubError not_found if unknown."""
        return self._set_pinned(root, True)

    def unpin(self, root: Cid) -> BlobInfo:
        """Unpin a blob (the next GC may remove it). HubError not_found if unknown."""
        return self._set_pinned(root, False)

    def gc(self) -> GcResult:
        """Remove unpinned blobs, incomplete blobs with no open session, and every block no blob references.

        Blocks of open sessions are kept. Runs in bounded transactions; a crash midway leaves a consistent
        store (unreferenced blocks are found again by the next GC).
        """
        with self._lock:
            self._check_open()
            return self._collect(evict_unpinned=True)

    def usage(self) -> StoreUsage:
        """Totals for stat, metrics and the quota."""
        with self._db.read() as kv:
            usage = _Usage.load(kv.get(_USAGE_KEY))
        return StoreUsage(
            bytes_stored=usage.bytes_stored,
            blocks=usage.blocks,
            blobs=usage.blobs,
            pinned_blobs=usage.pinned_blobs,
            pinned_bytes=usage.pinned_bytes,
            quota_bytes=self._quota,
            file_bytes=self._db.stats()["approx_size"],
        )

    def read(self, root: Cid, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """File bytes [start, end) of a complete local blob, block by block, each block verified again.

        Checks happen at once, before the first piece: HubError not_found (no record),
        unavailable.incomplete (blocks missing) or invalid_param (range outside the file). Each piece is
        read in its own short snapshot, so the iterator may be advanced from any thread; a block
        collected meanwhile (unpinned blob, concurrent GC) ends it with HubError not_found.
        """
        info = self.stat(root)
        if info is None:
            raise HubError("not_found", f"blob {root} is not stored here")
        if not info.complete:
            raise _unavailable(
                "incomplete",
                f"blob {root} is incomplete here ({info.blocks_present} blocks present"
                f" of {info.blocks_total if info.blocks_total >= 0 else 'an unknown number'})",
            )

        def get(cid: Cid) -> bytes:
            data = self.get_block(cid)
            if data is None:
                raise HubError("not_found", f"block {cid} of blob {root} is no longer stored")
            return data

        pieces = iter_file_blocks(root, get, start=start, end=end)
        return (piece for _, piece in pieces if piece)

    # ------------------------------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise HubError("unavailable.shutting_down", "the blob store is closed")

    def _write(self, job: Callable[[TxnKV], T]) -> T:
        (result,) = self._db.write_batch([job])
        if isinstance(result, BaseException):
            raise result
        return result

    def _session(self, session: str) -> _Session:
        if not isinstance(session, str) or not _SESSION_RE.fullmatch(session):
            raise HubError("bad_request.invalid_param", f"malformed blob session id {session!r}")
        found = self._sessions.get(session)
        if found is None:
            raise HubError("not_found", f"no open blob session {session} (ended, or the node restarted)")
        return found

    def _targets(self, root: Cid | None, session: str | None) -> tuple[list[_Session], Cid | None]:
        """The sessions that protect a put_blocks call's blocks, and the blob they belong to (if known)."""
        if session is not None:
            found = self._session(session)
            if root is not None and found.root != root:
                raise HubError("bad_request.invalid_param", f"session {session} does not fetch {root}")
            return [found], found.root
        if root is not None:
            fetches = [s for s in self._sessions.values() if s.root == root]
            if not fetches:
                raise HubError(
                    "bad_request.invalid_param", f"no open session for blob {root}; call open_blob first"
                )
            return fetches, root
        return [s for s in self._sessions.values() if s.root is None], None

    def _protected(self, hold: set[bytes] | None = None) -> tuple[set[bytes], set[bytes]]:
        """(blocks of open sessions plus `hold`, roots of open fetch sessions): what GC must not touch."""
        blocks: set[bytes] = set(hold or ())
        roots: set[bytes] = set()
        for s in self._sessions.values():
            blocks |= s.blocks
            if s.root is not None:
                roots.add(s.root.to_bytes())
        return blocks, roots

    def _set_pinned(self, root: Cid, pinned: bool) -> BlobInfo:
        root_b = root.to_bytes()
        with self._lock:
            self._check_open()

            def job(kv: TxnKV) -> _Record:
                tx = _Tx(kv)
                rec = tx.record(root_b)
                if rec is None:
                    raise HubError("not_found", f"blob {root} is not stored here")
                tx.set_pinned(root_b, rec, pinned)
                tx.close()
                return rec

            return self._write(job).info(root)

    def _usage(self) -> _Usage:
        with self._db.read() as kv:
            return _Usage.load(kv.get(_USAGE_KEY))

    def _collect(self, *, evict_unpinned: bool, hold: set[bytes] | None = None) -> GcResult:
        """Remove dead records (and, if asked, every unpinned one) then sweep unreferenced blocks."""
        blocks, live_roots = self._protected(hold)
        doomed: list[bytes] = []
        with self._db.read() as kv:
            for key, raw in kv.scan(_BLOB):
                root_b = key[len(_BLOB) :]
                rec = _Record.unpack(raw)
                if root_b not in live_roots and (not rec.complete or (evict_unpinned and not rec.pinned)):
                    doomed.append(root_b)
        blobs_removed = self._remove_records(doomed)
        removed, freed = self._sweep(blocks)
        if blobs_removed or removed:
            log.info("blob gc: %d blobs, %d blocks, %d bytes freed", blobs_removed, removed, freed)
        return GcResult(blobs_removed=blobs_removed, blocks_removed=removed, bytes_freed=freed)

    def _remove_records(self, roots: Sequence[bytes]) -> int:
        pos = 0
        removed = 0
        while pos < len(roots):

            def job(kv: TxnKV, first: int = pos) -> int:
                tx = _Tx(kv)
                rows = 0
                i = first
                while i < len(roots) and rows < _GC_BATCH:
                    rec = tx.record(roots[i])
                    if rec is not None:
                        rows += tx.delete_record(roots[i], rec)[1]
                    i += 1
                tx.close()
                return i

            end = self._write(job)
            removed += end - pos
            pos = end
        return removed

    def _sweep(self, protected: set[bytes]) -> tuple[int, int]:
        """Delete unreferenced blocks outside `protected` in bounded batches; (blocks, bytes) removed."""
        removed = freed = 0
        after: bytes | None = None
        while True:
            victims: list[bytes] = []
            last: bytes | None = None
            with self._db.read() as kv:
                for key, _ in kv.scan(_UNREF, after=after):
                    last = key
                    cid_b = key[len(_UNREF) :]
                    if cid_b not in protected:
                        victims.append(cid_b)
                        if len(victims) >= _GC_BATCH:
                            break
            if victims:
                freed += self._delete_blocks(victims)
                removed += len(victims)
            if last is None or len(victims) < _GC_BATCH:
                return removed, freed
            after = last

    def _delete_blocks(self, victims: Iterable[bytes]) -> int:
        def job(kv: TxnKV) -> int:
            tx = _Tx(kv)
            freed = 0
            for cid_b in victims:
                found = tx.ref(cid_b)
                if found is not None and found[0] == 0:
                    freed += tx.delete_block(cid_b)
            tx.close()
            return freed

        return self._write(job)

    def _make_room(
        self, needed: int, *, strict: bool, keep: bytes | None = None, hold: set[bytes] | None = None
    ) -> None:
        """Under the quota, collect and evict (oldest unpinned first) until `needed` more bytes fit.

        `strict`: raise HubError unavailable.storage_full if they cannot fit (else leave it over quota).
        `keep` is a blob and `hold` are blocks to spare besides those of open sessions.
        """
        quota = self._quota
        if quota is None or self._usage().bytes_stored + needed <= quota:
            return
        self._collect(evict_unpinned=False, hold=hold)  # garbage first: free to drop
        usage = self._usage()
        if usage.bytes_stored + needed <= quota:
            return
        if usage.pinned_bytes + needed > quota:
            if strict:
                raise _unavailable(
                    "storage_full",
                    f"quota {quota} bytes: pinned blobs hold {usage.pinned_bytes}; {needed} more won't fit",
                )
            return
        blocks, live_roots = self._protected(hold)
        with self._db.read() as kv:
            candidates = [
                key[len(_AGE) + _AGE_FMT.size :] for key, _ in kv.scan(_AGE)
            ]  # oldest first: the key starts with the creation time
        for root_b in candidates:
            if root_b in live_roots or root_b == keep:
                continue

            def job(kv: TxnKV, root_b: bytes = root_b) -> bool:
                tx = _Tx(kv)
                rec = tx.record(root_b)
                if rec is None or rec.pinned:
                    return False
                freed, _ = tx.delete_record(root_b, rec)
                for cid_b in freed:
                    if cid_b not in blocks:
                        tx.delete_block(cid_b)
                tx.close()
                return True

            if self._write(job):
                log.info("blob quota: evicted %s", Cid.from_bytes(root_b))
                if self._usage().bytes_stored + needed <= quota:
                    return
        if strict:
            held = self._usage().bytes_stored
            raise _unavailable(
                "storage_full",
                f"quota {quota} bytes: pinned blobs and open sessions hold {held}; {needed} more won't fit",
            )


def _walk(tx: _Tx, root: Cid) -> tuple[set[bytes], int, bool]:
    """The DAG under `root` over stored blocks: (distinct stored blocks, distinct missing blocks, whether
    every internal node was stored so the count is final)."""
    present: set[bytes] = set()
    missing = 0
    known = True
    seen = {root.to_bytes()}
    queue: deque[Cid] = deque([root])
    while queue:
        cid = queue.popleft()
        cid_b = cid.to_bytes()
        if tx.ref(cid_b) is None:
            missing += 1
            if cid.codec == CODEC_DAG_PB:
                known = False
            continue
        present.add(cid_b)
        if cid.codec != CODEC_DAG_PB:
            continue
        data = tx.kv.get(_BLOCK + cid_b)
        assert data is not None
        for link in decode_dag_node(data).links:
            child_b = link.cid.to_bytes()
            if child_b not in seen:
                seen.add(child_b)
                queue.append(link.cid)
    return present, missing, known
