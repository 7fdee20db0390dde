"""`wsdoctor capacity-worker`: a Locust worker for `wsdoctor capacity --engine locust`."""

from __future__ import annotations

from typing import Annotated

import typer

from wsdoctor.commands.common import fail

WORKER_MODULE = "wsdoctor.loadgen.worker"


def capacity_worker(
    master: Annotated[
        str,
        typer.Option(
            "--master",
            metavar="HOST:PORT",
            help="The master: what `wsdoctor capacity --engine locust --master-bind` listens on.",
        ),
    ],
) -> None:
    """Open connections for a `wsdoctor capacity --engine locust` run on another machine.

    A thin wrapper over `locust --worker` with wsdoctor's user: it runs until the master's
    ramp ends. Needs wsdoctor[locust], the same wsdoctor version as the master.

    \b
    Examples:
      wsdoctor capacity-worker --master 10.0.0.1:5557
      (on the master: wsdoctor capacity URL --engine locust --master-bind 0.0.0.0:5557
       --expect-workers 10 --yes-i-own-this-server)
    """
    import importlib.util
    import os
    import sys

    host, port = host_port(master, "--master")
    if importlib.util.find_spec("locust") is None:
        fail("capacity-worker needs Locust: pip install 'wsdoctor[locust]'")
    sys.stdout.flush()
    sys.stderr.flush()
    # A fresh interpreter: gevent must patch the standard library before anything imports it.
    os.execv(sys.executable, [sys.executable, "-m", WORKER_MODULE, f"{host}:{port}"])


def host_port(value: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a pair; a one-line usage error otherwise."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        fail(f"{option} must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)
