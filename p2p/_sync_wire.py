"""The diff-sync request/response protocol on libp2p streams.

A client opens one stream per worker and sends `SyncRequest` frames one at a time; the server answers each
with one `SyncResponse` frame. What the answers contain comes from a `SyncSource` (the node's store); this
module only moves, bounds and parses frames. Nothing here trusts the peer: sizes are capped before
reading, every frame must parse, and the caller checks the contents (trie hashes, message validity).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2p._framing import FrameError, FrameReader, encode_frame
from p2p._host import HubHost
from protocols.errors import HubError
from protocols.proto import p2p_pb2

log = logging.getLogger("stateless.sync")

SYNC_PROTOCOL_ID: Final = TProtocol("/stateless-hub/sync/1.0.0")
#: Largest frame either side accepts: 256 messages of at most 2 KiB data, with room to spare.
MAX_SYNC_FRAME: Final = 4 * 1024 * 1024
MAX_IDS_PER_PAGE: Final = 1024
MAX_MESSAGES_PER_REQUEST: Final = 256
#: A peer gets this long to answer one request.
REQUEST_TIMEOUT: Final = 15.0
#: Opening a stream on a live connection takes milliseconds; a connection that cannot do it in this
#: time is as good as dead, and a session should fail fast and be retried, not wait out REQUEST_TIMEOUT.
OPEN_TIMEOUT: Final = 5.0
#: A server stream with no request for this long is closed.
IDLE_TIMEOUT: Final = 60.0
#: Sync streams one peer may have open to us at once.
MAX_STREAMS_PER_PEER: Final = 4


class SyncSource(Protocol):
    """What a sync server answers from, and whom it reports misbehaving to (the node implements it)."""

    def allow(self, peer_id: str) -> bool:
        """False for peers we refuse to serve (banned)."""
        ...

    def trie_node(self, prefix: bytes) -> p2p_pb2.TrieNodeAnswer:
        """Our trie node at `prefix`; HubError for a bad prefix."""
        ...

    def sync_ids(self, prefix: bytes, after: bytes | None, limit: int) -> p2p_pb2.SyncIdsAnswer:
        """Our sync ids under `prefix` after `after`, at most `limit`."""
        ...

    def messages(self, sync_ids: Sequence[bytes]) -> list[bytes]:
        """Exact bytes of the messages we hold for these ids, in order, missing ones left out."""
        ...

    async def push(self, peer_id: str, messages: list[bytes]) -> p2p_pb2.PushAnswer:
        """Validate and merge messages a peer says we lack."""
        ...

    def penalise(self, peer_id: str, offence: str) -> None:
        """Record provable misbehaviour of a peer (see protocols.peers.PENALTIES)."""
        ...


def _error(code: str, message: str) -> p2p_pb2.SyncResponse:
    return p2p_pb2.SyncResponse(error=p2p_pb2.SyncError(code=code, message=message))


async def _answer(source: SyncSource, peer_id: str, request: p2p_pb2.SyncRequest) -> p2p_pb2.SyncResponse:
    kind = request.WhichOneof("kind")
    try:
        if kind == "trie_node":
            return p2p_pb2.SyncResponse(trie_node=source.trie_node(request.trie_node))
        if kind == "sync_ids":
            q = request.sync_ids
            limit = min(max(q.limit, 1), MAX_IDS_PER_PAGE)
            return p2p_pb2.SyncResponse(sync_ids=source.sync_ids(q.prefix, q.after or None, limit))
        if kind == "messages":
            ids = list(request.messages.sync_ids)
            if len(ids) > MAX_MESSAGES_PER_REQUEST:
                source.penalise(peer_id, "oversized_frame")
                return _error(
                    "bad_request.invalid_param", f"at most {MAX_MESSAGES_PER_REQUEST} ids per request"
                )
            found = source.messages(ids)
            return p2p_pb2.SyncResponse(messages=p2p_pb2.MessageBundle(messages=found))
        if kind == "push":
            pushed = list(request.push.messages)
            if len(pushed) > MAX_MESSAGES_PER_REQUEST:
                source.penalise(peer_id, "oversized_frame")
                return _error(
                    "bad_request.invalid_param", f"at most {MAX_MESSAGES_PER_REQUEST} messages per push"
                )
            return p2p_pb2.SyncResponse(push=await source.push(peer_id, pushed))
    except HubError as e:
        return _error(e.code, e.message)
    source.penalise(peer_id, "malformed_frame")
    return _error("bad_request.parse_failure", "empty or unknown sync request")


async def serve_sync_stream(stream: INetStream, source: SyncSource, active: dict[str, int]) -> None:
    """Answer one peer's sync stream until it closes, goes idle, or misbehaves at the framing level."""
    peer_id = str(stream.muxed_conn.peer_id)
    if not source.allow(peer_id) or active.get(peer_id, 0) >= MAX_STREAMS_PER_PEER:
        await _reset(stream)
        return
    active[peer_id] = active.get(peer_id, 0) + 1
    reader = FrameReader(stream, max_size=MAX_SYNC_FRAME)
    try:
        while True:
            with trio.move_on_after(IDLE_TIMEOUT):
                frame = await reader.read()
                if frame is None:
                    return
                try:
                    request = p2p_pb2.SyncRequest.FromString(frame)
                except DecodeError:
                    source.penalise(peer_id, "malformed_frame")
                    return
                response = await _answer(source, peer_id, request)
                # Shielded: a cancellation inside a Noise write burns a nonce and kills the whole
                # connection (py-libp2p 0.8.1; see p2p/_blocks_wire.py). Bounded by its own timeout.
                with trio.CancelScope(shield=True), trio.fail_after(REQUEST_TIMEOUT):
                    await stream.write(encode_frame(response.SerializeToString()))
                continue
            return  # idle
    except FrameError as e:
        source.penalise(peer_id, "oversized_frame" if e.oversized else "malformed_frame")
    except Exception as e:  # a peer vanishing mid-stream surfaces as many py-libp2p error types
        log.debug("sync stream from %s ended: %s", peer_id, e)
    finally:
        active[peer_id] -= 1
        if not active[peer_id]:
            del active[peer_id]
        await _close(stream)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception as e:
        log.debug("resetting sync stream: %s", e)


async def _close(stream: Any) -> None:
    with trio.move_on_after(2):
        try:
            await stream.close()
        except Exception as e:
            log.debug("closing sync stream: %s", e)


class SyncPeerError(HubError):
    """A sync peer failed us: unreachable, timed out, broke framing, or answered with an error."""

    def __init__(self, message: str, *, offence: str | None = None) -> None:
        super().__init__("unavailable", message)
        #: Set when the failure is provable misbehaviour (see protocols.peers.PENALTIES), not just absence.
        self.offence = offence


class SyncClient:
    """One sync stream to a peer: request, wait for the answer, repeat. Not for concurrent use."""

    def __init__(self, stream: INetStream, peer_id: str) -> None:
        self._stream = stream
        self._reader = FrameReader(stream, max_size=MAX_SYNC_FRAME)
        self.peer_id = peer_id

    @classmethod
    async def open(cls, host: HubHost, peer_id: str) -> SyncClient:
        """Open a sync stream to a connected peer."""
        try:
            with trio.fail_after(OPEN_TIMEOUT):
                stream = await host.libp2p_host.new_stream(ID.from_base58(peer_id), [SYNC_PROTOCOL_ID])
        except trio.TooSlowError:
            raise SyncPeerError(f"peer {peer_id} did not open a sync stream in time") from None
        except Exception as e:
            raise SyncPeerError(f"cannot open a sync stream to {peer_id}: {e}") from e
        return cls(stream, peer_id)

    async def close(self) -> None:
        """Close the stream (the server then ends its side)."""
        await _close(self._stream)

    async def request(self, request: p2p_pb2.SyncRequest) -> p2p_pb2.SyncResponse:
        """Send one request and return its answer; SyncPeerError on failure."""
        try:
            # Shielded from outside cancellation (a cancelled Noise write or yamux read can break the
            # whole connection in py-libp2p 0.8.1), bounded by the request timeout instead.
            with trio.CancelScope(shield=True), trio.fail_after(REQUEST_TIMEOUT):
                await self._stream.write(encode_frame(request.SerializeToString()))
                frame = await self._reader.read()
        except trio.TooSlowError:
            raise SyncPeerError(f"peer {self.peer_id} did not answer within {REQUEST_TIMEOUT:g} s") from None
        except FrameError as e:
            offence = "oversized_frame" if e.oversized else "malformed_frame"
            raise SyncPeerError(f"peer {self.peer_id}: {e.message}", offence=offence) from None
        except Exception as e:
            raise SyncPeerError(f"sync stream to {self.peer_id} failed: {e}") from e
        if frame is None:
            raise SyncPeerError(f"peer {self.peer_id} closed the sync stream")
        try:
            response = p2p_pb2.SyncResponse.FromString(frame)
        except DecodeError:
            raise SyncPeerError(
                f"peer {self.peer_id} sent a malformed answer", offence="malformed_frame"
            ) from None
        if response.WhichOneof("kind") == "error":
            raise SyncPeerError(
                f"peer {self.peer_id} refused: {response.error.code}: {response.error.message}"
            )
        return response

    def _expect(self, response: p2p_pb2.SyncResponse, kind: str) -> None:
        if response.WhichOneof("kind") != kind:
            raise SyncPeerError(
                f"peer {self.peer_id} answered {response.WhichOneof('kind')} to a {kind} request",
                offence="bad_sync_answer",
            )

    async def trie_node(self, prefix: bytes) -> p2p_pb2.TrieNodeAnswer:
        """The peer's trie node at `prefix`."""
        response = await self.request(p2p_pb2.SyncRequest(trie_node=prefix))
        self._expect(response, "trie_node")
        return response.trie_node

    async def sync_ids(self, prefix: bytes, after: bytes | None, limit: int) -> p2p_pb2.SyncIdsAnswer:
        """One page of the peer's sync ids under `prefix`."""
        query = p2p_pb2.SyncIdsQuery(prefix=prefix, after=after or b"", limit=limit)
        response = await self.request(p2p_pb2.SyncRequest(sync_ids=query))
        self._expect(response, "sync_ids")
        return response.sync_ids

    async def messages(self, sync_ids: Sequence[bytes]) -> list[bytes]:
        """The peer's messages for these ids (those it has)."""
        request = p2p_pb2.SyncRequest(messages=p2p_pb2.SyncIdList(sync_ids=list(sync_ids)))
        response = await self.request(request)
        self._expect(response, "messages")
        return list(response.messages.messages)

    async def push(self, messages: Sequence[bytes]) -> p2p_pb2.PushAnswer:
        """Offer the peer messages it lacks."""
        response = await self.request(
            p2p_pb2.SyncRequest(push=p2p_pb2.MessageBundle(messages=list(messages)))
        )
        self._expect(response, "push")
        return response.push
