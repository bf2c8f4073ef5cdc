"""`stateless client ...`: sign and submit messages to a hub, read what it stores, follow its events.

Also home of what every gRPC-speaking command shares (argument types, the channel, error translation);
`stateless admin` uses those too.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message as ProtoMessage

from node.cli._output import (
    CliError,
    UsageError,
    describe_hub_info,
    describe_message,
    describe_onchain_event,
    describe_peers,
    describe_sync_status,
    describe_user_data,
    format_rpc_error,
    hex0x,
    list_to_json,
    to_json,
)
from node.config import DEFAULT_HOST, DEFAULT_RPC_PORT, NETWORKS, parse_network
from node.keys import load_key_file
from protocols.messages._signing import HASH_LENGTH, sign_message_data
from protocols.messages._time import farcaster_now
from protocols.proto import hub_event_pb2 as he
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr
from protocols.proto import rpc_pb2_grpc

DEFAULT_RPC: Final = f"{DEFAULT_HOST}:{DEFAULT_RPC_PORT}"
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_LIMIT: Final = 100
#: Page size asked of the hub while paginating; the hub may return fewer.
PAGE_SIZE: Final = 100
_MAX_FID: Final = 2**64 - 1

T = TypeVar("T")

# --- arguments


def fid_arg(text: str) -> int:
    """argparse type: a positive integer fid."""
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if not 0 < value <= _MAX_FID:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def positive_int_arg(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int_arg(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def timeout_arg(text: str) -> float:
    """argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"timeout must be a positive number of seconds, got {text!r}")
    return value


def _hash_or_none(text: str) -> bytes | None:
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) != 2 * HASH_LENGTH:
        return None
    try:
        return bytes.fromhex(digits)
    except ValueError:
        return None


def hash_arg(text: str) -> bytes:
    """argparse type: a 20-byte message hash as 0x-hex."""
    value = _hash_or_none(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a 20-byte hash as 0x plus 40 hex digits, got {text!r}")
    return value


def cast_id_arg(text: str) -> pb.CastId:
    """argparse type: `FID:0xHASH`, a cast id with a positive fid and a 20-byte hash."""
    fid_text, sep, hash_text = text.partition(":")
    digest = _hash_or_none(hash_text) if sep else None
    try:
        fid = fid_arg(fid_text)
    except argparse.ArgumentTypeError:
        fid = 0
    if digest is None or fid == 0:
        raise argparse.ArgumentTypeError(
            f"expected a cast id FID:0xHASH (positive fid, 20-byte hash in hex), got {text!r}"
        )
    return pb.CastId(fid=fid, hash=digest)


def rpc_arg(text: str) -> str:
    """argparse type: HOST:PORT (IPv6 hosts in brackets) with a port from 1 to 65535."""
    host, sep, port_text = text.rpartition(":")
    port = int(port_text) if port_text.isdigit() else 0
    bare_host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not bare_host or not 0 < port <= 65_535 or any(c.isspace() for c in host):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port from 1 to 65535, got {text!r}")
    return text


def add_rpc_options(parser: argparse.ArgumentParser) -> None:
    """--rpc and --timeout, on every command that talks to a hub."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--rpc",
        type=rpc_arg,
        default=DEFAULT_RPC,
        metavar="HOST:PORT",
        help=f"gRPC address of the hub (default {DEFAULT_RPC})",
    )
    group.add_argument(
        "--timeout",
        type=timeout_arg,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"deadline for each call (default {DEFAULT_TIMEOUT:g})",
    )


# --- connection


@dataclass(frozen=True, slots=True)
class HubConnection:
    """A channel to one hub with both service stubs and the per-call timeout."""

    target: str
    timeout: float
    hub: Any  # rpc_pb2_grpc.HubServiceStub (generated grpc code is untyped)
    admin: Any  # rpc_pb2_grpc.AdminServiceStub


@contextmanager
def rpc_errors(target: str) -> Iterator[None]:
    """Turn a failed gRPC call inside the block into a one-line `CliError`."""
    try:
        yield
    except grpc.RpcError as e:
        raise CliError(format_rpc_error(e, target)) from None


@contextmanager
def connect(args: argparse.Namespace) -> Iterator[HubConnection]:
    """Open an insecure channel to `args.rpc`; calls in the block fail as `CliError`s."""
    target: str = args.rpc
    with grpc.insecure_channel(target) as channel, rpc_errors(target):
        yield HubConnection(
            target=target,
            timeout=args.timeout,
            hub=rpc_pb2_grpc.HubServiceStub(channel),
            admin=rpc_pb2_grpc.AdminServiceStub(channel),
        )


def errcode_of(err: grpc.RpcError) -> str | None:
    """The hub error code a failed call carried in its `errcode` trailing metadata, if any."""
    if not isinstance(err, grpc.Call):
        return None
    for key, value in err.trailing_metadata() or ():
        if key == "errcode":
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None


def paginate(fetch: Callable[[int, bytes], tuple[Sequence[T], bytes]], limit: int) -> list[T]:
    """Collect up to `limit` items from a paginated call.

    `fetch(page_size, page_token)` returns one page and the next token (empty at the end). A hub that
    returns an empty page or the same token again ends the loop rather than spinning forever.
    """
    items: list[T] = []
    token = b""
    while len(items) < limit:
        batch, next_token = fetch(min(PAGE_SIZE, limit - len(items)), token)
        items.extend(batch[: limit - len(items)])
        if not batch or not next_token or next_token == token:
            break
        token = next_token
    return items


def _page_fields(page_size: int, token: bytes, reverse: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {"page_size": page_size}
    if token:
        fields["page_token"] = token
    if reverse:
        fields["reverse"] = True
    return fields


# --- writes


def _header(args: argparse.Namespace, message_type: int) -> pb.MessageData:
    return pb.MessageData(
        type=message_type,  # type: ignore[arg-type]
        fid=args.fid,
        timestamp=farcaster_now(),
        network=parse_network(args.network),  # type: ignore[arg-type]
    )


def _submit_all(args: argparse.Namespace, datas: Sequence[pb.MessageData]) -> list[pb.Message]:
    """Sign each MessageData with `args.key` and submit them in order; the hub's accepted messages."""
    key = load_key_file(args.key)
    messages = [sign_message_data(data, key) for data in datas]
    accepted = []
    with connect(args) as conn:
        for message in messages:
            result: pb.Message = conn.hub.SubmitMessage(message, timeout=conn.timeout)
            accepted.append(result if result.hash else message)
    return accepted


def _cmd_cast(args: argparse.Namespace) -> int:
    data = _header(args, pb.MESSAGE_TYPE_CAST_ADD)
    body = data.cast_add_body
    body.text = args.text
    if args.parent is not None:
        body.parent_cast_id.CopyFrom(args.parent)
    elif args.parent_url is not None:
        body.parent_url = args.parent_url
    for embed in args.embed:
        if isinstance(embed, pb.CastId):
            body.embeds.add(cast_id=embed)
        else:
            body.embeds.add(url=embed)
    # Farcaster inserts each mention at a byte offset of the text; without an explicit offset the
    # mention goes after the text, which keeps offsets valid and in ascending order.
    text_length = len(args.text.encode())
    for fid, position in sorted(args.mention, key=lambda m: text_length if m[1] is None else m[1]):
        if position is not None and position > text_length:
            raise UsageError(
                f"--mention {fid}@{position}: position is past the end of the text ({text_length} bytes)"
            )
        body.mentions.append(fid)
        body.mentions_positions.append(text_length if position is None else position)
    (message,) = _submit_all(args, [data])
    print(hex0x(message.hash))
    return 0


def _cmd_react(args: argparse.Namespace) -> int:
    data = _header(args, pb.MESSAGE_TYPE_REACTION_REMOVE if args.remove else pb.MESSAGE_TYPE_REACTION_ADD)
    body = data.reaction_body
    body.type = pb.REACTION_TYPE_LIKE if args.reaction == "like" else pb.REACTION_TYPE_RECAST
    if args.cast is not None:
        body.target_cast_id.CopyFrom(args.cast)
    else:
        body.target_url = args.url
    (message,) = _submit_all(args, [data])
    print(hex0x(message.hash))
    return 0


def _cmd_follow(args: argparse.Namespace) -> int:
    data = _header(args, pb.MESSAGE_TYPE_LINK_REMOVE if args.remove else pb.MESSAGE_TYPE_LINK_ADD)
    data.link_body.type = "follow"
    data.link_body.target_fid = args.target_fid
    (message,) = _submit_all(args, [data])
    print(hex0x(message.hash))
    return 0


#: profile option -> (UserDataType, label printed next to the hash)
_PROFILE_FIELDS: Final = {
    "display": (pb.USER_DATA_TYPE_DISPLAY, "display"),
    "bio": (pb.USER_DATA_TYPE_BIO, "bio"),
    "pfp": (pb.USER_DATA_TYPE_PFP, "pfp"),
    "url": (pb.USER_DATA_TYPE_URL, "url"),
    "username": (pb.USER_DATA_TYPE_USERNAME, "username"),
}


def _cmd_profile(args: argparse.Namespace) -> int:
    datas, labels = [], []
    for option, (user_data_type, label) in _PROFILE_FIELDS.items():
        value = getattr(args, option)
        if value is None:
            continue
        data = _header(args, pb.MESSAGE_TYPE_USER_DATA_ADD)
        data.user_data_body.type = user_data_type
        data.user_data_body.value = value
        datas.append(data)
        labels.append(label)
    if not datas:
        raise UsageError("nothing to set; give at least one of --display, --bio, --pfp, --url, --username")
    for message, label in zip(_submit_all(args, datas), labels, strict=True):
        print(f"{hex0x(message.hash)}  {label}")
    return 0


def _cmd_delete_cast(args: argparse.Namespace) -> int:
    data = _header(args, pb.MESSAGE_TYPE_CAST_REMOVE)
    data.cast_remove_body.target_hash = args.hash
    (message,) = _submit_all(args, [data])
    print(hex0x(message.hash))
    return 0


# --- reads


def _print_messages(args: argparse.Namespace, messages: Sequence[pb.Message], what: str) -> None:
    if args.json:
        print(list_to_json(messages))
    elif not messages:
        print(f"no {what} for fid {args.fid}")
    else:
        for message in messages:
            print(describe_message(message))


def _read_messages(
    args: argparse.Namespace, method: str, build: Callable[[dict[str, Any]], ProtoMessage]
) -> list[pb.Message]:
    """Page through a MessagesResponse method; `build(page_fields)` makes each request."""
    with connect(args) as conn:
        call = getattr(conn.hub, method)

        def fetch(page_size: int, token: bytes) -> tuple[Sequence[pb.Message], bytes]:
            resp: rr.MessagesResponse = call(
                build(_page_fields(page_size, token, args.reverse)), timeout=conn.timeout
            )
            return resp.messages, resp.next_page_token

        return paginate(fetch, args.limit)


def _cmd_casts(args: argparse.Namespace) -> int:
    messages = _read_messages(args, "GetCastsByFid", lambda page: rr.FidRequest(fid=args.fid, **page))
    _print_messages(args, messages, "casts")
    return 0


def _cmd_reactions(args: argparse.Namespace) -> int:
    def build(page: dict[str, Any]) -> ProtoMessage:
        request = rr.ReactionsByFidRequest(fid=args.fid, **page)
        if args.type is not None:
            request.reaction_type = pb.REACTION_TYPE_LIKE if args.type == "like" else pb.REACTION_TYPE_RECAST
        return request

    _print_messages(args, _read_messages(args, "GetReactionsByFid", build), "reactions")
    return 0


def _cmd_links(args: argparse.Namespace) -> int:
    def build(page: dict[str, Any]) -> ProtoMessage:
        request = rr.LinksByFidRequest(fid=args.fid, **page)
        if args.link_type is not None:
            request.link_type = args.link_type
        return request

    _print_messages(args, _read_messages(args, "GetLinksByFid", build), "links")
    return 0


def _cmd_user(args: argparse.Namespace) -> int:
    messages = _read_messages(args, "GetUserDataByFid", lambda page: rr.FidRequest(fid=args.fid, **page))
    if args.json:
        print(list_to_json(messages))
    elif not messages:
        print(f"no user data for fid {args.fid}")
    else:
        for message in messages:
            print(describe_user_data(message))
    return 0


def _cmd_signers(args: argparse.Namespace) -> int:
    with connect(args) as conn:

        def fetch(page_size: int, token: bytes) -> tuple[Sequence[Any], bytes]:
            request = rr.FidRequest(fid=args.fid, **_page_fields(page_size, token, args.reverse))
            resp: rr.OnChainEventResponse = conn.hub.GetOnChainSignersByFid(request, timeout=conn.timeout)
            return resp.events, resp.next_page_token

        events = paginate(fetch, args.limit)
    if args.json:
        print(list_to_json(events))
    elif not events:
        print(f"no signers for fid {args.fid}")
    else:
        for event in events:
            print(describe_onchain_event(event))
    return 0


def _cmd_cast_get(args: argparse.Namespace) -> int:
    with connect(args) as conn:
        message: pb.Message = conn.hub.GetCast(args.cast_id, timeout=conn.timeout)
    print(to_json(message, indent=2) if args.json else describe_message(message))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    with connect(args) as conn:
        info: rr.HubInfoResponse = conn.hub.GetInfo(rr.HubInfoRequest(db_stats=True), timeout=conn.timeout)
    print(to_json(info, indent=2) if args.json else describe_hub_info(info))
    return 0


def _cmd_peers(args: argparse.Namespace) -> int:
    with connect(args) as conn:
        peers: rr.ContactInfoResponse = conn.hub.GetCurrentPeers(rr.Empty(), timeout=conn.timeout)
    print(to_json(peers, indent=2) if args.json else describe_peers(peers, time.time()))
    return 0


def _cmd_sync_status(args: argparse.Namespace) -> int:
    request = rr.SyncStatusRequest()
    if args.peer:
        request.peerId = args.peer
    with connect(args) as conn:
        status: rr.SyncStatusResponse = conn.hub.GetSyncStatus(request, timeout=conn.timeout)
    print(to_json(status, indent=2) if args.json else describe_sync_status(status, time.time()))
    return 0


#: `--type` names for subscribe -> HubEventType
EVENT_TYPES: Final = {
    "merge_message": he.HUB_EVENT_TYPE_MERGE_MESSAGE,
    "prune_message": he.HUB_EVENT_TYPE_PRUNE_MESSAGE,
    "revoke_message": he.HUB_EVENT_TYPE_REVOKE_MESSAGE,
    "merge_username_proof": he.HUB_EVENT_TYPE_MERGE_USERNAME_PROOF,
    "merge_on_chain_event": he.HUB_EVENT_TYPE_MERGE_ON_CHAIN_EVENT,
}


def event_type_arg(text: str) -> int:
    """argparse type: an event type name, e.g. `merge_message` (the HUB_EVENT_TYPE_ prefix is optional)."""
    name = text.lower().removeprefix("hub_event_type_")
    if name not in EVENT_TYPES:
        raise argparse.ArgumentTypeError(f"unknown event type {text!r}; use one of {', '.join(EVENT_TYPES)}")
    return EVENT_TYPES[name]


def _cmd_subscribe(args: argparse.Namespace) -> int:
    request = rr.SubscribeRequest(event_types=args.type)
    if args.from_id is not None:
        request.from_id = args.from_id
    with connect(args) as conn:
        # No deadline: the stream is meant to run until the user stops it; a refused connection still
        # fails at once with UNAVAILABLE.
        stream = conn.hub.Subscribe(request)
        seen = 0
        try:
            for event in stream:
                print(to_json(event), flush=True)
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        except KeyboardInterrupt:
            # Ctrl-C is how a subscription normally ends, so it is not an error here.
            return 0
        finally:
            stream.cancel()
    return 0


# --- parser


def _embed_arg(text: str) -> pb.CastId | str:
    """An embed is a cast id when it looks like FID:0xHASH, else a URL."""
    try:
        return cast_id_arg(text)
    except argparse.ArgumentTypeError:
        return text


def _mention_arg(text: str) -> tuple[int, int | None]:
    """`FID` or `FID@BYTE_OFFSET` (where in the text the mention goes)."""
    fid_text, sep, position_text = text.partition("@")
    fid = fid_arg(fid_text)
    if not sep:
        return fid, None
    try:
        return fid, non_negative_int_arg(position_text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected FID or FID@BYTE_OFFSET, got {text!r}") from None


def _writer(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--fid", type=fid_arg, required=True, help="your fid (the message author)")
    parser.add_argument("--key", type=Path, required=True, metavar="FILE", help="signer key file of the fid")
    parser.add_argument(
        "--network",
        choices=list(NETWORKS),
        default="devnet",
        help="network the message is for (default devnet)",
    )
    add_rpc_options(parser)
    return parser


def _reader(
    sub: Any, name: str, help_text: str, *, paged: bool = True, fid: bool = True
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    if fid:
        parser.add_argument("--fid", type=fid_arg, required=True, help="whose data to read")
    if paged:
        parser.add_argument(
            "--limit",
            type=positive_int_arg,
            default=DEFAULT_LIMIT,
            help=f"at most this many results (default {DEFAULT_LIMIT})",
        )
        parser.add_argument("--reverse", action="store_true", help="newest first")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_rpc_options(parser)
    return parser


def register(subparsers: Any) -> None:
    """Add `client` and its commands to the top-level subparsers."""
    client = subparsers.add_parser(
        "client",
        help="submit and read messages through a hub's gRPC API",
        description="Submit signed messages to a hub and read what it stores.",
    )
    sub = client.add_subparsers(dest="client_command", metavar="COMMAND", required=True)

    cast = _writer(sub, "cast", "publish a cast")
    cast.add_argument("text", metavar="TEXT", help="cast text (at most 320 bytes)")
    parent = cast.add_mutually_exclusive_group()
    parent.add_argument("--parent-url", metavar="URL", help="post in a channel (parent URL)")
    parent.add_argument("--parent", type=cast_id_arg, metavar="FID:0xHASH", help="reply to this cast")
    cast.add_argument(
        "--embed",
        type=_embed_arg,
        action="extend",
        nargs="+",
        default=[],
        metavar="URL",
        help="embed a URL or a cast (FID:0xHASH); at most 2",
    )
    cast.add_argument(
        "--mention",
        type=_mention_arg,
        action="extend",
        nargs="+",
        default=[],
        metavar="FID",
        help="mention a fid; FID@N places the mention at byte N of the text (default: after the text)",
    )
    cast.set_defaults(handler=_cmd_cast)

    react = _writer(sub, "react", "like or recast a cast or URL")
    react.add_argument("reaction", choices=["like", "recast"])
    target = react.add_mutually_exclusive_group(required=True)
    target.add_argument("--cast", type=cast_id_arg, metavar="FID:0xHASH", help="the cast to react to")
    target.add_argument("--url", metavar="URL", help="the URL to react to")
    react.add_argument("--remove", action="store_true", help="undo the reaction")
    react.set_defaults(handler=_cmd_react)

    follow = _writer(sub, "follow", "follow (or with --remove unfollow) a fid")
    follow.add_argument("target_fid", type=fid_arg, metavar="TARGET_FID")
    follow.add_argument("--remove", action="store_true", help="unfollow")
    follow.set_defaults(handler=_cmd_follow)

    profile = _writer(sub, "profile", "set profile fields (one message per field)")
    profile.add_argument("--display", metavar="NAME", help="display name")
    profile.add_argument("--bio", metavar="TEXT", help="bio")
    profile.add_argument("--pfp", metavar="URL", help="profile picture URL")
    profile.add_argument("--url", metavar="URL", help="website")
    profile.add_argument("--username", metavar="NAME", help="username")
    profile.set_defaults(handler=_cmd_profile)

    delete = _writer(sub, "delete-cast", "delete one of your casts")
    delete.add_argument("hash", type=hash_arg, metavar="0xHASH", help="hash of the cast to delete")
    delete.set_defaults(handler=_cmd_delete_cast)

    _reader(sub, "casts", "list a fid's casts").set_defaults(handler=_cmd_casts)

    cast_get = _reader(sub, "cast-get", "show one cast", paged=False, fid=False)
    cast_get.add_argument("cast_id", type=cast_id_arg, metavar="FID:0xHASH")
    cast_get.set_defaults(handler=_cmd_cast_get)

    reactions = _reader(sub, "reactions", "list a fid's reactions")
    reactions.add_argument("--type", choices=["like", "recast"], help="only this reaction type")
    reactions.set_defaults(handler=_cmd_reactions)

    links = _reader(sub, "links", "list a fid's links (follows)")
    links.add_argument("--link-type", metavar="TYPE", help='only this link type, e.g. "follow"')
    links.set_defaults(handler=_cmd_links)

    _reader(sub, "user", "show a fid's profile (user data)").set_defaults(handler=_cmd_user)
    _reader(sub, "signers", "list a fid's active signer keys").set_defaults(handler=_cmd_signers)
    _reader(
        sub, "info", "show the hub's version, peer id, addresses and counts", paged=False, fid=False
    ).set_defaults(handler=_cmd_info)
    _reader(
        sub, "peers", "list the hub's peers with their scores and bans", paged=False, fid=False
    ).set_defaults(handler=_cmd_peers)
    sync_status = _reader(
        sub, "sync-status", "show diff-sync progress with each peer", paged=False, fid=False
    )
    sync_status.add_argument("--peer", metavar="PEER_ID", help="only this peer")
    sync_status.set_defaults(handler=_cmd_sync_status)

    subscribe = sub.add_parser(
        "subscribe",
        help="print hub events as JSON lines until Ctrl-C",
        description="Stream hub events, one JSON object per line, until Ctrl-C.",
    )
    subscribe.add_argument(
        "--from-id",
        type=non_negative_int_arg,
        metavar="N",
        help="first replay the retained events from id N on; 0 replays all retained events "
        "(default: only new events)",
    )
    subscribe.add_argument(
        "--type",
        type=event_type_arg,
        action="extend",
        nargs="+",
        default=[],
        metavar="TYPE",
        help=f"only these event types ({', '.join(EVENT_TYPES)}); default all",
    )
    subscribe.add_argument("--count", type=positive_int_arg, metavar="N", help="stop after N events")
    add_rpc_options(subscribe)
    subscribe.set_defaults(handler=_cmd_subscribe)
