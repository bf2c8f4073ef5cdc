"""The ordered key-value interface the message store is written against, and an in-memory implementation.

Keeping the store's rules on this small interface lets the same code run over an LMDB write transaction
in the node and over `MemoryKV` in property tests, so tests exercise the production logic itself.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Protocol


class ReadKV(Protocol):
    """Read side of an ordered byte-string map."""

    def get(self, key: bytes) -> bytes | None:
        """The value under `key`, or None."""
        ...

    def scan(
        self, prefix: bytes, *, after: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with `prefix`, in key order (descending if `reverse`).

        `after` is a full key: iteration starts strictly after it in the chosen direction. Callers
        must not write to the map while iterating.
        """
        ...


class WriteKV(ReadKV, Protocol):
    """Read-write ordered byte-string map (a transaction, in the node)."""

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value`."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        ...


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None if there is none)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None


class MemoryKV:
    """A sorted in-memory `WriteKV` (tests and tools; not durable)."""

    def __init__(self) -> None:
        self._keys: list[bytes] = []
        self._data: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: bytes) -> bytes | None:
        """The value under `key`, or None."""
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        """Set `key` to `value`."""
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        """Remove `key` if present."""
        if self._data.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]

    def scan(
        self, prefix: bytes, *, after: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs under `prefix` in key order (see `ReadKV.scan`)."""
        keys = self._keys
        if not reverse:
            i = bisect.bisect_right(keys, after) if after is not None else bisect.bisect_left(keys, prefix)
            while i < len(keys) and keys[i].startswith(prefix):
                yield keys[i], self._data[keys[i]]
                i += 1
        else:
            if after is not None:
                i = bisect.bisect_left(keys, after) - 1
            else:
                end = prefix_end(prefix)
                i = (bisect.bisect_left(keys, end) if end is not None else len(keys)) - 1
            while i >= 0 and keys[i].startswith(prefix):
                yield keys[i], self._data[keys[i]]
                i -= 1

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every pair in key order (for comparing whole stores in tests)."""
        return [(k, self._data[k]) for k in self._keys]
