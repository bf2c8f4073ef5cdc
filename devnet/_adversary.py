"""Misbehaving peers for adversarial tests and devnets: they speak our protocols, but lie.

- `Forger`: publishes bundles of forged messages (a registered key as signer, a signature by another),
  corrupted ones (hash mismatch), malformed payloads and floods; forwards nothing it receives; answers
  every sync request with a trie node whose hash does not match its children.
- `Withholder`: joins gossip but forwards nothing, and accepts sync streams without ever answering.
- `Flooder`: a forger that only floods: many bundles of forged messages, as fast as gossip takes them.
- `Liar`: answers sync with inconsistent trie nodes, and block (blob) requests by claiming to hold every
  block and serving bytes that do not hash to the requested CID.

Neither can make an honest node store anything invalid; the tests show they get banned (the forger) or
are merely useless (the withholder), while honest nodes still converge through any honest path.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
class Forger:
    """A peer that gossips forged and malformed data and lies in sync."""

    host: HubHost
    gossip: Gossip

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id

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


@asynccontextmanager
async def _open_peer(
    data_dir: Path, network: str, sync_handler: Any, blocks_handler: Any = None
) -> AsyncIterator[tuple[HubHost, Gossip]]:
    await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
    key_pair = load_or_create_peer_key(data_dir / "peer.key")
    async with open_host(key_pair, listen_port=0) as host:
        host.libp2p_host.set_stream_handler(SYNC_PROTOCOL_ID, sync_handler)
        if blocks_handler is not None:
            host.libp2p_host.set_stream_handler(BLOCKS_PROTOCOL_ID, blocks_handler)
        async with open_gossip(
            host, network=network, on_bundle=_drop, on_contact=_drop, heartbeat_interval=0.2
        ) as gossip:
            yield host, gossip


@asynccontextmanager
async def open_forger(data_dir: Path, *, network: str = "devnet") -> AsyncIterator[Forger]:
    """Run a forging peer until the block ends; connect it with `forger.host.connect(addr)`."""
    async with _open_peer(data_dir, network, _lying_sync) as (host, gossip):
        yield Forger(host, gossip)


@dataclass
class Withholder:
    """A peer that takes everything and gives nothing."""

    host: HubHost
    gossip: Gossip

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id


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
class Liar:
    """A peer that serves wrong data: lying trie nodes to sync, corrupted blocks to blob fetches."""

    host: HubHost
    gossip: Gossip

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id


@asynccontextmanager
async def open_liar(data_dir: Path, *, network: str = "devnet") -> AsyncIterator[Liar]:
    """Run a lying peer (sync and blocks) until the block ends."""
    async with _open_peer(data_dir, network, _lying_sync, _wrong_blocks) as (host, gossip):
        yield Liar(host, gossip)
