"""Bounded, deterministic fuzzing of SubmitMessage through the real gRPC server.

Random byte strings and mutated valid messages go to `/HubService/SubmitMessage` as raw bytes (no client
serializer), so malformed input really reaches the server. Every answer must be either success, for input
that is still a valid message, or INVALID_ARGUMENT with a `bad_request...` errcode trailer; nothing invalid
may be stored, the store must stay consistent, and the node must keep serving.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any

import grpc
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from node.rpc import ERRCODE_KEY
from node.runner import NodeHandle
from node.storage import check_consistency
from protocols import crdt
from protocols.crdt._keys import T_COUNT, T_MSG
from protocols.errors import HubError
from protocols.messages import (
    BODY_FOR_TYPE,
    MAX_CAST_TEXT_BYTES,
    blake3_160,
    decode_message,
    ed25519_verify,
    farcaster_now,
    public_key_bytes,
    sign_message_data,
    validate_message,
)
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr
from tests import factories as f
from tests.conftest import Client

SEED = 20240611
CASES = 400
FID = 21
UNREGISTERED_FID = 22
T0 = 120_000_000  # fixed Farcaster time: message bytes (and so the whole run) are the same every time
SUBMIT = "/HubService/SubmitMessage"

#: Strings a body might plausibly hold, valid and invalid (usernames, URLs, geo locations, link types).
STRINGS = (
    "",
    "x",
    "follow",
    "hello @a",
    "https://example.com/a",
    "chain://eip155:1/erc721:0xabc",
    "alice",
    "alice.eth",
    "al--ice.eth",
    "-alice",
    "ALICE",
    "geo:12.34,56.78",
    "geo:99.00,0.00",
    "geo:1.2,3.4",
    "caf\u00e9",
    "a\nb",
    "\u0000",
)
INT32_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_SFIXED32,
    }
)
SIGNED_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


class Fuzzer:
    """Fuzz inputs from a seeded RNG. Every base message has distinct content, so mutants rarely collide."""

    def __init__(self, rng: random.Random, key: Ed25519PrivateKey, stranger: Ed25519PrivateKey) -> None:
        self.rng = rng
        self.key = key
        self.stranger = stranger
        self.n = 0
        self.accepted: list[bytes] = []  # raw bytes of accepted messages, for duplicate resubmission

    def base(self) -> pb.Message:
        self.n += 1
        n, ts = self.n, T0 + self.n
        kind = n % 3
        if kind == 0:
            return f.cast_add(self.key, FID, f"fuzz cast {n}", timestamp=ts)
        if kind == 1:
            return f.reaction(self.key, FID, f"https://example.com/fuzz/{n}", timestamp=ts)
        return f.link(self.key, FID, 100_000 + n, timestamp=ts)

    def _flip(self, b: bytes) -> bytes:
        if not b:
            return b"\x00"
        i = self.rng.randrange(len(b))
        return b[:i] + bytes([b[i] ^ (1 << self.rng.randrange(8))]) + b[i + 1 :]

    def _wire(self, m: pb.Message) -> bytes:
        """Serialise, randomly as data_bytes only, data only (JavaScript clients) or both."""
        out = pb.Message()
        out.CopyFrom(m)
        style = self.rng.randrange(3)
        if style == 0:
            out.ClearField("data")
        elif style == 1 and out.data_bytes == out.data.SerializeToString():
            out.ClearField("data_bytes")
        return out.SerializeToString()

    def _resign(self, data: pb.MessageData, *, stranger: bool | None = None) -> bytes:
        use_stranger = self.rng.random() < 0.3 if stranger is None else stranger
        return self._wire(sign_message_data(data, self.stranger if use_stranger else self.key))

    def _signed_bytes(self, data_bytes: bytes) -> bytes:
        """A correctly hashed and signed Message around arbitrary data_bytes (reaches body validation)."""
        digest = blake3_160(data_bytes)
        return pb.Message(
            data_bytes=data_bytes,
            hash=digest,
            hash_scheme=pb.HASH_SCHEME_BLAKE3,
            signature=self.key.sign(digest),
            signature_scheme=pb.SIGNATURE_SCHEME_ED25519,
            signer=public_key_bytes(self.key),
        ).SerializeToString()

    def _random_field(self) -> bytes:
        number = self.rng.randrange(1, 20)
        if self.rng.random() < 0.5:
            return _varint(number << 3) + _varint(self.rng.randrange(0, 2 ** self.rng.choice([3, 32, 64])))
        payload = self.rng.randbytes(self.rng.randrange(0, 40))
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    def _scalar(self, fd: Any) -> object:
        rng = self.rng
        t = fd.type
        if t == FieldDescriptor.TYPE_STRING:
            return rng.choice(STRINGS) if rng.random() < 0.8 else "y" * rng.randrange(0, 400)
        if t == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(rng.choice([0, 20, 20, 32, 65, rng.randrange(0, 100)]))
        if t == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if t == FieldDescriptor.TYPE_ENUM:
            assert fd.enum_type is not None
            return rng.choice([v.number for v in fd.enum_type.values] + [99])
        if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            return rng.uniform(-1e6, 1e6)
        bits = 32 if t in INT32_TYPES else 64
        if t in SIGNED_TYPES:
            return rng.choice([0, -1, 1, rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))])
        return rng.choice([0, 1, 2, FID, rng.randrange(0, 2**bits)])

    def _fill(self, message: Message, depth: int) -> None:
        """Set a random subset of `message`'s fields to random values (structure-aware fuzzing)."""
        for fd in message.DESCRIPTOR.fields:
            if self.rng.random() < 0.4:
                continue
            count = self.rng.randrange(0, 4) if fd.is_repeated else 1
            for _ in range(count):
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth >= 3:
                        break
                    field = getattr(message, fd.name)
                    self._fill(field.add() if fd.is_repeated else field, depth + 1)
                    continue
                value = self._scalar(fd)
                try:
                    if fd.is_repeated:
                        getattr(message, fd.name).append(value)
                    else:
                        setattr(message, fd.name, value)
                except (TypeError, ValueError):
                    pass

    # ---- mutations: each returns the raw request bytes

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randrange(0, 300))

    def flip_data_bytes(self) -> bytes:
        m = self.base()
        m.data_bytes = self._flip(m.data_bytes)
        m.ClearField("data")
        return m.SerializeToString()

    def flip_field(self, name: str) -> Callable[[], bytes]:
        def mutate() -> bytes:
            m = self.base()
            setattr(m, name, self._flip(getattr(m, name)))
            return self._wire(m)

        mutate.__name__ = f"flip_{name}"
        return mutate

    def garble_signed_data(self) -> bytes:
        data_bytes = self.base().data_bytes
        how = self.rng.randrange(4)
        if how == 0:
            data_bytes = self._flip(data_bytes)
        elif how == 1:
            data_bytes = data_bytes[: self.rng.randrange(1, len(data_bytes))]
        elif how == 2:
            data_bytes += self.rng.randbytes(self.rng.randrange(1, 20))
        else:
            data_bytes += self._random_field()
        return self._signed_bytes(data_bytes)

    def random_signed_data(self) -> bytes:
        header = pb.MessageData(
            type=self.rng.randrange(0, 16),  # type: ignore[arg-type]
            fid=FID,
            timestamp=T0,
            network=pb.FARCASTER_NETWORK_DEVNET,
        ).SerializeToString()
        fields = b"".join(self._random_field() for _ in range(self.rng.randrange(0, 5)))
        return self._signed_bytes(header + fields)

    def random_body(self) -> bytes:
        """A signed message of a stored type whose body has random fields (reaches every body check)."""
        mtype = self.rng.choice(sorted(BODY_FOR_TYPE))
        data = pb.MessageData(
            type=mtype,  # type: ignore[arg-type]
            fid=FID,
            timestamp=T0 + self.rng.randrange(0, 10_000),
            network=pb.FARCASTER_NETWORK_DEVNET,
        )
        self._fill(getattr(data, BODY_FOR_TYPE[mtype]), 0)
        return self._wire(sign_message_data(data, self.key))

    def truncate(self) -> bytes:
        raw = self._wire(self.base())
        return raw[: self.rng.randrange(len(raw))]

    def append_junk(self) -> bytes:
        return self._wire(self.base()) + self.rng.randbytes(self.rng.randrange(1, 40))

    def flip_raw(self) -> bytes:
        return self._flip(self._wire(self.base()))

    def resign_network(self) -> bytes:
        m = self.base()
        m.data.network = self.rng.choice([0, pb.FARCASTER_NETWORK_MAINNET, pb.FARCASTER_NETWORK_TESTNET, 77])  # type: ignore[assignment]
        return self._resign(m.data)

    def resign_type(self) -> bytes:
        m = self.base()
        m.data.type = self.rng.randrange(0, 16)  # type: ignore[assignment]
        return self._resign(m.data)

    def resign_fid(self) -> bytes:
        m = self.base()
        m.data.fid = self.rng.choice([0, UNREGISTERED_FID, 2**64 - 1, FID])
        return self._resign(m.data)

    def resign_timestamp(self) -> bytes:
        m = self.base()
        now = farcaster_now()
        m.data.timestamp = self.rng.choice([0, 1, T0 // 2, now + 3600, 2**32 - 1])
        return self._resign(m.data)

    def unknown_signer(self) -> bytes:
        return self._resign(self.base().data, stranger=True)

    def oversize_text(self) -> bytes:
        size = self.rng.choice([MAX_CAST_TEXT_BYTES + 1, 1000, 3000])
        cast = f.cast_add(self.key, FID, "x" * size, timestamp=T0)
        return self._wire(cast)

    def schemes(self) -> bytes:
        m = self.base()
        if self.rng.random() < 0.5:
            m.hash_scheme = self.rng.choice([0, 2, 99])  # type: ignore[assignment]
        else:
            m.signature_scheme = self.rng.choice([0, 2, 99])  # type: ignore[assignment]
        return self._wire(m)

    def valid(self) -> bytes:
        return self._wire(self.base())

    def duplicate(self) -> bytes:
        return self.rng.choice(self.accepted) if self.accepted else self.valid()

    def doubled_data_field(self) -> bytes:
        m = self.base()
        raw = m.data.SerializeToString()
        field = b"\x0a" + _varint(len(raw)) + raw
        return field + field

    def empty(self) -> bytes:
        return b""

    def cases(self, n: int) -> list[Callable[[], bytes]]:
        menu: list[Callable[[], bytes]] = [
            self.random_bytes,
            self.flip_data_bytes,
            self.flip_field("hash"),
            self.flip_field("signature"),
            self.flip_field("signer"),
            self.garble_signed_data,
            self.random_signed_data,
            self.random_body,
            self.random_body,
            self.truncate,
            self.append_junk,
            self.flip_raw,
            self.resign_network,
            self.resign_type,
            self.resign_fid,
            self.resign_timestamp,
            self.unknown_signer,
            self.oversize_text,
            self.schemes,
            self.valid,
            self.duplicate,
            self.doubled_data_field,
        ]
        return [self.rng.choice(menu) for _ in range(n)] + [self.empty]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _name(mutate: Callable[[], bytes]) -> str:
    return getattr(mutate, "__name__", "mutation")


class Mirror:
    """The expected hub: the same rules applied in-process to a MemoryKV, one submission at a time.

    Predicts each answer (None for success, else the error code), so stateful outcomes such as
    conflicts and duplicates are checked exactly, and the node's final store is compared with it.
    """

    def __init__(self) -> None:
        self.kv = crdt.MemoryKV()

    def apply_onchain(self, event: oc.OnChainEvent) -> None:
        crdt.merge_onchain_event(self.kv, event, now_ms=int(time.time() * 1000))

    def submit(self, raw: bytes) -> str | None:
        try:
            message = validate_message(
                decode_message(raw), network=pb.FARCASTER_NETWORK_DEVNET, now=farcaster_now()
            )
            crdt.merge_message(self.kv, message, now_ms=int(time.time() * 1000))
        except HubError as e:
            return e.code
        return None


MESSAGE_TABLES = bytes(range(T_MSG[0], T_COUNT[0] + 1))


def message_tables(kv: crdt.ReadKV) -> list[tuple[bytes, bytes]]:
    """Every entry of the message tables (primary, CRDT, indexes, counters), in key order."""
    return [item for table in MESSAGE_TABLES for item in kv.scan(bytes([table]))]


def independently_valid(stored: pb.Message, registered_key: bytes) -> str | None:
    """Checks of an accepted message that do not use the hub's validation code; None if fine."""
    if bytes(stored.hash) != blake3_160(stored.data_bytes):
        return "hash is not blake3_160(data_bytes)"
    if not ed25519_verify(registered_key, bytes(stored.signature), bytes(stored.hash)):
        return "signature does not verify with the registered key"
    data = pb.MessageData.FromString(stored.data_bytes)
    if data.fid != FID or data.network != pb.FARCASTER_NETWORK_DEVNET:
        return f"fid {data.fid} network {data.network}"
    return None


async def test_fuzz_submit_message(node: NodeHandle, client: Client) -> None:
    rng = random.Random(SEED)
    key, stranger = f.new_key(101), f.new_key(102)
    registered = public_key_bytes(key)
    mirror = Mirror()
    with trio.fail_after(60):
        for event in f.account(FID, key, units=5):
            await client.call(client.admin.SubmitOnChainEvent, event)
            mirror.apply_onchain(event)
        before = (await client.call(client.hub.GetInfo, rr.HubInfoRequest())).db_stats.num_messages

        submit_raw = client.channel.unary_unary(SUBMIT, request_serializer=None, response_deserializer=None)

        def call(raw: bytes) -> tuple[bytes | None, grpc.RpcError | None]:
            try:
                return submit_raw(raw, timeout=10), None
            except grpc.RpcError as e:
                return None, e

        fuzzer = Fuzzer(rng, key, stranger)
        accepted = 0
        outcomes: dict[str, int] = {}
        failures: list[str] = []
        for mutate in fuzzer.cases(CASES):
            raw = mutate()
            expected = mirror.submit(raw)
            response, err = await trio.to_thread.run_sync(functools.partial(call, raw))
            where = f"{_name(mutate)} input 0x{raw.hex()}"
            if err is None:
                assert response is not None
                accepted += 1
                outcomes["ok"] = outcomes.get("ok", 0) + 1
                problem = independently_valid(pb.Message.FromString(response), registered)
                if expected is not None or problem is not None:
                    failures.append(
                        f"accepted a message expected to fail with {expected} {problem or ''}: {where}"
                    )
                fuzzer.accepted.append(raw)
                continue
            code = err.code()
            errcode = next((str(m.value) for m in err.trailing_metadata() or () if m.key == ERRCODE_KEY), "")
            details = err.details()
            outcomes[errcode or str(code)] = outcomes.get(errcode or str(code), 0) + 1
            if code != grpc.StatusCode.INVALID_ARGUMENT or not errcode.startswith("bad_request"):
                failures.append(f"answered {code} errcode {errcode!r} ({details}): {where}")
            elif errcode != expected:
                failures.append(f"answered {errcode} ({details}), expected {expected or 'success'}: {where}")
        assert not failures, "\n".join(failures[:10])

        # Enough of each kind of answer that the run means something.
        assert outcomes.get("ok", 0) >= 20, outcomes
        assert outcomes.get("bad_request.parse_failure", 0) >= 20, outcomes
        assert (
            sum(n for code, n in outcomes.items() if code.startswith("bad_request.validation_failure")) >= 50
        )
        assert outcomes.get("bad_request.unknown_signer", 0) >= 5, outcomes
        assert outcomes.get("bad_request.duplicate", 0) >= 5, outcomes

        # Nothing but the accepted messages was stored, exactly as the in-process rules store them.
        after = (await client.call(client.hub.GetInfo, rr.HubInfoRequest())).db_stats.num_messages
        assert before <= after <= before + accepted
        assert after == crdt.message_count(mirror.kv)
        with node.engine.read() as kv:
            assert check_consistency(kv) == []
            assert message_tables(kv) == message_tables(mirror.kv)

        # Still serving.
        fresh = f.cast_add(key, FID, "after the fuzz")
        stored = await client.call(client.hub.SubmitMessage, fresh)
        assert stored.hash == fresh.hash
        got = await client.call(client.hub.GetCast, pb.CastId(fid=FID, hash=fresh.hash))
        assert got.hash == fresh.hash
