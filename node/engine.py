"""The hub engine: validate, merge and read messages and identity events over the node's database.

Stateless checks (hash, signature, limits) run on the trio thread before a message is queued; the
stateful merge (signer, conflicts, storage limits) runs inside the writer's transaction, so two racing
submissions can never both win. Reads use LMDB snapshots and are safe from any thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from node.storage import LmdbStore, TxnKV, Writer
from protocols import crdt
from protocols.errors import HubError
from protocols.messages import decode_message, to_farcaster_time, validate_message, validate_onchain_event
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc

log = logging.getLogger("stateless.engine")


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
        self.rejected: dict[str, int] = {}

    # ------------------------------------------------------------------------------------- messages

    def check(self, message: pb.Message) -> pb.Message:
        """Stateless validation of a message (hash, signature, network, time, limits)."""
        try:
            return validate_message(message, network=self.network, now=to_farcaster_time(self.clock()))
        except HubError as e:
            self._count_reject(e)
            raise

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
        """Validate and durably merge one decoded message; returns it as stored."""
        message = self.check(message)
        try:
            await self.writer.submit(partial(self._merge, message))
        except HubError as e:
            self._count_reject(e)
            raise
        self.merged += 1
        return message

    async def submit_many(self, messages: list[pb.Message]) -> list[pb.Message | HubError]:
        """Validate and merge a batch (SubmitBulkMessages): one result per message, in order."""
        out: list[pb.Message | HubError] = []
        ops: list[Callable[[TxnKV], list[he.HubEvent]]] = []
        slots: list[int] = []
        for message in messages:
            try:
                checked = self.check(message)
            except HubError as e:
                out.append(e)
                continue
            slots.append(len(out))
            out.append(checked)
            ops.append(partial(self._merge, checked))
        results = await self.writer.submit_many(ops)
        for slot, result in zip(slots, results, strict=True):
            if isinstance(result, BaseException):
                err = result if isinstance(result, HubError) else self._internal(result)
                self._count_reject(err)
                out[slot] = err
            else:
                self.merged += 1
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
