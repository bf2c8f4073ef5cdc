"""The hub engine: validate, merge and read messages and identity events over the node's database.

Stateless checks (hash, signature, limits) run before a message is queued: batches on worker threads
(libsodium releases the GIL while verifying, so a second core does real work), single messages from
concurrent callers coalesced into such batches by `run`. The stateful merge (signer, conflicts, storage
limits) runs inside the writer's transaction, so two racing submissions can never both win. Reads use
LMDB snapshots and are safe from any thread.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import trio

from node.storage import LmdbStore, TxnKV, Writer
from protocols import crdt
from protocols.errors import HubError
from protocols.messages import decode_message, to_farcaster_time, validate_message, validate_onchain_event
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc

log = logging.getLogger("stateless.engine")

#: Below this many messages a batch is validated on the trio thread (a lone message: the hop costs more).
INLINE_CHECK_MAX: Final = 2
#: Most messages one coalesced batch of single submissions holds.
COALESCE_MAX: Final = 1000
#: Coalesced batches validated or waiting for their commit at once (pipelining depth).
BATCHES_IN_FLIGHT: Final = 4


def check_batch(messages: Sequence[pb.Message], *, network: int, now: int) -> list[pb.Message | HubError]:
    """Stateless validation of each message, in order; thread-safe (each message is touched once)."""
    out: list[pb.Message | HubError] = []
    for message in messages:
        try:
            out.append(validate_message(message, network=network, now=now))
        except HubError as e:
            out.append(e)
    return out


#: Called with newly merged messages and where they came from ("local", "gossip" or "sync").
MergeListener = Callable[[list[pb.Message], str], Awaitable[None]]


@dataclass(eq=False)
class _Pending:
    message: pb.Message
    done: trio.Event = field(default_factory=trio.Event)
    result: pb.Message | HubError | None = None


class HubEngine:
    """Message and identity logic of one node over its database and writer."""

    def __init__(
        self, store: LmdbStore, writer: Writer, *, network: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.writer = writer
        self.network = network
        self.clock = clock
        self.merged = 0
        #: Merged messages by origin ("local", "gossip", "sync"), for metrics.
        self.merged_by_origin: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._workers = trio.CapacityLimiter(max(1, os.cpu_count() or 1))
        self._send, self._recv = trio.open_memory_channel[_Pending](COALESCE_MAX * BATCHES_IN_FLIGHT)
        self._running = False
        self._stopped = False
        self._listeners: list[MergeListener] = []
        self._committed = trio.Event()
        writer.on_commit(self._on_commit)

    def _on_commit(self) -> None:
        self._committed.set()
        self._committed = trio.Event()

    async def wait_for_commit(self) -> None:
        """Return after the next durable write (of anything): for waiting on state without polling."""
        await self._committed.wait()

    def add_merge_listener(self, listener: MergeListener) -> None:
        """Call `await listener(messages, origin)` after each durable merge of new messages.

        `origin` says where they came from: "local" (RPC, CLI), "gossip" or "sync". Listeners run in the
        submitter's task before it is answered, so a slow listener (the gossip publisher when peers lag)
        slows submitters down instead of growing a queue without bound.
        """
        self._listeners.append(listener)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Coalesce concurrent single submissions into batches (run in the node's nursery).

        While one batch waits for its commit the next is validated, up to BATCHES_IN_FLIGHT at once.
        On cancellation every queued submission fails as shutting down.
        """
        self._running = True
        in_flight = trio.Semaphore(BATCHES_IN_FLIGHT)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                async for first in self._recv:
                    batch = [first]
                    while len(batch) < COALESCE_MAX:
                        try:
                            batch.append(self._recv.receive_nowait())
                        except trio.WouldBlock:
                            break
                    await in_flight.acquire()
                    nursery.start_soon(self._submit_pending, batch, in_flight)
        finally:
            self._stopped = True
            self._send.close()
            err = HubError("unavailable.shutting_down", "the hub is shutting down")
            while True:
                try:
                    pending = self._recv.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                pending.result = err
                pending.done.set()

    async def _submit_pending(self, batch: list[_Pending], in_flight: trio.Semaphore) -> None:
        try:
            results: list[pb.Message | HubError] = await self.submit_many([p.message for p in batch])
        except HubError as e:
            results = [e] * len(batch)
        except Exception as e:  # a bug must fail these submissions, not the node
            results = [self._internal(e)] * len(batch)
        finally:
            in_flight.release()
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
            pending.done.set()

    # ------------------------------------------------------------------------------------- messages

    def check(self, message: pb.Message) -> pb.Message:
        """Stateless validation of a message (hash, signature, network, time, limits)."""
        try:
            return validate_message(message, network=self.network, now=to_farcaster_time(self.clock()))
        except HubError as e:
            self._count_reject(e)
            raise

    async def check_many(self, messages: Sequence[pb.Message]) -> list[pb.Message | HubError]:
        """`check` for a batch, spread over worker threads; one result per message, in order."""
        now = to_farcaster_time(self.clock())
        if len(messages) < INLINE_CHECK_MAX:
            results = check_batch(messages, network=self.network, now=now)
        else:
            parts = min(int(self._workers.total_tokens), math.ceil(len(messages) / INLINE_CHECK_MAX))
            size = math.ceil(len(messages) / parts)
            chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
            done: list[list[pb.Message | HubError]] = [[] for _ in chunks]

            async def check_chunk(k: int) -> None:
                done[k] = await trio.to_thread.run_sync(
                    partial(check_batch, chunks[k], network=self.network, now=now), limiter=self._workers
                )

            async with trio.open_nursery() as nursery:
                for k in range(len(chunks)):
                    nursery.start_soon(check_chunk, k)
            results = [r for part in done for r in part]
        for r in results:
            if isinstance(r, HubError):
                self._count_reject(r)
        return results

    def validate(self, raw: bytes) -> pb.Message:
        """Everything a submit would check, without storing: ValidateMessage."""
        message = self.check(decode_message(raw))
        with self.store.read() as kv:
            crdt.check_mergeable(kv, message)
        return message

    async def submit_raw(self, raw: bytes) -> pb.Message:
        """Decode, validate and durably merge one message from its wire bytes."""
        try:
            message = decode_message(raw)
        except HubError as e:
            self._count_reject(e)
            raise
        return await self.submit(message)

    async def submit(self, message: pb.Message) -> pb.Message:
        """Validate and durably merge one decoded message; returns it as stored.

        With `run` active, concurrent calls share batches (validation off the trio thread, one writer
        job list per batch); without it the message goes through `submit_many` alone.
        """
        result: pb.Message | HubError | None
        if not self._running:
            [result] = await self.submit_many([message])
        else:
            if self._stopped:
                raise HubError("unavailable.shutting_down", "the hub is shutting down")
            pending = _Pending(message)
            try:
                await self._send.send(pending)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise HubError("unavailable.shutting_down", "the hub is shutting down") from None
            await pending.done.wait()
            result = pending.result
        if isinstance(result, HubError):
            raise result
        assert result is not None
        return result

    async def submit_many(
        self, messages: Sequence[pb.Message], *, origin: str = "local"
    ) -> list[pb.Message | HubError]:
        """Validate and merge a batch (SubmitBulkMessages): one result per message, in order."""
        out = await self.check_many(messages)
        ops: list[Callable[[TxnKV], list[he.HubEvent]]] = []
        slots: list[int] = []
        for slot, checked in enumerate(out):
            if isinstance(checked, pb.Message):
                slots.append(slot)
                ops.append(partial(self._merge, checked))
        if not ops:
            return out
        results = await self.writer.submit_many(ops)
        merged: list[pb.Message] = []
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, BaseException):
                err = result if isinstance(result, HubError) else self._internal(result)
                self._count_reject(err)
                out[slot] = err
            else:
                self.merged += 1
                self.merged_by_origin[origin] = self.merged_by_origin.get(origin, 0) + 1
                message = out[slot]
                assert isinstance(message, pb.Message)
                merged.append(message)
        if merged:
            for listener in self._listeners:
                try:
                    await listener(merged, origin)
                except Exception:  # the merge is durable and acknowledged whatever a listener does
                    log.exception("merge listener failed")
        return out

    def _merge(self, message: pb.Message, kv: TxnKV) -> list[he.HubEvent]:
        return crdt.merge_message(kv, message, now_ms=int(self.clock() * 1000))

    # ------------------------------------------------------------------------------------- identity

    async def submit_onchain_event(self, event: oc.OnChainEvent) -> oc.OnChainEvent:
        """Validate and durably merge an identity event (admin RPC, genesis, later the chain)."""
        validate_onchain_event(event)
        events = await self.writer.submit(
            lambda kv: crdt.merge_onchain_event(kv, event, now_ms=int(self.clock() * 1000))
        )
        revoked = sum(1 for e in events if e.type == he.HUB_EVENT_TYPE_REVOKE_MESSAGE)
        if revoked:
            log.info("signer removed for fid %d: revoked %d messages", event.fid, revoked)
        return event

    # ------------------------------------------------------------------------------------- reads

    @contextmanager
    def read(self) -> Iterator[TxnKV]:
        """A read snapshot for queries (any thread)."""
        with self.store.read() as kv:
            yield kv

    async def prune_events(self, retention_seconds: int) -> int:
        """Drop events past the retention window (bounded per call); returns how many."""
        now_ms = int(self.clock() * 1000)
        return await self.writer.submit(
            lambda kv: crdt.prune_events(kv, now_ms=now_ms, retention_ms=retention_seconds * 1000)
        )

    # ------------------------------------------------------------------------------------- accounting

    def _count_reject(self, err: HubError) -> None:
        self.rejected[err.code] = self.rejected.get(err.code, 0) + 1

    @staticmethod
    def _internal(exc: BaseException) -> HubError:
        log.error("internal error while merging", exc_info=exc)
        return HubError("unknown", f"internal error: {type(exc).__name__}")
