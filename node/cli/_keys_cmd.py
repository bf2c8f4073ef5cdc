"""`stateless keys ...`: create and inspect signer key files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.keys import generate_key_file, load_key_file, public_key_hex


def _cmd_new(args: argparse.Namespace) -> int:
    key = generate_key_file(args.out, force=args.force)
    print(public_key_hex(key))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    print(public_key_hex(load_key_file(args.file)))
    return 0


def register(subparsers: Any) -> None:
    """Add `keys` and its commands to the top-level subparsers."""
    keys = subparsers.add_parser(
        "keys",
        help="create and inspect Ed25519 signer key files",
        description="Create and inspect Ed25519 signer key files.",
    )
    sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    new = sub.add_parser(
        "new",
        help="create a signer key file and print its public key",
        description="Create an Ed25519 signer key file (mode 0600) and print its public key as 0x-hex.",
    )
    new.add_argument("--out", type=Path, required=True, metavar="FILE", help="where to write the key")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(handler=_cmd_new)

    show = sub.add_parser(
        "show", help="print the public key of a key file", description="Print the public key of a key file."
    )
    show.add_argument("file", type=Path, metavar="FILE")
    show.set_defaults(handler=_cmd_show)
