"""`wsdoctor report`: render a saved JSON report again (an HTML page, or the terminal report).

A report from CI (``--json``) can be turned into the same page ``--html`` writes during a run.
Nothing is probed or judged again: the page shows the findings and verdict the report holds.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from wsdoctor.commands.common import NoColor, Verbose, check_output_path, fail, use_color

SCHEMAS = ("wsdoctor.report/1", "wsdoctor.check/1")


def report(
    path: Annotated[
        str,
        typer.Argument(
            metavar="REPORT",
            help="A saved JSON report (wsdoctor.report/1 or wsdoctor.check/1), '-' for stdin.",
        ),
    ],
    html: Annotated[
        str | None,
        typer.Option("--html", metavar="PATH", help="Write the self-contained HTML page to PATH."),
    ] = None,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Render a saved JSON report: an HTML page with --html, else the terminal report.

    \b
    Examples:
      wsdoctor probe wss://example.com/ws --json run.json; wsdoctor report run.json -v
      wsdoctor report run.json --html run.html
    """
    check_output_path("--html", html)
    saved = _load(path)
    if html is not None:
        from wsdoctor.report.html import write_html

        try:
            write_html(saved, html)
        except OSError as exc:
            fail(f"cannot write --html {html!r}: {exc.strerror or exc}")
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            fail(f"{path}: not a report this version can read ({type(exc).__name__}: {exc})")
        return
    _print(saved, use_color(no_color), verbose)


def _load(path: str) -> dict[str, Any]:
    """The saved report at ``path`` (or on stdin), or a one-line usage error."""
    import json
    import sys

    try:
        if path == "-":
            data = json.load(sys.stdin)
        else:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
    except OSError as exc:
        fail(f"cannot read {path!r}: {exc.strerror or exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{path}: not JSON ({exc})")
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema not in SCHEMAS:
        fail(f"{path}: not a wsdoctor report (schema {schema!r}, expected one of {SCHEMAS})")
    return data


def _print(saved: dict[str, Any], color: bool, verbose: bool) -> None:
    """The terminal report of every run in the saved report."""
    from rich.text import Text

    from wsdoctor.execute import Outputs, make_console
    from wsdoctor.observations import observations_from_dict
    from wsdoctor.report.html import diagnosis_from_dict
    from wsdoctor.report.terminal import heading, render_terminal

    console = make_console(Outputs(color=color), stderr=False)
    runs = saved.get("targets") or [] if saved["schema"] == "wsdoctor.check/1" else [saved]
    try:
        for run in runs:
            if "check" in run:
                title = Text(f"Target {run['check'].get('target')}", style="bold")
                console.print(heading(title, console))
            observations = observations_from_dict(run)
            render_terminal(observations, diagnosis_from_dict(run), console, verbose)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        fail(f"not a report this version can read ({type(exc).__name__}: {exc})")
