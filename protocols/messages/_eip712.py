"""EIP-712 claims that prove an Ethereum account asked to be linked to a Farcaster fid.

A VERIFICATION_ADD_ETH_ADDRESS message carries a claim signature made by the Ethereum key over the
typed data `VerificationClaim(fid, address, blockHash, network)` in Farcaster's fixed domain. We hash it
with `eth_account` (the library wallets' tooling uses) so our digests match wallets byte for byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from protocols.errors import HubError
from protocols.messages._limits import BLOCK_HASH_BYTES, EOA_CLAIM_SIGNATURE_BYTES, ETH_ADDRESS_BYTES

if TYPE_CHECKING:
    from eth_account.messages import SignableMessage

# eth_account and eth_utils are imported inside the functions: together they take about a second to
# import, which every process importing `protocols.messages` would otherwise pay even if it never sees a
# verification message.

#: Farcaster's EIP-712 domain for address verification claims. It has a salt and no chainId, so one
#: claim is valid regardless of which chain the signing wallet is connected to.
EIP712_DOMAIN_NAME: Final = "Farcaster Verify Ethereum Address"
EIP712_DOMAIN_VERSION: Final = "2.0.0"
EIP712_DOMAIN_SALT: Final = bytes.fromhex("f2d857f4a3edcb9b78b4d503bfe733db1e3f6cdc2b7971ee739626c97e86a558")

_TYPES: Final[dict[str, list[dict[str, str]]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "salt", "type": "bytes32"},
    ],
    "VerificationClaim": [
        {"name": "fid", "type": "uint256"},
        {"name": "address", "type": "address"},
        {"name": "blockHash", "type": "bytes32"},
        {"name": "network", "type": "uint8"},
    ],
}


def _check_claim_fields(fid: int, address: bytes, block_hash: bytes, network: int) -> None:
    if not 0 <= fid < 2**256:
        raise HubError("bad_request.invalid_param", "fid must fit in uint256")
    if len(address) != ETH_ADDRESS_BYTES:
        raise HubError("bad_request.invalid_param", "Ethereum address must be 20 bytes")
    if len(block_hash) != BLOCK_HASH_BYTES:
        raise HubError("bad_request.invalid_param", "block hash must be 32 bytes")
    if not 0 <= network < 256:
        raise HubError("bad_request.invalid_param", "network must fit in uint8")


def _signable_claim(fid: int, address: bytes, block_hash: bytes, network: int) -> SignableMessage:
    from eth_account.messages import encode_typed_data

    full_message: dict[str, Any] = {
        "types": _TYPES,
        "primaryType": "VerificationClaim",
        "domain": {"name": EIP712_DOMAIN_NAME, "version": EIP712_DOMAIN_VERSION, "salt": EIP712_DOMAIN_SALT},
        "message": {"fid": fid, "address": "0x" + address.hex(), "blockHash": block_hash, "network": network},
    }
    signable: SignableMessage = encode_typed_data(full_message=full_message)
    return signable


def verification_claim_digest(fid: int, address: bytes, block_hash: bytes, network: int) -> bytes:
    """The 32-byte EIP-712 hash a wallet signs for the claim.

    Raises `HubError` (`bad_request.invalid_param`) if a field is out of range or the wrong length.
    """
    from eth_utils import keccak

    _check_claim_fields(fid, address, block_hash, network)
    signable = _signable_claim(fid, address, block_hash, network)
    # EIP-191 version 0x01 framing: keccak256(0x19 0x01 || domainSeparator || hashStruct(message)).
    digest: bytes = keccak(b"\x19" + signable.version + signable.header + signable.body)
    return digest


def verify_eth_address_claim(
    fid: int, address: bytes, block_hash: bytes, network: int, signature: bytes
) -> bool:
    """True if the 65-byte `signature` (r || s || v, v in 27/28 or 0/1) over the claim recovers to `address`.

    Never raises: malformed fields or signatures, and any failure inside the crypto library, give False.
    """
    from eth_account import Account

    if len(signature) != EOA_CLAIM_SIGNATURE_BYTES:
        return False
    v = signature[64]
    if v in (0, 1):
        # Some signers emit the bare recovery id; Ethereum's convention adds 27.
        signature = signature[:64] + bytes([v + 27])
    elif v not in (27, 28):
        return False
    try:
        _check_claim_fields(fid, address, block_hash, network)
        signable = _signable_claim(fid, address, block_hash, network)
        recovered: str = Account.recover_message(signable, signature=signature)
        return bytes.fromhex(recovered.removeprefix("0x")) == address
    except Exception:  # the library raises many unrelated types for bad points or scalars
        return False


def sign_eth_address_claim(
    private_key: bytes, fid: int, block_hash: bytes, network: int
) -> tuple[bytes, bytes]:
    """Sign a claim with a 32-byte secp256k1 key; returns (20-byte address, 65-byte signature with v 27/28).

    For tests and the CLI; a hub never holds Ethereum keys.
    """
    from eth_account import Account

    try:
        account = Account.from_key(private_key)
    except Exception as exc:  # invalid scalar or wrong length
        raise HubError(
            "bad_request.invalid_param", "private key must be a valid 32-byte secp256k1 key"
        ) from exc
    address = bytes.fromhex(str(account.address).removeprefix("0x"))
    _check_claim_fields(fid, address, block_hash, network)
    signed = account.sign_message(_signable_claim(fid, address, block_hash, network))
    return address, bytes(signed.signature)
