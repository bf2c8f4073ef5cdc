"""Four hubs on four test hosts (Linux network namespaces on one bridge): partition, write, heal, converge.

Each `stateless node start` runs in its own namespace with its own address; nodes 1..3 bootstrap to node
0. Node 3's switch port is unplugged, both sides write (node 3 also removes a cast the other side keeps),
each side is checked to see only its own writes, the port is plugged back, and all four nodes must end
with one trie root and the same casts. The test talks to every node through `ip netns exec NS stateless
client ...`, since the namespaces are not routed from the one the test runs in.

Needs root (CAP_NET_ADMIN) and iproute2; elsewhere it skips with the reason. The waits poll separate
processes in other namespaces, where there is no event to wait on, so each is bounded by a deadline.

Unplugging a port breaks no TCP connection: the gossip written during the partition waits in the kernels'
send buffers and is retransmitted after healing, and contact info (every 10 s) showing a different trie
root starts a diff sync as the backstop. A connection that did break would be redialled only by the
periodic round (sync_interval, 30 s, no flag to shorten it), so the partition here is kept short.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devnet import write_devnet_accounts
from tests.system.conftest import REPO, NodeProcess, NodeProcesses, node_env, stateless_command
from tests.system.netns import NetnsHost, NetnsLab, unavailable_reason

pytestmark = pytest.mark.system

HOSTS = 4
CLI_TIMEOUT = 20.0
#: The whole scenario after start-up; the network part usually takes a few seconds.
SCENARIO_BUDGET = 60.0
POLL_INTERVAL = 0.2


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    net = NetnsLab(HOSTS)
    net.build()
    try:
        yield net
    finally:
        net.close()


def run_cli(host: NetnsHost, *args: str) -> str:
    """`stateless ARGS...` inside `host`'s namespace; its stdout (asserting success)."""
    proc = subprocess.run(
        [*host.exec_prefix(), *stateless_command(), *args],
        cwd=REPO,
        env=node_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"stateless {' '.join(args)} on {host.namespace} failed:\n{proc.stderr}"
    return proc.stdout


class Hub:
    """A node running on a lab host, and the client calls the test makes to it."""

    def __init__(self, host: NetnsHost, process: NodeProcess) -> None:
        self.host = host
        self.process = process
        self.rpc = ""

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(run_cli(self.host, "client", "info", "--json", "--rpc", self.rpc))
        return result

    def connected_peers(self) -> int:
        info = self.info()
        return int(info.get("connected_peers", info.get("connectedPeers", 0)))

    def casts(self, fid: int) -> Any:
        return json.loads(
            run_cli(self.host, "client", "casts", "--fid", str(fid), "--json", "--rpc", self.rpc)
        )

    def cast_texts(self, fid: int) -> set[str]:
        return {m["data"]["cast_add_body"]["text"] for m in self.casts(fid)}

    def write(self, fid: int, key: Path, *args: str) -> str:
        """A `client` writer command (`cast TEXT`, `delete-cast HASH`) as `fid`; the message's 0x hash."""
        return run_cli(
            self.host, "client", *args, "--fid", str(fid), "--key", str(key), "--rpc", self.rpc
        ).strip()


def wait_until(what: str, condition: Callable[[], bool], deadline: float, detail: Callable[[], str]) -> None:
    """Poll `condition` until it holds; fail with `detail()` once `deadline` (monotonic) has passed."""
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{detail()}")
        time.sleep(POLL_INTERVAL)


def test_partition_and_heal_across_namespaces(
    lab: NetnsLab, node_procs: NodeProcesses, tmp_path: Path
) -> None:
    devnet = write_devnet_accounts(tmp_path / "devnet", 1)
    fid = devnet.accounts[0].fid
    key = devnet.accounts[0].key_file
    assert key is not None

    hubs: list[Hub] = []
    for host in lab.hosts:
        extra = ["--gossip-host", host.address, "--rpc-host", host.address, "--metrics-port", "0"]
        if hubs:
            extra += ["--bootstrap", hubs[0].process.libp2p_addrs[0]]
        process = node_procs.start(tmp_path / f"data{host.index}", devnet.path, extra, host.exec_prefix())
        hub = Hub(host, process)
        hub.rpc = process.wait_ready()
        assert hub.rpc.startswith(host.address), hub.rpc
        hubs.append(hub)
    first, cut = hubs[0], hubs[-1]
    majority = hubs[:-1]

    def logs() -> str:
        return "\n".join(f"--- {h.host.namespace}\n{h.process.stderr_tail(8)}" for h in hubs)

    deadline = time.monotonic() + SCENARIO_BUDGET
    wait_until(
        "every node to connect to node 0",
        lambda: first.connected_peers() >= HOSTS - 1 and all(h.connected_peers() >= 1 for h in hubs[1:]),
        deadline,
        logs,
    )
    shared = first.write(fid, key, "cast", "before the partition")
    wait_until(
        "the first cast to reach every node",
        lambda: all("before the partition" in h.cast_texts(fid) for h in hubs),
        deadline,
        logs,
    )

    lab.unplug([cut.host])
    # The cut-off side writes first: by the time the majority's own cast has reached all of the majority,
    # a leak of the minority's writes would have had as long to arrive.
    cut.write(fid, key, "cast", "from the cut-off node")
    cut.write(fid, key, "delete-cast", shared)
    first.write(fid, key, "cast", "from the majority")
    wait_until(
        "the majority's cast to reach the majority",
        lambda: all("from the majority" in h.cast_texts(fid) for h in majority),
        deadline,
        logs,
    )
    for hub in majority:
        assert hub.cast_texts(fid) == {"before the partition", "from the majority"}, hub.host.namespace
    assert cut.cast_texts(fid) == {"from the cut-off node"}
    majority_roots = {h.info()["root_hash"] for h in majority}
    assert len(majority_roots) == 1, majority_roots
    assert cut.info()["root_hash"] not in majority_roots

    lab.plug([cut.host])
    healed_at = time.monotonic()

    def converged() -> bool:
        roots = {h.info()["root_hash"] for h in hubs}
        return len(roots) == 1 and len({json.dumps(h.casts(fid), sort_keys=True) for h in hubs}) == 1

    wait_until("all four nodes to converge after healing", converged, deadline, logs)
    heal_seconds = time.monotonic() - healed_at
    for hub in hubs:
        assert hub.cast_texts(fid) == {"from the majority", "from the cut-off node"}, hub.host.namespace
    print(f"converged {heal_seconds:.1f} s after healing")
    for hub in reversed(hubs):
        assert hub.process.interrupt() == 0, hub.process.stderr_tail()
