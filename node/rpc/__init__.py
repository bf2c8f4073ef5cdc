"""The gRPC API: HubService / AdminService (Farcaster-compatible), health and reflection."""

from node.rpc._hub_service import NodeInfo
from node.rpc._server import RpcAddress, serve_rpc
from node.rpc._status import ERRCODE_KEY, grpc_status

__all__ = ["ERRCODE_KEY", "NodeInfo", "RpcAddress", "grpc_status", "serve_rpc"]
