"""Uneven timers, many runs in a row: the verdict and its figure must agree every time.

Runs ``tests/test_fleets.py`` (real nginx fleets behind HAProxy, nginx workers, Dante) with
``--runs`` runs of every scenario instead of the test suite's 2 or 3, and prints one line per
run: culprit, hop, figure, clusters' drop ages and time to verdict.

Run: python benchmarks/fleets.py [--runs 5]   (loopback only; about 5 minutes for 5 runs)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run the fleet scenarios ``--runs`` times each and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of every scenario")
    args = parser.parse_args()
    env = {**os.environ, "WSDOCTOR_FLEET_REPEATS": str(max(1, args.runs))}
    command = [sys.executable, "-m", "pytest", "-q", "-s", "tests/test_fleets.py"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("[real-proxy]") or "passed" in line or "failed" in line:
            print(line)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
