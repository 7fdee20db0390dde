"""`wsdoctor lint` on the configurations real proxies run, checked against a real probe.

nginx and HAProxy are started by ``realproxies`` (the same writers ``test_real_proxies.py``
uses), Apache httpd and Caddy by ``lintproxies``. Each configuration is first accepted by the
proxy's own check (``nginx -t``, ``haproxy -c``, ``apache2 -t``, ``caddy validate``), so the
fixtures are real; then the idle timeout the lint predicts from the file must equal what the
probe measured through the running proxy, within max(0.5 s, 5 %), and ``lint --report`` must
name the line behind the measured figure. Figures are printed for the notes (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest
from labkit import HOST, require_binary, tolerance
from lintproxies import apache, caddy, caddy_env, validate
from realproxies import haproxy, judge, nginx, probe_paths, probe_real
from test_lint import invoke

from wsdoctor.diagnosis.facts import idle_drop
from wsdoctor.diagnosis.lint_rules import Measurement, join_measurement, lint
from wsdoctor.lint import load
from wsdoctor.plan import PathSpec
from wsdoctor.report.lint_json import validate_lint_report
from wsdoctor.server import ServeOptions, running_server

pytestmark = pytest.mark.lab

MAX_IDLE_S = 9.0


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the first line of ``path`` that contains ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")


def nginx_check(conf: Path) -> None:
    root = conf.parent
    done = validate(
        [
            require_binary("nginx"),
            "-t",
            "-p",
            f"{root}/",
            "-e",
            str(root / "check-error.log"),
            "-c",
            str(conf),
            "-g",
            f"pid {root}/check.pid;",
        ]
    )
    assert done.returncode == 0, done.stderr


def test_nginx_lint_matches_the_probe_and_names_the_line(tmp_path: Path) -> None:
    run = probe_real(
        lambda port: nginx(tmp_path, port, read_timeout_s=3.0, send_timeout_s=3.0),
        max_idle_s=MAX_IDLE_S,
    )
    conf = tmp_path / "nginx" / "nginx.conf"
    nginx_check(conf)
    result = lint(load([str(conf)]))
    (prediction,) = result.predictions
    expected_line = line_of(conf, "proxy_read_timeout 3s;")
    assert prediction.idle_setting.line == expected_line
    measured = run.lab.verdict.idle_timeout_s
    assert measured is not None, run.lab.verdict.summary
    print(
        f"\n[lint-real] nginx ({run.proxy.version}): predicted {prediction.idle_timeout_s} s "
        f"(proxy_read_timeout 3s, line {expected_line}), measured {measured:.3f} s"
    )
    assert abs(measured - prediction.idle_timeout_s) <= tolerance(prediction.idle_timeout_s)
    # The upgrade is configured right: no error.
    assert not [f for f in result.findings if f.severity == "error"], result.findings

    probe_json = tmp_path / "probe.json"
    probe_json.write_text(json.dumps(run.lab.report))
    out = tmp_path / "lint.json"
    done = invoke(str(conf), "--report", str(probe_json), "--json", str(out), "-q")
    assert done.exit_code == 1, done.output  # a 3 s timeout is a warning
    report = json.loads(out.read_text())
    validate_lint_report(report)
    (join,) = report["measurement"]["joins"]
    assert join["explained"], join
    assert [(s["name"], s["line"]) for s in join["settings"]] == [
        ("proxy_read_timeout", expected_line)
    ]
    text = invoke(str(conf), "--report", str(probe_json)).output
    assert f"= proxy_read_timeout 3s at {conf}:{expected_line}" in text, text


@pytest.mark.parametrize(
    ("options", "codes"),
    [
        # The configs test_real_proxies.py measures as upgrade_blocked (426 and 505).
        ({"upgrade_headers": False}, {"upgrade_header_missing", "connection_header_missing"}),
        ({"http_11": False}, {"http_version_missing"}),
    ],
)
def test_nginx_lint_finds_what_blocks_the_upgrade(
    tmp_path: Path, options: dict, codes: set[str]
) -> None:
    async def start_and_stop() -> None:
        async with nginx(tmp_path, 9, **options):  # backend port unused: nothing is probed
            pass

    asyncio.run(start_and_stop())
    conf = tmp_path / "nginx" / "nginx.conf"
    nginx_check(conf)
    result = lint(load([str(conf)]))
    errors = {f.code for f in result.findings if f.severity == "error"}
    assert errors == codes, result.findings
    assert all(f.line == line_of(conf, "proxy_pass") for f in result.findings if f.code in codes)


def test_haproxy_apache_caddy_lint_matches_one_probe_through_all_three(tmp_path: Path) -> None:
    """One probe run through three real proxies at once, each with its own idle timeout."""
    for binary in ("haproxy", "apache2", "caddy"):
        require_binary(binary)
    configured = {"haproxy": 2.0, "apache": 3.0, "caddy": 4.0}

    async def main() -> tuple:
        async with (
            running_server(ServeOptions(port=0)) as backend,
            contextlib.AsyncExitStack() as st,
        ):
            proxies = {
                "haproxy": await st.enter_async_context(
                    haproxy(tmp_path, backend, tunnel_timeout_s=2.0)
                ),
                "apache": await st.enter_async_context(apache(tmp_path, backend, timeout_s=3)),
                "caddy": await st.enter_async_context(caddy(tmp_path, backend, read_timeout_s=4)),
            }
            paths = [PathSpec("direct", f"ws://{HOST}:{backend}/")]
            paths += [p.path_to("", name) for name, p in proxies.items()]
            began = time.monotonic()
            observations = await probe_paths(paths, MAX_IDLE_S)
            return observations, proxies, time.monotonic() - began

    observations, proxies, elapsed = asyncio.run(main())
    lab = judge(observations, elapsed)
    files = {
        "haproxy": tmp_path / "haproxy" / "haproxy.cfg",
        "apache": tmp_path / "apache" / "httpd.conf",
        "caddy": tmp_path / "caddy" / "Caddyfile",
    }
    checks = {
        "haproxy": [require_binary("haproxy"), "-c", "-f", str(files["haproxy"])],
        "apache": [require_binary("apache2"), "-t", "-f", str(files["apache"])],
        "caddy": [
            *caddy_env(files["caddy"].parent),
            require_binary("caddy"),
            "validate",
            "--config",
            str(files["caddy"]),
            "--adapter",
            "caddyfile",
        ],
    }
    settings = {"haproxy": "timeout tunnel", "apache": "Timeout", "caddy": "read_timeout"}
    for name, path in files.items():
        done = validate(checks[name])
        assert done.returncode == 0, (name, done.stdout, done.stderr)
        (prediction,) = lint(load([str(path)])).predictions
        assert prediction.idle_setting.name == settings[name]
        assert prediction.idle_timeout_s == configured[name]
        result = next(p for p in observations.paths if p.name == name)
        drop = idle_drop(result)
        assert drop is not None, (name, lab.verdict.summary)
        print(
            f"\n[lint-real] {name} ({proxies[name].version}): predicted "
            f"{prediction.idle_timeout_s} s ({prediction.idle_setting.shown()}, "
            f"{prediction.idle_setting.where}), measured {drop.idle_s:.3f} s "
            f"(range {drop.low_s:.3f}-{drop.high_s:.3f}, {drop.how})"
        )
        assert abs(drop.idle_s - prediction.idle_timeout_s) <= tolerance(configured[name])
    # The verdict's figure is the shortest (HAProxy's); joined to all three files, only
    # HAProxy's line explains it.
    verdict = lab.verdict
    joined = join_measurement(
        lint(load([str(p) for p in files.values()])),
        Measurement(verdict.idle_timeout_s, verdict.idle_timeout_range_s),
    )
    (join,) = joined.joins
    assert [p.idle_setting.name for p in join.matches] == ["timeout tunnel"]
    assert join.matches[0].idle_setting.line == line_of(files["haproxy"], "timeout tunnel")
