"""Signer key files: one Ed25519 key per JSON file, readable only by its owner.

Format: `{"type": "ed25519", "public_key": "0x<64 hex>", "private_key": "0x<64 hex>"}`. The public key is
stored next to the private key so people can read it off the file (to register it), and loading checks
that the two still belong together, which catches hand-edited or truncated files before they sign anything.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from protocols.errors import HubError
from protocols.messages._signing import public_key_bytes

KEY_TYPE: Final = "ed25519"
KEY_FILE_MODE: Final = 0o600
_KEY_LENGTH: Final = 32


def _invalid(path: Path, what: str) -> HubError:
    return HubError("bad_request.invalid_param", f"{path}: {what}")


def _parse_hex(value: str, length: int) -> bytes | None:
    """`value` ("0x" optional) decoded to exactly `length` bytes, or None if it is not that."""
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) != 2 * length:
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def public_key_hex(key: Ed25519PrivateKey) -> str:
    """The 32-byte public key of `key` as 0x-prefixed lowercase hex."""
    return "0x" + public_key_bytes(key).hex()


def parse_public_key_hex(s: str) -> bytes:
    """Decode a 32-byte Ed25519 public key written as hex, with or without a 0x prefix."""
    raw = _parse_hex(s.strip(), _KEY_LENGTH)
    if raw is None:
        raise HubError(
            "bad_request.invalid_param", f"public key must be 32 bytes of hex (64 hex digits), got {s!r}"
        )
    return raw


def _encode(key: Ed25519PrivateKey) -> bytes:
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    document = {"type": KEY_TYPE, "public_key": public_key_hex(key), "private_key": "0x" + private.hex()}
    return (json.dumps(document, indent=2) + "\n").encode()


def _write_fd(fd: int, payload: bytes) -> None:
    with os.fdopen(fd, "wb") as f:
        # Explicit chmod because the mode given to os.open is filtered by the umask and the file must
        # end up exactly owner read/write whatever the umask is.
        os.fchmod(f.fileno(), KEY_FILE_MODE)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def generate_key_file(path: Path, *, force: bool = False) -> Ed25519PrivateKey:
    """Create a new Ed25519 key, write it to `path` with mode 0600 and return it.

    Parent directories are created. An existing file is kept (HubError `bad_request.invalid_param`) unless
    `force` is set; then it is replaced atomically, so a crash never leaves a half-written key behind.
    """
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    payload = _encode(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not force:
            # O_EXCL makes "refuse to overwrite" atomic: no window between checking and creating.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
            except FileExistsError:
                raise _invalid(path, "already exists; refusing to overwrite it (use --force)") from None
            try:
                _write_fd(fd, payload)
            except BaseException:
                with contextlib.suppress(OSError):
                    path.unlink()
                raise
        else:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
            try:
                _write_fd(fd, payload)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
    except OSError as e:
        raise _invalid(path, f"cannot write key file: {e.strerror or e}") from None
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """Read a key file written by `generate_key_file`.

    Raises HubError `bad_request.invalid_param` ("<path>: <what is wrong>") when the file is missing or
    unreadable, is not a JSON key document, has another key type, or its public key does not match.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _invalid(path, "key file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise _invalid(path, f"cannot read key file: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise _invalid(path, "not a key file (invalid JSON)") from None
    if not isinstance(document, dict):
        raise _invalid(path, "not a key file (expected a JSON object)")
    key_type = document.get("type")
    if key_type != KEY_TYPE:
        raise _invalid(path, f"unsupported key type {key_type!r}; expected {KEY_TYPE!r}")
    private_hex = document.get("private_key")
    private = _parse_hex(private_hex, _KEY_LENGTH) if isinstance(private_hex, str) else None
    if private is None:
        raise _invalid(path, "private_key must be 32 bytes of hex")
    key = Ed25519PrivateKey.from_private_bytes(private)
    public_hex = document.get("public_key")
    public = _parse_hex(public_hex, _KEY_LENGTH) if isinstance(public_hex, str) else None
    if public is None:
        raise _invalid(path, "public_key must be 32 bytes of hex")
    if public != public_key_bytes(key):
        raise _invalid(path, "public_key does not match private_key (file damaged or edited?)")
    return key
