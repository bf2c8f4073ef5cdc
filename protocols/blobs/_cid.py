"""CIDs as IPFS spells them: unsigned varints, multihashes, multibase text, and block hashing.

Only what blobs need is accepted: CIDv1 with the raw (0x55) or dag-pb (0x70) codec, hashed with
sha2-256 or BLAKE3 (32-byte digests), plus CIDv0 (`Qm...`, a bare sha2-256 multihash of a dag-pb block)
so that CIDs copied from older IPFS tools parse and print. Everything else is refused with a reason,
never guessed at: a CID names the bytes, so two spellings that decode alike must not both be accepted
silently as different names. Text is canonical: base32 lower case without padding after a `b`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Final

import blake3

from protocols.errors import HubError

CHUNK_SIZE: Final = 262_144
#: Kubo's balanced layout puts at most this many links in one node.
MAX_LINKS: Final = 174
#: Largest block we accept from anyone; a raw leaf we make is at most CHUNK_SIZE.
MAX_BLOCK_BYTES: Final = 1_048_576
#: A dag-pb node from a peer with more links than this is refused.
MAX_FANOUT: Final = 4096

CODEC_RAW: Final = 0x55
CODEC_DAG_PB: Final = 0x70
MH_SHA2_256: Final = 0x12
MH_BLAKE3: Final = 0x1E
HASHES: Final = {"sha2-256": MH_SHA2_256, "blake3": MH_BLAKE3}

_CODEC_NAMES: Final = {CODEC_RAW: "raw", CODEC_DAG_PB: "dag-pb"}
_HASH_NAMES: Final = {code: name for name, code in HASHES.items()}
_DIGEST_BYTES: Final = 32
# The multiformats unsigned-varint spec caps varints at 9 bytes (63 bits).
_MAX_VARINT_BYTES: Final = 9
_V0_TEXT_LENGTH: Final = 46
# Far above any CID we accept (74 characters in hex); bounds the quadratic base58 decode of hostile input.
_MAX_TEXT_LENGTH: Final = 256
_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {ch: i for i, ch in enumerate(_B58_ALPHABET)}


def _invalid(reason: str) -> HubError:
    return HubError("bad_request.invalid_param", reason)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 varint (multiformats and protobuf use the same encoding)."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int, what: str, *, max_bytes: int = _MAX_VARINT_BYTES) -> tuple[int, int]:
    """Read a minimally encoded unsigned varint at `pos`; returns (value, next position).

    HubError invalid_param naming `what` when it is truncated, longer than `max_bytes` or not minimal
    (a trailing zero byte would give one value two encodings).
    """
    value = 0
    shift = 0
    for i in range(max_bytes):
        if pos + i >= len(data):
            raise _invalid(f"{what}: truncated varint")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > 0:
                raise _invalid(f"{what}: varint not minimally encoded")
            return value, pos + i + 1
        shift += 7
    raise _invalid(f"{what}: varint longer than {max_bytes} bytes")


def _b58encode(raw: bytes) -> str:
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    number = int.from_bytes(raw, "big")
    digits: list[str] = []
    while number:
        number, rem = divmod(number, 58)
        digits.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    number = 0
    for ch in text:
        digit = _B58_INDEX.get(ch)
        if digit is None:
            raise _invalid(f"CID text has a character {ch!r} that is not base58btc")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _b32encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def _b32decode(text: str) -> bytes:
    """RFC 4648 base32 without padding, lower case; non-canonical spellings (stray bits) are refused."""
    if not text.isascii() or text != text.lower():
        raise _invalid("CID text after the 'b' prefix must be lower-case base32")
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as exc:
        raise _invalid(f"CID text is not valid base32: {exc}") from None
    if _b32encode(raw) != text:
        raise _invalid("CID text is not canonical base32")
    return raw


def hash_bytes(data: bytes, mh_code: int) -> bytes:
    """The 32-byte digest of `data` under multihash `mh_code` (sha2-256 or BLAKE3)."""
    if mh_code == MH_SHA2_256:
        return hashlib.sha256(data).digest()
    if mh_code == MH_BLAKE3:
        return blake3.blake3(data).digest()
    raise _invalid(f"unsupported multihash 0x{mh_code:x} (supported: sha2-256, blake3)")


def _check_fields(version: int, codec: int, mh_code: int, digest: bytes) -> None:
    if version not in (0, 1):
        raise _invalid(f"unsupported CID version {version} (supported: 0, 1)")
    if codec not in _CODEC_NAMES:
        raise _invalid(f"unsupported CID codec 0x{codec:x} (supported: raw 0x55, dag-pb 0x70)")
    if mh_code not in _HASH_NAMES:
        raise _invalid(f"unsupported multihash 0x{mh_code:x} (supported: sha2-256 0x12, blake3 0x1e)")
    if len(digest) != _DIGEST_BYTES:
        raise _invalid(f"{_HASH_NAMES[mh_code]} digest must be {_DIGEST_BYTES} bytes, got {len(digest)}")
    if version == 0 and (codec != CODEC_DAG_PB or mh_code != MH_SHA2_256):
        raise _invalid("a CIDv0 is always a sha2-256 hash of a dag-pb block")


@dataclass(frozen=True, slots=True, repr=False)
class Cid:
    """A content identifier: `digest` is the `mh_code` hash of a block that `codec` decodes.

    Construction validates, so every `Cid` value can be printed and sent; equal CIDs compare and hash
    equal, so they work as dictionary keys.
    """

    version: int
    codec: int
    mh_code: int
    digest: bytes

    def __post_init__(self) -> None:
        _check_fields(self.version, self.codec, self.mh_code, self.digest)

    def multihash(self) -> bytes:
        """The multihash: varint hash code, varint digest length, digest."""
        return encode_varint(self.mh_code) + encode_varint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        """Binary CID: v1 is varint version, varint codec, multihash; v0 is the bare multihash."""
        if self.version == 0:
            return self.multihash()
        return encode_varint(self.version) + encode_varint(self.codec) + self.multihash()

    def __str__(self) -> str:
        """Text CID: v1 as multibase base32 lower case ("b..."), v0 as bare base58btc ("Qm...")."""
        if self.version == 0:
            return _b58encode(self.multihash())
        return "b" + _b32encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"Cid({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse text CIDs: v0 `Qm...`, or v1 in multibase base32 (`b`/`B`), base58btc (`z`) or hex (`f`).

        HubError("bad_request.invalid_param") with the reason on anything malformed or unsupported.
        """
        if not isinstance(text, str) or not text:
            raise _invalid("CID text is empty")
        if len(text) > _MAX_TEXT_LENGTH:
            raise _invalid(f"CID text is longer than {_MAX_TEXT_LENGTH} characters")
        if len(text) == _V0_TEXT_LENGTH and text.startswith("Qm"):
            raw = _b58decode(text)
            if len(raw) != 2 + _DIGEST_BYTES or raw[:2] != bytes((MH_SHA2_256, _DIGEST_BYTES)):
                raise _invalid("CID text looks like a CIDv0 but is not a base58btc sha2-256 multihash")
            return cls.from_bytes(raw)
        prefix, body = text[0], text[1:]
        if not body:
            raise _invalid("CID text has a multibase prefix and nothing else")
        if prefix == "b":
            raw = _b32decode(body)
        elif prefix == "B":
            if body != body.upper():
                raise _invalid("CID text after the 'B' prefix must be upper-case base32")
            raw = _b32decode(body.lower())
        elif prefix == "z":
            raw = _b58decode(body)
        elif prefix in ("f", "F"):
            if body != (body.lower() if prefix == "f" else body.upper()) or len(body) % 2:
                raise _invalid("CID text is not canonical base16")
            try:
                raw = bytes.fromhex(body)
            except ValueError:
                raise _invalid("CID text is not valid base16") from None
            if raw.hex() != body.lower():  # fromhex skips whitespace
                raise _invalid("CID text is not canonical base16")
        else:
            raise _invalid(
                f"unsupported multibase prefix {prefix!r} (supported: b/B base32, z base58btc, f/F base16,"
                " or a CIDv0 'Qm...')"
            )
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Parse a binary CID (v1, or a v0 bare sha2-256 multihash); same errors as `parse`."""
        raw = bytes(raw)
        if len(raw) == 2 + _DIGEST_BYTES and raw[0] == MH_SHA2_256 and raw[1] == _DIGEST_BYTES:
            return cls(0, CODEC_DAG_PB, MH_SHA2_256, raw[2:])
        if not raw:
            raise _invalid("CID bytes are empty")
        version, pos = decode_varint(raw, 0, "CID version")
        if version != 1:
            raise _invalid(f"unsupported CID version {version} (supported: 0, 1)")
        codec, pos = decode_varint(raw, pos, "CID codec")
        if codec not in _CODEC_NAMES:
            raise _invalid(f"unsupported CID codec 0x{codec:x} (supported: raw 0x55, dag-pb 0x70)")
        mh_code, pos = decode_varint(raw, pos, "multihash code")
        if mh_code not in _HASH_NAMES:
            raise _invalid(f"unsupported multihash 0x{mh_code:x} (supported: sha2-256 0x12, blake3 0x1e)")
        length, pos = decode_varint(raw, pos, "multihash length")
        digest = raw[pos:]
        if length != _DIGEST_BYTES or len(digest) != length:
            raise _invalid(
                f"{_HASH_NAMES[mh_code]} digest must be {_DIGEST_BYTES} bytes;"
                f" declared {length}, present {len(digest)}"
            )
        return cls(1, codec, mh_code, digest)


def block_cid(data: bytes, codec: int, mh_code: int) -> Cid:
    """The CIDv1 of a block: `codec` says how to read it, `mh_code` how it is hashed."""
    return Cid(1, codec, mh_code, hash_bytes(data, mh_code))


def verify_block(cid: Cid, data: bytes) -> bool:
    """True if `data` is no larger than MAX_BLOCK_BYTES and hashes to `cid`'s digest."""
    return len(data) <= MAX_BLOCK_BYTES and hash_bytes(data, cid.mh_code) == cid.digest
