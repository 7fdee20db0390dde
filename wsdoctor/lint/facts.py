"""What configuration parsers produce: settings with the file and line they come from.

Parsers read a product's configuration into :class:`ConfigFacts`: every place that proxies
WebSocket upgrades (an nginx ``location``, an HAProxy frontend and backend, an Apache
``ProxyPass``, a Caddy ``reverse_proxy``, a Kubernetes Ingress) as a :class:`Scope` holding the
settings that apply there, each written where it stands, inherited from an outer level, or the
product's default. Parsers do not judge; ``wsdoctor.diagnosis.lint_rules`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Origin = Literal["here", "inherited", "default"]
WebSocketIntent = Literal["declared", "likely", "assumed", "no"]

PRODUCTS = ("nginx", "haproxy", "apache", "caddy", "kubernetes")


class LintInputError(Exception):
    """Bad input: an unreadable file or a parse error, at ``file:line`` where known."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = self.file or ""
        if self.file and self.line:
            where = f"{self.file}:{self.line}"
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Setting:
    """One setting as it applies to a scope.

    ``value`` is the text as written (or the default's text); ``seconds`` its duration where it
    is one (``None``: not a duration, or no limit); ``file``/``line`` where it is written (none
    for a default); ``context`` the level it is written at (``http``, ``server``, ``defaults``,
    ``ConfigMap ingress-nginx/controller``...).
    """

    name: str
    value: str
    seconds: float | None = None
    file: str | None = None
    line: int | None = None
    origin: Origin = "here"
    context: str = ""

    @property
    def where(self) -> str:
        """``file:line``, or a note that the default applies."""
        if self.file is None:
            return "default"
        return f"{self.file}:{self.line}" if self.line else self.file

    def shown(self) -> str:
        """The setting as a person would write it: ``proxy_read_timeout 7s``."""
        if self.origin == "default":
            return f"{self.name} (not set; default {self.value})"
        return f"{self.name} {self.value}".strip()


@dataclass
class Scope:
    """One place that proxies (or should proxy) WebSocket upgrades, with its settings.

    ``settings`` maps a product's setting names to what applies here (including defaults);
    ``facts`` holds product-specific observations the rules need (headers, modes, flags).
    """

    product: str
    kind: str
    name: str
    file: str
    line: int
    websocket: WebSocketIntent = "declared"
    settings: dict[str, Setting] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Setting | None:
        """The setting called ``name`` here, or None."""
        return self.settings.get(name)


@dataclass
class ConfigFacts:
    """Everything one product's configuration says that matters to WebSockets."""

    product: str
    files: list[str] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    globals: dict[str, Setting] = field(default_factory=dict)
    notes: list[Setting] = field(default_factory=list)
    """Settings the rules mention without a scope (e.g. a missing include, skipped)."""


WEBSOCKET_PATH_WORDS = (
    "ws",
    "wss",
    "websocket",
    "websockets",
    "socket",
    "sockets",
    "socket.io",
    "sockjs",
    "cable",
    "signalr",
    "hub",
    "hubs",
    "realtime",
    "graphql-ws",
    "subscriptions",
)


def path_looks_websocket(path: str) -> bool:
    """Whether a URL path names a WebSocket endpoint by its usual words (``/ws/``...)."""
    import re

    words = [w for w in re.split(r"[/^$*?()\[\]\\|~= +]+", path.lower()) if w]
    return any(w in WEBSOCKET_PATH_WORDS for w in words)


UNITS_S = {
    "": 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "M": 2592000.0,
    "y": 31536000.0,
}


def nginx_seconds(text: str) -> float | None:
    """An nginx time (``7s``, ``1m30s``, ``1500ms``, ``60``); None when not one."""
    import re

    text = text.strip()
    if not text:
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)?", text)
    if "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * UNITS_S[u] for n, u in parts)


def connection_upgrades(value: str, scope: Scope) -> bool:
    """Whether a ``Connection`` header value sends ``upgrade`` when the client asks for it."""
    text = value.strip().lower()
    if "upgrade" in text and not text.startswith("$"):
        return True
    if text in ("$http_connection",):
        return True
    found = scope.facts.get("connection_map")
    if found is None:
        return False
    return found["source"] == "$http_upgrade" and any(
        "upgrade" in v.lower() for v in found["values"]
    )
