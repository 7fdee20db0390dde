"""HAProxy configuration into facts: sections, ``defaults`` inheritance, timeouts.

Each proxy section takes its settings from the ``defaults`` section before it (or the one named
with ``from``), and overrides them with its own. A WebSocket through HAProxy meets the client
side's timeouts from the frontend and the server side's from the backend, so every frontend and
backend pair it routes to (``default_backend``, ``use_backend``) is a scope, as is a ``listen``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wsdoctor.lint.common import read_text, shown_path
from wsdoctor.lint.facts import (
    ConfigFacts,
    LintInputError,
    Scope,
    Setting,
    WebSocketIntent,
    path_looks_websocket,
)

SECTIONS = {
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "resolvers",
    "userlist",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "crt-store",
    "traces",
    "acme",
}
PROXIES = {"defaults", "frontend", "backend", "listen"}
CLIENT_SIDE = ("timeout client", "timeout client-fin")
SERVER_SIDE = ("timeout server", "timeout tunnel", "timeout server-fin")
CLOSE_OPTIONS = ("http-server-close", "httpclose", "forceclose")

UNITS = {"us": 1e-6, "ms": 1e-3, "": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def haproxy_seconds(text: str) -> float | None:
    """An HAProxy time: milliseconds unless a unit follows (``3s``, ``1m``, ``500``)."""
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", text.strip())
    if match is None:
        return None
    return int(match.group(1)) * UNITS[match.group(2) or ""]


def tokens(line: str) -> list[str]:
    """The words of one line, with quotes and backslash escapes, up to an unquoted ``#``."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and quote != "'" and i + 1 < len(line):
            word.append(line[i + 1])
            in_word = True
            i += 2
            continue
        if quote:
            if char == quote:
                quote = ""
            else:
                word.append(char)
        elif char in "\"'":
            quote = char
            in_word = True
        elif char == "#":
            break
        elif char.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            word.append(char)
            in_word = True
        i += 1
    if quote:
        raise ValueError("unterminated quote")
    if in_word:
        words.append("".join(word))
    return words


@dataclass
class _Section:
    kind: str
    name: str
    file: str
    line: int
    parent: str | None = None  # ``from`` a named defaults section
    defaults: _Section | None = None
    settings: dict[str, Setting] = field(default_factory=dict)
    mode: Setting | None = None
    close_options: list[Setting] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    servers: int = 0
    upgrade_routes: list[str] = field(default_factory=list)
    """Backends a ``use_backend`` sends upgrades to (its condition names Upgrade or websocket)."""
    acls: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}".strip()


def parse_haproxy(paths: list[str]) -> ConfigFacts:
    """Read HAProxy configuration files (in order, like ``haproxy -f a -f b``) into facts."""
    facts = ConfigFacts("haproxy")
    sections: list[_Section] = []
    named_defaults: dict[str, _Section] = {}
    current_defaults: _Section | None = None
    for path in paths:
        text = read_text(path)
        file = shown_path(path)
        facts.files.append(file)
        section: _Section | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            try:
                words = tokens(raw)
            except ValueError as error:
                raise LintInputError(str(error), file, number) from None
            if not words:
                continue
            keyword = words[0]
            if keyword in SECTIONS:
                section = _Section(keyword, words[1] if len(words) > 1 else "", file, number)
                if "from" in words[1:]:
                    index = words.index("from")
                    if index + 1 >= len(words):
                        raise LintInputError("'from' needs a defaults section name", file, number)
                    section.parent = words[index + 1]
                    if section.name == "from":
                        section.name = ""
                if keyword in PROXIES:
                    if section.parent is not None:
                        if section.parent not in named_defaults:
                            raise LintInputError(
                                f"no defaults section named '{section.parent}' before this",
                                file,
                                number,
                            )
                        section.defaults = named_defaults[section.parent]
                    elif keyword != "defaults":
                        section.defaults = current_defaults
                    if keyword == "defaults":
                        if section.parent is None:
                            section.defaults = None
                        current_defaults = section
                        if section.name:
                            named_defaults[section.name] = section
                sections.append(section)
                continue
            if section is None:
                raise LintInputError(
                    f"'{keyword}' outside any section (global, defaults, frontend, backend, "
                    f"listen)",
                    file,
                    number,
                )
            _statement(section, words, file, number, facts)
    _scopes(facts, [s for s in sections if s.kind in ("frontend", "backend", "listen")])
    return facts


def _statement(
    section: _Section, words: list[str], file: str, number: int, facts: ConfigFacts
) -> None:
    keyword = words[0]
    context = section.label
    if section.kind == "global" and keyword == "hard-stop-after" and len(words) > 1:
        seconds = haproxy_seconds(words[1])
        if seconds is None:
            raise LintInputError(f"hard-stop-after: invalid time '{words[1]}'", file, number)
        facts.globals["hard-stop-after"] = Setting(
            "hard-stop-after", words[1], seconds, file, number, "here", "global"
        )
    elif keyword == "timeout" and len(words) >= 2:
        if len(words) < 3:
            raise LintInputError(f"timeout {words[1]}: missing value", file, number)
        seconds = haproxy_seconds(words[2])
        if seconds is None:
            raise LintInputError(f"timeout {words[1]}: invalid time '{words[2]}'", file, number)
        name = f"timeout {words[1]}"
        section.settings[name] = Setting(name, words[2], seconds, file, number, "here", context)
        if section.kind == "frontend" and name in ("timeout tunnel", "timeout server"):
            facts.notes.append(  # HAProxy ignores backend timeouts in a frontend
                Setting(name, words[2], seconds, file, number, "here", "ignored in a frontend")
            )
    elif keyword == "mode" and len(words) > 1:
        section.mode = Setting("mode", words[1], None, file, number, "here", context)
    elif keyword == "option" and len(words) > 1 and words[1] in CLOSE_OPTIONS:
        section.close_options.append(
            Setting("option", words[1], None, file, number, "here", context)
        )
    elif keyword in ("server", "server-template"):
        section.servers += 1
    elif keyword == "acl" and len(words) > 2:
        section.acls[words[1]] = section.acls.get(words[1], "") + " " + " ".join(words[2:])
    elif keyword in ("default_backend", "use_backend") and len(words) > 1:
        section.backends.append(words[1])
        condition = " ".join(words[2:])
        condition += " ".join(section.acls.get(w.lstrip("!"), "") for w in words[2:])
        if keyword == "use_backend" and re.search(r"upgrade|websocket", condition, re.I):
            section.upgrade_routes.append(words[1])


def _chain(section: _Section | None) -> list[_Section]:
    """The section, then its defaults, then theirs (``defaults b from a``)."""
    chain: list[_Section] = []
    while section is not None and section not in chain:
        chain.append(section)
        section = section.defaults
    return chain


def _lookup(section: _Section, name: str) -> Setting | None:
    for depth, level in enumerate(_chain(section)):
        if name in level.settings:
            found = level.settings[name]
            if depth == 0:
                return found
            return Setting(
                found.name,
                found.value,
                found.seconds,
                found.file,
                found.line,
                "inherited",
                level.label,
            )
    return None


def _mode(section: _Section) -> str:
    for level in _chain(section):
        if level.mode is not None:
            return level.mode.value
    return "tcp"


def _close_options(section: _Section) -> list[Setting]:
    for level in _chain(section):
        if level.close_options:
            return level.close_options
    return []


def _scopes(facts: ConfigFacts, proxies: list[_Section]) -> None:
    backends = {s.name: s for s in proxies if s.kind == "backend"}
    used: set[str] = set()
    pairs: list[tuple[_Section | None, _Section]] = []
    for proxy in proxies:
        if proxy.kind == "listen":
            pairs.append((proxy, proxy))
        elif proxy.kind == "frontend":
            for name in dict.fromkeys(proxy.backends):
                if name in backends:
                    pairs.append((proxy, backends[name]))
                    used.add(name)
    pairs += [(None, b) for name, b in backends.items() if name not in used]
    routed = {name for proxy in proxies for name in proxy.upgrade_routes}
    named = {b.name for b in backends.values() if path_looks_websocket(b.name.replace("_", "-"))}
    declared = routed | named
    for front, back in pairs:
        if not back.servers:  # a stats page or a backend that only answers itself
            continue
        settings: dict[str, Setting] = {}
        for name in CLIENT_SIDE:
            found = _lookup(front or back, name)
            if found is not None:
                settings[name] = found
        for name in SERVER_SIDE:
            found = _lookup(back, name)
            if found is not None:
                settings[name] = found
        if back.kind == "listen" or front is None:
            label = back.label
        else:
            label = f"{front.label} -> {back.label}"
        facts.scopes.append(
            Scope(
                "haproxy",
                "proxy",
                label,
                back.file,
                back.line,
                _intent(back, declared),
                settings,
                {
                    "mode": _mode(back),
                    "close_options": _close_options(back)
                    + (_close_options(front) if front and front is not back else []),
                },
            )
        )


def _intent(back: _Section, declared: set[str]) -> WebSocketIntent:
    """Declared: upgrades are routed here (or its name says so); otherwise, when some backend
    is declared, this one is not meant for WebSockets; when none is, every one is judged."""
    if back.kind == "listen" or not declared:
        return "assumed"
    return "declared" if back.name in declared else "no"
