"""Several nodes in one process on loopback: the library behind tests, benchmarks and `stateless devnet`.

    async with open_devnet(5, tmp_path, accounts=3) as net:  # or genesis=path
        with trio.fail_after(20):
            await net.wait_for_peers(4)
            await net.wait_until(lambda: ...)

Nodes start one after another, each bootstrapping to every node already running, so the network is
fully connected from the start; gossip and diff sync take it from there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from devnet._accounts import DevnetAccount, write_devnet_accounts
from node.config import NetworkSettings, NodeConfig
from node.runner import NodeHandle, open_node
from p2p import DEFAULT_MAX_CONNECTIONS
from protocols import crdt

#: Timers for in-process devnets: quick enough for tests, still the production code paths.
FAST_SETTINGS = NetworkSettings(contact_interval=1.0, sync_interval=2.0, heartbeat_interval=0.2)


@dataclass
class LocalDevnet:
    """Running nodes of a local devnet, with the test accounts its genesis registered (if written by it)."""

    nodes: list[NodeHandle]
    genesis: Path | None = None
    accounts: list[DevnetAccount] = field(default_factory=list)

    def __getitem__(self, i: int) -> NodeHandle:
        return self.nodes[i]

    def __len__(self) -> int:
        return len(self.nodes)

    async def wait_until(
        self, predicate: Callable[[], bool], *, nodes: Sequence[NodeHandle] | None = None
    ) -> None:
        """Return once `predicate()` holds, re-checked after every commit or peer-state change of a node.

        Never returns if it never holds: bound it with `trio.fail_after`.
        """
        watched = list(nodes if nodes is not None else self.nodes)
        while not predicate():
            async with trio.open_nursery() as nursery:

                async def wake(wait: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
                    await wait()
                    scope.cancel()

                for node in watched:
                    nursery.start_soon(wake, node.engine.wait_for_commit, nursery.cancel_scope)
                    nursery.start_soon(wake, node.network.wait_for_change, nursery.cancel_scope)

    async def wait_for_peers(self, n: int, *, nodes: Sequence[NodeHandle] | None = None) -> None:
        """Wait until each node (of all, or the given ones) has a connection to at least `n` peers."""
        chosen = list(nodes if nodes is not None else self.nodes)
        await self.wait_until(
            lambda: all(node.network.connected_count() >= n for node in chosen), nodes=chosen
        )

    def roots(self, nodes: Sequence[NodeHandle] | None = None) -> list[bytes]:
        """Sync-trie root hashes of the nodes."""
        out = []
        for node in nodes if nodes is not None else self.nodes:
            with node.engine.read() as kv:
                out.append(crdt.trie_root(kv).hash)
        return out

    async def wait_converged(self, *, nodes: Sequence[NodeHandle] | None = None) -> None:
        """Wait until all (or the given) nodes hold exactly the same messages (equal trie roots)."""
        chosen = list(nodes if nodes is not None else self.nodes)
        await self.wait_until(lambda: len(set(self.roots(chosen))) == 1, nodes=chosen)

    def partition(self, *groups: Sequence[NodeHandle]) -> None:
        """Cut every connection between nodes of different groups (each side denies the other)."""
        for i, group in enumerate(groups):
            for other in groups[i + 1 :]:
                for a in group:
                    for b in other:
                        a.network.deny(b.peer_id)
                        b.network.deny(a.peer_id)

    async def heal(self) -> None:
        """Undo `partition` and reconnect every pair of nodes."""
        for a in self.nodes:
            for b in self.nodes:
                if a is not b:
                    a.network.undeny(b.peer_id)
        for i, a in enumerate(self.nodes):
            for b in self.nodes[i + 1 :]:
                await a.host.connect(b.host.info.listen_addrs[0])


@asynccontextmanager
async def open_devnet(
    n: int,
    base_dir: Path,
    *,
    genesis: Path | None = None,
    accounts: int = 0,
    settings: NetworkSettings = FAST_SETTINGS,
    bootstrap_all: bool = True,
    bootstrap: Sequence[str] = (),
    max_peers: int = DEFAULT_MAX_CONNECTIONS,
) -> AsyncIterator[LocalDevnet]:
    """Start `n` nodes under `base_dir/node-<i>` and yield them; stop them all (in reverse) on exit.

    `accounts=K` writes `base_dir/genesis.json` registering K deterministic test accounts (fids 1..K) and
    their key files under `base_dir/keys/` (see devnet/_accounts.py); `genesis=path` loads a given file.
    Every node also bootstraps to the `bootstrap` addresses (nodes of another devnet) and keeps at most
    `max_peers` peers.
    """
    if n < 1:
        raise ValueError("a devnet needs at least one node")
    if genesis is not None and accounts:
        raise ValueError("give either genesis= or accounts=, not both")
    written: list[DevnetAccount] = []
    if accounts:
        devnet_genesis = write_devnet_accounts(base_dir, accounts)
        genesis, written = devnet_genesis.path, devnet_genesis.accounts
    async with AsyncExitStack() as stack:
        nodes: list[NodeHandle] = []
        for i in range(n):
            peers = nodes if bootstrap_all else nodes[-1:]
            config = NodeConfig(
                data_dir=base_dir / f"node-{i}",
                rpc_port=0,
                gossip_port=0,
                genesis=genesis,
                bootstrap=(*bootstrap, *(p.host.info.listen_addrs[0] for p in peers)),
                max_peers=max_peers,
                nickname=f"node-{i}",
                p2p=settings,
            )
            nodes.append(await stack.enter_async_context(open_node(config)))
        yield LocalDevnet(nodes, genesis=genesis, accounts=written)


def with_settings(base: NetworkSettings, **changes: float | int) -> NetworkSettings:
    """`base` with some fields changed (NetworkSettings is frozen)."""
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
