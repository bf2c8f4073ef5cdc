"""Turning async handler functions on typed protobufs into grpc method handlers with our error model.

Requests are deserialised here rather than by grpc, so malformed bytes answer INVALID_ARGUMENT with
`bad_request.parse_failure` (grpc's own deserialiser failure would be an opaque INTERNAL error).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from node.rpc._status import status_of
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


def unary(
    name: str, req_type: type[Req], fn: Callable[[Req, Ctx], Awaitable[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-unary handler around `fn(request, context)`."""

    async def handler(raw: bytes, context: Ctx) -> Message | bytes:
        try:
            return await fn(parse(req_type, raw), context)
        except HubError as e:
            err = e
        except Exception as e:
            err = _internal(name, e)
        await abort(context, err)
        raise AssertionError("unreachable")  # pragma: no cover - abort raises

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )


def unary_raw(
    name: str, fn: Callable[[bytes, Ctx], Awaitable[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-unary handler that receives the request's exact wire bytes (SubmitMessage needs them)."""

    async def handler(raw: bytes, context: Ctx) -> Message | bytes:
        try:
            return await fn(raw, context)
        except HubError as e:
            err = e
        except Exception as e:
            err = _internal(name, e)
        await abort(context, err)
        raise AssertionError("unreachable")  # pragma: no cover

    return grpc.unary_unary_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )


def stream(
    name: str, req_type: type[Req], fn: Callable[[Req, Ctx], AsyncIterator[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary-stream handler around the async generator `fn(request, context)`."""

    async def handler(raw: bytes, context: Ctx) -> AsyncIterator[Message | bytes]:
        try:
            async for item in fn(parse(req_type, raw), context):
                yield item
            return
        except HubError as e:
            err = e
        except Exception as e:
            err = _internal(name, e)
        await abort(context, err)

    return grpc.unary_stream_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )


def client_stream(
    name: str, fn: Callable[[AsyncIterator[bytes], Ctx], Awaitable[Message | bytes]]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A stream-unary handler: `fn` receives the raw request messages as an async iterator (parse each)."""

    async def handler(requests: AsyncIterator[bytes], context: Ctx) -> Message | bytes:
        try:
            return await fn(requests, context)
        except HubError as e:
            err = e
        except Exception as e:
            err = _internal(name, e)
        await abort(context, err)
        raise AssertionError("unreachable")  # pragma: no cover

    return grpc.stream_unary_rpc_method_handler(
        handler, request_deserializer=None, response_serializer=_serialize
    )
