"""What the CLI prints: protobuf messages as JSON or one-line summaries, and error lines.

JSON follows protobuf's JSON mapping with snake_case field names and enum names, with two changes that make
it readable for hub data: bytes (hashes, keys, signatures, addresses) are 0x-hex instead of base64, and
64-bit integers (fids, event ids) are JSON numbers instead of strings.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message as ProtoMessage

from node.config import network_name
from protocols.messages._time import from_farcaster_time
from protocols.proto import message_pb2 as pb
from protocols.proto import onchain_event_pb2 as oc
from protocols.proto import request_response_pb2 as rr


class CliError(Exception):
    """A failure to report as one `error: ...` line; `exit_code` 1 = runtime error, 2 = usage error."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class UsageError(CliError):
    """The command line itself is wrong (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)


# --- JSON

_INT64_TYPES = frozenset(
    {
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT64,
    }
)


def _convert_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return "0x" + base64.b64decode(value).hex()
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message_type = field.message_type
        # Well-known types have their own JSON forms (strings for Timestamp, etc.): leave them alone.
        if message_type is not None and not message_type.full_name.startswith("google.protobuf."):
            _fix_dict(message_type, value)
        return value
    if field.cpp_type in _INT64_TYPES and isinstance(value, str):
        return int(value)
    return value


def _fix_dict(descriptor: Descriptor, obj: dict[str, Any]) -> None:
    """Rewrite, in place, the bytes and 64-bit integer values of a MessageToDict result."""
    for field in descriptor.fields:
        if field.name not in obj:
            continue
        value = obj[field.name]
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            value_field = message_type.fields_by_name["value"]
            obj[field.name] = {k: _convert_value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            obj[field.name] = [_convert_value(field, v) for v in value]
        else:
            obj[field.name] = _convert_value(field, value)


def to_dict(message: ProtoMessage) -> dict[str, Any]:
    """`message` as a JSON-ready dict: proto field names, enum names, 0x-hex bytes, integer int64s."""
    result = json_format.MessageToDict(message, preserving_proto_field_name=True)
    descriptor: Descriptor = message.DESCRIPTOR  # type: ignore[assignment]  # upb's Descriptor is the same API
    _fix_dict(descriptor, result)
    return result


def to_json(message: ProtoMessage, *, indent: int | None = None) -> str:
    """`to_dict(message)` serialised; compact on one line unless `indent` is given."""
    return json.dumps(to_dict(message), indent=indent, separators=None if indent else (",", ":"))


def list_to_json(messages: Iterable[ProtoMessage]) -> str:
    """A JSON array of `to_dict` objects, indented for reading."""
    return json.dumps([to_dict(m) for m in messages], indent=2)


# --- human


def hex0x(value: bytes) -> str:
    """Bytes as 0x-prefixed lowercase hex."""
    return "0x" + value.hex()


def iso_unix(unix_seconds: int) -> str:
    """Unix seconds as an ISO-8601 UTC time ending in Z."""
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat().replace("+00:00", "Z")


def iso_farcaster(farcaster_seconds: int) -> str:
    """A Farcaster timestamp (seconds since 2021-01-01) as an ISO-8601 UTC time."""
    return iso_unix(from_farcaster_time(farcaster_seconds))


def format_duration(seconds: int) -> str:
    """`3725` -> `1h 2m 5s`; days are shown from one day up."""
    days, rest = divmod(max(0, seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _enum_suffix(enum_type: Any, value: int, prefix: str) -> str:
    try:
        name: str = enum_type.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix)


def message_type_name(value: int) -> str:
    """`MESSAGE_TYPE_CAST_ADD` -> `CAST_ADD`."""
    return _enum_suffix(pb.MessageType, value, "MESSAGE_TYPE_")


def format_cast_id(cast_id: pb.CastId) -> str:
    """A cast id as `FID:0xHASH`, the form the CLI accepts."""
    return f"{cast_id.fid}:{hex0x(cast_id.hash)}"


def _body_summary(data: pb.MessageData) -> str:
    body = data.WhichOneof("body")
    if body == "cast_add_body":
        cast = data.cast_add_body
        parts = [json.dumps(cast.text, ensure_ascii=False)]
        parent = cast.WhichOneof("parent")
        if parent == "parent_cast_id":
            parts.append(f"reply to {format_cast_id(cast.parent_cast_id)}")
        elif parent == "parent_url":
            parts.append(f"in {cast.parent_url}")
        for embed in cast.embeds:
            kind = embed.WhichOneof("embed")
            if kind == "url":
                parts.append(f"embed {embed.url}")
            elif kind == "cast_id":
                parts.append(f"embed {format_cast_id(embed.cast_id)}")
        if cast.mentions:
            parts.append("mentions " + ",".join(str(m) for m in cast.mentions))
        return "  ".join(parts)
    if body == "cast_remove_body":
        return f"delete {hex0x(data.cast_remove_body.target_hash)}"
    if body == "reaction_body":
        reaction = data.reaction_body
        kind = _enum_suffix(pb.ReactionType, reaction.type, "REACTION_TYPE_").lower()
        target = reaction.WhichOneof("target")
        if target == "target_cast_id":
            return f"{kind} {format_cast_id(reaction.target_cast_id)}"
        return f"{kind} {reaction.target_url}"
    if body == "link_body":
        return f"{data.link_body.type} fid {data.link_body.target_fid}"
    if body == "user_data_body":
        field = _enum_suffix(pb.UserDataType, data.user_data_body.type, "USER_DATA_TYPE_").lower()
        return f"{field} = {json.dumps(data.user_data_body.value, ensure_ascii=False)}"
    if body == "verification_add_address_body":
        return f"address {hex0x(data.verification_add_address_body.address)}"
    if body == "verification_remove_body":
        return f"address {hex0x(data.verification_remove_body.address)}"
    return body or ""


def describe_message(message: pb.Message) -> str:
    """One line: hash, ISO time, fid, type and the gist of the body."""
    data = message.data
    if not message.HasField("data") and message.data_bytes:
        data = pb.MessageData.FromString(message.data_bytes)
    return "  ".join(
        [
            hex0x(message.hash),
            iso_farcaster(data.timestamp),
            f"fid {data.fid}",
            message_type_name(data.type),
            _body_summary(data),
        ]
    ).rstrip()


def describe_onchain_event(event: oc.OnChainEvent) -> str:
    """One line for an identity event; for SIGNER events the key and whether it was added or removed."""
    kind = _enum_suffix(oc.OnChainEventType, event.type, "EVENT_TYPE_")
    head = [iso_unix(event.block_timestamp), f"fid {event.fid}", kind]
    body = event.WhichOneof("body")
    if body == "signer_event_body":
        sb = event.signer_event_body
        action = _enum_suffix(oc.SignerEventType, sb.event_type, "SIGNER_EVENT_TYPE_")
        head = [hex0x(sb.key), action, *head]
    elif body == "storage_rent_event_body":
        head.append(f"{event.storage_rent_event_body.units} units")
    elif body == "id_register_event_body":
        head.append(f"custody {hex0x(event.id_register_event_body.to)}")
    head.append(f"block {event.block_number}")
    return "  ".join(head)


def describe_user_data(message: pb.Message) -> str:
    """`display = "Alice"  (2025-01-01T00:00:00Z, 0xhash)` for a USER_DATA_ADD message."""
    body = message.data.user_data_body
    field = _enum_suffix(pb.UserDataType, body.type, "USER_DATA_TYPE_").lower()
    value = json.dumps(body.value, ensure_ascii=False)
    return f"{field} = {value}  ({iso_farcaster(message.data.timestamp)}, {hex0x(message.hash)})"


def describe_hub_info(info: rr.HubInfoResponse) -> str:
    """Several `label: value` lines about a hub."""
    rows: list[tuple[str, str]] = [
        ("version", info.version),
        ("peer id", info.peerId),
        ("network", network_name(info.network)),
    ]
    if info.nickname:
        rows.append(("nickname", info.nickname))
    if info.rpc_address:
        rows.append(("rpc", info.rpc_address))
    addrs = list(info.listen_addrs) or ["(none)"]
    rows.append(("listen addrs", addrs[0]))
    rows.extend(("", a) for a in addrs[1:])
    rows.append(("messages", str(info.db_stats.num_messages)))
    rows.append(("fid events", str(info.db_stats.num_fid_events)))
    rows.append(("uptime", format_duration(info.uptime_seconds)))
    rows.append(("syncing", "yes" if info.is_syncing else "no"))
    rows.append(("peers", str(info.connected_peers)))
    if info.root_hash:
        rows.append(("trie root", info.root_hash))
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join(f"{(label + ':') if label else '':<{width}} {value}" for label, value in rows)


def describe_peers(response: rr.ContactInfoResponse, now_unix: float) -> str:
    """One line per peer: id, connection, score, ban, messages, rpc address."""
    if not response.contacts:
        return "no peers"
    lines = [f"{'peer id':<53} {'conn':<4} {'score':>6}  {'messages':>9}  {'banned for':<10}  rpc"]
    for c in response.contacts:
        banned = format_duration(int(c.banned_until - now_unix)) if c.banned_until > now_unix else "-"
        rpc = f"{c.rpc_address.address}:{c.rpc_address.port}" if c.rpc_address.address else "-"
        messages = str(c.count) if c.hub_version else "?"
        conn = "yes" if c.connected else "no"
        lines.append(f"{c.peer_id:<53} {conn:<4} {c.score:>6}  {messages:>9}  {banned:<10}  {rpc}")
    return "\n".join(lines)


def describe_sync_status(response: rr.SyncStatusResponse, now_unix: float) -> str:
    """One block per peer: whether we agree, what was exchanged, the last problem."""
    head = f"syncing now: {'yes' if response.is_syncing else 'no'}"
    if not response.sync_status:
        return head + "\nno peers"
    blocks = [head]
    for s in response.sync_status:
        last = (
            format_duration(max(0, int(now_unix - s.last_sync_finished / 1000))) + " ago"
            if s.last_sync_finished
            else "never"
        )
        rows = [
            ("peer", s.peerId),
            ("in sync", s.inSync),
            ("messages", f"theirs {s.theirMessages}, ours {s.ourMessages}"),
            ("exchanged", f"fetched {s.fetched} (new {s.merged}), pushed {s.pushed}, {s.sessions} sessions"),
            ("last sync", last),
            ("score", str(s.score)),
        ]
        if s.divergencePrefix:
            rows.append(
                (
                    "diverged at",
                    f"prefix {s.divergencePrefix} ({format_duration(s.divergenceSecondsAgo)} ago)",
                )
            )
        if s.last_error:
            rows.append(("last error", s.last_error))
        width = max(len(label) for label, _ in rows) + 1
        blocks.append("\n".join(f"  {label + ':':<{width}} {value}" for label, value in rows))
    return "\n".join(blocks)


# --- errors


def _metadata_value(metadata: Sequence[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for k, v in metadata or ():
        if k == key:
            return v.decode(errors="replace") if isinstance(v, bytes) else v
    return None


def format_rpc_error(err: grpc.RpcError, target: str) -> str:
    """One line for a failed call: status name, the hub's `errcode` trailer if any, and details.

    A refused or dropped connection (UNAVAILABLE with no hub error code) is reported as the hub being
    unreachable, since that is what the user needs to fix; an UNAVAILABLE sent by a hub carries a code.
    """
    # Errors raised by grpc for calls implement grpc.Call; a bare RpcError (rare) has no status to show.
    code = err.code() if isinstance(err, grpc.Call) else None
    details = err.details() if isinstance(err, grpc.Call) else None
    errcode = _metadata_value(err.trailing_metadata(), "errcode") if isinstance(err, grpc.Call) else None
    name = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.UNAVAILABLE and errcode is None:
        return f"cannot reach hub at {target} (UNAVAILABLE)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED and errcode is None:
        return f"hub at {target} did not answer in time (DEADLINE_EXCEEDED; see --timeout)"
    if errcode is not None and details and details.startswith(f"{errcode}: "):
        # Hubs often repeat the code at the start of the details; say it once.
        details = details[len(errcode) + 2 :]
    text = name if errcode is None else f"{name} ({errcode})"
    return f"{text}: {details}" if details else text
