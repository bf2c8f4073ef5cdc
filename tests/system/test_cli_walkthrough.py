"""The README walkthrough, command by command, against a real `stateless node start` process.

Every step runs the `stateless` CLI as a user would (a child process), so argument parsing, key files,
gRPC, output formats and exit codes are all exercised together.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system.conftest import REPO, NodeProcesses, node_env, stateless_command

pytestmark = pytest.mark.system

CLI_TIMEOUT = 60.0


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `stateless ARGS...` and return the finished process (asserting success if `check`)."""
    proc = subprocess.run(
        [*stateless_command(), *args],
        cwd=REPO,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, f"stateless {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def cli_json(*args: str) -> Any:
    """Run a read command with --json and parse its output."""
    return json.loads(cli(*args, "--json").stdout)


def test_walkthrough(node_procs: NodeProcesses, tmp_path: Path) -> None:
    node = node_procs.start(tmp_path / "data")
    rpc = node.wait_ready()
    key = tmp_path / "alice.key"

    created = cli("keys", "new", "--out", str(key))
    assert key.exists()
    public_hex = created.stdout.split()[-1]
    assert public_hex.startswith("0x") and len(public_hex) == 66

    cli("admin", "register", "--rpc", rpc, "--fid", "7", "--signer", str(key))
    signers = cli_json("client", "signers", "--fid", "7", "--rpc", rpc)
    assert public_hex in json.dumps(signers)

    cli("client", "cast", "hello from the walkthrough", "--fid", "7", "--key", str(key), "--rpc", rpc)
    casts = cli_json("client", "casts", "--fid", "7", "--rpc", rpc)
    assert "hello from the walkthrough" in json.dumps(casts)

    cli("client", "follow", "8", "--fid", "7", "--key", str(key), "--rpc", rpc)
    links = cli_json("client", "links", "--fid", "7", "--rpc", rpc)
    assert '"target_fid": 8' in json.dumps(links) or '"targetFid": 8' in json.dumps(links)

    cli("client", "profile", "--display", "Alice", "--fid", "7", "--key", str(key), "--rpc", rpc)
    assert "Alice" in json.dumps(cli_json("client", "user", "--fid", "7", "--rpc", rpc))

    info = cli_json("client", "info", "--rpc", rpc)
    assert "peer_id" in json.dumps(info) or "peerId" in json.dumps(info)

    # Replaying the retained events shows what the walkthrough did, as JSON lines.
    events = cli("client", "subscribe", "--from-id", "0", "--count", "5", "--rpc", rpc).stdout.splitlines()
    assert len(events) == 5
    assert all(isinstance(json.loads(line), dict) for line in events)


def test_errors_are_one_line(node_procs: NodeProcesses, tmp_path: Path) -> None:
    node = node_procs.start(tmp_path / "data")
    rpc = node.wait_ready()
    key = tmp_path / "bob.key"
    cli("keys", "new", "--out", str(key))

    # fid 9 was never registered: the hub refuses, the CLI says why in one line and exits non-zero.
    refused = cli("client", "cast", "hi", "--fid", "9", "--key", str(key), "--rpc", rpc, check=False)
    assert refused.returncode != 0
    assert "unknown_fid" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    missing = cli(
        "client", "cast", "hi", "--fid", "9", "--key", str(tmp_path / "nope"), "--rpc", rpc, check=False
    )
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
