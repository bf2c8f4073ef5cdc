"""Gossipsub v1.1 for hub messages and contact info, with our validators deciding what spreads.

Two topics per network: message bundles and contact info. py-libp2p runs the mesh; everything that
decides (validation, scoring, rate limits) is the node's, passed in as the two validator callbacks. A
validator returning True lets gossipsub forward the payload to the mesh; False drops it.

Measured pitfalls of py-libp2p 0.8.1 handled here (DESIGN.md section 4): the built-in spam protection
(which silently caps a peer at 10 messages/s) and the IP-diversity rule (which refuses mesh peers that
share an IP, i.e. every local devnet) are off; the heartbeat is 1 s instead of 120 s; message ids are
content hashes, so one payload relayed by many peers is processed once; and publishing waits while peer
queues are nearly full instead of letting py-libp2p drop what does not fit.

Measured on 5 local nodes (bench/bench_network.py): py-libp2p spends about 10 ms of CPU per gossip RPC
per node (Noise, yamux, a signed peer record on every RPC), far more than validating a bundle. So the
mesh degree is 3 rather than gossipsub's usual 6 (each node receives each bundle about half as often;
diff sync, not mesh redundancy, is what guarantees delivery), and only meshsub/1.1.0 is spoken: 1.2's
IDONTWANT adds one more RPC per message per mesh peer. Together they took p99 propagation at 100 msg/s
from 3.5 s to 0.9 s.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import blake3
import trio
from google.protobuf.message import DecodeError
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub, ValidationCache
from libp2p.tools.anyio_service import background_trio_service

from p2p._host import HubHost

log = logging.getLogger("stateless.gossip")

#: Largest gossip payload we publish or accept (py-libp2p's RPC frame cap is 1 MiB).
MAX_GOSSIP_PAYLOAD: Final = 512 * 1024
#: py-libp2p drops RPCs past 32 queued per peer; publishing waits while any queue is this full.
_QUEUE_HIGH_WATER: Final = 16
#: Longest a publish waits for slow peers before sending anyway (they then rely on diff sync).
_PUBLISH_WAIT: Final = 5.0
_PUBLISH_POLL: Final = 0.005

#: (forwarder peer id, origin peer id, payload) -> forward it?
Validator = Callable[[str, str, bytes], Awaitable[bool]]


def messages_topic(network: str) -> str:
    """The gossip topic of hub message bundles on `network`."""
    return f"/stateless-hub/{network}/messages/1"


def contact_topic(network: str) -> str:
    """The gossip topic of contact info on `network`."""
    return f"/stateless-hub/{network}/contact/1"


def gossip_message_id(msg: rpc_pb2.Message) -> bytes:
    """Content addressing: the same payload has the same id whoever relays it."""
    return blake3.blake3(msg.data).digest(length=20)


class Gossip:
    """A running gossip service (from `open_gossip`); valid only inside its `async with` block."""

    def __init__(self, pubsub: Pubsub, router: GossipSub, host: HubHost, network: str) -> None:
        self._pubsub = pubsub
        self._router = router
        self._host = host
        self.messages_topic = messages_topic(network)
        self.contact_topic = contact_topic(network)
        self.published = 0
        self.publish_waits = 0
        self._nursery: trio.Nursery | None = None

    async def _wait_for_room(self) -> None:
        with trio.move_on_after(_PUBLISH_WAIT):
            while self._queues_full():
                self.publish_waits += 1
                await trio.sleep(_PUBLISH_POLL)

    def _queues_full(self) -> bool:
        # Only peers we are connected to count: the queue of a peer that is gone never drains.
        connected = set(self._host.libp2p_host.get_connected_peers())
        return any(
            len(q) >= _QUEUE_HIGH_WATER
            for peer, q in list(self._pubsub.peer_queues.items())
            if peer in connected
        )

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish `payload`, first waiting (bounded) while peers' outbound queues are nearly full."""
        if len(payload) > MAX_GOSSIP_PAYLOAD:
            raise ValueError(f"gossip payload of {len(payload)} bytes exceeds {MAX_GOSSIP_PAYLOAD}")
        await self._wait_for_room()
        await self._pubsub.publish(topic, payload)
        self.published += 1

    def block(self, peer_id: str) -> None:
        """Stop exchanging gossip with a peer and drop its connections (a ban)."""
        # Not Pubsub.add_to_blacklist: its teardown task races the dead-peer handler and crashes the
        # whole pubsub service with a KeyError (py-libp2p 0.8.1). Closing the connection ourselves lets
        # pubsub clean up through its normal disconnect path.
        self._pubsub.blacklisted_peers.add(ID.from_base58(peer_id))
        if self._nursery is not None:
            self._nursery.start_soon(self._host.disconnect, peer_id)

    def unblock(self, peer_id: str) -> None:
        """Lift `block` (a ban expired)."""
        self._pubsub.blacklisted_peers.discard(ID.from_base58(peer_id))

    def mesh_peers(self, topic: str) -> list[str]:
        """Peers in our mesh for `topic`."""
        return [str(p) for p in self._router.mesh.get(topic, set())]

    async def wait_for_subscriber(self, peer_id: str, topic: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Return once `peer_id` is known to subscribe to `topic` (trio.TooSlowError after `timeout`)."""
        await self._pubsub.wait_for_subscription(ID.from_base58(peer_id), topic, timeout=timeout)

    def topic_peers(self, topic: str) -> list[str]:
        """Peers known to subscribe to `topic`."""
        return [str(p) for p in self._pubsub.peer_topics.get(topic, set())]


def _reject(_forwarder: ID, _msg: rpc_pb2.Message) -> bool:
    return False


class _NoValidationCache(ValidationCache):  # type: ignore[misc]  # py-libp2p is untyped for mypy
    """Never reuse a verdict: ours depend on who sent the payload, not only on its bytes.

    py-libp2p caches each validation result by message id (a content hash here) for 300 s. A payload
    rejected from a banned or rate-limited peer would then be dropped unexamined when an honest peer
    relays it. Accepted payloads need no cache: pubsub marks them seen and never validates them again.
    """

    def __init__(self) -> None:
        super().__init__(ttl=0, max_size=1)

    def get(self, msg_id: bytes) -> None:
        return None

    def put(self, msg_id: bytes, result: Any) -> None:
        return None


def _guard_inbound_streams(
    pubsub: Pubsub, protocols: list[TProtocol], on_bad_rpc: Callable[[str], None] | None
) -> None:
    """Keep one peer's unparseable RPC frame from taking the whole host down.

    py-libp2p 0.8.1 only catches framing errors in its pubsub stream handler: an RPC frame that is not
    a valid protobuf raises DecodeError out of the handler, through the connection's nursery, and stops
    the host. Here any error from a peer's inbound pubsub stream ends just that stream, the way
    py-libp2p itself handles a bad frame length (reset, then forget the peer's pubsub state), and an
    RPC that does not parse is reported to `on_bad_rpc` as the peer's fault.
    """

    async def handle(stream: INetStream) -> None:
        try:
            await pubsub.stream_handler(stream)
        except Exception as e:
            peer_id = stream.muxed_conn.peer_id
            log.info("dropping the gossip stream from %s: %s", peer_id, e)
            if on_bad_rpc is not None and isinstance(e, DecodeError):
                try:
                    on_bad_rpc(str(peer_id))
                except Exception:
                    log.exception("on_bad_rpc callback failed")
            try:
                await stream.reset()
            except Exception as reset_error:
                log.debug("resetting the gossip stream from %s: %s", peer_id, reset_error)
            pubsub._handle_dead_peer(peer_id)

    for protocol in protocols:
        pubsub.host.set_stream_handler(protocol, handle)


async def _drain(subscription: Any) -> None:
    # Payloads were fully handled in the validator; the subscription only keeps us in the mesh.
    async for _ in subscription:
        pass


@asynccontextmanager
async def open_gossip(
    host: HubHost,
    *,
    network: str,
    on_bundle: Validator,
    on_contact: Validator,
    heartbeat_interval: float = 1.0,
    on_bad_rpc: Callable[[str], None] | None = None,
) -> AsyncIterator[Gossip]:
    """Join the network's gossip topics on `host` until the block ends; validators decide what spreads.

    `on_bad_rpc(peer_id)` is told of a peer that sent a gossip RPC frame that does not parse (below the
    validators, which never see it); that peer's gossip stream is dropped either way.
    """
    router = GossipSub(
        protocols=[PROTOCOL_ID_V11],
        degree=3,
        degree_low=2,
        degree_high=6,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=heartbeat_interval,  # annotated int in py-libp2p, but only ever slept on
        spam_protection_enabled=False,
        eclipse_protection_enabled=False,
        adaptive_gossip_enabled=False,
    )
    pubsub = Pubsub(
        host.libp2p_host,
        router,
        strict_signing=True,
        msg_id_constructor=gossip_message_id,
        validation_timeout=60.0,
        max_inbound_rpc_size=2 * MAX_GOSSIP_PAYLOAD,
        allowed_topics={messages_topic(network), contact_topic(network)},
    )
    pubsub.validation_cache = _NoValidationCache()
    _guard_inbound_streams(pubsub, router.get_protocols(), on_bad_rpc)
    own_id = host.info.peer_id
    gossip = Gossip(pubsub, router, host, network)

    def validator(callback: Validator) -> Callable[[ID, rpc_pb2.Message], Awaitable[bool]]:
        async def validate(forwarder: ID, msg: rpc_pb2.Message) -> bool:
            sender = str(forwarder)
            if sender == own_id:  # our own publish passes through the same validators
                return True
            try:
                origin = str(ID(msg.from_id))
            except Exception:
                return False
            try:
                return await callback(sender, origin, bytes(msg.data))
            except Exception:
                # A validator bug must not kill py-libp2p's reader for this peer; drop the payload.
                log.exception("gossip validator failed")
                return False

        return validate

    async with background_trio_service(pubsub), background_trio_service(router):
        await pubsub.wait_until_ready()
        pubsub.set_topic_validator(gossip.messages_topic, validator(on_bundle), True)
        pubsub.set_topic_validator(gossip.contact_topic, validator(on_contact), True)
        async with trio.open_nursery() as nursery:
            gossip._nursery = nursery
            for topic in (gossip.messages_topic, gossip.contact_topic):
                nursery.start_soon(_drain, await pubsub.subscribe(topic))
            try:
                yield gossip
            finally:
                gossip._nursery = None
                nursery.cancel_scope.cancel()
                with trio.move_on_after(5, shield=True):
                    for topic in (gossip.messages_topic, gossip.contact_topic):
                        try:
                            await pubsub.unsubscribe(topic)
                        except Exception as e:
                            log.debug("unsubscribing from %s: %s", topic, e)
                    # Connections must close before pubsub's service stops: a pubsub frame arriving
                    # after it would be handed to a closed nursery and crash the host (py-libp2p 0.8.1).
                    pubsub.set_topic_validator(gossip.messages_topic, _reject, False)
                    pubsub.set_topic_validator(gossip.contact_topic, _reject, False)
                    await host.disconnect_all()
