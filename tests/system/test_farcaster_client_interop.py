"""Farcaster's own client library (@farcaster/hub-nodejs, installed by `make` into tests/interop) vs our hub.

This is the wire-compatibility proof: messages built and signed by Farcaster's code (which sends `data`
without `data_bytes`, serialised by ts-proto in declaration order) are accepted, stored and served back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import trio

from node.runner import NodeHandle
from tests import factories as f
from tests.conftest import Client

INTEROP = Path(__file__).resolve().parent.parent / "interop"
FID = 21

pytestmark = pytest.mark.system


async def test_hub_nodejs_submits_and_reads(node: NodeHandle, client: Client) -> None:
    node_bin = shutil.which("node")
    assert node_bin, "Node.js is a documented prerequisite"
    assert (INTEROP / "node_modules" / "@farcaster" / "hub-nodejs").is_dir(), "run `make install` first"
    key = f.new_key()
    for event in f.account(FID, key):
        await client.call(client.admin.SubmitOnChainEvent, event)
    private_hex = key.private_bytes_raw().hex()
    with trio.fail_after(60):
        done = await trio.run_process(
            [node_bin, "submit_and_read.mjs", node.rpc_target, str(FID), private_hex],
            cwd=INTEROP,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert result["castTexts"] == ["hello from hub-nodejs"]
    assert result["byParent"] == 1 and result["reactions"] == 1 and result["links"] == [FID + 1]
    assert result["infoMessages"] == 3
    assert result["tamperedError"] == "bad_request.validation_failure.signature"
