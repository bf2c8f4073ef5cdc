"""Named devnet scenarios: small end-to-end checks of what the network promises, with figures.

    result = await run_scenario("honest-minority", Path("/tmp/x"), size="small")
    print(result.passed, result.figures)

Each scenario builds its own devnet under `base_dir`, runs, and returns a `ScenarioResult`; a failure
(an unmet condition, a timeout, an exception) is a result with `passed=False` and the reason in `details`,
never an exception. Every wait is bounded.

- `honest-minority`: a client node C with 5 peers, of which 1 is honest and 4 adversarial (forger,
  withholder, flooder, liar). Everything valid submitted to the honest peer reaches C, a blob put on it is
  fetched by C and verifies, and nothing forged is stored.
- `partition-heal`: 4 nodes split 2|2, both sides write (with conflicts), heal, all converge.
- `late-join`: a 2-node network holds N messages; a third node joins and syncs them all.
- `churn`: 3 node processes under load, SIGKILLed and restarted; every acknowledged message survives.
- `eclipse`: sybils (several per connection slot) besiege a node with 8 slots; it keeps its chosen peers,
  gets them back after losing them while every inbound slot is a sybil's, and receives every message.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import grpc
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devnet._accounts import devnet_accounts, write_devnet_accounts
from protocols.messages import farcaster_now, public_key_bytes, sign_message_data
from protocols.proto import message_pb2 as pb
from protocols.proto import request_response_pb2 as rr

SIZES: Final = ("small", "medium")
#: Whole-scenario bounds on top of each wait's own, so nothing can hang (small runs take seconds).
OVERALL_TIMEOUT: Final = {"small": 180.0, "medium": 900.0}
DEVNET: Final = pb.FARCASTER_NETWORK_DEVNET


@dataclass
class ScenarioResult:
    """The outcome of one scenario: PASS/FAIL, its figures and what went wrong (or notable)."""

    name: str
    passed: bool
    figures: dict[str, float | int | str] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object."""
        return {"name": self.name, "passed": self.passed, "figures": self.figures, "details": self.details}


def _check(result: ScenarioResult, condition: bool, what: str) -> None:
    """Record `what` as a failure unless `condition` holds (the scenario goes on, to report its figures)."""
    if not condition:
        result.details.append(what)


def _pick(size: str, small: int, medium: int) -> int:
    return small if size == "small" else medium


# ------------------------------------------------------------------------------------------ messages


def _cast(key: Ed25519PrivateKey, fid: int, text: str, *, timestamp: int | None = None) -> pb.Message:
    d = pb.MessageData(type=pb.MESSAGE_TYPE_CAST_ADD, fid=fid, network=DEVNET)
    d.timestamp = farcaster_now() if timestamp is None else timestamp
    d.cast_add_body.text = text
    return sign_message_data(d, key)


def _cast_remove(key: Ed25519PrivateKey, fid: int, target: bytes, *, timestamp: int) -> pb.Message:
    d = pb.MessageData(type=pb.MESSAGE_TYPE_CAST_REMOVE, fid=fid, network=DEVNET, timestamp=timestamp)
    d.cast_remove_body.target_hash = target
    return sign_message_data(d, key)


def _link(key: Ed25519PrivateKey, fid: int, target: int, *, timestamp: int, remove: bool) -> pb.Message:
    kind = pb.MESSAGE_TYPE_LINK_REMOVE if remove else pb.MESSAGE_TYPE_LINK_ADD
    d = pb.MessageData(type=kind, fid=fid, network=DEVNET, timestamp=timestamp)
    d.link_body.type = "follow"
    d.link_body.target_fid = target
    return sign_message_data(d, key)


def _holds(node: Any, fid: int, hash_: bytes) -> bool:
    from protocols import crdt

    with node.engine.read() as kv:
        return bool(crdt.has_message(kv, fid, hash_))


def _count(node: Any) -> int:
    from protocols import crdt

    with node.engine.read() as kv:
        return int(crdt.message_count(kv))


async def _submit_all(node: Any, messages: list[pb.Message], *, origin: str | None = None) -> int:
    """Submit in batches; returns how many were accepted (duplicates count as accepted)."""
    ok = 0
    for i in range(0, len(messages), 500):
        batch = messages[i : i + 500]
        results = (
            await node.engine.submit_many(batch)
            if origin is None
            else await node.engine.submit_many(batch, origin=origin)
        )
        for r in results:
            if isinstance(r, pb.Message) or getattr(r, "code", "") == "bad_request.duplicate":
                ok += 1
    return ok


# ------------------------------------------------------------------------------------------ honest-minority


async def honest_minority(base_dir: Path, *, size: str = "small") -> ScenarioResult:
    """1 honest peer of 5 (plus forger, withholder, flooder, liar) still gets everything to client C."""
    from devnet._adversary import open_flooder, open_forger, open_liar, open_withholder
    from devnet._local import open_devnet
    from protocols.blobs import Block, DagBuilder

    result = ScenarioResult("honest-minority", False)
    n_messages = _pick(size, 50, 500)
    blob_bytes = _pick(size, 200_000, 2_000_000)
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        net = await stack.enter_async_context(open_devnet(2, base_dir / "honest", accounts=2))
        forger = await stack.enter_async_context(open_forger(base_dir / "forger"))
        withholder = await stack.enter_async_context(open_withholder(base_dir / "withholder"))
        flooder = await stack.enter_async_context(open_flooder(base_dir / "flooder"))
        liar = await stack.enter_async_context(open_liar(base_dir / "liar"))
        client, honest = net[0], net[1]
        adversaries: list[Any] = [forger, withholder, flooder, liar]
        [alice, bob] = net.accounts
        with trio.fail_after(30):
            for adversary in adversaries:
                await adversary.host.connect(client.host.info.listen_addrs[0])
            for gossiper in (forger, flooder):
                await gossiper.gossip.wait_for_subscriber(client.peer_id, gossiper.gossip.messages_topic)
            await net.wait_until(lambda: honest.peer_id in client.host.connected_peers())

        # The attack: forged signatures, a corrupted copy of a genuine message, garbage, a flood.
        victim = public_key_bytes(alice.key)
        forged = forger.forged_casts(alice.fid, victim, 20, network=DEVNET)
        await forger.publish_bundle(forged)
        genuine = _cast(alice.key, alice.fid, "genuine, corrupted on the way")
        await forger.publish_bundle([forger.corrupted(genuine)])
        await forger.publish_payload(b"\xff\x00 not a bundle")
        forged += await flooder.flood(
            alice.fid, victim, bundles=_pick(size, 20, 100), per_bundle=5, network=DEVNET
        )

        # Honest traffic, all of it through the one honest peer.
        ts = farcaster_now()
        valid = [
            _cast(acct.key, acct.fid, f"honest {i}", timestamp=ts - i)
            for i in range(n_messages // 2)
            for acct in (alice, bob)
        ]
        accepted = await _submit_all(honest, valid)

        # A blob on the honest peer only; the liar claims to hold every block and serves garbage.
        data = random.Random(7).randbytes(blob_bytes)
        builder = DagBuilder(chunk_size=16_384, max_links=16)
        blocks = builder.feed(data)
        root, rest = builder.finish()
        store = honest.blobs.store
        session = store.open_blob(None, pin=True)
        store.put_blocks([Block(b.cid, b.data) for b in blocks + rest], session=session)
        store.commit_blob(session, root)

        def delivered() -> int:
            return sum(_holds(client, m.data.fid, bytes(m.hash)) for m in valid)

        blob_ok = False
        try:
            with trio.fail_after(30):
                await net.wait_until(lambda: delivered() == len(valid))
                info = await client.blobs.fetch(root)
                blob_ok = info.complete and b"".join(client.blobs.store.read(root)) == data
        except trio.TooSlowError:
            result.details.append("timed out waiting for honest messages or the blob")
        forged_hashes = [bytes(pb.Message.FromString(raw).hash) for raw in forged] + [bytes(genuine.hash)]
        forged_accepted = sum(_holds(client, alice.fid, h) for h in forged_hashes)
        bans = sum(client.network.is_banned(a.peer_id) for a in adversaries)
        now = time.time()  # NetworkService's default clock
        scores = {
            f"score_{role}": round(client.network.scores.score(a.peer_id, now), 1)
            for role, a in zip(("forger", "withholder", "flooder", "liar"), adversaries, strict=True)
        }
        got = delivered()
        result.figures.update(
            messages_delivered=got,
            messages_expected=len(valid),
            forged_sent=len(forged_hashes),
            forged_accepted=forged_accepted,
            blob_bytes=blob_bytes,
            blob_verified="yes" if blob_ok else "no",
            bans=bans,
            honest_banned="yes" if client.network.is_banned(honest.peer_id) else "no",
            **scores,
            seconds=round(time.monotonic() - started, 3),
        )
        problems = [] if accepted == len(valid) else [f"the honest peer took {accepted} of {len(valid)}"]
        if got != len(valid):
            problems.append(f"only {got} of {len(valid)} valid messages reached the client")
        if forged_accepted:
            problems.append(f"{forged_accepted} forged or corrupted messages were stored")
        if not blob_ok:
            problems.append("the blob was not fetched and verified")
        if client.network.is_banned(honest.peer_id):
            problems.append("the honest peer was banned")
        result.details += problems
        result.passed = not result.details
    return result


# ------------------------------------------------------------------------------------------ partition-heal


async def partition_heal(base_dir: Path, *, size: str = "small") -> ScenarioResult:
    """4 nodes split 2|2 write on both sides (conflicts included), then heal and converge."""
    from devnet._local import open_devnet

    result = ScenarioResult("partition-heal", False)
    per_side = _pick(size, 50, 1000)
    async with open_devnet(4, base_dir, accounts=2) as net:
        [alice, bob] = net.accounts
        side_a, side_b = net.nodes[:2], net.nodes[2:]
        shared = _cast(alice.key, alice.fid, "before the split")
        await net[0].engine.submit(shared)
        with trio.fail_after(30):
            await net.wait_converged()
        net.partition(side_a, side_b)
        ts = farcaster_now()
        a_only = _cast(alice.key, alice.fid, "side A", timestamp=ts)
        conflicts = [
            (side_a[0], a_only),
            (side_b[0], _cast_remove(alice.key, alice.fid, bytes(a_only.hash), timestamp=ts + 1)),
            (side_a[1], _link(alice.key, alice.fid, bob.fid, timestamp=ts, remove=False)),
            (side_b[1], _link(alice.key, alice.fid, bob.fid, timestamp=ts + 2, remove=True)),
        ]
        for node, message in conflicts:
            await node.engine.submit(message)
        writes_a = [_cast(alice.key, alice.fid, f"A {i}", timestamp=ts - 1 - i) for i in range(per_side)]
        writes_b = [_cast(bob.key, bob.fid, f"B {i}", timestamp=ts - 1 - i) for i in range(per_side)]
        accepted = await _submit_all(side_a[0], writes_a) + await _submit_all(side_b[1], writes_b)
        _check(result, accepted == 2 * per_side, f"only {accepted} of {2 * per_side} writes were accepted")
        with trio.fail_after(30):
            await net.wait_converged(nodes=side_a)
            await net.wait_converged(nodes=side_b)
        _check(
            result, net.roots(side_a)[0] != net.roots(side_b)[0], "the two sides did not diverge while split"
        )
        started = time.monotonic()
        await net.heal()
        with trio.fail_after(60):
            await net.wait_converged()
        converge = time.monotonic() - started
        removed = not any(_holds(n, alice.fid, bytes(a_only.hash)) for n in net.nodes)
        result.figures.update(
            messages_written=per_side * 2 + len(conflicts) + 1,
            messages_stored=_count(net[0]),
            seconds_to_converge=round(converge, 3),
        )
        _check(result, removed, "the cast removed on side B survived the heal")
        everything = all(_holds(n, m.data.fid, bytes(m.hash)) for n in net.nodes for m in writes_a + writes_b)
        _check(result, everything, "a message written during the partition is missing after the heal")
        result.passed = not result.details
    return result


# ------------------------------------------------------------------------------------------ late-join


async def late_join(base_dir: Path, *, size: str = "small") -> ScenarioResult:
    """N messages in a 2-node network; a third node joins later and syncs all of them."""
    from devnet._local import LocalDevnet, open_devnet

    result = ScenarioResult("late-join", False)
    total = _pick(size, 2000, 10_000)
    genesis = write_devnet_accounts(base_dir, 4)
    ts = farcaster_now() - 3600
    per_fid = total // len(genesis.accounts)
    messages = [
        _cast(acct.key, acct.fid, f"history {i}", timestamp=ts + i // 10)
        for acct in genesis.accounts
        for i in range(per_fid)
    ]
    async with open_devnet(2, base_dir / "first", genesis=genesis.path) as net:
        for node in net.nodes:
            # Stored as history (origin "sync" is not gossiped), so only diff sync can bring it over.
            accepted = await _submit_all(node, messages, origin="sync")
            _check(
                result,
                accepted == len(messages),
                f"{node.config.nickname} took {accepted} of {len(messages)}",
            )
        with trio.fail_after(60):
            await net.wait_converged()
        async with open_devnet(1, base_dir / "late", genesis=genesis.path) as late_net:
            late = late_net[0]
            started = time.monotonic()
            await late.host.connect(net[0].host.info.listen_addrs[0])
            both = LocalDevnet([net[0], late])
            with trio.fail_after(_pick(size, 60, 300)):
                await both.wait_converged()
            elapsed = time.monotonic() - started
            got = _count(late)
            result.figures.update(
                messages=len(messages),
                synced=got,
                seconds_to_sync=round(elapsed, 3),
                messages_per_second=round(got / elapsed, 1) if elapsed > 0 else 0,
            )
            _check(result, got == len(messages), f"the late node holds {got} of {len(messages)} messages")
            result.passed = not result.details
    return result


# ------------------------------------------------------------------------------------------ churn


def _casts_of(stub: Any, fid: int) -> set[bytes]:
    hashes: set[bytes] = set()
    token: bytes | None = None
    while True:
        request = rr.FidRequest(fid=fid, page_size=1000)
        if token:
            request.page_token = token
        response = stub.GetCastsByFid(request, timeout=10)
        hashes.update(bytes(m.hash) for m in response.messages)
        token = bytes(response.next_page_token) if response.HasField("next_page_token") else None
        if not token or not response.messages:
            return hashes


async def churn(base_dir: Path, *, size: str = "small") -> ScenarioResult:
    """3 node processes under load; nodes are SIGKILLed and restarted; no acknowledged message is lost."""
    from devnet._processes import open_process_devnet

    result = ScenarioResult("churn", False)
    kills = _pick(size, 2, 6)
    accounts = devnet_accounts(2)
    acked: dict[bytes, int] = {}
    attempts = 0
    rng = random.Random(11)
    async with open_process_devnet(3, base_dir, accounts=2, metrics=False) as net:
        with trio.fail_after(60):
            await net.wait_for_peers(1)
        down: set[int] = set()
        stop = trio.Event()
        changed = [trio.Event()]  # replaced after each acknowledgement: the "acked grew" signal

        async def wait_acked(n: int) -> None:
            while len(acked) < n:
                await changed[0].wait()

        async def load() -> None:
            nonlocal attempts
            while not stop.is_set():
                i = rng.choice([j for j in range(len(net)) if j not in down])
                acct = rng.choice(accounts)
                message = _cast(acct.key, acct.fid, f"churn {attempts}")
                attempts += 1
                call = functools.partial(net.stub(i).SubmitMessage, message, timeout=5)
                try:
                    await trio.to_thread.run_sync(call, abandon_on_cancel=True)
                except grpc.RpcError:
                    continue  # not acknowledged (the node died, or was dying): nothing promised
                acked[bytes(message.hash)] = acct.fid
                changed[0].set()
                changed[0] = trio.Event()

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load)
            with trio.fail_after(_pick(size, 60, 300)):
                for k in range(kills):
                    # Node 0 stays up: the others' bootstrap address; nodes 1 and 2 take turns crashing.
                    victim = 1 + k % (len(net) - 1)
                    await wait_acked(len(acked) + 20)
                    down.add(victim)
                    await net.kill(victim)
                    await net.restart(victim)
                    down.discard(victim)
                await wait_acked(len(acked) + 20)
            stop.set()
        load_seconds = time.monotonic() - started
        with trio.fail_after(60):
            await net.wait_for_peers(1)
            await net.wait_converged()
        lost = 0
        for i in range(len(net)):
            stub = net.stub(i)
            held: set[bytes] = set()
            for acct in accounts:
                held |= await trio.to_thread.run_sync(_casts_of, stub, acct.fid, abandon_on_cancel=True)
            missing = [h for h in acked if h not in held]
            if missing:
                result.details.append(f"{net[i].name} lacks {len(missing)} acknowledged messages")
            lost += len(missing)
        result.figures.update(
            submitted=attempts,
            acknowledged=len(acked),
            kills=kills,
            lost=lost,
            load_seconds=round(load_seconds, 3),
        )
        result.passed = lost == 0 and len(acked) > 0
    return result


# ------------------------------------------------------------------------------------------ eclipse


async def eclipse(base_dir: Path, *, size: str = "small") -> ScenarioResult:
    """A node with 8 slots under a sybil siege keeps (or regains) an honest peer and gets every message."""
    from devnet._adversary import open_eclipser
    from devnet._local import LocalDevnet, open_devnet

    result = ScenarioResult("eclipse", False)
    max_peers = 8
    sybils = _pick(size, 3, 8) * max_peers
    n_messages = _pick(size, 40, 400)
    async with AsyncExitStack() as stack:
        honest = await stack.enter_async_context(open_devnet(2, base_dir / "honest", accounts=1))
        [alice] = honest.accounts
        addrs = [node.host.info.listen_addrs[0] for node in honest.nodes]
        solo = await stack.enter_async_context(
            open_devnet(1, base_dir / "victim", genesis=honest.genesis, bootstrap=addrs, max_peers=max_peers)
        )
        victim = solo[0]
        net = LocalDevnet([*honest.nodes, victim])
        honest_ids = {node.peer_id for node in honest.nodes}

        def honest_peers() -> int:
            return len(honest_ids & set(victim.host.connected_peers()))

        with trio.fail_after(30):
            await net.wait_until(lambda: honest_peers() == len(honest_ids))
        eclipser = await stack.enter_async_context(open_eclipser(base_dir / "sybils", sybils=sybils))
        nursery = await stack.enter_async_context(trio.open_nursery())
        nursery.start_soon(eclipser.besiege, victim.host.info.listen_addrs[0])
        started = time.monotonic()
        with trio.fail_after(60):
            await net.wait_until(lambda: victim.network.slots.evictions >= 2 * max_peers)
        kept_under_siege = honest_peers()
        _check(result, kept_under_siege == len(honest_ids), "a sybil displaced a peer the node had chosen")

        # Cut the victim off its honest peers while every inbound slot it has is a sybil's (timed from the
        # first cut: the victim starts redialling as soon as a bootstrap peer drops).
        cut_at = time.monotonic()
        for node in honest.nodes:
            await victim.host.disconnect(node.peer_id)
        reconnect = -1.0
        try:
            with trio.fail_after(60):
                await net.wait_until(lambda: honest_peers() >= 1)
            reconnect = time.monotonic() - cut_at
        except trio.TooSlowError:
            result.details.append("the victim did not get back to any honest peer")

        ts = farcaster_now()
        messages = [
            _cast(alice.key, alice.fid, f"under siege {i}", timestamp=ts - i) for i in range(n_messages)
        ]
        accepted = await _submit_all(honest[0], messages)
        _check(result, accepted == n_messages, f"the honest node took {accepted} of {n_messages}")

        def delivered() -> int:
            return sum(_holds(victim, m.data.fid, bytes(m.hash)) for m in messages)

        try:
            with trio.fail_after(60):
                await net.wait_until(lambda: delivered() == n_messages)
        except trio.TooSlowError:
            result.details.append(f"only {delivered()} of {n_messages} messages reached the victim")
        nursery.cancel_scope.cancel()
        result.figures.update(
            max_peers=max_peers,
            sybils=sybils,
            sybil_attempts=eclipser.attempts,
            sybil_connections=eclipser.accepted,
            evictions=victim.network.slots.evictions,
            honest_kept_under_siege=f"{kept_under_siege}/{len(honest_ids)}",
            seconds_to_reconnect=round(reconnect, 3),
            messages_delivered=delivered(),
            messages_expected=n_messages,
            seconds=round(time.monotonic() - started, 3),
        )
        result.passed = not result.details
    return result


# ------------------------------------------------------------------------------------------ registry

Scenario = Callable[..., Awaitable[ScenarioResult]]

SCENARIOS: Final[dict[str, tuple[Scenario, str]]] = {
    "honest-minority": (honest_minority, "1 honest peer of 5: every valid message and blob reaches C"),
    "partition-heal": (partition_heal, "4 nodes split 2|2 write conflicting data, heal, converge"),
    "late-join": (late_join, "a third node joins a 2-node network holding N messages and syncs"),
    "churn": (churn, "3 node processes SIGKILLed and restarted under load: no acked message lost"),
    "eclipse": (eclipse, "sybils fill a node's 8 slots: it keeps or regains an honest peer, gets everything"),
}


def _describe(error: BaseException) -> list[str]:
    """One line per underlying error (nurseries wrap errors in groups)."""
    if isinstance(error, BaseExceptionGroup):
        return [line for inner in error.exceptions for line in _describe(inner)]
    if isinstance(error, trio.TooSlowError):
        return ["timed out (a bounded wait expired)"]
    return [f"{type(error).__name__}: {error}"]


async def run_scenario(name: str, base_dir: Path, *, size: str = "small") -> ScenarioResult:
    """Run scenario `name` in `base_dir`; any failure is a FAIL result with the reason, never a raise.

    ValueError for an unknown name or size (a usage error, not a scenario failure).
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    run = SCENARIOS[name][0]
    started = time.monotonic()
    try:
        with trio.fail_after(OVERALL_TIMEOUT[size]):
            result = await run(base_dir, size=size)
    except Exception as e:  # a scenario that breaks reports FAIL with the cause, not a traceback
        result = ScenarioResult(name, False, details=_describe(e))
    result.figures.setdefault("total_seconds", round(time.monotonic() - started, 3))
    return result
