"""IPFS-compatible content addressing for blobs, as pure functions: no I/O.

`Cid` parses and prints CIDs (v1 base32, v0 `Qm...`); `DagBuilder` turns a byte stream into the same
blocks and root CID as `ipfs add --cid-version=1` (raw leaves, 256 KiB chunks, balanced DAG of at most
174 links per node), with sha2-256 or BLAKE3; `decode_dag_node`, `children_for_range` and
`iter_file_blocks` read such a DAG back, verifying every block, over any block source.
"""

from protocols.blobs._cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    HASHES,
    MAX_BLOCK_BYTES,
    MAX_FANOUT,
    MAX_LINKS,
    MH_BLAKE3,
    MH_SHA2_256,
    Cid,
    block_cid,
    hash_bytes,
    verify_block,
)
from protocols.blobs._dag import (
    Block,
    DagBuilder,
    DagLink,
    DagNode,
    Span,
    block_file_size,
    children_for_range,
    decode_dag_node,
    encode_dag_node,
    iter_file_blocks,
)

__all__ = [
    "CHUNK_SIZE",
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "HASHES",
    "MAX_BLOCK_BYTES",
    "MAX_FANOUT",
    "MAX_LINKS",
    "MH_BLAKE3",
    "MH_SHA2_256",
    "Block",
    "Cid",
    "DagBuilder",
    "DagLink",
    "DagNode",
    "Span",
    "block_cid",
    "block_file_size",
    "children_for_range",
    "decode_dag_node",
    "encode_dag_node",
    "hash_bytes",
    "iter_file_blocks",
    "verify_block",
]
