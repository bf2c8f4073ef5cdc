"""Calls from the gRPC thread's asyncio loop into the node's trio loop, without blocking either.

grpc.aio runs on its own thread (DESIGN.md section 3 has the measurements). A handler that needs the
node (a write) schedules a trio task with `TrioToken.run_sync_soon` and awaits an asyncio future that
the task resolves with `call_soon_threadsafe`. In-flight calls are bounded; past the bound callers get
`unavailable.overloaded` at once instead of queueing without limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from protocols.errors import HubError

T = TypeVar("T")


class TrioBridge:
    """Runs async callables in a trio nursery on behalf of asyncio code on another thread."""

    def __init__(
        self, token: trio.lowlevel.TrioToken, nursery: trio.Nursery, *, max_in_flight: int = 4096
    ) -> None:
        self._token = token
        self._nursery = nursery
        self._max = max_in_flight
        self._in_flight = 0  # touched only on the asyncio thread

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await fn(*args)` on the trio side and return its result here (asyncio side)."""
        if self._in_flight >= self._max:
            raise HubError("unavailable.overloaded", "too many requests in flight; retry shortly")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        async def run() -> None:
            try:
                result = await fn(*args)
            except BaseException as e:
                # Cancellation is reported to the caller as shutdown, then allowed to unwind.
                err: BaseException = (
                    HubError("unavailable.shutting_down", "the hub is shutting down")
                    if isinstance(e, trio.Cancelled)
                    else e
                )
                loop.call_soon_threadsafe(_resolve, future, None, err)
                if not isinstance(e, Exception):
                    raise
            else:
                loop.call_soon_threadsafe(_resolve, future, result, None)

        def start() -> None:
            # Runs on the trio thread; an exception escaping here would crash trio itself.
            try:
                self._nursery.start_soon(run)
            except RuntimeError:  # nursery already closed: the node is stopping
                err = HubError("unavailable.shutting_down", "the hub is shutting down")
                loop.call_soon_threadsafe(_resolve, future, None, err)

        self._in_flight += 1
        try:
            try:
                self._token.run_sync_soon(start)
            except trio.RunFinishedError:
                raise HubError("unavailable.shutting_down", "the hub is shutting down") from None
            return await future
        finally:
            self._in_flight -= 1


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller went away (deadline, cancel)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
