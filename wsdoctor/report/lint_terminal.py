"""``wsdoctor lint`` for people: findings grouped by file with the offending line shown.

Then what each WebSocket scope's settings predict (idle timeout, lifetime cap), and, with
``--report``, the measured figure joined to the setting behind it.
"""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.text import Text

from wsdoctor.diagnosis.lint_rules import LintFinding, LintResult, fmt_s

SEVERITY_STYLES = {"info": "cyan", "warning": "yellow", "error": "bold red"}
ORDER = {"error": 0, "warning": 1, "info": 2}


def _source_line(file: str, line: int, cache: dict[str, list[str]]) -> str | None:
    if file not in cache:
        try:
            with open(file, encoding="utf-8", errors="replace") as handle:
                cache[file] = handle.read().splitlines()
        except OSError:
            cache[file] = []
    lines = cache[file]
    return lines[line - 1].strip() if 0 < line <= len(lines) else None


def _finding(console: Console, finding: LintFinding, cache: dict[str, list[str]]) -> None:
    if finding.file and finding.line:
        source = _source_line(finding.file, finding.line, cache)
        head = Text(f"  {finding.line:>4} | ", style="dim")
        head.append(source if source is not None else "", style="bold")
        console.print(head)
    title = Text("       ")
    title.append(finding.severity, style=SEVERITY_STYLES[finding.severity])
    title.append(f" {finding.code}: {finding.title}")
    console.print(title)
    console.print(Text(f"         {finding.message}"))
    if finding.scope:
        console.print(Text(f"         in: {finding.scope}", style="dim"))
    if finding.remedy:
        console.print(Text("         fix:", style="green"))
        for line in finding.remedy.splitlines():
            console.print(Text(f"           {line}", style="green"))


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'s' * (number != 1)}"


def render_lint_terminal(
    result: LintResult, console: Console, verbose: bool = False, quiet: bool = False
) -> None:
    """Print the findings by file, the predictions per scope, and any measurement join
    (``quiet``: the summary line only)."""
    files = [path for config in result.configs for path in config.files]
    products = ", ".join(dict.fromkeys(c.product for c in result.configs))
    counts = {s: sum(f.severity == s for f in result.findings) for s in ORDER}
    judged = [p for p in result.predictions if p.scope.websocket != "no"]
    head = Text("wsdoctor lint: ", style="bold")
    head.append(
        f"{len(files)} file{'s' * (len(files) != 1)} ({products}), "
        f"{len(judged)} WebSocket scope{'s' * (len(judged) != 1)}; "
    )
    error_style = SEVERITY_STYLES["error"] if counts["error"] else ""
    head.append(_count(counts["error"], "error"), style=error_style)
    head.append(f", {_count(counts['warning'], 'warning')}, {counts['info']} info")
    console.print(head)
    if quiet:
        return
    if not result.predictions:
        console.print(
            Text(
                "Nothing in these files proxies to a backend (an nginx location with "
                "proxy_pass, an HAProxy backend, an Apache ProxyPass, a Caddy reverse_proxy, "
                "an Ingress): nothing to judge.",
                style="dim",
            )
        )
    shown = result.findings if verbose else [f for f in result.findings if f.severity != "info"]
    hidden = len(result.findings) - len(shown)
    by_file: dict[str | None, list[LintFinding]] = defaultdict(list)
    for finding in shown:
        by_file[finding.file].append(finding)
    cache: dict[str, list[str]] = {}
    for file in sorted(by_file, key=lambda f: (f is None, f or "")):
        console.print()
        console.print(Text(file or "(not in a file)", style="bold underline"))
        for finding in sorted(by_file[file], key=lambda f: (f.line or 0, ORDER[f.severity])):
            _finding(console, finding, cache)
    if hidden:
        console.print()
        console.print(Text(f"{hidden} info notes not shown (-v shows them)", style="dim"))
    if judged:
        console.print()
        console.print(Text("What the settings do to an idle WebSocket", style="bold"))
        for prediction in judged:
            line = Text(f"  {prediction.scope.name}: ")
            if prediction.idle_timeout_s is not None and prediction.idle_setting is not None:
                setting = prediction.idle_setting
                line.append(f"idle timeout {fmt_s(prediction.idle_timeout_s)}", style="bold")
                if setting.origin == "default":
                    line.append(f" ({setting.name} not set: default {setting.value})")
                else:
                    line.append(f" ({setting.shown()}, {setting.where})")
            else:
                line.append("no idle timeout here")
            if prediction.lifetime_cap_s is not None and prediction.lifetime_setting:
                line.append(f"; lifetime cap {fmt_s(prediction.lifetime_cap_s)}", style="bold")
                line.append(f" ({prediction.lifetime_setting.where})")
            console.print(line)
    if result.measurement is not None:
        console.print()
        console.print(Text(f"Measured ({result.measurement.source})", style="bold"))
        if not result.joins:
            console.print(Text("  the report has no measured idle timeout or lifetime cap"))
        for join in result.joins:
            what = "idle timeout" if join.kind == "idle_timeout" else "lifetime cap"
            line = Text(f"  {what} {join.measured_s:.1f} s ")
            if join.matches:
                places = []
                for prediction in join.matches:
                    chosen = prediction.idle_setting
                    if join.kind == "lifetime_cap":
                        chosen = prediction.lifetime_setting
                    if chosen is not None:
                        places.append(f"{chosen.shown()} at {chosen.where}")
                line.append("= " + "; ".join(dict.fromkeys(places)), style="bold green")
            else:
                line.append("= nothing in these files: the drop is elsewhere", style="bold yellow")
                if join.candidates:
                    line.append(f" (known defaults near it: {', '.join(join.candidates)})")
            console.print(line)
