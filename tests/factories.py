"""Builders for signed test messages and identity events (test helper; never imported by production code)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.messages._onchain import make_account_events, make_signer_event
from protocols.messages._signing import public_key_bytes, sign_message_data
from protocols.messages._time import FARCASTER_EPOCH, farcaster_now
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc

DEVNET = pb.FARCASTER_NETWORK_DEVNET


def new_key(seed: int | None = None) -> Ed25519PrivateKey:
    """A signer key; deterministic when `seed` is given (for known-answer vectors)."""
    if seed is None:
        return Ed25519PrivateKey.generate()
    return Ed25519PrivateKey.from_private_bytes(seed.to_bytes(32, "big"))


def data(fid: int, mtype: int, timestamp: int | None = None, network: int = DEVNET) -> pb.MessageData:
    """A MessageData header with no body."""
    return pb.MessageData(
        type=mtype,  # type: ignore[arg-type]
        fid=fid,
        timestamp=farcaster_now() if timestamp is None else timestamp,
        network=network,  # type: ignore[arg-type]
    )


def cast_add(
    key: Ed25519PrivateKey,
    fid: int,
    text: str = "hello",
    *,
    timestamp: int | None = None,
    network: int = DEVNET,
    mentions: Sequence[int] = (),
    mentions_positions: Sequence[int] = (),
    embeds: Sequence[str] = (),
    parent: pb.CastId | str | None = None,
) -> pb.Message:
    """A signed CAST_ADD."""
    d = data(fid, pb.MESSAGE_TYPE_CAST_ADD, timestamp, network)
    body = d.cast_add_body
    body.text = text
    body.mentions.extend(mentions)
    body.mentions_positions.extend(mentions_positions)
    for url in embeds:
        body.embeds.add(url=url)
    if isinstance(parent, str):
        body.parent_url = parent
    elif parent is not None:
        body.parent_cast_id.CopyFrom(parent)
    return sign_message_data(d, key)


def cast_remove(
    key: Ed25519PrivateKey, fid: int, target_hash: bytes, *, timestamp: int | None = None
) -> pb.Message:
    """A signed CAST_REMOVE of `target_hash`."""
    d = data(fid, pb.MESSAGE_TYPE_CAST_REMOVE, timestamp)
    d.cast_remove_body.target_hash = target_hash
    return sign_message_data(d, key)


def reaction(
    key: Ed25519PrivateKey,
    fid: int,
    target: pb.CastId | str,
    *,
    remove: bool = False,
    reaction_type: int = pb.REACTION_TYPE_LIKE,
    timestamp: int | None = None,
) -> pb.Message:
    """A signed REACTION_ADD (or REACTION_REMOVE) on a cast id or URL."""
    d = data(fid, pb.MESSAGE_TYPE_REACTION_REMOVE if remove else pb.MESSAGE_TYPE_REACTION_ADD, timestamp)
    d.reaction_body.type = reaction_type  # type: ignore[assignment]
    if isinstance(target, str):
        d.reaction_body.target_url = target
    else:
        d.reaction_body.target_cast_id.CopyFrom(target)
    return sign_message_data(d, key)


def link(
    key: Ed25519PrivateKey,
    fid: int,
    target_fid: int,
    *,
    remove: bool = False,
    link_type: str = "follow",
    timestamp: int | None = None,
) -> pb.Message:
    """A signed LINK_ADD (or LINK_REMOVE) to `target_fid`."""
    d = data(fid, pb.MESSAGE_TYPE_LINK_REMOVE if remove else pb.MESSAGE_TYPE_LINK_ADD, timestamp)
    d.link_body.type = link_type
    d.link_body.target_fid = target_fid
    return sign_message_data(d, key)


def user_data(
    key: Ed25519PrivateKey, fid: int, udtype: int, value: str, *, timestamp: int | None = None
) -> pb.Message:
    """A signed USER_DATA_ADD."""
    d = data(fid, pb.MESSAGE_TYPE_USER_DATA_ADD, timestamp)
    d.user_data_body.type = udtype  # type: ignore[assignment]
    d.user_data_body.value = value
    return sign_message_data(d, key)


def verification_remove(
    key: Ed25519PrivateKey, fid: int, address: bytes, *, timestamp: int | None = None
) -> pb.Message:
    """A signed VERIFICATION_REMOVE of an Ethereum address."""
    d = data(fid, pb.MESSAGE_TYPE_VERIFICATION_REMOVE, timestamp)
    d.verification_remove_body.address = address
    return sign_message_data(d, key)


def account(
    fid: int, key: Ed25519PrivateKey, *, units: int = 1, block_timestamp: int | None = None
) -> list[oc.OnChainEvent]:
    """ID_REGISTER + STORAGE_RENT + SIGNER add events for a test account."""
    ts = FARCASTER_EPOCH + farcaster_now() if block_timestamp is None else block_timestamp
    return make_account_events(fid, [public_key_bytes(key)], storage_units=units, block_timestamp=ts)


def signer_remove(fid: int, key: Ed25519PrivateKey, *, block_timestamp: int | None = None) -> oc.OnChainEvent:
    """A SIGNER remove event for `key`."""
    ts = FARCASTER_EPOCH + farcaster_now() + 1 if block_timestamp is None else block_timestamp
    return make_signer_event(fid, public_key_bytes(key), add=False, block_timestamp=ts)


def genesis_file(path: Path, keys: Mapping[int, Ed25519PrivateKey], units: int = 5) -> Path:
    """Write a devnet genesis registering each fid with its signer key and `units` of storage."""
    doc = {
        "network": "devnet",
        "accounts": [
            {"fid": fid, "signers": ["0x" + public_key_bytes(k).hex()], "storage_units": units}
            for fid, k in keys.items()
        ],
    }
    path.write_text(json.dumps(doc))
    return path
