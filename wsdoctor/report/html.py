"""The HTML report: one self-contained page with the verdict and the connection timeline.

The page is rendered from a saved report (``wsdoctor.report/1``, or ``wsdoctor.check/1`` with
one section per target): the pipeline hands it the JSON report it writes, and ``wsdoctor report
saved.json --html`` hands it the same data read back, so both give the same page. The report is
turned back into observations and a diagnosis, and nothing is judged here: positions on the
page are the recorded times laid out on two clocks (run time, and idle age), the clusters are
the verdict's own. Markup lives in ``templates/report.html.j2`` (Jinja2, imported when a page is
rendered so that start-up does not pay for it); CSS and SVG are inline, there is no script and
no reference to another host.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.diagnosis.knowledge import INTERMEDIARIES
from wsdoctor.diagnosis.model import Diagnosis, Finding, IdleCluster, Verdict
from wsdoctor.observations import (
    ConnectionRecord,
    Observations,
    PathResult,
    StageResult,
    WatchLog,
    observations_from_dict,
)
from wsdoctor.report.text import (
    MISSING,
    count_events,
    describe_drops,
    describe_ending,
    describe_handshake,
    describe_loop_lag,
    describe_plan,
    describe_rtt,
    describe_steps,
    format_confidence,
    format_seconds,
    verdict_figures,
)

# --- geometry of the timeline (SVG user units; the SVG scales to the page width) -----------
WIDTH = 1000
LABEL_W = 158
PLOT_X0 = 166
PLOT_X1 = WIDTH - 16
PLOT_W = PLOT_X1 - PLOT_X0
AXIS_H = 30
PATH_H = 26
STAGE_H = 20
ROW_H = 15
GROUP_GAP = 6
BAND_ROW_H = 16
MIN_BAND_W = 8.0

MAX_MARKS = 160
"""Event marks per lane; a lane with more (after merging marks that share a pixel) is drawn
as one busy stretch with the counts in its title."""
IDLE_STAGES = ("idle", "heartbeat")
"""Stages whose connections are drawn on the idle-age clock too."""
WATCH_LANES = 40
WATCH_DRAWN_DROPS = 400
"""A watch with more disconnects than this is drawn as a histogram over time, not drop by drop."""
WATCH_BINS = 120
WATCH_TABLE_ROWS = 50
RAW_LIMIT_BYTES = 400_000
"""The raw facts embedded in the page; beyond this, events and old disconnects are left out."""

DROPS = ("close_frame", "eof", "reset", "silent")
PROBE_KINDS = ("ping_sent", "ping_timeout", "message_sent")
"""Events at the end of a connection that only poke it: not activity that resets idle age."""
CLOSED_AFTER_PONG_S = 0.25

END_LABELS = {
    "close_frame": "close frame",
    "eof": "FIN (no close frame)",
    "reset": "RST",
    "silent": "silence (pings unanswered)",
    "local": "closed by wsdoctor",
    "open": "still open",
    "handshake_failed": "handshake failed",
}
END_SHAPES = {
    "close_frame": "square",
    "eof": "circle",
    "reset": "cross",
    "silent": "hollow diamond",
    "local": "bar",
    "open": "arrow",
    "handshake_failed": "slashed circle",
}
EVENT_LABELS = {
    "opened": ("opened (handshake done)", "tick"),
    "ping_sent": ("ping sent", "hollow dot above"),
    "pong_received": ("pong received (RTT in its tooltip)", "dot below"),
    "message_sent": ("message sent", "hollow square above"),
    "message_received": ("message or echo received", "square below"),
    "server_ping": ("ping from the server", "diamond below"),
    "ping_timeout": ("ping timed out", "small cross"),
}
STATUS_WORDS = {"healthy": "Healthy", "problem": "Problem", "inconclusive": "Inconclusive"}


# --- view model ------------------------------------------------------------------------------


@dataclass
class Mark:
    """One event drawn on a lane."""

    x: float
    kind: str
    title: str


@dataclass
class Lane:
    """One connection as a horizontal lane."""

    y: float
    id: str
    label: str
    x0: float
    x1: float
    end_kind: str
    end_title: str
    code: int | None = None
    marks: list[Mark] = field(default_factory=list)
    busy: tuple[float, float, str] | None = None
    dropped: bool = False
    quiet_from: float | None = None  # idle view: where the final quiet stretch began


@dataclass
class Header:
    """A group heading inside a timeline: a path or a stage."""

    y: float
    text: str
    level: int  # 1 path, 2 stage
    span: tuple[float, float] | None = None  # the stage's run-time span (x0, x1)
    height: float = 0.0


@dataclass
class Band:
    """An idle cluster from the verdict, as a column on the idle-age view."""

    x0: float
    x1: float
    y0: float
    y1: float
    label: str
    title: str
    binding: bool


@dataclass
class Tick:
    x: float
    label: str


@dataclass
class Timeline:
    """One SVG: lanes grouped by path and stage, on one clock."""

    clock: str  # "run" or "idle"
    title: str
    description: str
    height: float
    ticks: list[Tick]
    headers: list[Header]
    lanes: list[Lane]
    bands: list[Band] = field(default_factory=list)
    figure: Tick | None = None  # the verdict's idle timeout as a line
    axis_label: str = ""


@dataclass
class Row:
    """One connection in the table that repeats the picture's facts."""

    path: str
    stage: str
    id: str
    role: str
    opened: str
    ended: str
    end_kind: str
    age: str
    idle: str
    pings: str
    messages: str
    rtt: str


@dataclass
class Remedy:
    text: str
    snippets: list[tuple[str, str]]  # (title, config)
    commands: list[str] = field(default_factory=list)  # copyable commands quoted in the text

    @property
    def parts(self) -> list[tuple[str, bool]]:
        """The text in pieces: ``(text, True)`` for what the remedy quotes as `code`."""
        pieces = self.text.split("`")
        if len(pieces) % 2 == 0:  # an unpaired backtick: no code at all
            return [(self.text, False)]
        return [(piece, i % 2 == 1) for i, piece in enumerate(pieces) if piece]


@dataclass
class Section:
    """Everything the page shows for one run (one target of a check)."""

    anchor: str
    name: str | None
    observations: Observations
    diagnosis: Diagnosis
    verdict: Verdict
    figures: list[tuple[str, str]]
    confidence: str
    remedies: list[Remedy]
    clusters: list[dict[str, str]]
    timelines: list[Timeline]
    rows: list[Row]
    paths: list[dict[str, Any]]
    watch: dict[str, Any] | None
    check: dict[str, Any] | None
    connections: int


# --- reading a saved report back ----------------------------------------------------------


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def diagnosis_from_dict(report: dict[str, Any]) -> Diagnosis:
    """The findings and verdict of a saved report (fields added later are ignored)."""
    findings = [Finding(**_known(Finding, f)) for f in report.get("findings") or []]
    data = dict(report.get("verdict") or {})
    clusters = [IdleCluster(**_known(IdleCluster, c)) for c in data.get("idle_clusters") or []]
    data["idle_clusters"] = clusters
    return Diagnosis(findings=findings, verdict=Verdict(**_known(Verdict, data)))


# --- small helpers -----------------------------------------------------------------------


TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Axis steps of long runs: whole minutes and hours."""


def _nice_step(span: float, target: int = 8) -> float:
    if span <= 0:
        return 1.0
    raw = span / target
    if raw > 30:
        return float(
            next((step for step in TIME_STEPS if raw <= step), 86400 * math.ceil(raw / 86400))
        )
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _axis_end(value: float) -> float:
    step = _nice_step(value)
    return max(step, math.ceil(value / step - 1e-9) * step)


def _ticks(end: float, scale: Any) -> list[Tick]:
    step = _nice_step(end)
    count = int(round(end / step))
    return [Tick(round(scale(i * step), 1), _seconds_label(i * step)) for i in range(count + 1)]


def _seconds_label(value: float) -> str:
    if value >= 3600 and value % 3600 == 0:
        return f"{value / 3600:g} h"
    if value >= 120 and value % 60 == 0:
        return f"{value / 60:g} min"
    return f"{value:g} s"


def _duration(seconds: float | None) -> str:
    """A duration people read: ``7.5 s``, ``12 min 30 s``, ``26 h 5 min``."""
    if seconds is None:
        return MISSING
    if seconds < 120:
        return format_seconds(seconds)
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _r(value: float) -> float:
    return round(value, 1)


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dropped(conn: ConnectionRecord) -> bool:
    return conn.ending.kind in DROPS and conn.ending.initiator != "client"


def _end_title(conn: ConnectionRecord) -> str:
    ending = conn.ending
    text = f"{conn.id}: {describe_ending(ending, conn.handshake.failure)}"
    if ending.kind != "handshake_failed":
        text += f" at age {ending.age_s:.2f} s, idle {ending.idle_s:.2f} s"
    if ending.detail:
        text += f" ({ending.detail})"
    return text


def _event_title(kind: str, t: float, rtt_ms: float | None, size: int | None) -> str:
    text = f"{EVENT_LABELS[kind][0].split(' (')[0]} at {t:.3f} s"
    if size is not None:
        text += f", {size} bytes"
    if rtt_ms is not None:
        text += f", RTT {rtt_ms:.1f} ms"
    return text


def _marks(conn: ConnectionRecord, x_of: Any) -> tuple[list[Mark], tuple[float, float, str] | None]:
    """The lane's event marks (one per pixel and kind), or a busy stretch when too many."""
    marks: list[Mark] = []
    seen: set[tuple[str, float]] = set()
    for event in conn.events:
        x = x_of(event.t)
        if x is None:
            continue
        key = (event.kind, round(x * 2) / 2)
        if key in seen:
            continue
        seen.add(key)
        marks.append(
            Mark(_r(x), event.kind, _event_title(event.kind, event.t, event.rtt_ms, event.size))
        )
    if len(marks) <= MAX_MARKS:
        return marks, None
    counts = Counter(e.kind for e in conn.events)
    words = ", ".join(f"{n} {EVENT_LABELS[k][0].split(' (')[0]}" for k, n in counts.items())
    xs = [m.x for m in marks]
    return [], (min(xs), max(xs), f"{conn.id}: {words}")


def _end_t(conn: ConnectionRecord) -> float:
    """When the connection ended, in its own time (never before its last recorded event)."""
    return max([conn.ending.age_s, *(e.t for e in conn.events)])


def _quiet_from(conn: ConnectionRecord) -> float:
    """Where, in connection time, the connection's last quiet stretch began.

    The recorded idle time at the end, except when the last things on the connection were the
    probe's own pokes: a ping or message sent and left unanswered, or a ping answered just
    before the probe closed the connection. Those do not end a quiet stretch, they test it, so
    the stretch runs from the activity before them (a rung is drawn at the idle time it tested).
    """
    events = sorted(conn.events, key=lambda e: e.t)
    trailing = 0
    while trailing < len(events) and events[-1 - trailing].kind in PROBE_KINDS:
        trailing += 1
    if trailing == 0 and _closed_after_pong(conn, events):
        trailing = 2
    if trailing == 0:
        return max(0.0, conn.ending.age_s - conn.ending.idle_s)
    rest = events[: len(events) - trailing]
    return rest[-1].t if rest else 0.0


def _closed_after_pong(conn: ConnectionRecord, events: list[Any]) -> bool:
    """The probe closed the connection right after the pong of its last ping."""
    if conn.ending.kind != "local" or len(events) < 2:
        return False
    ping, pong = events[-2], events[-1]
    return (
        ping.kind == "ping_sent"
        and pong.kind == "pong_received"
        and conn.ending.age_s - pong.t <= CLOSED_AFTER_PONG_S
    )


# --- timelines ---------------------------------------------------------------------------


def _run_extent(observations: Observations) -> float:
    ends = [
        c.opened_at + _end_t(c) for p in observations.paths for s in p.stages for c in s.connections
    ]
    ends += [s.started_at + s.duration_s for p in observations.paths for s in p.stages]
    return _axis_end(max([*ends, 0.5]))


def _stage_title(path: PathResult, stage: StageResult) -> str:
    text = f"{stage.name} stage: {len(stage.connections)} connection(s)"
    if stage.name in IDLE_STAGES or any(_dropped(c) for c in stage.connections):
        text += f"; {describe_drops(stage)}"
    if stage.interrupted:
        text += " (interrupted)"
    return text


def _path_title(path: PathResult) -> str:
    text = f"{path.name}: {path.url}"
    if path.proxy:
        text += f" via {path.proxy}"
    return text


def run_timeline(observations: Observations) -> Timeline | None:
    """Every connection on the run-time axis, grouped by path and stage."""
    if not any(s.connections for p in observations.paths for s in p.stages):
        return None
    end = _run_extent(observations)

    def scale(t: float) -> float:
        return PLOT_X0 + min(max(t, 0.0), end) / end * PLOT_W

    headers: list[Header] = []
    lanes: list[Lane] = []
    y = AXIS_H
    for path in observations.paths:
        stages = [s for s in path.stages if s.connections]
        if not stages:
            continue
        headers.append(Header(y, _path_title(path), 1))
        y += PATH_H
        for stage in stages:
            span = (_r(scale(stage.started_at)), _r(scale(stage.started_at + stage.duration_s)))
            header = Header(y, _stage_title(path, stage), 2, span)
            headers.append(header)
            y += STAGE_H
            for conn in stage.connections:
                opened = conn.opened_at
                ended = opened + _end_t(conn)
                marks, busy = _marks(conn, lambda t, o=opened: scale(o + t))
                lanes.append(
                    Lane(
                        y=y,
                        id=conn.id,
                        label=_short(conn.id),
                        x0=_r(scale(opened)),
                        x1=_r(scale(ended)),
                        end_kind=conn.ending.kind,
                        end_title=_end_title(conn),
                        code=conn.ending.code,
                        marks=[
                            Mark(
                                _r(scale(opened)),
                                "opened",
                                f"{conn.id} opened at {opened:.2f} s of the run",
                            ),
                            *marks,
                        ],
                        busy=busy,
                        dropped=_dropped(conn),
                    )
                )
                y += ROW_H
            header.height = y - header.y
            y += GROUP_GAP
    count = len(lanes)
    drops = sum(1 for lane in lanes if lane.dropped)
    return Timeline(
        clock="run",
        title="Connections on the run's clock",
        description=f"{count} connections as lanes from when each opened to when it ended, "
        f"seconds since the start of the run; {drops} were ended by the other side.",
        height=y + 4,
        ticks=_ticks(end, scale),
        headers=headers,
        lanes=lanes,
        axis_label="since the run started",
    )


def idle_timeline(observations: Observations, verdict: Verdict) -> Timeline | None:
    """The idle and heartbeat connections aligned on idle age: drops at one timeout in a column."""
    return _aligned_timeline(observations, verdict, "idle")


def age_timeline(observations: Observations, verdict: Verdict) -> Timeline | None:
    """The same connections aligned on their age, when drops line up on it (a lifetime cap)."""
    if verdict.lifetime_cap_s is None and not any(c.clock == "age" for c in verdict.idle_clusters):
        return None
    return _aligned_timeline(observations, verdict, "age")


def _aligned_timeline(observations: Observations, verdict: Verdict, clock: str) -> Timeline | None:
    """Idle and heartbeat connections on one clock: idle age, or connection age."""
    chosen = [
        (path, stage)
        for path in observations.paths
        for stage in path.stages
        if stage.name in IDLE_STAGES and stage.connections
    ]
    if not chosen:
        return None
    positions: dict[int, tuple[float, float]] = {}
    for _, stage in chosen:
        for conn in stage.connections:
            start = _quiet_from(conn) if clock == "idle" else 0.0
            positions[id(conn)] = (start, max(0.0, _end_t(conn) - start))
    if clock == "idle":
        clusters = [c for c in verdict.idle_clusters if c.clock != "age"]
        figure_s, figure_name = verdict.idle_timeout_s, "idle timeout"
    else:
        clusters = [c for c in verdict.idle_clusters if c.clock == "age"]
        figure_s, figure_name = verdict.lifetime_cap_s, "lifetime cap"
    longest = max(
        [v[1] for v in positions.values()] + [c.high_s for c in clusters] + [figure_s or 0.0, 0.5]
    )
    end = _axis_end(longest * 1.05)

    def scale(t: float) -> float:
        return PLOT_X0 + min(max(t, 0.0), end) / end * PLOT_W

    headers: list[Header] = []
    lanes: list[Lane] = []
    bands: list[Band] = []
    y = AXIS_H
    current: str | None = None
    path_top = y
    for path, stage in chosen:
        if path.name != current:
            if current is not None:
                bands += _bands(clusters, current, path_top, y, scale, figure_s, clock)
            current = path.name
            headers.append(Header(y, _path_title(path), 1))
            y += PATH_H
            path_top = y
            if any(c.path == path.name for c in clusters):
                y += BAND_ROW_H
        header = Header(y, _stage_title(path, stage), 2)
        headers.append(header)
        y += STAGE_H
        for conn in stage.connections:
            start, length = positions[id(conn)]
            marks, busy = _marks(conn, lambda t, s=start: scale(t - s) if t >= s else None)
            lanes.append(
                Lane(
                    y=y,
                    id=conn.id,
                    label=_short(conn.id),
                    x0=_r(scale(0.0)),
                    x1=_r(scale(length)),
                    end_kind=conn.ending.kind,
                    end_title=f"{_end_title(conn)}; quiet for {length:.2f} s when it ended"
                    if clock == "idle"
                    else _end_title(conn),
                    code=conn.ending.code,
                    marks=marks,
                    busy=busy,
                    dropped=_dropped(conn),
                    quiet_from=start,
                )
            )
            y += ROW_H
        header.height = y - header.y
        y += GROUP_GAP
    if current is not None:
        bands += _bands(clusters, current, path_top, y - GROUP_GAP, scale, figure_s, clock)
    figure = None
    if figure_s is not None:
        figure = Tick(_r(scale(figure_s)), f"{figure_name} {figure_s:.1f} s")
    drops = sum(1 for lane in lanes if lane.dropped)
    columns = "; ".join(b.label for b in bands) or "no cluster of drops"
    drawn = (
        "each drawn from the start of its last quiet stretch to its end"
        if clock == "idle"
        else "each drawn from its handshake to its end"
    )
    return Timeline(
        clock=clock,
        title=f"The same connections by {'idle age' if clock == 'idle' else 'connection age'}",
        description=f"{len(lanes)} idle, heartbeat and traffic connections, {drawn}; {drops} "
        f"were ended by the other side. Clusters of drops: {columns}.",
        height=y + 4,
        ticks=_ticks(end, scale),
        headers=headers,
        lanes=lanes,
        bands=bands,
        figure=figure,
        axis_label="idle (no byte either way)" if clock == "idle" else "age (since the handshake)",
    )


def _bands(
    clusters: list[IdleCluster],
    path: str,
    y0: float,
    y1: float,
    scale: Any,
    figure_s: float | None,
    clock: str,
) -> list[Band]:
    bands = []
    for cluster in clusters:
        if cluster.path != path:
            continue
        x0, x1 = scale(cluster.low_s), scale(cluster.high_s)
        if x1 - x0 < MIN_BAND_W:
            middle = (x0 + x1) / 2
            x0, x1 = middle - MIN_BAND_W / 2, middle + MIN_BAND_W / 2
        how = ", ".join(
            f"{END_LABELS.get(k, k).split(' (')[0]} {n}" for k, n in cluster.ended_by.items()
        )
        label = f"{cluster.idle_s:.1f} s: {cluster.connections} ({cluster.share * 100:.0f} %)"
        title = (
            f"{path}: {cluster.connections} connection(s) dropped at {clock} {cluster.low_s:.2f}"
            f"-{cluster.high_s:.2f} s ({cluster.share * 100:.0f} % of idle connections; {how})"
        )
        binding = figure_s is not None and abs(cluster.idle_s - figure_s) < 1e-6
        bands.append(Band(_r(x0), _r(x1), y0, y1, label, title, binding))
    return bands


# --- tables and panels -------------------------------------------------------------------


def _rtt_text(conn: ConnectionRecord) -> str:
    rtts = [e.rtt_ms for e in conn.events if e.rtt_ms is not None]
    if not rtts:
        return MISSING
    if len(rtts) == 1:
        return f"{rtts[0]:.1f} ms"
    return f"{min(rtts):.1f}-{max(rtts):.1f} ms ({len(rtts)})"


def connection_rows(observations: Observations) -> list[Row]:
    """The table twin of the picture: one row per connection, in the same order."""
    rows = []
    for path in observations.paths:
        for stage in path.stages:
            for conn in stage.connections:
                plan = describe_plan(conn)
                rows.append(
                    Row(
                        path=path.name,
                        stage=stage.name,
                        id=conn.id,
                        role=conn.role if plan == MISSING else f"{conn.role}, {plan}",
                        opened=format_seconds(conn.opened_at),
                        ended=describe_ending(conn.ending, conn.handshake.failure),
                        end_kind=conn.ending.kind,
                        age=f"{conn.ending.age_s:.2f} s",
                        idle=f"{conn.ending.idle_s:.2f} s",
                        pings=f"{count_events(conn, 'ping_sent')}/"
                        f"{count_events(conn, 'pong_received')}",
                        messages=f"{count_events(conn, 'message_sent')}/"
                        f"{count_events(conn, 'message_received')}",
                        rtt=_rtt_text(conn),
                    )
                )
    return rows


INLINE_CONFIG = re.compile(
    r"^(?P<prose>.*?[.)])\s+(?P<name>[A-Z][\w .-]{0,30}|nginx): (?P<config>[^:]*;.*)$"
)
"""A remedy that ends with a product's configuration: ``... proxy. nginx: a 1; b 2;``."""
COMMAND = re.compile(r"^[\w./-]+(?: |=)\S")
"""Quoted text that reads as a command or a setting to copy (``ulimit -n 65536``)."""


def _remedies(remedies: list[str]) -> list[Remedy]:
    """Each remedy, with the configuration it names in copyable blocks.

    A snippet the knowledge base holds (whole in the remedy, or for a setting the remedy names),
    a product's configuration at the end of the remedy, and commands quoted in backticks.
    """
    result = []
    for text in remedies:
        if not text:
            continue
        inside = [i for i in INTERMEDIARIES if i.snippet and i.snippet in text]
        if inside:
            known = inside[0]
            prose = text.replace(known.snippet, "").rstrip(": ").strip()
            result.append(Remedy(prose, [(known.name, known.snippet)]))
            continue
        inline = INLINE_CONFIG.match(text)
        if inline:
            config = re.sub(r";\s+", ";\n", inline["config"].strip())
            result.append(Remedy(inline["prose"], [(inline["name"], config)]))
            continue
        snippets = [
            (f"{i.name}: {i.setting}", i.snippet)
            for i in INTERMEDIARIES
            if any(_mentions(text, piece) for piece in _setting_names(i.setting))
        ]
        remedy = Remedy(text, snippets)
        remedy.commands = [piece for piece, code in remedy.parts if code and COMMAND.match(piece)]
        result.append(remedy)
    return result


def _setting_names(setting: str) -> list[str]:
    """The configuration names in a knowledge-base setting text (those a remedy may cite)."""
    head = setting.split(" (")[0]
    pieces = [p.strip() for p in head.split(" / ")]
    return [
        p
        for p in pieces
        if p and not p.startswith(("none", "unconfirmed")) and re.search(r"[_.= ]", p)
    ]


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) is not None


def _clusters(verdict: Verdict) -> list[dict[str, str]]:
    rows = []
    for cluster in verdict.idle_clusters:
        how = ", ".join(f"{END_LABELS.get(k, k)}: {n}" for k, n in cluster.ended_by.items())
        clock = {"idle": "idle age", "age": "connection age", "moment": "one moment"}[cluster.clock]
        rows.append(
            {
                "path": cluster.path,
                "at": f"{cluster.idle_s:.1f} s",
                "range": f"{cluster.low_s:.2f}-{cluster.high_s:.2f} s",
                "connections": str(cluster.connections),
                "share": f"{cluster.share * 100:.0f} %",
                "how": how,
                "clock": clock,
            }
        )
    return rows


def _first_handshake(path: PathResult) -> str:
    stage = path.stage("handshake")
    if stage is None or not stage.connections:
        return MISSING
    return describe_handshake(stage.connections[0].handshake)


def _path_columns(observations: Observations, verdict: Verdict) -> list[dict[str, Any]]:
    columns = []
    for path in observations.paths:
        clusters = [c for c in verdict.idle_clusters if c.path == path.name]
        drops = ", ".join(
            f"{c.idle_s:.1f} s ({c.connections}, {', '.join(c.ended_by)})" for c in clusters
        )
        rtts = [describe_rtt(r) for s in path.stages for r in s.rtt]
        lag = [f"{s.name}: {describe_loop_lag(s.loop_lag)}" for s in path.stages if s.loop_lag]
        columns.append(
            {
                "name": path.name,
                "url": path.url,
                "proxy": path.proxy or MISSING,
                "handshake": _first_handshake(path),
                "rtt": rtts or [MISSING],
                "drops": drops or "none clustered",
                "recognised": [
                    f"{f.name} ({f.kind}; {f.header}: {f.value})" for f in path.fingerprints
                ]
                or [MISSING],
                "stages": [
                    f"{s.name} {format_seconds(s.duration_s)}, {len(s.connections)} conn."
                    + (" (interrupted)" if s.interrupted else "")
                    for s in path.stages
                ]
                or [MISSING],
                "steps": [t for s in path.stages if (t := describe_steps(s))],
                "notes": [f"{s.name}: {n}" for s in path.stages for n in s.notes],
                "lag": lag or [MISSING],
            }
        )
    return columns


# --- watch ---------------------------------------------------------------------------------


def watch_view(log: WatchLog) -> dict[str, Any]:
    """A watch summarised: drops per connection over time (a histogram when there are many)."""
    duration = max(log.duration_s, max((d.at_s for d in log.disconnects), default=0.0), 1.0)
    end = _axis_end(duration)

    def scale(t: float) -> float:
        return PLOT_X0 + min(max(t, 0.0), end) / end * PLOT_W

    kinds = Counter(d.ending.kind for d in log.disconnects)
    view: dict[str, Any] = {
        "duration": _duration(log.duration_s),
        "connections": log.connections,
        "up": _duration(log.up_s),
        "count": len(log.disconnects),
        "kinds": [(END_LABELS.get(k, k), k, n) for k, n in kinds.most_common()],
        "rtt": describe_rtt(log.rtt) if log.rtt else MISSING,
        "lag": describe_loop_lag(log.loop_lag),
        "ticks": _ticks(end, scale),
        "lanes": [],
        "bars": [],
        "height": 0,
        "table": [
            {
                "at": f"{d.at_s:.1f} s",
                "connection": d.connection,
                "ended": describe_ending(d.ending, d.failure),
                "kind": d.ending.kind,
                "age": f"{d.ending.age_s:.1f} s",
                "idle": f"{d.ending.idle_s:.1f} s",
                "back": format_seconds(d.reconnect_delay_s),
                "attempts": d.reconnect_attempts,
            }
            for d in log.disconnects[-WATCH_TABLE_ROWS:]
        ],
        "shown": min(len(log.disconnects), WATCH_TABLE_ROWS),
    }
    ids = sorted({d.connection for d in log.disconnects} | set(range(log.connections)))
    if len(log.disconnects) <= WATCH_DRAWN_DROPS and len(ids) <= WATCH_LANES:
        y = AXIS_H
        for conn in ids:
            drops = [d for d in log.disconnects if d.connection == conn]
            marks = []
            gaps = []
            for d in drops:
                back = d.at_s + (d.reconnect_delay_s or 0.0)
                gaps.append((_r(scale(d.at_s)), _r(scale(back))))
                title = (
                    f"connection {conn} at {d.at_s:.1f} s: {describe_ending(d.ending, d.failure)}"
                    f", age {d.ending.age_s:.1f} s, idle {d.ending.idle_s:.1f} s"
                )
                if d.reconnect_delay_s is not None:
                    title += f"; back after {d.reconnect_delay_s:.1f} s"
                marks.append(
                    {
                        "x": _r(scale(d.at_s)),
                        "kind": d.ending.kind,
                        "title": title,
                        "code": d.ending.code,
                    }
                )
            view["lanes"].append(
                {
                    "y": y,
                    "label": f"connection {conn}",
                    "x0": PLOT_X0,
                    "x1": _r(scale(log.duration_s)),
                    "marks": marks,
                    "gaps": gaps,
                }
            )
            y += ROW_H
        view["height"] = y + 4
        return view
    width = end / WATCH_BINS
    bins: list[Counter[str]] = [Counter() for _ in range(WATCH_BINS)]
    for d in log.disconnects:
        bins[min(WATCH_BINS - 1, int(d.at_s / width))][d.ending.kind] += 1
    tallest = max((sum(b.values()) for b in bins), default=1) or 1
    chart_h = 160
    for index, counter in enumerate(bins):
        base = float(AXIS_H + chart_h)
        for kind, n in counter.most_common():
            h = n / tallest * chart_h
            base -= h
            view["bars"].append(
                {
                    "x": _r(scale(index * width)),
                    "w": max(1.0, _r(PLOT_W / WATCH_BINS - 1)),
                    "y": _r(base),
                    "h": _r(h),
                    "kind": kind,
                    "title": f"{index * width:.0f}-{(index + 1) * width:.0f} s: {n} x "
                    f"{END_LABELS.get(kind, kind)}",
                }
            )
    view["height"] = AXIS_H + chart_h + 8
    view["tallest"] = tallest
    return view


# --- the page -------------------------------------------------------------------------------


def _section(
    anchor: str, name: str | None, report: dict[str, Any], check: dict[str, Any] | None
) -> Section:
    observations = observations_from_dict(report)
    diagnosis = diagnosis_from_dict(report)
    verdict = diagnosis.verdict
    views = (
        idle_timeline(observations, verdict),
        age_timeline(observations, verdict),
        run_timeline(observations),
    )
    timelines = [t for t in views if t is not None]
    rows = connection_rows(observations)
    return Section(
        anchor=anchor,
        name=name,
        observations=observations,
        diagnosis=diagnosis,
        verdict=verdict,
        figures=verdict_figures(verdict),
        confidence=format_confidence(verdict.confidence),
        remedies=_remedies(verdict.remedies),
        clusters=_clusters(verdict),
        timelines=timelines,
        rows=rows,
        paths=_path_columns(observations, verdict),
        watch=watch_view(observations.watch) if observations.watch else None,
        check=check,
        connections=len(rows),
    )


LEAF_OBJECT = re.compile(r"\{\n[^{}\[\]]*?\n *\}")
"""A JSON object with no object or list inside (an event, an ending) over several lines."""


def _json(data: Any) -> str:
    """Indented JSON with every leaf object on one line (events stay one per line)."""
    text = json.dumps(data, indent=1)
    return LEAF_OBJECT.sub(lambda m: "{" + " ".join(m.group(0)[1:-1].split()) + "}", text)


def _raw(report: dict[str, Any]) -> tuple[str, bool]:
    """The report as JSON for the page; trimmed (events, old disconnects) when very large."""
    text = _json(report)
    if len(text) <= RAW_LIMIT_BYTES:
        return text, False
    trimmed = json.loads(text)
    for target in trimmed.get("targets", [trimmed]):
        for path in target.get("paths") or []:
            for stage in path.get("stages") or []:
                for conn in stage.get("connections") or []:
                    conn["events"] = []
        watch = target.get("watch")
        if watch and watch.get("disconnects"):
            watch["disconnects"] = watch["disconnects"][-WATCH_TABLE_ROWS:]
    return _json(trimmed), True


def render_html(report: dict[str, Any]) -> str:
    """The page for a saved report: ``wsdoctor.report/1``, or ``wsdoctor.check/1``."""
    import jinja2
    import markupsafe

    if report.get("schema") == "wsdoctor.check/1":
        sections = [
            _section(f"target-{i + 1}", t.get("check", {}).get("target"), t, t.get("check"))
            for i, t in enumerate(report.get("targets") or [])
        ]
        title = f"wsdoctor check: {report.get('outcome', MISSING)}"
    else:
        sections = [_section("run", None, report, None)]
        verdict = sections[0].verdict
        url = sections[0].observations.paths[0].url if sections[0].observations.paths else ""
        title = f"wsdoctor: {STATUS_WORDS.get(verdict.status, verdict.status)} {url}".strip()
    raw, trimmed = _raw(report)
    # In a <pre> only <, > and & need escaping: quotes stay quotes (a third of the size).
    raw_text = markupsafe.Markup(html.escape(raw, quote=False))
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("wsdoctor.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        title=title,
        report=report,
        sections=sections,
        raw=raw_text,
        raw_trimmed=trimmed,
        tool=report.get("tool") or {},
        geometry={
            "width": WIDTH,
            "label_w": LABEL_W,
            "x0": PLOT_X0,
            "x1": PLOT_X1,
            "axis_h": AXIS_H,
            "row_h": ROW_H,
            "band_row_h": BAND_ROW_H,
        },
        end_labels=END_LABELS,
        end_shapes=END_SHAPES,
        event_labels=EVENT_LABELS,
        status_words=STATUS_WORDS,
        duration=_duration,
    )


def write_html(report: dict[str, Any], destination: str) -> None:
    """Render ``report`` and write the page to ``destination`` atomically."""
    text = render_html(report)
    directory, name = os.path.split(os.path.abspath(destination))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
