"""Where a run was stuck: every thread's stack and every pending asyncio task's coroutine chain.

Written when the run budget fires (to stderr with ``--debug``, and next to the JSON report), so
that a user can attach it to a bug report.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import os
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

MAX_TASKS = 200
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Frame:
    """One frame of a coroutine chain."""

    function: str
    filename: str
    line: int

    @property
    def ours(self) -> bool:
        """True for wsdoctor's own code."""
        return self.filename.startswith(PACKAGE_DIR)

    def __str__(self) -> str:
        shown = (
            os.path.relpath(self.filename, os.path.dirname(PACKAGE_DIR))
            if self.ours
            else (self.filename)
        )
        return f"{self.function} ({shown}:{self.line})"


@dataclass(frozen=True)
class PendingTask:
    """A task that had not finished, and the chain of coroutines it is waiting in."""

    name: str
    chain: tuple[Frame, ...]
    waiting_on: str

    def where(self) -> str:
        """Its innermost wsdoctor frame (or its innermost frame)."""
        frames = [f for f in self.chain if f.ours] or list(self.chain)
        return str(frames[-1]) if frames else "(not started)"


def _frame(frame: FrameType | None, fallback: Any) -> Frame | None:
    if frame is not None:
        code = frame.f_code
        return Frame(code.co_name, code.co_filename, frame.f_lineno)
    start = getattr(fallback, "cr_code", None) or getattr(fallback, "gi_code", None)
    if start is None:
        return None
    return Frame(start.co_name, start.co_filename, start.co_firstlineno)


def coroutine_chain(coro: Any) -> tuple[tuple[Frame, ...], str]:
    """The frames from ``coro`` down the chain it awaits, and what the innermost one awaits."""
    frames: list[Frame] = []
    current = coro
    for _ in range(100):
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        described = _frame(frame, current)
        if described is None:
            break
        frames.append(described)
        nxt = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
        if nxt is None or not (hasattr(nxt, "cr_frame") or hasattr(nxt, "gi_frame")):
            return tuple(frames), _awaitable(nxt)
        current = nxt
    return tuple(frames), ""


def _awaitable(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, asyncio.Task):
        return f"task {value.get_name()}"
    if isinstance(value, asyncio.Future):
        return "a future" + (" (cancelled)" if value.cancelled() else "")
    if type(value).__name__ == "FutureIter":  # ``await future`` in progress
        return "a future"
    return type(value).__name__


def pending_tasks(loop: asyncio.AbstractEventLoop) -> list[PendingTask]:
    """Every task of ``loop`` that has not finished (best effort from another thread)."""
    for _ in range(5):
        try:
            tasks = list(asyncio.all_tasks(loop))
            break
        except RuntimeError:  # the set changed while it was copied: try again
            continue
    else:
        return []
    out = []
    for task in tasks[:MAX_TASKS]:
        try:
            chain, waiting_on = coroutine_chain(task.get_coro())
            out.append(PendingTask(task.get_name(), chain, waiting_on))
        except Exception:  # noqa: BLE001, S112 - a dump must not fail on one odd task
            continue
    return sorted(out, key=lambda t: t.name)


def format_tasks(tasks: list[PendingTask]) -> str:
    """The pending tasks as text, innermost frame last."""
    lines = [f"Pending asyncio tasks ({len(tasks)}):"]
    for task in tasks:
        waiting = f", waiting on {task.waiting_on}" if task.waiting_on else ""
        lines.append(f"  Task {task.name}{waiting}")
        lines.extend(f"    {frame}" for frame in task.chain)
    return "\n".join(lines) + "\n"


def thread_frames(thread_id: int | None) -> tuple[Frame, ...]:
    """The stack of one thread, outermost first (empty when it is gone)."""
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    frames: list[Frame] = []
    while frame is not None:
        described = _frame(frame, None)
        if described is not None:
            frames.append(described)
        frame = frame.f_back
    return tuple(reversed(frames))


def innermost_ours(frames: tuple[Frame, ...], skip: tuple[str, ...] = ()) -> Frame | None:
    """The innermost frame of wsdoctor's own code, leaving out the files named in ``skip``."""
    ours = [f for f in frames if f.ours and not f.filename.endswith(skip)]
    return ours[-1] if ours else None


def write_dump(stream: TextIO, header: str, tasks: list[PendingTask]) -> None:
    """Write ``header``, the pending tasks and every thread's stack (faulthandler)."""
    stream.write(header.rstrip("\n") + "\n\n")
    stream.write(format_tasks(tasks))
    stream.write("\nThreads (most recent call first):\n")
    stream.flush()
    try:
        faulthandler.dump_traceback(stream, all_threads=True)
    except (AttributeError, ValueError, io.UnsupportedOperation, OSError):
        stream.write("  (no file descriptor to dump thread stacks to)\n")
    stream.flush()


def dump_to_file(path: str, header: str, tasks: list[PendingTask]) -> str | None:
    """Write the dump to ``path``; return the path, or None when it could not be written."""
    try:
        with open(path, "w", encoding="utf-8") as file:
            write_dump(file, header, tasks)
    except OSError:
        return None
    return path


def dump_to_stderr(header: str, tasks: list[PendingTask]) -> None:
    """Write the dump to standard error."""
    with contextlib.suppress(OSError, ValueError):
        write_dump(sys.stderr, header, tasks)
