"""Local multi-node networks for tests, benchmarks and `stateless devnet`, and misbehaving peers.

- `open_devnet`: nodes in this process (tests that look inside nodes).
- `open_process_devnet` / `start_process_devnet`: `stateless node start` processes (the CLI, system tests).
- `NodeProcessSync`: one such process from blocking code (system tests, benchmarks), without trio.
- `write_devnet_accounts`: deterministic, devnet-only test accounts with a genesis file and key files.

Names are imported on first use: `stateless devnet status` needs the process helpers, not the in-process
node stack and libp2p behind `open_devnet`, which take a second to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from devnet._accounts import (
        DevnetAccount,
        DevnetGenesis,
        devnet_accounts,
        devnet_key,
        write_devnet_accounts,
        write_genesis,
        write_key_file,
    )
    from devnet._adversary import (
        Eclipser,
        Flooder,
        Forger,
        Liar,
        Withholder,
        open_eclipser,
        open_flooder,
        open_forger,
        open_liar,
        open_withholder,
    )
    from devnet._local import FAST_SETTINGS, LocalDevnet, open_devnet, with_settings
    from devnet._node_process import (
        NodeProcessSync,
        ProcessNode,
        StopResult,
        node_command,
        node_env,
        node_process_alive,
        node_start_argv,
        stop_node_pids,
        stop_node_processes,
    )
    from devnet._processes import (
        DevnetState,
        NodeStatus,
        ProcessDevnet,
        load_state,
        open_process_devnet,
        query_status,
        save_state,
        start_process_devnet,
    )

_MODULES: Final = {
    "devnet._accounts": (
        "DevnetAccount",
        "DevnetGenesis",
        "devnet_accounts",
        "devnet_key",
        "write_devnet_accounts",
        "write_genesis",
        "write_key_file",
    ),
    "devnet._adversary": (
        "Eclipser",
        "Flooder",
        "Forger",
        "Liar",
        "Withholder",
        "open_eclipser",
        "open_flooder",
        "open_forger",
        "open_liar",
        "open_withholder",
    ),
    "devnet._local": ("FAST_SETTINGS", "LocalDevnet", "open_devnet", "with_settings"),
    "devnet._node_process": (
        "NodeProcessSync",
        "ProcessNode",
        "StopResult",
        "node_command",
        "node_env",
        "node_process_alive",
        "node_start_argv",
        "stop_node_pids",
        "stop_node_processes",
    ),
    "devnet._processes": (
        "DevnetState",
        "NodeStatus",
        "ProcessDevnet",
        "load_state",
        "open_process_devnet",
        "query_status",
        "save_state",
        "start_process_devnet",
    ),
}
_HOME: Final = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "FAST_SETTINGS",
    "DevnetAccount",
    "DevnetGenesis",
    "DevnetState",
    "Eclipser",
    "Flooder",
    "Forger",
    "Liar",
    "LocalDevnet",
    "NodeProcessSync",
    "NodeStatus",
    "ProcessDevnet",
    "ProcessNode",
    "StopResult",
    "Withholder",
    "devnet_accounts",
    "devnet_key",
    "load_state",
    "node_command",
    "node_env",
    "node_process_alive",
    "node_start_argv",
    "open_devnet",
    "open_eclipser",
    "open_flooder",
    "open_forger",
    "open_liar",
    "open_process_devnet",
    "open_withholder",
    "query_status",
    "save_state",
    "start_process_devnet",
    "stop_node_pids",
    "stop_node_processes",
    "with_settings",
    "write_devnet_accounts",
    "write_genesis",
    "write_key_file",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'devnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
