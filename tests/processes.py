"""Finding processes a test left running (devnet and node-process tests check for leftovers)."""

from __future__ import annotations

import os
from pathlib import Path

from devnet import node_process_alive


def processes_under(path: Path) -> list[int]:
    """Live (non-zombie) processes whose command line mentions `path`: what a devnet there left running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(path).encode() in a for a in args) and node_process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
