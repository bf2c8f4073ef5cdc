"""Local multi-node networks for tests, benchmarks and `stateless devnet`, and misbehaving peers."""

from devnet._adversary import Forger, Withholder, open_forger, open_withholder
from devnet._local import FAST_SETTINGS, LocalDevnet, open_devnet, with_settings

__all__ = [
    "FAST_SETTINGS",
    "Forger",
    "LocalDevnet",
    "Withholder",
    "open_devnet",
    "open_forger",
    "open_withholder",
    "with_settings",
]
