"""Key layout of the hub's single ordered keyspace.

The first byte names the table. Integers are big-endian so byte order equals numeric order, which makes
every "by fid" or "by target" listing a prefix scan already sorted by (timestamp, hash).
"""

from __future__ import annotations

import struct
from typing import Final

from protocols.errors import HubError
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr

# Tables.
T_MSG: Final = b"\x01"  # fid | store | ts | hash -> canonical Message bytes
T_CRDT: Final = b"\x02"  # fid | store | crdt key -> ts | hash of the message holding that key
T_HASH: Final = b"\x03"  # fid | hash -> store | ts   (lookup by CastId, duplicate detection)
T_BY_PARENT: Final = b"\x04"  # parent key | ts | hash | fid -> b""
T_BY_MENTION: Final = b"\x05"  # mentioned fid | ts | hash | fid -> b""
T_REACTION_BY_TARGET: Final = b"\x06"  # target key | ts | hash | fid -> reaction type (1 byte)
T_LINK_BY_TARGET: Final = b"\x07"  # target fid | ts | hash | fid -> link type
T_BY_SIGNER: Final = b"\x08"  # fid | signer | store | ts | hash -> b""
T_COUNT: Final = b"\x09"  # fid | store -> u32 number of messages in the store
T_ONCHAIN: Final = b"\x10"  # fid | event type | block | log index | tx hash -> OnChainEvent bytes
T_ONCHAIN_SEEN: Final = b"\x11"  # tx hash | log index -> b""   (duplicate detection)
T_SIGNER: Final = b"\x12"  # fid | key -> state byte | deciding OnChainEvent bytes
T_ID_REGISTER: Final = b"\x13"  # fid -> ID_REGISTER OnChainEvent bytes
T_SYNC: Final = b"\x14"  # sync id (ts | hash | fid | type) -> b""   (one per T_MSG row; see _trie.py)
T_TRIE: Final = b"\x15"  # prefix of a sync id (0..5 bytes) -> persisted Merkle trie node
T_TRIE_DIRTY: Final = b"\x16"  # leaf prefix (5 bytes) -> b""   (trie buckets changed since the last flush)
T_EVENT: Final = b"\x20"  # event id -> HubEvent bytes
T_META: Final = b"\x30"  # name -> value

META_LAST_EVENT_ID: Final = T_META + b"last_event_id"
META_MESSAGE_COUNT: Final = T_META + b"message_count"
META_FID_COUNT: Final = T_META + b"fid_count"
META_EVENTS_PRUNED_TO: Final = T_META + b"events_pruned_to"  # highest event id deleted by retention
META_SYNC_TRIE_VERSION: Final = T_META + b"sync_trie_version"  # set once T_SYNC/T_TRIE cover every message

SIGNER_ACTIVE: Final = b"\x01"
SIGNER_REMOVED: Final = b"\x02"

HASH_LEN: Final = 20
TS_HASH_LEN: Final = 24

# Message type -> store type.
STORE_OF_TYPE: Final[dict[int, int]] = {
    pb.MESSAGE_TYPE_CAST_ADD: rr.STORE_TYPE_CASTS,
    pb.MESSAGE_TYPE_CAST_REMOVE: rr.STORE_TYPE_CASTS,
    pb.MESSAGE_TYPE_REACTION_ADD: rr.STORE_TYPE_REACTIONS,
    pb.MESSAGE_TYPE_REACTION_REMOVE: rr.STORE_TYPE_REACTIONS,
    pb.MESSAGE_TYPE_LINK_ADD: rr.STORE_TYPE_LINKS,
    pb.MESSAGE_TYPE_LINK_REMOVE: rr.STORE_TYPE_LINKS,
    pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS: rr.STORE_TYPE_VERIFICATIONS,
    pb.MESSAGE_TYPE_VERIFICATION_REMOVE: rr.STORE_TYPE_VERIFICATIONS,
    pb.MESSAGE_TYPE_USER_DATA_ADD: rr.STORE_TYPE_USER_DATA,
}
REMOVE_TYPES: Final = frozenset(
    {
        pb.MESSAGE_TYPE_CAST_REMOVE,
        pb.MESSAGE_TYPE_REACTION_REMOVE,
        pb.MESSAGE_TYPE_LINK_REMOVE,
        pb.MESSAGE_TYPE_VERIFICATION_REMOVE,
    }
)


def u64(n: int) -> bytes:
    """Big-endian 8 bytes."""
    return struct.pack(">Q", n)


def u32(n: int) -> bytes:
    """Big-endian 4 bytes."""
    return struct.pack(">I", n)


def read_u64(b: bytes) -> int:
    """Inverse of `u64`."""
    return int(struct.unpack(">Q", b[:8])[0])


def read_u32(b: bytes) -> int:
    """Inverse of `u32`."""
    return int(struct.unpack(">I", b[:4])[0])


def ts_hash(data: pb.MessageData, digest: bytes) -> bytes:
    """timestamp | hash: sorts messages by time, ties broken by hash bytes."""
    return u32(data.timestamp) + digest


def cast_target_key(cast_id: pb.CastId) -> bytes:
    """Index key for a cast used as a parent or reaction target."""
    return b"c" + u64(cast_id.fid) + cast_id.hash


def url_target_key(url: str) -> bytes:
    """Index key for a URL used as a parent or reaction target.

    Length-prefixed: index keys continue after the target, so without the length one URL that is a
    prefix of another (or one crafted to look like ts|hash|fid bytes) would match the other's scans.
    """
    raw = url.encode()
    if len(raw) > 1024:  # stored URLs are <= 256 bytes; longer ones can only be bad queries
        raise HubError("bad_request.invalid_param", "url too long")
    return b"u" + len(raw).to_bytes(2, "big") + raw


def reaction_target_key(body: pb.ReactionBody) -> bytes:
    """The target of a reaction as an index key."""
    if body.WhichOneof("target") == "target_cast_id":
        return cast_target_key(body.target_cast_id)
    return url_target_key(body.target_url)


def crdt_key(data: pb.MessageData, digest: bytes) -> bytes:
    """The key under which messages of one store conflict: at most one message per key survives."""
    t = data.type
    if t == pb.MESSAGE_TYPE_CAST_ADD:
        return digest
    if t == pb.MESSAGE_TYPE_CAST_REMOVE:
        return bytes(data.cast_remove_body.target_hash)
    if t in (pb.MESSAGE_TYPE_REACTION_ADD, pb.MESSAGE_TYPE_REACTION_REMOVE):
        return bytes([data.reaction_body.type]) + reaction_target_key(data.reaction_body)
    if t in (pb.MESSAGE_TYPE_LINK_ADD, pb.MESSAGE_TYPE_LINK_REMOVE):
        kind = data.link_body.type.encode()
        return bytes([len(kind)]) + kind + u64(data.link_body.target_fid)
    if t == pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS:
        return bytes(data.verification_add_address_body.address)
    if t == pb.MESSAGE_TYPE_VERIFICATION_REMOVE:
        return bytes(data.verification_remove_body.address)
    if t == pb.MESSAGE_TYPE_USER_DATA_ADD:
        return bytes([data.user_data_body.type])
    raise HubError("bad_request.validation_failure.message_type", f"message type {t} is not stored")


def store_of(data: pb.MessageData) -> int:
    """The store (StoreType) a message belongs to."""
    try:
        return STORE_OF_TYPE[data.type]
    except KeyError:
        raise HubError(
            "bad_request.validation_failure.message_type", f"message type {data.type} is not stored"
        ) from None


def msg_key(fid: int, store: int, tsh: bytes) -> bytes:
    """Primary key of a stored message."""
    return T_MSG + u64(fid) + bytes([store]) + tsh


def link_key_parts(link_type: str, target_fid: int) -> bytes:
    """The CRDT key of a link (for GetLink)."""
    kind = link_type.encode()
    return bytes([len(kind)]) + kind + u64(target_fid)
