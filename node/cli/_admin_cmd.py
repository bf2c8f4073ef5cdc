"""`stateless admin ...`: feed identity events (fid registration, signer keys) to a hub by hand.

Until the chain bridge exists these events come from a genesis file or from here, through
`/AdminService/SubmitOnChainEvent`, which a hub serves on its loopback RPC address only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import grpc

from node.cli._client_cmd import (
    HubConnection,
    add_rpc_options,
    connect,
    errcode_of,
    fid_arg,
    positive_int_arg,
)
from node.cli._output import hex0x
from node.keys import load_key_file, parse_public_key_hex
from protocols.errors import HubError
from protocols.messages._onchain import make_account_events, make_signer_event
from protocols.messages._signing import public_key_bytes
from protocols.proto import onchain_event_pb2 as oc


def _public_key_arg(text: str) -> bytes:
    try:
        return parse_public_key_hex(text)
    except HubError as e:
        raise argparse.ArgumentTypeError(e.message) from None


def _signer_key(args: argparse.Namespace) -> bytes:
    if args.signer_public is not None:
        key: bytes = args.signer_public
        return key
    return public_key_bytes(load_key_file(args.signer))


def _submit(conn: HubConnection, event: oc.OnChainEvent) -> None:
    conn.admin.SubmitOnChainEvent(event, timeout=conn.timeout)


def _cmd_register(args: argparse.Namespace) -> int:
    key = _signer_key(args)
    id_register, storage_rent, *signers = make_account_events(
        args.fid, [key], storage_units=args.storage_units, block_timestamp=int(time.time())
    )
    with connect(args) as conn:
        try:
            _submit(conn, id_register)
        except grpc.RpcError as e:
            # Registering a second key for an existing fid is a normal use of this command: keep going
            # with the signer, and do not rent more storage for an account that already has some.
            if errcode_of(e) != "bad_request.duplicate":
                raise
            print(f"fid {args.fid} is already registered")
        else:
            _submit(conn, storage_rent)
            print(f"registered fid {args.fid} with {args.storage_units} storage unit(s)")
        for event in signers:
            _submit(conn, event)
    print(f"added signer {hex0x(key)} to fid {args.fid}")
    return 0


def _cmd_signer(args: argparse.Namespace, *, add: bool) -> int:
    key = _signer_key(args)
    event = make_signer_event(args.fid, key, add=add, block_timestamp=int(time.time()))
    with connect(args) as conn:
        _submit(conn, event)
    print(f"{'added' if add else 'removed'} signer {hex0x(key)} {'to' if add else 'from'} fid {args.fid}")
    return 0


def _cmd_add_signer(args: argparse.Namespace) -> int:
    return _cmd_signer(args, add=True)


def _cmd_remove_signer(args: argparse.Namespace) -> int:
    return _cmd_signer(args, add=False)


def _admin_parser(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--fid", type=fid_arg, required=True, help="the account id")
    signer = parser.add_mutually_exclusive_group(required=True)
    signer.add_argument(
        "--signer", type=Path, metavar="KEYFILE", help="signer key file (its public key is used)"
    )
    signer.add_argument(
        "--signer-public", type=_public_key_arg, metavar="HEX", help="signer public key, 32 bytes in hex"
    )
    add_rpc_options(parser)
    return parser


def register(subparsers: Any) -> None:
    """Add `admin` and its commands to the top-level subparsers."""
    admin = subparsers.add_parser(
        "admin",
        help="submit identity events (register fids, add/remove signers)",
        description="Submit identity events to a hub through its admin API (loopback only).",
    )
    sub = admin.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)

    reg = _admin_parser(sub, "register", "register a fid with storage and a signer (or add a signer to it)")
    reg.add_argument(
        "--storage-units",
        type=positive_int_arg,
        default=1,
        metavar="N",
        help="storage units to rent (default 1)",
    )
    reg.set_defaults(handler=_cmd_register)

    _admin_parser(sub, "add-signer", "add a signer key to a fid").set_defaults(handler=_cmd_add_signer)
    _admin_parser(sub, "remove-signer", "remove a signer key from a fid").set_defaults(
        handler=_cmd_remove_signer
    )
