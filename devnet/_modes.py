"""Node modes of a devnet: honest, or one of the adversaries (kept light: the CLI imports it at start)."""

from __future__ import annotations

from typing import Final

HONEST: Final = "honest"
#: `stateless devnet adversary MODE` and `devnet up --mode I=MODE`.
ADVERSARY_MODES: Final = {
    "forge": "gossips casts with forged signatures (and garbage) every second, lies to sync",
    "withhold": "joins gossip and takes everything, forwards nothing, never answers sync",
    "flood": "floods gossip with forged casts as fast as it can",
    "lie": "serves lying trie nodes to sync and corrupt blocks to blob fetches",
    "eclipse": "runs sybils that fill the connection slots of the nodes started before it",
}
#: Every mode a devnet node can run in.
NODE_MODES: Final = (HONEST, *ADVERSARY_MODES)
