"""Blobs through the CLI between two real node processes: put 64 MiB on one, get it through the other.

Also the CID check a user would do against IPFS (the CID equals what our DagBuilder, verified against
IPFS's own importer in test_ipfs_cid_interop, computes) and the one-line errors of bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from protocols.blobs import DagBuilder
from tests.system.conftest import NodeProcesses
from tests.system.test_cli_walkthrough import cli, cli_json

pytestmark = pytest.mark.system


def cid_of_file(path: Path) -> str:
    builder = DagBuilder()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            builder.feed(piece)
    root, _ = builder.finish()
    return str(root)


def test_put_on_one_node_get_through_another(node_procs: NodeProcesses, tmp_path: Path) -> None:
    a = node_procs.start(tmp_path / "a")
    rpc_a = a.wait_ready()
    b = node_procs.start(tmp_path / "b", extra=["--bootstrap", a.libp2p_addrs[0]])
    rpc_b = b.wait_ready()

    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    put = cli("blob", "put", str(src), "--rpc", rpc_a)
    cid = put.stdout.strip()
    assert cid == cid_of_file(src)
    assert "put" in put.stderr and "64.0 MiB" in put.stderr  # the final progress line

    out = tmp_path / "copy.bin"
    got = cli("blob", "get", cid, "-o", str(out), "--rpc", rpc_b)
    assert "get" in got.stderr
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    assert not (tmp_path / "copy.bin.part").exists()

    stat = cli_json("blob", "stat", cid, "--rpc", rpc_b)
    assert stat["complete"] is True and int(stat["size"]) == 64 << 20
    listed = cli("blob", "ls", "--rpc", rpc_a).stdout
    assert cid in listed and "pinned" in listed
    assert "unpinned" in cli("blob", "unpin", cid, "--rpc", rpc_a).stdout
    providers = cli("blob", "providers", cid, "--rpc", rpc_b).stdout
    assert a.libp2p_addrs[0].rsplit("/", 1)[-1] in providers

    for bad in (["blob", "stat", "nonsense"], ["blob", "get", "bafkqaaa", "--local-only"]):
        failed = cli(*bad, "--rpc", rpc_a, check=False)
        assert failed.returncode != 0 and "Traceback" not in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    missing = cli("blob", "put", str(tmp_path / "nope"), "--rpc", rpc_a, check=False)
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    json.loads(cli("blob", "gc", "--json", "--rpc", rpc_a).stdout)
    for node in (b, a):
        assert node.interrupt() == 0, node.stderr_tail()
