"""Hashing, signing and building messages the way Farcaster clients do.

The hash is BLAKE3 truncated to 20 bytes over the exact `data_bytes`; the signature is Ed25519 over that
hash. Building is used by our CLI, tests and benchmarks; validation lives in `_validation.py`.
"""

from __future__ import annotations

from typing import Final

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError

from protocols.proto import message_pb2 as pb

HASH_LENGTH: Final = 20


def blake3_160(data: bytes) -> bytes:
    """BLAKE3 digest truncated to 20 bytes, Farcaster's message hash."""
    return blake3.blake3(data).digest(length=HASH_LENGTH)


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte Ed25519 public key of `key`."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519_verify(public_key: bytes, signature: bytes, payload: bytes) -> bool:
    """True if `signature` is a valid Ed25519 signature of `payload` by the 32-byte `public_key`.

    Verification uses libsodium (through PyNaCl): about twice as fast as OpenSSL's here, and it releases
    the GIL, so batches verify in parallel on worker threads. libsodium also refuses small-order public
    keys and non-canonical encodings, which no honest signer produces.
    """
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        crypto_sign_open(bytes(signature) + bytes(payload), bytes(public_key))
    except (BadSignatureError, ValueError):
        return False
    return True


def sign_message_data(data: pb.MessageData, key: Ed25519PrivateKey) -> pb.Message:
    """Serialise `data` once and wrap it in a signed `Message` carrying those exact `data_bytes`."""
    data_bytes = data.SerializeToString()
    digest = blake3_160(data_bytes)
    message = pb.Message(
        hash=digest,
        hash_scheme=pb.HASH_SCHEME_BLAKE3,
        signature=key.sign(digest),
        signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
        signer=public_key_bytes(key),
        data_bytes=data_bytes,
    )
    message.data.CopyFrom(data)
    return message
