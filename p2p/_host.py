"""The node's libp2p host: TCP, Noise, yamux, identify and ping, nothing else.

`open_host` owns the whole lifetime of a py-libp2p host: it checks the listen address, starts the host,
dials bootstrap peers in the background and, on exit, closes connections before the host's service
contexts end (py-libp2p 0.8.1 reports "Nursery is closed" errors when that order is reversed).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import libp2p.network.swarm as _libp2p_swarm
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as _new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as _NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as _NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as _YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux as _Yamux

from protocols.errors import HubError

#: The only security protocol offered or accepted. Plaintext would let a dialer claim any peer id.
NOISE_PROTOCOL_ID: Final[str] = str(_NOISE_PROTOCOL_ID)
#: The only stream muxer offered or accepted (mplex is slow and deprecated).
YAMUX_PROTOCOL_ID: Final[str] = str(_YAMUX_PROTOCOL_ID)

#: Connections a host keeps at most (inbound ones beyond it are refused).
DEFAULT_MAX_CONNECTIONS: Final = 64
#: Longest a single dial (TCP connect + Noise + yamux negotiation) may take.
DIAL_TIMEOUT: Final = 10.0
#: Bootstrap peers are retried with exponential backoff, so nodes of a devnet may start in any order.
BOOTSTRAP_ATTEMPTS: Final = 5
_BOOTSTRAP_FIRST_BACKOFF: Final = 0.5
_BOOTSTRAP_MAX_BACKOFF: Final = 8.0
#: Bound on the graceful part of shutdown; after it the service contexts are left regardless.
_SHUTDOWN_TIMEOUT: Final = 5.0

_ADDRESS_PROTOCOLS: Final = ("ip4", "ip6")

_log = logging.getLogger("stateless.p2p")


@dataclass(frozen=True)
class HostInfo:
    """Who the host is and where it listens; each listen address ends with `/p2p/<peer id>`."""

    peer_id: str
    listen_addrs: tuple[str, ...]


def _invalid(message: str) -> HubError:
    return HubError("bad_request.invalid_param", message)


def parse_bootstrap_addr(addr: str) -> str:
    """Check that `addr` is a dialable peer address `/ip4|ip6/<ip>/tcp/<port>/p2p/<peer id>`.

    Returns the address in canonical multiaddr form; HubError `bad_request.invalid_param` otherwise.
    """
    text = addr.strip() if isinstance(addr, str) else ""
    try:
        parsed = multiaddr.Multiaddr(text)
        names = [p.name for p in parsed.protocols()]
    except Exception as e:  # multiaddr raises a family of ValueError/TypeError subclasses
        raise _invalid(f"bad peer address {addr!r}: {e}") from None
    if len(names) != 3 or names[0] not in _ADDRESS_PROTOCOLS or names[1:] != ["tcp", "p2p"]:
        raise _invalid(
            f"bad peer address {addr!r}: expected /ip4/<ip>/tcp/<port>/p2p/<peer id> (or /ip6/...), "
            f"got components {'/'.join(names) or 'none'}"
        )
    if int(parsed.value_for_protocol("tcp")) == 0:
        raise _invalid(f"bad peer address {addr!r}: tcp port 0 cannot be dialled")
    return str(parsed)


def parse_announce_addr(addr: str) -> str:
    """Check an address to announce: `/ip4|ip6|dns4|dns6|dns/<host>/tcp/<port>`, without /p2p."""
    text = addr.strip() if isinstance(addr, str) else ""
    try:
        parsed = multiaddr.Multiaddr(text)
        names = [p.name for p in parsed.protocols()]
    except Exception as e:  # multiaddr raises a family of ValueError/TypeError subclasses
        raise _invalid(f"bad announce address {addr!r}: {e}") from None
    if len(names) != 2 or names[0] not in (*_ADDRESS_PROTOCOLS, "dns", "dns4", "dns6") or names[1] != "tcp":
        raise _invalid(
            f"bad announce address {addr!r}: expected /ip4/<ip>/tcp/<port> or /dns4/<name>/tcp/<port>"
        )
    return str(parsed)


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failed dial: py-libp2p nests the useful part in causes and groups."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < 4:
        seen.add(id(current))
        text = str(current).strip().splitlines()[0] if str(current).strip() else type(current).__name__
        if text not in parts:
            parts.append(text)
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return ": ".join(parts)


class HubHost:
    """A running libp2p host. Created by `open_host`; valid only inside its `async with` block."""

    def __init__(self, host: IHost, info: HostInfo) -> None:
        self._host = host
        self._info = info

    @property
    def info(self) -> HostInfo:
        """Peer id and the real bound listen addresses (port 0 resolved)."""
        return self._info

    @property
    def libp2p_host(self) -> IHost:
        """The underlying py-libp2p host, for protocols layered on top (gossip, sync, ...)."""
        return self._host

    async def connect(self, multiaddr: str) -> str:
        """Dial `multiaddr` (`.../tcp/<port>/p2p/<peer id>`) and return the remote peer id once connected.

        Already-connected peers return at once. A malformed address raises HubError
        `bad_request.invalid_param`; a peer that cannot be reached or fails the Noise handshake (including
        one whose key does not match the peer id in the address) raises HubError `unavailable`.
        """
        addr = parse_bootstrap_addr(multiaddr)
        peer_info = info_from_p2p_addr(_multiaddr(addr))
        peer_id = str(peer_info.peer_id)
        if peer_id == self._info.peer_id:
            raise _invalid(f"{addr} is this node's own address")
        # An explicit dial must really dial: py-libp2p otherwise refuses, for 60 s, any peer whose last
        # dial failed, which would defeat bootstrap retries while a devnet is still starting up.
        self._host.get_network().unblock_peer(peer_info.peer_id)
        with trio.move_on_after(DIAL_TIMEOUT) as scope:
            try:
                await self._host.connect(peer_info)
            except Exception as e:  # py-libp2p raises many unrelated types (and groups of them) here
                raise HubError("unavailable", f"cannot connect to {addr}: {_describe(e)}") from e
        if scope.cancelled_caught:
            raise HubError(
                "unavailable", f"cannot connect to {addr}: no connection within {DIAL_TIMEOUT:g} s"
            )
        return peer_id

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection with a peer (no error if there is none)."""
        await _disconnect(self._host, ID.from_base58(peer_id))

    async def disconnect_all(self) -> None:
        """Close every connection (in parallel); services layered on the host call this before they stop."""
        async with trio.open_nursery() as nursery:
            for peer in list(self._host.get_connected_peers()):
                nursery.start_soon(_disconnect, self._host, peer)

    def connected_peers(self) -> list[str]:
        """Peer ids this host has at least one open connection with."""
        return [str(peer) for peer in self._host.get_connected_peers()]

    def connections(self) -> list[PeerConnection]:
        """Every connected peer with the direction and remote address of its connections."""
        out = []
        for peer, conns in list(self._host.get_network().connections.items()):
            if not conns:
                continue
            outbound = any(_is_outbound(conn) for conn in conns)
            out.append(PeerConnection(str(peer), outbound, _remote_ip(conns[0])))
        return out


@dataclass(frozen=True, slots=True)
class PeerConnection:
    """A connected peer: whether we dialled it (any of its connections) and the IP it connects from."""

    peer_id: str
    outbound: bool
    remote_ip: str


def _is_outbound(conn: Any) -> bool:
    return str(getattr(conn, "direction", "")).lower().endswith("outbound")


def _remote_ip(conn: Any) -> str:
    try:
        for addr in conn.get_transport_addresses():
            for proto in ("ip4", "ip6"):
                with contextlib.suppress(Exception):  # multiaddr raises when the protocol is absent
                    return str(addr.value_for_protocol(proto))
    except Exception:  # an exotic or closing connection has no address to tell: one unknown group
        pass
    return ""


def _multiaddr(text: str) -> Any:
    return multiaddr.Multiaddr(text)


def _listen_multiaddr(listen_host: str, listen_port: int) -> str:
    try:
        ip = ipaddress.ip_address(listen_host)
    except ValueError:
        raise _invalid(f"listen host must be an IPv4 or IPv6 address, got {listen_host!r}") from None
    if isinstance(listen_port, bool) or not isinstance(listen_port, int) or not 0 <= listen_port <= 65535:
        raise _invalid(f"listen port must be an integer from 0 to 65535, got {listen_port!r}")
    text = f"/ip{ip.version}/{ip}/tcp/{listen_port}"
    try:
        _multiaddr(text)
    except Exception as e:
        raise _invalid(f"cannot listen on {listen_host}:{listen_port}: {e}") from None
    return text


def _check_bindable(listen_host: str, listen_port: int) -> None:
    """Fail early, with a clear error, if the listen address cannot be bound.

    py-libp2p's own listener only logs a failed bind, and it sets SO_REUSEPORT, so a second node on
    the same port would silently bind too and share its connections. This probe uses SO_REUSEADDR only
    (ports in TIME_WAIT from our previous run are fine) and therefore fails while anyone listens there.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(listen_host).version == 6 else socket.AF_INET
    where = f"{listen_host}:{listen_port}"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((listen_host, listen_port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise HubError(
                "unavailable",
                f"gossip port {where} is in use by another process; stop it or choose another port",
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise _invalid(f"listen host {listen_host} is not an address of this machine") from None
        if e.errno == errno.EACCES:
            raise _invalid(f"no permission to listen on {where} (ports below 1024 need privileges)") from None
        raise HubError("unavailable", f"cannot listen on {where}: {e.strerror or e}") from None


def _new_libp2p_host(key_pair: KeyPair, listen_addr: str, max_connections: int) -> IHost:
    # Both maps are given explicitly: py-libp2p's defaults add plaintext, secio and TLS security and mplex.
    security = {
        TProtocol(NOISE_PROTOCOL_ID): _NoiseTransport(
            key_pair, noise_privkey=_new_x25519_key_pair().private_key
        )
    }
    muxers = {TProtocol(YAMUX_PROTOCOL_ID): _Yamux}
    return new_host(
        key_pair=key_pair,
        sec_opt=security,
        muxer_opt=muxers,
        listen_addrs=[_multiaddr(listen_addr)],
        enable_mDNS=False,
        enable_upnp=False,
        # Connections beyond max_connections are pruned and refused; py-libp2p's defaults (300, with a
        # floor of 50 it would dial for on its own) suit a DHT node, not a hub with a handful of peers.
        connection_config=ConnectionConfig(
            max_connections=max_connections,
            min_connections=0,
            low_watermark=max(1, max_connections * 3 // 4),
            high_watermark=max_connections,
            max_connections_per_peer=2,
        ),
    )


async def _dial_bootstrap(hub: HubHost, addr: str) -> None:
    """Connect to one bootstrap peer, retrying with backoff; failures are logged, never raised."""
    backoff = _BOOTSTRAP_FIRST_BACKOFF
    for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
        try:
            peer_id = await hub.connect(addr)
        except HubError as e:
            if attempt == BOOTSTRAP_ATTEMPTS:
                _log.warning(
                    "bootstrap peer %s unreachable, giving up after %d attempts: %s", addr, attempt, e
                )
                return
            _log.warning(
                "bootstrap peer %s unreachable (attempt %d of %d), retrying in %g s: %s",
                addr,
                attempt,
                BOOTSTRAP_ATTEMPTS,
                backoff,
                e,
            )
            await trio.sleep(backoff)
            backoff = min(backoff * 2, _BOOTSTRAP_MAX_BACKOFF)
        else:
            _log.info("connected to bootstrap peer %s", peer_id)
            return


async def _no_auto_dial() -> None:
    return None


#: How often a held inbound connection is checked for having been dropped by py-libp2p without a close.
_ORPHAN_CHECK_SECONDS: Final = 5.0


def _registered(swarm: Any, muxed: Any) -> bool:
    return any(conn.muxed_conn is muxed for conns in list(swarm.connections.values()) for conn in conns)


class _InboundConnectionEnded(Exception):
    """Ends py-libp2p's handler of an inbound connection once that connection has closed."""


#: Set while py-libp2p's inbound-connection handler runs in this task (see _end_inbound_handlers).
_IN_INBOUND_HANDLER: Final = contextvars.ContextVar("in_inbound_handler", default=False)


def _end_inbound_handlers(swarm: Any) -> None:
    """Work around a py-libp2p 0.8 bug that makes a node refuse every inbound connection after a while.

    The swarm runs each inbound connection's handler under a limiter of `max_connections` slots and,
    once the connection is up, keeps the handler alive until the *swarm* stops (trio closes the TCP
    stream when a handler returns). So each inbound connection ever accepted holds a slot, and a task,
    for the node's lifetime: after `max_connections` of them (peers reconnecting, sybils being evicted)
    nothing can connect to the node any more. Here the handler ends when its own connection closes: the
    upgrade, when called from that handler, waits for the connection to close and then raises, which
    py-libp2p's handler treats as a failed connection (close it, return, free the slot). Other callers
    of the upgrade (hole punching, the host's own API) are unaffected.
    """
    handle, upgrade = swarm._do_handle_inbound_connection, swarm.upgrade_inbound_raw_conn

    async def handle_inbound(*args: Any) -> None:
        token = _IN_INBOUND_HANDLER.set(True)
        try:
            await handle(*args)
        finally:
            _IN_INBOUND_HANDLER.reset(token)

    async def upgrade_inbound(raw_conn: Any, maddr: Any) -> Any:
        muxed = await upgrade(raw_conn, maddr)
        closed = getattr(muxed, "event_closed", None)
        if not _IN_INBOUND_HANDLER.get() or not isinstance(closed, trio.Event):
            return muxed
        while not closed.is_set():
            with trio.move_on_after(_ORPHAN_CHECK_SECONDS):
                await closed.wait()
            if not closed.is_set() and not _registered(swarm, muxed):
                # py-libp2p dropped its wrapper without closing the connection (a duplicate of one the
                # peer already had); nobody else will ever close it.
                with contextlib.suppress(Exception):
                    await muxed.close()
                break
        raise _InboundConnectionEnded

    swarm._do_handle_inbound_connection = handle_inbound
    swarm.upgrade_inbound_raw_conn = upgrade_inbound


async def _disconnect(host: IHost, peer: Any) -> None:
    try:
        await host.disconnect(peer)
    except Exception as e:  # a peer already gone is fine; shutdown goes on
        _log.debug("disconnecting %s: %s", peer, e)


async def _close(host: IHost) -> None:
    """Close every connection (in parallel: each yamux close takes ~0.1 s), then the host itself."""
    async with trio.open_nursery() as nursery:
        for peer in list(host.get_connected_peers()):
            nursery.start_soon(_disconnect, host, peer)
    try:
        await host.close()
    except Exception as e:
        _log.warning("closing libp2p host: %s", e)


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    if len(group.exceptions) != 1:
        return None
    inner = group.exceptions[0]
    return _sole_exception(inner) if isinstance(inner, BaseExceptionGroup) else inner


@asynccontextmanager
async def open_host(
    key_pair: KeyPair,
    *,
    listen_host: str = "127.0.0.1",
    listen_port: int = 2282,
    bootstrap: Sequence[str] = (),
    announce: Sequence[str] = (),
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> AsyncIterator[HubHost]:
    """Run a libp2p host listening on TCP `listen_host:listen_port` (0 = any free port) until the block ends.

    Yields once the host listens (the real port is in `info.listen_addrs`). Bootstrap peers are dialled
    in the background; an unreachable one is logged on "stateless.p2p" and never stops the node. Bad
    parameters raise HubError `bad_request.invalid_param`; a port in use raises HubError `unavailable`.
    Errors raised inside the block come out as themselves, not wrapped in py-libp2p's exception groups.
    `announce` replaces the bound addresses in `info.listen_addrs` (what peers are told to dial: behind
    NAT or in containers); each is a /ip4|ip6|dns4|dns6/.../tcp/<port> multiaddr.
    """
    listen_addr = _listen_multiaddr(listen_host, listen_port)
    if isinstance(bootstrap, str):
        raise _invalid("bootstrap must be a sequence of peer addresses, not a single string")
    peers = [parse_bootstrap_addr(addr) for addr in bootstrap]
    announced = [parse_announce_addr(addr) for addr in announce]
    if not 1 <= max_connections <= 10_000:
        raise _invalid(f"max_connections must be 1..10000, got {max_connections}")
    _check_bindable(listen_host, listen_port)
    # Without this every dial waits 250 ms for a second transport we never have.
    _libp2p_swarm._HAPPY_EYEBALLS_DELAY = 0
    host = _new_libp2p_host(key_pair, listen_addr, max_connections)
    # py-libp2p's AutoConnector dials up to 200 peers from the peer store on its own, including peers we
    # just banned or cut off. Whom to connect to is the node's decision (bootstrap list, contact info).
    host.get_network().auto_connector.maybe_connect = _no_auto_dial
    _end_inbound_handlers(host.get_network())
    peer_id = str(host.get_id())
    try:
        async with host.run(listen_addrs=[_multiaddr(listen_addr)]):
            try:
                bound = [str(addr) for addr in host.get_transport_addrs()]
                if not bound:
                    raise HubError(
                        "unavailable",
                        f"gossip port {listen_host}:{listen_port} is in use or cannot be opened",
                    )
                shown = announced or bound
                hub = HubHost(host, HostInfo(peer_id, tuple(f"{addr}/p2p/{peer_id}" for addr in shown)))
                _log.info("libp2p host %s listening on %s", peer_id, ", ".join(bound))
                async with trio.open_nursery() as nursery:
                    for addr in peers:
                        if addr.endswith(f"/p2p/{peer_id}"):
                            _log.info("skipping bootstrap address %s: it is this node", addr)
                            continue
                        nursery.start_soon(_dial_bootstrap, hub, addr)
                    try:
                        yield hub
                    finally:
                        nursery.cancel_scope.cancel()
            finally:
                with trio.move_on_after(_SHUTDOWN_TIMEOUT, shield=True) as scope:
                    await _close(host)
                if scope.cancelled_caught:
                    _log.warning("libp2p host %s did not close within %g s", peer_id, _SHUTDOWN_TIMEOUT)
    except BaseExceptionGroup as group:
        # py-libp2p's service contexts wrap whatever crosses them (our HubErrors, the caller's errors)
        # in nested groups; a single error is re-raised as itself so callers can catch it by type.
        sole = _sole_exception(group)
        if sole is None:
            raise
        raise sole from sole.__cause__
