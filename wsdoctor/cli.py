"""The command line: options become a plan, the verdict becomes an exit code.

Heavy libraries (websockets, httpx, most of rich) are imported inside the commands that use
them, so that ``wsdoctor --version`` and ``--help`` start instantly. Each command lives in
``wsdoctor/commands/``; this module only registers them.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from wsdoctor import __version__
from wsdoctor.commands.capacity import capacity
from wsdoctor.commands.capacity_worker import capacity_worker
from wsdoctor.commands.check import check
from wsdoctor.commands.demo import demo
from wsdoctor.commands.host import host
from wsdoctor.commands.lint import lint
from wsdoctor.commands.probe import compare, probe
from wsdoctor.commands.report import report
from wsdoctor.commands.serve import serve
from wsdoctor.commands.watch import watch

app = typer.Typer(
    name="wsdoctor",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wsdoctor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Find out why WebSocket connections drop, and prove it.

    Exit codes: 0 healthy, 1 a problem was found, 2 bad input, 3 inconclusive. Every
    command takes -h for its options and examples.

    \b
    Start here:
      wsdoctor demo                                 a built-in lab, no server of yours
      wsdoctor probe wss://example.com/socket       why do its connections drop?
      wsdoctor probe URL --stages handshake,echo    a one-second connectivity check
    """


# Commands, in the order `--help` lists them, each with its line in that list.
COMMANDS = (
    (probe, "probe", "Probe one endpoint in stages; name why connections drop."),
    (compare, "compare", "Probe one service over several paths; name the hop at fault."),
    (serve, "serve", "Run the reference WebSocket endpoint."),
    (demo, "demo", "Diagnose a built-in lab (needs no server of yours)."),
    (check, "check", "Check endpoints against expectations, for CI."),
    (watch, "watch", "Keep connections open; record and classify every drop."),
    (capacity, "capacity", "Ramp up connections; find where the server fails."),
    (capacity_worker, "capacity-worker", "A worker for capacity --engine locust elsewhere."),
    (host, "host", "Read this machine's connection limits."),
    (report, "report", "Render a saved JSON report again (terminal or HTML)."),
    (lint, "lint", "Find the proxy configuration lines that drop WebSockets."),
)
for function, name, short_help in COMMANDS:
    app.command(name=name, short_help=short_help)(function)


def main() -> None:
    """Entry point of the ``wsdoctor`` command: usage errors are one line and exit 2."""
    from typer.exceptions import TyperException

    from wsdoctor.exitcodes import EXIT_SIGINT
    from wsdoctor.runguard import guard_process_exit

    guard_process_exit()
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help())
            sys.exit(0)
        typer.echo(f"wsdoctor: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(EXIT_SIGINT)
    sys.exit(code if isinstance(code, int) else 0)
