"""Length-prefixed frames (p2p._framing) over a scripted in-memory stream."""

from __future__ import annotations

import pytest

from p2p import FrameError, FrameReader, encode_frame
from p2p._framing import MAX_VARINT_BYTES


class ScriptedStream:
    """A stream whose `read(n)` returns the scripted chunks in order (split when longer than `n`).

    After the script it reports end of stream: an empty read, or EOFError as py-libp2p's StreamEOF does.
    It records how many bytes it handed out, so a test can prove what the reader never asked for.
    """

    def __init__(self, chunks: list[bytes], *, eof_error: bool = False) -> None:
        self._chunks = [bytes(c) for c in chunks]
        self._eof_error = eof_error
        self.bytes_read = 0
        self.reads = 0
        self.reads_after_eof = 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        if not self._chunks:
            self.reads_after_eof += 1
            if self._eof_error:
                raise EOFError("stream ended")
            return b""
        chunk = self._chunks[0]
        if 0 < n < len(chunk):
            out, self._chunks[0] = chunk[:n], chunk[n:]
        else:
            out = self._chunks.pop(0)
        self.bytes_read += len(out)
        return out


def uvarint(n: int) -> bytes:
    """The frame prefix alone (encode_frame of an empty payload is just the varint 0)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


async def read_all(reader: FrameReader) -> list[bytes]:
    out = []
    while (frame := await reader.read()) is not None:
        out.append(frame)
    return out


@pytest.mark.parametrize(
    ("length", "prefix"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
    ],
)
def test_encode_frame_prefix_is_a_uvarint(length: int, prefix: bytes) -> None:
    payload = bytes(range(256)) * (length // 256 + 1)
    payload = payload[:length]
    assert encode_frame(payload) == prefix + payload
    assert uvarint(length) == prefix


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 16384, 70_000, 200_000])
async def test_round_trip(size: int) -> None:
    payload = bytes((i * 7) % 251 for i in range(size))
    reader = FrameReader(ScriptedStream([encode_frame(payload)]), max_size=1 << 20)
    assert await reader.read() == payload
    assert await reader.read() is None


async def test_round_trip_in_one_byte_chunks() -> None:
    payloads = [b"", b"a", b"hello world", bytes(200), b"\x80\x00\xff" * 50]
    wire = b"".join(encode_frame(p) for p in payloads)
    stream = ScriptedStream(one_byte_chunks(wire))
    assert await read_all(FrameReader(stream, max_size=1000)) == payloads
    assert stream.bytes_read == len(wire)


async def test_several_frames_in_one_chunk() -> None:
    payloads = [b"first", b"", b"third" * 40, b"\x00\x01"]
    wire = b"".join(encode_frame(p) for p in payloads)
    stream = ScriptedStream([wire])
    reader = FrameReader(stream, max_size=1000)
    assert await read_all(reader) == payloads
    # Everything came from the one read; the only other read is the one that found the end.
    assert stream.reads == 2
    assert stream.reads_after_eof == 1


async def test_frames_split_across_chunk_boundaries() -> None:
    a, b, c = b"x" * 300, b"y" * 5, b"z" * 130
    wire = encode_frame(a) + encode_frame(b) + encode_frame(c)
    # Cut inside the first varint, inside a payload, and between a varint and its payload.
    cuts = [1, 200, 302, 305, len(wire) - 131, len(wire) - 50]
    chunks = [wire[i:j] for i, j in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert await read_all(FrameReader(ScriptedStream(chunks), max_size=1000)) == [a, b, c]


@pytest.mark.parametrize("eof_error", [False, True])
async def test_clean_eof_is_none(eof_error: bool) -> None:
    assert await FrameReader(ScriptedStream([], eof_error=eof_error), max_size=10).read() is None
    stream = ScriptedStream([encode_frame(b"only")], eof_error=eof_error)
    reader = FrameReader(stream, max_size=10)
    assert await reader.read() == b"only"
    assert await reader.read() is None
    assert await reader.read() is None  # stays at the end


@pytest.mark.parametrize("eof_error", [False, True])
async def test_eof_inside_length_is_an_error(eof_error: bool) -> None:
    stream = ScriptedStream([b"\x80", b"\x80"], eof_error=eof_error)  # a varint that never ends
    with pytest.raises(FrameError) as info:
        await FrameReader(stream, max_size=1 << 30).read()
    assert not info.value.oversized
    assert info.value.code == "bad_request.parse_failure"


async def test_eof_inside_length_after_a_good_frame_is_an_error() -> None:
    stream = ScriptedStream([encode_frame(b"ok") + b"\xff"])
    reader = FrameReader(stream, max_size=1000)
    assert await reader.read() == b"ok"
    with pytest.raises(FrameError, match="length"):
        await reader.read()


@pytest.mark.parametrize("eof_error", [False, True])
@pytest.mark.parametrize("have", [0, 1, 9])
async def test_eof_inside_payload_is_an_error(eof_error: bool, have: int) -> None:
    stream = ScriptedStream(one_byte_chunks(uvarint(10) + b"p" * have), eof_error=eof_error)
    with pytest.raises(FrameError, match="inside a frame") as info:
        await FrameReader(stream, max_size=100).read()
    assert not info.value.oversized


@pytest.mark.parametrize("chunked", [False, True])
async def test_overlong_varint_is_an_error(chunked: bool) -> None:
    wire = b"\x80" * MAX_VARINT_BYTES + b"\x00" + b"payload"
    stream = ScriptedStream(one_byte_chunks(wire) if chunked else [wire])
    with pytest.raises(FrameError, match="too long") as info:
        await FrameReader(stream, max_size=1 << 30).read()
    assert not info.value.oversized
    if chunked:  # it gave up at the limit, without reading on
        assert stream.bytes_read == MAX_VARINT_BYTES


async def test_longest_varint_is_still_a_length() -> None:
    # Ten bytes is the most a 64-bit length needs: a valid, if absurd, length, so it is oversized.
    wire = b"\xff" * (MAX_VARINT_BYTES - 1) + b"\x01"
    with pytest.raises(FrameError) as info:
        await FrameReader(ScriptedStream([wire]), max_size=1 << 30).read()
    assert info.value.oversized


async def test_padded_varint_is_accepted() -> None:
    # Non-minimal encodings (continuation bits over zero groups) decode to the same length.
    stream = ScriptedStream([b"\x83\x80\x00" + b"abc"])
    assert await FrameReader(stream, max_size=10).read() == b"abc"


async def test_frame_at_the_limit_is_accepted() -> None:
    payload = b"m" * 64
    assert await FrameReader(ScriptedStream([encode_frame(payload)]), max_size=64).read() == payload


@pytest.mark.parametrize("declared", [65, 1 << 20, (1 << 63) - 1])
async def test_oversized_length_fails_before_the_payload_is_read(declared: int) -> None:
    header = uvarint(declared)
    # The payload is there to be read, in chunks of its own: the reader must not ask for any of it.
    stream = ScriptedStream([header, b"p" * 1000, b"p" * 1000])
    with pytest.raises(FrameError) as info:
        await FrameReader(stream, max_size=64).read()
    assert info.value.oversized
    assert str(declared) in info.value.message
    assert stream.bytes_read == len(header)
    assert stream.reads == 1


async def test_oversized_length_read_byte_by_byte_stops_at_the_varint() -> None:
    header = uvarint(10_000)
    stream = ScriptedStream(one_byte_chunks(header + b"p" * 50))
    with pytest.raises(FrameError) as info:
        await FrameReader(stream, max_size=100).read()
    assert info.value.oversized
    assert stream.bytes_read == len(header)


async def test_oversized_second_frame_after_a_good_one() -> None:
    stream = ScriptedStream([encode_frame(b"fine"), uvarint(101), b"p" * 101])
    reader = FrameReader(stream, max_size=100)
    assert await reader.read() == b"fine"
    with pytest.raises(FrameError) as info:
        await reader.read()
    assert info.value.oversized
    assert stream.bytes_read == len(encode_frame(b"fine")) + len(uvarint(101))
