"""The `stateless` CLI in-process: key files, argument validation, exit codes and one-line errors.

Commands that need a running hub are only checked here against an unreachable port; end-to-end runs
against a real node live in the integration tests.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from node.cli import build_parser, main
from node.cli._client_cmd import paginate
from node.cli._output import describe_message, format_duration, iso_farcaster, to_dict
from node.config import NodeConfig
from node.keys import generate_key_file, load_key_file, public_key_hex
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from tests.factories import cast_add, new_key

HASH = "0x" + "ab" * 20


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_error_line(err: str, fragment: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert fragment in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def closed_port() -> int:
    """A loopback port that was just bound and released, so nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "signer.json"
    generate_key_file(path)
    return path


# --- keys


def test_keys_new_prints_public_key_and_writes_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys" / "me.json"
    code, out, err = _run(capsys, ["keys", "new", "--out", str(path)])
    assert (code, err) == (0, "")
    assert out == public_key_hex(load_key_file(path)) + "\n"
    assert out.startswith("0x") and len(out.strip()) == 66


def test_keys_new_refuses_overwrite_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "me.json"
    _, first, _ = _run(capsys, ["keys", "new", "--out", str(path)])
    code, out, err = _run(capsys, ["keys", "new", "--out", str(path)])
    assert (code, out) == (1, "")
    _assert_one_error_line(err, "already exists")
    assert public_key_hex(load_key_file(path)) == first.strip()
    code, forced, _ = _run(capsys, ["keys", "new", "--out", str(path), "--force"])
    assert code == 0 and forced != first
    assert public_key_hex(load_key_file(path)) == forced.strip()


def test_keys_show(key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, ["keys", "show", str(key_file)])
    assert (code, out) == (0, public_key_hex(load_key_file(key_file)) + "\n")


def test_corrupt_key_file_is_a_runtime_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{}")
    code, out, err = _run(capsys, ["client", "follow", "2", "--fid", "1", "--key", str(path)])
    assert (code, out) == (1, "")
    _assert_one_error_line(err, f"{path}: unsupported key type")


# --- usage errors


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["client"], "required: COMMAND"),
        (["client", "casts"], "required: --fid"),
        (["client", "casts", "--fid", "0"], "argument --fid: must be a positive integer, got '0'"),
        (["client", "casts", "--fid", "-3"], "argument --fid"),
        (["client", "casts", "--fid", "abc"], "must be a positive integer, got 'abc'"),
        (["client", "casts", "--fid", str(2**64)], "must be a positive integer"),
        (["client", "casts", "--fid", "1", "--limit", "0"], "argument --limit"),
        (["client", "cast-get", "5:0x1234"], "expected a cast id FID:0xHASH"),
        (["client", "cast-get", "5" + HASH], "expected a cast id FID:0xHASH"),
        (["client", "cast-get", "0:" + HASH], "expected a cast id FID:0xHASH"),
        (["client", "cast-get", "5:0x" + "zz" * 20], "expected a cast id FID:0xHASH"),
        (["client", "react", "like", "--fid", "1", "--key", "k", "--cast", "1:0x12"], "argument --cast"),
        (["client", "react", "like", "--fid", "1", "--key", "k"], "one of the arguments --cast --url"),
        (["client", "react", "love", "--fid", "1", "--key", "k", "--url", "u"], "invalid choice: 'love'"),
        (["client", "cast", "hi", "--fid", "1"], "required: --key"),
        (
            [
                "client",
                "cast",
                "hi",
                "--fid",
                "1",
                "--key",
                "k",
                "--parent-url",
                "u",
                "--parent",
                "1:" + HASH,
            ],
            "not allowed with argument",
        ),
        (["client", "cast", "hi", "--fid", "1", "--key", "k", "--mention", "0"], "argument --mention"),
        (["client", "cast", "hi", "--fid", "1", "--key", "k", "--network", "moon"], "argument --network"),
        (["client", "delete-cast", "0x12", "--fid", "1", "--key", "k"], "expected a 20-byte hash"),
        (["client", "follow", "x", "--fid", "1", "--key", "k"], "argument TARGET_FID"),
        (["client", "info", "--rpc", "localhost"], "argument --rpc: expected HOST:PORT"),
        (["client", "info", "--rpc", "localhost:0"], "argument --rpc"),
        (["client", "info", "--rpc", "localhost:70000"], "argument --rpc"),
        (["client", "info", "--rpc", ":2283"], "argument --rpc"),
        (["client", "info", "--rpc", "local host:2283"], "argument --rpc"),
        (["client", "info", "--timeout", "0"], "argument --timeout"),
        (["client", "subscribe", "--type", "merge_everything"], "unknown event type"),
        (["client", "subscribe", "--from-id", "-1"], "argument --from-id"),
        (["admin", "register", "--fid", "1"], "one of the arguments --signer --signer-public"),
        (["admin", "register", "--fid", "1", "--signer-public", "0x12"], "public key must be 32 bytes"),
        (["admin", "add-signer", "--fid", "0", "--signer-public", "ab" * 32], "argument --fid"),
        (
            ["admin", "remove-signer", "--fid", "1", "--signer-public", "ab" * 32, "--rpc", "h"],
            "argument --rpc",
        ),
        (["keys", "new"], "required: --out"),
        (["node", "start"], "required: --data-dir"),
        (["node", "start", "--data-dir", "d", "--rpc-port", "70000"], "argument --rpc-port"),
        (["node", "start", "--data-dir", "d", "--bootstrap", "not-a-multiaddr"], "not a valid multiaddr"),
        (["node", "start", "--data-dir", "d", "--log-level", "loud"], "argument --log-level"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, argv)
    assert (code, out) == (2, "")
    _assert_one_error_line(err, fragment)
    assert "--help" in err  # points at the help of the command that was wrong


def test_profile_without_fields_is_a_usage_error(key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, ["client", "profile", "--fid", "1", "--key", str(key_file)])
    assert code == 2
    _assert_one_error_line(err, "nothing to set")


def test_mention_past_end_of_text_is_a_usage_error(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, ["client", "cast", "hi", "--fid", "1", "--key", str(key_file), "--mention", "3@9"]
    )
    assert code == 2
    _assert_one_error_line(err, "past the end of the text")


# --- unreachable hub


@pytest.mark.parametrize(
    "argv",
    [
        ["client", "info"],
        ["client", "casts", "--fid", "1", "--json"],
        ["client", "cast-get", "1:" + HASH],
        ["client", "signers", "--fid", "1"],
        ["client", "subscribe"],
        ["client", "follow", "2", "--fid", "1", "--key", "{key}"],
        ["admin", "register", "--fid", "1", "--signer-public", "ab" * 32],
    ],
)
def test_unreachable_hub_is_one_line_exit_1(
    argv: list[str], closed_port: int, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{key}", str(key_file)) for a in argv]
    target = f"127.0.0.1:{closed_port}"
    code, out, err = _run(capsys, [*argv, "--rpc", target, "--timeout", "3"])
    assert (code, out) == (1, "")
    assert err == f"error: cannot reach hub at {target} (UNAVAILABLE)\n"


# --- help


def _command_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*prefix, name))


def test_every_command_is_reachable() -> None:
    paths = {" ".join(p) for p in _command_paths(build_parser())}
    expected = {
        "node start", "keys new", "keys show", "admin register", "admin add-signer", "admin remove-signer",
        *(f"client {c}" for c in [
            "cast", "react", "follow", "profile", "delete-cast", "casts", "cast-get", "reactions", "links",
            "user", "signers", "info", "subscribe",
        ]),
    }  # fmt: skip
    assert expected <= paths


@pytest.mark.parametrize("path", [" ".join(p) for p in _command_paths(build_parser())])
def test_help_works_for_every_command(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, [*path.split(), "--help"])
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: {' '.join(['stateless', *path.split()])}")


# --- node start


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """Stand-in for node.runner (the real one needs the whole node); records the config it was given."""
    module: Any = types.ModuleType("node.runner")
    state = types.SimpleNamespace(config=None, raise_=KeyboardInterrupt)

    async def run_node(config: NodeConfig, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        state.config = config

        async def fail() -> None:
            raise state.raise_()

        # Raised from a child task, so it reaches trio.run wrapped in an exception group, as a real
        # Ctrl-C or a failing service of the node would.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)

    module.run_node = run_node
    monkeypatch.setitem(sys.modules, "node.runner", module)
    root = logging.getLogger()
    level = root.level
    yield state
    root.setLevel(level)


def test_node_start_builds_config_and_stops_cleanly_on_ctrl_c(
    fake_runner: types.SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text("{}")
    peer = "/ip4/127.0.0.1/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
    code, out, err = _run(
        capsys,
        [
            "node", "start", "--data-dir", str(tmp_path / "data"), "--network", "testnet",
            "--rpc-port", "0", "--gossip-port", "0", "--genesis", str(genesis), "--bootstrap", peer,
            "--log-level", "debug", "--rpc-host", "0.0.0.0",
        ],
    )  # fmt: skip
    assert (code, out, err) == (0, "stopped\n", "")
    assert fake_runner.config == NodeConfig(
        data_dir=tmp_path / "data",
        network=pb.FARCASTER_NETWORK_TESTNET,
        rpc_host="0.0.0.0",
        rpc_port=0,
        gossip_host="127.0.0.1",
        gossip_port=0,
        bootstrap=(peer,),
        genesis=genesis,
    )
    assert logging.getLogger().level == logging.DEBUG


def test_node_start_failure_is_one_line(
    fake_runner: types.SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_runner.raise_ = lambda: OSError(98, "Address already in use")
    code, out, err = _run(capsys, ["node", "start", "--data-dir", str(tmp_path)])
    assert (code, out) == (1, "")
    _assert_one_error_line(err, "Address already in use")


def test_node_start_with_missing_genesis(
    fake_runner: types.SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, ["node", "start", "--data-dir", str(tmp_path), "--genesis", str(tmp_path / "no")]
    )
    assert code == 1 and fake_runner.config is None
    _assert_one_error_line(err, "genesis file not found")


# --- error handling


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(path: Path, *, force: bool = False) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("node.cli._keys_cmd.generate_key_file", interrupted)
    code, _, err = _run(capsys, ["keys", "new", "--out", str(tmp_path / "k.json")])
    assert code == 130
    _assert_one_error_line(err, "interrupted")


def test_unexpected_errors_are_one_line_unless_traceback_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(path: Path, *, force: bool = False) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("node.cli._keys_cmd.generate_key_file", broken)
    code, _, err = _run(capsys, ["keys", "new", "--out", str(tmp_path / "k.json")])
    assert code == 1
    _assert_one_error_line(err, "unexpected error: RuntimeError: boom")
    code, _, err = _run(capsys, ["--traceback", "keys", "new", "--out", str(tmp_path / "k.json")])
    assert code == 1 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")


# --- output and paging


def test_json_renders_bytes_as_hex_int64_as_numbers_and_enums_by_name() -> None:
    key = new_key(1)
    message = cast_add(key, 2**40, "hi", parent=pb.CastId(fid=7, hash=b"\x01" * 20), timestamp=100)
    d = to_dict(message)
    assert d["hash"] == "0x" + message.hash.hex()
    assert d["signer"] == "0x" + message.signer.hex()
    assert d["data_bytes"] == "0x" + message.data_bytes.hex()
    assert d["signature_scheme"] == "SIGNATURE_SCHEME_ED25519"
    assert d["data"]["fid"] == 2**40
    assert d["data"]["type"] == "MESSAGE_TYPE_CAST_ADD"
    assert d["data"]["cast_add_body"]["parent_cast_id"] == {"fid": 7, "hash": "0x" + "01" * 20}
    event = oc.OnChainEvent(type=oc.EVENT_TYPE_SIGNER, fid=3, transaction_hash=b"\xff" * 32)
    event.signer_event_body.key = b"\x02" * 32
    assert to_dict(event)["signer_event_body"]["key"] == "0x" + "02" * 32
    assert to_dict(event)["transaction_hash"] == "0x" + "ff" * 32


def test_human_output_shows_iso_time() -> None:
    message = cast_add(new_key(1), 9, "hello", timestamp=86_400)
    line = describe_message(message)
    assert iso_farcaster(86_400) == "2021-01-02T00:00:00Z"
    assert line.startswith("0x" + message.hash.hex()) and "2021-01-02T00:00:00Z" in line and '"hello"' in line
    assert format_duration(3725) == "1h 2m 5s" and format_duration(90_061) == "1d 1h 1m 1s"


def test_paginate_follows_tokens_up_to_the_limit() -> None:
    items = list(range(250))
    calls: list[tuple[int, bytes]] = []

    def fetch(page_size: int, token: bytes) -> tuple[list[int], bytes]:
        calls.append((page_size, token))
        start = int(token or b"0")
        end = min(start + page_size, len(items))
        return items[start:end], (str(end).encode() if end < len(items) else b"")

    assert paginate(fetch, 1000) == items
    assert [t for _, t in calls] == [b"", b"100", b"200"]
    calls.clear()
    assert paginate(fetch, 150) == items[:150]
    assert calls == [(100, b""), (50, b"100")]


def test_paginate_stops_on_a_hub_that_repeats_its_token() -> None:
    def fetch(page_size: int, token: bytes) -> tuple[list[int], bytes]:
        return [1], b"same"

    assert paginate(fetch, 10) == [1, 1]
