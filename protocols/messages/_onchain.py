"""Building and checking identity events (`OnChainEvent`): ID_REGISTER, SIGNER add/remove, STORAGE_RENT.

These are the hub's source of identity. A later issue reads them from a chain; until then they come from
a genesis file or the admin RPC, built here so that both paths produce identical events.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

from protocols.errors import HubError
from protocols.proto import onchain_event_pb2 as oc

ED25519_KEY_TYPE: Final = 1
#: Farcaster's cut-off between legacy and 2024 storage units (2024-08-29T00:00:00Z).
LEGACY_STORAGE_UNIT_CUTOFF: Final = 1_724_889_600
ONE_YEAR_SECONDS: Final = 365 * 24 * 60 * 60


def _base_event(
    kind: int, fid: int, block_number: int, block_timestamp: int, log_index: int
) -> oc.OnChainEvent:
    return oc.OnChainEvent(
        type=kind,  # type: ignore[arg-type]
        chain_id=0,
        block_number=block_number,
        block_hash=os.urandom(32),
        block_timestamp=block_timestamp,
        # A fresh random transaction hash makes (transaction_hash, log_index) unique, as on a real chain.
        transaction_hash=os.urandom(32),
        log_index=log_index,
        fid=fid,
    )


def make_account_events(
    fid: int,
    signer_keys: Sequence[bytes],
    *,
    custody_address: bytes = b"\x00" * 20,
    storage_units: int = 1,
    block_timestamp: int,
    block_number: int | None = None,
) -> list[oc.OnChainEvent]:
    """Events that register `fid`, add each Ed25519 `signer_keys` entry and rent `storage_units`.

    `block_timestamp` is unix seconds; `block_number` defaults to it, which keeps synthetic events ordered.
    """
    if fid <= 0:
        raise HubError("bad_request.invalid_param", "fid must be a positive integer")
    number = block_timestamp if block_number is None else block_number
    events = []
    reg = _base_event(oc.EVENT_TYPE_ID_REGISTER, fid, number, block_timestamp, 0)
    reg.id_register_event_body.CopyFrom(
        oc.IdRegisterEventBody(to=custody_address, event_type=oc.ID_REGISTER_EVENT_TYPE_REGISTER)
    )
    events.append(reg)
    rent = _base_event(oc.EVENT_TYPE_STORAGE_RENT, fid, number, block_timestamp, 1)
    rent.storage_rent_event_body.CopyFrom(
        oc.StorageRentEventBody(payer=custody_address, units=storage_units, expiry=0)
    )
    events.append(rent)
    for i, key in enumerate(signer_keys):
        events.append(
            make_signer_event(
                fid, key, add=True, block_timestamp=block_timestamp, block_number=number, log_index=2 + i
            )
        )
    return events


def make_signer_event(
    fid: int,
    key: bytes,
    *,
    add: bool,
    block_timestamp: int,
    block_number: int | None = None,
    log_index: int = 0,
) -> oc.OnChainEvent:
    """A SIGNER event adding (or removing) the 32-byte Ed25519 `key` for `fid`."""
    event = _base_event(
        oc.EVENT_TYPE_SIGNER,
        fid,
        block_timestamp if block_number is None else block_number,
        block_timestamp,
        log_index,
    )
    event.signer_event_body.CopyFrom(
        oc.SignerEventBody(
            key=key,
            key_type=ED25519_KEY_TYPE,
            event_type=oc.SIGNER_EVENT_TYPE_ADD if add else oc.SIGNER_EVENT_TYPE_REMOVE,
        )
    )
    return event


def validate_onchain_event(event: oc.OnChainEvent) -> oc.OnChainEvent:
    """Check an event's shape (types, sizes, body matching type); raise `HubError` if malformed."""

    def bad(msg: str) -> HubError:
        return HubError("bad_request.invalid_param", f"on-chain event: {msg}")

    if event.fid <= 0:
        raise bad("fid must be positive")
    if len(event.transaction_hash) != 32:
        raise bad("transaction_hash must be 32 bytes")
    if event.block_hash and len(event.block_hash) != 32:
        raise bad("block_hash must be 32 bytes")
    body = event.WhichOneof("body")
    if event.type == oc.EVENT_TYPE_ID_REGISTER:
        if body != "id_register_event_body":
            raise bad("ID_REGISTER needs id_register_event_body")
        if event.id_register_event_body.event_type not in (
            oc.ID_REGISTER_EVENT_TYPE_REGISTER,
            oc.ID_REGISTER_EVENT_TYPE_TRANSFER,
            oc.ID_REGISTER_EVENT_TYPE_CHANGE_RECOVERY,
        ):
            raise bad("unknown id register event type")
        if len(event.id_register_event_body.to) not in (0, 20):
            raise bad("custody address must be 20 bytes")
    elif event.type == oc.EVENT_TYPE_SIGNER:
        if body != "signer_event_body":
            raise bad("SIGNER needs signer_event_body")
        sb = event.signer_event_body
        if sb.event_type not in (
            oc.SIGNER_EVENT_TYPE_ADD,
            oc.SIGNER_EVENT_TYPE_REMOVE,
            oc.SIGNER_EVENT_TYPE_ADMIN_RESET,
        ):
            raise bad("unknown signer event type")
        if sb.key_type != ED25519_KEY_TYPE:
            raise bad("signer key_type must be 1 (Ed25519)")
        if len(sb.key) != 32:
            raise bad("signer key must be 32 bytes")
    elif event.type == oc.EVENT_TYPE_STORAGE_RENT:
        if body != "storage_rent_event_body":
            raise bad("STORAGE_RENT needs storage_rent_event_body")
        if not 0 < event.storage_rent_event_body.units <= 10_000:
            raise bad("storage units must be between 1 and 10000")
    else:
        raise bad(f"unsupported event type {event.type}")
    return event


def storage_unit_expiry(event: oc.OnChainEvent) -> int:
    """Unix time at which a STORAGE_RENT event's units expire (legacy units last two years)."""
    years = 2 if event.block_timestamp < LEGACY_STORAGE_UNIT_CUTOFF else 1
    return event.block_timestamp + years * ONE_YEAR_SECONDS
