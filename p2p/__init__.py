"""py-libp2p glue: the host, gossip, the diff-sync wire protocol and connection events."""

from p2p._framing import FrameError, FrameReader, encode_frame
from p2p._gossip import MAX_GOSSIP_PAYLOAD, Gossip, contact_topic, messages_topic, open_gossip
from p2p._host import (
    BOOTSTRAP_ATTEMPTS,
    DEFAULT_MAX_CONNECTIONS,
    DIAL_TIMEOUT,
    NOISE_PROTOCOL_ID,
    YAMUX_PROTOCOL_ID,
    HostInfo,
    HubHost,
    open_host,
    parse_announce_addr,
    parse_bootstrap_addr,
)
from p2p._keys import PEER_KEY_FILE_MODE, load_or_create_peer_key
from p2p._sync_wire import (
    MAX_IDS_PER_PAGE,
    MAX_MESSAGES_PER_REQUEST,
    MAX_SYNC_FRAME,
    SYNC_PROTOCOL_ID,
    SyncClient,
    SyncPeerError,
    SyncSource,
    serve_sync_stream,
)

__all__ = [
    "BOOTSTRAP_ATTEMPTS",
    "DEFAULT_MAX_CONNECTIONS",
    "DIAL_TIMEOUT",
    "MAX_GOSSIP_PAYLOAD",
    "MAX_IDS_PER_PAGE",
    "MAX_MESSAGES_PER_REQUEST",
    "MAX_SYNC_FRAME",
    "NOISE_PROTOCOL_ID",
    "PEER_KEY_FILE_MODE",
    "SYNC_PROTOCOL_ID",
    "YAMUX_PROTOCOL_ID",
    "FrameError",
    "FrameReader",
    "Gossip",
    "HostInfo",
    "HubHost",
    "SyncClient",
    "SyncPeerError",
    "SyncSource",
    "contact_topic",
    "encode_frame",
    "load_or_create_peer_key",
    "messages_topic",
    "open_gossip",
    "open_host",
    "parse_announce_addr",
    "parse_bootstrap_addr",
    "serve_sync_stream",
]
