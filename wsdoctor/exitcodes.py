"""The exit codes of the command line contract, in one place.

0 healthy, 1 a problem diagnosed, 2 a usage error or bad input, 3 inconclusive or an internal
error, 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (the partial report is still written).
"""

from __future__ import annotations

import signal

EXIT_HEALTHY = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

_BY_STATUS = {"healthy": EXIT_HEALTHY, "problem": EXIT_PROBLEM, "inconclusive": EXIT_INCONCLUSIVE}
_BY_OUTCOME = {"pass": EXIT_HEALTHY, "fail": EXIT_PROBLEM, "inconclusive": EXIT_INCONCLUSIVE}


def exit_code(status: str, stopped_by: int | None = None) -> int:
    """The code for a verdict status (``healthy``...) or a check outcome (``pass``...).

    A signal that stopped the run wins: 143 for SIGTERM, 130 for any other.
    """
    if stopped_by == signal.SIGTERM:
        return EXIT_SIGTERM
    if stopped_by is not None:
        return EXIT_SIGINT
    return _BY_STATUS.get(status, _BY_OUTCOME.get(status, EXIT_INCONCLUSIVE))
