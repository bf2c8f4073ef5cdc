"""The node's network side: gossip in and out, contact info, diff sync scheduling, peer scores and bans.

Everything accepted from a peer is validated exactly as an RPC submission is; peers are only ever
trusted for liveness. A peer that provably misbehaves (forged or malformed data, oversized frames,
self-contradicting sync answers) loses score and, below the threshold, is disconnected and banned.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import blake3
import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee

from node.config import NetworkSettings
from node.engine import HubEngine
from node.slots import ConnectionSlots, bootstrap_peer_ids
from node.sync import PeerSyncStatus, SyncSession, SyncStatusBook, ingest, node_answer
from p2p import (
    DEFAULT_MAX_CONNECTIONS,
    MAX_GOSSIP_PAYLOAD,
    SYNC_PROTOCOL_ID,
    Gossip,
    HubHost,
    SyncPeerError,
    open_gossip,
    serve_sync_stream,
)
from protocols import crdt
from protocols.errors import HubError
from protocols.messages import FARCASTER_EPOCH
from protocols.peers import PeerScores, TokenBucket
from protocols.proto import gossip_pb2, p2p_pb2
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr

log = logging.getLogger("stateless.network")

#: Bumped on incompatible changes to gossip or sync; peers announcing another version are dropped.
PROTOCOL_VERSION: Final = 1
#: Most messages one gossip bundle may carry (ours are smaller; see NetworkSettings).
MAX_BUNDLE_MESSAGES: Final = 1024
#: Contact infos kept (one per peer id); beyond it the stalest of an unconnected peer is forgotten.
MAX_CONTACTS: Final = 1024
#: Contact infos one peer may relay to us per second (and in a burst): every hub announces itself
#: every few seconds, so honest relays stay far below this.
CONTACT_RATE: Final = 20.0
CONTACT_BURST: Final = 200.0
#: What we keep about a peer (sync status, contact info) is dropped this long after it left.
STALE_PEER_SECONDS: Final = 3600.0


@dataclass
class Contact:
    """The latest contact info a peer published."""

    info: p2p_pb2.ContactInfo
    received: float


class _ConnectionEvents(INotifee):  # type: ignore[misc]  # py-libp2p is untyped for mypy
    """Forwards py-libp2p connection events to the network service as (event, peer id)."""

    def __init__(self, send: trio.MemorySendChannel[tuple[str, str]]) -> None:
        self._send = send

    def _post(self, kind: str, conn: INetConn) -> None:
        # A hint only: if it cannot be queued, the periodic sync round covers the peer.
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._send.send_nowait((kind, str(conn.muxed_conn.peer_id)))

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._post("connected", conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._post("disconnected", conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Any) -> None:
        return None


@dataclass
class NetworkStats:
    """Counters for GetInfo, metrics and tests."""

    bundles_in: int = 0
    bundles_forwarded: int = 0
    messages_in: int = 0
    messages_merged: int = 0
    invalid_in: int = 0
    bundles_out: int = 0
    messages_out: int = 0
    bans: int = 0
    rate_limited: int = 0
    duplicates_in: int = 0
    sync_sessions: int = 0
    sync_failures: int = 0
    sync_fetched: int = 0
    sync_pushed: int = 0
    #: Offences charged to peers, by kind (times included), whatever their score did after.
    penalties: dict[str, int] = field(default_factory=dict)


class NetworkService:
    """Gossip, contact info, sync and peer scores for one node. Built and run by `open_network`."""

    def __init__(
        self,
        engine: HubEngine,
        host: HubHost,
        *,
        network_name: str,
        settings: NetworkSettings,
        rpc_address: Callable[[], str],
        version: str,
        clock: Callable[[], float] = time.time,
        bootstrap: Sequence[str] = (),
        max_peers: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.engine = engine
        self._bootstrap = tuple(bootstrap)
        self.host = host
        self.network_name = network_name
        self.settings = settings
        self._rpc_address = rpc_address
        self._version = version
        self._clock = clock
        self.scores = PeerScores(ban_seconds=settings.ban_seconds)
        self.sync_status = SyncStatusBook()
        self.contacts: dict[str, Contact] = {}
        self.stats = NetworkStats()
        self._buckets: dict[str, TokenBucket] = {}
        self._contact_buckets: dict[str, TokenBucket] = {}
        self._in_flight: set[bytes] = set()
        self._banned: set[str] = set()
        self._denied: set[str] = set()
        self._gossip: Gossip | None = None
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](settings.outbound_queue)
        self._sync_send, self._sync_recv = trio.open_memory_channel[str](1024)
        self._sync_wanted: set[str] = set()
        self._sync_slots = trio.Semaphore(settings.max_concurrent_syncs)
        self._serving: dict[str, int] = {}
        self._changed = trio.Event()
        self._announce = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._dialling: set[str] = set()
        self.slots = ConnectionSlots(
            host,
            max_peers=max_peers,
            protected=bootstrap_peer_ids(bootstrap),
            score=lambda peer_id: self.scores.score(peer_id, self._clock()),
            clock=clock,
        )

    def _notify_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_change(self) -> None:
        """Return after the next change of peer state (connection, score, ban, contact info, a sync)."""
        await self._changed.wait()

    # ------------------------------------------------------------------------------------- scores

    def penalise(self, peer_id: str, offence: str, times: int = 1) -> None:
        """Charge a peer for provable misbehaviour; ban and disconnect it below the threshold."""
        if peer_id == self.host.info.peer_id:
            return
        newly_banned = self.scores.penalise(peer_id, offence, self._clock(), times)
        if times > 0:
            self.stats.penalties[offence] = self.stats.penalties.get(offence, 0) + times
        log.info(
            "peer %s: %s x%d (score %.0f)", peer_id, offence, times, self.scores.score(peer_id, self._clock())
        )
        if newly_banned:
            self._ban(peer_id, f"score fell below {self.scores.ban_threshold:g} ({offence})")
        self._notify_change()

    def _ban(self, peer_id: str, why: str) -> None:
        self.stats.bans += 1
        self._banned.add(peer_id)
        log.warning("banning peer %s for %g s: %s", peer_id, self.settings.ban_seconds, why)
        if self._gossip is not None:
            self._gossip.block(peer_id)  # also closes its connection

    def is_banned(self, peer_id: str) -> bool:
        """Whether we refuse to talk to this peer now (banned for misbehaviour, or denied)."""
        return peer_id in self._denied or self.scores.is_banned(peer_id, self._clock())

    def deny(self, peer_id: str) -> None:
        """Refuse a peer until `undeny` (an operator's block list; devnets use it to cut partitions)."""
        self._denied.add(peer_id)
        if self._gossip is not None:
            self._gossip.block(peer_id)

    def undeny(self, peer_id: str) -> None:
        """Talk to a denied peer again."""
        self._denied.discard(peer_id)
        if self._gossip is not None and not self.scores.is_banned(peer_id, self._clock()):
            self._gossip.unblock(peer_id)

    def _lift_expired_bans(self) -> None:
        for peer_id in list(self._banned):
            if not self.is_banned(peer_id):
                self._banned.discard(peer_id)
                if self._gossip is not None:
                    self._gossip.unblock(peer_id)
                log.info("ban of peer %s expired", peer_id)

    def _rate_ok(self, peer_id: str, n: int) -> bool:
        bucket = self._buckets.get(peer_id)
        now = self._clock()
        if bucket is None:
            bucket = self._buckets[peer_id] = TokenBucket(
                self.settings.peer_rate, self.settings.peer_burst, now
            )
        return bucket.take(n, now)

    # ------------------------------------------------------------------------------------- gossip in

    async def _on_bundle(self, sender: str, origin: str, payload: bytes) -> bool:
        if self.is_banned(sender):
            return False
        self.stats.bundles_in += 1
        if len(payload) > MAX_GOSSIP_PAYLOAD:
            self.penalise(sender, "oversized_frame")
            return False
        try:
            bundle = p2p_pb2.MessageBundle.FromString(payload)
        except Exception:
            self.penalise(sender, "malformed_frame")
            return False
        raws = list(bundle.messages)
        if len(raws) > MAX_BUNDLE_MESSAGES:
            self.penalise(sender, "oversized_frame")
            return False
        if not raws:
            return False
        # py-libp2p marks a payload seen only after its validator returns, so copies relayed by other
        # peers meanwhile reach us again; drop those while the first copy is being validated.
        digest = blake3.blake3(payload).digest(length=16)
        if digest in self._in_flight:
            self.stats.duplicates_in += 1
            return False
        if not self._rate_ok(sender, len(raws)):
            self.stats.rate_limited += 1
            self.penalise(sender, "rate_limited")
            return False
        self.stats.messages_in += len(raws)
        self._in_flight.add(digest)
        try:
            result, merged = await ingest(self.engine, raws, origin="gossip")
        finally:
            self._in_flight.discard(digest)
        self.stats.messages_merged += result.merged
        if result.merged:
            self.slots.mark_useful(sender)
        if result.invalid:
            self.stats.invalid_in += result.invalid
            self.penalise(sender, "invalid_message", result.invalid)
        # Forward the bundle as it is only if we could check every message in it; otherwise we pass on
        # (in our own bundles) just what we merged, so nothing we did not validate leaves this node.
        forward = result.invalid == 0 and result.unverifiable == 0
        if not forward and merged:
            await self._enqueue(merged)
        if forward:
            self.stats.bundles_forwarded += 1
        return forward

    def _on_bad_rpc(self, sender: str) -> None:
        self.penalise(sender, "malformed_frame")

    async def _on_contact(self, sender: str, origin: str, payload: bytes) -> bool:
        if self.is_banned(sender):
            return False
        # Contact info is cheap to forge under fresh identities; each sender gets a small budget.
        if not self._contact_budget(sender):
            self.stats.rate_limited += 1
            self.penalise(sender, "rate_limited")
            return False
        try:
            info = p2p_pb2.ContactInfo.FromString(payload)
        except Exception:
            self.penalise(sender, "malformed_frame")
            return False
        if info.peer_id != origin:
            # The gossip envelope is signed by `origin`; a body naming someone else is forged.
            self.penalise(sender, "invalid_message")
            return False
        if info.body.network != self.engine.network:
            log.warning("peer %s is on network %d, not ours: dropping it", origin, info.body.network)
            self.scores.ban(origin, self._clock())
            self._ban(origin, "wrong network")
            return False
        if info.protocol_version != PROTOCOL_VERSION:
            log.warning(
                "peer %s speaks protocol %d, we speak %d: dropping it",
                origin,
                info.protocol_version,
                PROTOCOL_VERSION,
            )
            self.scores.ban(origin, self._clock())
            self._ban(origin, "incompatible protocol version")
            return False
        previous = self.contacts.get(origin)
        if previous is not None and previous.info.body.timestamp >= info.body.timestamp:
            return False  # a replay or reordering: nothing new
        if previous is None and len(self.contacts) >= MAX_CONTACTS:
            self._evict_contact()
        self.contacts[origin] = Contact(info, self._clock())
        self._notify_change()
        connected = origin in self.host.connected_peers()
        if connected and self._diverges(info):
            self.request_sync(origin)
        elif not connected and self._nursery is not None and origin not in self._dialling:
            # Dial in the background: a slow or dead address must not hold up this peer's gossip.
            self._dialling.add(origin)
            self._nursery.start_soon(self._maybe_dial, info)
        return True

    def _contact_budget(self, sender: str) -> bool:
        bucket = self._contact_buckets.get(sender)
        now = self._clock()
        if bucket is None:
            bucket = self._contact_buckets[sender] = TokenBucket(CONTACT_RATE, CONTACT_BURST, now)
        return bucket.take(1, now)

    def _evict_contact(self) -> None:
        """Make room: forget the stalest contact of a peer we are not connected to."""
        connected = set(self.host.connected_peers())
        idle = [(c.received, pid) for pid, c in self.contacts.items() if pid not in connected]
        if idle:
            del self.contacts[min(idle)[1]]
        else:
            del self.contacts[min((c.received, pid) for pid, c in self.contacts.items())[1]]

    def _forget_stale_peers(self) -> None:
        """Bound per-peer bookkeeping: drop what we keep about peers long gone."""
        now = self._clock()
        connected = set(self.host.connected_peers())
        horizon = now - STALE_PEER_SECONDS
        for table in (self._buckets, self._contact_buckets):
            for pid in [p for p in table if p not in connected]:
                del table[pid]
        for pid, status in list(self.sync_status.peers.items()):
            if pid not in connected and not status.syncing and status.last_finished < horizon:
                del self.sync_status.peers[pid]
        for pid, contact in list(self.contacts.items()):
            if pid not in connected and contact.received < horizon:
                del self.contacts[pid]

    def _diverges(self, info: p2p_pb2.ContactInfo) -> bool:
        return bytes(info.trie_root) != self._root_hash()

    async def _redial(self, addr: str, peer_id: str) -> None:
        try:
            await self.host.connect(addr)
        except HubError as e:
            log.info("bootstrap peer %s still unreachable: %s", addr, e.message)
        else:
            log.info("reconnected to bootstrap peer %s", peer_id)
        finally:
            self._dialling.discard(peer_id)

    async def _maybe_dial(self, info: p2p_pb2.ContactInfo) -> None:
        try:
            # Dial while short of peers, and also while short of outbound ones however many peers dialled
            # us: a node full of inbound connections may be full of one attacker's sybils.
            enough = len(self.host.connected_peers()) >= self.settings.target_peers
            if (enough and self.slots.outbound_count() >= self.slots.reserve) or self.is_banned(info.peer_id):
                return
            for addr in info.listen_addrs[:4]:
                try:
                    peer_id = await self.host.connect(addr)
                    self.slots.mark_chosen(peer_id)
                    return
                except HubError as e:
                    log.debug("dialling %s from contact info: %s", addr, e)
        finally:
            self._dialling.discard(info.peer_id)

    # ------------------------------------------------------------------------------------- gossip out

    async def on_merged(self, messages: list[pb.Message], origin: str) -> None:
        """Engine merge listener: messages merged from local clients are gossiped by us."""
        if origin == "local":
            await self._enqueue(messages)

    async def _enqueue(self, messages: list[pb.Message]) -> None:
        for message in messages:
            await self._out_send.send(message.SerializeToString())

    async def _bundler(self) -> None:
        s = self.settings
        while True:
            first = await self._out_recv.receive()
            pending, size = [first], len(first)
            deadline = trio.current_time() + s.bundle_delay
            while len(pending) < s.bundle_messages and size < s.bundle_bytes:
                with trio.move_on_at(deadline):
                    raw = await self._out_recv.receive()
                    pending.append(raw)
                    size += len(raw)
                    continue
                break
            await self._publish_bundle(pending)

    async def _publish_bundle(self, raws: list[bytes]) -> None:
        assert self._gossip is not None
        payload = p2p_pb2.MessageBundle(messages=raws).SerializeToString()
        try:
            await self._gossip.publish(self._gossip.messages_topic, payload)
        except Exception as e:  # gossip is best effort: diff sync repairs what does not get through
            log.warning("publishing a bundle of %d messages failed: %s", len(raws), e)
            return
        self.stats.bundles_out += 1
        self.stats.messages_out += len(raws)

    # ------------------------------------------------------------------------------------- contact info

    def contact_info(self) -> p2p_pb2.ContactInfo:
        """What we announce about ourselves."""
        with self.engine.read() as kv:
            root = crdt.trie_root(kv)
        body = gossip_pb2.ContactInfoContentBody(
            count=min(root.count, 2**32 - 1),
            hub_version=self._version,
            network=self.engine.network,  # type: ignore[arg-type]
            app_version=self._version,
            timestamp=int(self._clock() * 1000),
        )
        rpc = self._rpc_address()
        if rpc:
            host, _, port = rpc.rpartition(":")
            body.rpc_address.address = host
            body.rpc_address.port = int(port) if port.isdigit() else 0
        return p2p_pb2.ContactInfo(
            body=body,
            peer_id=self.host.info.peer_id,
            trie_root=root.hash,
            message_count=root.count,
            listen_addrs=list(self.host.info.listen_addrs),
            protocol_version=PROTOCOL_VERSION,
        )

    async def publish_contact_info(self) -> None:
        """Announce our contact info now (also done every `contact_interval` seconds)."""
        assert self._gossip is not None
        await self._gossip.publish(self._gossip.contact_topic, self.contact_info().SerializeToString())

    def announce_soon(self) -> None:
        """Publish our contact info again shortly (something in it changed, or a peer arrived)."""
        self._announce.set()

    async def _contact_loop(self) -> None:
        while True:
            try:
                await self.publish_contact_info()
            except Exception as e:
                log.warning("publishing contact info failed: %s", e)
            with trio.move_on_after(self.settings.contact_interval):
                await self._announce.wait()
                # Give a newcomer a moment to learn our subscriptions, so the announcement reaches it.
                await trio.sleep(min(1.0, self.settings.contact_interval))
            self._announce = trio.Event()

    # ------------------------------------------------------------------------------------- sync

    def request_sync(self, peer_id: str) -> None:
        """Ask for a diff-sync session with a connected peer soon (deduplicated)."""
        if peer_id in self._sync_wanted or self.is_banned(peer_id) or peer_id == self.host.info.peer_id:
            return
        try:
            self._sync_send.send_nowait(peer_id)
        except trio.WouldBlock:
            return
        self._sync_wanted.add(peer_id)

    async def sync_now(self, peer_id: str) -> PeerSyncStatus:
        """Run one diff-sync session with `peer_id` and return its status (raises SyncPeerError)."""
        status = self.sync_status.get(peer_id)
        async with self._sync_slots:
            # The totals only grow; their change is what this session moved, even if it fails part way.
            fetched, pushed = status.total_fetched, status.total_pushed
            status.syncing = True
            status.sessions += 1
            status.last_started = self._clock()
            self.stats.sync_sessions += 1
            try:
                await SyncSession(self.engine, self.host, peer_id, status, self.penalise, self._clock).run()
            except SyncPeerError as e:
                self.stats.sync_failures += 1
                status.last_error = e.message
                if e.offence is not None:
                    self.penalise(peer_id, e.offence)
                raise
            else:
                status.last_error = ""
                if status.merged:
                    self.slots.mark_useful(peer_id)
            finally:
                status.syncing = False
                status.last_finished = self._clock()
                self.stats.sync_fetched += status.total_fetched - fetched
                self.stats.sync_pushed += status.total_pushed - pushed
                self._notify_change()
        if status.fetched or status.pushed:
            log.info(
                "synced with %s: fetched %d (merged %d), pushed %d; %s",
                peer_id, status.fetched, status.merged, status.pushed,
                "in sync" if status.in_sync else "still differs",
            )  # fmt: skip
        return status

    async def _sync_one(self, peer_id: str) -> None:
        try:
            await self.sync_now(peer_id)
        except SyncPeerError as e:
            log.info("sync with %s failed: %s", peer_id, e.message)
        finally:
            self._sync_wanted.discard(peer_id)

    async def _sync_scheduler(self) -> None:
        async with trio.open_nursery() as nursery:
            async for peer_id in self._sync_recv:
                if peer_id in self.host.connected_peers() and not self.is_banned(peer_id):
                    nursery.start_soon(self._sync_one, peer_id)
                else:
                    self._sync_wanted.discard(peer_id)

    async def _periodic(self) -> None:
        while True:
            await trio.sleep(self.settings.sync_interval)
            self._lift_expired_bans()
            self.scores.forget_idle(self._clock())
            self._forget_stale_peers()
            await self.slots.enforce()
            self._keep_outbound()
            peers = self.host.connected_peers()
            random.shuffle(peers)
            for peer_id in peers:
                self.request_sync(peer_id)

    def _keep_outbound(self) -> None:
        """Redial bootstrap peers we lost while fewer connections than the outbound reserve are ours.

        Inbound peers can never take those slots (node/slots.py), so however many sybils connect to us,
        the peers we chose get back in. Also covers a node left alone after its bootstrap peers restarted
        or the network was down longer than the start-up retries.
        """
        if self._nursery is None or not self._bootstrap:
            return
        if self.host.connected_peers() and self.slots.outbound_count() >= self.slots.reserve:
            return
        connected = set(self.host.connected_peers())
        for addr in self._bootstrap:
            peer_id = addr.rsplit("/p2p/", 1)[-1]
            if peer_id not in connected and peer_id not in self._dialling and not self.is_banned(peer_id):
                self._dialling.add(peer_id)
                self._nursery.start_soon(self._redial, addr, peer_id)

    async def _connection_events(self, recv: trio.MemoryReceiveChannel[tuple[str, str]]) -> None:
        async for kind, peer_id in recv:
            self._notify_change()
            if kind == "connected":
                if self.is_banned(peer_id):
                    log.debug("dropping a new connection from banned or denied peer %s", peer_id)
                    if self._gossip is not None:
                        self._gossip.block(peer_id)
                elif peer_id not in await self.slots.enforce():
                    self.request_sync(peer_id)
                    self._announce.set()
            elif peer_id in self.slots.protected:
                self._keep_outbound()

    # ------------------------------------------------------------------------------------- sync server

    def allow(self, peer_id: str) -> bool:
        """SyncSource: banned peers are not served."""
        return not self.is_banned(peer_id)

    def trie_node(self, prefix: bytes) -> p2p_pb2.TrieNodeAnswer:
        """SyncSource: our trie node at `prefix`."""
        with self.engine.read() as kv:
            return node_answer(crdt.trie_node(kv, bytes(prefix)))

    def sync_ids(self, prefix: bytes, after: bytes | None, limit: int) -> p2p_pb2.SyncIdsAnswer:
        """SyncSource: one page of our sync ids under `prefix`."""
        prefix = bytes(prefix)
        with self.engine.read() as kv:
            ids = crdt.sync_ids_under(kv, prefix, after=after, limit=limit + 1)
            answer = p2p_pb2.SyncIdsAnswer(sync_ids=ids[:limit], more=len(ids) > limit)
            if len(prefix) == crdt.LEAF_PREFIX_BYTES and after is None and not answer.more:
                bucket = crdt.trie_node(kv, prefix)
                answer.bucket_count, answer.bucket_hash = bucket.count, bucket.hash
        return answer

    def messages(self, sync_ids: Any) -> list[bytes]:
        """SyncSource: the messages we hold for these ids."""
        out: list[bytes] = []
        with self.engine.read() as kv:
            for sid in sync_ids:
                if len(sid) != crdt.SYNC_ID_BYTES:
                    continue
                message = crdt.load_by_sync_id(kv, bytes(sid))
                if message is not None:
                    out.append(message.SerializeToString())
        return out

    async def push(self, peer_id: str, messages: list[bytes]) -> p2p_pb2.PushAnswer:
        """SyncSource: merge what a syncing peer says we lack, validating everything."""
        if not self._rate_ok(peer_id, len(messages)):
            self.penalise(peer_id, "rate_limited")
            raise HubError("unavailable.overloaded", "push rate limit exceeded; retry later")
        result, _ = await ingest(self.engine, messages, origin="sync")
        if result.invalid:
            self.penalise(peer_id, "invalid_message", result.invalid)
        return p2p_pb2.PushAnswer(merged=result.merged, rejected=len(messages) - result.merged)

    async def _serve_sync(self, stream: INetStream) -> None:
        await serve_sync_stream(stream, self, self._serving)

    # ------------------------------------------------------------------------------------- lifetime

    async def run(self, *, task_status: trio.TaskStatus[NetworkService] = trio.TASK_STATUS_IGNORED) -> None:
        """Join gossip, serve and schedule sync, announce contact info; until cancelled."""
        events_send, events_recv = trio.open_memory_channel[tuple[str, str]](1024)
        libp2p_host = self.host.libp2p_host
        libp2p_host.get_network().register_notifee(_ConnectionEvents(events_send))
        libp2p_host.set_stream_handler(SYNC_PROTOCOL_ID, self._serve_sync)
        self.engine.add_merge_listener(self.on_merged)
        async with open_gossip(
            self.host,
            network=self.network_name,
            on_bundle=self._on_bundle,
            on_contact=self._on_contact,
            heartbeat_interval=self.settings.heartbeat_interval,
            on_bad_rpc=self._on_bad_rpc,
        ) as gossip:
            self._gossip = gossip
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._bundler)
                nursery.start_soon(self._contact_loop)
                nursery.start_soon(self._sync_scheduler)
                nursery.start_soon(self._periodic)
                nursery.start_soon(self._connection_events, events_recv)
                for peer_id in self.host.connected_peers():
                    self.request_sync(peer_id)
                task_status.started(self)
                try:
                    await trio.sleep_forever()
                finally:
                    self._gossip = None
                    self._nursery = None
                    nursery.cancel_scope.cancel()

    # ------------------------------------------------------------------------------------- views

    @property
    def is_syncing(self) -> bool:
        """Whether a diff-sync session is running now."""
        return self.sync_status.syncing

    def connected_count(self) -> int:
        """How many peers we have a connection with."""
        return len(self.host.connected_peers())

    def sync_status_response(self, peer_id: str | None) -> rr.SyncStatusResponse:
        """GetSyncStatus: per-peer progress, for one peer or every peer we know."""
        now = self._clock()
        with self.engine.read() as kv:
            ours = crdt.trie_root(kv).count
        known = set(self.sync_status.peers) | set(self.host.connected_peers())
        wanted = [peer_id] if peer_id else sorted(known)
        response = rr.SyncStatusResponse(is_syncing=self.is_syncing, engine_started=True)
        for pid in wanted:
            status = self.sync_status.peers.get(pid) or PeerSyncStatus(pid)
            contact = self.contacts.get(pid)
            entry = response.sync_status.add()
            entry.peerId = pid
            entry.inSync = {None: "unknown", True: "true", False: "false"}[status.in_sync]
            if status.syncing:
                entry.inSync = "syncing"
            entry.shouldSync = contact is not None and bytes(contact.info.trie_root) != self._root_hash()
            entry.divergencePrefix = status.divergence_prefix.hex()
            if status.divergence_prefix[:4]:
                diverged_at = int.from_bytes(status.divergence_prefix[:4].ljust(4, b"\0"), "big")
                entry.divergenceSecondsAgo = max(0, int(now) - (diverged_at + FARCASTER_EPOCH))
            entry.theirMessages = contact.info.message_count if contact else status.their_messages
            entry.ourMessages = ours
            entry.lastBadSync = int(status.last_bad_sync * 1000)
            entry.score = round(self.scores.score(pid, now))
            entry.fetched = status.total_fetched
            entry.pushed = status.total_pushed
            entry.merged = status.total_merged
            entry.sessions = status.sessions
            entry.last_sync_finished = int(status.last_finished * 1000)
            entry.last_error = status.last_error
            entry.connected = pid in self.host.connected_peers()
        return response

    def _root_hash(self) -> bytes:
        with self.engine.read() as kv:
            return crdt.trie_root(kv).hash

    def peers(self) -> list[gossip_pb2.ContactInfoContentBody]:
        """GetCurrentPeers: connected peers and every peer we hold a score or contact info for."""
        now = self._clock()
        connected = set(self.host.connected_peers())
        scored = {p.peer_id: p for p in self.scores.snapshot(now)}
        out = []
        for peer_id in sorted(connected | scored.keys() | self.contacts.keys()):
            contact = self.contacts.get(peer_id)
            body = gossip_pb2.ContactInfoContentBody()
            if contact is not None:
                body.CopyFrom(contact.info.body)
                body.listen_addrs.extend(contact.info.listen_addrs)
                body.trie_root = contact.info.trie_root
            body.peer_id = peer_id
            score = scored.get(peer_id)
            body.score = round(score.score) if score else 0
            body.banned_until = int(score.banned_until) if score and score.banned_until else 0
            body.connected = peer_id in connected
            out.append(body)
        return out


@asynccontextmanager
async def open_network(
    engine: HubEngine,
    host: HubHost,
    *,
    network_name: str,
    settings: NetworkSettings,
    rpc_address: Callable[[], str],
    version: str,
    clock: Callable[[], float] = time.time,
    bootstrap: Sequence[str] = (),
    max_peers: int = DEFAULT_MAX_CONNECTIONS,
) -> AsyncIterator[NetworkService]:
    """Run the network side of a node until the block ends (gossip left before the host closes).

    `bootstrap` peers are protected from eviction and dialled again whenever fewer connections than the
    outbound reserve are ours. At most `max_peers` peers stay connected (see node/slots.py); give the host
    `connection_limit(max_peers)` so newcomers get in and the slot rules decide who stays.
    """
    service = NetworkService(
        engine, host, network_name=network_name, settings=settings, rpc_address=rpc_address,
        version=version, clock=clock, bootstrap=bootstrap, max_peers=max_peers,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        try:
            yield service
        finally:
            nursery.cancel_scope.cancel()
