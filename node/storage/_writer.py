"""The single writer: group commits of many submissions per durable LMDB transaction.

A durable commit costs an fsync (milliseconds), so committing each message alone would cap ingest near
1/(2 fsync) per second. The writer takes whatever is queued (up to `max_batch`), runs it in one
transaction on a worker thread, and only then resolves each submitter: nothing is acknowledged before
it is on disk.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import trio

from node.storage._lmdb import LmdbStore, TxnKV
from protocols.errors import HubError

log = logging.getLogger("stateless.storage")

T = TypeVar("T")
DEFAULT_MAX_BATCH: Final = 2000
DEFAULT_QUEUE: Final = 1000  # submitters' jobs (each up to max_batch ops) waiting for the writer


@dataclass(eq=False)
class _Job(Generic[T]):
    """Ops from one submitter: they share one wake-up (a batch of 500 is one event, not 500)."""

    ops: list[Callable[[TxnKV], T]]
    done: trio.Event = field(default_factory=trio.Event)
    results: list[T | BaseException] = field(default_factory=list)


class Writer:
    """Serialises all writes; `submit` returns once the write is durable (or raises its HubError)."""

    def __init__(
        self,
        store: LmdbStore,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        queue: int = DEFAULT_QUEUE,
        finalize: Callable[[TxnKV], object] | None = None,
    ) -> None:
        """`finalize` runs in every batch's transaction after its jobs (see `LmdbStore.write_batch`)."""
        self._store = store
        self._finalize = finalize
        self._max_batch = max_batch
        self._send, self._recv = trio.open_memory_channel[_Job[Any]](queue)
        self._on_commit: list[Callable[[], None]] = []
        self._closed = False
        # Its own thread token: the shared default limiter can be exhausted by other blocking work (a
        # test's client calls, say), and a writer waiting for a thread would stall every submitter.
        self._thread = trio.CapacityLimiter(1)
        self.batches = 0
        self.writes = 0

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the trio thread) after every durable commit."""
        self._on_commit.append(callback)

    async def submit(self, op: Callable[[TxnKV], T]) -> T:
        """Run `op` in the next group commit; return its result once durable, or raise its error."""
        [result] = await self.submit_many([op])
        if isinstance(result, BaseException):
            raise result
        return result

    async def submit_many(self, ops: list[Callable[[TxnKV], T]]) -> list[T | BaseException]:
        """Queue several ops (they usually share one commit); return each result or exception."""
        if self._closed:
            raise HubError("unavailable.shutting_down", "the hub is shutting down")
        jobs = [_Job(ops[i : i + self._max_batch]) for i in range(0, len(ops), self._max_batch)]
        for job in jobs:
            try:
                self._send.send_nowait(job)
            except trio.WouldBlock:
                # Backpressure: the queue is bounded so memory is too; wait for room.
                await self._send.send(job)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise HubError("unavailable.shutting_down", "the hub is shutting down") from None
        out: list[T | BaseException] = []
        for job in jobs:
            await job.done.wait()
            out.extend(job.results)
        return out

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer loop, run in the node's nursery. On cancellation queued jobs fail as shutting down."""
        task_status.started()
        try:
            async for first in self._recv:
                batch = [first]
                size = len(first.ops)
                while size < self._max_batch:
                    try:
                        job = self._recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                    batch.append(job)
                    size += len(job.ops)
                ops = [op for job in batch for op in job.ops]
                # Not cancellable: once a batch is handed to LMDB we wait for its commit, so a
                # shutdown never abandons a transaction half way or loses an acknowledgement.
                write = self._store.write_batch
                if self._finalize is not None:
                    # Only passed when set, so stand-ins for write_batch without the parameter still work.
                    write = functools.partial(write, finalize=self._finalize)
                results = await trio.to_thread.run_sync(write, ops, limiter=self._thread)
                self.batches += 1
                self.writes += len(ops)
                start = 0
                for job in batch:
                    job.results = results[start : start + len(job.ops)]
                    start += len(job.ops)
                    job.done.set()
                for callback in self._on_commit:
                    callback()
        finally:
            self._closed = True
            self._send.close()
            err = HubError("unavailable.shutting_down", "the hub is shutting down")
            while True:
                try:
                    job = self._recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                job.results = [err] * len(job.ops)
                job.done.set()
