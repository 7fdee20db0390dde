"""The human-readable report: the verdict first, then findings, stage tables and timelines."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from wsdoctor.diagnosis import facts
from wsdoctor.diagnosis.model import Diagnosis, Finding, Verdict
from wsdoctor.observations import ConnectionRecord, Observations, PathResult
from wsdoctor.report.text import (
    MISSING,
    count_events,
    describe_ending,
    describe_handshake,
    describe_loop_lag,
    describe_plan,
    format_confidence,
    format_seconds,
    stage_results,
    summarise,
    verdict_figures,
)

STATUS_STYLES = {"healthy": "bold green", "problem": "bold red", "inconclusive": "bold yellow"}
SEVERITY_STYLES = {"info": "cyan", "warning": "yellow", "error": "red"}
FINDING_INDENT = 10


def render_terminal(
    observations: Observations, diagnosis: Diagnosis, console: Console, verbose: bool = False
) -> None:
    """Print the verdict, the findings, the paths side by side and a line per stage.

    ``verbose`` adds each path's stage table and every connection. On a terminal, tables fold
    to its width; piped, nothing is wrapped (a line is as long as its content).
    """
    console.print(verdict_panel(observations, diagnosis.verdict, plain=not console.is_terminal))
    console.print(findings_text(diagnosis.findings))
    if len(observations.paths) > 1:
        console.print(_side_by_side(observations.paths))
    if not observations.paths:
        return
    if not verbose:
        console.print()
        console.print(_stage_summary(observations.paths))
        return
    for path in observations.paths:
        console.print()
        console.print(heading(_path_title(path), console))
        if path.fingerprints:
            names = ", ".join(f"{f.name} ({f.header}: {f.value})" for f in path.fingerprints)
            console.print(Text(f"Recognised: {names}"))
        console.print(_stage_table(path))
        console.print(_timeline_table(path))


def heading(title: Text, console: Console) -> Rule | Text:
    """A section title: a rule across a terminal, the bare title when piped."""
    return Rule(title, align="left") if console.is_terminal else title


def _stage_summary(paths: list[PathResult]) -> Table:
    """One line per stage and path: how long it took and what it found."""
    table = Table(box=box.SIMPLE_HEAD, title=Text("Stages"), title_justify="left")
    several = len(paths) > 1
    if several:
        table.add_column("Path", overflow="fold")
    table.add_column("Stage", overflow="fold")
    table.add_column("Time", justify="right", overflow="fold")
    table.add_column("Found", overflow="fold")
    for path in paths:
        for stage in path.stages:
            name = stage.name + (" (interrupted)" if stage.interrupted else "")
            cells = [Text(name), Text(format_seconds(stage.duration_s)), Text(summarise(stage))]
            table.add_row(*([Text(path.name)] if several else []), *cells)
    return table


def _side_by_side(paths: list[PathResult]) -> Table:
    """The paths as columns, innermost first: where drops begin and how each ended."""
    table = Table(box=box.SIMPLE_HEAD, title=Text("Paths side by side"), title_justify="left")
    table.add_column("", overflow="fold")
    for path in paths:
        table.add_column(path.name, overflow="fold")
    rows = {
        "handshake": [_first_handshake(p) for p in paths],
        "RTT": [_first_rtt(p) for p in paths],
        "idle drop": [_idle_drop_text(p) for p in paths],
        "idle survived": [format_seconds(facts.idle_survived_s(p)) for p in paths],
        "recognised": [", ".join(f.name for f in p.fingerprints) or MISSING for p in paths],
    }
    for label, cells in rows.items():
        table.add_row(Text(label, style="bold"), *(Text(cell) for cell in cells))
    return table


def _first_handshake(path: PathResult) -> str:
    stage = path.stage("handshake")
    if stage is None or not stage.connections:
        return MISSING
    return describe_handshake(stage.connections[0].handshake)


def _first_rtt(path: PathResult) -> str:
    stage = path.stage("echo")
    stats = [r for r in stage.rtt if r.kind == "protocol"] if stage else []
    return f"p50 {stats[0].p50_ms:.1f} / p99 {stats[0].p99_ms:.1f} ms" if stats else MISSING


def _idle_drop_text(path: PathResult) -> str:
    drop = facts.idle_drop(path)
    if drop is None:
        return "none seen"
    how = {"eof": "FIN", "reset": "RST", "close_frame": "close frame", "silent": "silence"}
    return f"{format_seconds(drop.idle_s)} by {how.get(drop.how, drop.how)}"


def verdict_panel(
    observations: Observations,
    verdict: Verdict,
    title: str = "Verdict",
    subtitle: str | None = None,
    plain: bool = False,
) -> Panel:
    """The verdict: status, culprit, hop, figures, confidence, summary and remedies.

    ``plain`` (piped output): the panel is as wide as its longest line, so none is wrapped.
    """
    style = STATUS_STYLES[verdict.status]
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("Status", Text(verdict.status.upper(), style=style))
    facts.add_row("Culprit", Text(verdict.culprit))
    facts.add_row("Hop", Text(verdict.hop or MISSING))
    for label, value in verdict_figures(verdict):
        facts.add_row(label, Text(value))
    facts.add_row("Confidence", Text(format_confidence(verdict.confidence)))
    parts: list[Table | Text | Padding] = [facts, Text(), Text(verdict.summary)]
    if verdict.remedies:
        parts.append(Text("\nRemedies:", style="bold"))
        parts.extend(_hanging(f"- {remedy}", 2) for remedy in verdict.remedies)
    if subtitle is None:
        subtitle = (
            f"started {observations.started_at}, took {format_seconds(observations.duration_s)}"
        )
        if observations.interrupted:
            subtitle += ", interrupted: partial results"
    if plain:  # a box as wide as its content would cut a longer subtitle: make it a line
        parts.extend([Text(), Text(subtitle)])
    return Panel(
        Group(*parts),
        title=Text(title, style="bold"),
        title_align="left",
        subtitle=None if plain else Text(subtitle),
        subtitle_align="right",
        border_style=style,
        expand=not plain,
    )


def findings_text(findings: list[Finding]) -> Group:
    """Every finding: severity, title, code, evidence lines and remedy (wrapped lines keep
    their indent)."""
    heading = Text("\nFindings", style="bold")
    if not findings:
        heading.append(": none")
    parts: list[Text | Padding] = [heading]
    for finding in findings:
        title = Text(f"{finding.severity.upper():<8}", style=SEVERITY_STYLES[finding.severity])
        title.append(f"{finding.title} ", style="bold")
        title.append(f"[{finding.code}]", style="dim")
        parts.append(title)
        parts.extend(_hanging(f"- {line}", FINDING_INDENT) for line in finding.evidence)
        if finding.remedy:
            parts.append(_hanging(f"Remedy: {finding.remedy}", FINDING_INDENT))
    return Group(*parts)


def _hanging(text: str, indent: int) -> Padding:
    """``text`` indented by ``indent`` columns, its wrapped lines too."""
    return Padding(Text(text), (0, 0, 0, indent), expand=False)


def _path_title(path: PathResult) -> Text:
    title = f"Path {path.name}: {path.url}"
    if path.proxy:
        title += f" via {path.proxy}"
    return Text(title, style="bold")


def _stage_table(path: PathResult) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=Text(f"Stages on {path.name}"), title_justify="left")
    # Short columns keep their lines while the results wrap; on a very narrow terminal they
    # fold too (no_wrap with overflow="fold"): a column is never cut.
    table.add_column("Stage", no_wrap=True, overflow="fold")
    table.add_column("Duration", justify="right", no_wrap=True, overflow="fold")
    table.add_column("Conns", justify="right", no_wrap=True, overflow="fold")
    table.add_column("Results", overflow="fold")
    table.add_column("Loop lag", overflow="fold")
    for stage in path.stages:
        name = stage.name + (" (interrupted)" if stage.interrupted else "")
        table.add_row(
            Text(name),
            Text(format_seconds(stage.duration_s)),
            Text(str(len(stage.connections)) if stage.connections else MISSING),
            Text("\n".join(stage_results(stage))),
            Text(describe_loop_lag(stage.loop_lag)),
        )
    return table


def _pings(conn: ConnectionRecord) -> str:
    """Pings sent / pongs received; then the server's own pings, when it sent any."""
    text = f"{count_events(conn, 'ping_sent')}/{count_events(conn, 'pong_received')}"
    if conn.server_pings:
        text += f"\nserver {conn.server_pings}"
        if conn.server_ping_interval_s is not None:
            text += f"\nevery {format_seconds(conn.server_ping_interval_s)}"
    return text


def _timeline_table(path: PathResult) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=Text(f"Connections on {path.name}"),
        title_justify="left",
    )
    table.add_column("Connection", no_wrap=True, overflow="fold")
    table.add_column("Role, plan", overflow="fold")
    table.add_column("Opened", justify="right", no_wrap=True, overflow="fold")
    table.add_column("Ended", overflow="fold")
    table.add_column("Age/idle", justify="right", no_wrap=True, overflow="fold")
    table.add_column("Pings", justify="right", no_wrap=True, overflow="fold")
    for stage in path.stages:
        for conn in stage.connections:
            plan = describe_plan(conn)
            table.add_row(
                Text(conn.id),
                Text(conn.role if plan == MISSING else f"{conn.role}, {plan}"),
                Text(format_seconds(conn.opened_at)),
                Text(describe_ending(conn.ending, conn.handshake.failure)),
                Text(f"{conn.ending.age_s:.1f}/{format_seconds(conn.ending.idle_s)}"),
                Text(_pings(conn)),
            )
    return table
