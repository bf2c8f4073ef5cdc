"""The composition root: storage -> writer -> engine -> libp2p host -> gRPC, and shutdown in reverse.

`run_node` is what `stateless node start` runs; tests and the devnet library use `open_node`, which
yields a handle once everything listens.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Final, TextIO

import trio

from node.blobs import BlobInfo, BlobStore, BlockExchange, open_block_exchange
from node.config import NodeConfig, network_name
from node.engine import HubEngine
from node.genesis import load_genesis
from node.metrics import MetricsAddress, MetricsServer, NodeMetrics, RpcMetrics, open_metrics_server
from node.network import NetworkService, open_network
from node.rpc import NodeInfo, RpcAddress, serve_rpc
from node.slots import connection_limit
from node.storage import LmdbStore, TxnKV, Writer
from p2p import HubHost, load_or_create_peer_key, open_host
from protocols import crdt
from protocols.blobs import Cid
from protocols.errors import HubError

log = logging.getLogger("stateless.node")

MAINTENANCE_INTERVAL: Final = 60.0


def hub_version() -> str:
    """The installed package version."""
    try:
        return version("stateless-hub")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+src"


@dataclass(frozen=True, slots=True)
class BlobNode:
    """The node's blob side as the gRPC layer sees it: the store plus the block exchange."""

    store: BlobStore
    exchange: BlockExchange

    async def fetch(self, root: Cid) -> BlobInfo:
        """Fetch a blob from peers, verified, into the store."""
        return await self.exchange.fetch(root)

    async def announce(self, root: Cid) -> None:
        """Announce a stored blob to the DHT (queued; returns at once)."""
        self.exchange.announce(root)

    async def find_providers(self, root: Cid) -> list[str]:
        """Peers that say they hold `root` (connected peers asked directly, plus the DHT)."""
        return await self.exchange.finder.find(root)


@dataclass(frozen=True, slots=True)
class NodeHandle:
    """A running node as tests and the devnet see it."""

    engine: HubEngine
    host: HubHost
    rpc: RpcAddress
    config: NodeConfig
    network: NetworkService
    blobs: BlobNode
    #: The node's metrics (also rendered in-process: `handle.metrics.render()`).
    metrics: NodeMetrics
    #: Where /metrics is served over HTTP; None when `config.metrics_port` is None.
    metrics_address: MetricsAddress | None = None

    @property
    def peer_id(self) -> str:
        return self.host.info.peer_id

    @property
    def rpc_target(self) -> str:
        """HOST:PORT for a gRPC channel."""
        return str(self.rpc)


class _DataDirLock:
    """An exclusive lock so two nodes never share one data dir (LMDB itself would allow it)."""

    def __init__(self, config: NodeConfig) -> None:
        self._path = config.data_dir / "LOCK"
        self._fd = -1

    def __enter__(self) -> _DataDirLock:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise HubError("unavailable", f"data dir {self._path.parent} is in use by another node") from None
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


async def _maintenance(engine: HubEngine, config: NodeConfig) -> None:
    while True:
        try:
            pruned = await engine.prune_events(config.event_retention_seconds)
            if pruned:
                log.info("event retention: deleted %d old events", pruned)
        except HubError as e:
            log.warning("event retention failed: %s", e)
        await trio.sleep(MAINTENANCE_INTERVAL)


async def _apply_genesis(engine: HubEngine, config: NodeConfig) -> None:
    if config.genesis is None:
        return
    events = load_genesis(config.genesis, network_name=network_name(config.network))
    applied = 0
    for event in events:
        try:
            await engine.submit_onchain_event(event)
            applied += 1
        except HubError as e:
            if e.code != "bad_request.duplicate":
                raise HubError(e.code, f"genesis file {config.genesis}: {e.message}") from None
    log.info(
        "genesis %s: %d events applied, %d already present", config.genesis, applied, len(events) - applied
    )


def _ensure_sync_trie(kv: TxnKV) -> int:
    return crdt.ensure_sync_trie(kv)


def _flush_sync_trie(kv: TxnKV) -> None:
    # Every write batch ends by rehashing the trie buckets it touched, in the same transaction.
    crdt.flush_trie(kv)


@asynccontextmanager
async def _metrics_server(config: NodeConfig) -> AsyncIterator[MetricsServer | None]:
    if config.metrics_port is None:
        yield None
        return
    async with open_metrics_server(config.metrics_host, config.metrics_port) as server:
        yield server


@asynccontextmanager
async def open_node(
    config: NodeConfig, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[NodeHandle]:
    """Start a node and yield its handle; on exit stop inbound traffic first and the database last."""
    started_at = clock()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    rpc_metrics = RpcMetrics()
    with _DataDirLock(config):
        store = LmdbStore(config.data_dir / "hub.lmdb")
        blob_store: BlobStore | None = None
        listeners = AsyncExitStack()
        try:
            # Bound before the node starts, so a port in use fails fast with a plain HubError.
            metrics_server = await listeners.enter_async_context(_metrics_server(config))
            blob_store = BlobStore(config.data_dir / "blobs.lmdb", quota_bytes=config.blob_quota_bytes)
            key_pair = load_or_create_peer_key(config.data_dir / "peer.key")
            async with trio.open_nursery() as core:
                indexed = await trio.to_thread.run_sync(partial(store.write_batch, [_ensure_sync_trie]))
                if isinstance(indexed[0], BaseException):
                    raise indexed[0]
                if indexed[0]:
                    log.info("sync trie built for %d existing messages", indexed[0])
                writer = Writer(store, finalize=_flush_sync_trie)
                await core.start(writer.run)
                engine = HubEngine(store, writer, network=config.network, clock=clock)
                await core.start(engine.run)
                try:
                    await _apply_genesis(engine, config)
                    rpc_address = ""
                    async with (
                        open_host(
                            key_pair,
                            listen_host=config.gossip_host,
                            listen_port=config.gossip_port,
                            bootstrap=config.bootstrap,
                            announce=config.announce,
                            max_connections=connection_limit(config.max_peers),
                        ) as host,
                        open_network(
                            engine,
                            host,
                            network_name=network_name(config.network),
                            settings=config.p2p,
                            rpc_address=lambda: rpc_address,
                            version=hub_version(),
                            clock=clock,
                            bootstrap=config.bootstrap,
                            max_peers=config.max_peers,
                        ) as network,
                        open_block_exchange(
                            host,
                            blob_store,
                            penalise=network.penalise,
                            allow=lambda peer_id: not network.is_banned(peer_id),
                            dht=config.blob_dht,
                            clock=clock,
                        ) as exchange,
                    ):
                        blobs = BlobNode(blob_store, exchange)
                        metrics = NodeMetrics(
                            engine=engine,
                            network=network,
                            blob_store=blob_store,
                            exchange=exchange,
                            rpc=rpc_metrics,
                            version=hub_version(),
                            network_name=network_name(config.network),
                            started_at=started_at,
                            clock=clock,
                        )

                        def info(address: RpcAddress) -> NodeInfo:
                            return NodeInfo(
                                version=hub_version(),
                                peer_id=host.info.peer_id,
                                listen_addrs=host.info.listen_addrs,
                                rpc_address=config.announce_rpc or str(address),
                                nickname=config.nickname,
                                started_at=started_at,
                            )

                        async with (
                            serve_rpc(
                                engine,
                                info,
                                host=config.rpc_host,
                                port=config.rpc_port,
                                admin_from_anywhere=config.admin_on_public_rpc,
                                network=network,
                                blobs=blobs,
                                observer=rpc_metrics,
                            ) as rpc,
                            trio.open_nursery() as background,
                        ):
                            rpc_address = config.announce_rpc or str(rpc)
                            network.announce_soon()  # now with the gRPC address in it
                            background.start_soon(_maintenance, engine, config)
                            if metrics_server is not None:
                                await background.start(metrics_server.serve, metrics.render)
                            try:
                                yield NodeHandle(
                                    engine=engine,
                                    host=host,
                                    rpc=rpc,
                                    config=config,
                                    network=network,
                                    blobs=blobs,
                                    metrics=metrics,
                                    metrics_address=metrics_server.address if metrics_server else None,
                                )
                            finally:
                                background.cancel_scope.cancel()
                finally:
                    # The writer drains its current batch (never abandoned mid-commit), then stops.
                    core.cancel_scope.cancel()
        finally:
            if blob_store is not None:
                blob_store.close()
            store.close()
            await listeners.aclose()


def print_banner(handle: NodeHandle, out: TextIO) -> None:
    """What a user needs to talk to the node, printed once it listens."""
    cfg = handle.config
    print(f"stateless hub {hub_version()} serving {network_name(cfg.network)}", file=out)
    print(f"  peer id    {handle.peer_id}", file=out)
    for addr in handle.host.info.listen_addrs:
        print(f"  libp2p     {addr}", file=out)
    print(f"  gRPC       {handle.rpc}", file=out)
    if handle.metrics_address is not None:
        print(f"  metrics    {handle.metrics_address.url}", file=out)
    print(f"  data dir   {cfg.data_dir}", file=out)
    print("ready (Ctrl-C to stop)", file=out, flush=True)


async def run_node(
    config: NodeConfig, *, task_status: trio.TaskStatus[NodeHandle] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a node until cancelled (Ctrl-C), printing where it listens."""
    import sys

    async with open_node(config) as handle:
        print_banner(handle, sys.stdout)
        task_status.started(handle)
        await trio.sleep_forever()
