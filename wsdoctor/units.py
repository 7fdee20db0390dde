"""Durations and sizes as people read them, one way each for the whole tool."""

from __future__ import annotations

MISSING = "-"
"""What a figure that was not measured shows as."""


def seconds(value: float) -> str:
    """A duration in findings and summaries: one decimal below 100 s (``7.5 s``), whole
    seconds from there (``120 s``)."""
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


def seconds_tenths(value: float | None) -> str:
    """A duration in tables and figures: always one decimal (``60.1 s``), ``-`` if missing."""
    return MISSING if value is None else f"{value:.1f} s"


def seconds_as_ms(value: float | None) -> str:
    """A time in seconds shown as milliseconds with one decimal (``12.3 ms``), or ``-``."""
    return MISSING if value is None else f"{value * 1000:.1f} ms"


def clock(value: float) -> str:
    """Elapsed time like a stopwatch, whole seconds: ``42s``, ``3m07s``, ``1h02m03s``."""
    whole = int(value)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def size(value: float) -> str:
    """Bytes for people: ``512 B``, ``64 KiB``, ``1.5 MiB``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            scaled = value / scale
            return f"{scaled:g} {unit}" if scaled.is_integer() else f"{scaled:.1f} {unit}"
    return f"{value:g} B"
