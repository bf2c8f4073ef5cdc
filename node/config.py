"""Node configuration: one immutable object built by the CLI (or tests) and passed to `node.runner`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from protocols.errors import HubError
from protocols.proto import message_pb2 as pb

DEFAULT_RPC_PORT: Final = 2283
DEFAULT_GOSSIP_PORT: Final = 2282
#: Prometheus metrics over HTTP (`stateless node start`; NodeConfig itself defaults to any free port).
DEFAULT_METRICS_PORT: Final = 2284
DEFAULT_HOST: Final = "127.0.0.1"

NETWORKS: Final[dict[str, int]] = {
    "mainnet": pb.FARCASTER_NETWORK_MAINNET,
    "testnet": pb.FARCASTER_NETWORK_TESTNET,
    "devnet": pb.FARCASTER_NETWORK_DEVNET,
}


def parse_network(name: str) -> int:
    """Map a network name (`mainnet`, `testnet`, `devnet`) to its `FarcasterNetwork` value."""
    try:
        return NETWORKS[name.lower()]
    except KeyError:
        raise HubError(
            "bad_request.invalid_param", f"unknown network {name!r}; use one of {', '.join(NETWORKS)}"
        ) from None


def network_name(value: int) -> str:
    """The name of a `FarcasterNetwork` value."""
    for name, v in NETWORKS.items():
        if v == value:
            return name
    return f"network-{value}"


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Tunables of the network side; defaults suit a real deployment, tests shorten the timers."""

    #: A bundle is published when it holds this many messages or bytes, or after `bundle_delay` s.
    bundle_messages: int = 256
    bundle_bytes: int = 256 * 1024
    bundle_delay: float = 0.2
    #: Messages from local clients waiting to be gossiped; beyond it submitters wait (backpressure).
    outbound_queue: int = 20_000
    contact_interval: float = 10.0
    #: Every connected peer is diff-synced at least this often (seconds); also on connect and divergence.
    sync_interval: float = 30.0
    max_concurrent_syncs: int = 2
    #: Per-peer budget of gossiped messages we validate (messages per second, burst).
    peer_rate: float = 5_000.0
    peer_burst: float = 50_000.0
    ban_seconds: float = 600.0
    heartbeat_interval: float = 1.0
    #: Peers we dial from contact info until we have this many connections (and, whatever the total, until
    #: the outbound slots reserved by node/slots.py are ours).
    target_peers: int = 8


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to start. Ports 0 mean "any free port" (tests)."""

    data_dir: Path
    network: int = pb.FARCASTER_NETWORK_DEVNET
    rpc_host: str = DEFAULT_HOST
    rpc_port: int = DEFAULT_RPC_PORT
    #: AdminService (SubmitOnChainEvent) answers loopback clients only, unless this is set.
    admin_on_public_rpc: bool = False
    gossip_host: str = DEFAULT_HOST
    gossip_port: int = DEFAULT_GOSSIP_PORT
    bootstrap: tuple[str, ...] = ()
    genesis: Path | None = None
    #: How long events are kept for Subscribe/GetEvent replay.
    event_retention_seconds: int = 3 * 24 * 3600
    nickname: str = ""
    #: Multiaddrs to announce to peers instead of the bound listen addresses (NAT, containers).
    announce: tuple[str, ...] = ()
    #: gRPC HOST:PORT to tell peers and clients instead of the bound one (containers, NAT).
    announce_rpc: str = ""
    #: libp2p connections kept at most.
    max_peers: int = 64
    #: Bytes of blocks the blob store keeps; past it unpinned blobs are collected oldest first.
    blob_quota_bytes: int | None = None
    #: Announce and look up blob providers in the kad-dht (connected peers are always asked).
    blob_dht: bool = True
    p2p: NetworkSettings = field(default_factory=NetworkSettings)
    #: HTTP server for /metrics (Prometheus) and /healthz; None: no server (the numbers are still kept).
    #: Any free port by default so that several nodes in one process (tests, devnets) never collide.
    metrics_host: str = DEFAULT_HOST
    metrics_port: int | None = 0
    extra: dict[str, str] = field(default_factory=dict)
