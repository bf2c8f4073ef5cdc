"""The node's libp2p host: real py-libp2p hosts on 127.0.0.1, port 0, in one process."""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libp2p.network.swarm as libp2p_swarm
import multiaddr
import pytest
import trio
from libp2p import generate_peer_id_from, new_host
from libp2p.abc import INotifee
from libp2p.crypto.ed25519 import create_new_key_pair as new_ed25519_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.pb import crypto_pb2
from libp2p.crypto.secp256k1 import create_new_key_pair as new_secp256k1_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.host.ping import ID as PING_PROTOCOL_ID
from libp2p.host.ping import PingService
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL_ID
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex

from p2p import HubHost, load_or_create_peer_key, open_host, parse_bootstrap_addr
from protocols.errors import HubError

WAIT = 5.0  # generous bound for events that take milliseconds on loopback


# --- helpers ---------------------------------------------------------------------------------------------


class _ConnectionWatcher(INotifee):  # type: ignore[misc]  # libp2p is untyped for mypy here
    """Wakes waiters whenever a host gains or loses a connection (the libp2p notifee hook, no polling)."""

    def __init__(self) -> None:
        self.changed = trio.Event()

    def _fire(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def connected(self, network: Any, conn: Any) -> None:
        self._fire()

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._fire()

    async def opened_stream(self, network: Any, stream: Any) -> None:
        pass

    async def closed_stream(self, network: Any, stream: Any) -> None:
        pass

    async def listen(self, network: Any, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        pass


async def wait_until(hosts: list[HubHost], predicate: Callable[[], bool]) -> None:
    """Wait (at most WAIT seconds) until `predicate` holds, re-checking on every connection change."""
    watchers = [_ConnectionWatcher() for _ in hosts]
    for host, watcher in zip(hosts, watchers, strict=True):
        host.libp2p_host.get_network().register_notifee(watcher)
    with trio.fail_after(WAIT):
        while True:
            events = [w.changed for w in watchers]
            if predicate():
                return
            async with trio.open_nursery() as nursery:
                for event in events:

                    async def wake(event: trio.Event = event) -> None:
                        await event.wait()
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(wake)


def connected_both_ways(a: HubHost, b: HubHost) -> Callable[[], bool]:
    return lambda: b.info.peer_id in a.connected_peers() and a.info.peer_id in b.connected_peers()


def port_of(addr: str) -> int:
    return int(multiaddr.Multiaddr(addr).value_for_protocol("tcp"))


def free_port() -> int:
    """A loopback port nothing listens on (bound and released at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def other_peer_id() -> str:
    return str(generate_peer_id_from(new_ed25519_key_pair()))


class _Records(logging.Handler):
    """Collects "stateless.p2p" records and wakes a waiter on each WARNING."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.warned = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.levelno >= logging.WARNING:
            self.warned.set()


@pytest.fixture
def p2p_log() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("stateless.p2p")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def key_a() -> KeyPair:
    return new_ed25519_key_pair()


@pytest.fixture
def key_b() -> KeyPair:
    return new_ed25519_key_pair()


# --- connecting ------------------------------------------------------------------------------------------


async def test_two_hosts_connect_and_report_real_port(key_a: KeyPair, key_b: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a, open_host(key_b, listen_port=0) as b:
        assert a.info.peer_id == str(generate_peer_id_from(key_a))
        # Otherwise every dial waits 250 ms for a second transport the node never has.
        assert libp2p_swarm._HAPPY_EYEBALLS_DELAY == 0
        for host in (a, b):
            (addr,) = host.info.listen_addrs
            assert addr.startswith("/ip4/127.0.0.1/tcp/")
            assert addr.endswith(f"/p2p/{host.info.peer_id}")
            assert port_of(addr) != 0
        # The reported port is the one really bound: a plain TCP connect reaches it.
        with socket.create_connection(("127.0.0.1", port_of(a.info.listen_addrs[0])), timeout=WAIT):
            pass

        assert await b.connect(a.info.listen_addrs[0]) == a.info.peer_id
        await wait_until([a, b], connected_both_ways(a, b))
        # Dialling an already connected peer is a no-op that still names it.
        assert await b.connect(a.info.listen_addrs[0]) == a.info.peer_id
        assert b.connected_peers() == [a.info.peer_id]


async def test_bootstrap_peers_are_dialled_on_start(key_a: KeyPair, key_b: KeyPair) -> None:
    async with (
        open_host(key_a, listen_port=0) as a,
        open_host(key_b, listen_port=0, bootstrap=[a.info.listen_addrs[0]]) as b,
    ):
        await wait_until([a, b], connected_both_ways(a, b))


async def test_identify_and_ping_are_served(key_a: KeyPair, key_b: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a, open_host(key_b, listen_port=0) as b:
        for host in (a, b):
            served = set(host.libp2p_host.get_mux().get_protocols())
            assert {IDENTIFY_PROTOCOL_ID, PING_PROTOCOL_ID} <= served
        await b.connect(a.info.listen_addrs[0])
        with trio.fail_after(WAIT):
            rtts = await PingService(b.libp2p_host).ping(ID.from_base58(a.info.peer_id), ping_amt=2)
        assert len(rtts) == 2


async def test_dial_with_wrong_peer_id_is_refused_by_noise(key_a: KeyPair, key_b: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a, open_host(key_b, listen_port=0) as b:
        impostor = a.info.listen_addrs[0].replace(a.info.peer_id, other_peer_id())
        with pytest.raises(HubError) as err:
            await b.connect(impostor)
        assert err.value.code == "unavailable"
        assert b.connected_peers() == []


async def test_connect_errors_are_hub_errors(key_a: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a:
        with pytest.raises(HubError) as bad:
            await a.connect("/ip4/127.0.0.1/tcp/1")
        assert bad.value.code == "bad_request.invalid_param"
        with pytest.raises(HubError) as own:
            await a.connect(a.info.listen_addrs[0])
        assert own.value.code == "bad_request.invalid_param"
        with pytest.raises(HubError) as refused:
            await a.connect(f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{other_peer_id()}")
        assert refused.value.code == "unavailable"
        assert "cannot connect" in refused.value.message


# --- only Noise and yamux --------------------------------------------------------------------------------


async def test_only_noise_and_yamux_are_offered(key_a: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a:
        upgrader = a.libp2p_host.get_network().upgrader
        assert list(upgrader.security_multistream.transports) == ["/noise"]
        assert list(upgrader.muxer_multistream.transports) == ["/yamux/1.0.0"]


@pytest.mark.parametrize("stack", ["default", "plaintext-only", "mplex-only"])
async def test_dialers_without_noise_and_yamux_are_rejected(key_a: KeyPair, stack: str) -> None:
    key = new_ed25519_key_pair()
    options: dict[str, Any] = {
        # py-libp2p's default stack offers noise and yamux among others: the control case that connects.
        "default": {},
        "plaintext-only": {"sec_opt": {PLAINTEXT_PROTOCOL_ID: InsecureTransport(key)}},
        "mplex-only": {
            "sec_opt": {NOISE_ID: NoiseTransport(key, noise_privkey=new_x25519_key_pair().private_key)},
            "muxer_opt": {MPLEX_PROTOCOL_ID: Mplex},
        },
    }[stack]
    dialer = new_host(key_pair=key, **options)
    async with (
        open_host(key_a, listen_port=0) as a,
        dialer.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
    ):
        target = info_from_p2p_addr(multiaddr.Multiaddr(a.info.listen_addrs[0]))
        try:
            if stack == "default":
                with trio.fail_after(WAIT):
                    await dialer.connect(target)
                await wait_until([a], lambda: str(dialer.get_id()) in a.connected_peers())
            else:
                with pytest.raises(Exception), trio.fail_after(WAIT):  # noqa: B017 - py-libp2p's own types
                    await dialer.connect(target)
                assert a.connected_peers() == []
        finally:
            with trio.CancelScope(shield=True):
                await dialer.close()


# --- peer key --------------------------------------------------------------------------------------------


def test_peer_key_is_created_once_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "data" / "p2p" / "peer.key"
    first = load_or_create_peer_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    second = load_or_create_peer_key(path)
    assert generate_peer_id_from(second) == generate_peer_id_from(first)
    assert path.read_bytes() == content
    assert first.private_key.get_type().name == "Ed25519"
    assert [p.name for p in path.parent.iterdir()] == ["peer.key"]  # no temporary file left behind


def test_peer_key_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_peer_key(tmp_path / "peer.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "peer.key").stat().st_mode) == 0o600


def test_peer_key_in_go_libp2p_64_byte_form_is_accepted(tmp_path: Path) -> None:
    key = new_ed25519_key_pair()
    data = key.private_key.to_bytes() + key.public_key.to_bytes()
    path = tmp_path / "peer.key"
    path.write_bytes(
        crypto_pb2.PrivateKey(key_type=crypto_pb2.KeyType.Ed25519, data=data).SerializeToString()
    )
    assert generate_peer_id_from(load_or_create_peer_key(path)) == generate_peer_id_from(key)


def _wrong_public_half() -> bytes:
    key, other = new_ed25519_key_pair(), new_ed25519_key_pair()
    data = key.private_key.to_bytes() + other.public_key.to_bytes()
    return crypto_pb2.PrivateKey(key_type=crypto_pb2.KeyType.Ed25519, data=data).SerializeToString()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe not a key at all", "not a libp2p private key"),
        (new_ed25519_key_pair().private_key.serialize() + b"\x00", "not a libp2p private key"),
        (new_secp256k1_key_pair().private_key.serialize(), "must be Ed25519"),
        (
            crypto_pb2.PrivateKey(key_type=crypto_pb2.KeyType.Ed25519, data=b"short").SerializeToString(),
            "32 or 64",
        ),
        (_wrong_public_half(), "does not match"),
    ],
)
def test_corrupt_peer_key_is_a_hub_error_and_is_kept(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "peer.key"
    path.write_bytes(content)
    with pytest.raises(HubError) as err:
        load_or_create_peer_key(path)
    assert err.value.code == "bad_request.invalid_param"
    assert str(path) in err.value.message
    assert reason in err.value.message
    assert path.read_bytes() == content  # never overwritten


def test_peer_key_path_that_is_a_directory_is_a_hub_error(tmp_path: Path) -> None:
    (tmp_path / "peer.key").mkdir()
    with pytest.raises(HubError) as err:
        load_or_create_peer_key(tmp_path / "peer.key")
    assert err.value.code == "bad_request.invalid_param"


# --- bootstrap addresses ---------------------------------------------------------------------------------


def test_parse_bootstrap_addr_accepts_tcp_peer_addresses() -> None:
    peer = other_peer_id()
    assert (
        parse_bootstrap_addr(f" /ip4/10.0.0.1/tcp/2282/p2p/{peer} ") == f"/ip4/10.0.0.1/tcp/2282/p2p/{peer}"
    )
    assert parse_bootstrap_addr(f"/ip6/::1/tcp/2282/p2p/{peer}") == f"/ip6/::1/tcp/2282/p2p/{peer}"


@pytest.mark.parametrize(
    "addr",
    [
        "",
        "garbage",
        "10.0.0.1:2282",
        "/ip4/10.0.0.1/tcp/2282",  # no peer id
        "/ip4/10.0.0.1/tcp/2282/p2p/not-a-peer-id",
        "/ip4/10.0.0.1/tcp/99999/p2p/{peer}",
        "/ip4/10.0.0.1/tcp/0/p2p/{peer}",
        "/ip4/300.0.0.1/tcp/2282/p2p/{peer}",
        "/ip4/10.0.0.1/udp/2282/p2p/{peer}",
        "/p2p/{peer}",
        "/ip4/10.0.0.1/tcp/2282/p2p/{peer}/tcp/1",
        "/dns4/example.com/tcp/2282/p2p/{peer}",
    ],
)
async def test_bad_bootstrap_addr_is_invalid_param(key_a: KeyPair, addr: str) -> None:
    addr = addr.format(peer=other_peer_id())
    with pytest.raises(HubError) as err:
        parse_bootstrap_addr(addr)
    assert err.value.code == "bad_request.invalid_param"
    with pytest.raises(HubError) as err:
        async with open_host(key_a, listen_port=0, bootstrap=[addr]):
            pytest.fail("open_host must reject the address before starting")
    assert err.value.code == "bad_request.invalid_param"


async def test_unreachable_bootstrap_peer_does_not_break_startup(
    key_a: KeyPair, key_b: KeyPair, p2p_log: _Records
) -> None:
    unreachable = f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{other_peer_id()}"
    async with open_host(key_a, listen_port=0) as a:
        with trio.fail_after(WAIT):
            async with open_host(key_b, listen_port=0, bootstrap=[unreachable, a.info.listen_addrs[0]]) as b:
                await wait_until([a, b], connected_both_ways(a, b))
                await p2p_log.warned.wait()
                # Leaving while the unreachable peer waits for its retry must not hang or raise.
    warnings = [r.getMessage() for r in p2p_log.records if r.levelno == logging.WARNING]
    assert any("bootstrap peer" in w and unreachable in w for w in warnings)


# --- listen address --------------------------------------------------------------------------------------


async def test_bootstrap_peer_that_starts_later_is_reached_on_retry(
    key_a: KeyPair, key_b: KeyPair, p2p_log: _Records
) -> None:
    # Devnet nodes start in any order: a bootstrap peer that is down at first must be retried, and
    # py-libp2p's 60 s "recently failed" cache must not swallow the retry.
    port = free_port()
    later = f"/ip4/127.0.0.1/tcp/{port}/p2p/{generate_peer_id_from(key_a)}"
    async with open_host(key_b, listen_port=0, bootstrap=[later]) as b:
        with trio.fail_after(WAIT):
            await p2p_log.warned.wait()
        assert b.connected_peers() == []
        async with open_host(key_a, listen_port=port) as a:
            await wait_until([a, b], connected_both_ways(a, b))


async def test_port_in_use_is_unavailable(key_a: KeyPair) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(HubError) as err:
            async with open_host(key_a, listen_port=port):
                pytest.fail("must not start on a port in use")
    assert err.value.code == "unavailable"
    assert f"gossip port 127.0.0.1:{port} is in use" in err.value.message


async def test_second_node_on_the_same_port_is_unavailable(key_a: KeyPair, key_b: KeyPair) -> None:
    # py-libp2p listens with SO_REUSEPORT, which would let both nodes bind and split the connections.
    async with open_host(key_a, listen_port=0) as a:
        port = port_of(a.info.listen_addrs[0])
        with pytest.raises(HubError) as err:
            async with open_host(key_b, listen_port=port):
                pytest.fail("must not start on a port in use")
    assert err.value.code == "unavailable"


@pytest.mark.parametrize(
    ("listen_host", "listen_port"),
    [("not-an-ip", 0), ("localhost", 0), ("192.0.2.1", 0), ("127.0.0.1", -1), ("127.0.0.1", 65536)],
)
async def test_bad_listen_address_is_invalid_param(
    key_a: KeyPair, listen_host: str, listen_port: int
) -> None:
    with pytest.raises(HubError) as err:
        async with open_host(key_a, listen_host=listen_host, listen_port=listen_port):
            pytest.fail("must not start")
    assert err.value.code == "bad_request.invalid_param"


# --- lifetime --------------------------------------------------------------------------------------------


async def test_open_and_close_repeatedly_on_the_same_port(key_a: KeyPair, key_b: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a:
        port = 0
        for _ in range(3):
            with trio.fail_after(WAIT):
                async with open_host(key_b, listen_port=port, bootstrap=[a.info.listen_addrs[0]]) as b:
                    port = port_of(b.info.listen_addrs[0])  # reused next round: the listener must be gone
                    await wait_until([a, b], connected_both_ways(a, b))
            # The node that left is dropped by its peer too, so the next round starts from scratch.
            await wait_until([a], lambda: a.connected_peers() == [])


async def test_errors_inside_the_block_come_out_unwrapped(key_a: KeyPair) -> None:
    with pytest.raises(HubError) as err:
        async with open_host(key_a, listen_port=0) as a:
            await a.connect(f"/ip4/127.0.0.1/tcp/{free_port()}/p2p/{other_peer_id()}")
    assert err.value.code == "unavailable"
    with pytest.raises(KeyError):
        async with open_host(key_a, listen_port=0):
            raise KeyError("caller's own error")


# --- announce addresses and limits ------------------------------------------------------------------------


async def test_announce_addresses_replace_the_bound_ones(key_a: KeyPair) -> None:
    async with open_host(key_a, listen_port=0, announce=["/dns4/hub1.example/tcp/2282"]) as host:
        assert host.info.listen_addrs == (f"/dns4/hub1.example/tcp/2282/p2p/{host.info.peer_id}",)


@pytest.mark.parametrize(
    "addr",
    [
        "/ip4/1.2.3.4/udp/2282",
        "/ip4/1.2.3.4/tcp/2282/p2p/12D3KooWMqHnpC3BZFzfBMvwnUbiBesneRgUWDBj3ymkg69q997c",
        "nonsense",
    ],
)
async def test_bad_announce_address_is_invalid_param(key_a: KeyPair, addr: str) -> None:
    with pytest.raises(HubError) as info:
        async with open_host(key_a, listen_port=0, announce=[addr]):
            pass
    assert info.value.code == "bad_request.invalid_param"


async def test_max_connections_out_of_range_is_invalid_param(key_a: KeyPair) -> None:
    with pytest.raises(HubError) as info:
        async with open_host(key_a, listen_port=0, max_connections=0):
            pass
    assert info.value.code == "bad_request.invalid_param"


async def test_py_libp2p_auto_dialling_is_off(key_a: KeyPair, key_b: KeyPair) -> None:
    """Whom to connect to is the node's decision: py-libp2p must not redial peers on its own."""
    async with open_host(key_a, listen_port=0) as a, open_host(key_b, listen_port=0) as b:
        await b.connect(a.info.listen_addrs[0])
        await wait_until([a, b], connected_both_ways(a, b))
        network = b.libp2p_host.get_network()
        await network.auto_connector.maybe_connect()  # what its periodic task calls
        await b.disconnect(a.info.peer_id)
        await network.auto_connector.maybe_connect()
        assert a.info.peer_id not in b.connected_peers()


@pytest.mark.parametrize("closer", ["dialler", "listener"])
async def test_inbound_connections_free_their_slot_when_they_close(
    key_a: KeyPair, key_b: KeyPair, closer: str
) -> None:
    """py-libp2p 0.8 keeps each inbound connection's handler, and one of `max_connections` slots, until
    the host stops: without our fix the 4th reconnection below is refused for good."""
    async with open_host(key_a, listen_port=0, max_connections=3) as a, open_host(key_b, listen_port=0) as b:
        for _ in range(8):
            await b.connect(a.info.listen_addrs[0])
            await wait_until([a, b], connected_both_ways(a, b))
            if closer == "dialler":
                await b.disconnect(a.info.peer_id)
            else:
                await a.disconnect(b.info.peer_id)
            await wait_until([a, b], lambda: a.info.peer_id not in b.connected_peers())
            await wait_until([a, b], lambda: b.info.peer_id not in a.connected_peers())


async def test_connections_report_direction_and_address(key_a: KeyPair, key_b: KeyPair) -> None:
    async with open_host(key_a, listen_port=0) as a, open_host(key_b, listen_port=0) as b:
        await b.connect(a.info.listen_addrs[0])
        await wait_until([a, b], connected_both_ways(a, b))
        [seen_by_a] = a.connections()
        [seen_by_b] = b.connections()
        assert (seen_by_a.peer_id, seen_by_a.outbound, seen_by_a.remote_ip) == (
            b.info.peer_id,
            False,
            "127.0.0.1",
        )
        assert (seen_by_b.peer_id, seen_by_b.outbound, seen_by_b.remote_ip) == (
            a.info.peer_id,
            True,
            "127.0.0.1",
        )
