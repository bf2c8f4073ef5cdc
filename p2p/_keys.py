"""The node's libp2p identity: one Ed25519 key, kept in the data dir so the peer id survives restarts.

The file holds the key in libp2p's standard protobuf encoding (`PrivateKey{type=Ed25519, data=...}`), the
same bytes py-libp2p's `save_identity` writes. The 64-byte Ed25519 form that go-libp2p and js-libp2p
write (seed followed by public key) is accepted too, so an identity can be carried over from those.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Final

from google.protobuf.message import DecodeError
from libp2p.crypto.ed25519 import Ed25519PrivateKey
from libp2p.crypto.ed25519 import create_new_key_pair as _new_ed25519_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.pb import crypto_pb2

from protocols.errors import HubError

PEER_KEY_FILE_MODE: Final = 0o600
_SEED_LENGTH: Final = 32

_log = logging.getLogger("stateless.p2p")


def _invalid(path: Path, what: str) -> HubError:
    return HubError("bad_request.invalid_param", f"{path}: {what}")


def _decode(path: Path, raw: bytes) -> KeyPair:
    """The key pair encoded in `raw`, or HubError naming `path` and what is wrong with it."""
    if not raw:
        raise _invalid(path, "peer key file is empty (delete it to create a new peer identity)")
    try:
        message = crypto_pb2.PrivateKey.FromString(raw)
    except DecodeError:
        raise _invalid(path, "not a libp2p private key (protobuf does not decode)") from None
    # Re-encoding must give back the file byte for byte: anything else means trailing garbage, unknown
    # fields or a truncated/edited file that happened to decode.
    if message.SerializeToString() != raw:
        raise _invalid(path, "not a libp2p private key (unexpected or trailing bytes)")
    if message.key_type != KeyType.Ed25519.value:
        raise _invalid(path, f"peer key must be Ed25519, found libp2p key type {message.key_type}")
    data = bytes(message.data)
    if len(data) not in (_SEED_LENGTH, 2 * _SEED_LENGTH):
        raise _invalid(path, f"Ed25519 private key must be 32 or 64 bytes, found {len(data)}")
    try:
        private_key = Ed25519PrivateKey.from_bytes(data[:_SEED_LENGTH])
    except Exception as e:  # PyNaCl raises its own types; never let them out
        raise _invalid(path, f"invalid Ed25519 private key ({e})") from None
    public_key = private_key.get_public_key()
    if len(data) == 2 * _SEED_LENGTH and data[_SEED_LENGTH:] != public_key.to_bytes():
        raise _invalid(path, "public half of the 64-byte Ed25519 key does not match its seed")
    return KeyPair(private_key, public_key)


def _read(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise _invalid(path, "peer key path exists but is not a regular file")
        if mode & 0o077:
            _log.warning(
                "peer key file %s is readable by other users (mode %o); use chmod 600", path, mode & 0o777
            )
        return path.read_bytes()
    except OSError as e:
        raise _invalid(path, f"cannot read peer key file ({e.strerror or e})") from None


def _create(path: Path) -> KeyPair | None:
    """Write a new key to `path`; None if another process created the file first (then load that one).

    The key is written to a temporary file, synced, and hard-linked into place: linking fails if `path`
    exists, so an existing identity is never replaced, and a crash never leaves a half-written key behind.
    """
    key_pair = _new_ed25519_key_pair()
    payload = key_pair.private_key.serialize()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PEER_KEY_FILE_MODE)
        try:
            # The mode given to os.open is filtered by the umask; the key must end up exactly 0600.
            os.fchmod(fd, PEER_KEY_FILE_MODE)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise _invalid(path, f"cannot create peer key file ({e.strerror or e})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _log.info("created new peer identity in %s", path)
    return key_pair


def load_or_create_peer_key(path: Path) -> KeyPair:
    """The node's libp2p Ed25519 key pair stored at `path`, created (mode 0600, parents too) on first use.

    An existing file is only ever read, never replaced. A file that is unreadable or does not hold an
    Ed25519 libp2p private key raises HubError `bad_request.invalid_param` with the path and the reason.
    """
    path = Path(path)
    try:
        path.lstat()
    except FileNotFoundError:
        created = _create(path)
        if created is not None:
            return created
    except OSError:
        pass  # _read reports it with the path
    return _decode(path, _read(path))
