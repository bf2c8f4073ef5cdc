from __future__ import annotations

import trio

from node.runner import NodeHandle
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr
from tests import factories as f
from tests.conftest import Client


async def test_register_cast_read(node: NodeHandle, client: Client) -> None:
    key = f.new_key()
    with trio.fail_after(20):
        for event in f.account(7, key):
            await client.call(client.admin.SubmitOnChainEvent, event)
        cast = f.cast_add(key, 7, "hello world")
        stored = await client.call(client.hub.SubmitMessage, cast)
        assert stored.hash == cast.hash
        got = await client.call(client.hub.GetCast, pb.CastId(fid=7, hash=cast.hash))
        assert got.data.cast_add_body.text == "hello world"
        page = await client.call(client.hub.GetCastsByFid, rr.FidRequest(fid=7))
        assert [m.hash for m in page.messages] == [cast.hash]
