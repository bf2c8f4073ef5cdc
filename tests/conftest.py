"""Shared fixtures: a real node (LMDB under tmp_path, libp2p host and gRPC on 127.0.0.1 port 0)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio

from node.config import NodeConfig
from node.runner import NodeHandle, open_node
from protocols.proto import rpc_pb2_grpc


class Client:
    """Blocking gRPC stubs called from trio through worker threads (the server needs the trio loop free)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.hub = rpc_pb2_grpc.HubServiceStub(self.channel)
        self.admin = rpc_pb2_grpc.AdminServiceStub(self.channel)

    async def call(self, method: Callable[..., Any], request: Any, timeout: float = 10.0) -> Any:  # noqa: ASYNC109
        """`await client.call(client.hub.GetCast, req)`."""
        return await trio.to_thread.run_sync(functools.partial(method, request, timeout=timeout))

    def close(self) -> None:
        self.channel.close()


def node_config(data_dir: Path, **kw: Any) -> NodeConfig:
    """A config for tests: loopback, any free ports."""
    return NodeConfig(data_dir=data_dir, rpc_port=0, gossip_port=0, **kw)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[NodeHandle]:
    async with open_node(node_config(tmp_path / "node")) as handle:
        yield handle


@pytest.fixture
async def client(node: NodeHandle) -> AsyncIterator[Client]:
    c = Client(node.rpc_target)
    try:
        yield c
    finally:
        c.close()
