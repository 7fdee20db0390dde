"""Apache httpd configuration into facts: ``ProxyPass`` lines and the timeouts they meet.

Sections (``<VirtualHost>``, ``<Location>``, ``<IfModule>``...) nest; ``Include`` and
``IncludeOptional`` are followed (globs, relative to ``ServerRoot`` or the including file).
Each ``ProxyPass`` (or ``ProxyPassMatch``) is a scope, with the core ``Timeout``,
``ProxyTimeout`` and ``ProxyWebsocketIdleTimeout`` of its virtual host (else the main server,
else the default) and its own ``timeout=``.
"""

from __future__ import annotations

import glob
import os
import shlex
from dataclasses import dataclass, field

from wsdoctor.lint.common import read_text, shown_path
from wsdoctor.lint.facts import ConfigFacts, LintInputError, Scope, Setting, path_looks_websocket

DEFAULT_TIMEOUT = "60"
"""httpd's compiled-in ``Timeout`` (Debian's apache2.conf sets 300)."""

SERVER_SETTINGS = ("Timeout", "ProxyTimeout", "ProxyWebsocketIdleTimeout")


@dataclass
class _Line:
    words: list[str]
    file: str
    line: int


@dataclass
class _Level:
    label: str
    settings: dict[str, Setting] = field(default_factory=dict)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its first line number."""
    out: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        out.append((start, pending + raw))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def _seconds(value: str, name: str, file: str, line: int) -> float:
    try:
        return float(int(value))
    except ValueError:
        raise LintInputError(f"{name}: '{value}' is not a number of seconds", file, line) from None


def parse_apache(paths: list[str]) -> ConfigFacts:
    """Read Apache httpd configuration files (and what they include) into facts."""
    facts = ConfigFacts("apache")
    state = {"server_root": None}
    for path in paths:
        lines = _read(path, facts, state, set(), None, None)
        _walk(lines, facts)
    _intent(facts)
    return facts


def _read(
    path: str,
    facts: ConfigFacts,
    state: dict,
    active: set[str],
    by: str | None,
    line: int | None,
) -> list[_Line]:
    absolute = os.path.abspath(path)
    if absolute in active:
        raise LintInputError("include loop", by, line)
    text = read_text(path, line, by)
    file = shown_path(path)
    if file not in facts.files:
        facts.files.append(file)
    out: list[_Line] = []
    for number, logical in _logical_lines(text):
        stripped = logical.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped, comments=False, posix=True)
        except ValueError as error:
            raise LintInputError(str(error), file, number) from None
        if not words:
            continue
        keyword = words[0].lower()
        if keyword == "serverroot" and len(words) > 1:
            state["server_root"] = words[1]
        if keyword in ("include", "includeoptional") and len(words) > 1:
            pattern = words[1]
            if not os.path.isabs(pattern):
                base = state["server_root"] or os.path.dirname(absolute)
                pattern = os.path.join(base, pattern)
            matches = sorted(glob.glob(pattern))
            if os.path.isdir(pattern):
                matches = sorted(glob.glob(os.path.join(pattern, "*")))
            if not matches and keyword == "include" and not glob.has_magic(pattern):
                facts.notes.append(
                    Setting("include", words[1], None, file, number, "here", "Include")
                )
            for match in matches:
                out.extend(_read(match, facts, state, active | {absolute}, file, number))
            continue
        out.append(_Line(words, file, number))
    return out


def _walk(lines: list[_Line], facts: ConfigFacts) -> None:
    """Follow sections; collect the server-level timeouts and every ProxyPass."""
    stack: list[tuple[str, _Line]] = []
    main = _Level("main server")
    vhost: _Level | None = None
    location: str | None = None
    pending: list[tuple[_Line, _Level | None, str | None]] = []
    for item in lines:
        first = item.words[0]
        if first.startswith("</"):
            name = first[2:].rstrip(">").lower()
            if not stack or stack[-1][0] != name:
                expected = (
                    f"</{stack[-1][1].words[0][1:].rstrip('>')}>" if stack else "no closing tag"
                )
                raise LintInputError(
                    f"{first} does not close anything here (expected {expected})",
                    item.file,
                    item.line,
                )
            stack.pop()
            if name == "virtualhost":
                vhost = None
            if name in ("location", "locationmatch"):
                location = None
            continue
        if first.startswith("<"):
            name = first[1:].rstrip(">").lower()
            stack.append((name, item))
            argument = " ".join(item.words[1:]).rstrip(">").strip().strip('"')
            if not argument and first.endswith(">"):
                argument = ""
            if name == "virtualhost":
                vhost = _Level(f"<VirtualHost {argument}>")
            elif name in ("location", "locationmatch"):
                location = argument
            continue
        keyword = first
        canonical = next((s for s in SERVER_SETTINGS if s.lower() == keyword.lower()), None)
        if canonical and len(item.words) > 1:
            level = vhost or main
            seconds = _seconds(item.words[1], canonical, item.file, item.line)
            level.settings[canonical] = Setting(
                canonical, item.words[1], seconds, item.file, item.line, "here", level.label
            )
        elif keyword.lower() in ("proxypass", "proxypassmatch") or (
            keyword.lower() == "rewriterule" and _proxies_websocket(item.words)
        ):
            pending.append((item, vhost, location))
    if stack:
        name, opened = stack[-1]
        raise LintInputError(f"<{name}> is never closed", opened.file, opened.line)
    for item, host, location_path in pending:
        scope = _proxy_pass(item, host, main, location_path)
        if scope is not None:
            facts.scopes.append(scope)


def _proxies_websocket(words: list[str]) -> bool:
    """``RewriteRule PATTERN ws://... [P]``: the mod_rewrite way to tunnel WebSockets."""
    if len(words) < 3 or not words[2].lower().startswith(("ws://", "wss://")):
        return False
    flags = words[3].strip("[]").upper().split(",") if len(words) > 3 else []
    return "P" in flags or "PROXY" in flags


def _resolve(name: str, vhost: _Level | None, main: _Level) -> Setting | None:
    if vhost is not None and name in vhost.settings:
        return vhost.settings[name]
    if name in main.settings:
        found = main.settings[name]
        if vhost is None:
            return found
        return Setting(
            found.name, found.value, found.seconds, found.file, found.line, "inherited", main.label
        )
    return None


def _proxy_pass(
    item: _Line, vhost: _Level | None, main: _Level, location: str | None
) -> Scope | None:
    words = item.words[1:]
    if item.words[0].lower() == "rewriterule":
        words = words[:2]  # pattern, ws:// target; the flags are not parameters
    if location is not None and words and "://" in words[0]:
        path, rest = location, words
    elif len(words) >= 2:
        path, rest = words[0], words[1:]
    else:
        raise LintInputError(f"{item.words[0]} needs a path and a URL", item.file, item.line)
    url, params = rest[0], rest[1:]
    if url == "!":
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    parameters = dict(p.split("=", 1) for p in params if "=" in p)
    settings: dict[str, Setting] = {}
    timeout = _resolve("Timeout", vhost, main)
    settings["Timeout"] = timeout or Setting(
        "Timeout", DEFAULT_TIMEOUT, float(DEFAULT_TIMEOUT), origin="default", context="httpd"
    )
    for name in ("ProxyTimeout", "ProxyWebsocketIdleTimeout"):
        found = _resolve(name, vhost, main)
        if found is not None:
            settings[name] = found
    if "timeout" in parameters:
        value = parameters["timeout"]
        settings["timeout="] = Setting(
            "timeout=",
            value,
            _seconds(value, "timeout=", item.file, item.line),
            item.file,
            item.line,
            "here",
            "ProxyPass",
        )
    directive = Setting(item.words[0], " ".join(words), None, item.file, item.line, "here", "")
    upgrades = scheme in ("ws", "wss") or bool(parameters.get("upgrade"))
    where = vhost.label if vhost else "main server"
    return Scope(
        "apache",
        item.words[0],
        f"{where} {item.words[0]} {path}",
        item.file,
        item.line,
        "declared" if upgrades else "no",
        settings,
        {
            "path": path,
            "url": url,
            "scheme": scheme,
            "upgrades": upgrades,
            "upgrade": parameters.get("upgrade"),
            "directive": directive,
        },
    )


def _intent(facts: ConfigFacts) -> None:
    for scope in facts.scopes:
        if scope.websocket == "no" and path_looks_websocket(scope.facts["path"]):
            scope.websocket = "likely"
    if facts.scopes and not any(s.websocket != "no" for s in facts.scopes):
        for scope in facts.scopes:
            scope.websocket = "assumed"
