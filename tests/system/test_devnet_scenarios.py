"""`stateless devnet scenario NAME` at small size, as CI runs it: every named scenario must PASS.

Each run is a real CLI process (the in-process scenarios run their nodes inside it; `churn` starts node
processes of its own and SIGKILLs them). The JSON result carries the figures that make PASS mean something.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system.conftest import REPO, node_env, stateless_command

pytestmark = pytest.mark.system

#: Each scenario takes a few seconds at small size; this bounds a hung one.
TIMEOUT = 120.0


def scenario(name: str, base_dir: Path) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [
            *stateless_command(),
            "devnet",
            "scenario",
            name,
            "--size",
            "small",
            "--dir",
            str(base_dir),
            "--json",
        ],
        cwd=REPO,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_list_names_every_scenario() -> None:
    proc = subprocess.run(
        [*stateless_command(), "devnet", "scenario", "--list"],
        cwd=REPO,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("honest-minority", "partition-heal", "late-join", "churn", "eclipse"):
        assert name in proc.stdout


def test_honest_minority(tmp_path: Path) -> None:
    code, result = scenario("honest-minority", tmp_path)
    assert code == 0 and result["passed"], result
    figures = result["figures"]
    assert figures["messages_delivered"] == figures["messages_expected"] > 0
    assert figures["forged_accepted"] == 0 and figures["forged_sent"] > 0
    assert figures["blob_verified"] == "yes" and figures["honest_banned"] == "no"
    assert figures["bans"] >= 2  # the forger and the flooder, at least


def test_partition_heal(tmp_path: Path) -> None:
    code, result = scenario("partition-heal", tmp_path)
    assert code == 0 and result["passed"], result
    assert result["figures"]["seconds_to_converge"] >= 0


def test_late_join(tmp_path: Path) -> None:
    code, result = scenario("late-join", tmp_path)
    assert code == 0 and result["passed"], result
    assert result["figures"]["synced"] == result["figures"]["messages"] == 2000


def test_churn(tmp_path: Path) -> None:
    code, result = scenario("churn", tmp_path)
    assert code == 0 and result["passed"], result
    figures = result["figures"]
    assert figures["lost"] == 0 and figures["acknowledged"] > 0 and figures["kills"] >= 2


def test_eclipse(tmp_path: Path) -> None:
    code, result = scenario("eclipse", tmp_path)
    assert code == 0 and result["passed"], result
    figures = result["figures"]
    assert figures["honest_kept_under_siege"] == "2/2" and figures["evictions"] > 0
    assert figures["messages_delivered"] == figures["messages_expected"] > 0
