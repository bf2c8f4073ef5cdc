"""Stateless message validation: everything that can be checked from the message alone.

`decode_message` turns wire bytes into a `Message` whose `data_bytes` are exactly the bytes the client
hashed; `validate_message` checks hash, signature, header and body against Farcaster's protocol rules.
Checks that need state (is the signer an active key of the fid, is there storage) belong to the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from google.protobuf.message import DecodeError

from protocols.errors import HubError, validation_error
from protocols.messages._eip712 import verify_eth_address_claim
from protocols.messages._limits import (
    BLOCK_HASH_BYTES,
    ED25519_PUBLIC_KEY_BYTES,
    ED25519_SIGNATURE_BYTES,
    ETH_ADDRESS_BYTES,
    MAX_CAST_TEXT_BYTES,
    MAX_DATA_BYTES,
    MAX_EMBEDS,
    MAX_ENS_NAME_CHARS,
    MAX_FNAME_CHARS,
    MAX_GITHUB_CHARS,
    MAX_LINK_TYPE_BYTES,
    MAX_LONG_CAST_TEXT_BYTES,
    MAX_MENTIONS,
    MAX_TWITTER_CHARS,
    MAX_URL_BYTES,
    MESSAGE_HASH_BYTES,
    SOLANA_ADDRESS_BYTES,
    USER_DATA_VALUE_MAX_BYTES,
)
from protocols.messages._signing import blake3_160, ed25519_verify
from protocols.messages._time import MAX_FUTURE_SKEW_SECONDS
from protocols.proto import message_pb2 as pb

# Username formats, as Farcaster defines them. fullmatch + ASCII keeps Python's `$` (which also matches
# before a trailing newline) and Unicode `\d` from accepting names JavaScript's regexes reject.
FNAME_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,15}", re.ASCII)
TWITTER_PATTERN: Final = re.compile(r"[a-z0-9_]{0,15}", re.ASCII)
GITHUB_PATTERN: Final = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?!-)){0,38}", re.ASCII | re.IGNORECASE)
LOCATION_PATTERN: Final = re.compile(r"geo:(-?[0-9]{1,2}\.[0-9]{2}),(-?[0-9]{1,3}\.[0-9]{2})", re.ASCII)

#: Message types this hub accepts, each with the MessageData body field it must carry.
BODY_FOR_TYPE: Final[dict[int, str]] = {
    pb.MESSAGE_TYPE_CAST_ADD: "cast_add_body",
    pb.MESSAGE_TYPE_CAST_REMOVE: "cast_remove_body",
    pb.MESSAGE_TYPE_REACTION_ADD: "reaction_body",
    pb.MESSAGE_TYPE_REACTION_REMOVE: "reaction_body",
    pb.MESSAGE_TYPE_LINK_ADD: "link_body",
    pb.MESSAGE_TYPE_LINK_REMOVE: "link_body",
    pb.MESSAGE_TYPE_USER_DATA_ADD: "user_data_body",
    pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS: "verification_add_address_body",
    pb.MESSAGE_TYPE_VERIFICATION_REMOVE: "verification_remove_body",
}

# Wire-level field numbers of oneof members. Python's protobuf keeps only the last member of a oneof
# seen on the wire, while Farcaster's ts-proto decoder keeps all of them and rejects the message; we
# look at the raw bytes so both implementations reject the same messages.
_MESSAGE_DATA_BODY_FIELDS: Final = frozenset({5, 6, 7, 9, 10, 12, 14, 15, 16, 17})
_CAST_ADD_BODY_FIELD: Final = 5
_CAST_PARENT_FIELDS: Final = frozenset({3, 7})
_CAST_EMBEDS_FIELD: Final = 6
_EMBED_FIELDS: Final = frozenset({1, 2})
_REACTION_BODY_FIELD: Final = 7
_REACTION_TARGET_FIELDS: Final = frozenset({2, 3})

_WIRE_VARINT: Final = 0
_WIRE_I64: Final = 1
_WIRE_LEN: Final = 2
_WIRE_I32: Final = 5
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1


def _parse_failure(msg: str) -> HubError:
    return HubError("bad_request.parse_failure", msg)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; returns (value, next position)."""
    value = 0
    for i in range(10):
        if pos >= len(buf):
            raise _parse_failure("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise _parse_failure("varint longer than 10 bytes")


def _scan_fields(buf: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (field number, wire type, payload) for each top-level field of a serialised message.

    The payload of a length-delimited field is its exact content bytes. Groups (wire types 3 and 4) are
    not used by any Farcaster message and are rejected with the rest of malformed input.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire_type = key >> 3, key & 0x7
        if not 0 < field <= _MAX_FIELD_NUMBER:
            raise _parse_failure(f"invalid field number {field}")
        start = pos
        if wire_type == _WIRE_VARINT:
            _, pos = _read_varint(buf, pos)
        elif wire_type == _WIRE_I64:
            pos += 8
        elif wire_type == _WIRE_I32:
            pos += 4
        elif wire_type == _WIRE_LEN:
            length, start = _read_varint(buf, pos)
            pos = start + length
        else:
            raise _parse_failure(f"unsupported wire type {wire_type} for field {field}")
        if pos > end:
            raise _parse_failure(f"field {field} runs past the end of the input")
        yield field, wire_type, buf[start:pos]


def _count_fields(buf: bytes, fields: frozenset[int]) -> int:
    return sum(1 for field, _, _ in _scan_fields(buf) if field in fields)


def _parse_message_data(data_bytes: bytes) -> pb.MessageData:
    try:
        return pb.MessageData.FromString(data_bytes)
    except DecodeError as exc:
        raise _parse_failure(f"data_bytes is not a valid MessageData: {exc}") from exc


def decode_message(raw: bytes) -> pb.Message:
    """Parse the wire bytes of a `Message`, making `data_bytes` the exact bytes the client signed.

    Farcaster's JavaScript clients send only `data` (field 1); our protobuf library might serialise it
    differently from theirs, so the bytes of field 1 are taken verbatim from `raw`. `data` is then always
    re-parsed from `data_bytes`, so it shows exactly what was signed. Raises `HubError`
    (`bad_request.parse_failure`) on malformed input or when neither `data` nor `data_bytes` is present.
    """
    try:
        message = pb.Message.FromString(raw)
    except DecodeError as exc:
        raise _parse_failure(f"not a valid Message: {exc}") from exc
    if not message.data_bytes:
        data_fields = [(wire_type, payload) for field, wire_type, payload in _scan_fields(raw) if field == 1]
        if len(data_fields) > 1:
            # Protobuf would merge repeated occurrences; that merged value was never what anyone signed.
            raise _parse_failure("field data appears more than once")
        if not data_fields or not data_fields[0][1]:
            raise _parse_failure("message has neither data nor data_bytes")
        wire_type, payload = data_fields[0]
        if wire_type != _WIRE_LEN:
            raise _parse_failure("field data has the wrong wire type")
        message.data_bytes = payload
    message.data.CopyFrom(_parse_message_data(message.data_bytes))
    return message


def split_messages(raw: bytes, field: int = 1) -> list[bytes]:
    """The exact bytes of each `Message` in repeated field `field` of a serialised request.

    SubmitBulkMessagesRequest carries whole messages; re-serialising a parsed copy could change the bytes
    of a `data` that a client signed without sending `data_bytes`, so each is cut out verbatim.
    """
    out: list[bytes] = []
    for number, wire_type, payload in _scan_fields(raw):
        if number == field:
            if wire_type != _WIRE_LEN:
                raise _parse_failure(f"field {field} has the wrong wire type")
            out.append(payload)
    return out


def _utf8_len(value: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:  # lone surrogates can only come from a locally built message
        raise validation_error("body", "string is not valid UTF-8") from exc


def _check_url(url: str, what: str) -> None:
    size = _utf8_len(url)
    if size < 1:
        raise validation_error("body", f"{what} must not be empty")
    if size > MAX_URL_BYTES:
        raise validation_error("body", f"{what} is {size} bytes, more than {MAX_URL_BYTES}")


def _check_cast_id(cast_id: pb.CastId, what: str) -> None:
    if cast_id.fid == 0:
        raise validation_error("body", f"{what} fid is missing")
    if len(cast_id.hash) != MESSAGE_HASH_BYTES:
        raise validation_error("body", f"{what} hash must be {MESSAGE_HASH_BYTES} bytes")


def _check_cast_add(body: pb.CastAddBody, raw_body: bytes | None) -> None:
    text_bytes = _utf8_len(body.text)
    if body.type == pb.CAST:
        if text_bytes > MAX_CAST_TEXT_BYTES:
            raise validation_error(
                "text_too_long", f"text is {text_bytes} bytes, more than {MAX_CAST_TEXT_BYTES}"
            )
    elif body.type == pb.LONG_CAST:
        if text_bytes > MAX_LONG_CAST_TEXT_BYTES:
            raise validation_error(
                "text_too_long", f"long cast text is {text_bytes} bytes, more than {MAX_LONG_CAST_TEXT_BYTES}"
            )
        if text_bytes <= MAX_CAST_TEXT_BYTES:
            raise validation_error(
                "text_too_long", f"long cast text must be more than {MAX_CAST_TEXT_BYTES} bytes"
            )
    else:
        raise validation_error("body", f"unknown cast type {body.type}")
    if len(body.embeds) > MAX_EMBEDS:
        raise validation_error("too_many_embeds", f"{len(body.embeds)} embeds, at most {MAX_EMBEDS} allowed")
    if body.embeds_deprecated:
        # Farcaster accepted string embeds only before 2023-05-03; every new message must use `embeds`.
        raise validation_error("body", "string embeds (embeds_deprecated) are no longer accepted")
    if len(body.mentions) > MAX_MENTIONS:
        raise validation_error(
            "too_many_mentions", f"{len(body.mentions)} mentions, at most {MAX_MENTIONS} allowed"
        )
    if len(body.mentions) != len(body.mentions_positions):
        raise validation_error("body", "mentions and mentions_positions must have the same length")
    if raw_body is not None and _count_fields(raw_body, _CAST_PARENT_FIELDS) > 1:
        raise validation_error("body", "a cast cannot have both parent_url and parent_cast_id")
    if text_bytes == 0 and not body.embeds and not body.mentions:
        raise validation_error("body", "cast is empty")
    if raw_body is not None:
        raw_embeds = [
            payload
            for field, wire_type, payload in _scan_fields(raw_body)
            if field == _CAST_EMBEDS_FIELD and wire_type == _WIRE_LEN
        ]
        for raw_embed in raw_embeds:
            if _count_fields(raw_embed, _EMBED_FIELDS) > 1:
                raise validation_error("body", "an embed cannot have both url and cast_id")
    for embed in body.embeds:
        kind = embed.WhichOneof("embed")
        if kind == "url":
            _check_url(embed.url, "embed url")
        elif kind == "cast_id":
            _check_cast_id(embed.cast_id, "embed cast_id")
        else:
            raise validation_error("body", "an embed must have a url or a cast_id")
    previous = 0
    for mention, position in zip(body.mentions, body.mentions_positions, strict=True):
        if mention == 0:
            raise validation_error("body", "a mentioned fid is missing")
        if position > text_bytes:
            raise validation_error("body", "mentions_positions must be byte positions within the text")
        if position < previous:
            raise validation_error("body", "mentions_positions must be in ascending order")
        previous = position
    parent = body.WhichOneof("parent")
    if parent == "parent_url":
        _check_url(body.parent_url, "parent_url")
    elif parent == "parent_cast_id":
        _check_cast_id(body.parent_cast_id, "parent_cast_id")


def _check_cast_remove(body: pb.CastRemoveBody) -> None:
    if len(body.target_hash) != MESSAGE_HASH_BYTES:
        raise validation_error("body", f"target_hash must be {MESSAGE_HASH_BYTES} bytes")


def _check_reaction(body: pb.ReactionBody, raw_body: bytes | None) -> None:
    if body.type not in (pb.REACTION_TYPE_LIKE, pb.REACTION_TYPE_RECAST):
        raise validation_error("body", f"invalid reaction type {body.type}")
    if raw_body is not None and _count_fields(raw_body, _REACTION_TARGET_FIELDS) > 1:
        raise validation_error("body", "a reaction cannot have both target_url and target_cast_id")
    target = body.WhichOneof("target")
    if target == "target_url":
        _check_url(body.target_url, "target_url")
    elif target == "target_cast_id":
        _check_cast_id(body.target_cast_id, "target_cast_id")
    else:
        raise validation_error("body", "reaction target is missing")


def _check_link(body: pb.LinkBody) -> None:
    size = _utf8_len(body.type)
    if not 1 <= size <= MAX_LINK_TYPE_BYTES:
        raise validation_error("body", f"link type must be between 1 and {MAX_LINK_TYPE_BYTES} bytes")
    if body.WhichOneof("target") != "target_fid" or body.target_fid == 0:
        raise validation_error("body", "link target_fid is missing")


def _fname_problem(name: str) -> str | None:
    if len(name) > MAX_FNAME_CHARS:
        return f"fname {name!r} is longer than {MAX_FNAME_CHARS} characters"
    if not FNAME_PATTERN.fullmatch(name):
        return f"fname {name!r} must be lowercase letters, digits and hyphens, not starting with a hyphen"
    return None


def _ens_problem(name: str) -> str | None:
    if not name.endswith(".eth"):
        return f"ENS name {name!r} does not end with .eth"
    labels = name.split(".")
    if len(labels) != 2:
        return f"ENS name {name!r} has a subdomain"
    if len(name) > MAX_ENS_NAME_CHARS:
        return f"ENS name {name!r} is longer than {MAX_ENS_NAME_CHARS} characters"
    label = labels[0]
    if not FNAME_PATTERN.fullmatch(label):
        return f"ENS name {name!r} must be lowercase letters, digits and hyphens"
    # ENSIP-15 normalisation rejects "--" in the third and fourth positions (reserved for punycode). It is
    # the only normalisation rule that an ASCII label already matching the fname pattern can break.
    if label[2:4] == "--":
        return f"ENS name {name!r} is not normalised (hyphens in positions 3 and 4)"
    return None


def _check_location(value: str) -> None:
    if value == "":  # clears the location
        return
    match = LOCATION_PATTERN.fullmatch(value)
    if match is None:
        raise validation_error("body", "location must look like geo:<lat>,<long> with two decimals")
    latitude, longitude = float(match.group(1)), float(match.group(2))
    if not -90 <= latitude <= 90:
        raise validation_error("body", "latitude is outside -90..90")
    if not -180 <= longitude <= 180:
        raise validation_error("body", "longitude is outside -180..180")


def _check_user_data(body: pb.UserDataBody) -> None:
    udtype, value = body.type, body.value
    size = _utf8_len(value)
    max_bytes = USER_DATA_VALUE_MAX_BYTES.get(udtype)
    if max_bytes is not None:
        if size > max_bytes:
            name = pb.UserDataType.Name(udtype)
            raise validation_error("body", f"{name} value is {size} bytes, more than {max_bytes}")
    elif udtype == pb.USER_DATA_TYPE_USERNAME:
        if value != "":  # an empty username removes it
            fname_problem = _fname_problem(value)
            if fname_problem is not None and _ens_problem(value) is not None:
                raise validation_error(
                    "body", f"username is neither an fname nor an ENS name: {fname_problem}"
                )
    elif udtype == pb.USER_DATA_TYPE_LOCATION:
        _check_location(value)
    elif udtype == pb.USER_DATA_TYPE_TWITTER:
        if value == "":
            raise validation_error("body", "twitter username is missing")
        if len(value) > MAX_TWITTER_CHARS or not TWITTER_PATTERN.fullmatch(value):
            raise validation_error(
                "body", f"twitter username must be at most {MAX_TWITTER_CHARS} of a-z, 0-9 and _"
            )
    elif udtype == pb.USER_DATA_TYPE_GITHUB:
        if value == "":
            raise validation_error("body", "github username is missing")
        if len(value) > MAX_GITHUB_CHARS or not GITHUB_PATTERN.fullmatch(value):
            raise validation_error(
                "body",
                f"github username must be at most {MAX_GITHUB_CHARS} letters, digits or single hyphens",
            )
    else:
        raise validation_error("body", f"invalid user data type {udtype}")


def _check_verification_add(body: pb.VerificationAddAddressBody, fid: int, network: int) -> None:
    if body.protocol == pb.PROTOCOL_SOLANA:
        raise validation_error("body", "Solana address verifications are not supported yet")
    if body.protocol != pb.PROTOCOL_ETHEREUM:
        raise validation_error("body", f"unknown verification protocol {body.protocol}")
    if body.verification_type == 1:
        # ERC-1271 contract signatures can only be checked by calling the contract on chain.
        raise validation_error("body", "contract (ERC-1271) verifications are not supported yet")
    if body.verification_type != 0:
        raise validation_error("body", f"unknown verification type {body.verification_type}")
    if body.chain_id != 0:
        raise validation_error("body", "chain_id must be 0 for EOA verifications")
    if len(body.address) != ETH_ADDRESS_BYTES:
        raise validation_error("body", f"Ethereum address must be {ETH_ADDRESS_BYTES} bytes")
    if len(body.block_hash) != BLOCK_HASH_BYTES:
        raise validation_error("body", f"block_hash must be {BLOCK_HASH_BYTES} bytes")
    if not verify_eth_address_claim(fid, body.address, body.block_hash, network, body.claim_signature):
        raise validation_error(
            "claim_signature", "claim_signature is not a valid EIP-712 signature by address"
        )


def _check_verification_remove(body: pb.VerificationRemoveBody) -> None:
    if body.protocol == pb.PROTOCOL_ETHEREUM:
        expected = ETH_ADDRESS_BYTES
    elif body.protocol == pb.PROTOCOL_SOLANA:
        # Removing is a plain tombstone that needs no chain check, so Farcaster's Solana rule applies as is.
        expected = SOLANA_ADDRESS_BYTES
    else:
        raise validation_error("body", f"unknown verification protocol {body.protocol}")
    if len(body.address) != expected:
        raise validation_error("body", f"address must be {expected} bytes for this protocol")


def _field_payload(buf: bytes, field: int) -> bytes:
    """The content of the (single, already counted) length-delimited `field` in `buf`."""
    for number, wire_type, payload in _scan_fields(buf):
        if number == field and wire_type == _WIRE_LEN:
            return payload
    return b""


def _check_body(data: pb.MessageData, data_bytes: bytes | None) -> None:
    """Body rules; `data_bytes` is None when it is known to hold no repeated oneof members."""
    body = data.WhichOneof("body")
    if body == "cast_add_body":
        raw = None if data_bytes is None else _field_payload(data_bytes, _CAST_ADD_BODY_FIELD)
        _check_cast_add(data.cast_add_body, raw)
    elif body == "cast_remove_body":
        _check_cast_remove(data.cast_remove_body)
    elif body == "reaction_body":
        raw = None if data_bytes is None else _field_payload(data_bytes, _REACTION_BODY_FIELD)
        _check_reaction(data.reaction_body, raw)
    elif body == "link_body":
        _check_link(data.link_body)
    elif body == "user_data_body":
        _check_user_data(data.user_data_body)
    elif body == "verification_add_address_body":
        _check_verification_add(data.verification_add_address_body, data.fid, data.network)
    elif body == "verification_remove_body":
        _check_verification_remove(data.verification_remove_body)
    else:  # unreachable after the type check in validate_message; kept so a new type cannot slip through
        raise validation_error("message_type", f"no body rules for {body}")


def validate_message(message: pb.Message, *, network: int, now: int) -> pb.Message:
    """Check everything about `message` that needs no hub state; raise `HubError` on the first failure.

    `network` is the network this hub serves and `now` the current Farcaster time in seconds. Checks run
    in a fixed order (size, hash, signature, header, type, body), so a message always fails with the same
    code. Returns `message` with `data` replaced in place by the parse of `data_bytes`, the bytes signed.
    """
    data_bytes = message.data_bytes
    if not data_bytes:
        raise _parse_failure("data_bytes is missing")
    if len(data_bytes) > MAX_DATA_BYTES:
        raise validation_error(
            "data_too_large", f"data_bytes is {len(data_bytes)} bytes, more than {MAX_DATA_BYTES}"
        )

    if message.hash_scheme != pb.HASH_SCHEME_BLAKE3:
        raise validation_error("hash", "hash_scheme must be BLAKE3")
    if len(message.hash) != MESSAGE_HASH_BYTES:
        raise validation_error("hash", f"hash must be {MESSAGE_HASH_BYTES} bytes")
    if message.hash != blake3_160(data_bytes):
        raise validation_error("hash", "hash is not the BLAKE3-160 digest of data_bytes")

    if message.signature_scheme != pb.SIGNATURE_SCHEME_ED25519:
        raise validation_error("signature", "signature_scheme must be ED25519")
    if len(message.signer) != ED25519_PUBLIC_KEY_BYTES:
        raise validation_error("signature", f"signer must be a {ED25519_PUBLIC_KEY_BYTES}-byte Ed25519 key")
    if len(message.signature) != ED25519_SIGNATURE_BYTES:
        raise validation_error("signature", f"signature must be {ED25519_SIGNATURE_BYTES} bytes")
    if not ed25519_verify(message.signer, message.signature, message.hash):
        raise validation_error("signature", "signature does not verify for signer")

    data = _parse_message_data(data_bytes)
    message.data.CopyFrom(data)

    if data.fid == 0:
        raise validation_error("fid", "fid is missing")
    if data.network != network:
        raise validation_error("network", f"message is for network {data.network}, this hub serves {network}")
    if data.timestamp > now + MAX_FUTURE_SKEW_SECONDS:
        raise validation_error(
            "timestamp", f"timestamp is more than {MAX_FUTURE_SKEW_SECONDS} s in the future"
        )

    expected_body = BODY_FOR_TYPE.get(data.type)
    if expected_body is None:
        raise validation_error("message_type", f"unsupported message type {data.type}")
    # Bytes that equal our own serialisation of what we parsed cannot hold a oneof member twice (we
    # would have written it once), so the raw scans for that are skipped: the common case, since most
    # clients serialise fields in field-number order as we do.
    canonical = data.SerializeToString() == data_bytes
    if canonical:
        if data.WhichOneof("body") is None:
            raise validation_error("message_type", "exactly one body must be set")
    elif _count_fields(data_bytes, _MESSAGE_DATA_BODY_FIELDS) != 1:
        raise validation_error("message_type", "exactly one body must be set")
    if data.WhichOneof("body") != expected_body:
        raise validation_error(
            "message_type",
            f"{pb.MessageType.Name(data.type)} needs {expected_body}, got {data.WhichOneof('body')}",
        )
    _check_body(data, None if canonical else data_bytes)
    return message
