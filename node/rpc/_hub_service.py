"""HubService and AdminService: Farcaster's method names and messages over our engine.

Reads run right here on the gRPC thread against LMDB snapshots (microseconds, no hop); writes cross
into trio through the bridge so they share the node's single writer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import grpc

from node.engine import HubEngine
from node.rpc._bridge import TrioBridge
from node.rpc._handlers import Ctx, abort, stream, unary, unary_raw
from protocols import crdt
from protocols.errors import HubError
from protocols.messages import decode_message, split_messages
from protocols.proto import gossip_pb2 as gs
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr

log = logging.getLogger("stateless.rpc")

SUBSCRIBE_BATCH: Final = 256
MAX_BULK: Final = 1000


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Static facts about the node for GetInfo."""

    version: str
    peer_id: str
    listen_addrs: tuple[str, ...]
    rpc_address: str
    nickname: str
    started_at: float


class EventNotifier:
    """Wakes Subscribe streams when the writer commits (lives on the gRPC loop)."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Event] = set()
        self.closing = False

    def register(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def unregister(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def notify_all(self) -> None:
        for event in self._waiters:
            event.set()

    def close(self) -> None:
        """Make every stream end with UNAVAILABLE (shutdown), never a clean end-of-stream."""
        self.closing = True
        self.notify_all()


def _fid(value: int) -> int:
    if value <= 0:
        raise HubError("bad_request.invalid_param", "fid must be a positive integer")
    return value


def _cast_id(cid: pb.CastId) -> pb.CastId:
    _fid(cid.fid)
    if len(cid.hash) != 20:
        raise HubError("bad_request.invalid_param", "cast hash must be 20 bytes")
    return cid


def _messages(result: tuple[list[pb.Message], bytes | None]) -> rr.MessagesResponse:
    messages, token = result
    response = rr.MessagesResponse(messages=messages)
    if token is not None:
        response.next_page_token = token
    return response


def _onchain(result: tuple[list[oc.OnChainEvent], bytes | None]) -> rr.OnChainEventResponse:
    events, token = result
    response = rr.OnChainEventResponse(events=events)
    if token is not None:
        response.next_page_token = token
    return response


def _event_fid(event: he.HubEvent) -> int:
    body = event.WhichOneof("body")
    if body == "merge_message_body":
        return event.merge_message_body.message.data.fid
    if body == "prune_message_body":
        return event.prune_message_body.message.data.fid
    if body == "revoke_message_body":
        return event.revoke_message_body.message.data.fid
    if body == "merge_on_chain_event_body":
        return event.merge_on_chain_event_body.on_chain_event.fid
    return 0


def _is_loopback(peer: str) -> bool:
    """grpc peer strings look like ipv4:127.0.0.1:5000, ipv6:[::1]:5000 or unix:..."""
    if peer.startswith("unix:"):
        return True
    host = peer.split(":", 1)[1] if ":" in peer else peer
    host = host.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkView(Protocol):
    """What the RPC layer reads of the node's network side (`node.network.NetworkService`)."""

    @property
    def is_syncing(self) -> bool: ...

    def connected_count(self) -> int: ...

    def peers(self) -> list[gs.ContactInfoContentBody]: ...

    def sync_status_response(self, peer_id: str | None) -> rr.SyncStatusResponse: ...


class HubServicer:
    """Handlers for HubService and AdminService."""

    def __init__(
        self,
        engine: HubEngine,
        bridge: TrioBridge,
        notifier: EventNotifier,
        info: Callable[[], NodeInfo],
        *,
        admin_from_anywhere: bool = False,
        network: NetworkView | None = None,
    ) -> None:
        self.engine = engine
        self.bridge = bridge
        self.notifier = notifier
        self._info = info
        self._admin_from_anywhere = admin_from_anywhere
        self._network = network

    # ------------------------------------------------------------------------------------- writes

    async def submit_message(self, raw: bytes, _ctx: Ctx) -> pb.Message:
        return await self.bridge.call(self.engine.submit_raw, raw)

    async def submit_bulk(self, raw: bytes, _ctx: Ctx) -> rr.SubmitBulkMessagesResponse:
        # Raw bytes: each message is decoded from exactly what its client sent (see split_messages).
        raws = split_messages(raw)
        if len(raws) > MAX_BULK:
            raise HubError("bad_request.invalid_param", f"at most {MAX_BULK} messages per bulk request")
        decoded: list[pb.Message | HubError] = []
        for m in raws:
            try:
                decoded.append(decode_message(m))
            except HubError as e:
                decoded.append(e)
        valid = [m for m in decoded if isinstance(m, pb.Message)]
        merged = iter(await self.bridge.call(self.engine.submit_many, valid))
        response = rr.SubmitBulkMessagesResponse()
        for item in decoded:
            result = next(merged) if isinstance(item, pb.Message) else item
            entry = response.messages.add()
            if isinstance(result, HubError):
                if isinstance(item, pb.Message):
                    entry.message_error.hash = item.hash
                entry.message_error.errCode = result.code
                entry.message_error.message = result.message
            else:
                entry.message.CopyFrom(result)
        return response

    async def validate_message(self, raw: bytes, _ctx: Ctx) -> rr.ValidationResponse:
        return rr.ValidationResponse(valid=True, message=self.engine.validate(raw))

    async def submit_onchain_event(self, event: oc.OnChainEvent, ctx: Ctx) -> oc.OnChainEvent:
        if not self._admin_from_anywhere and not _is_loopback(ctx.peer()):
            raise HubError("unauthorized", "the admin service accepts calls from loopback only")
        return await self.bridge.call(self.engine.submit_onchain_event, event)

    # ------------------------------------------------------------------------------------- reads

    async def get_cast(self, r: pb.CastId, _ctx: Ctx) -> pb.Message:
        _cast_id(r)
        with self.engine.read() as kv:
            return crdt.get_cast(kv, r.fid, r.hash)

    async def get_casts_by_fid(self, r: rr.FidRequest, _ctx: Ctx) -> rr.MessagesResponse:
        with self.engine.read() as kv:
            return _messages(crdt.casts_by_fid(kv, _fid(r.fid), crdt.Page.of(r)))

    async def get_casts_by_parent(self, r: rr.CastsByParentRequest, _ctx: Ctx) -> rr.MessagesResponse:
        which = r.WhichOneof("parent")
        if which is None:
            raise HubError("bad_request.invalid_param", "parent_cast_id or parent_url is required")
        parent: pb.CastId | str = _cast_id(r.parent_cast_id) if which == "parent_cast_id" else r.parent_url
        with self.engine.read() as kv:
            return _messages(crdt.casts_by_parent(kv, parent, crdt.Page.of(r)))

    async def get_casts_by_mention(self, r: rr.FidRequest, _ctx: Ctx) -> rr.MessagesResponse:
        with self.engine.read() as kv:
            return _messages(crdt.casts_by_mention(kv, _fid(r.fid), crdt.Page.of(r)))

    async def get_reaction(self, r: rr.ReactionRequest, _ctx: Ctx) -> pb.Message:
        which = r.WhichOneof("target")
        if which is None:
            raise HubError("bad_request.invalid_param", "target_cast_id or target_url is required")
        target: pb.CastId | str = _cast_id(r.target_cast_id) if which == "target_cast_id" else r.target_url
        with self.engine.read() as kv:
            return crdt.get_reaction(kv, _fid(r.fid), r.reaction_type, target)

    async def get_reactions_by_fid(self, r: rr.ReactionsByFidRequest, _ctx: Ctx) -> rr.MessagesResponse:
        rtype = r.reaction_type if r.HasField("reaction_type") and r.reaction_type else None
        with self.engine.read() as kv:
            return _messages(crdt.reactions_by_fid(kv, _fid(r.fid), rtype, crdt.Page.of(r)))

    async def get_reactions_by_target(self, r: rr.ReactionsByTargetRequest, _ctx: Ctx) -> rr.MessagesResponse:
        which = r.WhichOneof("target")
        if which is None:
            raise HubError("bad_request.invalid_param", "target_cast_id or target_url is required")
        target: pb.CastId | str = _cast_id(r.target_cast_id) if which == "target_cast_id" else r.target_url
        rtype = r.reaction_type if r.HasField("reaction_type") and r.reaction_type else None
        with self.engine.read() as kv:
            return _messages(crdt.reactions_by_target(kv, target, rtype, crdt.Page.of(r)))

    async def get_user_data(self, r: rr.UserDataRequest, _ctx: Ctx) -> pb.Message:
        with self.engine.read() as kv:
            return crdt.get_user_data(kv, _fid(r.fid), r.user_data_type)

    async def get_user_data_by_fid(self, r: rr.FidRequest, _ctx: Ctx) -> rr.MessagesResponse:
        with self.engine.read() as kv:
            return _messages(crdt.user_data_by_fid(kv, _fid(r.fid), crdt.Page.of(r)))

    async def get_verification(self, r: rr.VerificationRequest, _ctx: Ctx) -> pb.Message:
        with self.engine.read() as kv:
            return crdt.get_verification(kv, _fid(r.fid), r.address)

    async def get_verifications_by_fid(self, r: rr.FidRequest, _ctx: Ctx) -> rr.MessagesResponse:
        with self.engine.read() as kv:
            return _messages(crdt.verifications_by_fid(kv, _fid(r.fid), crdt.Page.of(r)))

    async def get_link(self, r: rr.LinkRequest, _ctx: Ctx) -> pb.Message:
        with self.engine.read() as kv:
            return crdt.get_link(kv, _fid(r.fid), r.link_type, r.target_fid)

    async def get_links_by_fid(self, r: rr.LinksByFidRequest, _ctx: Ctx) -> rr.MessagesResponse:
        ltype = r.link_type if r.HasField("link_type") and r.link_type else None
        with self.engine.read() as kv:
            return _messages(crdt.links_by_fid(kv, _fid(r.fid), ltype, crdt.Page.of(r)))

    async def get_links_by_target(self, r: rr.LinksByTargetRequest, _ctx: Ctx) -> rr.MessagesResponse:
        ltype = r.link_type if r.HasField("link_type") and r.link_type else None
        with self.engine.read() as kv:
            return _messages(crdt.links_by_target(kv, _fid(r.target_fid), ltype, crdt.Page.of(r)))

    async def get_onchain_signer(self, r: rr.SignerRequest, _ctx: Ctx) -> oc.OnChainEvent:
        if len(r.signer) != 32:
            raise HubError("bad_request.invalid_param", "signer must be a 32-byte Ed25519 public key")
        with self.engine.read() as kv:
            return crdt.get_signer(kv, _fid(r.fid), r.signer)

    async def get_onchain_signers_by_fid(self, r: rr.FidRequest, _ctx: Ctx) -> rr.OnChainEventResponse:
        with self.engine.read() as kv:
            return _onchain(crdt.signers_by_fid(kv, _fid(r.fid), crdt.Page.of(r)))

    async def get_onchain_events(self, r: rr.OnChainEventRequest, _ctx: Ctx) -> rr.OnChainEventResponse:
        with self.engine.read() as kv:
            return _onchain(crdt.onchain_events(kv, _fid(r.fid), r.event_type, crdt.Page.of(r)))

    async def get_id_registry_event(self, r: rr.FidRequest, _ctx: Ctx) -> oc.OnChainEvent:
        with self.engine.read() as kv:
            return crdt.id_register_event(kv, _fid(r.fid))

    async def get_storage_limits(self, r: rr.FidRequest, _ctx: Ctx) -> rr.StorageLimitsResponse:
        fid = _fid(r.fid)
        now = int(self.engine.clock())
        response = rr.StorageLimitsResponse()
        with self.engine.read() as kv:
            units = crdt.storage_units(kv, fid, now)
            for unit_type, n in units:
                response.unit_details.add(unit_type=unit_type, unit_size=n)
            response.units = sum(n for _, n in units)
            for store, name in (
                (1, "CASTS"),
                (2, "LINKS"),
                (3, "REACTIONS"),
                (4, "USER_DATA"),
                (5, "VERIFICATIONS"),
            ):
                response.limits.add(
                    store_type=store,
                    name=name,
                    limit=crdt.store_limit(kv, fid, store, now),
                    used=crdt.store_count(kv, fid, store),
                )
        return response

    async def get_fids(self, r: rr.FidsRequest, _ctx: Ctx) -> rr.FidsResponse:
        with self.engine.read() as kv:
            found, token = crdt.fids(kv, crdt.Page.of(r))
        response = rr.FidsResponse(fids=found)
        if token is not None:
            response.next_page_token = token
        return response

    async def get_event(self, r: rr.EventRequest, _ctx: Ctx) -> he.HubEvent:
        with self.engine.read() as kv:
            return crdt.get_event(kv, r.id)

    async def get_info(self, r: rr.HubInfoRequest, _ctx: Ctx) -> rr.HubInfoResponse:
        info = self._info()
        response = rr.HubInfoResponse(
            version=info.version,
            is_syncing=False,
            nickname=info.nickname,
            peerId=info.peer_id,
            listen_addrs=info.listen_addrs,
            network=self.engine.network,  # type: ignore[arg-type]
            rpc_address=info.rpc_address,
            uptime_seconds=max(0, int(self.engine.clock() - info.started_at)),
        )
        with self.engine.read() as kv:
            # Always filled: cheap, and the CLI's `info` shows it.
            response.db_stats.num_messages = crdt.message_count(kv)
            response.db_stats.num_fid_events = crdt.fid_count(kv)
            response.root_hash = crdt.trie_root(kv).hash.hex()
        response.db_stats.approx_size = self.engine.store.stats()["approx_size"]
        network = self._network
        if network is not None:

            async def network_state() -> tuple[bool, int]:
                return network.is_syncing, network.connected_count()

            response.is_syncing, response.connected_peers = await self.bridge.call(network_state)
        return response

    # ------------------------------------------------------------------------------------- network

    def _need_network(self) -> NetworkView:
        if self._network is None:
            raise HubError("unavailable", "this hub runs without a network")
        return self._network

    async def get_current_peers(self, _r: rr.Empty, _ctx: Ctx) -> rr.ContactInfoResponse:
        network = self._need_network()

        # Network state lives on the trio thread; read it there, not from the gRPC thread.
        async def peers() -> list[gs.ContactInfoContentBody]:
            return network.peers()

        return rr.ContactInfoResponse(contacts=await self.bridge.call(peers))

    async def get_sync_status(self, r: rr.SyncStatusRequest, _ctx: Ctx) -> rr.SyncStatusResponse:
        network = self._need_network()
        peer_id = r.peerId if r.HasField("peerId") else None

        async def status() -> rr.SyncStatusResponse:
            return network.sync_status_response(peer_id)

        return await self.bridge.call(status)

    # ------------------------------------------------------------------------------------- events

    async def subscribe(self, r: rr.SubscribeRequest, ctx: Ctx) -> AsyncIterator[bytes]:
        types = set(r.event_types)
        shards = r.total_shards if r.HasField("total_shards") else 0
        shard = r.shard_index if r.HasField("shard_index") else 0
        if shards and shard >= shards:
            raise HubError("bad_request.invalid_param", "shard_index must be below total_shards")
        wake = self.notifier.register()
        try:
            with self.engine.read() as kv:
                if r.HasField("from_id") and r.from_id == 0:
                    # Like Hubble: an explicit 0 replays everything still retained.
                    cursor = crdt.events_pruned_to(kv)
                elif r.HasField("from_id"):
                    if r.from_id <= crdt.events_pruned_to(kv):
                        raise HubError(
                            "bad_request.invalid_param",
                            f"from_id {r.from_id} is past the retention window; oldest is "
                            f"{crdt.oldest_event_id(kv)}",
                        )
                    cursor = r.from_id - 1
                else:
                    cursor = crdt.last_event_id(kv)
            while True:
                if self.notifier.closing:
                    raise HubError("unavailable.shutting_down", "the hub is shutting down")
                wake.clear()
                with self.engine.read() as kv:
                    if cursor < crdt.events_pruned_to(kv):
                        # Too slow for the retention window: end with an error, never skip silently.
                        raise HubError("unavailable", "subscriber fell behind the event retention window")
                    batch = crdt.events_after(kv, cursor, SUBSCRIBE_BATCH)
                for event_id, raw in batch:
                    cursor = event_id
                    if types or shards:
                        event = he.HubEvent.FromString(raw)
                        if types and event.type not in types:
                            continue
                        if shards and _event_fid(event) % shards != shard:
                            continue
                    yield raw
                if not batch:
                    await wake.wait()
        finally:
            self.notifier.unregister(wake)

    # ------------------------------------------------------------------------------------- wiring

    def handlers(self) -> list[grpc.GenericRpcHandler[Any, Any]]:
        """Generic handlers for HubService and AdminService (paths without a proto package)."""
        hub: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "SubmitMessage": unary_raw("SubmitMessage", self.submit_message),
            "SubmitBulkMessages": unary_raw("SubmitBulkMessages", self.submit_bulk),
            "ValidateMessage": unary_raw("ValidateMessage", self.validate_message),
            "Subscribe": stream("Subscribe", rr.SubscribeRequest, self.subscribe),
            "GetEvent": unary("GetEvent", rr.EventRequest, self.get_event),
            "GetCast": unary("GetCast", pb.CastId, self.get_cast),
            "GetCastsByFid": unary("GetCastsByFid", rr.FidRequest, self.get_casts_by_fid),
            "GetCastsByParent": unary("GetCastsByParent", rr.CastsByParentRequest, self.get_casts_by_parent),
            "GetCastsByMention": unary("GetCastsByMention", rr.FidRequest, self.get_casts_by_mention),
            "GetReaction": unary("GetReaction", rr.ReactionRequest, self.get_reaction),
            "GetReactionsByFid": unary(
                "GetReactionsByFid", rr.ReactionsByFidRequest, self.get_reactions_by_fid
            ),
            "GetReactionsByCast": unary(
                "GetReactionsByCast", rr.ReactionsByTargetRequest, self.get_reactions_by_target
            ),
            "GetReactionsByTarget": unary(
                "GetReactionsByTarget", rr.ReactionsByTargetRequest, self.get_reactions_by_target
            ),
            "GetUserData": unary("GetUserData", rr.UserDataRequest, self.get_user_data),
            "GetUserDataByFid": unary("GetUserDataByFid", rr.FidRequest, self.get_user_data_by_fid),
            "GetVerification": unary("GetVerification", rr.VerificationRequest, self.get_verification),
            "GetVerificationsByFid": unary(
                "GetVerificationsByFid", rr.FidRequest, self.get_verifications_by_fid
            ),
            "GetOnChainSigner": unary("GetOnChainSigner", rr.SignerRequest, self.get_onchain_signer),
            "GetOnChainSignersByFid": unary(
                "GetOnChainSignersByFid", rr.FidRequest, self.get_onchain_signers_by_fid
            ),
            "GetOnChainEvents": unary("GetOnChainEvents", rr.OnChainEventRequest, self.get_onchain_events),
            "GetIdRegistryOnChainEvent": unary(
                "GetIdRegistryOnChainEvent", rr.FidRequest, self.get_id_registry_event
            ),
            "GetCurrentStorageLimitsByFid": unary(
                "GetCurrentStorageLimitsByFid", rr.FidRequest, self.get_storage_limits
            ),
            "GetFids": unary("GetFids", rr.FidsRequest, self.get_fids),
            "GetCurrentPeers": unary("GetCurrentPeers", rr.Empty, self.get_current_peers),
            "GetSyncStatus": unary("GetSyncStatus", rr.SyncStatusRequest, self.get_sync_status),
            "GetLink": unary("GetLink", rr.LinkRequest, self.get_link),
            "GetLinksByFid": unary("GetLinksByFid", rr.LinksByFidRequest, self.get_links_by_fid),
            "GetLinksByTarget": unary("GetLinksByTarget", rr.LinksByTargetRequest, self.get_links_by_target),
            "GetInfo": unary("GetInfo", rr.HubInfoRequest, self.get_info),
        }
        admin: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "SubmitOnChainEvent": unary("SubmitOnChainEvent", oc.OnChainEvent, self.submit_onchain_event),
        }
        return [
            grpc.method_handlers_generic_handler("HubService", hub),
            grpc.method_handlers_generic_handler("AdminService", admin),
        ]


__all__ = ["EventNotifier", "HubServicer", "NodeInfo", "abort"]
