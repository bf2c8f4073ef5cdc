"""Three real `stateless node start` processes wired by --bootstrap: gossip and sync between processes.

A cast posted to the first node through the CLI reaches the third, which bootstraps only to the second;
`client peers` and `client sync-status` describe the network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.system.conftest import REPO, NodeProcesses, node_env, stateless_command
from tests.system.test_cli_walkthrough import cli, cli_json

pytestmark = pytest.mark.system


def test_three_processes_gossip_and_sync(node_procs: NodeProcesses, tmp_path: Path) -> None:
    key_file = tmp_path / "alice.key"
    cli("keys", "new", "--out", str(key_file))
    public = cli("keys", "show", str(key_file)).stdout.split()[-1]
    genesis = tmp_path / "genesis.json"
    account = {"fid": 7, "signers": [public], "storage_units": 1}
    genesis.write_text(json.dumps({"network": "devnet", "accounts": [account]}))

    a = node_procs.start(tmp_path / "a", genesis)
    rpc_a = a.wait_ready()
    b = node_procs.start(tmp_path / "b", genesis, ["--bootstrap", a.libp2p_addrs[0]])
    b.wait_ready()
    c = node_procs.start(tmp_path / "c", genesis, ["--bootstrap", b.libp2p_addrs[0]])
    rpc_c = c.wait_ready()

    # Follow the third node's merges from the start of its log (--from-id 0), so the order of the two
    # processes does not matter; --count 1 ends the subscriber once the cast has arrived there.
    listener = subprocess.Popen(
        [*stateless_command(), "client", "subscribe", "--from-id", "0", "--type", "merge_message",
         "--count", "1", "--rpc", rpc_c],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=node_env(),
    )  # fmt: skip
    try:
        cli("client", "cast", "across three processes", "--fid", "7", "--key", str(key_file), "--rpc", rpc_a)
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
        listener.wait()
    assert listener.returncode == 0, err
    assert "across three processes" in out

    casts = cli_json("client", "casts", "--fid", "7", "--rpc", rpc_c)
    assert "across three processes" in json.dumps(casts)
    peers = cli_json("client", "peers", "--rpc", rpc_a)
    assert any(p.get("connected") for p in peers.get("contacts", []))
    status = cli_json("client", "sync-status", "--rpc", rpc_c)
    assert status.get("syncStatus") or status.get("sync_status"), status
    assert "in sync:" in cli("client", "sync-status", "--rpc", rpc_c).stdout
    info = cli_json("client", "info", "--rpc", rpc_c)
    assert info.get("connectedPeers", info.get("connected_peers", 0)) >= 1, info
    for node in (c, b, a):
        assert node.interrupt() == 0, node.stderr_tail()
