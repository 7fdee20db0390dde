"""`wsdoctor lint`: parsers, rules and reports on fixture configurations (no network).

The fixtures under ``tests/fixtures/lint/`` are written as people write them: includes, the
``map $http_upgrade`` idiom, settings inherited from ``http``/``server`` and HAProxy
``defaults``, comments, tabs and odd spacing. Each test names the file and line it expects.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from wsdoctor.commands.lint import lint as lint_command
from wsdoctor.diagnosis.lint_rules import (
    CATALOGUE,
    LintResult,
    Measurement,
    join_measurement,
    lint,
)
from wsdoctor.lint import load
from wsdoctor.lint.facts import LintInputError, nginx_seconds
from wsdoctor.lint.haproxy import haproxy_seconds
from wsdoctor.report.lint_json import build_lint_report, validate_lint_report
from wsdoctor.report.lint_sarif import build_sarif

FIXTURES = Path(__file__).parent / "fixtures" / "lint"


@pytest.fixture(autouse=True)
def _in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the fixtures folder, so reported paths are short and relative."""
    monkeypatch.chdir(FIXTURES)


def _app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(lint_command)

    @app.command()
    def _other() -> None:  # a second command keeps "lint" a subcommand, as in wsdoctor.cli
        """Unused."""

    return app


def invoke(*args: str):  # noqa: ANN201 - click Result
    """Run ``wsdoctor lint ARGS`` in-process."""
    return CliRunner().invoke(_app(), ["lint", *args], env={"NO_COLOR": "1"})


def run(*paths: str, heartbeat: float | None = None) -> LintResult:
    result = lint(load(list(paths)), heartbeat)
    validate_lint_report(build_lint_report(result))
    return result


def at(result: LintResult, code: str) -> list[tuple[str | None, int | None]]:
    """Where the findings of one code are: (file, line)."""
    return [(f.file, f.line) for f in result.findings if f.code == code]


def scope(result: LintResult, name_part: str):  # noqa: ANN201 - Prediction
    return next(p for p in result.predictions if name_part in p.scope.name)


# --- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7s", 7.0), ("60", 60.0), ("1m30s", 90.0), ("1500ms", 1.5), ("1h", 3600.0), ("7x", None)],
)
def test_nginx_time(text: str, seconds: float | None) -> None:
    assert nginx_seconds(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"), [("3s", 3.0), ("3000", 3.0), ("1m", 60.0), ("1h", 3600.0), ("1hour", None)]
)
def test_haproxy_time_defaults_to_milliseconds(text: str, seconds: float | None) -> None:
    assert haproxy_seconds(text) == seconds


def test_parser_defaults_are_the_knowledge_probe_uses() -> None:
    from wsdoctor.diagnosis.knowledge import BY_KEY
    from wsdoctor.diagnosis.lint_rules import KNOWN_DEFAULTS
    from wsdoctor.lint import apache, kubernetes, nginx

    written = {
        ("nginx", "proxy_read_timeout"): nginx_seconds(nginx.DEFAULTS["proxy_read_timeout"]),
        ("apache", "Timeout"): float(apache.DEFAULT_TIMEOUT),
        ("kubernetes", "proxy-read-timeout"): float(kubernetes.DEFAULTS["proxy-read-timeout"]),
    }
    assert set(written) == set(KNOWN_DEFAULTS)
    for key, seconds in written.items():
        assert BY_KEY[KNOWN_DEFAULTS[key]].idle_timeout_s == seconds, key


# --- nginx ---------------------------------------------------------------------------------


def test_nginx_includes_inheritance_and_the_lost_headers() -> None:
    result = run("nginx/site/nginx.conf")
    assert result.configs[0].files == ["nginx/site/nginx.conf", "nginx/site/conf.d/app.conf"]
    # /ws/ inherits Upgrade/Connection and HTTP/1.1 from server, 30 s from http.
    ws = scope(result, "location /ws/")
    assert ws.scope.websocket == "declared"
    assert (ws.idle_timeout_s, ws.idle_setting.where) == (30.0, "nginx/site/nginx.conf:12")
    assert ws.idle_setting.origin == "inherited" and ws.idle_setting.context == "http"
    # /chat/ writes its own (after a tab and odd spacing).
    chat = scope(result, "location /chat/")
    assert (chat.idle_timeout_s, chat.idle_setting.where) == (7.0, "nginx/site/conf.d/app.conf:20")
    assert ("nginx/site/conf.d/app.conf", 20) in at(result, "idle_timeout_short")
    # /live/socket sets Host, so the server's Upgrade/Connection no longer apply.
    assert at(result, "headers_not_inherited") == [("nginx/site/conf.d/app.conf", 26)]
    lost = next(f for f in result.findings if f.code == "headers_not_inherited")
    assert "app.conf:10" in lost.message and "app.conf:11" in lost.message
    # The static location is not a WebSocket scope, and nothing else is an upgrade error.
    assert not any("/static/" in p.scope.name for p in result.predictions)
    assert {f.code for f in result.findings if f.severity == "error"} == {"headers_not_inherited"}
    # keepalive_timeout in http is for HTTP clients; in a WebSocket location it is a mistake.
    assert at(result, "keepalive_timeout_confusion") == [("nginx/site/conf.d/app.conf", 27)]


def test_nginx_conf_d_file_without_upgrade_headers() -> None:
    result = run("nginx/plain/app.conf")
    (only,) = result.predictions
    assert only.scope.websocket == "assumed"
    for code in ("upgrade_header_missing", "connection_header_missing", "http_version_missing"):
        assert at(result, code) == [("nginx/plain/app.conf", 8)], code
    assert at(result, "idle_timeout_default") == [("nginx/plain/app.conf", 7)]
    assert only.idle_setting.origin == "default" and only.idle_timeout_s == 60.0
    assert at(result, "buffering_irrelevant") == [("nginx/plain/app.conf", 10)]


def test_nginx_map_idiom_and_a_map_that_never_upgrades() -> None:
    result = run("nginx/plain/mapped.conf")
    ws = scope(result, "location /ws")
    assert ws.idle_timeout_s == 3600.0
    assert not [f for f in result.findings if f.scope and f.scope.endswith("location /ws")]
    wrong = next(f for f in result.findings if f.code == "connection_header_missing")
    assert (wrong.file, wrong.line) == ("nginx/plain/mapped.conf", 23)
    assert "mapped.conf:5" in wrong.message
    # A literal "upgrade" is fine; the missing proxy_http_version is not.
    assert at(result, "http_version_missing") == [("nginx/plain/mapped.conf", 26)]


def test_nginx_heartbeat_turns_the_default_into_a_note_and_short_ones_into_errors() -> None:
    result = run("nginx/site/nginx.conf", heartbeat=25)
    assert at(result, "idle_timeout_below_heartbeat") == [("nginx/site/conf.d/app.conf", 20)]
    assert ("nginx/site/nginx.conf", 12) in at(result, "heartbeat_margin_thin")
    plain = run("nginx/plain/app.conf", heartbeat=20)
    assert not at(plain, "idle_timeout_default")
    assert at(plain, "idle_timeout") == [("nginx/plain/app.conf", 7)]


def test_ingress_nginx_generated_config_with_lua_blocks() -> None:
    result = run("nginx/ingress-nginx-generated.conf")
    ws, root = result.predictions
    assert (ws.idle_timeout_s, ws.idle_setting.line) == (3600.0, 58)
    assert ws.scope.websocket == "declared" and root.idle_timeout_s == 60.0
    assert not [f for f in result.findings if f.severity == "error"]
    assert at(result, "reload_cuts_connections") == [("nginx/ingress-nginx-generated.conf", 6)]


def test_nginx_template_placeholder_is_an_invalid_value(tmp_path: Path) -> None:
    conf = tmp_path / "ws.conf"
    conf.write_text(
        "server {\n  location /ws/ {\n    proxy_pass http://app;\n"
        "    proxy_read_timeout ${NGINX_PROXY_READ_TIMEOUT};\n  }\n}\n"
    )
    result = run(str(conf))
    assert [f.line for f in result.findings if f.code == "invalid_value"] == [4]
    assert result.predictions[0].idle_timeout_s is None


def test_nginx_worker_shutdown_timeout_and_stream(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "worker_shutdown_timeout 10s;\nevents {}\n"
        "stream {\n  server {\n    listen 9000;\n    proxy_pass 127.0.0.1:8080;\n"
        "    proxy_timeout 20s;\n  }\n}\n"
    )
    result = run(str(conf))
    (stream,) = result.predictions
    assert stream.scope.kind == "stream" and stream.idle_timeout_s == 20.0
    assert [f.line for f in result.findings if f.code == "reload_cuts_connections"] == [1]


def test_nginx_include_not_found_is_a_note_not_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n    include /nonexistent/mime.types;\n}\n")
    result = run(str(conf))
    assert [f.line for f in result.findings if f.code == "include_not_found"] == [3]


# --- HAProxy -------------------------------------------------------------------------------


def test_haproxy_defaults_inheritance_and_tunnel() -> None:
    result = run("haproxy/haproxy.cfg")
    names = [p.scope.name for p in result.predictions]
    assert names == ["frontend www -> backend ws", "frontend www -> backend app", "listen chat"]
    ws, app, chat = result.predictions
    # No tunnel: timeout client/server of "defaults web" apply.
    assert ws.idle_timeout_s == 50.0 and ws.idle_setting.where == "haproxy/haproxy.cfg:9"
    assert ws.idle_setting.origin == "inherited" and ws.idle_setting.context == "defaults web"
    assert at(result, "tunnel_timeout_missing") == [("haproxy/haproxy.cfg", 9)]
    assert "(50 s, haproxy/haproxy.cfg:9)" in next(
        f.message for f in result.findings if f.code == "tunnel_timeout_missing"
    )
    # use_backend ws if { hdr(upgrade) ... }: upgrades go to ws, not to app.
    assert (ws.scope.websocket, app.scope.websocket, chat.scope.websocket) == (
        "declared",
        "no",
        "assumed",
    )
    # "timeout   tunnel    7s   # ..." after a tab.
    assert (app.idle_timeout_s, app.idle_setting.where) == (7.0, "haproxy/haproxy.cfg:23")
    # "defaults long from web" adds the tunnel; listen chat takes it.
    assert (chat.idle_timeout_s, chat.idle_setting.where) == (3600.0, "haproxy/haproxy.cfg:27")
    assert at(result, "fin_timeout_missing") == [("haproxy/haproxy.cfg", 27)]
    assert at(result, "reload_cuts_connections") == [("haproxy/haproxy.cfg", 4)]
    assert ("haproxy/haproxy.cfg", 11) in at(result, "http_close_option_note")


def test_haproxy_tunnel_timeout_in_a_frontend_is_ignored(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "defaults\n    mode http\n    timeout client 30s\n    timeout server 30s\n\n"
        "frontend fe\n    bind :80\n    timeout tunnel 1h\n    default_backend be\n\n"
        "backend be\n    server s 127.0.0.1:8080\n"
    )
    result = run(str(cfg))
    assert [(f.code, f.line) for f in result.findings if f.code == "invalid_value"] == [
        ("invalid_value", 8)
    ]
    assert result.predictions[0].idle_timeout_s == 30.0  # client/server apply, not the 1h


# --- Apache, Caddy, Kubernetes -----------------------------------------------------------


def test_apache_proxypass_timeouts_and_upgrade() -> None:
    result = run("apache/site.conf")
    ws, chat, socket = result.predictions
    assert ws.scope.facts["upgrades"] and chat.scope.facts["upgrades"]
    # The tunnel takes the longer of Timeout (30) and ProxyTimeout (10).
    assert (ws.idle_timeout_s, ws.idle_setting.name) == (30.0, "Timeout")
    assert at(result, "timeout_does_not_shorten") == [("apache/site.conf", 3)]
    # A continued line: ProxyPass /chat/ \ ws://... timeout=600.
    assert (chat.idle_timeout_s, chat.idle_setting.where) == (600.0, "apache/site.conf:9")
    assert socket.scope.websocket == "likely"
    assert at(result, "upgrade_not_enabled") == [("apache/site.conf", 13)]


def test_caddy_read_timeout_stream_timeout_snippets() -> None:
    result = run("caddy/Caddyfile")
    ws, api = result.predictions
    assert (ws.idle_timeout_s, ws.idle_setting.where) == (7.0, "caddy/Caddyfile:16")
    assert (ws.lifetime_cap_s, ws.lifetime_setting.where) == (3600.0, "caddy/Caddyfile:18")
    assert at(result, "read_timeout_one_way") == [("caddy/Caddyfile", 16)]
    assert at(result, "lifetime_cap") == [("caddy/Caddyfile", 18)]
    # The snippet import gives the api proxy its stream_close_delay; the @ws one has none.
    assert api.scope.get("stream_close_delay") is not None
    assert at(result, "reload_closes_streams") == [("caddy/Caddyfile", 14)]
    assert at(result, "upgrade_header_removed") == [("caddy/Caddyfile", 24)]


def test_kubernetes_annotation_configmap_default() -> None:
    result = run("kubernetes/ingress.yaml")
    chat, api = result.predictions
    assert (chat.idle_timeout_s, chat.idle_setting.where) == (7.0, "kubernetes/ingress.yaml:17")
    # "1h" is not whole seconds: ignored, the ConfigMap's 120 applies.
    assert at(result, "invalid_value") == [("kubernetes/ingress.yaml", 36)]
    assert (api.idle_timeout_s, api.idle_setting.where) == (120.0, "kubernetes/ingress.yaml:8")
    assert at(result, "reload_cuts_connections") == [("kubernetes/ingress.yaml", 9)]


def test_kubernetes_defaults_without_a_configmap(tmp_path: Path) -> None:
    manifest = tmp_path / "ing.yml"
    manifest.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\nspec: {}\n"
    )
    result = run(str(manifest))
    (only,) = result.predictions
    assert only.idle_timeout_s == 60.0 and only.idle_setting.origin == "default"
    reload = next(f for f in result.findings if f.code == "reload_cuts_connections")
    assert reload.severity == "info" and "240 s" in reload.message


# --- joined to a measurement -----------------------------------------------------------------


def test_measurement_joined_to_the_line_or_said_to_be_elsewhere() -> None:
    result = join_measurement(run("nginx/site/nginx.conf"), Measurement(idle_timeout_s=7.2))
    (join,) = result.joins
    assert [p.idle_setting.where for p in join.matches] == ["nginx/site/conf.d/app.conf:20"]
    explained = next(f for f in result.findings if f.code == "measurement_explained")
    assert (
        "measured idle timeout 7.2 s = proxy_read_timeout 7s at nginx/site/conf.d/app.conf:20"
        in (explained.message)
    )
    elsewhere = join_measurement(run("nginx/site/nginx.conf"), Measurement(idle_timeout_s=350.0))
    (join,) = elsewhere.joins
    assert not join.matches and "AWS Network Load Balancer" in join.candidates
    assert [f.file for f in elsewhere.findings if f.code == "measurement_unexplained"] == [None]
    # A one-second tick: the measured range, not only its low end, is matched.
    ticked = join_measurement(
        run("haproxy/haproxy.cfg"), Measurement(idle_timeout_s=6.05, idle_timeout_range_s=[6.05, 7])
    )
    assert [p.scope.name for p in ticked.joins[0].matches] == ["frontend www -> backend app"]


def test_lifetime_cap_and_silent_drops() -> None:
    capped = join_measurement(run("caddy/Caddyfile"), Measurement(lifetime_cap_s=3598.0))
    (join,) = capped.joins
    assert join.kind == "lifetime_cap"
    assert [p.lifetime_setting.where for p in join.matches] == ["caddy/Caddyfile:18"]
    # A silent drop at 7 s is not nginx's 7 s proxy_read_timeout: nginx sends a FIN.
    silent = join_measurement(
        run("nginx/site/nginx.conf"),
        Measurement(idle_timeout_s=7.0, culprit="nat_firewall_idle_drop", hop="network"),
    )
    assert not silent.joins[0].matches
    unexplained = next(f for f in silent.findings if f.code == "measurement_unexplained")
    assert "silent drop" in unexplained.message


def test_measurement_tolerance_is_half_a_second_or_five_percent() -> None:
    assert (
        not join_measurement(run("nginx/site/nginx.conf"), Measurement(idle_timeout_s=7.6))
        .joins[0]
        .matches
    )
    assert (
        join_measurement(run("haproxy/haproxy.cfg"), Measurement(idle_timeout_s=3500.0))
        .joins[0]
        .matches
    )


# --- the command -----------------------------------------------------------------------------


def test_cli_terminal_grouped_by_file_with_the_line_and_exit_codes() -> None:
    done = invoke("nginx/site/nginx.conf")
    assert done.exit_code == 1, done.output
    assert "nginx/site/conf.d/app.conf\n" in done.output
    assert "20 | proxy_read_timeout     7s;" in done.output.expandtabs(4) or (
        "proxy_read_timeout\t7s;" in done.output
    )
    assert "headers_not_inherited" in done.output
    assert invoke("nginx/site/nginx.conf", "--fail-on", "error").exit_code == 1
    assert invoke("nginx/plain/mapped.conf", "--fail-on", "never").exit_code == 0
    assert invoke("haproxy/haproxy.cfg", "--fail-on", "error").exit_code == 0
    assert invoke("haproxy/haproxy.cfg", "--fail-on", "warning").exit_code == 1


def test_cli_json_is_valid_against_the_shipped_schema(tmp_path: Path) -> None:
    out = tmp_path / "lint.json"
    done = invoke("nginx/site/nginx.conf", "haproxy/haproxy.cfg", "--json", str(out), "-q")
    assert done.exit_code == 1, done.output
    (summary,) = done.output.splitlines()  # -q: the summary line only
    assert summary.startswith("wsdoctor lint: ") and "1 error" in summary
    report = json.loads(out.read_text())
    validate_lint_report(report)
    assert report["schema"] == "wsdoctor.lint/1"
    assert {f["product"] for f in report["files"]} == {"nginx", "haproxy"}
    assert report["summary"]["error"] == 1
    with pytest.raises(jsonschema.ValidationError):
        validate_lint_report({**report, "schema": "other"})


def test_cli_report_join(tmp_path: Path) -> None:
    probe = tmp_path / "probe.json"
    probe.write_text(
        json.dumps(
            {
                "schema": "wsdoctor.report/1",
                "verdict": {
                    "culprit": "proxy_idle_timeout",
                    "hop": "proxy",
                    "idle_timeout_s": 7.03,
                },
            }
        )
    )
    done = invoke("nginx/site/nginx.conf", "--report", str(probe), "--json", "-", "-q")
    report = json.loads(done.stdout)
    (join,) = report["measurement"]["joins"]
    assert join["explained"] and join["settings"][0]["line"] == 20
    assert join["settings"][0]["file"] == "nginx/site/conf.d/app.conf"
    text = invoke("nginx/site/nginx.conf", "--report", str(probe)).output
    assert "idle timeout 7.0 s = proxy_read_timeout 7s at nginx/site/conf.d/app.conf:20" in text


def test_sarif_structure(tmp_path: Path) -> None:
    out = tmp_path / "lint.sarif"
    done = invoke("nginx/site/nginx.conf", "caddy/Caddyfile", "--sarif", str(out), "-q")
    assert done.exit_code == 1, done.output
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    (run_,) = sarif["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert run_["tool"]["driver"]["name"] == "wsdoctor"
    assert [r["id"] for r in rules] == list(CATALOGUE)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] in (
            "error",
            "warning",
            "note",
        )
    results = run_["results"]
    assert results
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] and not physical["artifactLocation"][
            "uri"
        ].startswith("/")
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert isinstance(physical["region"]["startLine"], int)
        assert physical["region"]["startLine"] >= 1
    lost = next(r for r in results if r["ruleId"] == "headers_not_inherited")
    assert lost["level"] == "error"
    assert lost["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "nginx/site/conf.d/app.conf"
    )
    assert lost["locations"][0]["physicalLocation"]["region"]["startLine"] == 26
    assert "%SRCROOT%" in run_["originalUriBaseIds"]


def test_sarif_places_an_unexplained_measurement_on_the_first_file() -> None:
    result = join_measurement(run("haproxy/haproxy.cfg"), Measurement(idle_timeout_s=100.0))
    results = build_sarif(result)["runs"][0]["results"]
    unexplained = next(r for r in results if r["ruleId"] == "measurement_unexplained")
    location = unexplained["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "haproxy/haproxy.cfg"
    assert location["region"]["startLine"] == 1


# --- bad input: one line with file:line, exit 2 --------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["bad/unclosed.conf"], "bad/unclosed.conf:7: unexpected end of file"),
        (["bad/haproxy-badtime.cfg"], "bad/haproxy-badtime.cfg:4: timeout tunnel: invalid time"),
        (["bad/apache-unclosed.conf"], "bad/apache-unclosed.conf:5: </VirtualHost>"),
        (["bad/Caddyfile"], "bad/Caddyfile:3: stream_timeout: 'forever' is not a duration"),
        (["bad/broken.yaml"], "bad/broken.yaml:7: YAML"),
        (["bad/notes.txt"], "bad/notes.txt: cannot tell which proxy"),
        (["bad/missing.conf"], "bad/missing.conf: no such file"),
        (["bad"], "is a directory"),
        (["nginx/site/nginx.conf", "--format", "lighttpd"], "--format"),
        (["nginx/site/nginx.conf", "--heartbeat", "0"], "--heartbeat"),
        (["nginx/site/nginx.conf", "--fail-on", "fatal"], "--fail-on"),
        (["nginx/site/nginx.conf", "--report", "bad/missing.json"], "cannot read --report"),
        (["nginx/site/nginx.conf", "--report", "bad/broken.yaml"], "bad/broken.yaml:1: not a JSON"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], expected: str) -> None:
    done = invoke(*args)
    assert done.exit_code == 2, done.output
    lines = done.output.strip().splitlines()
    assert len(lines) == 1, done.output
    assert lines[0].startswith("wsdoctor: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in done.output


def test_unreadable_file_and_include_loop(tmp_path: Path) -> None:
    loop = tmp_path / "loop.conf"
    loop.write_text("events {}\nhttp {\n    include loop.conf;\n}\n")
    done = invoke(str(loop))
    assert done.exit_code == 2 and "loop" in done.output and "Traceback" not in done.output
    if os.geteuid() != 0:  # root reads anything
        secret = tmp_path / "secret.conf"
        secret.write_text("events {}\n")
        secret.chmod(0)
        done = invoke(str(secret))
        assert done.exit_code == 2 and "cannot read" in done.output


def test_apache_rewrite_rule_tunnels_websockets(tmp_path: Path) -> None:
    conf = tmp_path / "vhost.conf"
    conf.write_text(
        "<VirtualHost *:443>\n    RewriteEngine On\n"
        "    RewriteCond %{HTTP:Upgrade} websocket [NC]\n"
        '    RewriteRule ^/?(.*) "ws://localhost:3000/$1" [P,L]\n'
        "    ProxyPass / http://localhost:3000/\n</VirtualHost>\n"
    )
    result = run(str(conf))
    rewrite, plain = result.predictions
    assert rewrite.scope.kind == "RewriteRule" and rewrite.scope.websocket == "declared"
    assert plain.scope.websocket == "no"
    assert not at(result, "upgrade_not_enabled")
    assert at(result, "idle_timeout_default") == [(str(conf), 4)]


def test_product_detection_and_format_option(tmp_path: Path) -> None:
    plain = tmp_path / "site"
    plain.write_text((FIXTURES / "haproxy" / "haproxy.cfg").read_text())
    assert load([str(plain)])[0].product == "haproxy"
    odd = tmp_path / "proxy.txt"
    odd.write_text("server {\n  location / { proxy_pass http://a; }\n}\n")
    assert load([str(odd)])[0].product == "nginx"
    assert load([str(odd)], "nginx")[0].scopes
    with pytest.raises(LintInputError):
        load([str(FIXTURES / "bad" / "notes.txt")])


# --- docs/ci.md ----------------------------------------------------------------------------


def test_docs_ci_lint_example_runs(tmp_path: Path) -> None:
    """The `wsdoctor lint` line of the docs' workflow, on copies of the fixtures."""
    import re
    import shlex
    import subprocess
    import sys

    doc = (Path(__file__).parents[1] / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    (command,) = [
        m.group(1)
        for block in blocks
        for m in re.finditer(r"run: (wsdoctor lint .*)$", block, re.M)
    ]
    shutil.copytree(FIXTURES / "nginx" / "site", tmp_path / "deploy" / "nginx")
    shutil.copytree(FIXTURES / "haproxy", tmp_path / "deploy" / "haproxy")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "wsdoctor"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m wsdoctor "$@"\n')
    shim.chmod(0o755)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.returncode == 1, done.stderr  # the fixtures hold errors
    assert "deploy/nginx/conf.d/app.conf" in done.stdout
    sarif = json.loads((tmp_path / "wsdoctor-lint.sarif").read_text())
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    assert "deploy/nginx/conf.d/app.conf" in uris and "deploy/haproxy/haproxy.cfg" in uris
    validate_lint_report(json.loads((tmp_path / "wsdoctor-lint.json").read_text()))


# --- malformed input never crashes a parser ------------------------------------------------

_SOURCES = sorted(p for p in FIXTURES.rglob("*") if p.is_file())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    source=st.sampled_from(_SOURCES),
    product=st.sampled_from(["nginx", "haproxy", "apache", "caddy", "kubernetes"]),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1), st.sampled_from(list("{};\"'#\\\n $=<>/:-[]@()`\t0s")), st.booleans()
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_mangled_configs_give_findings_or_one_input_error(
    tmp_path_factory: pytest.TempPathFactory, source: Path, product: str, edits: list
) -> None:
    text = list(source.read_text())
    for where, char, insert in edits:
        at_ = int(where * len(text))
        if insert or not text:
            text.insert(at_, char)
        else:
            del text[min(at_, len(text) - 1)]
    path = tmp_path_factory.mktemp("mangled") / "conf"
    path.write_text("".join(text))
    try:
        result = lint(load([str(path)], product), 10.0)
    except LintInputError as error:
        assert str(error).strip() and "\n" not in str(error)
        return
    join_measurement(result, Measurement(idle_timeout_s=7.0))
    validate_lint_report(build_lint_report(result))
    build_sarif(result)
