"""Farcaster time: whole seconds since 2021-01-01T00:00:00Z."""

from __future__ import annotations

import time
from typing import Final

FARCASTER_EPOCH: Final = 1_609_459_200  # 2021-01-01T00:00:00Z in unix seconds
#: How far in the future a message timestamp may be (clock skew allowance).
MAX_FUTURE_SKEW_SECONDS: Final = 600


def to_farcaster_time(unix_seconds: float) -> int:
    """Convert unix seconds to Farcaster seconds (may be negative before the epoch)."""
    return int(unix_seconds) - FARCASTER_EPOCH


def from_farcaster_time(farcaster_seconds: int) -> int:
    """Convert Farcaster seconds to unix seconds."""
    return farcaster_seconds + FARCASTER_EPOCH


def farcaster_now() -> int:
    """The current Farcaster time."""
    return to_farcaster_time(time.time())
