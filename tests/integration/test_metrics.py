"""Prometheus metrics over real HTTP: the format parses, counters move with real traffic, the tiny HTTP
server survives bad clients, and a metrics port in use fails the start with a HubError."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from devnet import open_devnet
from node.cli import UsageError, build_parser
from node.cli._node_cmd import build_node_config
from node.config import NodeConfig
from node.metrics import CONTENT_TYPE, MAX_REQUEST_BYTES, MetricsAddress
from node.runner import NodeHandle, open_node
from protocols.blobs import Cid
from protocols.errors import HubError
from protocols.messages import public_key_bytes
from protocols.proto import blobs_pb2 as bp
from protocols.proto import blobs_pb2_grpc
from protocols.proto import message_pb2 as pb
from tests import factories as f
from tests.conftest import Client

FID = 71
WAIT = 30

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _exchange(address: MetricsAddress, request: bytes) -> bytes:
    """Send `request` raw, then half-close, and read the whole answer (blocking; run in a thread)."""
    with socket.create_connection((address.host, address.port), timeout=10) as s:
        if request:
            s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def http(address: MetricsAddress, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one raw HTTP request."""
    raw = await trio.to_thread.run_sync(_exchange, address, request)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    assert status_line.startswith("HTTP/1.1 ")
    assert int(headers["content-length"]) == len(body) or request.startswith(b"HEAD ")
    return int(status_line.split()[1]), headers, body


async def get(address: MetricsAddress, path: str) -> tuple[int, dict[str, str], bytes]:
    return await http(address, f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n".encode())


async def scrape(node: NodeHandle) -> Samples:
    """Every sample of the node's /metrics, fetched over HTTP and parsed as Prometheus text format."""
    assert node.metrics_address is not None
    status, headers, body = await get(node.metrics_address, "/metrics")
    assert status == 200 and headers["content-type"] == CONTENT_TYPE
    text = body.decode()
    out: Samples = {}
    families = list(text_string_to_metric_families(text))
    for family in families:
        assert f"# TYPE {family.name}" in text and f"# HELP {family.name}" in text
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    assert {fam.name for fam in families} >= {"stateless_messages_merged", "stateless_grpc_requests"}
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def errcode(err: grpc.RpcError) -> str:
    return dict(err.trailing_metadata() or ()).get("errcode", "")  # type: ignore[attr-defined]


async def put_blob(stub: Any, data: bytes) -> bp.BlobStat:
    requests = [bp.BlobPutRequest(options=bp.BlobPutOptions()), bp.BlobPutRequest(data=data)]
    stat: bp.BlobStat = await trio.to_thread.run_sync(lambda: stub.Put(iter(requests), timeout=WAIT))
    return stat


@pytest.fixture
def blob_stub(client: Client) -> Iterator[Any]:
    yield blobs_pb2_grpc.BlobServiceStub(client.channel)


async def test_counters_move_with_traffic(node: NodeHandle, client: Client, blob_stub: Any) -> None:
    key = f.new_key()
    for event in f.account(FID, key):
        await client.call(client.admin.SubmitOnChainEvent, event)
    before = await scrape(node)

    await client.call(client.hub.SubmitMessage, f.cast_add(key, FID, "counted"))
    forged = f.cast_add(key, FID, "forged")
    forged.signature = bytes(64)
    with pytest.raises(grpc.RpcError) as info:
        await client.call(client.hub.SubmitMessage, forged)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    code = errcode(info.value)
    with pytest.raises(grpc.RpcError) as info:
        await client.call(client.hub.GetCast, pb.CastId(fid=FID, hash=bytes(20)))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    data = b"metered blob " * 1000
    stat = await put_blob(blob_stub, data)
    got = await trio.to_thread.run_sync(
        lambda: list(blob_stub.Get(bp.BlobGetRequest(cid=stat.cid), timeout=WAIT))
    )
    assert b"".join(r.data for r in got) == data
    after = await scrape(node)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("stateless_messages_merged_total", origin="local") == 1
    assert delta("stateless_messages_rejected_total", code=code) == 1
    assert delta("stateless_grpc_requests_total", method="SubmitMessage", code="OK") == 1
    assert delta("stateless_grpc_requests_total", method="SubmitMessage", code="INVALID_ARGUMENT") == 1
    assert delta("stateless_grpc_requests_total", method="GetCast", code="NOT_FOUND") == 1
    assert delta("stateless_grpc_requests_total", method="Put", code="OK") == 1
    assert delta("stateless_grpc_requests_total", method="Get", code="OK") == 1  # a server stream
    assert value(after, "stateless_grpc_requests_total", method="SubmitOnChainEvent", code="OK") == 3
    # The histogram counts every call once, whatever its status.
    assert delta("stateless_grpc_request_duration_seconds_count", method="SubmitMessage") == 2
    assert (
        value(after, "stateless_grpc_request_duration_seconds_bucket", method="SubmitMessage", le="+Inf") == 2
    )
    assert value(after, "stateless_db_messages") == 1
    assert value(after, "stateless_db_fids") == 1
    assert delta("stateless_writer_batches_total") >= 1
    assert value(after, "stateless_blobs") == 1 and stat.size == len(data)
    assert value(after, "stateless_blob_bytes_stored") >= len(data)
    assert value(after, "stateless_blobs_pinned") == 1
    assert value(after, "stateless_peers_connected") == 0
    assert value(after, "stateless_uptime_seconds") >= 0
    info_labels = {"version", "network", "peer_id"}
    [info_key] = [k for k in after if k[0] == "stateless_node_info"]
    assert {k for k, _ in info_key[1]} == info_labels and ("peer_id", node.peer_id) in info_key[1]


async def test_http_endpoint_answers_and_survives_bad_requests(node: NodeHandle) -> None:
    address = node.metrics_address
    assert address is not None and address.port > 0
    assert address.url == f"http://127.0.0.1:{address.port}/metrics"

    status, headers, body = await get(address, "/healthz")
    assert (status, body) == (200, b"ok\n") and headers["connection"] == "close"
    assert (await get(address, "/nope"))[0] == 404
    assert (await get(address, "/metrics?x=1"))[0] == 200
    status, headers, body = await http(address, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _ = await http(address, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    for garbage in (
        b"\x00\xff\xfe garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /metrics SPDY/9\r\n\r\n",
        b"\r\n\r\n",
    ):
        assert (await http(address, garbage))[0] == 400, garbage
    assert await trio.to_thread.run_sync(_exchange, address, b"") == b""  # connect and hang up
    assert (await http(address, b"G" * (MAX_REQUEST_BYTES + 100)))[0] == 431
    # A request line without the blank line that ends the head still gets its answer at EOF.
    assert (await http(address, b"GET /healthz HTTP/1.0\r\n"))[0] == 200
    assert (await get(address, "/healthz"))[0] == 200  # still serving


async def test_metrics_port_in_use_is_a_hub_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = NodeConfig(data_dir=tmp_path / "n", rpc_port=0, gossip_port=0, metrics_port=port)
        with pytest.raises(HubError) as err:
            async with open_node(config):
                pytest.fail("must not start on a metrics port in use")
    assert err.value.code == "unavailable"
    assert f"metrics on 127.0.0.1:{port}" in err.value.message and "in use" in err.value.message
    # Nothing was left behind: the data dir is free again, and metrics can be off.
    async with open_node(
        NodeConfig(data_dir=tmp_path / "n", rpc_port=0, gossip_port=0, metrics_port=None)
    ) as node:
        assert node.metrics_address is None
        assert b"stateless_db_messages 0.0" in node.metrics.render()


async def test_two_node_devnet_peers_gossip_and_blob_exchange(tmp_path: Path) -> None:
    key = f.new_key()
    genesis = tmp_path / "genesis.json"
    account = {"fid": FID, "signers": ["0x" + public_key_bytes(key).hex()], "storage_units": 1}
    genesis.write_text(json.dumps({"network": "devnet", "accounts": [account]}))
    async with open_devnet(2, tmp_path / "net", genesis=genesis) as net:
        a, b = net[0], net[1]
        with trio.fail_after(WAIT):
            await net.wait_until(
                lambda: a.network.connected_count() == 1 and b.network.connected_count() == 1
            )
        cast = f.cast_add(key, FID, "gossiped and counted")
        await a.engine.submit(cast)
        with trio.fail_after(WAIT):
            await net.wait_converged()
            await net.wait_until(lambda: a.network.stats.messages_out >= 1)
        data = bytes(range(256)) * 400
        with grpc.insecure_channel(a.rpc_target) as channel:
            stat = await put_blob(blobs_pb2_grpc.BlobServiceStub(channel), data)
        with trio.fail_after(WAIT):
            await b.blobs.fetch(Cid.parse(stat.cid))

        sa, sb = await scrape(a), await scrape(b)
        for s in (sa, sb):
            assert value(s, "stateless_peers_connected") == 1
            assert value(s, "stateless_peers_banned") == 0
            assert value(s, "stateless_sync_lag_messages") == 0
            assert (
                sum(
                    value(s, "stateless_sync_peers", state=st) for st in ("in_sync", "out_of_sync", "unknown")
                )
                == 1
            )
        assert value(sa, "stateless_messages_merged_total", origin="local") == 1
        assert value(sa, "stateless_gossip_bundles_out_total") >= 1
        assert value(sa, "stateless_gossip_messages_out_total") >= 1
        # It reached b by gossip or, if the mesh was not formed yet, by diff sync.
        via = value(sb, "stateless_messages_merged_total", origin="gossip") + value(
            sb, "stateless_messages_merged_total", origin="sync"
        )
        assert via == 1 and value(sb, "stateless_db_messages") == 1
        assert (
            value(sb, "stateless_gossip_messages_in_total")
            + value(sb, "stateless_sync_messages_fetched_total")
            >= 1
        )
        assert value(sa, "stateless_blob_bytes_served_total") >= len(data)
        assert value(sa, "stateless_blob_blocks_served_total") >= 1
        assert value(sb, "stateless_blob_bytes_fetched_total") >= len(data)
        assert value(sb, "stateless_blobs") == 1


def test_node_start_metrics_flags(tmp_path: Path) -> None:
    def config(*extra: str) -> NodeConfig:
        args = build_parser().parse_args(["node", "start", "--data-dir", str(tmp_path), *extra])
        return build_node_config(args)

    assert (config().metrics_host, config().metrics_port) == ("127.0.0.1", 2284)
    assert config("--rpc-port", "0").metrics_port == 0  # several nodes on one machine: never collide
    assert config("--rpc-port", "0", "--metrics-port", "9100").metrics_port == 9100
    assert config("--metrics-port", "off").metrics_port is None
    assert config("--metrics-port", "0", "--metrics-host", "0.0.0.0").metrics_host == "0.0.0.0"
    with pytest.raises(UsageError):
        config("--metrics-port", "http")
