"""Pure rules over proxy configuration facts: what in a config drops WebSockets, and where.

Parsers (``wsdoctor.lint``) turn files into :class:`~wsdoctor.lint.facts.ConfigFacts`; the rules
here judge them: each rule is data (code, title, default severity, help) in :data:`CATALOGUE`
plus a pure function. Every scope also gets a :class:`Prediction` (the idle timeout and the
lifetime cap its settings produce), which :func:`join_measurement` matches to what a probe
measured. Defaults and remedies come from ``knowledge.py``, the same data ``probe`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from wsdoctor.diagnosis.knowledge import BY_KEY, heartbeat_interval_for, known_defaults_near
from wsdoctor.lint.facts import ConfigFacts, Scope, Setting, connection_upgrades

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "error")

LONG_ENOUGH_S = 3600.0
"""An idle timeout this long is what the remedies suggest; shorter ones are reported."""


@dataclass(frozen=True)
class LintRule:
    """One check, as data: the report (terminal, JSON, SARIF) reads these fields."""

    code: str
    title: str
    severity: Severity
    help: str


_RULES = (
    LintRule(
        "upgrade_header_missing",
        "The Upgrade header is not forwarded",
        "error",
        "Upgrade is a hop-by-hop header: a proxy drops it unless told to forward it, and the "
        "backend then answers the handshake without switching protocols (often 400 or 426).",
    ),
    LintRule(
        "connection_header_missing",
        "The Connection header does not say upgrade",
        "error",
        "The backend switches protocols only when Connection says upgrade; nginx sends "
        "'Connection: close' upstream unless told otherwise.",
    ),
    LintRule(
        "headers_not_inherited",
        "Upgrade headers set at an outer level are lost here",
        "error",
        "nginx inherits proxy_set_header from an outer level only into a level that sets no "
        "proxy_set_header of its own.",
    ),
    LintRule(
        "http_version_missing",
        "Upstream HTTP/1.0: no upgrade possible",
        "error",
        "nginx speaks HTTP/1.0 to upstreams by default; WebSocket upgrades need HTTP/1.1 "
        "(the backend answers 505 or 426).",
    ),
    LintRule(
        "upgrade_not_enabled",
        "This ProxyPass does not tunnel WebSockets",
        "error",
        "Apache forwards an upgrade only with upgrade=websocket on an http(s):// ProxyPass, or "
        "a ws(s):// URL handled by mod_proxy_wstunnel.",
    ),
    LintRule(
        "upgrade_header_removed",
        "The configuration removes Upgrade or Connection",
        "error",
        "Removing these headers on the way to the backend stops every WebSocket handshake.",
    ),
    LintRule(
        "idle_timeout_below_heartbeat",
        "Idle timeout not longer than the application's heartbeat",
        "error",
        "A connection idle longer than this timeout is closed (FIN, no close frame: 1006 in "
        "the browser); a heartbeat at this interval or longer cannot keep it open.",
    ),
    LintRule(
        "heartbeat_margin_thin",
        "Idle timeout less than twice the heartbeat",
        "warning",
        "One late or lost heartbeat and the connection is cut; keep heartbeats at about half "
        "the idle timeout.",
    ),
    LintRule(
        "idle_timeout_short",
        "Short idle timeout on WebSocket connections",
        "warning",
        "Idle WebSockets are closed after this time (FIN, no close frame: 1006 in the browser) "
        "unless the application sends a heartbeat more often.",
    ),
    LintRule(
        "idle_timeout_default",
        "No idle timeout set: the product's default applies",
        "warning",
        "Nothing in the configuration sets the timeout that governs upgraded connections, so "
        "the default cuts idle WebSockets.",
    ),
    LintRule(
        "idle_timeout",
        "Idle timeout on WebSocket connections",
        "info",
        "Idle WebSockets are closed after this time; a heartbeat at about half of it keeps "
        "them open.",
    ),
    LintRule(
        "tunnel_timeout_missing",
        "No timeout tunnel: client/server timeouts govern WebSockets",
        "warning",
        "Without 'timeout tunnel', HAProxy applies 'timeout client' and 'timeout server' (HTTP "
        "request timeouts, often seconds) to upgraded connections.",
    ),
    LintRule(
        "fin_timeout_missing",
        "Long tunnel timeout without client-fin/server-fin",
        "info",
        "With a long 'timeout tunnel', half-closed connections linger for as long unless "
        "'timeout client-fin' and 'timeout server-fin' bound them.",
    ),
    LintRule(
        "no_idle_timeout",
        "No idle timeout at all",
        "info",
        "Nothing at this proxy closes idle connections; dead peers are found only by "
        "heartbeats or TCP keepalive.",
    ),
    LintRule(
        "reload_cuts_connections",
        "Reloads cut WebSocket connections",
        "warning",
        "A configuration reload ends old workers or processes after this time, and the "
        "WebSockets they still carry with them.",
    ),
    LintRule(
        "lifetime_cap",
        "Connections are cut at a fixed age",
        "warning",
        "Upgraded connections are closed at this age even while traffic flows.",
    ),
    LintRule(
        "reload_closes_streams",
        "A config reload closes every WebSocket at once",
        "info",
        "Caddy closes streaming connections (close frame 1001) when its configuration is "
        "reloaded, unless stream_close_delay keeps them open for a while.",
    ),
    LintRule(
        "send_timeout_note",
        "proxy_send_timeout is not the idle timeout",
        "info",
        "proxy_send_timeout applies only while a write to the backend is blocked; the idle "
        "timer of an upgraded connection is proxy_read_timeout, re-armed by traffic either way.",
    ),
    LintRule(
        "buffering_irrelevant",
        "proxy_buffering does not affect WebSockets",
        "info",
        "Upgraded connections are tunnelled unbuffered whatever proxy_buffering says.",
    ),
    LintRule(
        "keepalive_timeout_confusion",
        "keepalive_timeout does not keep WebSockets alive",
        "warning",
        "keepalive_timeout governs idle HTTP keep-alive connections between requests; "
        "upgraded connections are timed by proxy_read_timeout.",
    ),
    LintRule(
        "http_close_option_note",
        "HTTP close options do not govern tunnels",
        "info",
        "After '101 Switching Protocols' HAProxy runs the connection as a tunnel; "
        "'option http-server-close'/'httpclose' neither keep it alive nor end it: "
        "'timeout tunnel' does.",
    ),
    LintRule(
        "timeout_does_not_shorten",
        "This timeout does not shorten the WebSocket tunnel",
        "warning",
        "Apache times a tunnel with the longer of the client socket's timeout (core Timeout) "
        "and the backend's (ProxyPass timeout=, else ProxyTimeout, else Timeout).",
    ),
    LintRule(
        "websocket_idle_timeout_note",
        "ProxyWebsocketIdleTimeout applies to mod_proxy_wstunnel only",
        "info",
        "With upgrade=websocket (mod_proxy_http, httpd 2.4.47+) this directive is not read, and "
        "httpd rejects it unless mod_proxy_wstunnel is loaded.",
    ),
    LintRule(
        "read_timeout_one_way",
        "Caddy's read_timeout is reset by backend traffic only",
        "warning",
        "transport http read_timeout cuts an upgraded connection when the backend sends "
        "nothing for that long, even while the client sends steadily.",
    ),
    LintRule(
        "invalid_value",
        "A value the proxy will not read as intended",
        "warning",
        "The value is not a duration this product accepts; it is ignored or rejected.",
    ),
    LintRule(
        "include_not_found",
        "An included file was not found",
        "info",
        "The include was skipped; settings in it are not judged.",
    ),
    LintRule(
        "measurement_explained",
        "The measured drop is this setting",
        "info",
        "A probe measured this idle timeout (or lifetime cap) and this setting produces it.",
    ),
    LintRule(
        "measurement_unexplained",
        "Nothing in these files explains the measured drop",
        "warning",
        "No setting here produces the measured figure: the drop happens elsewhere (a load "
        "balancer, a CDN, a NAT or firewall, or the backend).",
    ),
)

CATALOGUE: dict[str, LintRule] = {rule.code: rule for rule in _RULES}


@dataclass
class LintFinding:
    """One judged fact at a file and line, with why it drops connections and the fix."""

    code: str
    severity: Severity
    product: str
    message: str
    file: str | None = None
    line: int | None = None
    scope: str | None = None
    setting: str | None = None
    remedy: str | None = None

    @property
    def title(self) -> str:
        """The catalogue's title for this finding's code."""
        return CATALOGUE[self.code].title


@dataclass
class Prediction:
    """What one scope's settings do to a WebSocket: its idle timeout and lifetime cap."""

    scope: Scope
    idle_timeout_s: float | None = None
    idle_setting: Setting | None = None
    lifetime_cap_s: float | None = None
    lifetime_setting: Setting | None = None
    reload_cut_s: float | None = None
    reload_setting: Setting | None = None
    note: str = ""


@dataclass
class Measurement:
    """What a probe measured (``verdict`` of a ``wsdoctor.report/1``)."""

    idle_timeout_s: float | None = None
    idle_timeout_range_s: list[float] | None = None
    lifetime_cap_s: float | None = None
    culprit: str | None = None
    hop: str | None = None
    source: str = ""


@dataclass
class Join:
    """One measured figure and the settings that produce it (none: explained elsewhere)."""

    kind: Literal["idle_timeout", "lifetime_cap"]
    measured_s: float
    tolerance_s: float
    matches: list[Prediction] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)


@dataclass
class LintResult:
    """Everything a lint run found: facts, predictions, findings and joins."""

    configs: list[ConfigFacts]
    predictions: list[Prediction]
    findings: list[LintFinding]
    joins: list[Join] = field(default_factory=list)
    heartbeat_s: float | None = None
    measurement: Measurement | None = None


def tolerance(seconds: float) -> float:
    """How close a setting must be to a measured figure: max(0.5 s, 5 %)."""
    return max(0.5, 0.05 * seconds)


def fmt_s(value: float) -> str:
    """A duration for people: ``7 s``, ``1.5 s``, ``90 s``."""
    return f"{value:g} s" if value < 1000 else f"{value:.0f} s"


# --- predictions -------------------------------------------------------------------------------

KNOWN_DEFAULTS = {
    ("nginx", "proxy_read_timeout"): "nginx",
    ("apache", "Timeout"): "apache",
    ("kubernetes", "proxy-read-timeout"): "nginx",  # ingress-nginx runs nginx: the same 60 s
}
"""Settings whose default is the idle timeout ``knowledge.py`` holds for an intermediary."""


def _idle(product: str, setting: Setting) -> float | None:
    """The setting's seconds; for a default, the figure ``knowledge.py`` (and probe) uses."""
    key = KNOWN_DEFAULTS.get((product, setting.name))
    if setting.origin == "default" and key is not None:
        return BY_KEY[key].idle_timeout_s
    return setting.seconds


def predict(facts: ConfigFacts, scope: Scope) -> Prediction:
    """The idle timeout, lifetime cap and reload cut this scope's settings produce."""
    return _PREDICTORS[scope.product](facts, scope)


def _predict_nginx(facts: ConfigFacts, scope: Scope) -> Prediction:
    key = "proxy_timeout" if scope.kind == "stream" else "proxy_read_timeout"
    idle = scope.settings[key]
    reload = facts.globals.get("worker_shutdown_timeout")
    return Prediction(
        scope,
        _idle("nginx", idle),
        idle,
        reload_cut_s=reload.seconds if reload else None,
        reload_setting=reload,
    )


def _predict_haproxy(facts: ConfigFacts, scope: Scope) -> Prediction:
    reload = facts.globals.get("hard-stop-after")
    prediction = Prediction(
        scope, reload_cut_s=reload.seconds if reload else None, reload_setting=reload
    )
    tunnel = scope.get("timeout tunnel")
    if tunnel is not None:
        prediction.idle_timeout_s, prediction.idle_setting = tunnel.seconds, tunnel
        return prediction
    pair = [s for s in (scope.get("timeout client"), scope.get("timeout server")) if s]
    timed = [s for s in pair if s.seconds is not None]
    if timed:
        shortest = min(timed, key=lambda s: s.seconds or 0.0)
        prediction.idle_timeout_s, prediction.idle_setting = shortest.seconds, shortest
        prediction.note = "no timeout tunnel: the shorter of timeout client/server applies"
    return prediction


def apache_tunnel_timeout(scope: Scope) -> tuple[Setting, Setting]:
    """The setting that times an Apache WebSocket tunnel, and the backend one beside it.

    ``ap_proxy_tunnel_create`` takes the longer of the client socket's timeout (core
    ``Timeout``) and the backend socket's (``timeout=``, else ``ProxyTimeout``, else
    ``Timeout``).
    """
    core = scope.settings["Timeout"]
    backend = scope.get("timeout=") or scope.get("ProxyTimeout") or core
    winner = backend if (backend.seconds or 0.0) > (core.seconds or 0.0) else core
    return winner, backend


def _predict_apache(facts: ConfigFacts, scope: Scope) -> Prediction:
    winner, _ = apache_tunnel_timeout(scope)
    return Prediction(scope, _idle("apache", winner), winner)


def _predict_caddy(facts: ConfigFacts, scope: Scope) -> Prediction:
    prediction = Prediction(scope)
    read = scope.get("read_timeout")
    if read is not None and read.seconds:
        prediction.idle_timeout_s, prediction.idle_setting = read.seconds, read
        prediction.note = "reset by backend-to-client bytes only"
    stream = scope.get("stream_timeout")
    if stream is not None and stream.seconds:
        prediction.lifetime_cap_s, prediction.lifetime_setting = stream.seconds, stream
    return prediction


def _predict_kubernetes(facts: ConfigFacts, scope: Scope) -> Prediction:
    idle = scope.settings["proxy-read-timeout"]
    reload = facts.globals.get("worker-shutdown-timeout")
    return Prediction(
        scope,
        _idle("kubernetes", idle),
        idle,
        reload_cut_s=reload.seconds if reload else None,
        reload_setting=reload,
    )


_PREDICTORS: dict[str, Callable[[ConfigFacts, Scope], Prediction]] = {
    "nginx": _predict_nginx,
    "haproxy": _predict_haproxy,
    "apache": _predict_apache,
    "caddy": _predict_caddy,
    "kubernetes": _predict_kubernetes,
}


# --- remedies ----------------------------------------------------------------------------------


def _nginx_timeout_fix(seconds: float | None = None) -> str:
    value = f"{int(seconds)}s" if seconds else "3600s"
    return f"proxy_read_timeout {value};\nproxy_send_timeout {value};"


REMEDIES = {
    "nginx": {
        "upgrade": (
            "# in the http block:\nmap $http_upgrade $connection_upgrade {\n"
            "    default upgrade;\n    ''      close;\n}\n# in this location:\n"
            "proxy_http_version 1.1;\nproxy_set_header Upgrade $http_upgrade;\n"
            "proxy_set_header Connection $connection_upgrade;"
        ),
        "http_version": "proxy_http_version 1.1;",
        "timeout": _nginx_timeout_fix(),
        "reload": "worker_shutdown_timeout 1h;  # or leave unset: old workers keep connections",
        "keepalive": "proxy_read_timeout 3600s;  # the idle timer of upgraded connections",
    },
    "haproxy": {
        "timeout": "defaults\n    timeout tunnel 1h\n    timeout client-fin 30s\n"
        "    timeout server-fin 30s",
        "fin": "    timeout client-fin 30s\n    timeout server-fin 30s",
        "reload": "global\n    hard-stop-after 1h  # or longer than your clients tolerate",
    },
    "apache": {
        "upgrade": 'ProxyPass "/ws/" "http://backend:8080/ws/" upgrade=websocket timeout=3600',
        "timeout": 'Timeout 3600\nProxyPass "/ws/" "http://backend:8080/ws/" '
        "upgrade=websocket timeout=3600",
    },
    "caddy": {
        "timeout": "reverse_proxy backend:8080 {\n    transport http {\n"
        "        read_timeout 1h  # or remove: no idle timeout\n    }\n}",
        "lifetime": "reverse_proxy backend:8080 {\n    stream_timeout 24h  # Caddy 2.7+\n}",
        "reload": "reverse_proxy backend:8080 {\n    stream_close_delay 5m  # Caddy 2.7+\n}",
        "upgrade": "# remove header_up -Upgrade / -Connection: Caddy forwards upgrades itself",
    },
    "kubernetes": {
        "timeout": "metadata:\n  annotations:\n"
        '    nginx.ingress.kubernetes.io/proxy-read-timeout: "3600"\n'
        '    nginx.ingress.kubernetes.io/proxy-send-timeout: "3600"',
        "reload": 'data:\n  worker-shutdown-timeout: "3600s"  # ConfigMap of the controller',
    },
}


# --- rules -------------------------------------------------------------------------------------


def _finding(
    code: str,
    scope: Scope | None,
    message: str,
    setting: Setting | None = None,
    remedy: str | None = None,
    severity: Severity | None = None,
    product: str | None = None,
) -> LintFinding:
    """A finding at the setting's line, else at the scope's."""
    file = line = None
    if setting is not None and setting.file is not None:
        file, line = setting.file, setting.line
    elif scope is not None:
        file, line = scope.file, scope.line
    shown = None
    if setting is not None:
        shown = setting.shown()
    return LintFinding(
        code,
        severity or CATALOGUE[code].severity,
        product or (scope.product if scope else ""),
        message,
        file,
        line,
        scope.name if scope else None,
        shown,
        remedy,
    )


def _judged(scope: Scope) -> bool:
    return scope.websocket != "no"


def _where(setting: Setting) -> str:
    if setting.origin == "default":
        return "not set anywhere, so the default applies"
    if setting.origin == "inherited":
        return f"inherited from {setting.context} at {setting.where}"
    return f"at {setting.where}"


def _how(setting: Setting) -> str:
    """The setting, and where it comes from when that is not the finding's own line."""
    if setting.origin == "here":
        return setting.shown()
    if setting.origin == "default":
        return f"{setting.name} (not set; default {setting.value})"
    return f"{setting.shown()} (inherited from {setting.context})"


def idle_timeout_rule(prediction: Prediction, heartbeat_s: float | None) -> list[LintFinding]:
    """The idle timeout a scope's settings produce, judged against the heartbeat if known."""
    scope, seconds, setting = prediction.scope, prediction.idle_timeout_s, prediction.idle_setting
    if setting is None or seconds is None or not _judged(scope):
        return []
    remedy = _timeout_remedy(scope)
    how = _how(setting)
    if prediction.note:
        how += f"; {prediction.note}"
    safe = heartbeat_interval_for(seconds)
    if heartbeat_s is not None:
        if seconds <= heartbeat_s:
            return [
                _finding(
                    "idle_timeout_below_heartbeat",
                    scope,
                    f"idle WebSockets are cut after {fmt_s(seconds)} by {how}, not longer than "
                    f"the {fmt_s(heartbeat_s)} heartbeat: connections drop between heartbeats",
                    setting,
                    remedy,
                )
            ]
        if seconds < 2 * heartbeat_s:
            return [
                _finding(
                    "heartbeat_margin_thin",
                    scope,
                    f"idle timeout {fmt_s(seconds)} by {how} is less than twice the "
                    f"{fmt_s(heartbeat_s)} heartbeat; one late heartbeat drops the connection",
                    setting,
                    remedy,
                )
            ]
        return [
            _finding(
                "idle_timeout",
                scope,
                f"idle WebSockets are cut after {fmt_s(seconds)} by {how}; the "
                f"{fmt_s(heartbeat_s)} heartbeat keeps them open",
                setting,
                None,
            )
        ]
    if setting.origin == "default":
        return [
            _finding(
                "idle_timeout_default",
                scope,
                f"nothing sets {setting.name} here: the default {fmt_s(seconds)} cuts idle "
                f"WebSockets (FIN, browser sees 1006) unless a heartbeat runs every "
                f"{fmt_s(safe)} or so",
                setting,
                remedy,
            )
        ]
    code = "idle_timeout_short" if seconds < 60 else "idle_timeout"
    if seconds >= LONG_ENOUGH_S:
        return []
    return [
        _finding(
            code,
            scope,
            f"idle WebSockets are cut after {fmt_s(seconds)} by {how}; send a heartbeat every "
            f"{fmt_s(safe)} or raise the timeout",
            setting,
            remedy,
        )
    ]


def _timeout_remedy(scope: Scope) -> str:
    if scope.product == "nginx" and scope.kind == "stream":
        return "proxy_timeout 1h;"
    return REMEDIES[scope.product]["timeout"]


def reload_rule(prediction: Prediction) -> list[LintFinding]:
    """A setting that ends connections at a reload (nginx, HAProxy, ingress-nginx)."""
    setting = prediction.reload_setting
    if setting is None or prediction.reload_cut_s is None or not _judged(prediction.scope):
        return []
    severity: Severity = "info" if setting.origin == "default" else "warning"
    return [
        _finding(
            "reload_cuts_connections",
            prediction.scope,
            f"each configuration reload cuts the WebSockets that old workers or processes "
            f"still carry within {fmt_s(prediction.reload_cut_s)} "
            f"({_how(setting)})",
            setting,
            REMEDIES[prediction.scope.product].get("reload"),
            severity,
        )
    ]


def lifetime_rule(prediction: Prediction) -> list[LintFinding]:
    """A fixed maximum age of upgraded connections."""
    setting = prediction.lifetime_setting
    if setting is None or prediction.lifetime_cap_s is None or not _judged(prediction.scope):
        return []
    return [
        _finding(
            "lifetime_cap",
            prediction.scope,
            f"every WebSocket is closed at age {fmt_s(prediction.lifetime_cap_s)} "
            f"({_how(setting)}), busy or not",
            setting,
            REMEDIES[prediction.scope.product].get("lifetime"),
        )
    ]


def nginx_rules(scope: Scope) -> list[LintFinding]:
    """Upgrade headers, HTTP version and the settings people mistake for the idle timeout."""
    if scope.kind != "location" or not _judged(scope):
        return []
    found: list[LintFinding] = []
    fix = REMEDIES["nginx"]["upgrade"]
    upgrade = scope.facts["upgrade_header"]
    connection = scope.facts["connection_header"]
    lost: list[Setting] = scope.facts["headers_lost"]
    own: list[Setting] = scope.facts["location_proxy_set_header"]
    why = {
        "assumed": "no location in this configuration forwards the Upgrade header, so no "
        "WebSocket handshake can pass; ",
        "likely": "this path looks like a WebSocket endpoint; ",
    }.get(scope.websocket, "")
    if lost and own:
        names = ", ".join(f"{s.name} ({s.where})" for s in lost)
        found.append(
            _finding(
                "headers_not_inherited",
                scope,
                f"this location sets its own proxy_set_header ({own[0].where}), so {names} "
                f"set at an outer level no longer apply here",
                own[0],
                fix,
            )
        )
    elif upgrade is None:
        found.append(
            _finding(
                "upgrade_header_missing",
                scope,
                f"{why}no 'proxy_set_header Upgrade $http_upgrade' applies to "
                f"{scope.name}: nginx drops the hop-by-hop Upgrade header and the backend "
                f"answers without switching protocols",
                scope.facts["proxy_pass"],
                fix,
            )
        )
    upgrading = connection is not None and connection_upgrades(connection.value, scope)
    if not (lost and own) and not upgrading:
        if connection is None:
            message = (
                f"{why}no 'proxy_set_header Connection' applies: nginx sends "
                f"'Connection: close' upstream, so the backend never upgrades"
            )
            at: Setting = scope.facts["proxy_pass"]
        else:
            mapped = scope.facts.get("connection_map")
            if connection.value.startswith("$") and mapped is None:
                detail = f"no map defines {connection.value} (nginx -t: unknown variable)"
            elif mapped is not None:
                detail = (
                    f"the map at {mapped['file']}:{mapped['line']} never yields 'upgrade' "
                    f"from {mapped['source']}"
                )
            else:
                detail = f"'{connection.value}' is not 'upgrade'"
            message = f"Connection header {connection.value}: {detail}"
            at = connection
        found.append(_finding("connection_header_missing", scope, message, at, fix))
    version = scope.settings["proxy_http_version"]
    if version.value.strip() != "1.1":
        state = (
            "not set: nginx's default HTTP/1.0" if version.origin == "default" else _how(version)
        )
        found.append(
            _finding(
                "http_version_missing",
                scope,
                f"proxy_http_version is {state}; upgrades need HTTP/1.1 upstream",
                version if version.origin != "default" else scope.facts["proxy_pass"],
                REMEDIES["nginx"]["http_version"],
            )
        )
    read = scope.settings["proxy_read_timeout"]
    send = scope.settings["proxy_send_timeout"]
    for timer in (read, send, scope.settings["keepalive_timeout"]):
        if timer.origin != "default" and timer.seconds is None:
            found.append(
                _finding(
                    "invalid_value",
                    scope,
                    f"'{timer.shown()}' is not a time nginx reads (a template placeholder left "
                    f"unfilled?): nginx -t rejects it",
                    timer,
                    REMEDIES["nginx"]["timeout"],
                )
            )
    if (
        send.origin != "default"
        and send.seconds is not None
        and read.seconds is not None
        and send.seconds < read.seconds
    ):
        found.append(
            _finding(
                "send_timeout_note",
                scope,
                f"{send.shown()} is shorter than proxy_read_timeout ({fmt_s(read.seconds)}) but "
                f"does not time idle WebSockets: it fires only while a write to the backend "
                f"is blocked",
                send,
            )
        )
    buffering = scope.settings["proxy_buffering"]
    if buffering.origin == "here" and buffering.value == "off":
        found.append(
            _finding(
                "buffering_irrelevant",
                scope,
                "proxy_buffering off is not needed for WebSockets: upgraded connections are "
                "tunnelled unbuffered anyway",
                buffering,
            )
        )
    keepalive = scope.settings["keepalive_timeout"]
    if (
        keepalive.origin == "here"  # written in the WebSocket location: meant for it
        and keepalive.seconds is not None
        and read.seconds is not None
        and keepalive.seconds > read.seconds
    ):
        found.append(
            _finding(
                "keepalive_timeout_confusion",
                scope,
                f"{keepalive.shown()} in this location is longer than proxy_read_timeout "
                f"({fmt_s(read.seconds)}, {_where(read)}), which is what cuts idle WebSockets",
                keepalive,
                REMEDIES["nginx"]["keepalive"],
            )
        )
    return found


def haproxy_rules(scope: Scope) -> list[LintFinding]:
    """``timeout tunnel`` and what applies without it; close options; FIN timeouts."""
    if not _judged(scope):
        return []
    found: list[LintFinding] = []
    tunnel = scope.get("timeout tunnel")
    if tunnel is None:
        pair = [s for s in (scope.get("timeout client"), scope.get("timeout server")) if s]
        if pair:
            shown = " and ".join(
                f"{s.shown()} ({fmt_s(s.seconds or 0.0)}, {s.where})" for s in pair
            )
            found.append(
                _finding(
                    "tunnel_timeout_missing",
                    scope,
                    f"no 'timeout tunnel' applies: upgraded connections are timed by {shown}",
                    min(pair, key=lambda s: s.seconds or 0.0),
                    REMEDIES["haproxy"]["timeout"],
                )
            )
        else:
            found.append(
                _finding(
                    "no_idle_timeout",
                    scope,
                    f"no timeout tunnel, client or server applies to {scope.name}: HAProxy "
                    f"never closes idle tunnels (and warns at start-up)",
                    None,
                    REMEDIES["haproxy"]["timeout"],
                )
            )
    elif (tunnel.seconds or 0) >= 600 and scope.get("timeout client-fin") is None:
        found.append(
            _finding(
                "fin_timeout_missing",
                scope,
                f"{tunnel.shown()} with no 'timeout client-fin': a half-closed tunnel lingers "
                f"for {fmt_s(tunnel.seconds or 0)}",
                tunnel,
                REMEDIES["haproxy"]["fin"],
            )
        )
    for option in scope.facts.get("close_options", []):
        found.append(
            _finding(
                "http_close_option_note",
                scope,
                f"'{option.shown()}' does not change how long WebSockets live; "
                f"{'timeout tunnel' if tunnel else 'timeout client/server'} does",
                option,
            )
        )
    return found


def apache_rules(scope: Scope) -> list[LintFinding]:
    """``upgrade=websocket`` or ``ws://``; which timeout the tunnel really gets."""
    if not _judged(scope):
        return []
    found: list[LintFinding] = []
    if not scope.facts.get("upgrades"):
        why = {
            "assumed": "no ProxyPass in this configuration tunnels WebSockets; ",
            "likely": "this path looks like a WebSocket endpoint; ",
        }.get(scope.websocket, "")
        found.append(
            _finding(
                "upgrade_not_enabled",
                scope,
                f"{why}'{scope.facts['directive'].shown()}' forwards no upgrade: add "
                f"upgrade=websocket (httpd 2.4.47+) or use a ws:// URL with mod_proxy_wstunnel",
                scope.facts["directive"],
                REMEDIES["apache"]["upgrade"],
            )
        )
    winner, backend = apache_tunnel_timeout(scope)
    core = scope.settings["Timeout"]
    if backend is not core and (backend.seconds or 0.0) < (core.seconds or 0.0):
        found.append(
            _finding(
                "timeout_does_not_shorten",
                scope,
                f"{backend.shown()} ({_where(backend)}) is shorter than {core.shown()} "
                f"({_where(core)}), but the tunnel takes the longer of the two: "
                f"{fmt_s(core.seconds or 0.0)}",
                backend,
            )
        )
    websocket_idle = scope.get("ProxyWebsocketIdleTimeout")
    if websocket_idle is not None and scope.facts.get("scheme", "").startswith("http"):
        found.append(
            _finding(
                "websocket_idle_timeout_note",
                scope,
                f"{_how(websocket_idle)} is not read for "
                f"this http(s):// ProxyPass with upgrade=websocket",
                websocket_idle,
            )
        )
    return found


def caddy_rules(scope: Scope) -> list[LintFinding]:
    """Caddy: one-way read_timeout, reload behaviour, header removal."""
    found: list[LintFinding] = []
    read = scope.get("read_timeout")
    if read is not None and read.seconds:
        found.append(
            _finding(
                "read_timeout_one_way",
                scope,
                f"{_how(read)} cuts a WebSocket after "
                f"{fmt_s(read.seconds)} without bytes from the backend, even while the client "
                f"sends: heartbeats must be answered by the backend",
                read,
                REMEDIES["caddy"]["timeout"],
            )
        )
    for removed in scope.facts.get("removed_headers", []):
        found.append(
            _finding(
                "upgrade_header_removed",
                scope,
                f"'{removed.shown()}' removes a header the WebSocket handshake needs",
                removed,
                REMEDIES["caddy"]["upgrade"],
            )
        )
    if scope.get("stream_close_delay") is None:
        found.append(
            _finding(
                "reload_closes_streams",
                scope,
                "no stream_close_delay: every config reload closes this reverse_proxy's "
                "WebSockets at once (close frame 1001), so clients reconnect together",
                None,
                REMEDIES["caddy"]["reload"],
            )
        )
    return found


def kubernetes_rules(scope: Scope) -> list[LintFinding]:
    """ingress-nginx: invalid annotation values."""
    return [
        _finding(
            "invalid_value",
            scope,
            f"{bad.shown()} ({bad.where}) is not a number of seconds; ingress-nginx ignores it "
            f"and the next level applies",
            bad,
            REMEDIES["kubernetes"]["timeout"],
        )
        for bad in scope.facts.get("invalid", [])
    ]


_PRODUCT_RULES: dict[str, Callable[[Scope], list[LintFinding]]] = {
    "nginx": nginx_rules,
    "haproxy": haproxy_rules,
    "apache": apache_rules,
    "caddy": caddy_rules,
    "kubernetes": kubernetes_rules,
}


def _note_findings(facts: ConfigFacts) -> list[LintFinding]:
    return [
        _finding(
            "include_not_found",
            None,
            f"include {note.value} not found at {note.where}; skipped",
            note,
            product=facts.product,
        )
        for note in facts.notes
        if note.name == "include"
    ] + [
        _finding(
            "invalid_value",
            None,
            f"{note.shown()} in a frontend is ignored (HAProxy warns at start-up): set it in "
            f"the backend or in defaults",
            note,
            REMEDIES["haproxy"]["timeout"],
            product=facts.product,
        )
        for note in facts.notes
        if note.context == "ignored in a frontend"
    ]


def lint(configs: list[ConfigFacts], heartbeat_s: float | None = None) -> LintResult:
    """Predict every scope's timeouts and judge every scope: the whole static lint."""
    predictions: list[Prediction] = []
    findings: list[LintFinding] = []
    for facts in configs:
        findings.extend(_note_findings(facts))
        reloads: set[tuple[str | None, int | None]] = set()  # one finding per setting
        for scope in facts.scopes:
            prediction = predict(facts, scope)
            predictions.append(prediction)
            findings.extend(_PRODUCT_RULES[scope.product](scope))
            findings.extend(idle_timeout_rule(prediction, heartbeat_s))
            findings.extend(lifetime_rule(prediction))
            for finding in reload_rule(prediction):
                if (finding.file, finding.line) not in reloads:
                    reloads.add((finding.file, finding.line))
                    finding.scope = None
                    findings.append(finding)
    findings = _dedupe(findings)
    return LintResult(configs, predictions, findings, heartbeat_s=heartbeat_s)


def _dedupe(findings: list[LintFinding]) -> list[LintFinding]:
    """One finding per code, line and message; an inherited setting names every scope it hits."""
    merged: dict[tuple[str, str | None, int | None, str], LintFinding] = {}
    for finding in findings:
        key = (finding.code, finding.file, finding.line, finding.message)
        first = merged.get(key)
        if first is None:
            merged[key] = finding
        elif finding.scope and first.scope and finding.scope not in first.scope.split("; "):
            first.scope = f"{first.scope}; {finding.scope}"
    return list(merged.values())


# --- joined to a measurement -------------------------------------------------------------------


def join_measurement(result: LintResult, measurement: Measurement) -> LintResult:
    """Match a probe's measured idle timeout and lifetime cap to the settings behind them.

    A setting matches within max(0.5 s, 5 %) of the figure, or of the range of figures the probe
    saw (proxies with a one-second tick fire anywhere in it). Where none matches, the finding
    says the drop is elsewhere, with the known intermediaries whose default fits.
    """
    result.measurement = measurement
    figures: list[tuple[Literal["idle_timeout", "lifetime_cap"], float | None]] = [
        ("idle_timeout", measurement.idle_timeout_s),
        ("lifetime_cap", measurement.lifetime_cap_s),
    ]
    for kind, measured in figures:
        if measured is None:
            continue
        low = high = measured
        if kind == "idle_timeout" and measurement.idle_timeout_range_s:
            low, high = min(measurement.idle_timeout_range_s), max(measurement.idle_timeout_range_s)
        slack = tolerance(measured)
        join = Join(kind, measured, slack)
        silent = kind == "idle_timeout" and measurement.culprit == "nat_firewall_idle_drop"
        for prediction in [] if silent else result.predictions:
            predicted = (
                prediction.idle_timeout_s if kind == "idle_timeout" else prediction.lifetime_cap_s
            )
            if predicted is not None and low - slack <= predicted <= high + slack:
                join.matches.append(prediction)
        join.matches.sort(key=lambda p: p.scope.websocket == "no")
        what = "idle timeout" if kind == "idle_timeout" else "lifetime cap"
        if join.matches:
            for prediction in join.matches:
                setting = prediction.idle_setting
                if kind == "lifetime_cap":
                    setting = prediction.lifetime_setting
                assert setting is not None
                place = (
                    f"{setting.name} {setting.value} at {setting.where}"
                    if setting.origin != "default"
                    else f"the default {setting.name} {setting.value} (nothing set)"
                )
                result.findings.append(
                    _finding(
                        "measurement_explained",
                        prediction.scope,
                        f"measured {what} {measured:.1f} s = {place}, in {prediction.scope.name}",
                        setting,
                        _timeout_remedy(prediction.scope)
                        if kind == "idle_timeout"
                        else REMEDIES[prediction.scope.product].get("lifetime"),
                    )
                )
        else:
            join.candidates = (
                [i.name for i in known_defaults_near(measured, slack) if i.kind != "proxy"]
                if kind == "idle_timeout"
                else []
            )
            given = sorted(
                {
                    f"{fmt_s(p.idle_timeout_s)} ({p.idle_setting.where})"
                    for p in result.predictions
                    if p.idle_timeout_s is not None and p.idle_setting is not None
                }
            )
            elsewhere = "a load balancer, CDN, NAT or firewall, or the backend"
            if join.candidates:
                elsewhere = f"known defaults that fit: {', '.join(join.candidates)}"
            seen = f"; these files give {', '.join(given)}" if given else ""
            why = "no setting in these files produces it"
            if silent:
                why = (
                    "the probe saw a silent drop (pings unanswered, no FIN or RST), and the "
                    "proxies configured here close with a FIN"
                )
            result.findings.append(
                _finding(
                    "measurement_unexplained",
                    None,
                    f"measured {what} {measured:.1f} s: {why}{seen}; the drop is elsewhere "
                    f"({elsewhere})",
                    product=result.configs[0].product if result.configs else "",
                )
            )
        result.joins.append(join)
    return result


def findings_at_or_above(result: LintResult, severity: str) -> list[LintFinding]:
    """Findings whose severity is ``severity`` or worse."""
    rank = SEVERITIES.index(severity)
    return [f for f in result.findings if SEVERITIES.index(f.severity) >= rank]
