"""The block-exchange request/response protocol on libp2p streams: blocks by CID, verified on arrival.

A client keeps a few long-lived streams per provider and may pipeline requests on each: the server
answers every `BlockRequest` frame with one `BlockResponse` frame, in order. What the server holds comes
from a `BlockSource` (the node's blob store). Nothing here trusts the peer: frame sizes are capped before
anything is buffered, a client accepts only blocks it asked for, each checked against its CID before it
is returned, and a server never sends a block that does not match its CID (so an honest server with a
damaged disk answers "don't have" instead of being punished as a liar).

Cancellation: py-libp2p 0.8.1 encrypts a Noise message and then awaits the socket write, and a stream
read may write a yamux window update after taking data. A cancellation delivered at such a point has
used up a Noise nonce without sending the message, after which the peer can decrypt nothing: the whole
connection (gossip and sync included) dies. So a client's reads and writes and a server's writes run
shielded from outside cancellation, bounded by their own timeouts, and a client that must stop early
resets its stream (`abort`), which wakes a pending read without anything being written in its path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Final, Protocol, TypeVar

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2p._framing import FrameError, FrameReader, encode_frame
from p2p._host import HubHost
from protocols.blobs import MAX_BLOCK_BYTES, Cid, verify_block
from protocols.errors import HubError
from protocols.proto import p2p_pb2

log = logging.getLogger("stateless.blocks")

T = TypeVar("T")

BLOCKS_PROTOCOL_ID: Final = TProtocol("/stateless-hub/blocks/1.0.0")
#: Blocks one request may want: with blocks of at most MAX_BLOCK_BYTES an answer stays under 4 MiB.
MAX_WANT_PER_REQUEST: Final = 4
#: CIDs one request may ask about with `have`.
MAX_HAVE_PER_REQUEST: Final = 256
#: Largest answer a client reads: MAX_WANT_PER_REQUEST blocks of MAX_BLOCK_BYTES, CIDs and tags (4.5 MiB).
MAX_BLOCK_FRAME: Final = 4 * MAX_BLOCK_BYTES + 512 * 1024
#: Largest request a server reads (MAX_HAVE_PER_REQUEST + MAX_WANT_PER_REQUEST CIDs need ~11 KiB).
MAX_BLOCK_REQUEST_FRAME: Final = 64 * 1024
#: A peer gets this long to answer one request (a full answer is 4 MiB: slow links need the time).
REQUEST_TIMEOUT: Final = 15.0
#: A server stream with no request for this long is closed.
IDLE_TIMEOUT: Final = 60.0
#: Longest opening a stream (and negotiating the protocol on it) may take.
STREAM_OPEN_TIMEOUT: Final = 5.0
#: Block streams one peer may have open to us at once.
MAX_STREAMS_PER_PEER: Final = 4
#: Answers all peers together may be building or sending at once on a server (each holds up to 4 MiB
#: of blocks); a peer that stops reading holds its slot for at most REQUEST_TIMEOUT.
DEFAULT_MAX_CONCURRENT_ANSWERS: Final = 16


class BlockSource(Protocol):
    """What a block server answers from, and whom it reports misbehaving to (the node implements it)."""

    def allow(self, peer_id: str) -> bool:
        """False for peers we refuse to serve (banned)."""
        ...

    def get_block(self, cid: Cid) -> bytes | None:
        """The block's bytes, or None if we do not hold it."""
        ...

    def has_block(self, cid: Cid) -> bool:
        """Whether we hold the block."""
        ...

    def penalise(self, peer_id: str, offence: str) -> None:
        """Record provable misbehaviour of a peer (see protocols.peers.PENALTIES)."""
        ...


def _parse_cid(raw: bytes) -> Cid | None:
    try:
        return Cid.from_bytes(raw)
    except HubError:
        return None


def answer_block_request(source: BlockSource, request: p2p_pb2.BlockRequest) -> p2p_pb2.BlockResponse:
    """The answer to one (size-checked) request.

    CIDs we cannot parse (a codec or hash a newer peer supports, say) are answered "don't have", not
    punished. A stored block that no longer hashes to its CID is never sent: it is logged and reported
    as missing, so the asker tries another provider.
    """
    response = p2p_pb2.BlockResponse()
    seen: set[bytes] = set()
    for raw in request.want:
        raw = bytes(raw)
        if raw in seen:
            continue
        seen.add(raw)
        cid = _parse_cid(raw)
        data = source.get_block(cid) if cid is not None else None
        if cid is not None and data is not None and not verify_block(cid, data):
            log.error("stored block %s does not match its CID; not serving it", cid)
            data = None
        if data is None:
            response.dont_have.append(raw)
        else:
            response.blocks.append(p2p_pb2.BlockEntry(cid=raw, data=data))
    asked: set[bytes] = set()
    for raw in request.have:
        raw = bytes(raw)
        if raw in asked:
            continue
        asked.add(raw)
        cid = _parse_cid(raw)
        if cid is not None and source.has_block(cid):
            response.have.append(raw)
    return response


async def serve_block_stream(
    stream: INetStream,
    source: BlockSource,
    active: dict[str, int],
    *,
    limiter: trio.CapacityLimiter | None = None,
) -> None:
    """Answer one peer's block stream until it closes, goes idle, or misbehaves.

    `active` counts open streams per peer (shared by every stream of a server) to enforce
    MAX_STREAMS_PER_PEER; `limiter`, if given, bounds the answers being built across all peers.
    """
    peer_id = str(stream.muxed_conn.peer_id)
    if not source.allow(peer_id) or active.get(peer_id, 0) >= MAX_STREAMS_PER_PEER:
        await _reset(stream)
        return
    active[peer_id] = active.get(peer_id, 0) + 1
    reader = FrameReader(stream, max_size=MAX_BLOCK_REQUEST_FRAME)
    try:
        while True:
            # Not shielded, unlike everything else here: this read waits for small requests, so it
            # almost never owes a window update, and shutdown must be able to end it.
            frame: bytes | None = None
            with trio.move_on_after(IDLE_TIMEOUT):
                frame = await reader.read()
                if frame is None:
                    return  # closed by the peer
            if frame is None:
                return  # idle
            try:
                request = p2p_pb2.BlockRequest.FromString(frame)
            except DecodeError:
                source.penalise(peer_id, "malformed_frame")
                return
            if len(request.want) > MAX_WANT_PER_REQUEST or len(request.have) > MAX_HAVE_PER_REQUEST:
                source.penalise(peer_id, "oversized_frame")
                return
            try:
                if limiter is None:
                    payload = answer_block_request(source, request).SerializeToString()
                    await _shielded(stream.write(encode_frame(payload)), REQUEST_TIMEOUT)
                else:
                    async with limiter:
                        payload = answer_block_request(source, request).SerializeToString()
                        await _shielded(stream.write(encode_frame(payload)), REQUEST_TIMEOUT)
            except trio.TooSlowError:
                return  # the asker stopped reading (it gives up after REQUEST_TIMEOUT anyway)
    except FrameError as e:
        source.penalise(peer_id, "oversized_frame" if e.oversized else "malformed_frame")
    except Exception as e:  # a peer vanishing mid-stream surfaces as many py-libp2p error types
        log.debug("block stream from %s ended: %s", peer_id, e)
    finally:
        active[peer_id] -= 1
        if not active[peer_id]:
            del active[peer_id]
        await _close(stream)


async def _shielded(operation: Awaitable[T], seconds: float) -> T:
    """Await a stream operation that outside cancellation cannot interrupt (see the module docstring);
    trio.TooSlowError if it takes longer than `seconds`."""
    with trio.CancelScope(shield=True), trio.fail_after(seconds):
        result = await operation
    return result


def _yamux_parts(stream: Any) -> tuple[Any, Any]:
    muxed = getattr(stream, "muxed_stream", None)
    return getattr(muxed, "conn", None), getattr(muxed, "stream_id", None)


def _read_event(stream: Any) -> trio.Event | None:
    """The event a read pending on this yamux stream waits for (None for other muxers)."""
    conn, stream_id = _yamux_parts(stream)
    events = getattr(conn, "stream_events", None)
    event = events.get(stream_id) if isinstance(events, dict) else None
    return event if isinstance(event, trio.Event) else None


def _forget_read_event(stream: Any) -> None:
    """Drop the event a woken read re-registers for a stream yamux has already forgotten."""
    conn, stream_id = _yamux_parts(stream)
    events, streams = getattr(conn, "stream_events", None), getattr(conn, "streams", None)
    if isinstance(events, dict) and isinstance(streams, dict) and stream_id not in streams:
        events.pop(stream_id, None)


async def _reset(stream: Any) -> None:
    with trio.move_on_after(2, shield=True):
        try:
            await stream.reset()
        except Exception as e:
            log.debug("resetting block stream: %s", e)


async def _close(stream: Any) -> None:
    with trio.move_on_after(2, shield=True):
        try:
            await stream.close()
        except Exception as e:
            log.debug("closing block stream: %s", e)


class BlockPeerError(HubError):
    """A block provider failed us: unreachable, timed out, broke framing, or answered wrongly."""

    def __init__(
        self, message: str, *, offence: str | None = None, timed_out: bool = False, stale: bool = False
    ) -> None:
        super().__init__("unavailable", message)
        #: Set when the failure is provable misbehaviour (see protocols.peers.PENALTIES), not just absence.
        self.offence = offence
        #: The peer did not answer in time (it may be slow, overloaded, or withholding).
        self.timed_out = timed_out
        #: The request was not answered because an earlier one on the same stream failed (already reported).
        self.stale = stale


class BlockClient:
    """One block stream to a provider. Concurrent calls are pipelined: sent at once, answered in order.

    Calls are shielded from outside cancellation (see the module docstring): each ends with its answer,
    its timeout, or `abort`. After any failure (timeout, broken stream, a bad answer, abort) the stream
    is out of step with its answers, so every later call fails too: open a new client.
    """

    def __init__(self, stream: INetStream, peer_id: str, *, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self._stream = stream
        self._reader = FrameReader(stream, max_size=MAX_BLOCK_FRAME)
        self.peer_id = peer_id
        self.timeout = request_timeout
        self._send_lock = trio.Lock()
        self._next_ticket = 0
        self._turn = 0
        self._turn_changed = trio.Event()
        self._broken: str | None = None

    @classmethod
    async def open(
        cls, host: HubHost, peer_id: str, *, request_timeout: float = REQUEST_TIMEOUT
    ) -> BlockClient:
        """Open a block stream to a connected peer (BlockPeerError if it cannot be opened in time).

        `request_timeout` bounds each request on the stream (and, with STREAM_OPEN_TIMEOUT, opening it).
        """
        try:
            new_stream = host.libp2p_host.new_stream(ID.from_base58(peer_id), [BLOCKS_PROTOCOL_ID])
            stream = await _shielded(new_stream, min(request_timeout, STREAM_OPEN_TIMEOUT))
        except trio.TooSlowError:
            raise BlockPeerError(
                f"peer {peer_id} did not open a block stream in time", timed_out=True
            ) from None
        except Exception as e:
            raise BlockPeerError(f"cannot open a block stream to {peer_id}: {e}") from e
        return cls(stream, peer_id, request_timeout=request_timeout)

    @property
    def broken(self) -> bool:
        """Whether the stream is unusable (a request on it failed)."""
        return self._broken is not None

    @property
    def busy(self) -> bool:
        """Whether requests are pending on the stream."""
        return self._next_ticket != self._turn

    async def close(self) -> None:
        """End the stream: politely if it is idle and in step, by a reset if requests are pending on it."""
        unclean = self.broken or self.busy
        self._break("closed")
        if unclean:
            await _reset(self._stream)
        else:
            await _close(self._stream)

    async def abort(self) -> None:
        """Reset the stream now: pending requests fail at once (the way to stop a client early)."""
        self._break("aborted")
        # py-libp2p 0.8.1's yamux does not wake a read pending on a stream it resets; we do, once the
        # reset is sent, so the shielded request ends without waiting for its timeout.
        wake = _read_event(self._stream)
        await _reset(self._stream)
        if wake is not None:
            wake.set()

    def _break(self, why: str) -> None:
        if self._broken is None:
            self._broken = why
        self._turn_changed.set()

    def _check(self) -> None:
        if self._broken is not None:
            raise BlockPeerError(f"block stream to {self.peer_id} is unusable: {self._broken}", stale=True)

    async def request(self, request: p2p_pb2.BlockRequest) -> p2p_pb2.BlockResponse:
        """Send one request and return its (parsed, not yet checked) answer; BlockPeerError on failure.

        Runs shielded from outside cancellation (see the module docstring): it ends with the answer, the
        client's timeout, or `abort`.
        """
        self._check()
        frame = encode_frame(request.SerializeToString())
        try:
            with trio.CancelScope(shield=True), trio.fail_after(self.timeout):
                async with self._send_lock:
                    self._check()
                    ticket = self._next_ticket
                    self._next_ticket += 1
                    await self._stream.write(frame)
                while self._turn != ticket:
                    self._check()
                    await self._turn_changed.wait()
                self._check()
                answer = await self._reader.read()
                self._turn += 1
                changed, self._turn_changed = self._turn_changed, trio.Event()
                changed.set()
        except BlockPeerError:
            raise
        except trio.TooSlowError:
            self._break("a request timed out")
            raise BlockPeerError(
                f"peer {self.peer_id} did not answer within {self.timeout:g} s", timed_out=True
            ) from None
        except FrameError as e:
            self._break("bad framing")
            offence = "oversized_frame" if e.oversized else "malformed_frame"
            raise BlockPeerError(f"peer {self.peer_id}: {e.message}", offence=offence) from None
        except Exception as e:
            self._break(f"a request failed: {type(e).__name__}")
            if self._broken == "aborted":
                _forget_read_event(self._stream)
                raise BlockPeerError(f"block stream to {self.peer_id} was aborted", stale=True) from None
            raise BlockPeerError(f"block stream to {self.peer_id} failed: {e}") from e
        if answer is None:
            self._break("closed by the peer")
            raise BlockPeerError(f"peer {self.peer_id} closed the block stream")
        try:
            return p2p_pb2.BlockResponse.FromString(answer)
        except DecodeError:
            self._break("malformed answer")
            raise BlockPeerError(
                f"peer {self.peer_id} sent a malformed answer", offence="malformed_frame"
            ) from None

    def _violation(self, message: str, offence: str) -> BlockPeerError:
        self._break(message)
        return BlockPeerError(f"peer {self.peer_id}: {message}", offence=offence)

    async def want(self, cids: Sequence[Cid]) -> tuple[dict[Cid, bytes], list[Cid]]:
        """Ask for up to MAX_WANT_PER_REQUEST blocks: (blocks it sent, CIDs it says it lacks).

        Every returned block has been checked against its CID. A wanted CID the answer does not
        mention counts as lacking. BlockPeerError with an offence for an answer carrying blocks we did
        not ask for, duplicates, a block over MAX_BLOCK_BYTES ("oversized_frame") or one that does not
        hash to its CID ("invalid_message"); without an offence for timeouts and broken streams.
        """
        wanted = {cid.to_bytes(): cid for cid in cids}
        if not 0 < len(wanted) <= MAX_WANT_PER_REQUEST:
            raise ValueError(f"want 1..{MAX_WANT_PER_REQUEST} distinct blocks per request, got {len(wanted)}")
        response = await self.request(p2p_pb2.BlockRequest(want=list(wanted)))
        if response.have:
            raise self._violation("answered `have` to a want-only request", "bad_sync_answer")
        answered: set[bytes] = set()
        received: list[tuple[Cid, bytes]] = []
        for entry in response.blocks:
            raw = bytes(entry.cid)
            cid = wanted.get(raw)
            if cid is None or raw in answered:
                raise self._violation("sent a block that was not asked for", "bad_sync_answer")
            answered.add(raw)
            if len(entry.data) > MAX_BLOCK_BYTES:
                raise self._violation(
                    f"sent a block of {len(entry.data)} bytes (limit {MAX_BLOCK_BYTES})", "oversized_frame"
                )
            received.append((cid, entry.data))
        lacking: list[Cid] = []
        for raw_missing in response.dont_have:
            raw = bytes(raw_missing)
            cid = wanted.get(raw)
            if cid is None or raw in answered:
                raise self._violation(
                    "answered `dont_have` for a block that was not asked for", "bad_sync_answer"
                )
            answered.add(raw)
            lacking.append(cid)
        # Hashing comes after the cheap checks, so a peer cannot make us hash what we would refuse anyway.
        blocks: dict[Cid, bytes] = {}
        for cid, data in received:
            if not verify_block(cid, data):
                raise self._violation(f"sent bytes that do not hash to {cid}", "invalid_message")
            blocks[cid] = data
        lacking.extend(cid for raw, cid in wanted.items() if raw not in answered)
        return blocks, lacking

    async def have(self, cids: Sequence[Cid]) -> list[Cid]:
        """Which of these (up to MAX_HAVE_PER_REQUEST) CIDs the peer says it holds (a claim, not proof)."""
        asked = {cid.to_bytes(): cid for cid in cids}
        if not 0 < len(asked) <= MAX_HAVE_PER_REQUEST:
            raise ValueError(
                f"ask about 1..{MAX_HAVE_PER_REQUEST} distinct CIDs per request, got {len(asked)}"
            )
        response = await self.request(p2p_pb2.BlockRequest(have=list(asked)))
        if response.blocks or response.dont_have:
            raise self._violation("sent blocks in answer to a `have` request", "bad_sync_answer")
        held: dict[bytes, Cid] = {}
        for raw_held in response.have:
            raw = bytes(raw_held)
            cid = asked.get(raw)
            if cid is None or raw in held:
                raise self._violation("claimed a block that was not asked about", "bad_sync_answer")
            held[raw] = cid
        return list(held.values())
