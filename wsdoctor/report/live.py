"""The live progress display shown while probes run (a rich renderable of RunStatus)."""

from __future__ import annotations

from rich.table import Table

from wsdoctor.status import RunStatus


def progress_table(status: RunStatus) -> Table:
    """One row per path: its stage, connections open and drops seen so far."""
    table = Table(
        title=f"wsdoctor probing - {status.elapsed():.1f} s elapsed", title_justify="left"
    )
    table.add_column("path")
    table.add_column("stage")
    table.add_column("open", justify="right")
    table.add_column("drops seen", justify="right")
    for name, path in status.paths.items():
        table.add_row(name, path.stage, str(path.open_connections), str(path.drops))
    return table


def progress_line(status: RunStatus) -> str:
    """The same progress as one plain line, for logs."""
    parts = [
        f"{name}: {p.stage}, {p.open_connections} open, {p.drops} drops"
        for name, p in status.paths.items()
    ]
    return f"[{status.elapsed():6.1f} s] " + "; ".join(parts)
