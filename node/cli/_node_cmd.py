"""`stateless node start`: run a hub node in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any, Final

import trio

from node.cli._output import CliError
from node.config import (
    DEFAULT_GOSSIP_PORT,
    DEFAULT_HOST,
    DEFAULT_METRICS_PORT,
    DEFAULT_RPC_PORT,
    NETWORKS,
    NetworkSettings,
    NodeConfig,
    parse_network,
)
from node.logs import LOG_FORMATS, log_formatter

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: `--metrics-port off`: no metrics server.
METRICS_OFF: Final = "off"


def port_arg(text: str) -> int:
    """argparse type: a TCP port, 0 meaning "any free port"."""
    if not text.isdigit() or int(text) > 65_535:
        raise argparse.ArgumentTypeError(f"port must be an integer from 0 to 65535, got {text!r}")
    return int(text)


def metrics_port_arg(text: str) -> int | str:
    """argparse type: a TCP port for the metrics server, or `off`."""
    if text.lower() in (METRICS_OFF, "none", "disable", "disabled"):
        return METRICS_OFF
    return port_arg(text)


def multiaddr_arg(text: str) -> str:
    """argparse type: a multiaddr such as /ip4/127.0.0.1/tcp/2282/p2p/<peer id>."""
    # Imported here: only `node start` needs it, and other commands should start fast.
    from multiaddr import Multiaddr

    try:
        Multiaddr(text)
    except Exception as e:  # multiaddr raises several unrelated types for malformed input
        raise argparse.ArgumentTypeError(f"not a valid multiaddr {text!r}: {e}") from None
    return text


_SIZE_UNITS: Final = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                      "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}  # fmt: skip


def size_arg(text: str) -> int:
    """argparse type: a byte size such as 500MiB, 2GB or 1048576."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 500MiB, 2GB or a number of bytes)")
    size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return size


def seconds_arg(text: str) -> float:
    """argparse type: a positive number of seconds (at most a day)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0.1 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 86400 seconds, got {text!r}")
    return value


def rpc_address_arg(text: str) -> str:
    """argparse type: HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65_535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def positive_int(text: str) -> int:
    """argparse type: an integer from 1 to 10000."""
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 10000, got {text!r}")
    return int(text)


def build_node_config(args: argparse.Namespace) -> NodeConfig:
    """The NodeConfig described by `node start`'s arguments."""
    genesis: Path | None = args.genesis
    if genesis is not None and not genesis.is_file():
        raise CliError(f"genesis file not found: {genesis}")
    metrics_port: int | None
    if args.metrics_port is None:
        # Asking for any free gRPC port means several nodes on one machine (tests, benchmarks, a devnet
        # of processes): a fixed metrics port would make all but the first fail to start.
        metrics_port = 0 if args.rpc_port == 0 else DEFAULT_METRICS_PORT
    elif args.metrics_port == METRICS_OFF:
        metrics_port = None
    else:
        metrics_port = int(args.metrics_port)
    return NodeConfig(
        data_dir=args.data_dir,
        network=parse_network(args.network),
        rpc_host=args.rpc_host,
        rpc_port=args.rpc_port,
        gossip_host=args.gossip_host,
        gossip_port=args.gossip_port,
        bootstrap=tuple(args.bootstrap),
        genesis=genesis,
        announce=tuple(args.announce),
        announce_rpc=args.announce_rpc or "",
        admin_on_public_rpc=args.admin_on_public_rpc,
        max_peers=args.max_peers,
        p2p=dataclasses.replace(NetworkSettings(), sync_interval=args.sync_interval),
        blob_quota_bytes=args.blob_quota,
        blob_dht=not args.no_dht,
        metrics_host=args.metrics_host,
        metrics_port=metrics_port,
    )


def configure_logging(level_name: str, log_format: str = "text") -> None:
    """Log to stderr at `level_name`: time, level, logger name and message, as text or JSON lines."""
    level = getattr(logging, level_name.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    # basicConfig leaves an already configured root logger (an embedding app, pytest) alone.
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger().setLevel(level)
    if not os.environ.get("LIBP2P_DEBUG"):
        # py-libp2p detaches its "libp2p" logger (no handler, no propagation) unless LIBP2P_DEBUG is set,
        # so its warnings would bypass our format. Route them through ours; its info and debug output
        # is too chatty for a node log, so it stays at WARNING (LIBP2P_DEBUG=... gives the full detail).
        libp2p_log = logging.getLogger("libp2p")
        libp2p_log.propagate = True
        libp2p_log.setLevel(max(level, logging.WARNING))


def only_keyboard_interrupts(exc: BaseException) -> bool:
    """True for KeyboardInterrupt, also when trio delivers it wrapped in (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return all(only_keyboard_interrupts(e) for e in exc.exceptions)
    return isinstance(exc, KeyboardInterrupt)


def _cmd_start(args: argparse.Namespace) -> int:
    # A parent that ignored SIGINT (`cmd &` in a script) passes that on; Ctrl-C / SIGINT must stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    configure_logging(args.log_level, args.log_format)
    config = build_node_config(args)
    try:
        # Looked up at run time so every other command works without the node's heavy imports.
        runner: Any = importlib.import_module("node.runner")
    except ModuleNotFoundError as e:
        if e.name != "node.runner":
            raise
        raise CliError("this installation has no node runner (node/runner.py is missing)") from None
    try:
        trio.run(runner.run_node, config)
    except BaseException as e:
        if not only_keyboard_interrupts(e):
            raise
    print("stopped", flush=True)
    return 0


def add_multiaddrs_arg(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    """A repeatable option taking one or more multiaddrs (checked as they are parsed)."""
    parser.add_argument(
        flag, type=multiaddr_arg, action="extend", nargs="+", default=[], metavar="MULTIADDR", help=help_text
    )


def register(subparsers: Any) -> None:
    """Add `node` and its commands to the top-level subparsers."""
    node = subparsers.add_parser("node", help="run a hub node", description="Run a hub node.")
    sub = node.add_subparsers(dest="node_command", metavar="COMMAND", required=True)

    start = sub.add_parser(
        "start",
        help="run a node in the foreground until Ctrl-C",
        description="Run a hub node in the foreground until Ctrl-C.",
    )
    start.add_argument(
        "--data-dir", type=Path, required=True, metavar="DIR", help="database and node identity"
    )
    start.add_argument(
        "--network", choices=list(NETWORKS), default="devnet", help="network to serve (default devnet)"
    )
    start.add_argument(
        "--rpc-port",
        type=port_arg,
        default=DEFAULT_RPC_PORT,
        metavar="PORT",
        help=f"gRPC port (default {DEFAULT_RPC_PORT}; 0 = any free port)",
    )
    start.add_argument(
        "--gossip-port",
        type=port_arg,
        default=DEFAULT_GOSSIP_PORT,
        metavar="PORT",
        help=f"libp2p TCP port (default {DEFAULT_GOSSIP_PORT}; 0 = any free port)",
    )
    start.add_argument(
        "--rpc-host", default=DEFAULT_HOST, metavar="HOST", help=f"gRPC bind address (default {DEFAULT_HOST})"
    )
    start.add_argument(
        "--gossip-host",
        default=DEFAULT_HOST,
        metavar="HOST",
        help=f"libp2p bind address (default {DEFAULT_HOST})",
    )
    start.add_argument(
        "--genesis", type=Path, metavar="FILE", help="genesis file with initial identity events"
    )
    add_multiaddrs_arg(
        start, "--bootstrap", "peers to connect to at start, e.g. /ip4/127.0.0.1/tcp/2282/p2p/<peer id>"
    )
    start.add_argument(
        "--announce",
        type=multiaddr_arg,
        action="extend",
        nargs="+",
        default=[],
        metavar="MULTIADDR",
        help="addresses peers should dial instead of the bound ones (NAT, containers), "
        "e.g. /dns4/hub1/tcp/2282",
    )
    start.add_argument(
        "--announce-rpc",
        type=rpc_address_arg,
        metavar="HOST:PORT",
        help="gRPC address to advertise to peers and clients instead of the bound one",
    )
    start.add_argument(
        "--admin-on-public-rpc",
        action="store_true",
        help="accept AdminService calls (identity events) from any client, not only loopback; "
        "only on a trusted network (e.g. a devnet in containers)",
    )
    start.add_argument(
        "--max-peers",
        type=positive_int,
        default=64,
        metavar="N",
        help="most libp2p connections to keep (default 64)",
    )
    start.add_argument(
        "--sync-interval",
        type=seconds_arg,
        default=NetworkSettings().sync_interval,
        metavar="SECONDS",
        help="diff-sync every connected peer at least this often, in seconds (default "
        f"{NetworkSettings().sync_interval:g})",
    )
    start.add_argument(
        "--blob-quota",
        type=size_arg,
        metavar="SIZE",
        help="most blob bytes to keep, e.g. 50GiB; past it unpinned blobs are removed oldest first "
        "(default: no limit)",
    )
    start.add_argument(
        "--no-dht", action="store_true", help="do not announce or look up blob providers in the kad-dht"
    )
    start.add_argument(
        "--metrics-port",
        type=metrics_port_arg,
        default=None,
        metavar="PORT",
        help=f"HTTP port for Prometheus /metrics and /healthz (default {DEFAULT_METRICS_PORT}, or any free "
        "port when --rpc-port is 0; 0 = any free port; off = no metrics server)",
    )
    start.add_argument(
        "--metrics-host",
        default=DEFAULT_HOST,
        metavar="HOST",
        help=f"metrics bind address (default {DEFAULT_HOST})",
    )
    start.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="log verbosity (default info)")
    start.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="log lines on stderr: text for people, json for log collectors (one object per line; "
        "default text)",
    )
    start.set_defaults(handler=_cmd_start)
