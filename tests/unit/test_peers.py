"""Peer scores, bans and rate limits (protocols.peers): pure, so every test drives the clock itself."""

from __future__ import annotations

import math

import pytest

from protocols.peers import (
    DEFAULT_BAN_SECONDS,
    DEFAULT_BAN_THRESHOLD,
    PENALTIES,
    PeerScores,
    TokenBucket,
)

A = "peer-a"
B = "peer-b"
C = "peer-c"


def test_penalties_add_up_per_offence_and_count() -> None:
    scores = PeerScores(half_life=0)  # no decay: exact sums
    assert scores.score(A, 0.0) == 0.0
    assert not scores.penalise(A, "invalid_message", 0.0)
    assert not scores.penalise(A, "invalid_message", 0.0, times=3)
    assert not scores.penalise(A, "malformed_frame", 0.0)
    assert scores.score(A, 0.0) == -(4 * PENALTIES["invalid_message"] + PENALTIES["malformed_frame"])
    [record] = scores.snapshot(0.0)
    assert record.peer_id == A
    assert record.offences == {"invalid_message": 4, "malformed_frame": 1}
    assert record.banned_until == 0.0


def test_zero_or_negative_times_cost_nothing_and_leave_no_record() -> None:
    scores = PeerScores()
    assert not scores.penalise(A, "invalid_message", 0.0, times=0)
    assert not scores.penalise(A, "invalid_message", 0.0, times=-3)
    assert scores.snapshot(0.0) == []
    assert scores.score(A, 0.0) == 0.0


def test_unknown_offence_is_rejected_and_charges_nothing() -> None:
    scores = PeerScores()
    with pytest.raises(ValueError, match="unknown offence"):
        scores.penalise(A, "looked_at_me_funny", 0.0)
    assert scores.score(A, 0.0) == 0.0
    assert scores.snapshot(0.0) == []


def test_threshold_must_be_negative() -> None:
    with pytest.raises(ValueError):
        PeerScores(ban_threshold=0.0)
    with pytest.raises(ValueError):
        PeerScores(ban_threshold=5.0)


def test_score_decays_with_half_life() -> None:
    scores = PeerScores(half_life=10.0)
    scores.penalise(A, "oversized_frame", 100.0)  # -50 at t=100
    assert scores.score(A, 100.0) == pytest.approx(-50.0)
    assert scores.score(A, 110.0) == pytest.approx(-25.0)
    assert scores.score(A, 120.0) == pytest.approx(-12.5)
    # Reading the score does not decay it twice, and going back in time does not undo decay.
    assert scores.score(A, 120.0) == pytest.approx(-12.5)
    assert scores.score(A, 115.0) == pytest.approx(-12.5)
    # A new penalty lands on the decayed score.
    scores.penalise(A, "invalid_message", 130.0)
    assert scores.score(A, 130.0) == pytest.approx(-6.25 - 10.0)
    assert scores.score(A, 140.0) == pytest.approx((-6.25 - 10.0) / 2)


def test_decay_matches_the_exponential_between_samples() -> None:
    scores = PeerScores(half_life=300.0)
    scores.penalise(A, "wrong_network", 0.0)
    for t in (1.0, 7.5, 150.0, 299.0, 900.0):
        assert scores.score(A, t) == pytest.approx(-100.0 * math.exp(-math.log(2) * t / 300.0))


def test_ban_at_threshold_exactly_once() -> None:
    scores = PeerScores(half_life=0)
    assert DEFAULT_BAN_THRESHOLD == -100.0
    assert not scores.penalise(A, "oversized_frame", 0.0)  # -50
    assert not scores.is_banned(A, 0.0)
    assert scores.penalise(A, "oversized_frame", 1.0)  # -100: exactly at the threshold bans
    assert scores.is_banned(A, 1.0)
    # Further offences while banned do not report a new ban (the caller would disconnect twice).
    assert not scores.penalise(A, "oversized_frame", 2.0)
    assert not scores.penalise(A, "invalid_message", 3.0, times=50)
    [record] = scores.snapshot(3.0)
    assert record.banned_until == 1.0 + DEFAULT_BAN_SECONDS
    assert record.score == -650.0


def test_one_call_with_many_offences_bans_once() -> None:
    scores = PeerScores(half_life=0)
    assert scores.penalise(A, "invalid_message", 0.0, times=25)
    assert not scores.penalise(A, "invalid_message", 0.0, times=25)


def test_just_above_threshold_is_not_banned() -> None:
    scores = PeerScores(half_life=0, ban_threshold=-30.0)
    assert not scores.penalise(A, "malformed_frame", 0.0)  # -25
    assert not scores.is_banned(A, 0.0)
    assert not scores.penalise(A, "rate_limited", 0.0, times=2)  # -29
    assert not scores.is_banned(A, 0.0)
    assert scores.penalise(A, "rate_limited", 0.0)  # -31
    assert scores.is_banned(A, 0.0)


def test_ban_expires_and_a_still_bad_peer_can_be_banned_again() -> None:
    scores = PeerScores(half_life=0, ban_seconds=60.0)
    assert scores.penalise(A, "wrong_network", 10.0)
    assert scores.is_banned(A, 10.0)
    assert scores.is_banned(A, 69.999)
    assert not scores.is_banned(A, 70.0)  # banned_until is exclusive
    assert scores.snapshot(70.0)[0].banned_until == 0.0  # an expired ban is not reported
    # Its score is still below the threshold: the next offence bans it again, once.
    assert scores.penalise(A, "rate_limited", 80.0)
    assert scores.is_banned(A, 80.0)
    assert scores.snapshot(80.0)[0].banned_until == 140.0
    assert not scores.penalise(A, "rate_limited", 81.0)


def test_decay_alone_does_not_lift_a_ban_early() -> None:
    scores = PeerScores(half_life=1.0, ban_seconds=600.0)
    assert scores.penalise(A, "wrong_network", 0.0)
    assert scores.score(A, 100.0) == pytest.approx(0.0, abs=1e-9)
    assert scores.is_banned(A, 100.0)
    assert not scores.is_banned(A, 600.0)


def test_outright_ban_extends_never_shortens() -> None:
    scores = PeerScores(ban_seconds=100.0)
    scores.ban(A, 0.0)
    assert scores.is_banned(A, 99.0) and not scores.is_banned(A, 100.0)
    scores.ban(A, 10.0, seconds=500.0)
    assert scores.is_banned(A, 509.0)
    scores.ban(A, 20.0, seconds=1.0)  # shorter: the longer ban stands
    assert scores.is_banned(A, 509.0) and not scores.is_banned(A, 510.0)
    assert scores.score(A, 20.0) == 0.0  # a ban is not a penalty


def test_snapshot_is_worst_first() -> None:
    scores = PeerScores(half_life=0)
    scores.penalise(B, "malformed_frame", 0.0)  # -25
    scores.penalise(A, "invalid_message", 0.0)  # -10
    scores.penalise(C, "oversized_frame", 0.0, times=2)  # -100, banned
    snap = scores.snapshot(1.0)
    assert [p.peer_id for p in snap] == [C, B, A]
    assert [p.score for p in snap] == [-100.0, -25.0, -10.0]
    assert snap[0].banned_until == DEFAULT_BAN_SECONDS
    assert snap[1].banned_until == snap[2].banned_until == 0.0
    # The snapshot is a copy: changing it does not change the record.
    snap[1].offences["malformed_frame"] = 99
    assert scores.snapshot(1.0)[1].offences == {"malformed_frame": 1}


def test_unknown_peers_are_not_recorded_by_queries() -> None:
    scores = PeerScores()
    assert scores.score(A, 0.0) == 0.0
    assert not scores.is_banned(A, 0.0)
    assert scores.snapshot(0.0) == []


def test_forget_idle_bounds_memory() -> None:
    scores = PeerScores(half_life=100.0, ban_seconds=1000.0)
    for i in range(1000):
        scores.penalise(f"noisy-{i}", "rate_limited", 0.0)
    scores.penalise(A, "wrong_network", 0.0)  # banned until t=1000
    scores.penalise(B, "wrong_network", 0.0, times=100)  # banned too, and far below zero for long
    assert scores.forget_idle(0.0) == 0  # nothing has decayed yet
    assert len(scores.snapshot(0.0)) == 1002
    # -2 halves below 0.5 after 2 half-lives; the heavy ones stay.
    assert scores.forget_idle(250.0) == 1000
    assert {p.peer_id for p in scores.snapshot(250.0)} == {A, B}
    # A's score has decayed to nothing, but its ban runs until t=1000: kept.
    assert abs(scores.score(A, 900.0)) < 0.5
    assert scores.forget_idle(900.0) == 0
    assert scores.forget_idle(1000.0) == 1
    assert [p.peer_id for p in scores.snapshot(1000.0)] == [B]
    assert scores.forget_idle(2000.0) == 1
    assert scores.snapshot(2000.0) == []
    # A forgotten peer starts afresh.
    assert scores.score(A, 2000.0) == 0.0
    assert not scores.is_banned(A, 2000.0)


def test_forget_idle_epsilon() -> None:
    scores = PeerScores(half_life=0)
    scores.penalise(A, "rate_limited", 0.0)  # -2
    assert scores.forget_idle(0.0, epsilon=2.0) == 0
    assert scores.forget_idle(0.0, epsilon=2.5) == 1


def test_token_bucket_starts_full_and_caps_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=5.0, now=0.0)
    assert bucket.take(5, 0.0)
    assert not bucket.take(1, 0.0)
    # A long idle time refills only up to the burst.
    assert bucket.take(5, 1000.0)
    assert not bucket.take(0.5, 1000.0)


def test_token_bucket_refills_at_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=10.0, now=0.0)
    assert bucket.take(10, 0.0)
    assert not bucket.take(1, 0.25)  # 0.5 tokens so far
    assert bucket.take(1, 0.5)  # 1 token
    assert not bucket.take(1, 0.5)
    assert bucket.take(3, 2.0)  # 3 more
    assert not bucket.take(0.01, 2.0)


def test_token_bucket_never_spends_partially() -> None:
    bucket = TokenBucket(rate=1.0, burst=10.0, now=0.0)
    assert bucket.take(7, 0.0)  # 3 left
    assert not bucket.take(4, 0.0)  # too many: nothing spent
    assert not bucket.take(100, 0.0)
    assert bucket.take(3, 0.0)  # the 3 are all still there
    assert not bucket.take(1, 0.0)


def test_token_bucket_more_than_burst_never_passes() -> None:
    bucket = TokenBucket(rate=1000.0, burst=10.0, now=0.0)
    assert not bucket.take(11, 0.0)
    assert not bucket.take(11, 1e6)
    assert bucket.take(10, 1e6)


def test_token_bucket_clock_going_back_does_not_refill() -> None:
    bucket = TokenBucket(rate=1.0, burst=5.0, now=100.0)
    assert bucket.take(5, 100.0)
    assert not bucket.take(1, 50.0)
    assert not bucket.take(1, 100.5)
    assert bucket.take(1, 101.0)


def test_token_bucket_rejects_bad_parameters() -> None:
    for rate, burst in ((0.0, 1.0), (1.0, 0.0), (-1.0, 5.0), (1.0, -5.0)):
        with pytest.raises(ValueError):
            TokenBucket(rate, burst, 0.0)


def test_token_bucket_negative_or_nan_take_cannot_mint_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=5.0, now=0.0)
    assert bucket.take(5, 0.0)
    for bad in (-100, -0.5, math.nan):
        with pytest.raises(ValueError):
            bucket.take(bad, 0.0)
    assert not bucket.take(1, 0.0)  # still empty
    assert bucket.take(0, 0.0)  # taking nothing always works
