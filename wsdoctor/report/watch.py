"""What `wsdoctor watch` shows: a live panel, plain event lines, the events log and a summary.

Causes come from ``wsdoctor.diagnosis.rules.watch.disconnect_causes``; nothing here judges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.observations import Disconnect, Ending, Observations, WatchLog
from wsdoctor.report.terminal import findings_text, verdict_panel
from wsdoctor.report.text import describe_ending
from wsdoctor.units import clock as _duration
from wsdoctor.units import seconds_tenths

if TYPE_CHECKING:
    from wsdoctor.status import WatchStatus

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SHORT_ENDINGS = {"eof": "FIN", "reset": "RST", "silent": "silent"}
LAST_DISCONNECTS = 5
SUMMARY_DISCONNECTS = 20


def sparkline(values: Iterable[float]) -> str:
    """Values as a row of block characters, lowest to highest."""
    points = list(values)
    if not points:
        return ""
    low, high = min(points), max(points)
    span = high - low
    top = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[round((v - low) / span * top) if span > 0 else 0] for v in points)


def _state(status: WatchStatus) -> Text:
    states = [slot.state for slot in status.slots]
    up = states.count("up")
    style = "green" if up == len(states) else ("red" if up == 0 else "yellow")
    text = Text(f"{up}/{len(states)} up", style=style)
    for name in ("connecting", "waiting"):
        if states.count(name):
            text.append(f", {states.count(name)} {name}")
    return text


def _uptime(status: WatchStatus, now: float) -> str:
    ups = [now - s.up_since for s in status.slots if s.up_since is not None]
    if not ups:
        return "down"
    if len(status.slots) == 1:
        return _duration(ups[0])
    return f"longest {_duration(max(ups))}, shortest {_duration(min(ups))}"


def _drop_text(drop: Disconnect, cause: str) -> str:
    ending = drop.ending
    how = _short_ending(ending)
    if ending.kind != "handshake_failed":
        how += f" at age {seconds_tenths(ending.age_s)}"
    return f"{drop.at_s:8.1f} s  #{drop.connection}  {how} -> {cause}"


def _short_ending(ending: Ending) -> str:
    if ending.kind == "handshake_failed":
        return f"no connection ({ending.detail or 'failed'})"
    if ending.kind == "close_frame":
        return f"close {ending.code}" + (" by client" if ending.initiator == "client" else "")
    return SHORT_ENDINGS.get(ending.kind, ending.kind)


def watch_panel(status: WatchStatus, log: WatchLog, causes: list[str]) -> Panel:
    """The live panel: state, uptime, current RTT, recent RTTs, reconnects, last drops."""
    now = time.monotonic()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rtts = list(status.recent_rtts_ms)
    grid.add_row("State", _state(status))
    grid.add_row("Uptime", Text(_uptime(status, now)))
    grid.add_row("RTT", Text(f"{rtts[-1]:.1f} ms" if rtts else "-"))
    if rtts:
        grid.add_row(
            "Recent RTTs",
            Text(f"{sparkline(rtts)}  {min(rtts):.1f}-{max(rtts):.1f} ms", style="cyan"),
        )
    grid.add_row("Reconnects", Text(str(status.reconnects)))
    grid.add_row("Disconnects", Text(str(len(log.disconnects))))
    recent = list(zip(log.disconnects, causes))[-LAST_DISCONNECTS:]
    for drop, cause in reversed(recent):
        grid.add_row("", Text(_drop_text(drop, cause)))
    return Panel(
        grid,
        title=Text(f"wsdoctor watch - {_duration(status.elapsed())}", style="bold"),
        title_align="left",
        subtitle=Text("Ctrl-C for the summary"),
        subtitle_align="right",
    )


def event_line(event: dict[str, Any]) -> str | None:
    """One plain line for a connect, drop, relabelled drop, reconnect attempt or failed
    handshake (not RTTs)."""
    kind = event["event"]
    head = f"[{event['t']:8.1f} s] #{event['connection']}"
    if kind == "connect":
        return f"{head} connected"
    if kind == "disconnect":
        ending = Ending(**event["ending"])
        cause = event.get("cause")
        return (
            f"{head} dropped: {describe_ending(ending)} at age {ending.age_s:.1f} s, "
            f"idle {seconds_tenths(ending.idle_s)}" + (f" -> {cause}" if cause else "")
        )
    if kind == "reconnect_attempt":
        return (
            f"{head} reconnect attempt {event['attempt']} in {event['delay_s']:.2f} s "
            f"(backoff up to {event['ceiling_s']:.2f} s)"
        )
    if kind == "relabel":  # a later drop revealed the pattern of an earlier one
        return f"{head} drop {event['index']} relabelled: {event['was']} -> {event['cause']}"
    if kind == "handshake_failed":
        failure = event.get("failure") or {}
        return f"{head} handshake failed: {failure.get('message', 'unknown reason')}"
    return None


class EventLog:
    """The JSON-lines event log: one object per event, appended and flushed as it happens."""

    def __init__(self, path: str) -> None:
        self._file: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, event: dict[str, Any]) -> None:
        """Append one event, stamped with the wall-clock time."""
        stamped = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), **event}
        self._file.write(json.dumps(stamped) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the log file."""
        self._file.close()


def _disconnects(log: WatchLog, causes: list[str]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=Text("Last disconnects"), title_justify="left")
    table.add_column("At", justify="right")
    table.add_column("Conn", justify="right")
    table.add_column("Ended")
    table.add_column("Age / idle", justify="right")
    table.add_column("Retries", justify="right")
    table.add_column("Cause")
    rows = list(zip(log.disconnects, causes))[-SUMMARY_DISCONNECTS:]
    for drop, cause in rows:
        table.add_row(
            seconds_tenths(drop.at_s),
            str(drop.connection),
            _short_ending(drop.ending),
            f"{drop.ending.age_s:.1f} / {drop.ending.idle_s:.1f} s",
            str(drop.reconnect_attempts),
            cause,
        )
    return table


def render_watch_summary(
    observations: Observations, diagnosis: Diagnosis, causes: list[str], console: Console
) -> None:
    """The end of a watch: verdict, findings (availability and causes), last disconnects."""
    url = observations.paths[0].url if observations.paths else ""
    console.print(
        verdict_panel(
            observations,
            diagnosis.verdict,
            title=f"Watch of {url}",
            subtitle=f"started {observations.started_at}",
            plain=not console.is_terminal,
        )
    )
    console.print(findings_text(diagnosis.findings))
    log = observations.watch
    if log is not None and log.disconnects:
        console.print()
        console.print(_disconnects(log, causes))
