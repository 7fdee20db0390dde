"""Whole-process time of wsdoctor's quick commands, next to anchors measured in the same run.

Run: python benchmarks/startup.py [--runs N] [--wscat PATH]

Anchors: bare Python (``python -c pass``); ``wscat --version`` and a wscat handshake
(``wscat -c URL -x MESSAGE -w 0``: connect, send one message, close) when Node's wscat is
found (``--wscat``, ``$WSCAT``, on PATH, or under ``node_modules/.bin`` here or in
/tmp/node-anchor). Figures: ``wsdoctor --version``, ``--help``, ``probe --help`` and a
handshake-only probe (``probe URL --stages handshake``) against a ``wsdoctor serve`` this
script starts on a free loopback port. Each line gives the median wall time, its ratio to bare
Python and to the wscat anchor, and the peak memory of the process.

Goals (issue 15): ``--version`` close to bare Python; a handshake-only probe well under half a
second; ``--version`` about as fast as ``wscat --version`` (0.07 s on the machine it was
written on).

wsdoctor runs as ``python -m wsdoctor`` from whatever ``wsdoctor`` package this interpreter
imports (PYTHONPATH selects another tree: that is how a before/after pair is measured).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

RUNS = 15
PYTHON = sys.executable
WSDOCTOR = [PYTHON, "-m", "wsdoctor"]


def find_wscat(given: str | None) -> str | None:
    """Node's wscat, if it can be found."""
    candidates = [given, os.environ.get("WSCAT"), shutil.which("wscat")]
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent, Path("/tmp/node-anchor")):
        candidates.append(str(root / "node_modules" / ".bin" / "wscat"))
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one run of ``command`` (which must succeed)."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    error = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}: {error[-500:]}")
    return seconds, usage.ru_maxrss / 1024


def measure(command: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and the largest peak MiB over ``runs`` runs (after one warm-up)."""
    run_once(command)
    samples = [run_once(command) for _ in range(runs)]
    return statistics.median(s for s, _ in samples), max(m for _, m in samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def reference_server() -> Iterator[str]:
    """``wsdoctor serve`` on a free loopback port; yields its ws:// URL."""
    port = free_port()
    server = subprocess.Popen(
        [*WSDOCTOR, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise SystemExit("wsdoctor serve did not start")
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--wscat", help="path of Node's wscat (an anchor)")
    args = parser.parse_args()
    wscat = find_wscat(args.wscat)

    with reference_server() as url:
        commands: dict[str, list[str]] = {"python -c pass": [PYTHON, "-c", "pass"]}
        if wscat:
            commands["wscat --version"] = [wscat, "--version"]
            commands["wscat handshake"] = [wscat, "-c", url, "-x", '{"type":"hi"}', "-w", "0"]
        commands |= {
            "wsdoctor --version": [*WSDOCTOR, "--version"],
            "wsdoctor --help": [*WSDOCTOR, "--help"],
            "wsdoctor probe --help": [*WSDOCTOR, "probe", "--help"],
            "probe --stages handshake": [*WSDOCTOR, "probe", url, "--stages", "handshake"],
        }
        results = {name: measure(command, args.runs) for name, command in commands.items()}

    python_s = results["python -c pass"][0]
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median wall time")
    if not wscat:
        print("wscat not found (npm install wscat; or --wscat PATH): no Node anchor")
    anchor = "wscat" if wscat else None
    header = f"{'command':26} {'ms':>8} {'x python':>9}"
    header += f" {'x wscat':>8}" if anchor else ""
    print(header + f" {'peak MiB':>9}")
    for name, (seconds, peak) in results.items():
        line = f"{name:26} {seconds * 1000:8.1f} {seconds / python_s:9.2f}"
        if anchor:
            # Each wsdoctor figure against the wscat command that does the same job.
            reference = "wscat handshake" if "handshake" in name else "wscat --version"
            line += f" {seconds / results[reference][0]:8.2f}"
        print(line + f" {peak:9.1f}")


if __name__ == "__main__":
    main()
