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
    help="Find out why WebSocket connections drop, and prove it.",
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
    """Find out why WebSocket connections drop, and prove it."""


# Commands, in the order `--help` lists them.
app.command()(probe)
app.command()(compare)
app.command()(serve)
app.command()(demo)
app.command()(check)
app.command()(watch)
app.command()(capacity)
app.command(name="capacity-worker")(capacity_worker)
app.command()(host)
app.command()(report)
app.command()(lint)


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
