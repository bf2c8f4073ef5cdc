"""Deterministic test accounts for devnets: fids 1..K, each with one Ed25519 signer key.

DEVNET ONLY. The keys are derived from a fixed, published seed, so anyone can compute them: they exist so a
fresh devnet has accounts that can post at once, and so the same fid has the same key in every devnet
(scripts and docs can refer to `keys/fid-1.key`). A genesis written here says `"network": "devnet"`, which
a node serving mainnet or testnet refuses to load.

    genesis = write_devnet_accounts(Path(".devnet"), 3)
    # .devnet/genesis.json registers fids 1, 2, 3; .devnet/keys/fid-1.key ... are `stateless keys` files
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from node.keys import KEY_FILE_MODE, KEY_TYPE, public_key_hex
from protocols.messages import public_key_bytes

#: Public on purpose: the derivation is part of the devnet's contract (same fid, same key, everywhere).
DEVNET_KEY_SEED: Final = b"stateless-hub devnet test account (INSECURE, public seed) v1"
#: Storage units each test account gets: room for plenty of casts, reactions and links.
DEFAULT_STORAGE_UNITS: Final = 10
MAX_ACCOUNTS: Final = 1000
GENESIS_FILE: Final = "genesis.json"
KEYS_DIR: Final = "keys"


@dataclass(frozen=True, slots=True)
class DevnetAccount:
    """A test account: its fid, its signer key and, once written, the key file."""

    fid: int
    key: Ed25519PrivateKey
    key_file: Path | None = None

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key (the signer registered in genesis)."""
        return public_key_bytes(self.key)


@dataclass(frozen=True, slots=True)
class DevnetGenesis:
    """What `write_devnet_accounts` wrote: the genesis file and the accounts with their key files."""

    path: Path
    accounts: list[DevnetAccount]


def devnet_key(fid: int) -> Ed25519PrivateKey:
    """The signer key of test account `fid`: SHA-256 of the public seed and the fid. Devnets only."""
    if fid <= 0:
        raise ValueError(f"fid must be positive, got {fid}")
    seed = hashlib.sha256(DEVNET_KEY_SEED + b":fid=" + str(fid).encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def devnet_accounts(count: int, *, first_fid: int = 1) -> list[DevnetAccount]:
    """`count` test accounts with consecutive fids from `first_fid` (keys not written anywhere)."""
    if not 0 <= count <= MAX_ACCOUNTS:
        raise ValueError(f"number of test accounts must be from 0 to {MAX_ACCOUNTS}, got {count}")
    return [DevnetAccount(fid, devnet_key(fid)) for fid in range(first_fid, first_fid + count)]


def genesis_document(
    accounts: Sequence[DevnetAccount], *, storage_units: int = DEFAULT_STORAGE_UNITS
) -> dict[str, object]:
    """The genesis JSON document (node/genesis.py format) registering each account's signer."""
    return {
        "network": "devnet",
        "accounts": [
            {"fid": a.fid, "signers": [public_key_hex(a.key)], "storage_units": storage_units}
            for a in accounts
        ],
    }


def _write_atomically(path: Path, payload: bytes, mode: int) -> None:
    # Written beside the target and renamed, so a reader (a node loading genesis) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # whatever the umask says
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_genesis(
    path: Path, accounts: Sequence[DevnetAccount], *, storage_units: int = DEFAULT_STORAGE_UNITS
) -> Path:
    """Write a devnet genesis file registering `accounts`; returns `path`."""
    doc = genesis_document(accounts, storage_units=storage_units)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, (json.dumps(doc, indent=2) + "\n").encode(), 0o644)
    return path


def write_key_file(path: Path, key: Ed25519PrivateKey) -> Path:
    """Write `key` in the format of `stateless keys new` (JSON, mode 0600), replacing any file there."""
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    document = {"type": KEY_TYPE, "public_key": public_key_hex(key), "private_key": "0x" + private.hex()}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, (json.dumps(document, indent=2) + "\n").encode(), KEY_FILE_MODE)
    return path


def key_file_path(directory: Path, fid: int) -> Path:
    """Where `write_devnet_accounts(directory, ...)` puts the key of `fid`."""
    return directory / KEYS_DIR / f"fid-{fid}.key"


def write_devnet_accounts(
    directory: Path, count: int, *, storage_units: int = DEFAULT_STORAGE_UNITS
) -> DevnetGenesis:
    """Write `directory/genesis.json` with `count` test accounts and `directory/keys/fid-<fid>.key` for each.

    Deterministic, so running it again over the same directory rewrites identical files.
    """
    accounts = [
        replace(a, key_file=write_key_file(key_file_path(directory, a.fid), a.key))
        for a in devnet_accounts(count)
    ]
    path = write_genesis(directory / GENESIS_FILE, accounts, storage_units=storage_units)
    return DevnetGenesis(path=path, accounts=accounts)
