"""Caddyfile into facts: every ``reverse_proxy`` and its stream and transport timeouts.

Caddy forwards WebSocket upgrades by itself; what cuts them is ``transport http { read_timeout }``
(an idle timer reset only by bytes from the backend), ``stream_timeout`` (a lifetime cap), and
config reloads unless ``stream_close_delay`` is set. Snippets and ``import`` are followed.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field

from wsdoctor.lint.common import read_text, shown_path
from wsdoctor.lint.facts import ConfigFacts, LintInputError, Scope, Setting

GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def caddy_seconds(text: str) -> float | None:
    """A Caddy duration (Go syntax plus ``d`` for days): ``5s``, ``1m30s``, ``2d``; ``0``."""
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * (86400.0 if u == "d" else GO_UNITS[u]) for n, u in parts)


@dataclass
class _Statement:
    words: list[str]
    file: str
    line: int
    block: list[_Statement] | None = None


@dataclass
class _Token:
    text: str
    line: int
    quoted: bool = False


def _tokens(text: str, file: str) -> list[list[_Token]]:
    """Tokens grouped by line: quotes, backticks, comments, backslash line continuation."""
    lines: list[list[_Token]] = []
    current: list[_Token] = []
    word: list[str] = []
    in_word = quoted = False
    quote = ""
    line = 1
    start = 1
    i = 0

    def flush() -> None:
        nonlocal word, in_word, quoted
        if in_word:
            current.append(_Token("".join(word), start, quoted))
        word, in_word, quoted = [], False, False

    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\" and quote == '"' and i + 1 < len(text) and text[i + 1] in '"\\':
                word.append(text[i + 1])
                i += 2
                continue
            if char == quote:
                quote = ""
            else:
                if char == "\n":
                    line += 1
                word.append(char)
            i += 1
            continue
        if char == "\\" and i + 1 < len(text) and text[i + 1] == "\n":
            flush()
            line += 1
            i += 2
            continue
        if char == "\n":
            flush()
            if current:
                lines.append(current)
            current = []
            line += 1
        elif char.isspace():
            flush()
        elif char == "#" and not in_word:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif char in '"`' and not in_word:
            quote, in_word, quoted, start = char, True, True, line
        else:
            if not in_word:
                in_word, start = True, line
            word.append(char)
        i += 1
    if quote:
        raise LintInputError("unterminated quoted string", file, start)
    flush()
    if current:
        lines.append(current)
    return lines


def _statements(lines: list[list[_Token]], file: str) -> list[_Statement]:
    """Nest lines into blocks: a line ending in ``{`` opens one, a lone ``}`` closes it."""
    root: list[_Statement] = []
    stack: list[tuple[list[_Statement], _Statement | None]] = [(root, None)]
    for tokens in lines:
        words = [t.text for t in tokens]
        opener = tokens[-1].text == "{" and not tokens[-1].quoted
        if len(tokens) == 1 and tokens[0].text == "}" and not tokens[0].quoted:
            if len(stack) == 1:
                raise LintInputError("unexpected '}'", file, tokens[0].line)
            stack.pop()
            continue
        if words and words[0] == "}" and not tokens[0].quoted:
            raise LintInputError("'}' must stand on its own line", file, tokens[0].line)
        body = words[:-1] if opener else words
        statement = _Statement(body, file, tokens[0].line, [] if opener else None)
        stack[-1][0].append(statement)
        if opener:
            assert statement.block is not None
            stack.append((statement.block, statement))
    if len(stack) > 1:
        opened = stack[-1][1]
        assert opened is not None
        raise LintInputError("block is never closed ('{' without '}')", file, opened.line)
    return root


def _parse_file(path: str, facts: ConfigFacts, by: str | None, line: int | None) -> list:
    text = read_text(path, line, by)
    file = shown_path(path)
    if file not in facts.files:
        facts.files.append(file)
    return _statements(_tokens(text, file), file)


def parse_caddy(paths: list[str]) -> ConfigFacts:
    """Read Caddyfiles (and what they import) into facts."""
    facts = ConfigFacts("caddy")
    for path in paths:
        statements = _parse_file(path, facts, None, None)
        snippets = {
            s.words[0][1:-1]: s
            for s in statements
            if s.words and s.words[0].startswith("(") and s.words[0].endswith(")")
        }
        base = os.path.dirname(os.path.abspath(path))
        statements = _expand(statements, snippets, facts, base, set())
        sites = [
            s
            for s in statements
            if s.words and not s.words[0].startswith("(") and s.block is not None
        ]
        loose = [s for s in statements if s.block is None]
        if loose and not sites:  # a single site without braces: its address on the first line
            address = loose[0]
            sites = [_Statement(address.words, address.file, address.line, loose[1:])]
        for site in sites:
            _find_proxies(site.block or [], " ".join(site.words) or "(global)", facts)
    return facts


def _expand(
    statements: list[_Statement],
    snippets: dict[str, _Statement],
    facts: ConfigFacts,
    base: str,
    active: set[str],
) -> list[_Statement]:
    out: list[_Statement] = []
    for statement in statements:
        if statement.words and statement.words[0] == "import" and len(statement.words) > 1:
            target = statement.words[1]
            if target in snippets:
                if target in active:
                    raise LintInputError("import loop", statement.file, statement.line)
                body = snippets[target].block or []
                out.extend(_expand(body, snippets, facts, base, active | {target}))
                continue
            pattern = target if os.path.isabs(target) else os.path.join(base, target)
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise LintInputError(
                    f"import {target}: no such snippet or file", statement.file, statement.line
                )
            for match in matches:
                if match in active:
                    raise LintInputError("import loop", statement.file, statement.line)
                inner = _parse_file(match, facts, statement.file, statement.line)
                out.extend(_expand(inner, snippets, facts, base, active | {match}))
            continue
        if statement.block is not None:
            statement.block = _expand(statement.block, snippets, facts, base, active)
        out.append(statement)
    return out


def _duration(statement: _Statement, name: str, context: str) -> Setting:
    if len(statement.words) < 2:
        raise LintInputError(f"{name} needs a duration", statement.file, statement.line)
    value = statement.words[1]
    seconds = caddy_seconds(value)
    if seconds is None:
        raise LintInputError(
            f"{name}: '{value}' is not a duration (like 30s, 5m, 1h)",
            statement.file,
            statement.line,
        )
    return Setting(name, value, seconds, statement.file, statement.line, "here", context)


def _find_proxies(statements: list[_Statement], site: str, facts: ConfigFacts) -> None:
    for statement in statements:
        if statement.words and statement.words[0] == "reverse_proxy":
            facts.scopes.append(_reverse_proxy(statement, site))
        elif statement.block is not None:
            _find_proxies(statement.block, site, facts)


@dataclass
class _ProxyFacts:
    settings: dict[str, Setting] = field(default_factory=dict)
    removed: list[Setting] = field(default_factory=list)


def _reverse_proxy(statement: _Statement, site: str) -> Scope:
    args = statement.words[1:]
    matcher = args[0] if args and (args[0][:1] in "@/*") else ""
    upstreams = args[1:] if matcher else args
    context = f"{site} reverse_proxy"
    found = _ProxyFacts()
    for inner in statement.block or []:
        if not inner.words:
            continue
        name = inner.words[0]
        if name in ("stream_timeout", "stream_close_delay"):
            found.settings[name] = _duration(inner, name, context)
        elif name == "transport" and inner.block is not None:
            for option in inner.block:
                if option.words and option.words[0] in ("read_timeout", "write_timeout"):
                    found.settings[option.words[0]] = _duration(
                        option, option.words[0], f"{context} transport"
                    )
        elif name == "to":
            upstreams += inner.words[1:]
        elif name == "header_up" and len(inner.words) > 1:
            header = inner.words[1]
            if header.lstrip("-").lower() in ("upgrade", "connection") and header.startswith("-"):
                found.removed.append(
                    Setting("header_up", header, None, inner.file, inner.line, "here", context)
                )
    label = f"{site} reverse_proxy {matcher} {' '.join(upstreams)}".replace("  ", " ").strip()
    return Scope(
        "caddy",
        "reverse_proxy",
        label,
        statement.file,
        statement.line,
        "assumed",
        found.settings,
        {"matcher": matcher, "upstreams": upstreams, "removed_headers": found.removed},
    )
