"""The eclipse defence's eviction rules (protocols/peers/_slots.py)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.peers import Slot, choose_evictions, network_group, outbound_reserve


def _inbound(n: int, *, prefix: str, start: float, group: str = "loopback", **kw: object) -> list[Slot]:
    return [Slot(f"{prefix}{i}", False, start + i, group, **kw) for i in range(n)]  # type: ignore[arg-type]


def test_under_the_limits_nobody_is_evicted() -> None:
    slots = [Slot("out", True, 0.0), *_inbound(5, prefix="in", start=1.0)]
    assert choose_evictions(slots, max_peers=8, reserve=2) == []


def test_inbound_peers_never_take_the_outbound_reserve() -> None:
    # 8 slots, 2 reserved: the 7th inbound connection is one too many although the node is not full.
    slots = _inbound(7, prefix="in", start=0.0)
    assert len(choose_evictions(slots, max_peers=8, reserve=2)) == 1


def test_outbound_and_protected_peers_are_never_evicted() -> None:
    slots = [
        *[Slot(f"out{i}", True, float(i)) for i in range(6)],
        Slot("boot", False, 100.0, protected=True),
        *_inbound(6, prefix="in", start=200.0),
    ]
    # 13 connections for 8 slots: 5 go, all of them inbound and unprotected.
    evicted = choose_evictions(slots, max_peers=8, reserve=2)
    assert len(evicted) == 5
    assert all(pid.startswith("in") for pid in evicted)


def test_a_fresh_sybil_evicts_itself_not_an_established_honest_peer() -> None:
    honest = [Slot("honest-old", False, 0.0), Slot("honest-useful", False, 50.0, last_useful=90.0)]
    sybils = _inbound(4, prefix="sybil", start=60.0)
    newcomer = Slot("sybil-new", False, 99.0)
    evicted = choose_evictions([*honest, *sybils, newcomer], max_peers=8, reserve=2)
    assert evicted == ["sybil-new"]


def test_sybils_cannot_evict_honest_peers_however_many_arrive() -> None:
    """A long flood: sybils keep arriving one at a time; the honest peers are still connected after it."""
    rng = random.Random(7)
    now = 0.0
    slots = [Slot("honest-a", False, now), Slot("honest-b", False, now + 1, last_useful=now + 1)]
    for i in range(500):
        now += rng.uniform(0.01, 1.0)
        slots.append(Slot(f"sybil{i}", False, now, score=rng.choice([0.0, -5.0])))
        for pid in choose_evictions(slots, max_peers=8, reserve=2):
            slots = [s for s in slots if s.peer_id != pid]
        assert {"honest-a", "honest-b"} <= {s.peer_id for s in slots}
        assert len(slots) <= 6


def test_network_group_diversity_survives_a_single_group_flood() -> None:
    diverse = [Slot("far", False, 500.0, group="10.1.0.0/16")]
    flood = _inbound(7, prefix="sybil", start=0.0, group="203.0.0.0/16")
    evicted = choose_evictions([*flood, *diverse], max_peers=8, reserve=2)
    assert "far" not in evicted
    assert len(evicted) == 2


def test_lowest_score_goes_first_within_the_victim_group() -> None:
    slots = [*_inbound(6, prefix="ok", start=0.0), Slot("bad", False, 4.5, "loopback", score=-30.0)]
    # Everyone is of one group and none is useful: the older half is kept, "bad" is not among it.
    assert choose_evictions(slots, max_peers=8, reserve=2) == ["bad"]


def test_when_every_candidate_is_protected_by_the_rules_the_newest_goes() -> None:
    slots = [Slot(f"g{i}", False, float(i), group=f"10.{i}.0.0/16") for i in range(4)]
    assert choose_evictions(slots, max_peers=4, reserve=1) == ["g3"]


@pytest.mark.parametrize(
    ("max_peers", "reserve"), [(0, 0), (4, 4), (4, -1), (1, 1)]
)  # fmt: skip
def test_bad_limits_are_refused(max_peers: int, reserve: int) -> None:
    with pytest.raises(ValueError):
        choose_evictions([], max_peers=max_peers, reserve=reserve)


@pytest.mark.parametrize(
    ("max_peers", "expected"), [(1, 0), (2, 1), (7, 1), (8, 2), (16, 4), (64, 8), (1000, 8)]
)  # fmt: skip
def test_outbound_reserve(max_peers: int, expected: int) -> None:
    assert outbound_reserve(max_peers) == expected


@pytest.mark.parametrize(
    ("ip", "group"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("203.0.113.9", "203.0.0.0/16"),
        ("::ffff:203.0.113.9", "203.0.0.0/16"),
        ("2001:db8:1:2::5", "2001:db8::/32"),
        ("not an address", "unknown"),
    ],
)
def test_network_group(ip: str, group: str) -> None:
    assert network_group(ip) == group


_slot = st.builds(
    Slot,
    peer_id=st.text(alphabet="abcdef", min_size=1, max_size=6),
    outbound=st.booleans(),
    connected_at=st.floats(0, 1000),
    group=st.sampled_from(["a", "b", "c"]),
    score=st.floats(-100, 0),
    last_useful=st.sampled_from([0.0, 10.0, 500.0]),
    protected=st.booleans(),
)


@given(
    slots=st.lists(_slot, max_size=40, unique_by=lambda s: s.peer_id),
    max_peers=st.integers(1, 20),
)
def test_evictions_meet_the_limits_and_touch_only_unprotected_inbound_peers(
    slots: list[Slot], max_peers: int
) -> None:
    reserve = outbound_reserve(max_peers)
    evicted = choose_evictions(slots, max_peers=max_peers, reserve=reserve)
    assert len(evicted) == len(set(evicted))
    by_id = {s.peer_id: s for s in slots}
    assert all(not by_id[p].outbound and not by_id[p].protected for p in evicted)
    left = [s for s in slots if s.peer_id not in set(evicted)]
    fixed = sum(1 for s in slots if s.outbound or s.protected)
    inbound_left = sum(1 for s in left if not s.outbound)
    protected_inbound = sum(1 for s in slots if not s.outbound and s.protected)
    assert len(left) <= max(max_peers, fixed)
    assert inbound_left <= max(max_peers - reserve, protected_inbound)
    # Nothing is evicted beyond need: putting back any one evicted peer would break a limit.
    for pid in evicted:
        back = [*left, by_id[pid]]
        assert len(back) > max_peers or sum(1 for s in back if not s.outbound) > max_peers - reserve
