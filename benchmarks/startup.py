"""Whole-process start-up time of `wsdoctor --version` and `--help`, next to bare Python.

Run: python benchmarks/startup.py
Goal: about as fast as a Node CLI such as wscat (about 0.07 s on this machine).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 15
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "wsdoctor --version": [sys.executable, "-m", "wsdoctor", "--version"],
    "wsdoctor --help": [sys.executable, "-m", "wsdoctor", "--help"],
}


def median_seconds(command: list[str]) -> float:
    """Median wall time of ``RUNS`` runs of ``command``."""
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    """Print the median time of each command and its overhead over bare Python."""
    baseline = None
    for name, command in COMMANDS.items():
        seconds = median_seconds(command)
        baseline = seconds if baseline is None else baseline
        print(f"{name:20} {seconds * 1000:7.1f} ms  (+{(seconds - baseline) * 1000:5.1f} ms)")


if __name__ == "__main__":
    main()
