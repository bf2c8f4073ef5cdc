"""UnixFS files as IPFS builds them: a streaming balanced DAG builder, dag-pb codec, and a range walker.

The layout is the one Kubo (`ipfs add --cid-version=1`) and Helia's importer produce with raw leaves:
the file is cut into fixed chunks, each a raw block; leaves are grouped left to right into dag-pb
nodes of at most `max_links` links, those nodes again, until one node remains. A group of one still
gets its own node (only a file of a single chunk is its own root), so every leaf is at the same depth.
Building the same groups while streaming needs one open list of links per level: a node is written as
soon as its list is full, the partial lists are closed bottom-up by `finish`.

dag-pb bytes are written by hand exactly as `@ipld/dag-pb` and go-codec-dagpb do (links before data,
every link with Hash, empty Name and Tsize), because the CID is the hash of those bytes: one byte of
difference and the CIDs no longer match what IPFS tools print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from protocols.blobs._cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    HASHES,
    MAX_BLOCK_BYTES,
    MAX_FANOUT,
    MAX_LINKS,
    MH_SHA2_256,
    Cid,
    block_cid,
    decode_varint,
    encode_varint,
    verify_block,
)
from protocols.errors import HubError

# UnixFS Data.DataType values (unixfs.proto).
_UNIXFS_RAW: Final = 0
_UNIXFS_FILE: Final = 2
_UNIXFS_TYPE_NAMES: Final = {1: "directory", 3: "metadata", 4: "symlink", 5: "HAMT sharded directory"}
_PROTOBUF_VARINT_BYTES: Final = 10
_U64_LIMIT: Final = 1 << 64


def _invalid(reason: str) -> HubError:
    return HubError("bad_request.invalid_param", reason)


def _corrupt(reason: str) -> HubError:
    return HubError("bad_request.blob_corrupt", reason)


@dataclass(frozen=True, slots=True)
class Block:
    """A block and its CID (the hash of exactly these bytes)."""

    cid: Cid
    data: bytes


@dataclass(frozen=True, slots=True)
class DagLink:
    """A link of a dag-pb node: the child's CID and `tsize`, the bytes of all blocks under it."""

    cid: Cid
    tsize: int


@dataclass(frozen=True, slots=True)
class DagNode:
    """A decoded UnixFS file node: its inline `data` comes first, then the file data of each link."""

    links: tuple[DagLink, ...]
    filesize: int
    blocksizes: tuple[int, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of a file: `length` bytes of the child's file data starting at `offset` within that child."""

    cid: Cid
    offset: int
    length: int


# --- protobuf -----------------------------------------------------------------------------------


def _field(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def _length_delimited(number: int, body: bytes) -> bytes:
    return _field(number, 2) + encode_varint(len(body)) + body


def _read_varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    value, pos = decode_varint(buf, pos, what, max_bytes=_PROTOBUF_VARINT_BYTES)
    if value >= _U64_LIMIT:
        raise _invalid(f"{what}: varint exceeds 64 bits")
    return value, pos


def _read_bytes(buf: bytes, pos: int, what: str) -> tuple[bytes, int]:
    length, pos = _read_varint(buf, pos, what)
    if pos + length > len(buf):
        raise _invalid(f"{what}: length {length} runs past the end of the block")
    return buf[pos : pos + length], pos + length


def encode_unixfs_file(filesize: int, blocksizes: tuple[int, ...], data: bytes = b"") -> bytes:
    """The UnixFS `Data` message of a file node, field for field as IPFS importers write it."""
    out = bytearray(_field(1, 0) + encode_varint(_UNIXFS_FILE))
    if data:
        out += _length_delimited(2, data)
    out += _field(3, 0) + encode_varint(filesize)
    for size in blocksizes:
        out += _field(4, 0) + encode_varint(size)
    return bytes(out)


def encode_dag_node(node: DagNode) -> bytes:
    """dag-pb bytes of a UnixFS file node: links (Hash, empty Name, Tsize) first, then the Data field."""
    if len(node.blocksizes) != len(node.links):
        raise ValueError("a DagNode needs one blocksize per link")
    out = bytearray()
    for link in node.links:
        body = _length_delimited(1, link.cid.to_bytes()) + _length_delimited(2, b"")
        body += _field(3, 0) + encode_varint(link.tsize)
        out += _length_delimited(2, body)
    out += _length_delimited(1, encode_unixfs_file(node.filesize, node.blocksizes, node.data))
    return bytes(out)


def _decode_link(body: bytes) -> DagLink:
    # go-codec-dagpb and @ipld/dag-pb accept fields only in order, each at most once; so do we.
    cid: Cid | None = None
    tsize = 0
    last = 0
    pos = 0
    while pos < len(body):
        key, pos = _read_varint(body, pos, "dag-pb link field")
        number, wire_type = key >> 3, key & 7
        if number <= last:
            raise _invalid("dag-pb link fields out of order or repeated")
        last = number
        if number == 1 and wire_type == 2:
            raw, pos = _read_bytes(body, pos, "dag-pb link Hash")
            cid = Cid.from_bytes(raw)
        elif number == 2 and wire_type == 2:
            name, pos = _read_bytes(body, pos, "dag-pb link Name")
            try:
                name.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid("dag-pb link Name is not UTF-8") from None
        elif number == 3 and wire_type == 0:
            tsize, pos = _read_varint(body, pos, "dag-pb link Tsize")
        else:
            raise _invalid(f"dag-pb link has unexpected field {number} (wire type {wire_type})")
    if cid is None:
        raise _invalid("dag-pb link has no Hash")
    return DagLink(cid, tsize)


def _skip_field(buf: bytes, pos: int, wire_type: int, what: str) -> int:
    if wire_type == 0:
        return _read_varint(buf, pos, what)[1]
    if wire_type == 2:
        return _read_bytes(buf, pos, what)[1]
    width = {1: 8, 5: 4}.get(wire_type)
    if width is None or pos + width > len(buf):
        raise _invalid(f"{what}: malformed protobuf (wire type {wire_type})")
    return pos + width


def _decode_unixfs(buf: bytes) -> tuple[int, bytes, int | None, list[int]]:
    kind: int | None = None
    data = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos, "UnixFS field")
        number, wire_type = key >> 3, key & 7
        if number == 1 and wire_type == 0:
            kind, pos = _read_varint(buf, pos, "UnixFS Type")
        elif number == 2 and wire_type == 2:
            data, pos = _read_bytes(buf, pos, "UnixFS Data")
        elif number == 3 and wire_type == 0:
            filesize, pos = _read_varint(buf, pos, "UnixFS filesize")
        elif number == 4 and wire_type in (0, 2):
            if wire_type == 0:
                size, pos = _read_varint(buf, pos, "UnixFS blocksizes")
                blocksizes.append(size)
            else:  # packed encoding: proto2 decoders must accept it
                packed, pos = _read_bytes(buf, pos, "UnixFS blocksizes")
                inner = 0
                while inner < len(packed):
                    size, inner = _read_varint(packed, inner, "UnixFS blocksizes")
                    blocksizes.append(size)
            if len(blocksizes) > MAX_FANOUT:
                raise _invalid(f"UnixFS node has more than {MAX_FANOUT} blocksizes")
        elif number in (1, 2, 3, 4):
            raise _invalid(f"UnixFS field {number} has the wrong wire type {wire_type}")
        else:  # hashType, fanout, mode, mtime and future fields: irrelevant to file bytes
            pos = _skip_field(buf, pos, wire_type, f"UnixFS field {number}")
    if kind is None:
        raise _invalid("UnixFS data has no Type")
    return kind, data, filesize, blocksizes


def decode_dag_node(data: bytes) -> DagNode:
    """Decode a dag-pb block holding a UnixFS file (or raw) node, checking that its sizes add up.

    HubError("bad_request.invalid_param", reason) on malformed protobuf, a node that is not a UnixFS
    file (directories, symlinks and HAMT shards are unsupported), more than MAX_FANOUT links, a
    blocksizes count that differs from the link count, sizes that do not add up to filesize, or a link
    CID that does not parse.
    """
    data = bytes(data)
    links: list[DagLink] = []
    unixfs: bytes | None = None
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos, "dag-pb field")
        number, wire_type = key >> 3, key & 7
        if wire_type != 2 or number not in (1, 2):
            raise _invalid(f"dag-pb node has unexpected field {number} (wire type {wire_type})")
        body, pos = _read_bytes(data, pos, "dag-pb field")
        if number == 1:
            if unixfs is not None:
                raise _invalid("dag-pb node has two Data fields")
            unixfs = body
        else:
            if unixfs is not None:
                raise _invalid("dag-pb node has Links after Data")
            if len(links) >= MAX_FANOUT:
                raise _invalid(f"dag-pb node has more than {MAX_FANOUT} links")
            links.append(_decode_link(body))
    if unixfs is None:
        raise _invalid("dag-pb node has no Data, so it is not a UnixFS file")
    kind, inline, filesize, blocksizes = _decode_unixfs(unixfs)
    if kind not in (_UNIXFS_FILE, _UNIXFS_RAW):
        name = _UNIXFS_TYPE_NAMES.get(kind, f"unknown type {kind}")
        raise _invalid(f"UnixFS {name} is not supported; only files are")
    if len(blocksizes) != len(links):
        raise _invalid(f"UnixFS node has {len(blocksizes)} blocksizes for {len(links)} links")
    total = sum(blocksizes) + len(inline)
    if filesize is None:
        filesize = total
    if total != filesize:
        raise _invalid(f"UnixFS sizes add up to {total} but filesize says {filesize}")
    if filesize >= _U64_LIMIT:
        raise _invalid("UnixFS file size exceeds 64 bits")
    return DagNode(tuple(links), filesize, tuple(blocksizes), inline)


def block_file_size(cid: Cid, data: bytes) -> int:
    """Bytes of file data under a block: a raw leaf's length, or a dag-pb node's UnixFS filesize."""
    if cid.codec == CODEC_RAW:
        return len(data)
    return decode_dag_node(data).filesize


# --- building -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """A finished child waiting for its parent: what the parent's link and blocksize need."""

    cid: Cid
    tsize: int
    filesize: int


class DagBuilder:
    """Streaming balanced UnixFS builder: feed bytes in any pieces, get finished blocks as soon as they exist.

    The last full chunk is held back until more bytes arrive, because a file of exactly one chunk is
    its own root and `finish` promises the root as the last block it returns. Memory: at most one chunk
    of bytes plus `max_links` link entries per level.
    """

    def __init__(
        self, mh_code: int = MH_SHA2_256, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS
    ) -> None:
        if mh_code not in HASHES.values():
            raise _invalid(f"unsupported multihash 0x{mh_code:x} (supported: sha2-256, blake3)")
        if not 1 <= chunk_size <= MAX_BLOCK_BYTES:
            raise ValueError(f"chunk_size must be 1..{MAX_BLOCK_BYTES}")
        if not 2 <= max_links <= MAX_FANOUT:
            raise ValueError(f"max_links must be 2..{MAX_FANOUT}")
        self._mh_code = mh_code
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._buffer = bytearray()
        self._levels: list[list[_Entry]] = []
        self._leaves = 0
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        """File bytes fed so far."""
        return self._size

    @property
    def buffered_bytes(self) -> int:
        """File bytes held in memory, not yet in a block (at most one chunk)."""
        return len(self._buffer)

    @property
    def pending_links(self) -> int:
        """Link entries held for nodes not yet written (at most max_links per level)."""
        return sum(len(level) for level in self._levels)

    @property
    def depth(self) -> int:
        """Levels of link lists opened so far (0 until the first leaf is cut)."""
        return len(self._levels)

    def feed(self, data: bytes) -> list[Block]:
        """Add file bytes; returns the blocks completed by them (raw leaves, then any full nodes)."""
        if self._finished:
            raise RuntimeError("DagBuilder.feed after finish")
        view = memoryview(data).cast("B")
        self._size += len(view)
        out: list[Block] = []
        chunk = self._chunk_size
        if len(self._buffer) + len(view) <= chunk:
            self._buffer += view
            return out
        pos = 0
        if self._buffer:
            pos = chunk - len(self._buffer)
            self._buffer += view[:pos]
            self._add_leaf(bytes(self._buffer), out)
            self._buffer.clear()
        # Strictly more than a chunk left: this one is not the last, so it cannot be the root.
        while len(view) - pos > chunk:
            self._add_leaf(bytes(view[pos : pos + chunk]), out)
            pos += chunk
        self._buffer += view[pos:]
        return out

    def finish(self) -> tuple[Cid, list[Block]]:
        """Close the file: the root CID and the blocks not yet returned, root last.

        Empty input gives the raw CID of b"" and a file of one chunk is that raw leaf, as in Kubo and
        Helia with raw leaves.
        """
        if self._finished:
            raise RuntimeError("DagBuilder.finish called twice")
        self._finished = True
        out: list[Block] = []
        if self._leaves == 0:
            data = bytes(self._buffer)
            self._buffer.clear()
            cid = block_cid(data, CODEC_RAW, self._mh_code)
            return cid, [Block(cid, data)]
        if self._buffer:
            self._add_leaf(bytes(self._buffer), out)
            self._buffer.clear()
        level = 0
        while True:
            top = len(self._levels) - 1
            entries = self._levels[level]
            if level == top and len(entries) == 1:
                root = entries[0].cid
                break
            if entries:
                self._levels[level] = []
                self._push(level + 1, self._add_node(entries, out), out)
            level += 1
        self._levels.clear()
        assert out and out[-1].cid == root, "the root is the last node built"
        return root, out

    def _add_leaf(self, chunk: bytes, out: list[Block]) -> None:
        cid = block_cid(chunk, CODEC_RAW, self._mh_code)
        out.append(Block(cid, chunk))
        self._leaves += 1
        self._push(0, _Entry(cid, len(chunk), len(chunk)), out)

    def _push(self, level: int, entry: _Entry, out: list[Block]) -> None:
        while True:
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(entry)
            if len(self._levels[level]) < self._max_links:
                return
            full = self._levels[level]
            self._levels[level] = []
            entry = self._add_node(full, out)
            level += 1

    def _add_node(self, entries: list[_Entry], out: list[Block]) -> _Entry:
        blocksizes = tuple(e.filesize for e in entries)
        filesize = sum(blocksizes)
        node = DagNode(tuple(DagLink(e.cid, e.tsize) for e in entries), filesize, blocksizes, b"")
        data = encode_dag_node(node)
        cid = block_cid(data, CODEC_DAG_PB, self._mh_code)
        out.append(Block(cid, data))
        return _Entry(cid, len(data) + sum(e.tsize for e in entries), filesize)


# --- reading ------------------------------------------------------------------------------------


def _child_ranges(node: DagNode, start: int, end: int) -> list[tuple[Cid, int, int, int]]:
    if not 0 <= start <= end <= node.filesize:
        raise _invalid(f"range [{start}, {end}) is not within the node's {node.filesize} bytes")
    found: list[tuple[Cid, int, int, int]] = []
    offset = len(node.data)  # the node's own data precedes its children's
    for link, size in zip(node.links, node.blocksizes, strict=True):
        if offset >= end:
            break
        if size and offset + size > start:
            found.append((link.cid, max(start, offset) - offset, min(end, offset + size) - offset, size))
        offset += size
    return found


def children_for_range(node: DagNode, start: int, end: int) -> list[tuple[Cid, int, int]]:
    """The children covering bytes [start, end) of `node`'s file data, in file order.

    Each is (child cid, start within the child, end within the child). The node's inline `data`
    occupies the first len(node.data) bytes and belongs to no child; children of size 0 are skipped.
    HubError invalid_param if the range is not within the node.
    """
    return [(cid, lo, hi) for cid, lo, hi, _ in _child_ranges(node, start, end)]


def _fetch(cid: Cid, get: Callable[[Cid], bytes]) -> bytes:
    data = get(cid)
    if not verify_block(cid, data):
        if len(data) > MAX_BLOCK_BYTES:
            raise _corrupt(f"block {cid} is {len(data)} bytes, over the {MAX_BLOCK_BYTES}-byte limit")
        raise _corrupt(f"block {cid} does not hash to its CID")
    return data


def iter_file_blocks(
    root: Cid,
    get: Callable[[Cid], bytes],
    *,
    start: int = 0,
    end: int | None = None,
    max_depth: int = 32,
) -> Iterator[tuple[Cid, bytes]]:
    """The file data of bytes [start, end) of the file under `root`, as (block cid, bytes) in file order.

    Blocks are fetched with `get` top-down, only those covering the range, and each is verified against
    its CID before use (HubError "bad_request.blob_corrupt" otherwise, also when a child's size differs
    from what its parent claims). The root is fetched and the range checked at once, so a bad range
    fails before the first block: HubError invalid_param "range past the end of the blob (size N)".
    Deeper than `max_depth` (which is how a cycle would show) is refused with invalid_param; too many
    links per node are refused by `decode_dag_node`. Memory: O(depth * links per node) pending spans.
    """
    if start < 0 or (end is not None and end < start):
        raise _invalid(f"invalid range start={start} end={end}")
    root_data = _fetch(root, get)
    size = block_file_size(root, root_data)
    stop = size if end is None else end
    if start > size or stop > size:
        raise _invalid(f"range past the end of the blob (size {size})")
    return _walk(root, root_data, size, start, stop, get, max_depth)


def _walk(
    root: Cid,
    root_data: bytes,
    size: int,
    start: int,
    end: int,
    get: Callable[[Cid], bytes],
    max_depth: int,
) -> Iterator[tuple[Cid, bytes]]:
    if start == end:
        return
    # (cid, block bytes if already fetched, start, end, file bytes the parent promised, depth)
    stack: list[tuple[Cid, bytes | None, int, int, int, int]] = [(root, root_data, start, end, size, 0)]
    while stack:
        cid, data, lo, hi, expected, depth = stack.pop()
        if data is None:
            data = _fetch(cid, get)
        if cid.codec == CODEC_RAW:
            if len(data) != expected:
                raise _corrupt(f"raw block {cid} holds {len(data)} bytes; its parent says {expected}")
            yield cid, data[lo:hi]
            continue
        node = decode_dag_node(data)
        if node.filesize != expected:
            raise _corrupt(f"node {cid} holds {node.filesize} bytes; its parent says {expected}")
        if lo < len(node.data):
            yield cid, node.data[lo : min(hi, len(node.data))]
        children = _child_ranges(node, lo, hi)
        if children and depth >= max_depth:
            raise _invalid(f"blob DAG deeper than {max_depth} levels (a cycle or an absurd layout)")
        for child, child_lo, child_hi, child_size in reversed(children):
            stack.append((child, None, child_lo, child_hi, child_size, depth + 1))
