"""Every finding wsdoctor can report, as data: title, severity, remedy, the culprit it supports.

Rules compute evidence and figures and call ``finding(key, evidence, **values)``; the texts
live here, the way a Lighthouse audit keeps its ``meta`` apart from ``audit()``. Titles and
remedies are ``str.format`` templates: a ``{name}`` is a figure (or a phrase) the rule passes.

A key is the report's finding ``code`` (``wsdoctor.report/1``: stable, never renamed), or the
code, a dot and a variant when one code is reported with more than one text (for example
``handshake_rejected.redirect``): ``code_of`` gives the code either way. ``culprit`` is the
verdict culprit a judgement carrying the finding proposes, ``None`` for informational
findings. ``summary`` and ``advice`` are the verdict's sentence and remedies, kept here where a
rule proposes its verdict from the entry alone (the handshake rules).

Entries listed in ``REAL_NETWORK_ONLY`` are produced only from facts that hand-written
observation sets do not cover, and those in ``PIPELINE`` by the run pipeline about the run
itself; tests check that a hand-written observation set produces every other entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsdoctor.diagnosis.knowledge import GENERIC_PROXY_SETTINGS
from wsdoctor.diagnosis.model import Culprit, Finding, Severity


@dataclass(frozen=True)
class Entry:
    """One finding's texts: templates filled with the figures a rule computed."""

    title: str
    severity: Severity
    remedy: str | None = None
    culprit: Culprit | None = None
    summary: str | None = None
    advice: tuple[str, ...] = ()


PERSIST = " (persist it in /etc/sysctl.d/)"
HEARTBEAT_REMEDY = (
    "Or, with no change to the path, send {kind} every {interval:g} s: half of the {bound:g} s "
    "the path was seen to allow, for a margin against timer ticks and delays{seen}."
)
"""The second remedy of every idle drop: a heartbeat below it (``rules/idle.py``)."""
_RECONNECT = "Reconnect with exponential backoff and full jitter, and resume state."
_HANDSHAKE_ADVICE = "`wsdoctor probe URL` names the handshake failure and its fix."
_WHERE = "{where}"  # "on the <path> path (<url>)": where a handshake failed

CATALOGUE: dict[str, Entry] = {
    # --- the opening handshake (rules/handshake.py) ---------------------------------------
    "handshake_rejected.redirect": Entry(
        "Handshake answered with a redirect (HTTP {status})",
        "error",
        "Use the URL it redirects to: most WebSocket clients, browsers included, do not "
        "follow redirects on the opening handshake.",
        "handshake_rejected",
        f"The server redirected the WebSocket handshake {_WHERE}: {{message}}.",
    ),
    "handshake_rejected.tls_on_plain_port": Entry(
        "A plain ws:// request reached a port that speaks TLS",
        "error",
        "Use a wss:// URL for this port (or the server's plain-text port for ws://).",
        "handshake_rejected",
        f"The server answered a plain ws:// handshake with TLS {_WHERE}: use wss://.",
    ),
    "handshake_rejected.not_http": Entry(
        "The server did not answer with HTTP",
        "error",
        "Check the port: another service (not an HTTP or WebSocket server) listens there.",
        "handshake_rejected",
        f"Something that does not speak HTTP answered the WebSocket handshake {_WHERE}: "
        "check the port.",
    ),
    "tls_error": Entry(
        "TLS handshake failed",
        "error",
        "Fix the certificate chain or host name; use --cacert for a private CA.",
        "tls_error",
        f"The TLS handshake failed {_WHERE}: {{message}}.",
        (
            "Serve a certificate valid for this host name and not expired, with its "
            "full chain; for a private CA pass --cacert (or --insecure to look past it).",
        ),
    ),
    "rate_limit.handshake": Entry(
        "Handshake answered 429 Too Many Requests",
        "error",
        "Back off before reconnecting.",
        "rate_limit",
        f"The server rate-limited the WebSocket handshake with HTTP 429 {_WHERE}.",
        (
            "Reconnect with exponential backoff and jitter; raise the server's or "
            "gateway's connection rate limit if this load is expected.",
        ),
    ),
    "server_limits.handshake": Entry(
        "Handshake answered 503 Service Unavailable",
        "error",
        None,
        "server_limits",
        f"The server or a proxy answered the handshake with HTTP 503 {_WHERE}.",
        (
            "Check the server's connection limits (ulimit -n, worker connections) "
            "and that the backend behind the proxy is up.",
        ),
    ),
    "upgrade_blocked": Entry(
        "The WebSocket upgrade was not performed",
        "error",
        None,
        "upgrade_blocked",
        "An HTTP hop answered the WebSocket upgrade {with_status}without switching protocols "
        f"{_WHERE} ({{hint}}).",
        (
            "Pass the upgrade through every proxy. nginx: proxy_http_version 1.1; "
            'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";',
            "HAProxy and most load balancers pass upgrades by default: check that the "
            "route points at the WebSocket backend and that no WAF or CDN rule strips "
            "Upgrade/Connection.",
        ),
    ),
    "unreachable.gateway": Entry(
        "A gateway answered HTTP {status}: the backend behind it is unreachable",
        "error",
        None,
        "unreachable",
        f"A proxy answered the handshake with HTTP {{status}} {_WHERE}: it could not "
        "reach the WebSocket backend.",
        (
            "Check that the backend is up and that the proxy's upstream address, port and "
            "timeouts (proxy_connect_timeout, timeout connect) are right.",
        ),
    ),
    "handshake_rejected": Entry(
        "Handshake rejected with HTTP {status}",
        "error",
        None,
        "handshake_rejected",
        f"The server rejected the WebSocket handshake with HTTP {{status}} {_WHERE}.",
        (
            "Check the URL path, credentials (-H 'Authorization: ...'), Origin "
            "(--origin) and subprotocol (--subprotocol) the server expects.",
        ),
    ),
    "unreachable": Entry(
        "Endpoint unreachable",
        "error",
        None,
        "unreachable",
        f"The endpoint could not be reached {_WHERE}: {{message}}.",
        ("Check the host name, port and firewall rules, and that the server is listening.",),
    ),
    # --- idle connections and lifetimes (rules/idle.py) -----------------------------------
    "lifetime_cap": Entry(
        "Connections are closed at a fixed age",
        "error",
        "Raise the cap, or reconnect before it with backoff and resume state.",
        "lifetime_cap",
    ),
    "nat_firewall_idle_drop": Entry(
        "Idle connections are silently dropped",
        "error",
        "Raise the idle timeout of the NAT, firewall or L4 load balancer on the path "
        "(conntrack established timeout, AWS NLB tcp.idle_timeout.seconds, Azure LB "
        "IdleTimeoutInMinutes), or enable TCP keepalive below it.",
        "nat_firewall_idle_drop",
    ),
    "server_idle_timeout": Entry(
        "The server closes idle connections",
        "error",
        "Raise the server's idle timeout for WebSocket connections.",
        "server_idle_timeout",
    ),
    "proxy_idle_timeout": Entry(
        "Idle connections are closed",
        "error",
        f"Raise the proxy's idle timeout ({GENERIC_PROXY_SETTINGS}).",
        "proxy_idle_timeout",
    ),
    "proxy_idle_timeout.unplaced": Entry(
        "Idle connections are closed",
        "error",
        f"Raise the idle timeout of the proxy or load balancer ({GENERIC_PROXY_SETTINGS}), "
        "or the server's if it is the one closing.",
        "proxy_idle_timeout",
    ),
    "proxy_idle_timeout.known": Entry(
        "Idle connections are closed",
        "error",
        "Raise {name}'s idle timeout ({setting}): {snippet}",
        "proxy_idle_timeout",
    ),
    "cdn_idle_release": Entry(
        "The CDN releases idle connections",
        "error",
        f"Raise the proxy's idle timeout ({GENERIC_PROXY_SETTINGS}).",
        "cdn_idle_release",
    ),
    "cdn_idle_release.known": Entry(
        "The CDN releases idle connections",
        "error",
        "Raise {name}'s idle timeout ({setting}): {snippet}",
        "cdn_idle_release",
    ),
    "pings_ignored": Entry(
        "Protocol pings do not reset the idle timer",
        "warning",
        "Use an application-level heartbeat message, not only WebSocket pings.",
    ),
    "one_way_traffic": Entry(
        "Client messages alone do not reset the idle timer",
        "warning",
        "The timer counts only server-to-client bytes (Caddy read_timeout does this): "
        "have the server answer heartbeats or ping clients.",
    ),
    "mixed_idle_timeouts": Entry(
        "Connections on one path meet different idle timeouts",
        "warning",
        "The nodes or worker processes behind this address are configured differently "
        "(a rolling deploy, a canary, one drifted config): align their timeouts. Until "
        "then every heartbeat must beat the shortest, {shortest}.",
    ),
    "idle_drops_unplaced": Entry(
        "Idle connections were cut, too few alike to name a timeout",
        "warning",
        "Probe again with a longer --max-idle; a single drop may be a glitch or a node "
        "of a fleet that few connections reached.",
        "none",
    ),
    # --- ends the server chose (rules/closes.py) ------------------------------------------
    "closed_on_open.server_limits": Entry(
        "The server closes connections right after opening them",
        "error",
        "The server sheds new connections: raise its connection limits (ulimit -n, "
        "worker connections, max clients) and have clients back off with jitter.",
        "server_limits",
    ),
    "closed_on_open.restart": Entry(
        "The server closes connections right after opening them",
        "error",
        "The server was going away or restarting: reconnect with backoff and jitter.",
        "restart",
    ),
    "closed_on_open.handshake_rejected": Entry(
        "The server closes connections right after opening them",
        "error",
        "The server accepts the upgrade and then refuses the session: check "
        "credentials (-H 'Authorization: ...'), Origin (--origin) and subprotocol "
        "(--subprotocol).",
        "handshake_rejected",
    ),
    "server_closed": Entry("The server closed connections with a close frame", "warning"),
    "server_closed.restart": Entry(
        "The server closed connections with a close frame",
        "warning",
        "The server was going away or restarting: reconnect with backoff and jitter.",
        "restart",
    ),
    "protocol_error": Entry(
        "The server broke the WebSocket protocol",
        "error",
        "Check the server and any proxy that rewrites the stream (a proxy that does not "
        "switch protocols after 101, a broken extension, bad UTF-8, oversized messages).",
        "none",
    ),
    "connections_refused": Entry(
        "The server refused some probe connections",
        "warning",
        "The server refuses connections beyond a concurrency level: raise its limits "
        "(ulimit -n, worker connections, per-IP limits), then probe again; "
        "`wsdoctor capacity` measures the limit.",
        "server_limits",
    ),
    "connections_refused.rate_limit": Entry(
        "The server refused some probe connections",
        "warning",
        "The server limits how fast one client may connect: open connections more slowly, "
        "reconnect with backoff and jitter, or raise the limit.",
        "rate_limit",
    ),
    # --- health: survivors, heartbeats, instability, the probe itself (rules/health.py) ---
    "idle_ok": Entry("Idle connections survive", "info", None, "none"),
    "server_heartbeat": Entry(
        "The server pings on its own",
        "info",
        "Browsers answer server pings automatically: keep this heartbeat below every "
        "idle timeout on the path.",
    ),
    "server_push": Entry(
        "The server sends messages on its own",
        "info",
        "Clients stay alive only while the server pushes; add a heartbeat for quiet periods.",
    ),
    "network_instability": Entry(
        "The path is unstable",
        "warning",
        "Find the lossy hop (mtr, packet captures); reconnect with backoff.",
        "network_instability",
    ),
    "probe_stalled": Entry(
        "wsdoctor's own event loop stalled",
        "warning",
        "Run wsdoctor on a less loaded machine and {again} again.",
    ),
    # --- message size and rate (rules/limits.py) ------------------------------------------
    "message_size_limit": Entry(
        "Large messages end the connection",
        "error",
        "Keep messages at or below {largest} (split larger payloads into chunks), "
        "or raise the limit where it is set ({settings}).",
        "message_size_limit",
    ),
    "size_first_message_closed": Entry(
        "The server ended the connection on the size stage's first message", "warning"
    ),
    "size_ok": Entry("Large messages go through", "info"),
    "rate_limit": Entry(
        "The server limits the message rate",
        "error",
        "Batch or coalesce messages and {below}, or raise the server's rate limit.",
        "rate_limit",
    ),
    "burst_closed": Entry("A message burst ended the connection", "warning"),
    "rate_ok": Entry("Message bursts go through", "info"),
    "stages_ok": Entry("The requested stages pass", "info", None, "none"),
    # --- concurrent connections (rules/capacity.py) ---------------------------------------
    "server_limits.turned_away": Entry(
        "Connections fail beyond about {held} at once",
        "error",
        "The server (or a proxy in front of it) turns handshakes away beyond about "
        "{held} connections: raise its connection cap (its max-connections setting, nginx "
        "worker_connections, a load balancer's per-target limit) or add instances; clients "
        "should retry a 503 with exponential backoff and jitter.",
        "server_limits",
    ),
    "server_limits.stopped_accepting": Entry(
        "Connections fail beyond about {held} at once",
        "error",
        "The server stopped accepting new connections at about {held}: the "
        "usual cause is running out of file descriptors (raise `ulimit -n` / LimitNOFILE= for "
        "the server) or a full accept queue (net.core.somaxconn and the listen backlog). On "
        "the server, run `wsdoctor host --pid <server pid> --target-connections <N>` to see "
        "which limit it is.",
        "server_limits",
    ),
    "server_limits.shed": Entry(
        "Connections fail beyond about {held} at once",
        "error",
        "The server dropped connections it had accepted once about {held} were open: check "
        "its logs for memory, worker or max-clients limits, and its overload policy.",
        "server_limits",
    ),
    "connection_rate_limit": Entry(
        "Connections fail beyond about {held} at once",
        "error",
        "Handshakes are rate-limited: ramp slower (--rate) to tell a rate limit from a "
        "concurrency cap, raise the limit if this load is expected, and have clients retry "
        "with exponential backoff and jitter.",
        "rate_limit",
    ),
    "client_limit_reached": Entry(
        "The client's own limit, not the server, stopped the ramp",
        "warning",
        "Raise this client's descriptor limit: `ulimit -n` up to the hard limit (wsdoctor "
        "already raises its soft limit that far), the hard limit with LimitNOFILE= or "
        "/etc/security/limits.conf; or ramp from several machines.",
        "none",
    ),
    "client_limit_reached.ports": Entry(
        "The client's own limit, not the server, stopped the ramp",
        "warning",
        "Widen net.ipv4.ip_local_port_range on the client, or ramp from several machines.",
        "none",
    ),
    "capacity_held": Entry("Held {held} concurrent connections", "info", None, "none"),
    "server_not_recovered": Entry(
        "The server did not recover once the load was gone",
        "warning",
        "A server still failing after its clients left is wedged (leaked descriptors, a "
        "stuck worker, a blocked log pipe): check its logs and health checks.",
    ),
    "reconnect_storm": Entry(
        "What a reconnect storm does to this server",
        "warning",
        "Reconnect with exponential backoff and full jitter: before attempt n wait a "
        "random time between 0 and min(30 s, 0.5 s x 2^n), so that clients dropped "
        "together do not return together.",
    ),
    "reconnect_storm.weathered": Entry(
        "What a reconnect storm does to this server",
        "info",
        "Reconnect with exponential backoff and full jitter: before attempt n wait a "
        "random time between 0 and min(30 s, 0.5 s x 2^n), so that clients dropped "
        "together do not return together.",
    ),
    # --- the server host's own limits (rules/host.py) -------------------------------------
    "host_nofile": Entry(
        "RLIMIT_NOFILE stops the server at about {allows} connections",
        "error",
        "Raise the server's descriptor limit to {value}: `ulimit -n {value}` in the shell or "
        "script that starts it, or LimitNOFILE={value} in its systemd unit.{over_ceiling}",
        "server_limits",
    ),
    "host_file_max": Entry(
        "fs.file-max stops the server at about {allows} connections",
        "error",
        "Raise the system-wide file table: `sysctl -w fs.file-max={value}`" + PERSIST + ".",
        "server_limits",
    ),
    "host_conntrack_max": Entry(
        "nf_conntrack_max stops the server at about {allows} connections",
        "error",
        "Raise the conntrack table: `sysctl -w net.netfilter.nf_conntrack_max={value}`"
        + PERSIST
        + ".",
        "server_limits",
    ),
    "host_nr_open": Entry(
        "fs.nr_open caps every process's descriptor limit below what is needed",
        "error",
        "Raise the per-process ceiling first: `sysctl -w fs.nr_open={needed}`" + PERSIST + ".",
    ),
    "host_accept_queue": Entry(
        "A reconnect storm of {target} clients overflows the accept queue",
        "warning",
        "`sysctl -w net.core.somaxconn={value}` and `sysctl -w "
        "net.ipv4.tcp_max_syn_backlog={value}`" + PERSIST + ", a matching listen backlog in "
        "the server (e.g. nginx `listen ... backlog=`), and clients that reconnect with "
        "backoff and jitter.",
    ),
    "host_local_ports": Entry(
        "A proxy on this host can open only {ports} connections to one backend",
        "warning",
        'Widen it: `sysctl -w net.ipv4.ip_local_port_range="1024 65535"`' + PERSIST + "{more}.",
    ),
    "host_conntrack_timeout": Entry(
        "Idle connections are forgotten by conntrack after {timeout} s",
        "warning",
        "`sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=432000`"
        + PERSIST
        + ", or send WebSocket pings every {interval:g} s.",
    ),
    "host_tcp_keepalive": Entry(
        "TCP keepalive starts too late to keep idle connections alive",
        "info",
        "Keep idle WebSockets alive with WebSocket pings below the shortest idle timeout on "
        "the path (`wsdoctor probe` measures it). TCP keepalive helps only sockets that set "
        "SO_KEEPALIVE, and only with net.ipv4.tcp_keepalive_time below that timeout.",
    ),
    "host_unreadable": Entry(
        "Some limits could not be read",
        "info",
        "Run on the server itself, as the server's user or root, to read every limit.",
    ),
    "host_capacity": Entry(
        "This host cannot hold {target} connections", "error", None, "server_limits"
    ),
    "host_capacity.target_ok": Entry(
        "This host's limits allow the {target} connections asked for", "info", None, "none"
    ),
    "host_capacity.ok": Entry(
        "This host's limits allow about {allows} connections",
        "info",
        "To hold more, raise {label} first: `wsdoctor host --target-connections N` gives "
        "the value of every limit to set for N connections.",
        "none",
    ),
    # --- drops seen by `wsdoctor watch` (rules/watch.py) ----------------------------------
    "watch_summary": Entry("Watch summary", "info"),
    "watch_ok": Entry("No drop while watching", "info", None, "none"),
    "watch_restart": Entry(
        "Connections drop together: a restart or configuration reload",
        "error",
        "Make restarts graceful (drain connections, close them with 1012 and let clients "
        "come back over time); behind ingress-nginx reload less often or raise "
        "worker-shutdown-timeout. " + _RECONNECT,
        "restart",
    ),
    "watch_lifetime_cap": Entry(
        "Connections are closed at a fixed age even while heartbeats flow",
        "error",
        "Heartbeats will not help: raise the maximum connection duration where it is set, or "
        "reconnect before it. " + _RECONNECT,
        "lifetime_cap",
    ),
    "watch_proxy_idle_timeout": Entry(
        "Connections are closed after an idle time shorter than the heartbeat",
        "error",
        "Beat more often than the idle timeout (--interval), or raise the proxy's idle timeout.",
        "proxy_idle_timeout",
    ),
    "watch_server_idle_timeout": Entry(
        "The server closes connections idle for less than the heartbeat interval",
        "error",
        "Beat more often than the server's idle timeout, or raise it.",
        "server_idle_timeout",
    ),
    "watch_nat_firewall_idle_drop": Entry(
        "Connections go silent before the first heartbeat",
        "error",
        "A NAT or firewall forgets flows idle for less than the heartbeat interval: beat "
        "more often, or raise its idle timeout.",
        "nat_firewall_idle_drop",
    ),
    "watch_network_instability": Entry(
        "Connections drop at random moments, not tied to age or idle time",
        "warning",
        "Trace the path for loss (mtr, tcpdump) and fix the lossy link. " + _RECONNECT,
        "network_instability",
    ),
    "watch_server_limits": Entry(
        "The server sheds connections (close 1013, HTTP 503, or a close right after opening)",
        "error",
        "Raise the server's connection limits; have clients back off with jitter.",
        "server_limits",
    ),
    "watch_rate_limit": Entry(
        "Connections are ended by policy or rate limits (close 1008 or HTTP 429)",
        "error",
        "Check the server's rate limits and session policy (token lifetime, origin).",
        "rate_limit",
    ),
    "watch_message_size_limit": Entry(
        "Connections are closed for a message too big (close 1009)",
        "error",
        "Raise the message size limit or send smaller messages.",
        "message_size_limit",
    ),
    "watch_server_closed": Entry(
        "The server closed connections with a close frame",
        "warning",
        "Read the close codes and reasons in the server's logs. " + _RECONNECT,
    ),
    "watch_protocol_error": Entry(
        "The server broke the WebSocket protocol",
        "error",
        "Fix what sends invalid frames on this path.",
    ),
    "watch_handshake_rejected": Entry(
        "The server refuses the session at or right after the upgrade",
        "error",
        "Check credentials (-H 'Authorization: ...'), Origin (--origin) and subprotocol "
        "(--subprotocol).",
        "handshake_rejected",
    ),
    "watch_tls_error": Entry(
        "TLS handshakes fail", "error", "Fix the certificate. " + _HANDSHAKE_ADVICE, "tls_error"
    ),
    "watch_upgrade_blocked": Entry(
        "The WebSocket upgrade is not performed",
        "error",
        "Let every proxy on the path pass Upgrade and Connection headers. " + _HANDSHAKE_ADVICE,
        "upgrade_blocked",
    ),
    "watch_unreachable": Entry(
        "Could not connect",
        "error",
        "Check the URL, DNS, the network path and that the server listens. " + _HANDSHAKE_ADVICE,
        "unreachable",
    ),
    # --- the run pipeline itself (wsdoctor/execute.py, wsdoctor/runguard.py) ------------------
    "internal_error": Entry(
        "wsdoctor failed before the end of the run",
        "error",
        "Rerun with --debug for the traceback and report it as a bug.",
    ),
    "run_budget_exceeded": Entry(
        "The run was cut at its budget of {budget:g} s before it finished ({where})",
        "error",
        "Rerun with --debug to see where it was stuck, and attach the stack dump to a bug "
        "report; raise --max-time if the network is just slow.",
    ),
    "load_engine_failed": Entry(
        "The load engine stopped before the end of the ramp: {what}",
        "error",
        "Start every worker with the same wsdoctor version (`wsdoctor capacity-worker --master "
        "HOST:PORT`), check that they can reach the master and keep running, then rerun.",
    ),
}

REAL_NETWORK_ONLY: dict[str, str] = {}
"""Entries no hand-written observation set produces, and the real-network path that does."""

PIPELINE: dict[str, str] = {
    "internal_error": "wsdoctor/execute.py, when gathering, a rule or clean-up fails",
    "run_budget_exceeded": "wsdoctor/runguard.py, when the run budget (--max-time) fires",
    "load_engine_failed": "wsdoctor/loadgen/engine.py, when Locust workers do not arrive, "
    "die or run another wsdoctor version",
}
"""Entries the run pipeline reports about the run itself, not any rule."""


def code_of(key: str) -> str:
    """The report's finding code of a catalogue key (the part before a variant)."""
    return key.partition(".")[0]


def entry(key: str) -> Entry:
    """The catalogue entry of ``key``; a missing one is a programming error, said plainly."""
    try:
        return CATALOGUE[key]
    except KeyError:
        raise KeyError(f"finding {key!r} is missing from the catalogue") from None


def remedy_text(key: str, **values: object) -> str:
    """The remedy of ``key`` with ``values`` filled in (for verdict remedies too)."""
    remedy = entry(key).remedy
    if remedy is None:
        raise ValueError(f"finding {key!r} has no remedy in the catalogue")
    return remedy.format(**values)


def finding(key: str, evidence: list[str], **values: object) -> Finding:
    """The finding ``key`` with its evidence, its title and remedy filled with ``values``."""
    found = entry(key)
    return Finding(
        code_of(key),
        found.severity,
        found.title.format(**values),
        evidence,
        found.remedy.format(**values) if found.remedy is not None else None,
    )


def verdict_texts(key: str, **values: object) -> tuple[str, list[str]]:
    """The verdict summary and remedies ``key`` proposes (its advice, else its remedy)."""
    found = entry(key)
    summary = (found.summary or found.title).format(**values)
    advice = [a.format(**values) for a in found.advice]
    if not advice and found.remedy is not None:
        advice = [found.remedy.format(**values)]
    return summary, advice
