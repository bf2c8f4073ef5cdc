"""Signer key files (node.keys): format, permissions, overwrite protection, and rejection of bad files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from node.keys import generate_key_file, load_key_file, parse_public_key_hex, public_key_hex
from protocols.errors import HubError
from protocols.messages._signing import public_key_bytes


def _private_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Run with umask 0, so any permission bit the code does not clear itself would show."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "signer.json"
    key = generate_key_file(path)
    loaded = load_key_file(path)
    assert _private_bytes(loaded) == _private_bytes(key)
    document = json.loads(path.read_text())
    assert document["type"] == "ed25519"
    assert document["public_key"] == "0x" + public_key_bytes(key).hex() == public_key_hex(key)
    assert document["private_key"] == "0x" + _private_bytes(key).hex()


def test_each_file_gets_a_fresh_key(tmp_path: Path) -> None:
    a = generate_key_file(tmp_path / "a.json")
    b = generate_key_file(tmp_path / "b.json")
    assert public_key_bytes(a) != public_key_bytes(b)


@pytest.mark.usefixtures("umask_zero")
def test_file_mode_is_0600_and_parents_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "signer.json"
    generate_key_file(path)
    assert _mode(path) == 0o600


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "signer.json"
    generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(HubError) as info:
        generate_key_file(path)
    assert info.value.code == "bad_request.invalid_param"
    assert str(path) in info.value.message and "already exists" in info.value.message
    assert path.read_bytes() == before


@pytest.mark.usefixtures("umask_zero")
def test_force_replaces_the_key_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "signer.json"
    old = generate_key_file(path)
    path.chmod(0o644)
    new = generate_key_file(path, force=True)
    assert public_key_bytes(new) != public_key_bytes(old)
    assert _private_bytes(load_key_file(path)) == _private_bytes(new)
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signer.json"]  # no temporary file left behind


def test_unwritable_location_is_a_hub_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(HubError) as info:
        generate_key_file(blocker / "signer.json")
    assert info.value.code == "bad_request.invalid_param"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(HubError) as info:
        load_key_file(path)
    assert info.value.code == "bad_request.invalid_param"
    assert info.value.message == f"{path}: key file not found"


def _valid_document() -> dict[str, str]:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    return {
        "type": "ed25519",
        "public_key": public_key_hex(key),
        "private_key": "0x" + bytes(range(32)).hex(),
    }


def _other_public_key() -> str:
    return public_key_hex(Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "invalid JSON"),
        ("{not json", "invalid JSON"),
        (b"\xff\xfe\x00garbage", "cannot read key file"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**_valid_document(), "type": "secp256k1"}), "unsupported key type 'secp256k1'"),
        (
            json.dumps({k: v for k, v in _valid_document().items() if k != "type"}),
            "unsupported key type None",
        ),
        (json.dumps({**_valid_document(), "private_key": "0x1234"}), "private_key must be 32 bytes"),
        (json.dumps({**_valid_document(), "private_key": "zz" * 32}), "private_key must be 32 bytes"),
        (json.dumps({**_valid_document(), "private_key": 5}), "private_key must be 32 bytes"),
        (
            json.dumps({k: v for k, v in _valid_document().items() if k != "public_key"}),
            "public_key must be 32",
        ),
        (json.dumps({**_valid_document(), "public_key": "0x" + "ab" * 31}), "public_key must be 32 bytes"),
        (json.dumps({**_valid_document(), "public_key": _other_public_key()}), "does not match private_key"),
    ],
)
def test_bad_files_are_rejected_with_path_and_reason(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = tmp_path / "signer.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(HubError) as info:
        load_key_file(path)
    assert info.value.code == "bad_request.invalid_param"
    assert info.value.message.startswith(f"{path}: ")
    assert expected in info.value.message


def test_valid_handwritten_file_without_0x_prefixes_loads(tmp_path: Path) -> None:
    document = _valid_document()
    document = {k: v.removeprefix("0x").upper() if k != "type" else v for k, v in document.items()}
    path = tmp_path / "signer.json"
    path.write_text(json.dumps(document))
    assert _private_bytes(load_key_file(path)) == bytes(range(32))


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(HubError) as info:
        load_key_file(tmp_path)
    assert info.value.message.startswith(f"{tmp_path}: cannot read key file")


@pytest.mark.parametrize("text", ["0x" + "ab" * 32, "ab" * 32, "0X" + "AB" * 32, "  0x" + "ab" * 32 + "\n"])
def test_parse_public_key_hex_accepts(text: str) -> None:
    assert parse_public_key_hex(text) == b"\xab" * 32


@pytest.mark.parametrize(
    "text", ["", "0x", "0x" + "ab" * 31, "0x" + "ab" * 33, "0x" + "zz" * 32, "0x0x" + "ab" * 31]
)
def test_parse_public_key_hex_rejects(text: str) -> None:
    with pytest.raises(HubError) as info:
        parse_public_key_hex(text)
    assert info.value.code == "bad_request.invalid_param"
