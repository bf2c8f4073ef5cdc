"""LMDB as the hub's durable ordered key-value store (DESIGN.md section 5 has the measurements).

One environment, one keyspace; `protocols.crdt` defines the layout. Reads may run on any thread
(LMDB read transactions are cheap snapshots); every write goes through `node.storage.Writer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import lmdb

from protocols.crdt import prefix_end
from protocols.errors import HubError

log = logging.getLogger("stateless.storage")

T = TypeVar("T")
DEFAULT_MAP_SIZE: Final = 1 << 34  # 16 GiB of address space; grown on demand, the file stays sparse


class _FinalizeFailed(Exception):
    """A batch's finalizer raised (the cause); the batch was rolled back."""


class TxnKV:
    """`protocols.crdt.WriteKV` over one LMDB transaction (read-only transactions reject writes)."""

    __slots__ = ("_txn",)

    def __init__(self, txn: Any) -> None:
        self._txn = txn

    def get(self, key: bytes) -> bytes | None:
        """The value under `key`, or None."""
        value = self._txn.get(key)
        return None if value is None else bytes(value)

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value`."""
        self._txn.put(key, value)

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        self._txn.delete(key)

    def scan(
        self, prefix: bytes, *, after: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs under `prefix` in key order (see `protocols.crdt.ReadKV.scan`)."""
        cursor = self._txn.cursor()
        if not reverse:
            positioned = cursor.set_range(after if after is not None else prefix)
            if positioned and after is not None and cursor.key() == after:
                positioned = cursor.next()
            while positioned:
                key = cursor.key()
                if not key.startswith(prefix):
                    return
                yield bytes(key), bytes(cursor.value())
                positioned = cursor.next()
        else:
            start = after if after is not None else prefix_end(prefix)
            # Land on the first key >= start, then step back once: the last key < start.
            positioned = cursor.set_range(start) if start is not None else False
            positioned = cursor.prev() if positioned else cursor.last()
            while positioned:
                key = cursor.key()
                if not key.startswith(prefix):
                    if key < prefix:
                        return
                    positioned = cursor.prev()
                    continue
                yield bytes(key), bytes(cursor.value())
                positioned = cursor.prev()


class LmdbStore:
    """The node's database: open once, read from any thread, write through `write_batch` only."""

    def __init__(self, path: Path, *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            # sync/metasync on: a commit returns only once it is on disk, so an acknowledged write
            # survives kill -9 and power loss. max_readers covers the gRPC worker threads.
            self._env = lmdb.open(
                str(path),
                map_size=map_size,
                subdir=True,
                sync=True,
                metasync=True,
                readahead=False,
                max_readers=512,
                max_dbs=0,
            )
        except lmdb.Error as e:
            raise HubError("unavailable.storage_failure", f"cannot open database at {path}: {e}") from e
        self.path = path

    def close(self) -> None:
        """Close the environment (after the writer has stopped)."""
        self._env.close()

    @contextmanager
    def read(self) -> Iterator[TxnKV]:
        """A consistent read-only snapshot for the duration of the block."""
        with self._env.begin(write=False, buffers=False) as txn:
            yield TxnKV(txn)

    def write_batch(
        self, jobs: list[Callable[[TxnKV], T]], finalize: Callable[[TxnKV], object] | None = None
    ) -> list[T | BaseException]:
        """Run each job in its own nested transaction inside one durable commit (blocking; call in a thread).

        A job that raises is rolled back alone and its exception returned in its slot; the others
        commit together. `finalize`, if given, then runs in the same transaction, after every job and
        before the commit (it sees the successful jobs' writes only; its result is ignored), e.g. to bring
        derived state such as the sync trie up to date once per batch. If the commit or `finalize` fails,
        nothing is written and every slot holds a storage_failure error.
        """
        for attempt in range(3):
            try:
                return self._write_once(jobs, finalize)
            except lmdb.MapFullError:
                # The map is address space, not disk: doubling it costs nothing until data is written.
                new_size = self._env.info()["map_size"] * 2
                log.info("database map full; growing to %d GiB (attempt %d)", new_size >> 30, attempt + 1)
                self._env.set_mapsize(new_size)
            except lmdb.Error as e:
                log.error("database commit failed: %s", e)
                err = HubError("unavailable.storage_failure", f"database commit failed: {e}")
                return [err for _ in jobs]
            except _FinalizeFailed as e:
                cause = type(e.__cause__).__name__
                log.error("batch finalizer failed; %d jobs rolled back", len(jobs), exc_info=e.__cause__)
                err = HubError("unavailable.storage_failure", f"batch finalizer raised {cause}")
                return [err for _ in jobs]
        err = HubError("unavailable.storage_failure", "database is full")
        return [err for _ in jobs]

    def _write_once(
        self, jobs: list[Callable[[TxnKV], T]], finalize: Callable[[TxnKV], object] | None
    ) -> list[T | BaseException]:
        results: list[T | BaseException] = []
        with self._env.begin(write=True) as parent:
            for job in jobs:
                child = self._env.begin(write=True, parent=parent)
                try:
                    results.append(job(TxnKV(child)))
                except lmdb.MapFullError:
                    child.abort()
                    raise
                except Exception as e:
                    child.abort()
                    results.append(e)
                else:
                    child.commit()
            if finalize is not None:
                try:
                    finalize(TxnKV(parent))
                except lmdb.Error:
                    raise  # map full (retried) or a database failure, like a failed commit
                except Exception as e:
                    # Raised inside the block, so the parent transaction is aborted: nothing commits.
                    raise _FinalizeFailed from e
        return results

    def stats(self) -> dict[str, int]:
        """Size figures for GetInfo and metrics."""
        info = self._env.info()
        stat = self._env.stat()
        page = int(stat["psize"])
        return {"approx_size": int(info["last_pgno"]) * page, "entries": int(stat["entries"])}
