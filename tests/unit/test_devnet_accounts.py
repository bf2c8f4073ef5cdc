"""Devnet test accounts (devnet/_accounts.py): deterministic keys, a genesis node.genesis accepts, key files
that `stateless keys` and `client` read; and the banner parser of devnet/_node_process.py."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from devnet import devnet_accounts, devnet_key, write_devnet_accounts
from devnet._node_process import parse_banner
from devnet._processes import NodePorts, check_devnet_options, node_ports
from node.genesis import load_genesis
from node.keys import load_key_file, public_key_hex
from protocols.messages import public_key_bytes
from protocols.proto import onchain_event_pb2 as oc


def test_keys_are_deterministic_and_distinct() -> None:
    first = [public_key_bytes(devnet_key(fid)) for fid in (1, 2, 3)]
    again = [a.public_key for a in devnet_accounts(3)]
    assert first == again
    assert len(set(first)) == 3
    # Pinned: the derivation is a contract (docs and scripts may name fid 1's key); changing it is a choice.
    assert (
        public_key_hex(devnet_key(1)) == "0xadab18b40c9a0e7c18bfa8fb525004d5fd4352b9dd823cc6f0232d47fe117cd8"
    )
    assert [a.fid for a in devnet_accounts(2, first_fid=10)] == [10, 11]


def test_bad_counts_and_fids_are_refused() -> None:
    with pytest.raises(ValueError):
        devnet_key(0)
    with pytest.raises(ValueError):
        devnet_accounts(-1)
    with pytest.raises(ValueError):
        devnet_accounts(1001)


def test_genesis_loads_and_registers_every_signer(tmp_path: Path) -> None:
    written = write_devnet_accounts(tmp_path, 3)
    assert written.path == tmp_path / "genesis.json"
    events = load_genesis(written.path, network_name="devnet", now=1_700_000_000)
    signers = {(e.fid, e.signer_event_body.key) for e in events if e.type == oc.EVENT_TYPE_SIGNER}
    assert signers == {(a.fid, a.public_key) for a in written.accounts}
    assert {e.fid for e in events if e.type == oc.EVENT_TYPE_ID_REGISTER} == {1, 2, 3}
    assert any(e.type == oc.EVENT_TYPE_STORAGE_RENT for e in events)
    # A devnet genesis is refused by a node serving another network.
    with pytest.raises(Exception, match="devnet"):
        load_genesis(written.path, network_name="mainnet")


def test_key_files_are_stateless_key_files(tmp_path: Path) -> None:
    written = write_devnet_accounts(tmp_path, 2)
    for account in written.accounts:
        assert account.key_file == tmp_path / "keys" / f"fid-{account.fid}.key"
        assert public_key_bytes(load_key_file(account.key_file)) == account.public_key
        assert stat.S_IMODE(account.key_file.stat().st_mode) == 0o600
        doc = json.loads(account.key_file.read_text())
        assert set(doc) == {"type", "public_key", "private_key"}


def test_rewriting_gives_identical_files(tmp_path: Path) -> None:
    write_devnet_accounts(tmp_path, 2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    write_devnet_accounts(tmp_path, 2)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert before == after


def test_zero_accounts_is_an_empty_genesis(tmp_path: Path) -> None:
    written = write_devnet_accounts(tmp_path, 0)
    assert load_genesis(written.path, network_name="devnet") == []


BANNER = """stateless hub 0.1.0 serving devnet
  peer id    12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD2
  libp2p     /ip4/127.0.0.1/tcp/37245/p2p/12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD2
  gRPC       127.0.0.1:43413
  metrics    http://127.0.0.1:9100/metrics
  data dir   /tmp/data dir/n3
  something  new the parser does not know
ready (Ctrl-C to stop)
"""


def test_banner_with_and_without_metrics() -> None:
    banner = parse_banner(BANNER.splitlines())
    assert banner.ready
    assert banner.peer_id == "12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD2"
    assert banner.libp2p_addrs == (
        "/ip4/127.0.0.1/tcp/37245/p2p/12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD2",
    )
    assert banner.rpc_target == "127.0.0.1:43413"
    assert banner.metrics_url == "http://127.0.0.1:9100/metrics"
    assert banner.data_dir == "/tmp/data dir/n3"
    without = parse_banner(line for line in BANNER.splitlines() if "metrics" not in line)
    assert without.ready and without.metrics_url is None and without.rpc_target == "127.0.0.1:43413"
    assert not parse_banner(BANNER.splitlines()[:4]).ready


def test_port_plan_and_option_checks() -> None:
    assert node_ports(2, 4000, metrics=True) == NodePorts(4002, 4102, 4202)
    assert node_ports(2, 4000, metrics=False).metrics is None
    assert node_ports(5, 0, metrics=True) == NodePorts(0, 0, 0)
    check_devnet_options(64, 65_535 - 200 - 63)
    for n, port, words in [
        (0, 0, "1 to 64"),
        (65, 0, "1 to 64"),
        (3, 80, "well-known"),
        (64, 65_535 - 200 - 62, "too high"),
    ]:
        with pytest.raises(ValueError, match=words):
            check_devnet_options(n, port)


def test_an_adversary_banner_has_a_mode_and_no_grpc() -> None:
    lines = [
        "stateless adversary (eclipse) on devnet",
        "  peer id    12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD2",
        "  libp2p     /ip4/127.0.0.1/tcp/1/p2p/12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD2",
        "  mode       eclipse",
        "  target     /ip4/127.0.0.1/tcp/2/p2p/12D3KooWSp9vgR3C9U9x49WYt8a1rFSGqUVgVzZuHrkR2hKKHeD3",
        "ready (Ctrl-C to stop)",
    ]
    banner = parse_banner(lines)
    assert banner.ready and banner.mode == "eclipse" and banner.rpc_target == ""
    assert parse_banner(BANNER.splitlines()).mode == "honest"


def test_node_modes_are_checked() -> None:
    check_devnet_options(3, 0, {1: "forge", 2: "eclipse"})
    for modes, words in [
        ({0: "lie"}, "node 0 must be honest"),
        ({3: "lie"}, "node 3 does not exist in a devnet of 3 nodes"),
        ({1: "evil"}, "unknown mode 'evil' for node 1; known: forge, withhold, flood, lie, eclipse"),
    ]:
        with pytest.raises(ValueError, match=words):
            check_devnet_options(3, 0, modes)
