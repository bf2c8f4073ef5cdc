"""BlobService end to end: real nodes (LMDB, libp2p, gRPC on 127.0.0.1 port 0), a blob put on one node
and fetched, verified, through another."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio

from devnet import open_devnet
from protocols.blobs import CHUNK_SIZE, DagBuilder
from protocols.proto import blobs_pb2 as bp
from protocols.proto import blobs_pb2_grpc


class BlobClient:
    """Blocking BlobService stubs called from trio through worker threads."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = blobs_pb2_grpc.BlobServiceStub(self.channel)

    async def call(self, method: str, request: Any, timeout: float = 30.0) -> Any:  # noqa: ASYNC109
        return await trio.to_thread.run_sync(
            functools.partial(getattr(self.stub, method), request, timeout=timeout)
        )

    async def put(self, data: bytes, **options: Any) -> bp.BlobStat:
        def requests() -> Iterator[bp.BlobPutRequest]:
            yield bp.BlobPutRequest(options=bp.BlobPutOptions(**options))
            for i in range(0, len(data), 100_000):
                yield bp.BlobPutRequest(data=data[i : i + 100_000])

        return await self.call("Put", requests())

    async def get(self, cid: str, **fields: Any) -> tuple[bp.BlobStat, bytes]:
        def run() -> tuple[bp.BlobStat, bytes]:
            stat, parts = bp.BlobStat(), []
            for response in self.stub.Get(bp.BlobGetRequest(cid=cid, **fields), timeout=60):
                if response.WhichOneof("part") == "stat":
                    stat = response.stat
                else:
                    parts.append(response.data)
            return stat, b"".join(parts)

        return await trio.to_thread.run_sync(run)

    def close(self) -> None:
        self.channel.close()


def errcode(err: grpc.RpcError) -> str:
    return dict(err.trailing_metadata() or ()).get("errcode", "")  # type: ignore[attr-defined]


def ipfs_cid(data: bytes) -> str:
    builder = DagBuilder()
    builder.feed(data)
    root, _ = builder.finish()
    return str(root)


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 7])
async def test_put_get_round_trip(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    async with open_devnet(1, tmp_path) as net:
        client = BlobClient(net[0].rpc_target)
        try:
            stat = await client.put(data)
            assert stat.cid == ipfs_cid(data) and stat.size == size and stat.complete and stat.pinned
            got_stat, got = await client.get(stat.cid)
            assert got == data and got_stat.cid == stat.cid
            if size > 10:
                _, part = await client.get(stat.cid, offset=3, length=size - 10)
                assert part == data[3 : size - 7]
        finally:
            client.close()


async def test_blob_fetched_through_another_node(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 12345)
    async with open_devnet(2, tmp_path) as net:
        a, b = BlobClient(net[0].rpc_target), BlobClient(net[1].rpc_target)
        try:
            stat = await a.put(data, hash="blake3")
            with pytest.raises(grpc.RpcError) as info:
                await b.get(stat.cid, local_only=True)
            assert errcode(info.value) == "not_found"
            with trio.fail_after(60):
                fetched_stat, fetched = await b.get(stat.cid)
            assert fetched == data and fetched_stat.complete
            local = await b.call("Stat", bp.BlobRef(cid=stat.cid))
            assert local.complete and not local.pinned  # fetched blobs are a cache until pinned
            pinned = await b.call("Pin", bp.BlobRef(cid=stat.cid))
            assert pinned.pinned
            providers = await b.call("FindProviders", bp.BlobRef(cid=stat.cid))
            assert net[0].peer_id in providers.peer_ids
        finally:
            a.close()
            b.close()


async def test_list_pin_unpin_gc_and_bad_input(tmp_path: Path) -> None:
    async with open_devnet(1, tmp_path) as net:
        client = BlobClient(net[0].rpc_target)
        try:
            kept = await client.put(b"keep me" * 1000)
            dropped = await client.put(b"drop me" * 1000, no_pin=True)
            listed = await client.call("List", bp.BlobListRequest())
            assert {s.cid for s in listed.blobs} == {kept.cid, dropped.cid}
            pinned_only = await client.call("List", bp.BlobListRequest(pinned_only=True))
            assert [s.cid for s in pinned_only.blobs] == [kept.cid]
            gc = await client.call("CollectGarbage", bp.BlobGcRequest())
            assert gc.blobs_removed == 1 and gc.bytes_freed > 0
            with pytest.raises(grpc.RpcError) as info:
                await client.call("Stat", bp.BlobRef(cid=dropped.cid))
            assert errcode(info.value) == "not_found"
            unpinned = await client.call("Unpin", bp.BlobRef(cid=kept.cid))
            assert not unpinned.pinned

            for bad in ("", "not-a-cid", "bafyrei" + "a" * 52, "zzzz"):
                with pytest.raises(grpc.RpcError) as info:
                    await client.call("Stat", bp.BlobRef(cid=bad))
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            with pytest.raises(grpc.RpcError) as info:
                await client.get(kept.cid, offset=10**9)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as info:
                await client.put(b"x", hash="md5")
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # The node still serves after all that.
            assert (await client.get(kept.cid))[1] == b"keep me" * 1000
        finally:
            client.close()
