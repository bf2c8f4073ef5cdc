"""decode_message: the exact signed bytes, from data_bytes or from a JS client's `data`; hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import HubError
from protocols.messages import (
    blake3_160,
    decode_message,
    public_key_bytes,
    sign_message_data,
    validate_message,
)
from protocols.proto import message_pb2 as pb
from tests.factories import new_key

NOW = 100_000_000
NET = pb.FARCASTER_NETWORK_DEVNET
KEY = new_key(seed=1)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def vi(field: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(field << 3) + varint(value)


def envelope_without_data_bytes(data_payload: bytes) -> bytes:
    """Wire bytes of a Message as a JS client sends it: `data` (field 1) and no `data_bytes` (field 7)."""
    digest = blake3_160(data_payload)
    return (
        ld(1, data_payload)
        + ld(2, digest)
        + vi(3, pb.HASH_SCHEME_BLAKE3)
        + ld(4, KEY.sign(digest))
        + vi(5, pb.SIGNATURE_SCHEME_ED25519)
        + ld(6, public_key_bytes(KEY))
    )


def js_cast_payload() -> bytes:
    """A CAST_ADD MessageData whose CastAddBody has parent_url (field 7) before text (field 4), as ts-proto
    writes it in declaration order, while Python's protobuf writes fields in number order."""
    body = ld(7, b"https://example.com/channel") + ld(4, b"hi from js") + vi(8, pb.CAST)
    return vi(1, pb.MESSAGE_TYPE_CAST_ADD) + vi(2, 42) + vi(3, NOW) + vi(4, NET) + ld(5, body)


def expect_parse_failure(raw: bytes) -> HubError:
    with pytest.raises(HubError) as info:
        decode_message(raw)
    assert info.value.code == "bad_request.parse_failure"
    return info.value


def test_decode_with_data_bytes() -> None:
    data = pb.MessageData(type=pb.MESSAGE_TYPE_CAST_ADD, fid=7, timestamp=NOW, network=NET)
    data.cast_add_body.text = "hello"
    signed = sign_message_data(data, KEY)
    signed.ClearField("data")
    decoded = decode_message(signed.SerializeToString())
    assert decoded.data_bytes == signed.data_bytes
    assert decoded.data == data
    assert validate_message(decoded, network=NET, now=NOW) is decoded


def test_decode_data_bytes_wins_over_data() -> None:
    data = pb.MessageData(type=pb.MESSAGE_TYPE_CAST_ADD, fid=7, timestamp=NOW, network=NET)
    data.cast_add_body.text = "signed text"
    signed = sign_message_data(data, KEY)
    signed.data.cast_add_body.text = "tampered text"
    decoded = decode_message(signed.SerializeToString())
    assert decoded.data.cast_add_body.text == "signed text"


def test_js_client_message_keeps_exact_bytes_and_validates() -> None:
    payload = js_cast_payload()
    parsed = pb.MessageData.FromString(payload)
    # The point of the test: re-serialising would give other bytes and so a hash the client never signed.
    assert parsed.SerializeToString() != payload
    decoded = decode_message(envelope_without_data_bytes(payload))
    assert decoded.data_bytes == payload
    assert decoded.data.cast_add_body.parent_url == "https://example.com/channel"
    assert decoded.data.cast_add_body.text == "hi from js"
    validated = validate_message(decoded, network=NET, now=NOW)
    assert validated.data.fid == 42


def test_js_client_message_with_fields_in_any_envelope_order() -> None:
    payload = js_cast_payload()
    digest = blake3_160(payload)
    raw = (
        ld(6, public_key_bytes(KEY))
        + ld(2, digest)
        + vi(5, pb.SIGNATURE_SCHEME_ED25519)
        + ld(1, payload)
        + ld(4, KEY.sign(digest))
        + vi(3, pb.HASH_SCHEME_BLAKE3)
        + vi(99, 5)  # an unknown field must not confuse the scanner
    )
    decoded = decode_message(raw)
    assert decoded.data_bytes == payload
    validate_message(decoded, network=NET, now=NOW)


def test_empty_data_bytes_falls_back_to_data_field() -> None:
    payload = js_cast_payload()
    raw = envelope_without_data_bytes(payload) + ld(7, b"")
    assert decode_message(raw).data_bytes == payload


def test_duplicate_data_field_is_rejected() -> None:
    payload = js_cast_payload()
    raw = envelope_without_data_bytes(payload) + ld(1, vi(2, 43))
    # Protobuf itself merges the two occurrences without complaint.
    assert pb.Message.FromString(raw).data.fid == 43
    assert "more than once" in expect_parse_failure(raw).message


def test_neither_data_nor_data_bytes() -> None:
    digest = blake3_160(b"")
    expect_parse_failure(ld(2, digest) + vi(3, 1))
    expect_parse_failure(b"")
    expect_parse_failure(ld(1, b""))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a",  # field 1 key, no length
        b"\x0a\x05abc",  # length past the end
        b"\x08",  # varint field without a value
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # 11-byte varint
        b"\xff",
        b"\x00\x00",  # field number 0
        b"\x0b\x0c",  # group wire types
        b"\x0f",  # wire type 7
        b"not a protobuf at all, just text!",
    ],
    ids=["no-length", "overrun", "no-varint", "long-varint", "ff", "field-0", "group", "wire-7", "text"],
)
def test_malformed_input(raw: bytes) -> None:
    expect_parse_failure(raw)


def test_truncated_valid_message() -> None:
    raw = envelope_without_data_bytes(js_cast_payload())
    for cut in (1, 2, 10, len(raw) - 1):
        with pytest.raises(HubError) as info:
            decode_message(raw[:cut])
        assert info.value.code == "bad_request.parse_failure"


def test_data_field_with_wrong_wire_type() -> None:
    # Protobuf keeps a known field with the wrong wire type as an unknown field instead of failing.
    raw = vi(1, 5) + ld(2, bytes(20))
    assert not pb.Message.FromString(raw).HasField("data")
    assert "wire type" in expect_parse_failure(raw).message


def test_data_bytes_that_are_not_message_data() -> None:
    expect_parse_failure(ld(7, b"\xff\xff\xff"))
    expect_parse_failure(ld(1, b"\x0a\x09abc"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_only_raises_hub_error(raw: bytes) -> None:
    try:
        message = decode_message(raw)
    except HubError as exc:
        assert exc.code == "bad_request.parse_failure"
    else:
        assert message.data_bytes
        assert message.data == pb.MessageData.FromString(message.data_bytes)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60))
def test_decode_only_raises_hub_error_inside_data(payload: bytes) -> None:
    # Random bytes inside field 1 exercise the MessageData parser more than fully random envelopes.
    try:
        decode_message(ld(1, payload))
    except HubError as exc:
        assert exc.code == "bad_request.parse_failure"
