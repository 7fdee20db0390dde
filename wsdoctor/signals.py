"""Ctrl-C and SIGTERM stop the running work, so that what it learned can still be reported."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """While open, SIGINT and SIGTERM call ``callback(signum)`` on the running event loop."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, callback, signum)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


@contextlib.contextmanager
def cancel_on_signals(*tasks: asyncio.Task) -> Iterator[list[int]]:
    """While open, SIGINT and SIGTERM cancel ``tasks``; the yielded list gets the first signal."""
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            for task in tasks:
                task.cancel()

    with on_stop_signals(stop):
        yield received
