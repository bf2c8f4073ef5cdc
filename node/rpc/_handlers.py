"""Turning async handler functions on typed protobufs into grpc method handlers with our error model.

Requests are deserialised here rather than by grpc, so malformed bytes answer INVALID_ARGUMENT with
`bad_request.parse_failure` (grpc's own deserialiser failure would be an opaque INTERNAL error).
Every call is also reported once, with its final status and duration, to the server thread's
`RpcObserver` (metrics), if one is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from node.rpc._status import grpc_status, status_of
from protocols.errors import HubError

log = logging.getLogger("stateless.rpc")

Req = TypeVar("Req", bound=Message)
Ctx = grpc.aio.ServicerContext[Any, Any]


def parse(req_type: type[Req], raw: bytes) -> Req:
    """Deserialize a request or raise parse_failure."""
    try:
        return req_type.FromString(raw)
    except (DecodeError, ValueError) as e:
        raise HubError(
            "bad_request.parse_failure", f"request is not a valid {req_type.DESCRIPTOR.name}: {e}"
        ) from None


async def abort(context: Ctx, err: HubError) -> None:
    """End the call with the status, details and errcode trailer of `err` (raises)."""
    status, details, trailer = status_of(err)
    context.set_trailing_metadata(trailer)
    await context.abort(status, details)


def _internal(method: str, exc: BaseException) -> HubError:
    log.error("unexpected error in %s", method, exc_info=exc)
    return HubError("unknown", f"internal error in {method}; see the hub log")


def _serialize(m: Message | bytes) -> bytes:
    return m if isinstance(m, bytes) else m.SerializeToString()


class RpcObserver(Protocol):
    """Told of every finished call: method name, final status and how long it took (metrics)."""

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None: ...


# Each gRPC server runs its handlers on its own thread (node/rpc/_server.py), so a per-thread observer
# gives every node in a process (a devnet) its own counts without threading one through the servicers.
_thread = threading.local()


def observe_calls(observer: RpcObserver | None) -> None:
    """Report every call handled on the current thread to `observer` (the server thread sets it once)."""
    _thread.observer = observer


def _observe(method: str, code: grpc.StatusCode, started: float) -> None:
    observer: RpcObserver | None = getattr(_thread, "observer", None)
    if observer is not None:
        try:
            observer.observe(method, code, time.perf_counter() - started)
        except Exception:  # metrics must never fail a call
            log.exception("RPC observer failed")


async def _answer(name: str, call: Callable[[], Awaitable[Message | bytes]], context: Ctx) -> Message | bytes:
    """Run a call that answers once; map errors to statuses; observe the final status exactly once."""
    started = time.perf_counter()
    # What is left if something escapes below: the client went away, or the server is stopping.
    code = grpc.StatusCode.CANCELLED
    try:
        try:
            result = await call()
        except HubError as e:
            err = e
        except Exception as e:
            err = _internal(name, e)
        else:
            code = grpc.StatusCode.OK
            return result
        code = grpc_status(err.code)
        await abort(context, err)
        raise AssertionError("unreachable")  # pragma: no cover - abort raises
    finally:
        _observe(name, code, started)


def unary(
    name: str, req_type: type[Req], fn: Callable[[Req, Ctx], Awaitable[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-unary handler around `fn(request, context)`."""

    async def handler(raw: bytes, context: Ctx) -> Message | bytes:
        return await _answer(name, lambda: fn(parse(req_type, raw), context), context)

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )


def unary_raw(
    name: str, fn: Callable[[bytes, Ctx], Awaitable[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-unary handler that receives the request's exact wire bytes (SubmitMessage needs them)."""

    async def handler(raw: bytes, context: Ctx) -> Message | bytes:
        return await _answer(name, lambda: fn(raw, context), context)

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )


def stream(
    name: str, req_type: type[Req], fn: Callable[[Req, Ctx], AsyncIterator[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-stream handler around the async generator `fn(request, context)`."""

    async def handler(raw: bytes, context: Ctx) -> AsyncIterator[Message | bytes]:
        started = time.perf_counter()
        code = grpc.StatusCode.CANCELLED
        try:
            try:
                async for item in fn(parse(req_type, raw), context):
                    yield item
            except HubError as e:
                err = e
            except Exception as e:
                err = _internal(name, e)
            else:
                code = grpc.StatusCode.OK
                return
            code = grpc_status(err.code)
            await abort(context, err)
        finally:
            _observe(name, code, started)

    return grpc.unary_stream_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )


def client_stream(
    name: str, fn: Callable[[AsyncIterator[bytes], Ctx], Awaitable[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A stream-unary handler: `fn` receives the raw request messages as an async iterator (parse each)."""

    async def handler(requests: AsyncIterator[bytes], context: Ctx) -> Message | bytes:
        return await _answer(name, lambda: fn(requests, context), context)

    return grpc.stream_unary_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )
