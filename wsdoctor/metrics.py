"""Prometheus metrics of a watch, with the official client library.

One registry per watch (never the process-wide default), fed by the watch's events, exposed
over HTTP for scraping and/or written atomically to a file for the node exporter's textfile
collector. Import this module only where metrics are asked for: prometheus_client is not
needed to start the command line.

Every series carries a ``target`` label, the watched URL redacted (no password, no token-like
query value), so that one Prometheus can scrape several watches and tell them apart.

A drop's cause can change after the fact: the first drop of a pattern looks like
``network_instability`` until a second one shows the pattern (``proxy_idle_timeout``, a
``lifetime_cap``, a ``restart``), and then the watch relabels it (a ``relabel`` event). A
counter must never go down, so drops are counted by how they ended
(``wsdoctor_watch_disconnects_total{ending}``, final when they happen), and by cause in a gauge
that follows the relabelling (``wsdoctor_watch_disconnects_by_cause{cause}``): at any moment
it holds what the events log says and the summary will say.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, write_to_textfile
from prometheus_client.exposition import make_wsgi_app

from wsdoctor.redact import redact_url

RTT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Scrapes are not worth a line on stderr each."""


@dataclass
class MetricsServer:
    """An HTTP endpoint serving one registry at any path (``/metrics`` by convention)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        """The port bound (useful when asked for port 0)."""
        return self.server.server_port

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class WatchMetrics:
    """The metrics of one watch: connection state, RTT, drops by cause, reconnect attempts."""

    def __init__(self, connections: int, target: str) -> None:
        self.target = redact_url(target)
        self.registry = CollectorRegistry()
        self.up = Gauge(
            "wsdoctor_watch_connection_up",
            "1 while the watched connection is open, else 0.",
            ["target", "connection"],
            registry=self.registry,
        )
        self.rtt = Histogram(
            "wsdoctor_watch_rtt_seconds",
            "Round-trip time of heartbeat pings.",
            ["target"],
            buckets=RTT_BUCKETS_S,
            registry=self.registry,
        )
        self.last_rtt = Gauge(
            "wsdoctor_watch_last_rtt_seconds",
            "Round-trip time of the latest heartbeat ping.",
            ["target", "connection"],
            registry=self.registry,
        )
        self.disconnects = Counter(
            "wsdoctor_watch_disconnects",
            "Drops of watched connections, by how they ended.",
            ["target", "ending"],
            registry=self.registry,
        )
        self.by_cause = Gauge(
            "wsdoctor_watch_disconnects_by_cause",
            "Drops (and outages before a first connection) by the cause diagnosed so far; "
            "a drop moves to another cause when later drops reveal its pattern.",
            ["target", "cause"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "wsdoctor_watch_reconnect_attempts",
            "Reconnect attempts scheduled after a drop or a failed handshake.",
            ["target"],
            registry=self.registry,
        )
        self.failures = Counter(
            "wsdoctor_watch_handshake_failures",
            "Opening handshakes that failed, by reason.",
            ["target", "reason"],
            registry=self.registry,
        )
        for index in range(connections):
            self.up.labels(self.target, str(index)).set(0)
        self.attempts.labels(self.target)

    def observe(self, event: dict[str, Any]) -> None:
        """Update the metrics from one watch event (as written to the events log)."""
        kind = event.get("event")
        target = self.target
        connection = str(event.get("connection", ""))
        if kind == "connect":
            self.up.labels(target, connection).set(1)
        elif kind == "rtt":
            seconds = float(event["rtt_ms"]) / 1000
            self.rtt.labels(target).observe(seconds)
            self.last_rtt.labels(target, connection).set(seconds)
        elif kind == "disconnect":
            self.up.labels(target, connection).set(0)
            ending = event.get("ending") or {}
            self.disconnects.labels(target, ending.get("kind", "")).inc()
            self.by_cause.labels(target, event.get("cause", "unknown")).inc()
        elif kind == "reconnect_attempt":
            self.attempts.labels(target).inc()
        elif kind == "handshake_failed":
            failure = event.get("failure") or {}
            self.failures.labels(target, failure.get("reason", "other")).inc()
            if "index" in event:  # the watch starts with an outage: one more entry to label
                self.by_cause.labels(target, event.get("cause", "unknown")).inc()
        elif kind == "relabel":
            self.by_cause.labels(target, event["was"]).dec()
            self.by_cause.labels(target, event["cause"]).inc()

    def stopped(self) -> None:
        """The watch ended: no connection is up any more."""
        for sample in list(self.up.collect())[0].samples:
            self.up.labels(self.target, sample.labels["connection"]).set(0)

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve the metrics over HTTP on ``host:port`` from a daemon thread."""
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server_class = type("MetricsWSGIServer", (WSGIServer,), {"address_family": family})
        server: WSGIServer = make_server(
            host, port, make_wsgi_app(self.registry), server_class, handler_class=_QuietHandler
        )
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        return MetricsServer(server, thread)

    def write_textfile(self, path: str) -> None:
        """Write the metrics to ``path`` atomically (a temporary file, then a rename)."""
        write_to_textfile(path, self.registry)
