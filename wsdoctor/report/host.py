"""The host limits table of `wsdoctor host`: each limit read, its value and its source."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wsdoctor.observations import HostFacts, HostLimit
from wsdoctor.report.text import MISSING

SYSCTL_DIR = "/proc/sys/"


def host_table(host: HostFacts) -> Table:
    """One row per limit: name, value (or why it is missing) and the file it was read from."""
    title = "Host limits"
    if host.pid is not None:
        title += f" (server process {host.pid})"
    if host.target_connections is not None:
        title += f", target {host.target_connections} connections"
    table = Table(
        box=box.SIMPLE_HEAD,
        title=Text(title),
        title_justify="left",
        caption=Text(f"sysctl: read from {SYSCTL_DIR}NAME, dots as slashes"),
        caption_justify="left",
    )
    table.add_column("Limit", overflow="fold")
    table.add_column("Value", justify="right", overflow="fold")
    table.add_column("Read from", overflow="fold")
    for limit in host.limits:
        value = Text(MISSING if limit.value is None else str(limit.value))
        if limit.error:
            value = Text(limit.error, style="yellow")
        table.add_row(Text(limit.name), value, Text(_source(limit), style="dim"))
    return table


def _source(limit: HostLimit) -> str:
    """Where a limit was read: ``sysctl`` for its own /proc/sys file, else the file's path."""
    own_file = SYSCTL_DIR + limit.name.replace(".", "/")
    return "sysctl" if limit.source.endswith(own_file) else limit.source


def render_host(host: HostFacts | None, console: Console) -> None:
    """Print the host limits table, when host limits were gathered."""
    if host is not None:
        console.print()
        console.print(host_table(host))
