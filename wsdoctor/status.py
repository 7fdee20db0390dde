"""Live progress of a run, written by probes and read by whatever displays it.

It lives beside ``observations`` rather than in ``probes/``: probes write it, reporters and the
live display read it, and neither layer imports the other.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

SlotState = Literal["connecting", "up", "waiting", "stopped"]
RECENT_RTTS = 60


@dataclass
class PathStatus:
    """Where one path's probes are now."""

    stage: str = "pending"
    open_connections: int = 0
    drops: int = 0


@dataclass
class RunStatus:
    """Progress of every path, plus the run's start on the monotonic clock."""

    started: float = field(default_factory=time.monotonic)
    paths: dict[str, PathStatus] = field(default_factory=dict)

    def path(self, name: str) -> PathStatus:
        """The status entry for ``name``, created on first use."""
        return self.paths.setdefault(name, PathStatus())

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started


@dataclass
class SlotStatus:
    """Where one watched connection is now."""

    state: SlotState = "connecting"
    up_since: float | None = None  # monotonic
    last_rtt_ms: float | None = None


@dataclass
class WatchStatus:
    """Live state of a watch, written by the probe and read by displays."""

    started: float = field(default_factory=time.monotonic)
    slots: list[SlotStatus] = field(default_factory=list)
    recent_rtts_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_RTTS))
    reconnects: int = 0

    def elapsed(self) -> float:
        """Seconds since the watch started."""
        return time.monotonic() - self.started
