"""`stateless blob ...`: put, get, stat, pin, unpin and list content-addressed blobs (BlobService)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

import grpc

from node.cli._client_cmd import add_rpc_options, rpc_errors
from node.cli._output import CliError, format_duration, to_json
from protocols.proto import blobs_pb2 as bp
from protocols.proto import blobs_pb2_grpc

#: Bytes per Put message: large enough that per-message overhead vanishes, well under gRPC's 16 MiB cap.
PUT_PIECE: Final = 1 << 20
#: Progress redraws at most this often (seconds).
REDRAW_EVERY: Final = 0.1


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns


class Progress:
    """A one-line progress display on stderr: bytes, percent, rate and ETA.

    Redrawn in place on a terminal; elsewhere (logs, CI) only the final summary line is printed.
    """

    def __init__(self, verb: str, total: int | None, out: TextIO = sys.stderr) -> None:
        self.verb = verb
        self.total = total
        self.done = 0
        self._out = out
        self._live = out.isatty()
        self._start = time.monotonic()
        self._drawn = 0.0

    def update(self, n: int) -> None:
        """Count `n` more bytes."""
        self.done += n
        now = time.monotonic()
        if self._live and now - self._drawn >= REDRAW_EVERY:
            self._drawn = now
            self._out.write("\r" + self._line(now) + "\033[K")
            self._out.flush()

    def _line(self, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        parts = [self.verb, human_bytes(self.done)]
        if self.total:
            parts[-1] += f" / {human_bytes(self.total)}"
            parts.append(f"{100 * self.done / self.total:.0f}%")
        parts.append(f"{human_bytes(rate)}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {format_duration(int((self.total - self.done) / rate))}")
        return "  ".join(parts)

    def finish(self) -> None:
        """Print the final line."""
        now = time.monotonic()
        line = self._line(now) + f"  in {now - self._start:.1f} s"
        self._out.write(("\r" + line + "\033[K\n") if self._live else line + "\n")
        self._out.flush()


def _stub(channel: grpc.Channel) -> Any:
    return blobs_pb2_grpc.BlobServiceStub(channel)


def describe_stat(stat: bp.BlobStat) -> str:
    """Several `label: value` lines about a blob."""
    blocks = (
        f"{stat.blocks_present} of {stat.blocks_total}"
        if stat.blocks_total >= 0
        else f"{stat.blocks_present}"
    )
    rows = [
        ("cid", stat.cid),
        ("size", f"{human_bytes(stat.size)} ({stat.size} bytes)"),
        ("blocks", blocks),
        ("complete", "yes" if stat.complete else "no"),
        ("pinned", "yes" if stat.pinned else "no"),
        ("stored", human_bytes(stat.bytes_stored)),
    ]
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join(f"{label + ':':<{width}} {value}" for label, value in rows)


def _put_requests(path: Path, args: argparse.Namespace, progress: Progress) -> Iterator[bp.BlobPutRequest]:
    options = bp.BlobPutOptions(hash=args.hash, no_pin=args.no_pin, size_hint=progress.total or 0)
    yield bp.BlobPutRequest(options=options)
    with open(path, "rb") as f:
        while piece := f.read(PUT_PIECE):
            progress.update(len(piece))
            yield bp.BlobPutRequest(data=piece)


def _cmd_put(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None
    if not path.is_file():
        raise CliError(f"{path} is not a regular file")
    progress = Progress("put", size)
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        # No deadline by default: a large upload takes as long as it takes (--timeout sets one).
        stat = _stub(channel).Put(_put_requests(path, args, progress), timeout=args.put_timeout)
    progress.finish()
    print(to_json(stat, indent=2) if args.json else stat.cid)
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    request = bp.BlobGetRequest(cid=args.cid, offset=args.offset, local_only=args.local_only)
    if args.length is not None:
        request.length = args.length
    out_path: Path | None = args.output
    tmp = out_path.with_name(out_path.name + ".part") if out_path is not None else None
    progress: Progress | None = None
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        stream = _stub(channel).Get(request, timeout=args.get_timeout)
        sink = open(tmp, "wb") if tmp is not None else sys.stdout.buffer  # noqa: SIM115 - closed below
        ok = False
        try:
            for response in stream:
                if response.WhichOneof("part") == "stat":
                    end = (
                        response.stat.size
                        if args.length is None
                        else min(response.stat.size, args.offset + args.length)
                    )
                    progress = Progress("get", max(0, end - args.offset))
                else:
                    sink.write(response.data)
                    if progress is not None:
                        progress.update(len(response.data))
            ok = True
        finally:
            if tmp is not None:
                sink.close()
                if not ok:
                    tmp.unlink(missing_ok=True)  # never leave half a blob behind
    if tmp is not None and out_path is not None:
        # Only a complete, verified download takes the final name.
        os.replace(tmp, out_path)
    if progress is not None:
        progress.finish()
    return 0


def _cmd_stat(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        stat = _stub(channel).Stat(bp.BlobRef(cid=args.cid), timeout=args.timeout)
    print(to_json(stat, indent=2) if args.json else describe_stat(stat))
    return 0


def _cmd_pin(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        stub = _stub(channel)
        method = stub.Pin if args.blob_command == "pin" else stub.Unpin
        stat = method(bp.BlobRef(cid=args.cid), timeout=args.timeout)
    print(to_json(stat, indent=2) if args.json else f"{stat.cid} {'pinned' if stat.pinned else 'unpinned'}")
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    blobs: list[bp.BlobStat] = []
    after = ""
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        stub = _stub(channel)
        while len(blobs) < args.limit:
            page = stub.List(
                bp.BlobListRequest(
                    pinned_only=args.pinned, after=after, limit=min(1000, args.limit - len(blobs))
                ),
                timeout=args.timeout,
            )
            blobs.extend(page.blobs)
            if not page.next or not page.blobs:
                break
            after = page.next
    if args.json:
        print(to_json(bp.BlobListResponse(blobs=blobs), indent=2))
    elif not blobs:
        print("no blobs")
    else:
        for b in blobs:
            flags = ("pinned" if b.pinned else "-") + ("" if b.complete else " incomplete")
            print(f"{b.cid}  {human_bytes(b.size):>10}  {flags}")
    return 0


def _cmd_providers(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        found = _stub(channel).FindProviders(bp.BlobRef(cid=args.cid), timeout=args.timeout)
    print(to_json(found, indent=2) if args.json else ("\n".join(found.peer_ids) or "no providers found"))
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.rpc) as channel, rpc_errors(args.rpc):
        result = _stub(channel).CollectGarbage(bp.BlobGcRequest(), timeout=args.timeout)
    if args.json:
        print(to_json(result, indent=2))
    else:
        freed = human_bytes(result.bytes_freed)
        print(f"removed {result.blobs_removed} blobs, {result.blocks_removed} blocks, freed {freed}")
    return 0


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return int(text)


def _seconds_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def register(subparsers: Any) -> None:
    """Add `blob` and its commands to the top-level subparsers."""
    blob = subparsers.add_parser(
        "blob", help="store and fetch content-addressed blobs", description="Store and fetch blobs by CID."
    )
    sub = blob.add_subparsers(dest="blob_command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, *, cid: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        if cid:
            parser.add_argument("cid", metavar="CID", help="the blob's CID (bafy.../bafk...)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")
        add_rpc_options(parser)
        return parser

    put = command("put", "store a file; prints its CID (IPFS-compatible with the default hash)", cid=False)
    put.add_argument("file", type=Path, metavar="FILE")
    put.add_argument(
        "--hash", choices=["sha2-256", "blake3"], default="sha2-256", help="block hash (default sha2-256)"
    )
    put.add_argument("--no-pin", action="store_true", help="do not pin (garbage collection may remove it)")
    put.add_argument(
        "--put-timeout",
        type=_seconds_or_none,
        default=None,
        metavar="SECONDS",
        help="deadline for the whole upload (default none)",
    )
    put.set_defaults(handler=_cmd_put)

    get = command("get", "write a blob (fetched from peers if needed) to a file or stdout")
    get.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default stdout)")
    get.add_argument("--offset", type=_non_negative, default=0, metavar="N", help="first byte (default 0)")
    get.add_argument("--length", type=_non_negative, metavar="N", help="at most N bytes (default to the end)")
    get.add_argument("--local-only", action="store_true", help="fail instead of fetching from peers")
    get.add_argument(
        "--get-timeout",
        type=_seconds_or_none,
        default=None,
        metavar="SECONDS",
        help="deadline for the whole download (default none)",
    )
    get.set_defaults(handler=_cmd_get)

    command("stat", "show a blob's size, blocks and completeness").set_defaults(handler=_cmd_stat)
    command("pin", "keep a blob through garbage collection").set_defaults(handler=_cmd_pin)
    command("unpin", "let garbage collection remove a blob").set_defaults(handler=_cmd_pin)
    command("providers", "find peers that hold a blob").set_defaults(handler=_cmd_providers)
    ls = command("ls", "list blobs held by the hub", cid=False)
    ls.add_argument("--pinned", action="store_true", help="only pinned blobs")
    ls.add_argument("--limit", type=_non_negative, default=1000, metavar="N", help="at most N (default 1000)")
    ls.set_defaults(handler=_cmd_ls)
    command("gc", "remove unpinned blobs and unreferenced blocks now", cid=False).set_defaults(
        handler=_cmd_gc
    )
