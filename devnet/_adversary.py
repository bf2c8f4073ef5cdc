"""Misbehaving peers for adversarial tests and devnets: they speak our protocols, but lie.

- `Forger`: publishes bundles of forged messages (a registered key as signer, a signature by another),
  corrupted ones (hash mismatch), malformed payloads and floods; forwards nothing it receives; answers
  every sync request with a trie node whose hash does not match its children.
- `Withholder`: joins gossip but forwards nothing, and accepts sync streams without ever answering.
- `Flooder`: a forger that only floods: many bundles of forged messages, as fast as gossip takes them.
- `Liar`: answers sync with inconsistent trie nodes, and block (blob) requests by claiming to hold every
  block and serving bytes that do not hash to the requested CID.
- `Eclipser`: many sybil identities (a libp2p host each) that connect to a target and reconnect whenever
  dropped, to fill its connection slots so that no honest peer gets in.

None can make an honest node store anything invalid; the tests show they get banned (the forger) or
are merely useless (the withholder), while honest nodes still converge through any honest path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devnet._modes import ADVERSARY_MODES
from p2p import (
    BLOCKS_PROTOCOL_ID,
    SYNC_PROTOCOL_ID,
    FrameReader,
    Gossip,
    HubHost,
    encode_frame,
    load_or_create_peer_key,
    open_gossip,
    open_host,
)
from protocols.messages import farcaster_now, sign_message_data
from protocols.proto import message_pb2 as pb
from protocols.proto import p2p_pb2


async def _drop(_sender: str, _origin: str, _payload: bytes) -> bool:
    return False  # forwards nothing


@dataclass
class GossipPeer:
    """A libp2p host in gossip: what every gossiping adversary is, whatever it does with it."""

    host: HubHost
    gossip: Gossip

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id


@dataclass
class Forger(GossipPeer):
    """A peer that gossips forged and malformed data and lies in sync."""

    def forged_casts(self, fid: int, victim_public_key: bytes, n: int, *, network: int) -> list[bytes]:
        """Casts that claim `victim_public_key` (a real signer of `fid`) but are signed by another key."""
        impostor = Ed25519PrivateKey.generate()
        out = []
        for i in range(n):
            d = pb.MessageData(type=pb.MESSAGE_TYPE_CAST_ADD, fid=fid, timestamp=farcaster_now())
            d.network = network  # type: ignore[assignment]
            d.cast_add_body.text = f"forged {i} {os.urandom(4).hex()}"
            m = sign_message_data(d, impostor)
            m.signer = victim_public_key
            out.append(m.SerializeToString())
        return out

    def corrupted(self, message: pb.Message) -> bytes:
        """A copy of a genuine message whose data no longer matches its hash."""
        bad = pb.Message()
        bad.CopyFrom(message)
        bad.data_bytes = bytes(message.data_bytes) + b"\x00"
        return bad.SerializeToString()

    async def publish_bundle(self, raws: list[bytes]) -> None:
        """Gossip these message bytes as one bundle."""
        await self.gossip.publish(
            self.gossip.messages_topic, p2p_pb2.MessageBundle(messages=raws).SerializeToString()
        )

    async def publish_payload(self, payload: bytes) -> None:
        """Gossip arbitrary bytes on the messages topic (garbage, oversized bundles, ...)."""
        await self.gossip.publish(self.gossip.messages_topic, payload)


async def _lying_sync(stream: Any) -> None:
    reader = FrameReader(stream, max_size=1 << 20)
    try:
        while await reader.read() is not None:
            lie = p2p_pb2.TrieNodeAnswer(
                prefix=b"", count=7, hash=os.urandom(20),
                children=[p2p_pb2.TrieChildEntry(byte=1, count=3, hash=os.urandom(20))],
            )  # fmt: skip
            await stream.write(encode_frame(p2p_pb2.SyncResponse(trie_node=lie).SerializeToString()))
    except Exception:
        pass  # the honest side hangs up on us; that is the point


async def _silent_sync(stream: Any) -> None:
    reader = FrameReader(stream, max_size=1 << 20)
    try:
        while await reader.read() is not None:
            pass  # read everything, answer nothing
    except Exception:
        pass


async def _wrong_blocks(stream: Any) -> None:
    # Block requests are small; a generous limit keeps any honest request readable.
    reader = FrameReader(stream, max_size=1 << 20)
    try:
        while (frame := await reader.read()) is not None:
            request = p2p_pb2.BlockRequest.FromString(frame)
            if request.have:
                # "Yes, all of them": so discovery lists us as a provider of anything.
                answer = p2p_pb2.BlockResponse(have=list(request.have))
            else:
                answer = p2p_pb2.BlockResponse(
                    blocks=[p2p_pb2.BlockEntry(cid=raw, data=os.urandom(64)) for raw in request.want]
                )
            await stream.write(encode_frame(answer.SerializeToString()))
    except Exception:
        pass  # the fetcher hangs up on us once it has seen a wrong block


async def _dial_quietly(host: HubHost, addrs: list[str]) -> None:
    for addr in addrs:
        try:
            await host.connect(addr)
            return
        except Exception:
            continue  # an unreachable address: try the next


@asynccontextmanager
async def _open_peer(
    data_dir: Path,
    network: str,
    sync_handler: Any,
    blocks_handler: Any = None,
    *,
    listen_port: int = 0,
    bootstrap: Sequence[str] = (),
) -> AsyncIterator[tuple[HubHost, Gossip]]:
    """A libp2p host in gossip that forwards nothing and dials every hub whose contact info it hears."""
    await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
    key_pair = load_or_create_peer_key(data_dir / "peer.key")
    async with (
        open_host(key_pair, listen_port=listen_port, bootstrap=bootstrap) as host,
        trio.open_nursery() as nursery,
    ):
        host.libp2p_host.set_stream_handler(SYNC_PROTOCOL_ID, sync_handler)
        if blocks_handler is not None:
            host.libp2p_host.set_stream_handler(BLOCKS_PROTOCOL_ID, blocks_handler)
        dialling: set[str] = set()

        async def on_contact(_sender: str, origin: str, payload: bytes) -> bool:
            # An attacker wants to reach every hub: dial whoever announces itself (and never relay).
            if origin not in dialling and origin not in host.connected_peers():
                with contextlib.suppress(Exception):
                    addrs = list(p2p_pb2.ContactInfo.FromString(payload).listen_addrs)[:4]
                    dialling.add(origin)
                    nursery.start_soon(_dial_quietly, host, addrs)
            return False

        async with open_gossip(
            host, network=network, on_bundle=_drop, on_contact=on_contact, heartbeat_interval=0.2
        ) as gossip:
            yield host, gossip
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def open_forger(data_dir: Path, *, network: str = "devnet") -> AsyncIterator[Forger]:
    """Run a forging peer until the block ends; connect it with `forger.host.connect(addr)`."""
    async with _open_peer(data_dir, network, _lying_sync) as (host, gossip):
        yield Forger(host, gossip)


@dataclass
class Withholder(GossipPeer):
    """A peer that takes everything and gives nothing."""


@asynccontextmanager
async def open_withholder(data_dir: Path, *, network: str = "devnet") -> AsyncIterator[Withholder]:
    """Run a withholding peer until the block ends."""
    async with _open_peer(data_dir, network, _silent_sync) as (host, gossip):
        yield Withholder(host, gossip)


@dataclass
class Flooder(Forger):
    """A forger whose whole act is volume: bundle after bundle of forged casts."""

    async def flood(
        self, fid: int, victim_public_key: bytes, *, bundles: int, per_bundle: int, network: int
    ) -> list[bytes]:
        """Publish `bundles` bundles of `per_bundle` forged casts each; returns every message sent."""
        sent: list[bytes] = []
        for _ in range(bundles):
            batch = self.forged_casts(fid, victim_public_key, per_bundle, network=network)
            await self.publish_bundle(batch)
            sent += batch
        return sent


@asynccontextmanager
async def open_flooder(data_dir: Path, *, network: str = "devnet") -> AsyncIterator[Flooder]:
    """Run a flooding peer until the block ends."""
    async with _open_peer(data_dir, network, _silent_sync) as (host, gossip):
        yield Flooder(host, gossip)


@dataclass
class Liar(GossipPeer):
    """A peer that serves wrong data: lying trie nodes to sync, corrupted blocks to blob fetches."""


@asynccontextmanager
async def open_liar(data_dir: Path, *, network: str = "devnet") -> AsyncIterator[Liar]:
    """Run a lying peer (sync and blocks) until the block ends."""
    async with _open_peer(data_dir, network, _lying_sync, _wrong_blocks) as (host, gossip):
        yield Liar(host, gossip)


@dataclass
class Eclipser:
    """Sybils that try to take every connection slot of target nodes (see node/slots.py for the defence).

    Each sybil is its own libp2p host with a fresh key; `besiege` keeps every sybil connected to the
    target, reconnecting as soon as it is dropped, until cancelled.
    """

    sybils: list[HubHost]
    #: Connection attempts made and how many of them the target accepted for a moment at least.
    attempts: int = 0
    accepted: int = 0

    def connected_to(self, peer_id: str) -> int:
        """How many sybils hold a connection to `peer_id` now."""
        return sum(1 for sybil in self.sybils if peer_id in sybil.connected_peers())

    async def besiege(self, target_addr: str, *, retry: float = 0.05) -> None:
        """Keep every sybil connected to `target_addr` (a /p2p/ address) until cancelled."""
        target = target_addr.rsplit("/p2p/", 1)[-1]

        async def hold(sybil: HubHost) -> None:
            while True:
                if target not in sybil.connected_peers():
                    self.attempts += 1
                    try:
                        await sybil.connect(target_addr)
                    except Exception:
                        pass  # refused or dropped during the handshake: try again
                    else:
                        self.accepted += 1
                # The adversary's own pacing, not a wait for anything: a real attacker just keeps trying.
                await trio.sleep(retry)

        async with trio.open_nursery() as nursery:
            for sybil in self.sybils:
                nursery.start_soon(hold, sybil)


@asynccontextmanager
async def open_eclipser(data_dir: Path, *, sybils: int = 16) -> AsyncIterator[Eclipser]:
    """Run `sybils` sybil hosts (each with a new key under `data_dir`) until the block ends."""
    if not 1 <= sybils <= 1024:
        raise ValueError(f"an eclipser has 1 to 1024 sybils, got {sybils}")
    await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        hosts = [
            await stack.enter_async_context(
                open_host(load_or_create_peer_key(data_dir / f"sybil-{i}.key"), listen_port=0)
            )
            for i in range(sybils)
        ]
        yield Eclipser(hosts)


# ------------------------------------------------------------------------------------------------ process


#: Forged casts per bundle and bundles per second of the `forge` mode.
FORGE_PER_BUNDLE: Final = 10
FORGE_INTERVAL: Final = 1.0
#: The `flood` mode publishes this many forged casts per bundle, a bundle every FLOOD_INTERVAL seconds.
FLOOD_PER_BUNDLE: Final = 100
FLOOD_INTERVAL: Final = 0.05
DEFAULT_SYBILS: Final = 24


@dataclass(frozen=True, slots=True)
class AdversaryReady:
    """What a running adversary tells its starter: its identity, where it listens, what it attacks."""

    mode: str
    peer_id: str
    listen_addrs: tuple[str, ...]
    targets: tuple[str, ...]


def victim_signer(genesis: Path | None, network_name: str) -> tuple[int, bytes]:
    """A registered (fid, signer key) from the genesis to impersonate; (1, random key) without one."""
    from node.genesis import load_genesis
    from protocols.proto import onchain_event_pb2 as oc

    if genesis is not None:
        for event in load_genesis(genesis, network_name=network_name):
            if event.type == oc.EVENT_TYPE_SIGNER:
                return event.fid, bytes(event.signer_event_body.key)
    return 1, os.urandom(32)


async def run_adversary(
    mode: str,
    data_dir: Path,
    *,
    bootstrap: Sequence[str] = (),
    genesis: Path | None = None,
    network_name: str = "devnet",
    network_id: int = pb.FARCASTER_NETWORK_DEVNET,
    listen_port: int = 0,
    sybils: int = DEFAULT_SYBILS,
    task_status: trio.TaskStatus[AdversaryReady] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one adversary of `ADVERSARY_MODES` until cancelled (the body of `stateless devnet adversary`).

    It dials `bootstrap` (honest nodes) and, except `eclipse`, every hub it hears of through contact
    gossip. `eclipse` besieges each bootstrap address with `sybils` sybils.
    """
    if mode not in ADVERSARY_MODES:
        raise ValueError(f"unknown adversary mode {mode!r}; known: {', '.join(ADVERSARY_MODES)}")
    fid, signer = victim_signer(genesis, network_name)
    if mode == "eclipse":
        async with open_eclipser(data_dir, sybils=sybils) as eclipser, trio.open_nursery() as nursery:
            first = eclipser.sybils[0].info
            task_status.started(AdversaryReady(mode, first.peer_id, first.listen_addrs, tuple(bootstrap)))
            for addr in bootstrap:
                nursery.start_soon(eclipser.besiege, addr)
        return
    sync = _silent_sync if mode in ("withhold", "flood") else _lying_sync
    blocks = _wrong_blocks if mode == "lie" else None
    async with _open_peer(
        data_dir, network_name, sync, blocks, listen_port=listen_port, bootstrap=bootstrap
    ) as (host, gossip):
        task_status.started(AdversaryReady(mode, host.info.peer_id, host.info.listen_addrs, tuple(bootstrap)))
        forger = Flooder(host, gossip)  # a Forger that can also flood
        rounds = 0
        while mode in ("forge", "flood"):
            try:
                if mode == "forge":
                    await forger.publish_bundle(
                        forger.forged_casts(fid, signer, FORGE_PER_BUNDLE, network=network_id)
                    )
                    if rounds % 10 == 0:
                        await forger.publish_payload(b"\xff\x00 not a bundle")
                else:
                    await forger.flood(
                        fid, signer, bundles=1, per_bundle=FLOOD_PER_BUNDLE, network=network_id
                    )
            except Exception:
                pass  # nobody to publish to yet, or they hung up on us: keep trying
            rounds += 1
            # The adversary's own pace (it is a load generator, not waiting for anything).
            await trio.sleep(FORGE_INTERVAL if mode == "forge" else FLOOD_INTERVAL)
        await trio.sleep_forever()
