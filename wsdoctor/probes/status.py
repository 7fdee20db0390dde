"""Live progress of a run, written by probes and read by whatever displays it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


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
