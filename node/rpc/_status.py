"""The one place where hub error codes become gRPC status codes."""

from __future__ import annotations

import grpc

from protocols.errors import HubError

#: Trailing-metadata key carrying the dotted hub error code, as Farcaster hubs send it.
ERRCODE_KEY = "errcode"


def grpc_status(code: str) -> grpc.StatusCode:
    """Map a dotted hub error code to the gRPC status a client sees."""
    if code == "unavailable.overloaded":
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    head = code.split(".", 1)[0]
    return {
        "bad_request": grpc.StatusCode.INVALID_ARGUMENT,
        "not_found": grpc.StatusCode.NOT_FOUND,
        "unauthorized": grpc.StatusCode.PERMISSION_DENIED,
        "unavailable": grpc.StatusCode.UNAVAILABLE,
    }.get(head, grpc.StatusCode.UNKNOWN)


def status_of(err: HubError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """(status code, details, trailing metadata) for an error."""
    return grpc_status(err.code), f"{err.code}: {err.message}", ((ERRCODE_KEY, err.code),)
