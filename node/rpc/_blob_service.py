"""BlobService handlers: Put streams into the block store, Get streams out of it (fetching from peers first).

These run on the gRPC thread's asyncio loop. The block store is thread-safe and blocking, so its calls go
to worker threads (hashing and LMDB both release the GIL); anything that needs the network (fetching,
announcing, finding providers) crosses the bridge into the node's trio loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any, Final, Protocol, TypeVar

import grpc

from node.blobs import BlobInfo, BlobStore
from node.rpc._bridge import TrioBridge
from node.rpc._handlers import Ctx, client_stream, parse, stream, unary
from protocols.blobs import HASHES, Block, Cid, DagBuilder
from protocols.errors import HubError
from protocols.proto import blobs_pb2 as bp

log = logging.getLogger("stateless.rpc")

SERVICE: Final = "stateless.BlobService"
#: Blocks are written in batches of about this many bytes: one durable commit each.
WRITE_BATCH_BYTES: Final = 4 << 20
#: Bytes per Get message.
GET_PIECE: Final = 1 << 20
MAX_LIST: Final = 1000

T = TypeVar("T")


class BlobBackend(Protocol):
    """The node's blob side as the RPC layer needs it (the trio-side methods run through the bridge)."""

    @property
    def store(self) -> BlobStore: ...

    async def fetch(self, root: Cid) -> BlobInfo:
        """Fetch a blob from peers into the store (verified); HubError if it cannot be completed."""
        ...

    async def announce(self, root: Cid) -> None:
        """Tell the network we provide `root` (returns quickly; the announcement runs in the background)."""
        ...

    async def find_providers(self, root: Cid) -> list[str]:
        """Peer ids that say they hold `root`."""
        ...


def stat_of(info: BlobInfo) -> bp.BlobStat:
    """A store record as the API's BlobStat."""
    return bp.BlobStat(
        cid=str(info.root),
        size=info.size,
        blocks_total=info.blocks_total,
        blocks_present=info.blocks_present,
        complete=info.complete,
        pinned=info.pinned,
        created=int(info.created),
        bytes_stored=info.bytes_stored,
    )


def _cid(text: str) -> Cid:
    if not text:
        raise HubError("bad_request.invalid_param", "cid is required")
    return Cid.parse(text)


class BlobServicer:
    """Handlers of BlobService."""

    def __init__(self, backend: BlobBackend, bridge: TrioBridge) -> None:
        self._backend = backend
        self._bridge = bridge

    @property
    def _store(self) -> BlobStore:
        return self._backend.store

    async def _blocking(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kw))

    # ------------------------------------------------------------------------------------- writes

    async def put(self, requests: AsyncIterator[bytes], _ctx: Ctx) -> bp.BlobStat:
        options = bp.BlobPutOptions()
        builder: DagBuilder | None = None
        session: str | None = None
        batch: list[Block] = []
        batch_bytes = 0
        try:
            async for raw in requests:
                request = parse(bp.BlobPutRequest, raw)
                part = request.WhichOneof("part")
                if part == "options":
                    if builder is not None:
                        raise HubError("bad_request.invalid_param", "options must come before any data")
                    options = request.options
                    continue
                if builder is None:
                    builder, session = await self._start_put(options)
                if part != "data":
                    raise HubError("bad_request.invalid_param", "messages after the options must carry data")
                # Hashing runs on a worker thread (hashlib and blake3 release the GIL on large inputs).
                for block in await self._blocking(builder.feed, request.data):
                    batch.append(block)
                    batch_bytes += len(block.data)
                if batch_bytes >= WRITE_BATCH_BYTES:
                    await self._blocking(self._store.put_blocks, batch, session=session, verified=True)
                    batch, batch_bytes = [], 0
            if builder is None:  # no data at all: the empty blob
                builder, session = await self._start_put(options)
            root, rest = await self._blocking(builder.finish)
            await self._blocking(self._store.put_blocks, [*batch, *rest], session=session, verified=True)
            assert session is not None
            info = await self._blocking(self._store.commit_blob, session, root)
            session = None
        finally:
            if session is not None:
                await self._blocking(self._store.abort_blob, session)
        try:
            await self._bridge.call(self._backend.announce, root)
        except HubError as e:  # stored durably either way; announcing is best effort
            log.warning("announcing blob %s failed: %s", root, e.message)
        return stat_of(info)

    async def _start_put(self, options: bp.BlobPutOptions) -> tuple[DagBuilder, str]:
        name = options.hash or "sha2-256"
        if name not in HASHES:
            choices = ", ".join(HASHES)
            raise HubError("bad_request.invalid_param", f"unknown hash {name!r}; use one of {choices}")
        session = await self._blocking(self._store.open_blob, None, pin=not options.no_pin)
        return DagBuilder(HASHES[name]), session

    # ------------------------------------------------------------------------------------- reads

    async def get(self, r: bp.BlobGetRequest, _ctx: Ctx) -> AsyncIterator[bp.BlobGetResponse]:
        root = _cid(r.cid)
        info = await self._blocking(self._store.stat, root)
        if info is None or not info.complete:
            if r.local_only:
                raise HubError("not_found", f"blob {root} is not held by this hub")
            info = await self._bridge.call(self._backend.fetch, root)
        if r.offset > info.size:
            past = f"offset {r.offset} is past the end of the blob ({info.size} bytes)"
            raise HubError("bad_request.invalid_param", past)
        end = info.size if not r.HasField("length") else min(info.size, r.offset + r.length)
        yield bp.BlobGetResponse(stat=stat_of(info))
        pieces: Iterator[bytes] = iter(self._store.read(root, r.offset, end))
        pending = b""
        while True:
            # One block per worker-thread hop: the store opens a short read transaction per block.
            piece = await self._blocking(next, pieces, None)
            if piece is None:
                break
            pending += piece
            if len(pending) >= GET_PIECE:
                yield bp.BlobGetResponse(data=pending)
                pending = b""
        if pending:
            yield bp.BlobGetResponse(data=pending)

    async def stat(self, r: bp.BlobRef, _ctx: Ctx) -> bp.BlobStat:
        root = _cid(r.cid)
        info = await self._blocking(self._store.stat, root)
        if info is None:
            raise HubError("not_found", f"blob {root} is not held by this hub")
        return stat_of(info)

    async def pin(self, r: bp.BlobRef, _ctx: Ctx) -> bp.BlobStat:
        return stat_of(await self._blocking(self._store.pin, _cid(r.cid)))

    async def unpin(self, r: bp.BlobRef, _ctx: Ctx) -> bp.BlobStat:
        return stat_of(await self._blocking(self._store.unpin, _cid(r.cid)))

    async def list(self, r: bp.BlobListRequest, _ctx: Ctx) -> bp.BlobListResponse:
        limit = min(r.limit or 100, MAX_LIST)
        after = _cid(r.after) if r.after else None
        infos = await self._blocking(
            self._store.list_blobs, pinned_only=r.pinned_only, after=after, limit=limit
        )
        response = bp.BlobListResponse(blobs=[stat_of(i) for i in infos])
        if len(infos) == limit:
            response.next = str(infos[-1].root)
        return response

    async def find_providers(self, r: bp.BlobRef, _ctx: Ctx) -> bp.BlobProvidersResponse:
        root = _cid(r.cid)
        return bp.BlobProvidersResponse(peer_ids=await self._bridge.call(self._backend.find_providers, root))

    async def collect_garbage(self, _r: bp.BlobGcRequest, _ctx: Ctx) -> bp.BlobGcResponse:
        result = await self._blocking(self._store.gc)
        return bp.BlobGcResponse(
            blobs_removed=result.blobs_removed,
            blocks_removed=result.blocks_removed,
            bytes_freed=result.bytes_freed,
        )

    # ------------------------------------------------------------------------------------- wiring

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The generic handler serving /stateless.BlobService/*."""
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "Put": client_stream("Put", self.put),
            "Get": stream("Get", bp.BlobGetRequest, self.get),
            "Stat": unary("Stat", bp.BlobRef, self.stat),
            "Pin": unary("Pin", bp.BlobRef, self.pin),
            "Unpin": unary("Unpin", bp.BlobRef, self.unpin),
            "List": unary("List", bp.BlobListRequest, self.list),
            "FindProviders": unary("FindProviders", bp.BlobRef, self.find_providers),
            "CollectGarbage": unary("CollectGarbage", bp.BlobGcRequest, self.collect_garbage),
        }
        return grpc.method_handlers_generic_handler(SERVICE, methods)
