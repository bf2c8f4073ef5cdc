"""End-to-end tests of every HubService method against a real node (LMDB, gRPC on port 0)."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
import trio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from node.runner import NodeHandle
from protocols.messages import blake3_160, public_key_bytes
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr
from tests import factories as f
from tests.conftest import Client

FID = 11
OTHER = 12


@pytest.fixture
async def account(client: Client) -> Any:
    key = f.new_key()
    for event in f.account(FID, key):
        await client.call(client.admin.SubmitOnChainEvent, event)
    return key


async def submit(client: Client, message: pb.Message) -> pb.Message:
    result: pb.Message = await client.call(client.hub.SubmitMessage, message)
    return result


async def rpc_error(client: Client, method: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        await client.call(method, request)
    return info.value


def errcode(err: grpc.RpcError) -> str:
    return dict(err.trailing_metadata() or ()).get("errcode", "")  # type: ignore[attr-defined]


async def test_casts_round_trip_and_queries(client: Client, account: Any) -> None:
    key = account
    parent = f.cast_add(key, FID, "root")
    await submit(client, parent)
    parent_id = pb.CastId(fid=FID, hash=parent.hash)
    reply = f.cast_add(key, FID, "reply @x", parent=parent_id, mentions=[OTHER], mentions_positions=[6])
    url_reply = f.cast_add(key, FID, "on a url", parent="https://example.com/a")
    for m in (reply, url_reply):
        await submit(client, m)

    by_fid = await client.call(client.hub.GetCastsByFid, rr.FidRequest(fid=FID))
    assert {m.hash for m in by_fid.messages} == {parent.hash, reply.hash, url_reply.hash}
    by_parent = await client.call(
        client.hub.GetCastsByParent, rr.CastsByParentRequest(parent_cast_id=parent_id)
    )
    assert [m.hash for m in by_parent.messages] == [reply.hash]
    by_url = await client.call(
        client.hub.GetCastsByParent, rr.CastsByParentRequest(parent_url="https://example.com/a")
    )
    assert [m.hash for m in by_url.messages] == [url_reply.hash]
    by_mention = await client.call(client.hub.GetCastsByMention, rr.FidRequest(fid=OTHER))
    assert [m.hash for m in by_mention.messages] == [reply.hash]

    # Removing a cast hides it everywhere.
    await submit(client, f.cast_remove(key, FID, reply.hash))
    err = await rpc_error(client, client.hub.GetCast, pb.CastId(fid=FID, hash=reply.hash))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    by_parent = await client.call(
        client.hub.GetCastsByParent, rr.CastsByParentRequest(parent_cast_id=parent_id)
    )
    assert list(by_parent.messages) == []


async def test_pagination(client: Client, account: Any) -> None:
    base = f.farcaster_now() - 1000
    casts = [f.cast_add(account, FID, f"n{i}", timestamp=base + i) for i in range(7)]
    for m in casts:
        await submit(client, m)
    seen: list[bytes] = []
    token = None
    pages = 0
    while True:
        req = rr.FidRequest(fid=FID, page_size=3)
        if token:
            req.page_token = token
        page = await client.call(client.hub.GetCastsByFid, req)
        seen.extend(m.hash for m in page.messages)
        pages += 1
        if not page.HasField("next_page_token"):
            break
        token = page.next_page_token
    assert seen == [m.hash for m in casts] and pages == 3
    rev = await client.call(client.hub.GetCastsByFid, rr.FidRequest(fid=FID, page_size=2, reverse=True))
    assert [m.hash for m in rev.messages] == [casts[6].hash, casts[5].hash]
    err = await rpc_error(
        client, client.hub.GetCastsByMention, rr.FidRequest(fid=FID, page_token=rev.next_page_token)
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and errcode(err) == "bad_request.invalid_param"


async def test_reactions_links_user_data(client: Client, account: Any) -> None:
    key = account
    cast = f.cast_add(key, FID, "target")
    await submit(client, cast)
    cid = pb.CastId(fid=FID, hash=cast.hash)
    like = f.reaction(key, FID, cid)
    recast = f.reaction(key, FID, cid, reaction_type=pb.REACTION_TYPE_RECAST)
    url_like = f.reaction(key, FID, "https://example.com/x")
    follow = f.link(key, FID, OTHER)
    display = f.user_data(key, FID, pb.USER_DATA_TYPE_DISPLAY, "Alice")
    for m in (like, recast, url_like, follow, display):
        await submit(client, m)

    got = await client.call(
        client.hub.GetReaction,
        rr.ReactionRequest(fid=FID, reaction_type=pb.REACTION_TYPE_LIKE, target_cast_id=cid),
    )
    assert got.hash == like.hash
    likes = await client.call(
        client.hub.GetReactionsByTarget,
        rr.ReactionsByTargetRequest(target_cast_id=cid, reaction_type=pb.REACTION_TYPE_LIKE),
    )
    assert [m.hash for m in likes.messages] == [like.hash]
    all_on_cast = await client.call(
        client.hub.GetReactionsByCast, rr.ReactionsByTargetRequest(target_cast_id=cid)
    )
    assert {m.hash for m in all_on_cast.messages} == {like.hash, recast.hash}
    by_fid = await client.call(client.hub.GetReactionsByFid, rr.ReactionsByFidRequest(fid=FID))
    assert len(by_fid.messages) == 3
    by_url = await client.call(
        client.hub.GetReactionsByTarget, rr.ReactionsByTargetRequest(target_url="https://example.com/x")
    )
    assert [m.hash for m in by_url.messages] == [url_like.hash]

    link = await client.call(
        client.hub.GetLink, rr.LinkRequest(fid=FID, link_type="follow", target_fid=OTHER)
    )
    assert link.hash == follow.hash
    links = await client.call(client.hub.GetLinksByFid, rr.LinksByFidRequest(fid=FID, link_type="follow"))
    assert [m.hash for m in links.messages] == [follow.hash]
    followers = await client.call(client.hub.GetLinksByTarget, rr.LinksByTargetRequest(target_fid=OTHER))
    assert [m.hash for m in followers.messages] == [follow.hash]
    # Unfollow with a later timestamp wins (last-write-wins).
    await submit(client, f.link(key, FID, OTHER, remove=True, timestamp=follow.data.timestamp + 1))
    err = await rpc_error(
        client, client.hub.GetLink, rr.LinkRequest(fid=FID, link_type="follow", target_fid=OTHER)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND

    ud = await client.call(
        client.hub.GetUserData, rr.UserDataRequest(fid=FID, user_data_type=pb.USER_DATA_TYPE_DISPLAY)
    )
    assert ud.data.user_data_body.value == "Alice"
    uds = await client.call(client.hub.GetUserDataByFid, rr.FidRequest(fid=FID))
    assert [m.hash for m in uds.messages] == [display.hash]
    verifs = await client.call(client.hub.GetVerificationsByFid, rr.FidRequest(fid=FID))
    assert list(verifs.messages) == []
    err = await rpc_error(
        client, client.hub.GetVerification, rr.VerificationRequest(fid=FID, address=b"\x01" * 20)
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_identity_queries(client: Client, account: Any) -> None:
    signer = public_key_bytes(account)
    event = await client.call(client.hub.GetOnChainSigner, rr.SignerRequest(fid=FID, signer=signer))
    assert event.signer_event_body.key == signer
    signers = await client.call(client.hub.GetOnChainSignersByFid, rr.FidRequest(fid=FID))
    assert [e.signer_event_body.key for e in signers.events] == [signer]
    rents = await client.call(
        client.hub.GetOnChainEvents, rr.OnChainEventRequest(fid=FID, event_type=oc.EVENT_TYPE_STORAGE_RENT)
    )
    assert [e.storage_rent_event_body.units for e in rents.events] == [1]
    reg = await client.call(client.hub.GetIdRegistryOnChainEvent, rr.FidRequest(fid=FID))
    assert reg.type == oc.EVENT_TYPE_ID_REGISTER
    fids = await client.call(client.hub.GetFids, rr.FidsRequest())
    assert list(fids.fids) == [FID]
    limits = await client.call(client.hub.GetCurrentStorageLimitsByFid, rr.FidRequest(fid=FID))
    assert limits.units == 1 and {lim.name: lim.limit for lim in limits.limits}["CASTS"] == 2000
    err = await rpc_error(client, client.hub.GetIdRegistryOnChainEvent, rr.FidRequest(fid=999))
    assert err.code() == grpc.StatusCode.NOT_FOUND and errcode(err) == "not_found"


async def test_signer_removal_revokes(client: Client, account: Any) -> None:
    cast = f.cast_add(account, FID, "soon gone")
    await submit(client, cast)
    await client.call(client.admin.SubmitOnChainEvent, f.signer_remove(FID, account))
    err = await rpc_error(client, client.hub.GetCast, pb.CastId(fid=FID, hash=cast.hash))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(client, client.hub.SubmitMessage, f.cast_add(account, FID, "after removal"))
    assert errcode(err) == "bad_request.unknown_signer"


async def test_validate_and_bulk(client: Client, account: Any) -> None:
    good = f.cast_add(account, FID, "validate me")
    resp = await client.call(client.hub.ValidateMessage, good)
    assert resp.valid and resp.message.hash == good.hash
    missing = await rpc_error(client, client.hub.GetCast, pb.CastId(fid=FID, hash=good.hash))
    assert missing.code() == grpc.StatusCode.NOT_FOUND  # validation stores nothing

    bad = f.cast_add(account, FID, "tampered")
    bad.signature = bytes(64)
    batch = [f.cast_add(account, FID, f"bulk {i}") for i in range(5)]
    resp = await client.call(
        client.hub.SubmitBulkMessages, rr.SubmitBulkMessagesRequest(messages=[*batch, bad, batch[0]])
    )
    kinds = [r.WhichOneof("response") for r in resp.messages]
    assert kinds == ["message"] * 5 + ["message_error"] * 2
    assert resp.messages[5].message_error.errCode == "bad_request.validation_failure.signature"
    assert resp.messages[6].message_error.errCode == "bad_request.duplicate"


async def test_bad_input_is_rejected_and_node_keeps_serving(client: Client, account: Any) -> None:
    cases = {
        "bad_request.validation_failure.network": f.cast_add(
            account, FID, network=pb.FARCASTER_NETWORK_MAINNET
        ),
        "bad_request.validation_failure.timestamp": f.cast_add(
            account, FID, timestamp=f.farcaster_now() + 3600
        ),
        "bad_request.validation_failure.text_too_long": f.cast_add(account, FID, "x" * 321),
        "bad_request.unknown_fid": f.cast_add(account, 4242),
        "bad_request.unknown_signer": f.cast_add(f.new_key(), FID),
    }
    for code, message in cases.items():
        err = await rpc_error(client, client.hub.SubmitMessage, message)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, code
        assert errcode(err) == code
    raw = client.channel.unary_unary("/HubService/SubmitMessage")
    with pytest.raises(grpc.RpcError) as info:
        await trio.to_thread.run_sync(lambda: raw(b"\xff\xff\xff", timeout=5))
    assert errcode(info.value) == "bad_request.parse_failure"
    info_resp = await client.call(client.hub.GetInfo, rr.HubInfoRequest())
    assert info_resp.db_stats.num_messages == 0
    await submit(client, f.cast_add(account, FID, "still fine"))


async def test_get_info(node: NodeHandle, client: Client) -> None:
    info = await client.call(client.hub.GetInfo, rr.HubInfoRequest(db_stats=True))
    assert info.peerId == node.peer_id
    assert info.listen_addrs and all(a.endswith("/p2p/" + node.peer_id) for a in info.listen_addrs)
    assert info.network == pb.FARCASTER_NETWORK_DEVNET and info.version


@pytest.mark.parametrize("from_id", [0, 1])  # 0: everything retained, as in Hubble
async def test_subscribe_replays_and_streams(client: Client, account: Any, from_id: int) -> None:
    existing = f.cast_add(account, FID, "before subscribe")
    await submit(client, existing)
    received: list[he.HubEvent] = []
    done = threading.Event()

    def consume() -> None:
        stream = client.hub.Subscribe(
            rr.SubscribeRequest(from_id=from_id, event_types=[he.HUB_EVENT_TYPE_MERGE_MESSAGE]), timeout=20
        )
        for event in stream:
            received.append(event)
            if len(received) == 3:
                stream.cancel()
                break
        done.set()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, consume)
            for i in range(2):
                await submit(client, f.cast_add(account, FID, f"live {i}"))
    assert done.is_set()
    texts = [e.merge_message_body.message.data.cast_add_body.text for e in received]
    assert texts == ["before subscribe", "live 0", "live 1"]
    ids = [e.id for e in received]
    assert ids == sorted(ids) and len(set(ids)) == 3
    again = await client.call(client.hub.GetEvent, rr.EventRequest(id=ids[0]))
    assert again.merge_message_body.message.hash == existing.hash


async def test_health_and_reflection(client: Client) -> None:
    health = health_pb2_grpc.HealthStub(client.channel)
    status = await client.call(health.Check, health_pb2.HealthCheckRequest(service="HubService"))
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(client.channel)

    def list_services() -> list[str]:
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        [resp] = list(refl.ServerReflectionInfo(iter([req]), timeout=10))
        return [s.name for s in resp.list_services_response.service]

    names = await trio.to_thread.run_sync(list_services)
    assert {"HubService", "AdminService", "grpc.health.v1.Health"} <= set(names)


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are < 128 bytes, so one length byte)."""
    assert len(payload) < 128
    return bytes([field << 3 | 2, len(payload)]) + payload


async def test_bulk_keeps_exact_bytes_of_data_only_messages(client: Client, account: Any) -> None:
    """A client that sends only `data`, with fields out of number order, signed those exact bytes.

    Re-serialising the parsed `data` would reorder the fields and break the hash, so SubmitBulkMessages
    must cut each message out of the request verbatim (as SubmitMessage does).
    """
    d = f.data(FID, pb.MESSAGE_TYPE_CAST_ADD)
    d.cast_add_body.text = "out of order"
    header = pb.MessageData(type=d.type, fid=d.fid, timestamp=d.timestamp, network=d.network)
    data_bytes = _ld(5, d.cast_add_body.SerializeToString()) + header.SerializeToString()  # body first
    assert pb.MessageData.FromString(data_bytes).SerializeToString() != data_bytes
    digest = blake3_160(data_bytes)
    envelope = pb.Message(
        hash=digest,
        hash_scheme=pb.HASH_SCHEME_BLAKE3,
        signature=account.sign(digest),
        signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
        signer=public_key_bytes(account),
    ).SerializeToString()
    message = _ld(1, data_bytes) + envelope
    request = _ld(1, message) if len(message) < 128 else None
    if request is None:  # two-byte length
        request = bytes([1 << 3 | 2, len(message) & 0x7F | 0x80, len(message) >> 7]) + message
    raw = client.channel.unary_unary("/HubService/SubmitBulkMessages")
    resp = rr.SubmitBulkMessagesResponse.FromString(
        await trio.to_thread.run_sync(lambda: raw(request, timeout=10))
    )
    [entry] = resp.messages
    assert entry.WhichOneof("response") == "message", entry
    assert entry.message.hash == digest and entry.message.data_bytes == data_bytes
    stored = await client.call(client.hub.GetCast, pb.CastId(fid=FID, hash=digest))
    assert stored.data.cast_add_body.text == "out of order"


async def test_concurrent_submits_each_get_their_own_answer(client: Client, account: Any) -> None:
    """Concurrent SubmitMessage calls are coalesced into shared batches; results must not mix up."""
    good = [f.cast_add(account, FID, f"concurrent {i}") for i in range(40)]
    bad = f.cast_add(account, FID, "tampered")
    bad.signature = bytes(64)
    outcomes: dict[bytes, str] = {}

    async def one(message: pb.Message) -> None:
        try:
            await submit(client, message)
            outcomes[message.hash] = "ok"
        except grpc.RpcError as e:
            outcomes[message.hash] = errcode(e) or f"{e.code()}: {e.details()}"

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for m in [*good, bad]:
                nursery.start_soon(one, m)
    assert outcomes[bad.hash] == "bad_request.validation_failure.signature"
    assert all(outcomes[m.hash] == "ok" for m in good)
    info = await client.call(client.hub.GetInfo, rr.HubInfoRequest(db_stats=True))
    assert info.db_stats.num_messages == len(good)
