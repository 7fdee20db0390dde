"""The ``wsdoctor`` executable: ``--version`` at once, everything else through the CLI.

``wsdoctor --version`` is answered before the CLI framework and the commands are imported, so
it costs little more than starting Python.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``wsdoctor`` command."""
    if sys.argv[1:] == ["--version"]:
        from wsdoctor import __version__

        print(f"wsdoctor {__version__}")
        return
    from wsdoctor.cli import main as cli_main

    cli_main()
