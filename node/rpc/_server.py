"""The gRPC server: grpc.aio on a dedicated thread with its own asyncio loop, bridged into trio.

Shutdown order (DESIGN.md section 3): mark health NOT_SERVING, end Subscribe streams with UNAVAILABLE,
stop accepting and let in-flight calls finish within the grace period, and only then let the node stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import grpc
import trio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from node.engine import HubEngine
from node.rpc._blob_service import BlobBackend, BlobServicer
from node.rpc._bridge import TrioBridge
from node.rpc._handlers import RpcObserver, observe_calls
from node.rpc._hub_service import EventNotifier, HubServicer, NetworkView, NodeInfo
from protocols.errors import HubError
from protocols.proto import blobs_pb2, rpc_pb2

log = logging.getLogger("stateless.rpc")

SERVICE_NAMES: Final = tuple(
    s.full_name for module in (rpc_pb2, blobs_pb2) for s in module.DESCRIPTOR.services_by_name.values()
)
MAX_MESSAGE_BYTES: Final = 16 << 20


@dataclass(frozen=True, slots=True)
class RpcAddress:
    """Where the server listens."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class _ServerThread:
    def __init__(
        self,
        servicer: HubServicer,
        host: str,
        port: int,
        grace: float,
        extra: list[grpc.GenericRpcHandler[Any, Any]] | None = None,
        observer: RpcObserver | None = None,
    ) -> None:
        self._servicer = servicer
        self._observer = observer
        self._extra = extra or []
        self._host, self._port, self._grace = host, port, grace
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.bound_port = 0
        self._thread = threading.Thread(target=self._main, name="grpc-server", daemon=True)

    def start(self) -> int:
        """Start the thread and block until the port is bound (or binding failed)."""
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self.bound_port

    def stop(self) -> None:
        """Graceful stop; blocks until the server thread has exited."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def notify_commit(self) -> None:
        """Called from trio after each commit: wake subscribers on the server loop."""
        with contextlib.suppress(RuntimeError):  # loop already closed during shutdown
            self._loop.call_soon_threadsafe(self._servicer.notifier.notify_all)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        observe_calls(self._observer)  # handlers run on this thread's loop
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:
            if not self._started.is_set():
                self._error = e
                self._started.set()
            else:
                log.exception("gRPC server thread failed")
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers([*self._servicer.handlers(), *self._extra])
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        cause: RuntimeError | None = None
        try:
            port = server.add_insecure_port(f"{self._host}:{self._port}")
        except RuntimeError as e:
            port, cause = 0, e
        if not port:
            raise HubError(
                "unavailable",
                f"cannot listen for gRPC on {self._host}:{self._port} (port in use?): {cause or ''}",
            )
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.bound_port = port
        self._started.set()
        await self._stop.wait()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._servicer.notifier.close()
        await server.stop(self._grace)


@asynccontextmanager
async def serve_rpc(
    engine: HubEngine,
    info: Callable[[RpcAddress], NodeInfo],
    *,
    host: str,
    port: int,
    admin_from_anywhere: bool = False,
    grace: float = 5.0,
    network: NetworkView | None = None,
    blobs: BlobBackend | None = None,
    observer: RpcObserver | None = None,
) -> AsyncIterator[RpcAddress]:
    """Serve HubService, AdminService, health and reflection until the block exits; yield the address.

    `observer`, if given, is told of every HubService, AdminService and BlobService call (metrics).
    """
    async with trio.open_nursery() as nursery:
        bridge = TrioBridge(trio.lowlevel.current_trio_token(), nursery)
        address: RpcAddress | None = None

        def node_info() -> NodeInfo:
            assert address is not None
            return info(address)

        servicer = HubServicer(
            engine,
            bridge,
            EventNotifier(),
            node_info,
            admin_from_anywhere=admin_from_anywhere,
            network=network,
        )
        extra = [BlobServicer(blobs, bridge).handler()] if blobs is not None else []
        thread = _ServerThread(servicer, host, port, grace, extra, observer)
        bound = await trio.to_thread.run_sync(thread.start)
        address = RpcAddress(host, bound)
        engine.writer.on_commit(thread.notify_commit)
        log.info("gRPC listening on %s", address)
        try:
            yield address
        finally:
            with trio.CancelScope(shield=True):
                # In-flight writes still need the trio side while the server drains, so the
                # bridge nursery stays open until the server thread has stopped.
                await trio.to_thread.run_sync(thread.stop)
            nursery.cancel_scope.cancel()
