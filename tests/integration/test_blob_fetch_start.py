"""A fetch starts on the providers it knows: it does not wait for the DHT, nor for slow `have` answers.

Connected peers that hold the blob serve it while the DHT lookup is still running; providers the DHT
finds later join the running fetch when the connected ones withhold or lie; a lookup that never ends
neither stalls a fetch that is done nor lets a stuck one hang; and the rounds that look again past
withholders still work when providers arrive one at a time. The DHT here is a stub whose provider
lookup blocks until the test releases it, so "still running" is certain, not a matter of timing.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from node.blobs import IncrementalProviderSource, ProviderFinder
from p2p import BLOCKS_PROTOCOL_ID, FrameReader
from p2p._blocks_wire import MAX_BLOCK_REQUEST_FRAME
from protocols.blobs import Cid
from protocols.errors import HubError
from tests.integration.test_blob_exchange import (
    SMALL,
    WAIT,
    LyingServer,
    Peer,
    build,
    connect,
    open_liar,
    open_peer,
    payload,
    put,
    read_all,
)

#: What the DHT is given to answer, in tests where it must never end on its own.
FOREVER = 3600.0


class HeldDht:
    """A stand-in for KadDHT whose provider lookup blocks until `release` names the providers."""

    def __init__(self) -> None:
        self.routing_table = self
        self.asked = trio.Event()
        self.released = trio.Event()
        self.providers: list[Any] = []
        self.lookups = 0

    def peer_in_table(self, _peer: Any) -> bool:
        return True

    async def add_peer(self, _peer: Any) -> None:
        pass

    async def find_providers(self, _key: str, count: int) -> list[Any]:
        self.lookups += 1
        self.asked.set()
        await self.released.wait()
        return self.providers[:count]

    def release(self, *peers: Peer) -> None:
        self.providers = [SimpleNamespace(peer_id=p.peer_id, addrs=[p.addr]) for p in peers]
        self.released.set()


def held_dht(peer: Peer, *, timeout: float = FOREVER) -> tuple[ProviderFinder, HeldDht]:
    """Give `peer`'s exchange a HeldDht; `find` would wait for it as long as `timeout` (no grace)."""
    assert peer.exchange is not None
    finder = peer.exchange.finder
    dht = HeldDht()
    finder.dht = dht  # type: ignore[assignment]
    finder.dht_timeout = timeout
    finder.dht_grace = timeout
    return finder, dht


class WatchedLiar(LyingServer):
    """A LyingServer that says when it is first asked for blocks."""

    def __init__(self, blocks: dict[Cid, bytes], lie: str) -> None:
        super().__init__(blocks, lie)
        self.wanted = trio.Event()

    def answer(self, want: list[bytes]) -> bytes | None:
        self.wanted.set()
        return super().answer(want)


async def test_fetch_from_a_connected_holder_does_not_wait_for_the_dht(tmp_path: Any) -> None:
    data = payload(300_000, seed=21)
    root, blocks = build(data, **SMALL)
    with trio.fail_after(WAIT):
        async with open_peer(tmp_path, "a") as a, open_peer(tmp_path, "me") as me:
            put(a.store, root, blocks)
            await connect(me, a)
            _, dht = held_dht(me)
            assert me.exchange is not None
            info = await me.exchange.fetch(root)  # would wait FOREVER (or until fail_after) for the DHT
            assert info.complete and read_all(me.store, root) == data
            assert not dht.released.is_set()
            await dht.asked.wait()  # the lookup did start (in the exchange's background nursery)
            assert dht.lookups == 1
            dht.release()  # lets the background lookup end; the fetch is long over
            assert not me.penalties


async def test_find_still_returns_the_complete_list_and_find_each_hands_over_early(tmp_path: Any) -> None:
    root, blocks = build(payload(20_000, seed=22), **SMALL)
    with trio.fail_after(WAIT):
        async with (
            open_peer(tmp_path, "connected") as a,
            open_peer(tmp_path, "far") as far,
            open_peer(tmp_path, "me") as me,
        ):
            put(a.store, root, blocks)
            put(far.store, root, blocks)
            await connect(me, a)
            finder, dht = held_dht(me)

            # find_each: the connected holder at once, the DHT's provider (dialled) once released.
            send, recv = trio.open_memory_channel[str](10)
            done = trio.Event()

            async def each() -> None:
                await finder.find_each(root, send.send_nowait, limit=8)
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(each)
                assert await recv.receive() == a.peer_id
                await dht.asked.wait()
                assert not done.is_set()
                dht.release(far, a)  # `a` again, from the DHT: handed over only once
                assert await recv.receive() == far.peer_id
                await done.wait()
            with pytest.raises(trio.WouldBlock):
                recv.receive_nowait()
            assert far.peer_id in me.host.connected_peers()

            # find: the complete list, connected holders first, after the DHT has answered.
            finder, dht = held_dht(me)
            result: list[str] = []

            async def complete() -> None:
                result.extend(await finder.find(root, limit=8))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(complete)
                await dht.asked.wait()
                dht.release(far)
            assert sorted(result) == sorted([a.peer_id, far.peer_id])

            # A limit of 1: the first holder ends find_each, without waiting for the DHT.
            finder, dht = held_dht(me)
            got: list[str] = []
            await finder.find_each(root, got.append, limit=1)
            assert len(got) == 1 and got[0] in (a.peer_id, far.peer_id)


@pytest.mark.parametrize(("lie", "offence"), [("withhold", None), ("corrupt", "invalid_message")])
async def test_dht_providers_found_later_join_the_fetch(tmp_path: Any, lie: str, offence: str | None) -> None:
    """The only connected provider withholds or lies; the honest one comes from the DHT, later."""
    data = payload(200_000, seed=23)
    root, blocks = build(data, **SMALL)
    liar_server = WatchedLiar(blocks, lie)
    with trio.fail_after(WAIT):
        async with (
            open_liar(tmp_path, "liar", liar_server) as liar,
            open_peer(tmp_path, "honest") as honest,
            open_peer(tmp_path, "me") as me,
        ):
            put(honest.store, root, blocks)
            await connect(me, liar)
            _, dht = held_dht(me)
            assert me.exchange is not None
            exchange = me.exchange
            outcome: list[Any] = []

            async def fetch() -> None:
                outcome.append(await exchange.fetch(root))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(fetch)
                # The fetch has started on the liar before the DHT answers ...
                await liar_server.wanted.wait()
                await dht.asked.wait()
                # ... and, the liar exhausted, waits for the lookup instead of giving up.
                dht.release(honest)
            assert outcome and outcome[0].complete
            assert read_all(me.store, root) == data
            assert dht.lookups == 1
            assert me.penalties == ([] if offence is None else [(liar.peer_id, offence)])
            assert honest.exchange is not None and honest.exchange.served_blocks == len(blocks)


async def test_a_lookup_that_never_ends_is_bounded(tmp_path: Any) -> None:
    """A DHT that never answers: the fetch fails (no provider has the blocks) once dht_timeout is up."""
    root, blocks = build(payload(50_000, seed=24), **SMALL)
    liar_server = WatchedLiar(blocks, "withhold")
    with trio.fail_after(WAIT):
        async with open_liar(tmp_path, "liar", liar_server) as liar, open_peer(tmp_path, "me") as me:
            await connect(me, liar)
            _, dht = held_dht(me, timeout=0.2)
            assert me.exchange is not None
            with pytest.raises(HubError) as err:
                await me.exchange.fetch(root)
            assert err.value.code == "unavailable.not_found_on_network"
            assert err.value.message.startswith(f"cannot fetch 1 blocks of {root}: no provider has them")
            assert liar_server.asked == [root]
            assert dht.lookups == 2  # a second round looked again, found nobody new, and ended
            assert not me.penalties


class GatedStream:
    """A stream whose reads wait for `gate`: the server behind it hears nothing before then."""

    def __init__(self, stream: Any, gate: trio.Event) -> None:
        self.stream = stream
        self.gate = gate

    async def read(self, n: int | None = None) -> bytes:
        await self.gate.wait()
        return bytes(await self.stream.read(n))

    async def write(self, data: bytes) -> None:
        await self.stream.write(data)


async def test_a_peer_that_never_answers_have_does_not_hold_up_the_fetch(tmp_path: Any) -> None:
    """One connected peer never answers `have`; the holder is heard only once that request is pending.
    The fetch completes, and ending its lookup resets the unanswered request instead of waiting it out."""
    data = payload(100_000, seed=25)
    root, blocks = build(data, **SMALL)
    heard = trio.Event()
    holder = LyingServer(blocks, "none")

    async def mute(stream: Any) -> None:
        reader = FrameReader(stream, max_size=MAX_BLOCK_REQUEST_FRAME)
        try:
            while await reader.read() is not None:
                heard.set()
        except Exception:
            pass  # reset by the asker

    async def gated_holder(stream: Any) -> None:
        await holder.handle(GatedStream(stream, heard))

    with trio.fail_after(WAIT):
        async with (
            open_peer(tmp_path, "mute", exchange=False) as quiet,
            open_peer(tmp_path, "holder", exchange=False) as a,
            open_peer(tmp_path, "me") as me,
        ):
            quiet.host.libp2p_host.set_stream_handler(BLOCKS_PROTOCOL_ID, mute)
            a.host.libp2p_host.set_stream_handler(BLOCKS_PROTOCOL_ID, gated_holder)
            await connect(me, quiet, a)
            assert me.exchange is not None
            # Longer than the test may take (a `have` request is shielded: only a reset ends it sooner).
            me.exchange.finder.ask_timeout = 2 * WAIT
            assert (await me.exchange.fetch(root)).complete
            assert read_all(me.store, root) == data
            assert heard.is_set() and holder.served
            assert not me.penalties


class ScriptedFinder:
    """Hands over `peers` one by one, then never ends (like a DHT lookup that goes on and on)."""

    def __init__(self, peers: list[str]) -> None:
        self.peers = peers
        self.limits: list[int] = []

    async def find(self, root: Cid, *, limit: int) -> list[str]:
        raise AssertionError("the fetcher must use find_each")

    async def find_each(self, root: Cid, found: Callable[[str], None], *, limit: int) -> None:
        self.limits.append(limit)
        for peer_id in self.peers[:limit]:
            found(peer_id)
        await trio.sleep_forever()


async def test_rounds_past_withholders_with_providers_handed_over_one_by_one(tmp_path: Any) -> None:
    """max_providers=2: the two withholders fill the first round, whose lookup is then stopped; the
    next round skips them and finds the honest provider, and the fetch ends though its lookup does not."""
    data = payload(60_000, seed=26)
    root, blocks = build(data, **SMALL)
    with trio.fail_after(WAIT):
        async with (
            open_liar(tmp_path, "w1", LyingServer(blocks, "withhold")) as w1,
            open_liar(tmp_path, "w2", LyingServer(blocks, "withhold")) as w2,
            open_peer(tmp_path, "honest") as honest,
            open_peer(tmp_path, "me") as me,
        ):
            put(honest.store, root, blocks)
            await connect(me, w1, w2, honest)
            finder = ScriptedFinder([w1.peer_id, w2.peer_id, honest.peer_id])
            assert isinstance(finder, IncrementalProviderSource)
            fetcher = me.fetcher(finder, max_providers=2)
            assert (await fetcher.fetch(root)).complete
            assert read_all(me.store, root) == data
            assert finder.limits == [2, 4]
            assert not me.penalties
