"""validate_message: known-answer vectors and every stateless rule at its boundary."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.message import Message

from protocols.errors import HubError
from protocols.messages import (
    BODY_FOR_TYPE,
    MAX_BIO_BYTES,
    MAX_CAST_TEXT_BYTES,
    MAX_DATA_BYTES,
    MAX_DISPLAY_BYTES,
    MAX_EMBEDS,
    MAX_GITHUB_CHARS,
    MAX_LINK_TYPE_BYTES,
    MAX_LONG_CAST_TEXT_BYTES,
    MAX_MENTIONS,
    MAX_PFP_BYTES,
    MAX_TWITTER_CHARS,
    MAX_URL_BYTES,
    MAX_USER_URL_BYTES,
    blake3_160,
    ed25519_verify,
    public_key_bytes,
    sign_eth_address_claim,
    sign_message_data,
    validate_message,
)
from protocols.proto import message_pb2 as pb
from tests.factories import new_key

NOW = 100_000_000
NET = pb.FARCASTER_NETWORK_DEVNET
KEY = new_key(seed=1)
FID = 42
HASH20 = bytes(range(20))
ETH_KEY = bytes([1]) * 32
BLOCK_HASH = bytes([9]) * 32

# ---------------------------------------------------------------------------------------------- helpers


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
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def header(mtype: int, *, fid: int = FID, timestamp: int = NOW, network: int = NET) -> pb.MessageData:
    return pb.MessageData(type=mtype, fid=fid, timestamp=timestamp, network=network)  # type: ignore[arg-type]


def sign_bytes(data_bytes: bytes) -> pb.Message:
    """Sign exactly `data_bytes` (for bytes built by hand that protobuf would not produce)."""
    digest = blake3_160(data_bytes)
    return pb.Message(
        data_bytes=data_bytes,
        hash=digest,
        hash_scheme=pb.HASH_SCHEME_BLAKE3,
        signature=KEY.sign(digest),
        signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
        signer=public_key_bytes(KEY),
    )


def validate(message: pb.Message | pb.MessageData) -> pb.Message:
    if isinstance(message, pb.MessageData):
        message = sign_message_data(message, KEY)
    return validate_message(message, network=NET, now=NOW)


def rejects(message: pb.Message | pb.MessageData, kind: str) -> HubError:
    """Assert that validation fails with `bad_request.validation_failure.<kind>` (or `parse_failure`)."""
    with pytest.raises(HubError) as info:
        validate(message)
    expected = (
        "bad_request.parse_failure" if kind == "parse_failure" else f"bad_request.validation_failure.{kind}"
    )
    assert info.value.code == expected, info.value
    return info.value


def cast(text: str = "hello", *, cast_type: int = pb.CAST) -> pb.MessageData:
    data = header(pb.MESSAGE_TYPE_CAST_ADD)
    data.cast_add_body.text = text
    data.cast_add_body.type = cast_type  # type: ignore[assignment]
    return data


def with_mentions(data: pb.MessageData, mentions: list[int], positions: list[int]) -> pb.MessageData:
    data.cast_add_body.mentions.extend(mentions)
    data.cast_add_body.mentions_positions.extend(positions)
    return data


def url_of(size: int) -> str:
    prefix = "https://e.com/"
    return prefix + "a" * (size - len(prefix))


def reaction(mtype: int = pb.MESSAGE_TYPE_REACTION_ADD, rtype: int = pb.REACTION_TYPE_LIKE) -> pb.MessageData:
    data = header(mtype)
    data.reaction_body.type = rtype  # type: ignore[assignment]
    return data


def link(
    link_type: str = "follow", target: int | None = 7, mtype: int = pb.MESSAGE_TYPE_LINK_ADD
) -> pb.MessageData:
    data = header(mtype)
    data.link_body.type = link_type
    if target is not None:
        data.link_body.target_fid = target
    return data


def user_data(udtype: int, value: str) -> pb.MessageData:
    data = header(pb.MESSAGE_TYPE_USER_DATA_ADD)
    data.user_data_body.type = udtype  # type: ignore[assignment]
    data.user_data_body.value = value
    return data


def verification_add(
    *, fid: int = FID, network: int = NET, block_hash: bytes = BLOCK_HASH, key: bytes = ETH_KEY
) -> pb.MessageData:
    """A VERIFICATION_ADD_ETH_ADDRESS whose claim is signed for (`fid`, `network`, `block_hash`)."""
    address, signature = sign_eth_address_claim(key, fid, block_hash, network)
    data = header(pb.MESSAGE_TYPE_VERIFICATION_ADD_ETH_ADDRESS)
    body = data.verification_add_address_body
    body.address = address
    body.block_hash = BLOCK_HASH
    body.claim_signature = signature
    body.protocol = pb.PROTOCOL_ETHEREUM
    return data


def verification_remove(address: bytes, protocol: int = pb.PROTOCOL_ETHEREUM) -> pb.MessageData:
    data = header(pb.MESSAGE_TYPE_VERIFICATION_REMOVE)
    data.verification_remove_body.address = address
    data.verification_remove_body.protocol = protocol  # type: ignore[assignment]
    return data


# ------------------------------------------------------------------------------------- known answers

KNOWN_DATA_BYTES = "080110011880c2d72f20032a0d220b68656c6c6f20776f726c64"
KNOWN_HASH = "88b44ad98ac0973c6403eebb0284838b2c9b073d"
KNOWN_SIGNER = "4cb5abf6ad79fbf5abbccafcc269d85cd2651ed4b885b5869f241aedf0a5ba29"
KNOWN_SIGNATURE = (
    "3becf1e053dc8c4976438c3da215f5d5956f7483c070ff7cbbcb47f63dd7797e"
    "8a451210c0207cf9c251d8ad86ccaf7937a7de2dcb482c6d9fa262f1343e3506"
)


def test_blake3_independent_vector() -> None:
    # BLAKE3("") from the BLAKE3 reference test vectors, truncated to 20 bytes.
    digest = blake3_160(b"")
    assert digest.hex().startswith("af1349b9f5f9a1a6a0404dea36dcc949")
    assert digest.hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9"


def test_ed25519_rfc8032_vector() -> None:
    # RFC 8032 section 7.1, TEST 1 (empty message).
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
        "d25bf5f0595bbe24655141438e7a100b"
    )
    assert ed25519_verify(public, signature, b"")
    assert not ed25519_verify(public, signature, b"x")


def test_known_answer_message() -> None:
    data = pb.MessageData(type=pb.MESSAGE_TYPE_CAST_ADD, fid=1, timestamp=NOW, network=NET)
    data.cast_add_body.text = "hello world"
    message = sign_message_data(data, new_key(seed=1))
    assert message.data_bytes.hex() == KNOWN_DATA_BYTES
    assert message.hash.hex() == KNOWN_HASH
    assert message.signer.hex() == KNOWN_SIGNER
    assert message.signature.hex() == KNOWN_SIGNATURE
    assert validate(message).data == data


def test_known_answer_from_hard_coded_bytes() -> None:
    message = pb.Message(
        data_bytes=bytes.fromhex(KNOWN_DATA_BYTES),
        hash=bytes.fromhex(KNOWN_HASH),
        hash_scheme=pb.HASH_SCHEME_BLAKE3,
        signature=bytes.fromhex(KNOWN_SIGNATURE),
        signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
        signer=bytes.fromhex(KNOWN_SIGNER),
    )
    assert validate(message).data.cast_add_body.text == "hello world"


# ------------------------------------------------------------------------------------------ envelope


def test_data_bytes_missing() -> None:
    message = sign_message_data(cast(), KEY)
    message.ClearField("data_bytes")
    rejects(message, "parse_failure")


def test_data_replaced_by_what_was_signed() -> None:
    message = sign_message_data(cast("signed"), KEY)
    message.data.cast_add_body.text = "not signed"
    assert validate(message).data.cast_add_body.text == "signed"


def test_data_bytes_not_message_data() -> None:
    rejects(sign_bytes(b"\xff\xff\xff"), "parse_failure")


def padded(size: int) -> bytes:
    """A valid CAST_ADD data_bytes padded with an unknown field to exactly `size` bytes."""
    base = cast().SerializeToString()
    key = varint(1000 << 3 | 2)
    for length in range(size):
        total = len(base) + len(key) + len(varint(length)) + length
        if total == size:
            return base + key + varint(length) + b"x" * length
    raise AssertionError(f"cannot pad to {size}")


def test_data_bytes_size_limit() -> None:
    assert len(padded(MAX_DATA_BYTES)) == MAX_DATA_BYTES
    validate(sign_bytes(padded(MAX_DATA_BYTES)))
    rejects(sign_bytes(padded(MAX_DATA_BYTES + 1)), "data_too_large")


def replace(
    field: str, value: Callable[[pb.Message], object], *, resign: bool = False
) -> Callable[[pb.Message], None]:
    """A mutation setting `field` to `value(message)`.

    `resign` signs the changed hash again, so that only the hash check can fail.
    """

    def mutate(message: pb.Message) -> None:
        setattr(message, field, value(message))
        if resign:
            message.signature = KEY.sign(message.hash)

    return mutate


def flip_first_bit(raw: bytes) -> bytes:
    return bytes([raw[0] ^ 1]) + raw[1:]


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        pytest.param(replace("hash_scheme", lambda m: pb.HASH_SCHEME_NONE), "hash", id="hash-scheme-none"),
        pytest.param(replace("hash_scheme", lambda m: 2), "hash", id="hash-scheme-unknown"),
        pytest.param(replace("hash", lambda m: m.hash[:19], resign=True), "hash", id="hash-19"),
        pytest.param(replace("hash", lambda m: m.hash + b"\x00", resign=True), "hash", id="hash-21"),
        pytest.param(
            replace("hash", lambda m: flip_first_bit(m.hash), resign=True), "hash", id="hash-mismatch"
        ),
        pytest.param(replace("hash", lambda m: b""), "hash", id="hash-empty"),
        pytest.param(
            replace("signature_scheme", lambda m: pb.SIGNATURE_SCHEME_EIP712),
            "signature",
            id="sig-scheme-eip712",
        ),
        pytest.param(
            replace("signature_scheme", lambda m: pb.SIGNATURE_SCHEME_NONE), "signature", id="sig-scheme-none"
        ),
        pytest.param(replace("signer", lambda m: m.signer[:31]), "signature", id="signer-31"),
        pytest.param(replace("signer", lambda m: b""), "signature", id="signer-empty"),
        pytest.param(replace("signature", lambda m: m.signature[:63]), "signature", id="sig-63"),
        pytest.param(replace("signature", lambda m: m.signature + b"\x00"), "signature", id="sig-65"),
        pytest.param(
            replace("signature", lambda m: flip_first_bit(m.signature)), "signature", id="sig-flipped"
        ),
        pytest.param(
            replace("signer", lambda m: public_key_bytes(new_key(seed=2))), "signature", id="other-signer"
        ),
        pytest.param(
            replace("signature", lambda m: new_key(seed=2).sign(m.hash)),
            "signature",
            id="signed-by-other-key",
        ),
    ],
)
def test_hash_and_signature(mutate: Callable[[pb.Message], None], kind: str) -> None:
    message = sign_message_data(cast(), KEY)
    validate(message)
    mutate(message)
    rejects(message, kind)


def test_hash_checked_over_data_bytes_not_data() -> None:
    message = sign_message_data(cast("one"), KEY)
    message.data_bytes = cast("two").SerializeToString()
    rejects(message, "hash")


def test_fid_zero() -> None:
    rejects(header(pb.MESSAGE_TYPE_CAST_ADD, fid=0), "fid")
    data = cast()
    data.fid = 0
    rejects(data, "fid")


@pytest.mark.parametrize(
    "network", [pb.FARCASTER_NETWORK_NONE, pb.FARCASTER_NETWORK_MAINNET, pb.FARCASTER_NETWORK_TESTNET, 9]
)
def test_wrong_network(network: int) -> None:
    data = cast()
    data.network = network  # type: ignore[assignment]
    rejects(data, "network")


def test_timestamp_skew_boundary() -> None:
    data = cast()
    data.timestamp = NOW + 600
    validate(data)
    data.timestamp = NOW + 601
    rejects(data, "timestamp")


def test_old_timestamp_is_fine() -> None:
    data = cast()
    data.timestamp = 0
    validate(data)


# -------------------------------------------------------------------------------------- message type


def minimal_body(name: str) -> Message:
    """A valid body for the MessageData oneof member `name`."""
    bodies: dict[str, Message] = {
        "cast_add_body": pb.CastAddBody(text="hi"),
        "cast_remove_body": pb.CastRemoveBody(target_hash=HASH20),
        "reaction_body": pb.ReactionBody(type=pb.REACTION_TYPE_LIKE, target_url="https://e.com"),
        "link_body": pb.LinkBody(type="follow", target_fid=7),
        "user_data_body": pb.UserDataBody(type=pb.USER_DATA_TYPE_BIO, value="hi"),
        "verification_add_address_body": verification_add().verification_add_address_body,
        "verification_remove_body": pb.VerificationRemoveBody(address=bytes(20)),
    }
    return bodies[name]


def with_body(mtype: int, name: str) -> pb.MessageData:
    data = header(mtype)
    getattr(data, name).CopyFrom(minimal_body(name))
    return data


@pytest.mark.parametrize(("mtype", "body"), sorted(BODY_FOR_TYPE.items()))
def test_every_supported_type_with_its_body(mtype: int, body: str) -> None:
    validate(with_body(mtype, body))


@pytest.mark.parametrize(
    ("mtype", "body"),
    [
        (t, b)
        for t, expected in sorted(BODY_FOR_TYPE.items())
        for b in sorted(set(BODY_FOR_TYPE.values()))
        if b != expected
    ],
)
def test_body_must_match_type(mtype: int, body: str) -> None:
    rejects(with_body(mtype, body), "message_type")


@pytest.mark.parametrize("mtype", sorted(BODY_FOR_TYPE))
def test_body_missing(mtype: int) -> None:
    rejects(header(mtype), "message_type")


@pytest.mark.parametrize(
    "mtype",
    [
        pb.MESSAGE_TYPE_NONE,
        pb.MESSAGE_TYPE_USERNAME_PROOF,
        pb.MESSAGE_TYPE_FRAME_ACTION,
        pb.MESSAGE_TYPE_LINK_COMPACT_STATE,
        9,
        10,
        99,
    ],
)
def test_unsupported_types(mtype: int) -> None:
    rejects(with_body(mtype, "cast_add_body"), "message_type")


def test_two_bodies_on_the_wire() -> None:
    # Python keeps only the last oneof member, Farcaster's decoder keeps both and rejects; so do we.
    first = header(pb.MESSAGE_TYPE_CAST_ADD)
    first.cast_add_body.text = "hi"
    data_bytes = first.SerializeToString() + ld(
        7, pb.ReactionBody(type=pb.REACTION_TYPE_LIKE, target_url="https://e.com").SerializeToString()
    )
    reparsed = pb.MessageData.FromString(data_bytes)
    assert reparsed.WhichOneof("body") == "reaction_body"
    rejects(sign_bytes(data_bytes), "message_type")
    # The same body twice is merged by Python but overwritten by ts-proto: also ambiguous, also rejected.
    twice = first.SerializeToString() + ld(5, pb.CastAddBody(text="other").SerializeToString())
    rejects(sign_bytes(twice), "message_type")


# ------------------------------------------------------------------------------------------ CAST_ADD


def test_cast_text_limits_count_utf8_bytes() -> None:
    validate(cast("é" * (MAX_CAST_TEXT_BYTES // 2)))  # 320 bytes, 160 characters
    rejects(cast("é" * (MAX_CAST_TEXT_BYTES // 2) + "a"), "text_too_long")
    validate(cast("a" * MAX_CAST_TEXT_BYTES))
    rejects(cast("a" * (MAX_CAST_TEXT_BYTES + 1)), "text_too_long")


def test_long_cast_limits() -> None:
    validate(cast("a" * MAX_LONG_CAST_TEXT_BYTES, cast_type=pb.LONG_CAST))
    rejects(cast("a" * (MAX_LONG_CAST_TEXT_BYTES + 1), cast_type=pb.LONG_CAST), "text_too_long")
    validate(cast("a" * (MAX_CAST_TEXT_BYTES + 1), cast_type=pb.LONG_CAST))
    rejects(cast("a" * MAX_CAST_TEXT_BYTES, cast_type=pb.LONG_CAST), "text_too_long")


def test_unknown_cast_type() -> None:
    rejects(cast("hi", cast_type=2), "body")


def test_embeds_limit() -> None:
    data = cast()
    for i in range(MAX_EMBEDS):
        data.cast_add_body.embeds.add(url=f"https://e.com/{i}")
    validate(data)
    data.cast_add_body.embeds.add(url="https://e.com/x")
    rejects(data, "too_many_embeds")


def test_deprecated_string_embeds_rejected() -> None:
    data = cast()
    data.cast_add_body.embeds_deprecated.append("https://e.com")
    rejects(data, "body")


def test_mentions_limit() -> None:
    validate(with_mentions(cast(), list(range(1, MAX_MENTIONS + 1)), [0] * MAX_MENTIONS))
    rejects(
        with_mentions(cast(), list(range(1, MAX_MENTIONS + 2)), [0] * (MAX_MENTIONS + 1)), "too_many_mentions"
    )


@pytest.mark.parametrize(
    ("mentions", "positions"),
    [([1, 2], [0]), ([1], [0, 1]), ([1], []), ([1, 2], [3, 2]), ([0], [0]), ([1], [6])],
    ids=["fewer-positions", "more-positions", "no-positions", "unsorted", "fid-zero", "past-end"],
)
def test_bad_mentions(mentions: list[int], positions: list[int]) -> None:
    rejects(with_mentions(cast("hello"), mentions, positions), "body")


def test_mention_positions_boundaries() -> None:
    validate(with_mentions(cast("hello"), [1, 2], [2, 2]))  # equal positions are sorted
    validate(with_mentions(cast("hello"), [1], [5]))  # at the end of the 5-byte text
    validate(with_mentions(cast("hé"), [1], [3]))  # positions are bytes, not characters


def test_empty_cast() -> None:
    rejects(cast(""), "body")
    only_embed = cast("")
    only_embed.cast_add_body.embeds.add(url="https://e.com")
    validate(only_embed)
    validate(with_mentions(cast(""), [5], [0]))


@pytest.mark.parametrize(
    ("build", "ok"),
    [
        (lambda e: setattr(e, "url", url_of(MAX_URL_BYTES)), True),
        (lambda e: setattr(e, "url", url_of(MAX_URL_BYTES + 1)), False),
        (lambda e: setattr(e, "url", ""), False),
        (lambda e: e.cast_id.CopyFrom(pb.CastId(fid=1, hash=HASH20)), True),
        (lambda e: e.cast_id.CopyFrom(pb.CastId(fid=0, hash=HASH20)), False),
        (lambda e: e.cast_id.CopyFrom(pb.CastId(fid=1, hash=HASH20[:19])), False),
        (lambda e: e.cast_id.CopyFrom(pb.CastId(fid=1, hash=HASH20 + b"\x00")), False),
        (lambda e: None, False),
    ],
    ids=[
        "url-256",
        "url-257",
        "url-empty",
        "cast-id",
        "cast-id-fid-0",
        "cast-id-hash-19",
        "cast-id-hash-21",
        "none",
    ],
)
def test_embed_rules(build: Callable[[pb.Embed], None], ok: bool) -> None:
    data = cast()
    build(data.cast_add_body.embeds.add())
    if ok:
        validate(data)
    else:
        rejects(data, "body")


def test_embed_with_both_url_and_cast_id_on_the_wire() -> None:
    embed = (
        pb.Embed(url="https://e.com").SerializeToString()
        + pb.Embed(cast_id=pb.CastId(fid=1, hash=HASH20)).SerializeToString()
    )
    body = pb.CastAddBody(text="hi").SerializeToString() + ld(6, embed)
    data_bytes = header(pb.MESSAGE_TYPE_CAST_ADD).SerializeToString() + ld(5, body)
    assert len(pb.MessageData.FromString(data_bytes).cast_add_body.embeds) == 1
    rejects(sign_bytes(data_bytes), "body")


@pytest.mark.parametrize(
    ("parent", "ok"),
    [
        (url_of(MAX_URL_BYTES), True),
        (url_of(MAX_URL_BYTES + 1), False),
        ("", False),
        (pb.CastId(fid=1, hash=HASH20), True),
        (pb.CastId(fid=0, hash=HASH20), False),
        (pb.CastId(fid=1, hash=HASH20[:19]), False),
        (pb.CastId(fid=1), False),
    ],
    ids=["url-256", "url-257", "url-empty", "cast-id", "cast-id-fid-0", "cast-id-hash-19", "cast-id-no-hash"],
)
def test_parent_rules(parent: str | pb.CastId, ok: bool) -> None:
    data = cast()
    if isinstance(parent, str):
        data.cast_add_body.parent_url = parent
    else:
        data.cast_add_body.parent_cast_id.CopyFrom(parent)
    if ok:
        validate(data)
    else:
        rejects(data, "body")


def test_both_parent_url_and_parent_cast_id_on_the_wire() -> None:
    body = (
        pb.CastAddBody(text="hi", parent_cast_id=pb.CastId(fid=1, hash=HASH20)).SerializeToString()
        + pb.CastAddBody(parent_url="https://e.com").SerializeToString()
    )
    data_bytes = header(pb.MESSAGE_TYPE_CAST_ADD).SerializeToString() + ld(5, body)
    assert pb.MessageData.FromString(data_bytes).cast_add_body.WhichOneof("parent") == "parent_url"
    rejects(sign_bytes(data_bytes), "body")


# ---------------------------------------------------------------------------------------- CAST_REMOVE


@pytest.mark.parametrize(("size", "ok"), [(20, True), (0, False), (19, False), (21, False), (32, False)])
def test_cast_remove_target_hash(size: int, ok: bool) -> None:
    data = header(pb.MESSAGE_TYPE_CAST_REMOVE)
    data.cast_remove_body.target_hash = bytes(range(size))
    if ok:
        validate(data)
    else:
        rejects(data, "body")


# ------------------------------------------------------------------------------------------ REACTIONS

REACTION_TYPES = [pb.MESSAGE_TYPE_REACTION_ADD, pb.MESSAGE_TYPE_REACTION_REMOVE]


@pytest.mark.parametrize("mtype", REACTION_TYPES)
@pytest.mark.parametrize("rtype", [pb.REACTION_TYPE_LIKE, pb.REACTION_TYPE_RECAST])
def test_reaction_valid(mtype: int, rtype: int) -> None:
    by_url = reaction(mtype, rtype)
    by_url.reaction_body.target_url = "https://e.com"
    validate(by_url)
    by_cast = reaction(mtype, rtype)
    by_cast.reaction_body.target_cast_id.CopyFrom(pb.CastId(fid=1, hash=HASH20))
    validate(by_cast)


@pytest.mark.parametrize("mtype", REACTION_TYPES)
@pytest.mark.parametrize("rtype", [pb.REACTION_TYPE_NONE, 3, 77])
def test_reaction_type_invalid(mtype: int, rtype: int) -> None:
    data = reaction(mtype, rtype)
    data.reaction_body.target_url = "https://e.com"
    rejects(data, "body")


@pytest.mark.parametrize(
    ("set_target", "ok"),
    [
        (lambda b: setattr(b, "target_url", url_of(MAX_URL_BYTES)), True),
        (lambda b: setattr(b, "target_url", url_of(MAX_URL_BYTES + 1)), False),
        (lambda b: setattr(b, "target_url", ""), False),
        (lambda b: b.target_cast_id.CopyFrom(pb.CastId(fid=0, hash=HASH20)), False),
        (lambda b: b.target_cast_id.CopyFrom(pb.CastId(fid=1, hash=HASH20[:10])), False),
        (lambda b: None, False),
    ],
    ids=["url-256", "url-257", "url-empty", "cast-id-fid-0", "cast-id-hash-10", "missing"],
)
def test_reaction_target(set_target: Callable[[pb.ReactionBody], None], ok: bool) -> None:
    data = reaction()
    set_target(data.reaction_body)
    if ok:
        validate(data)
    else:
        rejects(data, "body")


def test_reaction_with_both_targets_on_the_wire() -> None:
    body = (
        pb.ReactionBody(
            type=pb.REACTION_TYPE_LIKE, target_cast_id=pb.CastId(fid=1, hash=HASH20)
        ).SerializeToString()
        + pb.ReactionBody(target_url="https://e.com").SerializeToString()
    )
    data_bytes = header(pb.MESSAGE_TYPE_REACTION_ADD).SerializeToString() + ld(7, body)
    rejects(sign_bytes(data_bytes), "body")


# ---------------------------------------------------------------------------------------------- LINKS


@pytest.mark.parametrize("mtype", [pb.MESSAGE_TYPE_LINK_ADD, pb.MESSAGE_TYPE_LINK_REMOVE])
def test_link_rules(mtype: int) -> None:
    validate(link("follow", mtype=mtype))
    validate(link("a" * MAX_LINK_TYPE_BYTES, mtype=mtype))
    validate(link("éééé", mtype=mtype))  # 8 bytes
    rejects(link("a" * (MAX_LINK_TYPE_BYTES + 1), mtype=mtype), "body")
    rejects(link("ééééa", mtype=mtype), "body")  # 5 characters, 9 bytes
    rejects(link("", mtype=mtype), "body")
    rejects(link("follow", target=None, mtype=mtype), "body")
    rejects(link("follow", target=0, mtype=mtype), "body")


# ------------------------------------------------------------------------------------------ USER_DATA


@pytest.mark.parametrize(
    ("udtype", "limit"),
    [
        (pb.USER_DATA_TYPE_PFP, MAX_PFP_BYTES),
        (pb.USER_DATA_TYPE_DISPLAY, MAX_DISPLAY_BYTES),
        (pb.USER_DATA_TYPE_BIO, MAX_BIO_BYTES),
        (pb.USER_DATA_TYPE_URL, MAX_USER_URL_BYTES),
    ],
)
def test_user_data_byte_limits(udtype: int, limit: int) -> None:
    validate(user_data(udtype, ""))
    validate(user_data(udtype, "a" * limit))
    validate(user_data(udtype, "é" * (limit // 2)))
    rejects(user_data(udtype, "a" * (limit + 1)), "body")
    rejects(user_data(udtype, "é" * (limit // 2) + "a"), "body")


@pytest.mark.parametrize("udtype", [pb.USER_DATA_TYPE_NONE, 4, 10, 99])
def test_user_data_unknown_type(udtype: int) -> None:
    rejects(user_data(udtype, "x"), "body")


@pytest.mark.parametrize(
    "name",
    ["", "alice", "a", "a" * 16, "0x-user", "ab--c", "alice.eth", "a.eth", "abcdefghijklmnop.eth", "a-b.eth"],
)
def test_username_valid(name: str) -> None:
    validate(user_data(pb.USER_DATA_TYPE_USERNAME, name))


@pytest.mark.parametrize(
    "name",
    [
        "a" * 17,
        "-alice",
        "Alice",
        "al ice",
        "alice\n",
        "álice",
        "alice_b",
        "abcdefghijklmnopq.eth",  # 21 characters
        "sub.alice.eth",
        "alice.xyz",
        ".eth",
        "-a.eth",
        "Alice.eth",
        "ab--c.eth",  # not ENSIP-15 normalised
        "alice.eth\n",
    ],
)
def test_username_invalid(name: str) -> None:
    rejects(user_data(pb.USER_DATA_TYPE_USERNAME, name), "body")


@pytest.mark.parametrize(
    "location",
    ["", "geo:37.77,-122.42", "geo:90.00,180.00", "geo:-90.00,-180.00", "geo:0.00,0.00", "geo:-5.10,99.99"],
)
def test_location_valid(location: str) -> None:
    validate(user_data(pb.USER_DATA_TYPE_LOCATION, location))


@pytest.mark.parametrize(
    "location",
    [
        "geo:90.01,0.00",
        "geo:-90.01,0.00",
        "geo:0.00,180.01",
        "geo:0.00,-180.01",
        "geo:37.7,-122.42",
        "geo:37.777,-122.42",
        "geo:100.00,0.00",
        "geo:0.00,1000.00",
        "37.77,-122.42",
        "geo:37.77, -122.42",
        "geo:37.77,-122.42\n",
        "geo:\u0663\u0667.77,1.00",  # Arabic-Indic digits
        "geo:",
    ],
)
def test_location_invalid(location: str) -> None:
    rejects(user_data(pb.USER_DATA_TYPE_LOCATION, location), "body")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a" * MAX_TWITTER_CHARS, True),
        ("a" * (MAX_TWITTER_CHARS + 1), False),
        ("jack_2", True),
        ("", False),
        ("Jack", False),
        ("a-b", False),
        ("jack\n", False),
    ],
)
def test_twitter_username(value: str, ok: bool) -> None:
    data = user_data(pb.USER_DATA_TYPE_TWITTER, value)
    if ok:
        validate(data)
    else:
        rejects(data, "body")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a" * MAX_GITHUB_CHARS, True),
        ("a" * (MAX_GITHUB_CHARS + 1), False),
        ("Octo-Cat9", True),
        ("", False),
        ("a--b", False),
        ("-ab", False),
        ("a_b", False),
        ("octo\n", False),
        ("\u0661abc", False),  # Arabic-Indic digit one
        ("octo\u212a", False),  # KELVIN SIGN case-folds to "k" unless matching is ASCII-only
    ],
)
def test_github_username(value: str, ok: bool) -> None:
    data = user_data(pb.USER_DATA_TYPE_GITHUB, value)
    if ok:
        validate(data)
    else:
        rejects(data, "body")


# -------------------------------------------------------------------------------------- VERIFICATIONS


def test_verification_add_valid() -> None:
    validate(verification_add())


def test_verification_add_recovery_id_zero_one() -> None:
    data = verification_add()
    body = data.verification_add_address_body
    body.claim_signature = body.claim_signature[:64] + bytes([body.claim_signature[64] - 27])
    validate(data)


@pytest.mark.parametrize(
    "data",
    [
        verification_add(fid=FID + 1),
        verification_add(network=pb.FARCASTER_NETWORK_MAINNET),
        verification_add(block_hash=bytes(32)),
    ],
    ids=["other-fid", "other-network", "other-block-hash"],
)
def test_verification_claim_for_something_else(data: pb.MessageData) -> None:
    rejects(data, "claim_signature")


def test_verification_claim_from_another_address() -> None:
    data = verification_add()
    other = verification_add(key=bytes([7]) * 32)
    data.verification_add_address_body.claim_signature = other.verification_add_address_body.claim_signature
    rejects(data, "claim_signature")


@pytest.mark.parametrize("size", [0, 64, 65, 66, 1500])
def test_verification_claim_signature_malformed(size: int) -> None:
    data = verification_add()
    data.verification_add_address_body.claim_signature = bytes([5]) * size
    rejects(data, "claim_signature")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("address", bytes(19), "address"),
        ("address", bytes(21), "address"),
        ("address", b"", "address"),
        ("block_hash", bytes(31), "block_hash"),
        ("block_hash", bytes(33), "block_hash"),
        ("block_hash", b"", "block_hash"),
        ("verification_type", 1, "contract"),
        ("verification_type", 2, "verification type"),
        ("chain_id", 1, "chain_id"),
        ("chain_id", 10, "chain_id"),
        ("protocol", pb.PROTOCOL_SOLANA, "Solana"),
        ("protocol", 5, "protocol"),
    ],
)
def test_verification_add_body_rules(field: str, value: object, needle: str) -> None:
    data = verification_add()
    setattr(data.verification_add_address_body, field, value)
    error = rejects(data, "body")
    assert needle in error.message


@pytest.mark.parametrize(
    ("address", "protocol", "ok"),
    [
        (bytes(20), pb.PROTOCOL_ETHEREUM, True),
        (bytes(19), pb.PROTOCOL_ETHEREUM, False),
        (bytes(21), pb.PROTOCOL_ETHEREUM, False),
        (b"", pb.PROTOCOL_ETHEREUM, False),
        (bytes(32), pb.PROTOCOL_SOLANA, True),
        (bytes(31), pb.PROTOCOL_SOLANA, False),
        (bytes(20), pb.PROTOCOL_SOLANA, False),
        (bytes(20), 7, False),
    ],
)
def test_verification_remove(address: bytes, protocol: int, ok: bool) -> None:
    data = verification_remove(address, protocol)
    if ok:
        validate(data)
    else:
        rejects(data, "body")


# ---------------------------------------------------------------------------------------------- order


def test_checks_run_in_documented_order() -> None:
    # A message that breaks several rules fails with the first one: size, hash, signature, fid, network,
    # timestamp, type, body.
    data = cast("a" * 400)
    data.fid = 0
    data.network = pb.FARCASTER_NETWORK_MAINNET
    data.timestamp = NOW + 10_000
    message = sign_message_data(data, KEY)
    message.signature = bytes(64)
    rejects(message, "signature")
    rejects(data, "fid")
    data.fid = 1
    rejects(data, "network")
    data.network = NET
    rejects(data, "timestamp")
    data.timestamp = NOW
    rejects(data, "text_too_long")
