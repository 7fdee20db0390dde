"""Measure the probe's own event-loop lag, so that a stalled client is not blamed on the network."""

from __future__ import annotations

import asyncio
import time

from wsdoctor.observations import LoopLag
from wsdoctor.stats import percentile

TICK_S = 0.05
MAX_SAMPLES = 200_000


class LoopLagMonitor:
    """Wakes every ``TICK_S`` and records how late each wake-up was."""

    def __init__(self) -> None:
        self._lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLagMonitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while len(self._lags_ms) < MAX_SAMPLES:
            expected = time.monotonic() + TICK_S
            await asyncio.sleep(TICK_S)
            self._lags_ms.append(max(0.0, (time.monotonic() - expected) * 1000))

    def result(self) -> LoopLag:
        """The lag seen so far: p99 and max in milliseconds."""
        lags = sorted(self._lags_ms)
        if not lags:
            return LoopLag(samples=0, p99_ms=0.0, max_ms=0.0)
        p99 = percentile(lags, 0.99)
        return LoopLag(samples=len(lags), p99_ms=round(p99, 2), max_ms=round(lags[-1], 2))
