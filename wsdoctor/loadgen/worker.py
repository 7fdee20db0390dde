"""A Locust worker for ``wsdoctor capacity --engine locust``, run as its own process.

``python -m wsdoctor.loadgen.worker HOST:PORT`` (what ``wsdoctor capacity-worker --master
HOST:PORT`` runs) is ``locust --worker`` with wsdoctor's user and its side of the ramp: it
raises its descriptor limit, connects to the master within a bounded time (else one line and
exit 2), and runs until the master says quit (or goes silent: Locust's own heartbeat timeout).
"""

from __future__ import annotations

import logging
import sys

import gevent
from locust.env import Environment

from wsdoctor.exitcodes import EXIT_USAGE
from wsdoctor.loadgen import locust_user as lu
from wsdoctor.probes.capacity import raise_fd_limit

CONNECT_TIMEOUT_S = 60.0


def main() -> None:
    """Connect to the master in ``sys.argv[1]`` (HOST:PORT) and work until told to quit."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    host, _, port = sys.argv[1].rpartition(":")
    raise_fd_limit()
    env = Environment(user_classes=[lu.WsDoctorUser])
    try:
        with gevent.Timeout(CONNECT_TIMEOUT_S):
            runner = env.create_worker_runner(host.strip("[]"), int(port))
    except (gevent.Timeout, ConnectionError) as exc:
        what = "no answer" if isinstance(exc, gevent.Timeout) else str(exc)
        print(f"wsdoctor: error: cannot reach the master at {sys.argv[1]}: {what}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    reporter = gevent.spawn(lu.serve_worker, env)
    runner.greenlet.join()
    reporter.kill()


if __name__ == "__main__":
    main()
