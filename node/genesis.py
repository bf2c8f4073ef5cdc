"""Genesis files: the identities a node starts with (test accounts on a devnet).

Format (JSON):
    {"network": "devnet",
     "accounts": [{"fid": 1, "signers": ["0x<32-byte Ed25519 public key>"], "storage_units": 1,
                   "custody_address": "0x<20 bytes>"}]}
The events are derived deterministically (transaction hash from fid and position), so loading the same
file on every start is idempotent: events already merged are recognised as duplicates and skipped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from protocols.errors import HubError
from protocols.messages import blake3_160, make_account_events
from protocols.proto import onchain_event_pb2 as oc


def _bad(path: Path, message: str) -> HubError:
    return HubError("bad_request.invalid_param", f"genesis file {path}: {message}")


def _hex_bytes(path: Path, value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(path, f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise _bad(path, f"{what} {value!r} is not hex") from None
    if len(raw) != size:
        raise _bad(path, f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def load_genesis(path: Path, *, network_name: str, now: float | None = None) -> list[oc.OnChainEvent]:
    """Parse a genesis file into identity events; raise HubError naming the file and the problem."""
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise _bad(path, f"cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise _bad(path, f"not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("accounts", []), list):
        raise _bad(path, 'expected an object with an "accounts" list')
    if "network" in doc and doc["network"] != network_name:
        raise _bad(path, f"is for network {doc['network']!r} but this node serves {network_name!r}")
    block_timestamp = int(time.time() if now is None else now)
    events: list[oc.OnChainEvent] = []
    seen: set[int] = set()
    for i, account in enumerate(doc.get("accounts", [])):
        if not isinstance(account, dict):
            raise _bad(path, f"accounts[{i}] must be an object")
        fid = account.get("fid")
        if not isinstance(fid, int) or isinstance(fid, bool) or fid <= 0:
            raise _bad(path, f"accounts[{i}].fid must be a positive integer")
        if fid in seen:
            raise _bad(path, f"fid {fid} appears twice")
        seen.add(fid)
        signers = account.get("signers", [])
        if not isinstance(signers, list):
            raise _bad(path, f"accounts[{i}].signers must be a list")
        keys = [_hex_bytes(path, s, 32, f"accounts[{i}].signers[{j}]") for j, s in enumerate(signers)]
        units = account.get("storage_units", 1)
        if not isinstance(units, int) or isinstance(units, bool) or not 0 < units <= 10_000:
            raise _bad(path, f"accounts[{i}].storage_units must be an integer from 1 to 10000")
        custody = (
            _hex_bytes(path, account["custody_address"], 20, f"accounts[{i}].custody_address")
            if "custody_address" in account
            else b"\x00" * 20
        )
        account_events = make_account_events(
            fid,
            keys,
            custody_address=custody,
            storage_units=units,
            block_timestamp=block_timestamp,
            block_number=0,
        )
        for event in account_events:
            # Deterministic ids make re-loading the same file a no-op.
            event.transaction_hash = blake3_160(f"genesis:{fid}:{event.log_index}".encode()) + b"\x00" * 12
            event.block_hash = b"\x00" * 32
        events.extend(account_events)
    return events
