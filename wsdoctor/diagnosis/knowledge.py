"""What is known about intermediaries, as data: default timeouts, how they close, fixes.

Facts come from ``shared/intermediaries.md`` (source keys in ``source``). Unconfirmed
values are left out rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Intermediary:
    """One kind of proxy, load balancer, CDN or PaaS router."""

    key: str
    name: str
    kind: str  # proxy, load_balancer, cdn, paas
    idle_timeout_s: float | None
    setting: str
    snippet: str
    closes_with: str
    source: str
    lifetime_cap_s: float | None = None


INTERMEDIARIES: tuple[Intermediary, ...] = (
    Intermediary(
        "nginx",
        "nginx",
        "proxy",
        60.0,
        "proxy_read_timeout / proxy_send_timeout",
        "location /ws/ { proxy_read_timeout 3600s; proxy_send_timeout 3600s; }",
        "FIN, no close frame",
        "N1 N2",
    ),
    Intermediary(
        "haproxy",
        "HAProxy",
        "proxy",
        None,
        "timeout tunnel",
        "defaults\n    timeout tunnel 1h",
        "FIN to the client, RST to the backend",
        "H1",
    ),
    Intermediary(
        "apache",
        "Apache httpd",
        "proxy",
        60.0,
        "ProxyPass timeout= (or Timeout)",
        'ProxyPass "/ws/" "ws://backend/ws/" upgrade=websocket timeout=3600',
        "FIN, no close frame",
        "A1",
    ),
    Intermediary(
        "envoy",
        "Envoy",
        "proxy",
        300.0,
        "stream_idle_timeout (HTTP connection manager)",
        "stream_idle_timeout: 3600s",
        "stream reset, no close frame",
        "E1 E2",
    ),
    Intermediary(
        "caddy",
        "Caddy",
        "proxy",
        None,
        "reverse_proxy stream_timeout / transport read_timeout",
        "reverse_proxy backend:8080 {\n    stream_timeout 24h\n}",
        "FIN; close frame 1001 on config reload",
        "C1",
    ),
    Intermediary(
        "squid",
        "Squid",
        "proxy",
        900.0,
        "read_timeout",
        "read_timeout 60 minutes",
        "FIN",
        "S1",
    ),
    Intermediary(
        "tinyproxy",
        "tinyproxy",
        "proxy",
        600.0,
        "Timeout",
        "Timeout 3600",
        "FIN",
        "P1",
    ),
    Intermediary(
        "yarp",
        "YARP",
        "proxy",
        100.0,
        "ActivityTimeout",
        '"HttpRequest": { "ActivityTimeout": "01:00:00" }',
        "unconfirmed",
        "Y1",
    ),
    Intermediary(
        "alb",
        "AWS Application Load Balancer",
        "load_balancer",
        60.0,
        "idle_timeout.timeout_seconds",
        "aws elbv2 modify-load-balancer-attributes --attributes "
        "Key=idle_timeout.timeout_seconds,Value=3600",
        "connection closed",
        "W1",
    ),
    Intermediary(
        "nlb",
        "AWS Network Load Balancer",
        "load_balancer",
        350.0,
        "tcp.idle_timeout.seconds",
        "aws elbv2 modify-listener-attributes --attributes Key=tcp.idle_timeout.seconds,Value=3600",
        "silent; RST on the next packet",
        "W2",
    ),
    Intermediary(
        "cloudfront",
        "Amazon CloudFront",
        "cdn",
        600.0,
        "none (not adjustable)",
        "send a heartbeat well under 10 minutes",
        "unconfirmed",
        "W4",
    ),
    Intermediary(
        "cloudflare",
        "Cloudflare",
        "cdn",
        100.0,
        "Enterprise only (Proxy Read Timeout)",
        "send a heartbeat every 30-50 s",
        "unconfirmed",
        "F1 F2 F3",
    ),
    Intermediary(
        "fastly",
        "Fastly",
        "cdn",
        None,
        "unconfirmed",
        "send a heartbeat",
        "unconfirmed",
        "Q1",
    ),
    Intermediary(
        "akamai",
        "Akamai",
        "cdn",
        None,
        "unconfirmed",
        "send a heartbeat",
        "unconfirmed",
        "Q2",
    ),
    Intermediary(
        "google",
        "Google Cloud load balancer",
        "load_balancer",
        None,
        "backend service timeoutSec (a lifetime, idle or not)",
        "gcloud compute backend-services update NAME --timeout=3600",
        "unconfirmed",
        "G2",
        lifetime_cap_s=30.0,
    ),
    Intermediary(
        "heroku",
        "Heroku router",
        "paas",
        55.0,
        "none (rolling 55 s window)",
        "send a heartbeat every 25-30 s",
        "unconfirmed",
        "R1",
    ),
    Intermediary(
        "azure_appgw",
        "Azure Application Gateway",
        "load_balancer",
        None,
        "backend HTTP setting request timeout",
        "az network application-gateway http-settings update --timeout 3600 ...",
        "unconfirmed",
        "Z2",
    ),
    Intermediary(
        "azure_frontdoor",
        "Azure Front Door",
        "cdn",
        300.0,
        "none (fixed 5 min idle, 4 h lifetime)",
        "send a heartbeat every 2 minutes or less",
        "unconfirmed",
        "Z3",
        lifetime_cap_s=14400.0,
    ),
    Intermediary(
        "traefik",
        "Traefik",
        "proxy",
        None,
        "entryPoints.*.transport.respondingTimeouts (no idle timeout after upgrade)",
        "entryPoints:\n  websecure:\n    transport:\n      respondingTimeouts:\n"
        "        idleTimeout: 3600s",
        "FIN",
        "T1 G1",
    ),
    Intermediary(
        "fly",
        "Fly.io proxy",
        "paas",
        None,
        "[http_service.http_options] idle_timeout",
        "[http_service.http_options]\n  idle_timeout = 3600",
        "unconfirmed",
        "R2",
    ),
)

BY_KEY = {i.key: i for i in INTERMEDIARIES}

GENERIC_PROXY_SETTINGS = (
    "nginx proxy_read_timeout/proxy_send_timeout, HAProxy timeout tunnel, Apache ProxyPass "
    "timeout=, Envoy stream_idle_timeout, AWS ALB idle_timeout.timeout_seconds"
)


def known_defaults_near(idle_s: float, tolerance_s: float) -> list[Intermediary]:
    """Intermediaries whose default idle timeout is within ``tolerance_s`` of ``idle_s``."""
    return [
        i
        for i in INTERMEDIARIES
        if i.idle_timeout_s is not None and abs(i.idle_timeout_s - idle_s) <= tolerance_s
    ]


@dataclass(frozen=True)
class MessageLimit:
    """A fixed message or frame size limit of an intermediary, and how it closes above it."""

    name: str
    max_bytes: int
    close_code: int | None
    note: str
    source: str


MESSAGE_LIMITS: tuple[MessageLimit, ...] = (
    MessageLimit(
        "AWS API Gateway WebSocket",
        32 * 1024,
        1009,
        "frames over 32 KB are closed with 1009; the limit is not adjustable",
        "W3",
    ),
)


def known_message_limits_within(
    low_bytes: int, high_bytes: int, close_code: int | None
) -> list[MessageLimit]:
    """Known limits that fit a measurement: ``low_bytes`` passed, ``high_bytes`` did not.

    "32 KB" may mean 32,000 or 32,768 bytes, so a limit matches within 3 % of the bracket.
    """
    return [
        m
        for m in MESSAGE_LIMITS
        if low_bytes <= m.max_bytes * 1.03
        and m.max_bytes * 0.97 < high_bytes
        and (m.close_code is None or m.close_code == close_code)
    ]


def heartbeat_interval_for(idle_s: float) -> float:
    """A heartbeat interval that keeps a path with idle timeout ``idle_s`` alive: about half."""
    half = idle_s / 2
    return round(half, 1) if half < 10 else float(int(half))
