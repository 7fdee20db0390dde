"""Targets for ``wsdoctor check``: read ``wsdoctor.toml``, expand ``${VAR}``, validate, merge.

A file holds an optional ``[defaults]`` table and one ``[[target]]`` table per endpoint, with
the command line's option names as keys. A target's own keys win over ``[defaults]``, and
expectations given on the command line win over both. Any string may use ``${VAR}`` or
``${VAR:-default}`` so that tokens stay in the environment; numbers may be such strings too.
No network here: every error is a ``ConfigError`` with one line fit for the user.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from wsdoctor.diagnosis.expectations import PROBLEM_CULPRITS, Expectations
from wsdoctor.plan import (
    DEFAULT_OPEN_TIMEOUT_S,
    QUICK_MAX_IDLE_S,
    PlanError,
    parse_header,
    validate_max_idle,
    validate_proxy_url,
    validate_ws_url,
)
from wsdoctor.redact import is_secret_header, redact_url

MIN_SECRET_CHARS = 4
EXPECTATION_KEYS = (
    "require-idle",
    "require-lifetime",
    "max-rtt-ms",
    "max-handshake-ms",
    "fail-on",
    "allow",
)
DEFAULT_KEYS = (*EXPECTATION_KEYS, "headers", "max-idle", "open-timeout")
TARGET_KEYS = ("name", "url", "via-proxy", "proxy", *DEFAULT_KEYS)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_VAR = re.compile(r"(token|secret|password|passwd|key|auth|credential|cookie|session)", re.I)
_LIMITS = {  # key: (lowest, highest, whether the lowest is allowed)
    "require-idle": (0.0, 86400.0, False),
    "require-lifetime": (0.0, 86400.0, False),
    "max-rtt-ms": (0.0, 600_000.0, False),
    "max-handshake-ms": (0.0, 600_000.0, False),
    "max-idle": (2.0, 86400.0, True),
    "open-timeout": (0.1, 600.0, True),
}


class ConfigError(ValueError):
    """A target that cannot be checked, with a one-line message for the user."""


@dataclass(frozen=True)
class TargetSpec:
    """One endpoint to check, validated: where, how to connect, and what it must show."""

    name: str
    url: str
    via: str | None
    headers: tuple[tuple[str, str], ...]
    expectations: Expectations
    idle_budget_s: float | None  # None: no idle stage is needed
    open_timeout_s: float
    secrets: tuple[str, ...]  # values that must never be printed


Describe = Callable[[str], str]
"""Names a key in messages: ``--require-idle``, or ``wsdoctor.toml: [[target]] 2 ('api') url``."""


def cli_key(key: str) -> str:
    """How a key reads on the command line."""
    return {"url": "URL", "headers": "-H/--header"}.get(key, f"--{key}")


class _Layer:
    """Typed values from one source (command line, ``[defaults]`` or a target)."""

    def __init__(self, describe: Describe, environ: Mapping[str, str] | None) -> None:
        self.describe = describe
        self.environ = environ  # None: no ${VAR} expansion (the shell already did it)
        self.values: dict[str, Any] = {}
        self.secrets: list[str] = []
        self.expanded: list[str] = []  # values the last text() took from the environment

    def text(self, key: str, raw: object) -> str:
        """A string value, with ``${VAR}`` expanded when reading a file."""
        if not isinstance(raw, str):
            raise ConfigError(f"{self.describe(key)} must be a string")
        if self.environ is None:
            return raw
        if "${" in _VAR.sub("", raw):
            raise ConfigError(f"{self.describe(key)}: malformed ${{...}} reference")
        used: list[tuple[str, str]] = []

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self.environ.get(name) if self.environ is not None else None
            if not value and default is not None:
                value = default
            if value is None:
                raise ConfigError(f"{self.describe(key)}: environment variable {name} is not set")
            used.append((name, value))
            return value

        expanded = _VAR.sub(substitute, raw)
        self.expanded = [value for _, value in used]
        self.secrets.extend(v for name, v in used if _SECRET_VAR.search(name))
        return expanded

    def number(self, key: str, raw: object) -> float:
        """A number within the key's limits; a string must expand to one."""
        if isinstance(raw, str):
            text = self.text(key, raw).strip()
            try:
                raw = float(text)
            except ValueError:
                raise ConfigError(f"{self.describe(key)} must be a number, got {text!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise ConfigError(f"{self.describe(key)} must be a number")
        low, high, inclusive = _LIMITS[key]
        if not (low <= raw if inclusive else low < raw) or raw > high:
            lowest = "at least" if inclusive else "above"
            raise ConfigError(
                f"{self.describe(key)} must be {lowest} {low:g} and at most {high:g}, got {raw:g}"
            )
        return float(raw)

    def culprits(self, key: str, raw: object) -> tuple[str, ...]:
        """Culprit codes from a list or a comma-separated string; each must be known."""
        items = raw if isinstance(raw, list) else [raw]
        names = [n.strip() for item in items for n in self.text(key, item).split(",")]
        names = [n for n in names if n]
        if not names:
            raise ConfigError(f"{self.describe(key)} needs at least one culprit")
        for name in names:
            if name not in PROBLEM_CULPRITS:
                raise ConfigError(
                    f"{self.describe(key)}: unknown culprit {name!r} "
                    f"(known: {', '.join(PROBLEM_CULPRITS)})"
                )
        return tuple(dict.fromkeys(names))

    def headers(self, key: str, raw: object) -> dict[str, str]:
        """Headers from a table (file) or ``Name: value`` strings (command line)."""
        pairs: Iterable[tuple[Any, Any]] | None = raw.items() if isinstance(raw, dict) else None
        if pairs is None:
            if not isinstance(raw, list):
                raise ConfigError(f"{self.describe(key)} must be a table of name = value")
            pairs = [self._header_line(key, line) for line in raw]
        out: dict[str, str] = {}
        for name, raw_value in pairs:
            self.expanded = []
            value = self.text(f"{key}.{name}", raw_value)
            try:
                name, value = parse_header(f"{name}: {value}")
            except PlanError as exc:
                raise ConfigError(f"{self.describe(key)}: {exc}") from None
            if is_secret_header(name) or self.expanded:
                self.secrets.extend([value, *self.expanded])
            out[name] = value
        return out

    def _header_line(self, key: str, line: object) -> tuple[str, str]:
        try:
            return parse_header(str(line))
        except PlanError as exc:
            raise ConfigError(f"{self.describe(key)}: {exc}") from None

    def url(self, key: str, raw: object) -> str:
        """A ws(s):// URL, or for proxies also an http(s)/socks forward proxy URL."""
        text = self.text(key, raw)
        try:
            if key == "url" or (key == "via-proxy" and text.startswith(("ws://", "wss://"))):
                return validate_ws_url(text)
            return validate_proxy_url(text)
        except PlanError as exc:
            raise ConfigError(f"{self.describe(key)}: {exc}") from None

    def read(self, table: Mapping[str, Any], allowed: tuple[str, ...]) -> _Layer:
        """Type every key of ``table``; unknown keys are errors (with a suggestion)."""
        for key, raw in table.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{self.describe(key)}: unknown key{hint}")
            if raw is None:
                continue
            if key in _LIMITS:
                self.values[key] = self.number(key, raw)
            elif key in ("fail-on", "allow"):
                self.values[key] = self.culprits(key, raw)
            elif key == "headers":
                self.values[key] = self.headers(key, raw)
            elif key in ("url", "via-proxy", "proxy"):
                self.values[key] = self.url(key, raw)
            else:
                name = self.text(key, raw).strip()
                if not name or any(c in name for c in "\r\n"):
                    raise ConfigError(f"{self.describe(key)} must be a non-empty single line")
                self.values[key] = name
        return self


def _labelled(label: str, key: str) -> str:
    return f"{label} {key}"


def _default_name(url: str) -> str:
    parts = urlsplit(redact_url(url))
    return f"{parts.netloc}{parts.path or '/'}"


def _idle_budget(expectations: Expectations, max_idle: float | None) -> float | None:
    """How long the idle stage must run: enough to prove every requirement, or none at all."""
    needs = [
        v
        for v in (max_idle, expectations.require_idle_s, expectations.require_lifetime_s)
        if v is not None
    ]
    if needs:
        return validate_max_idle(max(2.0, *needs))
    if expectations.failing_culprits() is not None:
        return QUICK_MAX_IDLE_S
    return None


def _spec(name: str, layers: list[_Layer], describe: Describe) -> TargetSpec:
    """Merge layers (later ones win; headers merge by name) into one validated target."""
    merged: dict[str, Any] = {}
    headers: dict[str, str] = {}
    for layer in layers:
        merged.update(layer.values)
        headers.update(layer.values.get("headers", {}))
    if "url" not in merged:
        raise ConfigError(f"{describe('url')} is missing")
    if "via-proxy" in merged and "proxy" in merged:
        raise ConfigError(f"{describe('proxy')}: give via-proxy or proxy, not both")
    expectations = Expectations(
        require_idle_s=merged.get("require-idle"),
        require_lifetime_s=merged.get("require-lifetime"),
        max_rtt_ms=merged.get("max-rtt-ms"),
        max_handshake_ms=merged.get("max-handshake-ms"),
        fail_on=merged.get("fail-on"),
        allow=merged.get("allow", ()),
    )
    secrets = {s for layer in layers for s in layer.secrets if len(s) >= MIN_SECRET_CHARS}
    return TargetSpec(
        name=name,
        url=merged["url"],
        via=merged.get("via-proxy") or merged.get("proxy"),
        headers=tuple(headers.items()),
        expectations=expectations,
        idle_budget_s=_idle_budget(expectations, merged.get("max-idle")),
        open_timeout_s=merged.get("open-timeout", DEFAULT_OPEN_TIMEOUT_S),
        secrets=tuple(sorted(secrets, key=len, reverse=True)),
    )


def command_line_layer(settings: Mapping[str, Any]) -> _Layer:
    """Type the command line's options (keys as in the file, values as typer parsed them)."""
    return _Layer(cli_key, None).read(
        {k: v for k, v in settings.items() if v is not None}, TARGET_KEYS
    )


def command_line_targets(urls: list[str], options: _Layer) -> list[TargetSpec]:
    """One target per URL given on the command line, with the command line's options."""
    targets: list[TargetSpec] = []
    seen: dict[str, int] = {}
    for url in urls:
        own = _Layer(cli_key, None)
        own.read({"url": url}, TARGET_KEYS)
        name = _default_name(own.values["url"])
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        targets.append(_spec(name, [options, own], own.describe))
    return targets


def _parse_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def file_targets(
    path: str, environ: Mapping[str, str], overrides: _Layer | None = None
) -> list[TargetSpec]:
    """The targets of a ``wsdoctor.toml`` file; ``overrides`` (command line) win over it."""
    data = _parse_file(path)
    for key in data:
        if key not in ("defaults", "target"):
            close = difflib.get_close_matches(key, ("defaults", "target"), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown table {key!r}{hint}")
    defaults = data.get("defaults", {})
    tables = data.get("target", [])
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: [defaults] must be a table")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: needs at least one [[target]] table")
    base = _Layer(lambda key: f"{path}: [defaults] {key}", environ).read(defaults, DEFAULT_KEYS)
    targets: list[TargetSpec] = []
    for index, table in enumerate(tables, 1):
        label = f"{path}: [[target]] {index}"
        if isinstance(table.get("name"), str):
            label += f" ({table['name']!r})"
        layer = _Layer(functools.partial(_labelled, label), environ).read(table, TARGET_KEYS)
        url = layer.values.get("url")
        name = layer.values.get("name") or (_default_name(url) if url else str(index))
        if any(t.name == name for t in targets):
            raise ConfigError(f"{label}: another target is already named {name!r}")
        layers = [base, layer] + ([overrides] if overrides else [])
        targets.append(_spec(name, layers, layer.describe))
    return targets
