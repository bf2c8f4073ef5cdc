"""py-libp2p glue: the node's libp2p host and its persistent peer identity."""

from p2p._host import (
    BOOTSTRAP_ATTEMPTS,
    DIAL_TIMEOUT,
    NOISE_PROTOCOL_ID,
    YAMUX_PROTOCOL_ID,
    HostInfo,
    HubHost,
    open_host,
    parse_bootstrap_addr,
)
from p2p._keys import PEER_KEY_FILE_MODE, load_or_create_peer_key

__all__ = [
    "BOOTSTRAP_ATTEMPTS",
    "DIAL_TIMEOUT",
    "NOISE_PROTOCOL_ID",
    "PEER_KEY_FILE_MODE",
    "YAMUX_PROTOCOL_ID",
    "HostInfo",
    "HubHost",
    "load_or_create_peer_key",
    "open_host",
    "parse_bootstrap_addr",
]
