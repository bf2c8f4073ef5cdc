"""The `stateless` command: argument parsing, dispatch, and the one place errors become exit codes.

Exit codes: 0 success, 1 runtime or RPC error, 2 usage error, 130 interrupted. Every error is one
`error: ...` line on stderr; tracebacks only with `--traceback`, for unexpected errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import grpc

from node.cli import _admin_cmd, _blob_cmd, _client_cmd, _devnet_cmd, _keys_cmd, _node_cmd
from node.cli._output import CliError, UsageError, format_rpc_error
from protocols.errors import HubError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions (one line, handled by `main`) instead of exits."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The full `stateless` argument parser; each command sets `handler(args) -> int`."""
    parser = _Parser(
        prog="stateless",
        description="Stateless Hub: run a hub node, manage signer keys, and talk to a hub over gRPC.",
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show a full traceback for unexpected errors (for bug reports)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _node_cmd.register(sub)
    _keys_cmd.register(sub)
    _admin_cmd.register(sub)
    _client_cmd.register(sub)
    _blob_cmd.register(sub)
    _devnet_cmd.register(sub)
    return parser


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _describe(exc: BaseException) -> tuple[int, str] | None:
    """Exit code and message for an expected error; None for a bug."""
    if isinstance(exc, CliError):
        return exc.exit_code, exc.message
    if isinstance(exc, HubError):
        return EXIT_ERROR, exc.message
    if isinstance(exc, grpc.RpcError):
        return EXIT_ERROR, format_rpc_error(exc, "the given address")
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return EXIT_ERROR, f"{exc.filename}: {reason}" if exc.filename else reason
    if isinstance(exc, ValueError):
        return EXIT_ERROR, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    return None


def _report(exc: BaseException, *, show_traceback: bool) -> int:
    """Print one error line for `exc` (flattening exception groups) and return the exit code."""
    described = []
    for leaf in _leaves(exc):
        item = _describe(leaf)
        if item is None:
            if show_traceback:
                traceback.print_exception(leaf)
            item = (
                EXIT_ERROR,
                f"unexpected error: {type(leaf).__name__}: {leaf} (rerun with --traceback for details)",
            )
        described.append(item)
    code = max(c for c, _ in described)
    print(f"error: {'; '.join(dict.fromkeys(m for _, m in described))}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    # After the reader of a pipe went away (`stateless client subscribe | head`), point stdout at
    # /dev/null so that flushing at interpreter exit does not raise a second BrokenPipeError.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `stateless` command line with `argv` (default `sys.argv[1:]`) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help and --version exit through argparse
        return e.code if isinstance(e.code, int) else EXIT_OK if e.code is None else EXIT_USAGE
    try:
        return int(args.handler(args))
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    except BaseException as e:  # every failure ends as one line and an exit code, never a traceback
        return _report(e, show_traceback=args.traceback)
