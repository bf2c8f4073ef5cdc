"""EIP-712 verification claims: digest known answers, sign/verify round trips, and rejection without leaks."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from protocols.errors import HubError
from protocols.messages import (
    EIP712_DOMAIN_SALT,
    sign_eth_address_claim,
    verification_claim_digest,
    verify_eth_address_claim,
)
from protocols.proto import message_pb2 as pb

PRIVATE_KEY = bytes([1]) * 32
#: The well-known address of the secp256k1 key 0x0101...01.
ADDRESS = bytes.fromhex("1a642f0e3c3af545e7acbd38b07251b3990914f1")
FID = 1234
BLOCK_HASH = bytes([2]) * 32
NETWORK = pb.FARCASTER_NETWORK_DEVNET
#: Computed once with eth_account and cross-checked below by hashing the EIP-712 encoding by hand.
KNOWN_DIGEST = "36516b4c603b0963a66342e27a55523671289eb4a18e670a4e76d854fa91d7b9"
#: RFC 6979 makes ECDSA deterministic, so the signature of the fixed claim is a known answer too.
KNOWN_SIGNATURE = (
    "34bbda3f532fd15fd1e317bbae0492c8c9cbf4a4ad1dc4473fcea765e6424a0d"
    "069e5a04d726623f127371143839cc3721ff0431313bbd795112f8b3e697b5d21b"
)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _manual_digest(fid: int, address: bytes, block_hash: bytes, network: int) -> bytes:
    """EIP-712 written out from the spec, independent of eth_account's typed-data encoder."""
    domain_type = keccak(b"EIP712Domain(string name,string version,bytes32 salt)")
    domain_separator = keccak(
        domain_type + keccak(b"Farcaster Verify Ethereum Address") + keccak(b"2.0.0") + EIP712_DOMAIN_SALT
    )
    claim_type = keccak(b"VerificationClaim(uint256 fid,address address,bytes32 blockHash,uint8 network)")
    struct_hash = keccak(claim_type + _word(fid) + bytes(12) + address + block_hash + _word(network))
    digest: bytes = keccak(b"\x19\x01" + domain_separator + struct_hash)
    return digest


def test_digest_known_answer() -> None:
    digest = verification_claim_digest(FID, ADDRESS, BLOCK_HASH, NETWORK)
    assert digest.hex() == KNOWN_DIGEST
    assert digest == _manual_digest(FID, ADDRESS, BLOCK_HASH, NETWORK)


@pytest.mark.parametrize(
    ("fid", "network"), [(1, pb.FARCASTER_NETWORK_MAINNET), (2**64 - 1, 2), (987654, 3), (0, 255)]
)
def test_digest_matches_spec_encoding(fid: int, network: int) -> None:
    address = bytes(range(20))
    block_hash = bytes(range(100, 132))
    assert verification_claim_digest(fid, address, block_hash, network) == _manual_digest(
        fid, address, block_hash, network
    )


def test_sign_known_answer_and_verify() -> None:
    address, signature = sign_eth_address_claim(PRIVATE_KEY, FID, BLOCK_HASH, NETWORK)
    assert address == ADDRESS
    assert len(signature) == 65
    assert signature.hex() == KNOWN_SIGNATURE
    assert verify_eth_address_claim(FID, ADDRESS, BLOCK_HASH, NETWORK, signature)


def test_recovery_id_zero_or_one_accepted() -> None:
    signature = bytes.fromhex(KNOWN_SIGNATURE)
    bare = signature[:64] + bytes([signature[64] - 27])
    assert bare[64] in (0, 1)
    assert verify_eth_address_claim(FID, ADDRESS, BLOCK_HASH, NETWORK, bare)


@pytest.mark.parametrize(
    ("fid", "address", "block_hash", "network"),
    [
        (FID + 1, ADDRESS, BLOCK_HASH, NETWORK),
        (FID, bytes(20), BLOCK_HASH, NETWORK),
        (FID, ADDRESS, bytes(32), NETWORK),
        (FID, ADDRESS, BLOCK_HASH, pb.FARCASTER_NETWORK_MAINNET),
    ],
    ids=["fid", "address", "block_hash", "network"],
)
def test_any_changed_field_fails(fid: int, address: bytes, block_hash: bytes, network: int) -> None:
    signature = bytes.fromhex(KNOWN_SIGNATURE)
    assert verify_eth_address_claim(FID, ADDRESS, BLOCK_HASH, NETWORK, signature)
    assert not verify_eth_address_claim(fid, address, block_hash, network, signature)


def test_signature_by_another_key_fails() -> None:
    other_address, other_signature = sign_eth_address_claim(bytes([7]) * 32, FID, BLOCK_HASH, NETWORK)
    assert other_address != ADDRESS
    assert verify_eth_address_claim(FID, other_address, BLOCK_HASH, NETWORK, other_signature)
    assert not verify_eth_address_claim(FID, ADDRESS, BLOCK_HASH, NETWORK, other_signature)


_GOOD = bytes.fromhex(KNOWN_SIGNATURE)
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.mark.parametrize(
    "signature",
    [
        b"",
        _GOOD[:64],
        _GOOD + b"\x00",
        _GOOD[:64] + b"\x1d",  # v = 29
        _GOOD[:64] + b"\x02",
        bytes(65),
        b"\xff" * 64 + b"\x1b",
        _SECP256K1_N.to_bytes(32, "big") + _GOOD[32:],  # r out of range
        _GOOD[:32] + bytes(32) + _GOOD[64:],  # s = 0
        bytes([_GOOD[0] ^ 1]) + _GOOD[1:],
    ],
    ids=["empty", "64-bytes", "66-bytes", "v29", "v2", "zeros", "ff", "r-ge-n", "s-zero", "flipped-bit"],
)
def test_malformed_signature_returns_false(signature: bytes) -> None:
    assert verify_eth_address_claim(FID, ADDRESS, BLOCK_HASH, NETWORK, signature) is False


@pytest.mark.parametrize(
    ("fid", "address", "block_hash", "network"),
    [
        (-1, ADDRESS, BLOCK_HASH, NETWORK),
        (2**256, ADDRESS, BLOCK_HASH, NETWORK),
        (FID, ADDRESS[:19], BLOCK_HASH, NETWORK),
        (FID, ADDRESS, BLOCK_HASH[:31], NETWORK),
        (FID, ADDRESS, BLOCK_HASH, 256),
    ],
    ids=["negative-fid", "huge-fid", "short-address", "short-block-hash", "network-over-uint8"],
)
def test_malformed_fields(fid: int, address: bytes, block_hash: bytes, network: int) -> None:
    assert verify_eth_address_claim(fid, address, block_hash, network, _GOOD) is False
    with pytest.raises(HubError) as info:
        verification_claim_digest(fid, address, block_hash, network)
    assert info.value.code == "bad_request.invalid_param"


@pytest.mark.parametrize("key", [bytes(32), b"\x01" * 31, b"\xff" * 32], ids=["zero", "short", "over-n"])
def test_sign_with_invalid_private_key_raises_hub_error(key: bytes) -> None:
    with pytest.raises(HubError) as info:
        sign_eth_address_claim(key, FID, BLOCK_HASH, NETWORK)
    assert info.value.code == "bad_request.invalid_param"
