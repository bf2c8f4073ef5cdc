"""The scenario runner: failures are FAIL results (never tracebacks), and one adversarial scenario runs here."""

from __future__ import annotations

from pathlib import Path

import pytest

from devnet import _scenarios
from devnet._scenarios import SCENARIOS, ScenarioResult, run_scenario


async def test_unknown_name_or_size_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        await run_scenario("no-such-thing", tmp_path)
    with pytest.raises(ValueError, match="size"):
        await run_scenario("late-join", tmp_path, size="huge")


async def test_a_scenario_that_breaks_is_a_fail_with_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(base_dir: Path, *, size: str = "small") -> ScenarioResult:
        raise RuntimeError("node exploded")

    monkeypatch.setitem(_scenarios.SCENARIOS, "late-join", (broken, "broken"))
    result = await run_scenario("late-join", tmp_path)
    assert not result.passed
    assert result.details == ["RuntimeError: node exploded"]
    assert "total_seconds" in result.figures


async def test_honest_minority_passes(tmp_path: Path) -> None:
    assert "honest-minority" in SCENARIOS
    result = await run_scenario("honest-minority", tmp_path)
    assert result.passed, result.details
    assert result.figures["forged_accepted"] == 0
    assert result.figures["messages_delivered"] == result.figures["messages_expected"]


async def test_eclipse_passes(tmp_path: Path) -> None:
    """Sybils several times the slots of a node neither displace nor lock out the peers it chose."""
    result = await run_scenario("eclipse", tmp_path)
    assert result.passed, result.details
    figures = result.figures
    assert figures["honest_kept_under_siege"] == "2/2"
    assert figures["evictions"] >= 2 * figures["max_peers"]  # the siege really filled the slots
    assert 0 <= figures["seconds_to_reconnect"] < 60
    assert figures["messages_delivered"] == figures["messages_expected"] > 0
