"""nginx configuration (and ingress-nginx's generated ``nginx.conf``) into facts, via crossplane.

crossplane follows ``include`` (globs too) and gives every directive its file and line. Each
``location`` with ``proxy_pass`` becomes a scope with the settings that apply there, resolved the
way nginx merges them: a directive written in the location wins, else the nearest enclosing
``server``/``http`` level, else the default. ``proxy_set_header`` is the exception nginx users trip
over: a level inherits the outer headers only when it sets none of its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from wsdoctor.lint.common import read_text, shown_path
from wsdoctor.lint.facts import (
    ConfigFacts,
    LintInputError,
    Scope,
    Setting,
    connection_upgrades,
    nginx_seconds,
    path_looks_websocket,
)

DEFAULTS = {
    "proxy_http_version": "1.0",
    "proxy_read_timeout": "60s",
    "proxy_send_timeout": "60s",
    "proxy_buffering": "on",
    "keepalive_timeout": "75s",
    "send_timeout": "60s",
}
"""nginx's built-in values of the settings the rules read (ngx_http_proxy_module, core)."""

STREAM_DEFAULTS = {"proxy_timeout": "10m"}

TIME_SETTINGS = {
    "proxy_read_timeout",
    "proxy_send_timeout",
    "keepalive_timeout",
    "send_timeout",
    "proxy_timeout",
    "worker_shutdown_timeout",
}


@dataclass
class _Directive:
    name: str
    args: list[str]
    file: str
    line: int
    block: list[_Directive] | None = None


@dataclass
class _Frame:
    """The directives written directly in one block, by name."""

    label: str
    directives: dict[str, list[_Directive]] = field(default_factory=dict)

    def add(self, directive: _Directive) -> None:
        self.directives.setdefault(directive.name, []).append(directive)


def _crossplane_error(error: dict[str, Any]) -> LintInputError:
    message = str(error.get("error", "parse error"))
    file = error.get("file")
    line = error.get("line")
    message = re.sub(r" in \S+:\d+$", "", message)
    return LintInputError(message, shown_path(file) if file else None, line)


def _is_missing_include(error: dict[str, Any]) -> bool:
    return "No such file or directory" in str(error.get("error", ""))


def parse_nginx(paths: list[str]) -> ConfigFacts:
    """Read nginx configuration files (and what they include) into facts."""
    import crossplane

    facts = ConfigFacts("nginx")
    seen: set[str] = set()
    roots: list[list[_Directive]] = []
    for path in paths:
        absolute = os.path.abspath(path)
        if absolute in seen:
            continue
        read_text(path)  # unreadable: a one-line error before crossplane's own
        payload = crossplane.parse(
            absolute,
            comments=False,
            check_ctx=False,
            check_args=False,
            single=False,
            catch_errors=True,
        )
        for error in payload.get("errors", []):
            if _is_missing_include(error) and error.get("file") != absolute:
                continue
            if _is_missing_include(error):
                facts.notes.append(
                    Setting(
                        "include",
                        str(error.get("error", "")).split(": ", 1)[-1].strip("'"),
                        file=shown_path(error.get("file") or absolute),
                        line=error.get("line"),
                        context="include not found, skipped",
                    )
                )
                continue
            raise _crossplane_error(error)
        configs = payload["config"]
        for config in configs:
            seen.add(config["file"])
            shown = shown_path(config["file"])
            if shown not in facts.files:
                facts.files.append(shown)
        roots.append(_directives(configs, 0))
    for root in roots:
        _walk(root, [_Frame("main")], facts, _maps(root))
    _intent(facts)
    return facts


def _directives(configs: list[dict[str, Any]], index: int) -> list[_Directive]:
    """The directives of one parsed file, with every ``include`` expanded in place."""
    file = shown_path(configs[index]["file"])
    return _convert(configs[index]["parsed"], file, configs, set())


def _convert(
    parsed: list[dict[str, Any]], file: str, configs: list[dict[str, Any]], active: set[int]
) -> list[_Directive]:
    out: list[_Directive] = []
    for item in parsed:
        if item["directive"] == "include" and "includes" in item:
            for index in item["includes"]:
                if index in active:  # an include loop: nginx itself would recurse forever
                    raise LintInputError("include loop", file, item["line"])
                included = configs[index]
                out.extend(
                    _convert(
                        included["parsed"],
                        shown_path(included["file"]),
                        configs,
                        active | {index},
                    )
                )
            continue
        block = item.get("block")
        out.append(
            _Directive(
                item["directive"],
                list(item.get("args", [])),
                file,
                item["line"],
                None if block is None else _convert(block, file, configs, active),
            )
        )
    return out


def _maps(directives: list[_Directive]) -> dict[str, dict[str, Any]]:
    """Every ``map $source $variable { ... }``, anywhere, by the variable it defines."""
    found: dict[str, dict[str, Any]] = {}
    for directive in directives:
        if directive.name == "map" and len(directive.args) >= 2 and directive.block is not None:
            pairs = [(d.name, d.args[-1] if d.args else "") for d in directive.block]
            found[directive.args[1]] = {
                "source": directive.args[0],
                "values": [v for _, v in pairs],
                "file": directive.file,
                "line": directive.line,
            }
        elif directive.block is not None:
            found.update(_maps(directive.block))
    return found


def _server_label(frame_directives: dict[str, list[_Directive]]) -> str:
    names = frame_directives.get("server_name")
    if names and names[0].args:
        return names[0].args[0]
    listens = frame_directives.get("listen")
    if listens and listens[0].args:
        return "listen " + listens[0].args[0]
    return ""


def _walk(
    directives: list[_Directive],
    frames: list[_Frame],
    facts: ConfigFacts,
    maps: dict[str, dict[str, Any]],
) -> None:
    frame = frames[-1]
    for directive in directives:
        frame.add(directive)
    if frame.label == "main":
        for directive in frame.directives.get("worker_shutdown_timeout", []):
            facts.globals["worker_shutdown_timeout"] = _setting(directive, "here", "main")
    for directive in directives:
        if directive.block is None or directive.name in ("map", "types", "upstream", "events"):
            continue
        label = directive.name
        if directive.name == "server":
            child = _Frame("server")
            for inner in directive.block:
                child.add(inner)
            server = _server_label(child.directives)
            label = f"server {server}".strip()
        elif directive.name == "location":
            label = "location " + " ".join(directive.args)
        elif directive.args:
            label = f"{directive.name} {' '.join(directive.args)}"
        child_frames = [*frames, _Frame(label)]
        _walk(directive.block, child_frames, facts, maps)
        written = child_frames[-1].directives
        if directive.name == "location" and "proxy_pass" in written:
            facts.scopes.append(_location_scope(directive, child_frames, maps))
        elif (
            directive.name == "server"
            and any(f.label == "stream" for f in frames)
            and "proxy_pass" in written
        ):
            facts.scopes.append(_stream_scope(directive, child_frames))


def _setting(directive: _Directive, origin: str, context: str) -> Setting:
    value = " ".join(directive.args)
    seconds = nginx_seconds(directive.args[0]) if directive.args else None
    if directive.name == "keepalive_timeout" and directive.args:
        seconds = nginx_seconds(directive.args[0])
    return Setting(
        directive.name,
        value,
        seconds if directive.name in TIME_SETTINGS else None,
        directive.file,
        directive.line,
        origin,  # type: ignore[arg-type]
        context,
    )


def _resolve(name: str, frames: list[_Frame], defaults: dict[str, str]) -> Setting:
    """The value of ``name`` where the innermost frame is: nearest level that writes it."""
    for depth, frame in enumerate(reversed(frames)):
        found = frame.directives.get(name)
        if found:
            return _setting(found[-1], "here" if depth == 0 else "inherited", frame.label)
    value = defaults[name]
    seconds = nginx_seconds(value) if name in TIME_SETTINGS else None
    return Setting(name, value, seconds, origin="default", context="nginx default")


def _headers(frames: list[_Frame]) -> tuple[dict[str, Setting], _Frame | None, list[Setting]]:
    """The ``proxy_set_header`` set that applies, the level it comes from, and outer ones lost.

    nginx inherits the outer headers only into a level that sets none; the lost ones are the
    headers an outer level sets that the applying level then drops.
    """
    for depth, frame in enumerate(reversed(frames)):
        written = frame.directives.get("proxy_set_header")
        if not written:
            continue
        origin = "here" if depth == 0 else "inherited"
        headers = {
            d.args[0].lower(): Setting(
                f"proxy_set_header {d.args[0]}",
                " ".join(d.args[1:]),
                file=d.file,
                line=d.line,
                origin=origin,  # type: ignore[arg-type]
                context=frame.label,
            )
            for d in written
            if d.args
        }
        lost: list[Setting] = []
        outer_frames = list(reversed(frames))[depth + 1 :]
        for outer in outer_frames:
            for d in outer.directives.get("proxy_set_header", []):
                name = d.args[0].lower() if d.args else ""
                if name in ("upgrade", "connection") and name not in headers:
                    lost.append(
                        Setting(
                            f"proxy_set_header {d.args[0]}",
                            " ".join(d.args[1:]),
                            file=d.file,
                            line=d.line,
                            origin="inherited",
                            context=outer.label,
                        )
                    )
        return headers, frame, lost
    return {}, None, []


def _connection_map(value: str, maps: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if value.startswith("$"):
        return maps.get(value.strip("{}"))
    return None


def _location_scope(
    directive: _Directive, frames: list[_Frame], maps: dict[str, dict[str, Any]]
) -> Scope:
    server = next((f.label for f in reversed(frames) if f.label.startswith("server")), "")
    path = " ".join(directive.args)
    name = f"{server} location {path}".strip()
    settings = {key: _resolve(key, frames, DEFAULTS) for key in DEFAULTS}
    headers, header_frame, lost = _headers(frames)
    proxy_pass = frames[-1].directives["proxy_pass"][0]
    connection = headers.get("connection")
    map_info = _connection_map(connection.value, maps) if connection else None
    return Scope(
        "nginx",
        "location",
        name,
        directive.file,
        directive.line,
        "no",
        settings,
        {
            "path": path,
            "proxy_pass": _setting(proxy_pass, "here", frames[-1].label),
            "upgrade_header": headers.get("upgrade"),
            "connection_header": connection,
            "connection_map": map_info,
            "headers_level": header_frame.label if header_frame else None,
            "headers_lost": lost,
            "location_proxy_set_header": [
                _setting(d, "here", frames[-1].label)
                for d in frames[-1].directives.get("proxy_set_header", [])
            ],
        },
    )


def _stream_scope(directive: _Directive, frames: list[_Frame]) -> Scope:
    settings = {key: _resolve(key, frames, STREAM_DEFAULTS) for key in STREAM_DEFAULTS}
    proxy_pass = frames[-1].directives["proxy_pass"][0]
    return Scope(
        "nginx",
        "stream",
        f"stream {frames[-1].label}",
        directive.file,
        directive.line,
        "assumed",
        settings,
        {"proxy_pass": _setting(proxy_pass, "here", frames[-1].label)},
    )


def _intent(facts: ConfigFacts) -> None:
    """Which locations are meant to carry WebSockets.

    Declared: it forwards an Upgrade or an upgrading Connection header. Likely: its path names
    a WebSocket endpoint (``/ws/``, ``/socket.io/``...). Assumed: no location of this config
    forwards upgrades at all, so every proxying location is judged (why lint it otherwise).
    """
    locations = [s for s in facts.scopes if s.kind == "location"]
    for scope in locations:
        connection = scope.facts["connection_header"]
        upgrading = scope.facts["upgrade_header"] is not None or (
            connection is not None and connection_upgrades(connection.value, scope)
        )
        if upgrading:
            scope.websocket = "declared"
        elif path_looks_websocket(scope.facts["path"]):
            scope.websocket = "likely"
    if locations and not any(s.websocket in ("declared", "likely") for s in locations):
        for scope in locations:
            scope.websocket = "assumed"
