"""A node's Prometheus metrics and the tiny HTTP server that exposes them (/metrics, /healthz).

The numbers are the counters the node keeps anyway (HubEngine, Writer, NetworkService, BlockExchange,
BlobFetcher): `NodeMetrics` reads them at scrape time, so nothing is counted twice and nothing can drift.
Only gRPC calls are counted here (`RpcMetrics`), because they finish on the gRPC server's thread.
prometheus-client writes the text exposition format (escaping, float formatting, `_total`, histogram
series); the HTTP side is ours, on trio, so it lives in the node's nursery like every other server.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import grpc
import trio
from prometheus_client import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from node.blobs import BlobStore, BlockExchange
from node.engine import HubEngine
from node.network import NetworkService
from protocols import crdt
from protocols.errors import HubError
from protocols.peers import PENALTIES

log = logging.getLogger("stateless.metrics")

#: Prometheus text exposition format 0.0.4, which every Prometheus version scrapes.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of the gRPC latency histogram buckets.
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: Bytes of a request (request line and headers) read at most; a scrape sends a few hundred.
MAX_REQUEST_BYTES: Final = 8192
#: Connections answered at once; more are closed at once (a scraper needs one).
MAX_CONNECTIONS: Final = 16
#: Seconds a connection may take to send its request and read the answer.
REQUEST_TIMEOUT: Final = 10.0
#: Seconds we wait, after answering, for the client to close its side.
LINGER_SECONDS: Final = 1.0
#: Merge origins reported even before their first message, so their series exist from the start.
ORIGINS: Final = ("local", "gossip", "sync")


class RpcMetrics:
    """gRPC calls by method and final status, and their latency; thread-safe (`observe` runs on the
    gRPC server thread, `collect` on the scraping one)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._buckets = buckets
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = {}
        # Per method: a count per bucket (not cumulative; the last one is +Inf) and the sum of seconds.
        self._latency: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """RpcObserver: one finished call."""
        key = (method, code.name)
        slot = bisect_left(self._buckets, seconds)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            latency = self._latency.get(method)
            if latency is None:
                latency = self._latency[method] = ([0] * (len(self._buckets) + 1), [0.0])
            latency[0][slot] += 1
            latency[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        """The request counter and the latency histogram."""
        with self._lock:
            calls = dict(self._calls)
            latency = {m: (list(counts), total[0]) for m, (counts, total) in self._latency.items()}
        requests = CounterMetricFamily(
            "stateless_grpc_requests",
            "gRPC calls handled, by method and final status code.",
            labels=["method", "code"],
        )
        for (method, code), n in sorted(calls.items()):
            requests.add_metric([method, code], n)
        yield requests
        histogram = HistogramMetricFamily(
            "stateless_grpc_request_duration_seconds",
            "Time from receiving a gRPC call to its final status (whole stream for streaming calls).",
            labels=["method"],
        )
        bounds = [*(_bound(b) for b in self._buckets), "+Inf"]
        for method, (counts, total) in sorted(latency.items()):
            cumulative, running = [], 0
            for bound, n in zip(bounds, counts, strict=True):
                running += n
                cumulative.append((bound, float(running)))
            histogram.add_metric([method], cumulative, total)
        yield histogram


def _bound(value: float) -> str:
    return repr(float(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counters(name: str, doc: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class NodeMetrics:
    """Every metric of one node, read from its parts at scrape time (call `render` on the trio thread)."""

    def __init__(
        self,
        *,
        engine: HubEngine,
        network: NetworkService,
        blob_store: BlobStore,
        exchange: BlockExchange,
        rpc: RpcMetrics,
        version: str,
        network_name: str,
        started_at: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.network = network
        self.blob_store = blob_store
        self.exchange = exchange
        self.rpc = rpc
        self.version = version
        self.network_name = network_name
        self.started_at = started_at
        self.clock = clock
        # registry=None: per node, never the library's process-global registry.
        self._process = ProcessCollector(registry=None)

    def render(self) -> bytes:
        """The metrics in the Prometheus text exposition format (CONTENT_TYPE)."""
        return generate_latest(self)

    def collect(self) -> Iterator[Metric]:
        """prometheus-client Collector: every metric family, freshly read."""
        yield from self._node()
        yield from self._messages()
        yield from self._peers()
        yield from self._gossip()
        yield from self._sync()
        yield from self._blobs()
        yield from self.rpc.collect()
        yield from self._process.collect()

    def _node(self) -> Iterator[Metric]:
        info = InfoMetricFamily("stateless_node", "The node's software version, network and peer id.")
        info.add_metric(
            [],
            {
                "version": self.version,
                "network": self.network_name,
                "peer_id": self.network.host.info.peer_id,
            },
        )
        yield info
        yield _gauge("stateless_start_time_seconds", "When the node started (Unix time).", self.started_at)
        yield _gauge(
            "stateless_uptime_seconds",
            "Seconds since the node started.",
            max(0.0, self.clock() - self.started_at),
        )

    def _messages(self) -> Iterator[Metric]:
        engine = self.engine
        yield _counters(
            "stateless_messages_merged",
            "Messages merged into the store, by where they came from (local = RPC clients).",
            "origin",
            {origin: 0 for origin in ORIGINS} | engine.merged_by_origin,
        )
        yield _counters(
            "stateless_messages_rejected",
            "Messages refused (validation or merge), by hub error code.",
            "code",
            engine.rejected,
        )
        with engine.read() as kv:
            messages, fids, last_event = crdt.message_count(kv), crdt.fid_count(kv), crdt.last_event_id(kv)
        yield _gauge("stateless_db_messages", "Messages stored.", messages)
        yield _gauge("stateless_db_fids", "Registered fids.", fids)
        yield _gauge("stateless_db_last_event_id", "Id of the newest hub event written.", last_event)
        yield _counter(
            "stateless_writer_batches", "Durable write transactions committed.", engine.writer.batches
        )
        yield _counter("stateless_writer_writes", "Write operations committed.", engine.writer.writes)

    def _peers(self) -> Iterator[Metric]:
        network = self.network
        now = self.clock()
        banned = sum(1 for score in network.scores.snapshot(now) if score.banned_until > now)
        yield _gauge(
            "stateless_peers_connected", "Peers with a libp2p connection.", network.connected_count()
        )
        outbound = network.slots.outbound_count()
        directions = GaugeMetricFamily(
            "stateless_peers_by_direction",
            "Connected peers by slot: outbound (bootstrap peers and contacts we chose to dial) or inbound.",
            labels=["direction"],
        )  # fmt: skip
        directions.add_metric(["outbound"], outbound)
        directions.add_metric(["inbound"], max(0, network.connected_count() - outbound))
        yield directions
        yield _counter(
            "stateless_peer_evictions",
            "Peers disconnected to keep within --max-peers (connection slots, eclipse defence).",
            network.slots.evictions,
        )
        yield _gauge("stateless_peers_banned", "Peers banned for misbehaviour now.", banned)
        yield _gauge("stateless_peers_known", "Peers whose contact info we hold.", len(network.contacts))
        yield _counter("stateless_peer_bans", "Bans imposed on peers.", network.stats.bans)
        yield _counters(
            "stateless_peer_penalties",
            "Offences charged to peers, by kind.",
            "offence",
            dict.fromkeys(PENALTIES, 0) | network.stats.penalties,
        )

    def _gossip(self) -> Iterator[Metric]:
        s = self.network.stats
        for name, doc, value in (
            ("bundles_in", "Gossip message bundles received from peers.", s.bundles_in),
            ("bundles_forwarded", "Received bundles passed on unchanged.", s.bundles_forwarded),
            ("bundles_out", "Bundles we published.", s.bundles_out),
            ("messages_in", "Messages in received bundles (before validation).", s.messages_in),
            ("messages_merged", "Messages from gossip that were new and merged.", s.messages_merged),
            ("messages_invalid", "Messages from gossip that failed validation.", s.invalid_in),
            ("messages_out", "Messages in bundles we published.", s.messages_out),
            ("duplicates", "Bundles dropped as copies of one being validated.", s.duplicates_in),
            ("rate_limited", "Bundles and contact infos dropped over a peer's rate budget.", s.rate_limited),
        ):
            yield _counter(f"stateless_gossip_{name}", doc, value)

    def _sync(self) -> Iterator[Metric]:
        network = self.network
        s = network.stats
        yield _counter("stateless_sync_sessions", "Diff-sync sessions started.", s.sync_sessions)
        yield _counter("stateless_sync_failures", "Diff-sync sessions that failed.", s.sync_failures)
        yield _counter(
            "stateless_sync_messages_fetched", "Messages fetched from peers by sync.", s.sync_fetched
        )
        yield _counter(
            "stateless_sync_messages_pushed", "Messages peers merged from our sync pushes.", s.sync_pushed
        )
        connected = network.host.connected_peers()
        states = dict.fromkeys(("in_sync", "out_of_sync", "unknown"), 0)
        for peer_id in connected:
            status = network.sync_status.peers.get(peer_id)
            in_sync = None if status is None else status.in_sync
            states["unknown" if in_sync is None else "in_sync" if in_sync else "out_of_sync"] += 1
        peers = GaugeMetricFamily(
            "stateless_sync_peers",
            "Connected peers by the outcome of the last sync with them.",
            labels=["state"],
        )
        for state, n in states.items():
            peers.add_metric([state], n)
        yield peers
        active = sum(1 for status in network.sync_status.peers.values() if status.syncing)
        yield _gauge("stateless_sync_active", "Diff-sync sessions running now.", active)
        with self.engine.read() as kv:
            ours = crdt.trie_root(kv).count
        theirs = [c.info.message_count for p in connected if (c := network.contacts.get(p)) is not None]
        yield _gauge(
            "stateless_sync_lag_messages",
            "How many more messages the fullest connected peer announces than we hold (0 if none).",
            max(0, max(theirs, default=ours) - ours),
        )

    def _blobs(self) -> Iterator[Metric]:
        usage = self.blob_store.usage()
        yield _gauge(
            "stateless_blob_bytes_stored",
            "Block bytes stored (each distinct block once).",
            usage.bytes_stored,
        )
        yield _gauge("stateless_blob_blocks", "Blocks stored.", usage.blocks)
        yield _gauge("stateless_blobs", "Blobs stored (complete or not).", usage.blobs)
        yield _gauge("stateless_blobs_pinned", "Pinned blobs.", usage.pinned_blobs)
        yield _gauge("stateless_blob_pinned_bytes", "Bytes of pinned blobs.", usage.pinned_bytes)
        yield _gauge("stateless_blob_file_bytes", "Used size of the blob database file.", usage.file_bytes)
        if usage.quota_bytes is not None:
            yield _gauge(
                "stateless_blob_quota_bytes", "Most block bytes kept (--blob-quota).", usage.quota_bytes
            )
        exchange = self.exchange
        yield _counter("stateless_blob_blocks_served", "Blocks sent to peers.", exchange.served_blocks)
        yield _counter("stateless_blob_bytes_served", "Block bytes sent to peers.", exchange.served_bytes)
        yield _counter(
            "stateless_blob_bytes_fetched",
            "Verified block bytes fetched from peers.",
            exchange.fetcher.bytes_fetched,
        )


# ----------------------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class MetricsAddress:
    """Where the metrics server listens."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """http://HOST:PORT/metrics"""
        return f"http://{self}/metrics"


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _response(
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    head: bool = False,
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (b"" if head else body)


class MetricsServer:
    """Bound HTTP listeners for /metrics and /healthz; `serve` answers until cancelled.

    One request per connection (`Connection: close`), at most MAX_CONNECTIONS at once, each bounded in
    size and time, so a misbehaving client can hold neither memory nor the node.
    """

    def __init__(self, listeners: list[trio.SocketListener], address: MetricsAddress) -> None:
        self.listeners = listeners
        self.address = address
        self._slots = trio.Semaphore(MAX_CONNECTIONS)
        self._render: Callable[[], bytes] | None = None

    async def serve(
        self, render: Callable[[], bytes], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Answer requests with `render()` as the /metrics body until cancelled (closes the listeners)."""
        self._render = render
        log.info("metrics on %s", self.address.url)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, self.listeners)
            task_status.started()

    def close(self) -> None:
        """Close the listeners (idempotent; synchronous, so a cancelled shutdown cannot skip it)."""
        for listener in self.listeners:
            listener.socket.close()

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            return  # serve_listeners closes the connection
        try:
            with trio.move_on_after(REQUEST_TIMEOUT):
                request = await _read_request(stream)
                if request is not None:
                    await stream.send_all(self._answer(request))
                    await stream.send_eof()
                    # Closing with unread input (a body, an oversized head) would reset the connection
                    # and could destroy the answer before the client reads it: let the client close first.
                    with trio.move_on_after(LINGER_SECONDS):
                        drained = 0
                        while drained < MAX_REQUEST_BYTES * 8 and (data := await stream.receive_some()):
                            drained += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        finally:
            self._slots.release()

    def _answer(self, request: bytes) -> bytes:
        if len(request) >= MAX_REQUEST_BYTES and b"\n\n" not in request.replace(b"\r\n", b"\n"):
            return _response(431, b"request too large\n")
        try:
            method, target, version = request.split(b"\n", 1)[0].rstrip(b"\r").decode("ascii").split(" ")
        except (UnicodeDecodeError, ValueError):
            return _response(400, b"bad request\n")
        if not version.startswith("HTTP/1.") or not target.startswith("/"):
            return _response(400, b"bad request\n")
        if method not in ("GET", "HEAD"):
            return _response(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        head = method == "HEAD"
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return _response(200, b"ok\n", head=head)
        if path != "/metrics":
            return _response(404, b"not found; try /metrics\n", head=head)
        assert self._render is not None
        try:
            body = self._render()
        except Exception:  # a bug in one metric must not take the endpoint (or the node) down
            log.exception("rendering metrics failed")
            return _response(500, b"rendering metrics failed; see the node log\n", head=head)
        return _response(200, body, content_type=CONTENT_TYPE, head=head)


async def _read_request(stream: trio.SocketStream) -> bytes | None:
    """The request head (up to MAX_REQUEST_BYTES); None if the client sent nothing."""
    buf = bytearray()
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf and len(buf) < MAX_REQUEST_BYTES:
        data = await stream.receive_some(MAX_REQUEST_BYTES - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf) if buf else None


async def bind_metrics(host: str, port: int) -> MetricsServer:
    """Listen on host:port (0: any free port) for the metrics server; HubError if that is impossible."""
    where = f"{host}:{port}"
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except socket.gaierror as e:
        raise HubError("bad_request.invalid_param", f"metrics host {host!r} does not resolve: {e}") from None
    except OverflowError:
        raise HubError("bad_request.invalid_param", f"metrics port {port} is not a valid port") from None
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise HubError("unavailable", f"cannot listen for metrics on {where}: port in use") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise HubError(
                "bad_request.invalid_param", f"metrics host {host} is not an address of this machine"
            ) from None
        raise HubError("unavailable", f"cannot listen for metrics on {where}: {e}") from None
    bound = listeners[0].socket.getsockname()
    return MetricsServer(listeners, MetricsAddress(host, int(bound[1])))


@asynccontextmanager
async def open_metrics_server(host: str, port: int) -> AsyncIterator[MetricsServer]:
    """`bind_metrics`, closing the listeners when the block exits (served or not)."""
    server = await bind_metrics(host, port)
    try:
        yield server
    finally:
        server.close()


__all__ = [
    "CONTENT_TYPE",
    "MetricsAddress",
    "MetricsServer",
    "NodeMetrics",
    "RpcMetrics",
    "bind_metrics",
    "open_metrics_server",
]
