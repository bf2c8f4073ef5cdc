"""Container healthcheck: ask a hub's gRPC health service (grpc.health.v1.Health/Check) whether it serves.

    python -m devnet.healthcheck HOST:PORT [--service NAME] [--timeout SECONDS]

Prints the status and exits 0 when it is SERVING, 1 otherwise (NOT_SERVING while the node shuts down,
nothing listening, a timeout, a bad argument): the exit codes Docker's HEALTHCHECK expects, so the image
needs no grpcurl or grpc_health_probe.

Docker runs it every few seconds in every container, so it imports only grpcio and the health stubs,
never the node or libp2p (a probe costs about 0.1 s of CPU instead of over a second).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_TIMEOUT: Final = 3.0
EXIT_HEALTHY: Final = 0
EXIT_UNHEALTHY: Final = 1


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse exits with 2 on a usage error, which Docker reserves; report it as unhealthy (1) instead.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65_535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"timeout must be a positive number of seconds, got {text!r}")
    return value


def check_health(address: str, *, service: str = "", timeout: float = DEFAULT_TIMEOUT) -> str:
    """The serving status name (`SERVING`, `NOT_SERVING`, ...) the health service at `address` reports.

    `service` "" asks about the server as a whole. Raises grpc.RpcError when the server cannot be reached
    within `timeout` seconds or does not know `service` (NOT_FOUND).
    """
    # A container's HTTP(S)_PROXY must not capture a probe of the node's own loopback port.
    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """Run the healthcheck with `argv` (default: the command line); return the exit code."""
    parser = _Parser(
        prog="python -m devnet.healthcheck",
        description="Exit 0 when the hub's gRPC health service reports SERVING, 1 otherwise.",
    )
    parser.add_argument("address", type=_address, metavar="HOST:PORT", help="the hub's gRPC address")
    parser.add_argument("--service", default="", help='service name to ask about (default "": the server)')
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up after this long (default {DEFAULT_TIMEOUT:g})",
    )
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        print(e, file=sys.stderr)
        return EXIT_UNHEALTHY
    try:
        status = check_health(args.address, service=args.service, timeout=args.timeout)
    except grpc.RpcError as e:
        code = e.code() if isinstance(e, grpc.Call) else None
        details = e.details() if isinstance(e, grpc.Call) else str(e)
        print(f"unhealthy: {code.name if code else 'error'}: {details}", file=sys.stderr)
        return EXIT_UNHEALTHY
    print(status)
    return EXIT_HEALTHY if status == "SERVING" else EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
