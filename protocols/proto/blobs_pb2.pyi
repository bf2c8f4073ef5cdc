from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BlobPutOptions(_message.Message):
    __slots__ = ("hash", "no_pin", "size_hint")
    HASH_FIELD_NUMBER: _ClassVar[int]
    NO_PIN_FIELD_NUMBER: _ClassVar[int]
    SIZE_HINT_FIELD_NUMBER: _ClassVar[int]
    hash: str
    no_pin: bool
    size_hint: int
    def __init__(self, hash: _Optional[str] = ..., no_pin: _Optional[bool] = ..., size_hint: _Optional[int] = ...) -> None: ...

class BlobPutRequest(_message.Message):
    __slots__ = ("options", "data")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    options: BlobPutOptions
    data: bytes
    def __init__(self, options: _Optional[_Union[BlobPutOptions, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlobRef(_message.Message):
    __slots__ = ("cid",)
    CID_FIELD_NUMBER: _ClassVar[int]
    cid: str
    def __init__(self, cid: _Optional[str] = ...) -> None: ...

class BlobGetRequest(_message.Message):
    __slots__ = ("cid", "offset", "length", "local_only")
    CID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    cid: str
    offset: int
    length: int
    local_only: bool
    def __init__(self, cid: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., local_only: _Optional[bool] = ...) -> None: ...

class BlobGetResponse(_message.Message):
    __slots__ = ("stat", "data")
    STAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    stat: BlobStat
    data: bytes
    def __init__(self, stat: _Optional[_Union[BlobStat, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class BlobStat(_message.Message):
    __slots__ = ("cid", "size", "blocks_total", "blocks_present", "complete", "pinned", "created", "bytes_stored")
    CID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_PRESENT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    BYTES_STORED_FIELD_NUMBER: _ClassVar[int]
    cid: str
    size: int
    blocks_total: int
    blocks_present: int
    complete: bool
    pinned: bool
    created: int
    bytes_stored: int
    def __init__(self, cid: _Optional[str] = ..., size: _Optional[int] = ..., blocks_total: _Optional[int] = ..., blocks_present: _Optional[int] = ..., complete: _Optional[bool] = ..., pinned: _Optional[bool] = ..., created: _Optional[int] = ..., bytes_stored: _Optional[int] = ...) -> None: ...

class BlobListRequest(_message.Message):
    __slots__ = ("pinned_only", "after", "limit")
    PINNED_ONLY_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    pinned_only: bool
    after: str
    limit: int
    def __init__(self, pinned_only: _Optional[bool] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class BlobListResponse(_message.Message):
    __slots__ = ("blobs", "next")
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[BlobStat]
    next: str
    def __init__(self, blobs: _Optional[_Iterable[_Union[BlobStat, _Mapping]]] = ..., next: _Optional[str] = ...) -> None: ...

class BlobProvidersResponse(_message.Message):
    __slots__ = ("peer_ids",)
    PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    peer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, peer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BlobGcRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BlobGcResponse(_message.Message):
    __slots__ = ("blobs_removed", "blocks_removed", "bytes_freed")
    BLOBS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_FREED_FIELD_NUMBER: _ClassVar[int]
    blobs_removed: int
    blocks_removed: int
    bytes_freed: int
    def __init__(self, blobs_removed: _Optional[int] = ..., blocks_removed: _Optional[int] = ..., bytes_freed: _Optional[int] = ...) -> None: ...
