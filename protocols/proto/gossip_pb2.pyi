from protocols.proto import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GossipAddressInfo(_message.Message):
    __slots__ = ("address", "family", "port", "dns_name")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    DNS_NAME_FIELD_NUMBER: _ClassVar[int]
    address: str
    family: int
    port: int
    dns_name: str
    def __init__(self, address: _Optional[str] = ..., family: _Optional[int] = ..., port: _Optional[int] = ..., dns_name: _Optional[str] = ...) -> None: ...

class ContactInfoContentBody(_message.Message):
    __slots__ = ("gossip_address", "rpc_address", "excluded_hashes", "count", "hub_version", "network", "app_version", "timestamp", "peer_id", "score", "banned_until", "connected", "listen_addrs", "trie_root")
    GOSSIP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_HASHES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HUB_VERSION_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    APP_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BANNED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ADDRS_FIELD_NUMBER: _ClassVar[int]
    TRIE_ROOT_FIELD_NUMBER: _ClassVar[int]
    gossip_address: GossipAddressInfo
    rpc_address: GossipAddressInfo
    excluded_hashes: _containers.RepeatedScalarFieldContainer[str]
    count: int
    hub_version: str
    network: _message_pb2.FarcasterNetwork
    app_version: str
    timestamp: int
    peer_id: str
    score: int
    banned_until: int
    connected: bool
    listen_addrs: _containers.RepeatedScalarFieldContainer[str]
    trie_root: bytes
    def __init__(self, gossip_address: _Optional[_Union[GossipAddressInfo, _Mapping]] = ..., rpc_address: _Optional[_Union[GossipAddressInfo, _Mapping]] = ..., excluded_hashes: _Optional[_Iterable[str]] = ..., count: _Optional[int] = ..., hub_version: _Optional[str] = ..., network: _Optional[_Union[_message_pb2.FarcasterNetwork, str]] = ..., app_version: _Optional[str] = ..., timestamp: _Optional[int] = ..., peer_id: _Optional[str] = ..., score: _Optional[int] = ..., banned_until: _Optional[int] = ..., connected: _Optional[bool] = ..., listen_addrs: _Optional[_Iterable[str]] = ..., trie_root: _Optional[bytes] = ...) -> None: ...
