from protocols.proto import gossip_pb2 as _gossip_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageBundle(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, messages: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ContactInfo(_message.Message):
    __slots__ = ("body", "peer_id", "trie_root", "message_count", "listen_addrs", "protocol_version")
    BODY_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIE_ROOT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LISTEN_ADDRS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    body: _gossip_pb2.ContactInfoContentBody
    peer_id: str
    trie_root: bytes
    message_count: int
    listen_addrs: _containers.RepeatedScalarFieldContainer[str]
    protocol_version: int
    def __init__(self, body: _Optional[_Union[_gossip_pb2.ContactInfoContentBody, _Mapping]] = ..., peer_id: _Optional[str] = ..., trie_root: _Optional[bytes] = ..., message_count: _Optional[int] = ..., listen_addrs: _Optional[_Iterable[str]] = ..., protocol_version: _Optional[int] = ...) -> None: ...

class TrieChildEntry(_message.Message):
    __slots__ = ("byte", "count", "hash")
    BYTE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    byte: int
    count: int
    hash: bytes
    def __init__(self, byte: _Optional[int] = ..., count: _Optional[int] = ..., hash: _Optional[bytes] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("trie_node", "sync_ids", "messages", "push")
    TRIE_NODE_FIELD_NUMBER: _ClassVar[int]
    SYNC_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    trie_node: bytes
    sync_ids: SyncIdsQuery
    messages: SyncIdList
    push: MessageBundle
    def __init__(self, trie_node: _Optional[bytes] = ..., sync_ids: _Optional[_Union[SyncIdsQuery, _Mapping]] = ..., messages: _Optional[_Union[SyncIdList, _Mapping]] = ..., push: _Optional[_Union[MessageBundle, _Mapping]] = ...) -> None: ...

class SyncIdsQuery(_message.Message):
    __slots__ = ("prefix", "after", "limit")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    after: bytes
    limit: int
    def __init__(self, prefix: _Optional[bytes] = ..., after: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class SyncIdList(_message.Message):
    __slots__ = ("sync_ids",)
    SYNC_IDS_FIELD_NUMBER: _ClassVar[int]
    sync_ids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, sync_ids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TrieNodeAnswer(_message.Message):
    __slots__ = ("prefix", "count", "hash", "children")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    prefix: bytes
    count: int
    hash: bytes
    children: _containers.RepeatedCompositeFieldContainer[TrieChildEntry]
    def __init__(self, prefix: _Optional[bytes] = ..., count: _Optional[int] = ..., hash: _Optional[bytes] = ..., children: _Optional[_Iterable[_Union[TrieChildEntry, _Mapping]]] = ...) -> None: ...

class SyncIdsAnswer(_message.Message):
    __slots__ = ("sync_ids", "more", "bucket_count", "bucket_hash")
    SYNC_IDS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNT_FIELD_NUMBER: _ClassVar[int]
    BUCKET_HASH_FIELD_NUMBER: _ClassVar[int]
    sync_ids: _containers.RepeatedScalarFieldContainer[bytes]
    more: bool
    bucket_count: int
    bucket_hash: bytes
    def __init__(self, sync_ids: _Optional[_Iterable[bytes]] = ..., more: _Optional[bool] = ..., bucket_count: _Optional[int] = ..., bucket_hash: _Optional[bytes] = ...) -> None: ...

class PushAnswer(_message.Message):
    __slots__ = ("merged", "rejected")
    MERGED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    merged: int
    rejected: int
    def __init__(self, merged: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class SyncError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("trie_node", "sync_ids", "messages", "push", "error")
    TRIE_NODE_FIELD_NUMBER: _ClassVar[int]
    SYNC_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    trie_node: TrieNodeAnswer
    sync_ids: SyncIdsAnswer
    messages: MessageBundle
    push: PushAnswer
    error: SyncError
    def __init__(self, trie_node: _Optional[_Union[TrieNodeAnswer, _Mapping]] = ..., sync_ids: _Optional[_Union[SyncIdsAnswer, _Mapping]] = ..., messages: _Optional[_Union[MessageBundle, _Mapping]] = ..., push: _Optional[_Union[PushAnswer, _Mapping]] = ..., error: _Optional[_Union[SyncError, _Mapping]] = ...) -> None: ...

class BlockRequest(_message.Message):
    __slots__ = ("want", "have")
    WANT_FIELD_NUMBER: _ClassVar[int]
    HAVE_FIELD_NUMBER: _ClassVar[int]
    want: _containers.RepeatedScalarFieldContainer[bytes]
    have: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, want: _Optional[_Iterable[bytes]] = ..., have: _Optional[_Iterable[bytes]] = ...) -> None: ...

class BlockEntry(_message.Message):
    __slots__ = ("cid", "data")
    CID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    data: bytes
    def __init__(self, cid: _Optional[bytes] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlockResponse(_message.Message):
    __slots__ = ("blocks", "dont_have", "have")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    DONT_HAVE_FIELD_NUMBER: _ClassVar[int]
    HAVE_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[BlockEntry]
    dont_have: _containers.RepeatedScalarFieldContainer[bytes]
    have: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, blocks: _Optional[_Iterable[_Union[BlockEntry, _Mapping]]] = ..., dont_have: _Optional[_Iterable[bytes]] = ..., have: _Optional[_Iterable[bytes]] = ...) -> None: ...
