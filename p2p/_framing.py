"""Length-prefixed frames on libp2p streams: an unsigned varint length, then that many bytes.

Every frame size is bounded before any of it is buffered, so a peer cannot make us allocate more than
`max_size` bytes per stream by announcing a huge length.
"""

from __future__ import annotations

from typing import Any, Final

from protocols.errors import HubError

MAX_VARINT_BYTES: Final = 10
_READ_CHUNK: Final = 64 * 1024


class FrameError(HubError):
    """The peer broke the framing (bad varint, oversized or truncated frame)."""

    def __init__(self, message: str, *, oversized: bool = False) -> None:
        super().__init__("bad_request.parse_failure", message)
        self.oversized = oversized


def encode_frame(payload: bytes) -> bytes:
    """`payload` prefixed with its length as an unsigned varint."""
    n = len(payload)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            break
    return bytes(out) + payload


class FrameReader:
    """Reads frames from one stream, buffering what arrives beyond the current frame."""

    def __init__(self, stream: Any, *, max_size: int) -> None:
        self._stream = stream
        self._max = max_size
        self._buf = bytearray()

    async def _fill(self) -> bool:
        """Read more bytes; False at end of stream."""
        try:
            chunk = await self._stream.read(_READ_CHUNK)
        except EOFError:
            return False
        if not chunk:
            return False
        self._buf += chunk
        return True

    async def read(self) -> bytes | None:
        """The next frame's payload, or None if the stream ended cleanly between frames."""
        length = 0
        shift = 0
        pos = 0
        while True:
            if pos >= len(self._buf):
                if not await self._fill():
                    if pos == 0 and not self._buf:
                        return None
                    raise FrameError("stream ended inside a frame length")
                continue
            byte = self._buf[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if pos >= MAX_VARINT_BYTES:
                raise FrameError("frame length varint is too long")
        if length > self._max:
            raise FrameError(f"frame of {length} bytes exceeds the limit of {self._max}", oversized=True)
        while len(self._buf) < pos + length:
            if not await self._fill():
                raise FrameError("stream ended inside a frame")
        payload = bytes(self._buf[pos : pos + length])
        del self._buf[: pos + length]
        return payload
