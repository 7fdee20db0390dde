"""`wsdoctor check`: expectations, wsdoctor.toml, reports, exit codes, and the docs/ci.md examples.

Pure parts (expectations, config, reporters) run on hand-written observations; the command runs
as a real process against `wsdoctor serve` and the fault proxy on loopback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import xmlschema
from labkit import lab, run_cli, tolerance
from observation_builders import catalogue, failed_handshake_path, observations
from websockets.asyncio.server import ServerConnection, serve

from wsdoctor.checkconfig import ConfigError, command_line_layer, file_targets
from wsdoctor.demo import free_port
from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.expectations import (
    PROBLEM_CULPRITS,
    ExpectationResult,
    Expectations,
    TargetCheck,
    evaluate,
)
from wsdoctor.report.json_report import validate_report
from wsdoctor.report.junit import render_junit
from wsdoctor.report.markdown import render_markdown
from wsdoctor.server import ServeOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "wsdoctor.toml"
CI_DOC = ROOT / "docs" / "ci.md"
JUNIT_XSD = xmlschema.XMLSchema(str(Path(__file__).parent / "fixtures" / "junit" / "junit.xsd"))
SECRET = "s3cr3t-Tok3n-9f8e7d"
TENANT = "tenant-Key-4c3b2a"


# --- helpers ------------------------------------------------------------------------------------


@contextmanager
def background_lab(
    server: ServeOptions | None = None, fault: dict | None = None
) -> Iterator[tuple[str, str | None]]:
    """`labkit.lab` served from its own thread, so that CLI processes can reach it."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future = concurrent.futures.Future()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            async with lab(server, fault) as urls:
                ready.set_result((urls, stop))
                await stop.wait()
        except Exception as exc:  # noqa: BLE001 - handed to the waiting test
            if not ready.done():
                ready.set_exception(exc)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    urls, stop = ready.result(timeout=10)
    try:
        yield urls
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


@contextmanager
def reflecting_server() -> Iterator[str]:
    """A hostile endpoint: it closes every connection with the client's credentials as reason."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future = concurrent.futures.Future()

    async def reflect(ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request else {}
        reason = f"{headers.get('Authorization', '')} {headers.get('X-Tenant', '')}"
        await ws.close(1008, reason[:120])

    async def main() -> None:
        stop = asyncio.Event()
        async with serve(reflect, "127.0.0.1", 0) as server:
            ready.set_result((server.sockets[0].getsockname()[1], stop))
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    port, stop = ready.result(timeout=10)
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def one_line_error(result: subprocess.CompletedProcess, words: str) -> str:
    """Assert exit code 2 with one line on stderr naming ``words``; return that line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words in lines[0], lines[0]
    return lines[0]


def check_report(text: str) -> dict:
    """A `wsdoctor.check/1` report whose targets each keep the `wsdoctor.report/1` contract."""
    report = json.loads(text)
    assert report["schema"] == "wsdoctor.check/1"
    for target in report["targets"]:
        validate_report(target)
        assert target["check"]["outcome"] in ("pass", "fail", "inconclusive")
    return report


def expectations_of(report: dict, target: str) -> dict[str, dict]:
    """A target's expectation results, by name."""
    found = next(t for t in report["targets"] if t["check"]["target"] == target)
    return {e["name"]: e for e in found["check"]["expectations"]}


def seconds_in(text: str) -> float:
    """The number of seconds in a measured figure such as ``1.5 s``."""
    match = re.fullmatch(r"([0-9.]+) s", text)
    assert match, text
    return float(match.group(1))


def junit_of(path: Path) -> str:
    """A JUnit file's text, validated against the JUnit XSD (and checked by junit_tree)."""
    text = path.read_text(encoding="utf-8")
    junit_tree(text)
    return text


def judged(obs, **expectations) -> dict[str, ExpectationResult]:  # noqa: ANN001
    results = evaluate(Expectations(**expectations), obs, diagnose(obs))
    return {r.name: r for r in results}


# --- expectations, on hand-written observations -------------------------------------------------


def test_require_idle_passes_fails_and_stays_inconclusive() -> None:
    runs = catalogue()
    assert judged(runs["healthy"](), require_idle_s=65)["require-idle"].outcome == "pass"
    dropped = judged(runs["fin-60"](), require_idle_s=65)["require-idle"]
    assert dropped.outcome == "fail"
    assert seconds_in(dropped.measured) == pytest.approx(60.0, abs=0.1)
    assert "dropped after 60.0 s idle (eof)" in dropped.detail
    assert judged(runs["fin-60"](), require_idle_s=30)["require-idle"].outcome == "pass"
    cut_short = judged(runs["interrupted-early"](), require_idle_s=60)["require-idle"]
    assert cut_short.outcome == "inconclusive"


def test_require_idle_holds_on_every_path() -> None:
    result = judged(catalogue()["compare-proxy"](), require_idle_s=65)["require-idle"]
    assert result.outcome == "fail"
    assert "via-proxy: idle connections dropped after 60.0 s" in result.detail
    assert "direct: an idle connection still answered" in result.detail


def test_require_lifetime() -> None:
    runs = catalogue()
    assert judged(runs["healthy"](), require_lifetime_s=100)["require-lifetime"].outcome == "pass"
    capped = judged(runs["lifetime-5"](), require_lifetime_s=10)["require-lifetime"]
    assert capped.outcome == "fail"
    assert seconds_in(capped.measured) == pytest.approx(5.0, abs=0.3)
    # An idle drop ends the run long before 300 s: the lifetime is neither proven nor refuted.
    stopped = judged(runs["fin-60"](), require_lifetime_s=300)["require-lifetime"]
    assert stopped.outcome == "inconclusive"


def test_rtt_and_handshake_limits() -> None:
    healthy = catalogue()["healthy"]()
    loose = judged(healthy, max_rtt_ms=10, max_handshake_ms=10)
    assert loose["max-rtt-ms"].outcome == "pass"
    assert loose["max-handshake-ms"].outcome == "pass"
    tight = judged(healthy, max_rtt_ms=0.5, max_handshake_ms=1)
    assert tight["max-rtt-ms"].outcome == "fail"
    assert tight["max-handshake-ms"].outcome == "fail"
    assert "RTT p95" in tight["max-rtt-ms"].detail


def test_unreachable_target_fails_every_measured_expectation() -> None:
    obs = observations(failed_handshake_path(reason="refused"))
    results = judged(obs, require_idle_s=5, require_lifetime_s=5, max_rtt_ms=100)
    assert {r.outcome for r in results.values()} == {"fail"}
    assert "no connection opened (refused)" in results["require-idle"].detail


@pytest.mark.parametrize(
    ("expectations", "outcome"),
    [
        ({}, "fail"),
        ({"fail_on": ("proxy_idle_timeout",)}, "fail"),
        ({"fail_on": ("lifetime_cap", "restart")}, "pass"),
        ({"allow": ("proxy_idle_timeout",)}, "pass"),
        ({"allow": ("network_instability",)}, "fail"),
        ({"fail_on": ("proxy_idle_timeout",), "allow": ("proxy_idle_timeout",)}, "pass"),
    ],
)
def test_verdict_expectation(expectations: dict, outcome: str) -> None:
    result = judged(catalogue()["fin-60"](), **expectations)["verdict"]
    assert result.outcome == outcome
    assert result.measured == "problem: proxy_idle_timeout"


def test_verdict_is_judged_by_default_only() -> None:
    assert Expectations().failing_culprits() == PROBLEM_CULPRITS
    assert Expectations(require_idle_s=5).failing_culprits() is None
    assert "verdict" not in judged(catalogue()["fin-60"](), require_idle_s=5)
    inconclusive = judged(catalogue()["interrupted-early"]())["verdict"]
    assert inconclusive.outcome == "inconclusive"


# --- wsdoctor.toml ------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "wsdoctor.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_example_config_parses_with_its_defaults(tmp_path: Path) -> None:
    env = {"WS_URL": "wss://edge.test/ws", "WS_BACKEND_URL": "ws://10.1.2.3:8080/ws"}
    targets = file_targets(str(EXAMPLE), {**env, "WS_TOKEN": SECRET})
    chat, edge = targets
    assert (chat.name, chat.url, chat.via) == ("chat", "wss://edge.test/ws", None)
    assert (edge.url, edge.via) == ("ws://10.1.2.3:8080/ws", "wss://edge.test/ws")
    assert chat.expectations.require_idle_s == 65.0
    assert chat.idle_budget_s == 65.0
    assert chat.expectations.failing_culprits() is None
    assert "network_instability" not in (edge.expectations.failing_culprits() or ())
    assert dict(chat.headers) == {"Authorization": f"Bearer {SECRET}"}
    assert SECRET in chat.secrets and f"Bearer {SECRET}" in chat.secrets
    quick = file_targets(str(EXAMPLE), {**env, "WS_TOKEN": "x", "WSDOCTOR_REQUIRE_IDLE": "2"})
    assert quick[0].expectations.require_idle_s == 2.0


def test_command_line_expectations_win_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[defaults]\nrequire-idle = 30\nmax-rtt-ms = 100\n\n"
        '[[target]]\nurl = "ws://a.test/"\nrequire-idle = 40\n\n'
        '[[target]]\nname = "b"\nurl = "ws://b.test/"\n',
    )
    a, b = file_targets(path, {})
    assert (a.name, a.expectations.require_idle_s, a.expectations.max_rtt_ms) == (
        "a.test/",
        40.0,
        100.0,
    )
    assert b.expectations.require_idle_s == 30.0
    overridden = file_targets(path, {}, command_line_layer({"require-idle": 5.0}))
    assert [t.expectations.require_idle_s for t in overridden] == [5.0, 5.0]
    assert [t.expectations.max_rtt_ms for t in overridden] == [100.0, 100.0]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[target]]\nurl = "ws://a.test/"\nrequire_idle = 5\n', "did you mean 'require-idle'"),
        ('[[target]]\nurl = "ws://a.test/"\nfail-on = ["proxy_timeout"]\n', "unknown culprit"),
        ('[[target]]\nurl = "http://a.test/"\n', "unsupported URL scheme 'http'"),
        ('[[target]]\nurl = "ws://a.test/"\nrequire-idle = -1\n', "require-idle must be above 0"),
        ('[[target]]\nurl = "ws://a.test/"\nrequire-idle = "soon"\n', "must be a number"),
        ('[[target]]\nname = "x"\n', "url is missing"),
        ('[[target]]\nurl = "ws://a/"\nvia-proxy = "ws://b/"\nproxy = "http://c:1"\n', "not both"),
        ('[[target]]\nurl = "ws://a/"\n[[target]]\nurl = "ws://a/"\n', "already named"),
        ("[defaults]\nrequire-idle = 5\n", "at least one [[target]]"),
        ('[[target]]\nurl = "ws://a.test/${HOST"\n', "malformed"),
        ('[[target]]\nurl = "ws://a/"\nheaders = { "X" = "a\\nb" }\n', "line break"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)) as caught:
        file_targets(write(tmp_path, text), {})
    assert "\n" not in str(caught.value)


def test_env_expansion_and_its_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[[target]]\nurl = "ws://${WS_HOST:-fallback.test}:${WS_PORT}/"\n')
    assert file_targets(path, {"WS_PORT": "81"})[0].url == "ws://fallback.test:81/"
    assert file_targets(path, {"WS_PORT": "81", "WS_HOST": "h.test"})[0].url == "ws://h.test:81/"
    with pytest.raises(ConfigError, match="environment variable WS_PORT is not set"):
        file_targets(path, {})


# --- reporters ----------------------------------------------------------------------------------


def _checks() -> list[TargetCheck]:
    cases = {
        "healthy|pipe": (catalogue()["healthy"](), Expectations(require_idle_s=60)),
        "proxy-60": (catalogue()["fin-60"](), Expectations(require_idle_s=65, max_rtt_ms=50)),
        "cut-short": (catalogue()["interrupted-early"](), Expectations()),
    }
    checks = []
    for name, (obs, expectations) in cases.items():
        diagnosis = diagnose(obs)
        checks.append(TargetCheck(name, obs, diagnosis, evaluate(expectations, obs, diagnosis)))
    return checks


def junit_tree(text: str) -> ET.Element:
    """A JUnit document validated against the XSD, whose counts match its elements, and whose
    classnames no viewer splits into more than a package and a class."""
    JUNIT_XSD.validate(text)
    root = ET.fromstring(text)
    suites = root.findall("testsuite")
    for node in [root, *suites]:
        cases = node.iter("testcase")
        tags = [child.tag for case in cases for child in case if child.tag != "system-out"]
        assert int(node.get("failures", "")) == tags.count("failure")
        assert int(node.get("errors", "")) == tags.count("error")
    for suite in suites:
        assert suite.find("properties/property[@name='target']").get("value") == suite.get("name")
        for case in suite.iter("testcase"):
            assert case.get("classname") == "wsdoctor.check"
            assert case.get("name", "").startswith(suite.get("name", "") + ": ")
    return root


def test_junit_has_a_case_per_expectation_and_validates() -> None:
    text = render_junit(_checks(), 12.5)
    junit_tree(text)
    assert text.count("<testsuite ") == 3
    assert text.count("<testcase ") == 4
    assert text.count("<failure ") == 1  # require-idle of proxy-60 (its RTT passes)
    assert text.count("<error ") == 1  # the interrupted run's verdict
    assert "dropped after 60.0 s idle" in text and "Verdict: problem" in text
    assert 'name="proxy-60: require-idle (&gt;= 65.0 s idle)"' in text


def test_junit_reports_a_target_it_could_not_connect_to_as_an_error() -> None:
    obs = observations(
        failed_handshake_path(reason="refused", message="connection refused by 127.0.0.1:9")
    )
    expectations = Expectations(require_idle_s=5, max_rtt_ms=100)
    diagnosis = diagnose(obs)
    results = evaluate(expectations, obs, diagnosis)
    assert {r.no_connection for r in results} == {
        "direct: refused (connection refused by 127.0.0.1:9)"
    }
    root = junit_tree(render_junit([TargetCheck("127.0.0.1:9/", obs, diagnosis, results)], 0.1))
    errors = root.findall(".//error")
    assert len(errors) == 2 and root.find(".//failure") is None
    for error in errors:
        assert error.get("message") == (
            "could not connect: direct: refused (connection refused by 127.0.0.1:9)"
        )
        assert "was not measured: could not connect" in (error.text or "")
        assert "Measured: -" not in (error.text or "")
    # The verdict alone (the default expectation) is no failed figure either.
    (verdict,) = evaluate(Expectations(), obs, diagnosis)
    assert (verdict.name, verdict.outcome) == ("verdict", "fail")
    assert verdict.no_connection == "direct: refused (connection refused by 127.0.0.1:9)"
    root = junit_tree(render_junit([TargetCheck("127.0.0.1:9/", obs, diagnosis, [verdict])], 0.1))
    assert root.find(".//failure") is None and len(root.findall(".//error")) == 1


def test_markdown_tables_escape_pipes() -> None:
    text = render_markdown(_checks())
    assert text.startswith("## ❌ wsdoctor check: 1 of 3 targets failed")
    assert "### ✅ healthy\\|pipe: pass" in text
    assert "| require-idle | >= 65.0 s idle | 60.0 s | ❌ fail |" in text
    assert "`proxy_idle_timeout`" in text


def test_a_path_through_an_idle_proxy_fails_in_the_markdown() -> None:
    obs = catalogue()["compare-proxy"]()
    diagnosis = diagnose(obs)
    check = TargetCheck("edge", obs, diagnosis, evaluate(Expectations(), obs, diagnosis))
    assert "| verdict | no problem found | problem: proxy_idle_timeout | ❌ fail |" in (
        render_markdown([check])
    )


# --- the command, against local servers --------------------------------------------------------


@pytest.fixture(scope="module")
def healthy() -> Iterator[tuple[str, str]]:
    """The reference server, and a fault proxy in front of it that injects nothing."""
    with background_lab(fault={}) as urls:
        yield urls


@pytest.fixture(scope="module")
def idle_edge() -> Iterator[tuple[str, str]]:
    """The reference server behind a proxy that drops connections idle for 1.5 s (FIN)."""
    with background_lab(fault={"idle_timeout_s": 1.5}) as urls:
        yield urls


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, '[[target]]\nurl = "ws://a.test/"\nrequire-idle = = 3\n')
    line = one_line_error(run_cli("check", "-c", bad), "invalid TOML")
    assert "line 3" in line
    needs_env = str(tmp_path / "env.toml")
    Path(needs_env).write_text('[[target]]\nurl = "${WSDOCTOR_TEST_UNSET_URL}"\n')
    env = {k: v for k, v in os.environ.items() if k != "WSDOCTOR_TEST_UNSET_URL"}
    result = run_cli("check", "-c", needs_env, env=env)
    one_line_error(result, "environment variable WSDOCTOR_TEST_UNSET_URL is not set")
    one_line_error(run_cli("check", "ws://a.test/", "--fail-on", "gremlins"), "unknown culprit")
    one_line_error(run_cli("check", "ws://a.test/", "--allow", "none"), "unknown culprit")
    one_line_error(run_cli("check"), "needs a URL or -c")
    one_line_error(run_cli("check", "-c", bad, "-H", "A: b"), "apply to URLs")
    one_line_error(run_cli("check", "-c", str(tmp_path / "missing.toml")), "cannot read config")
    missing_dir = str(tmp_path / "nowhere" / "junit.xml")
    one_line_error(run_cli("check", "ws://a.test/", "--junit", missing_dir), "cannot write --junit")


def test_every_expectation_passes_on_a_healthy_server(healthy: tuple[str, str], tmp_path: Path):
    direct, _ = healthy
    summary = tmp_path / "step-summary.md"
    summary.write_text("# Earlier step\n", encoding="utf-8")
    junit, markdown = tmp_path / "junit.xml", tmp_path / "check.md"
    result = run_cli(
        "check", direct,
        "--require-idle", "2", "--require-lifetime", "2",
        "--max-rtt-ms", "1000", "--max-handshake-ms", "1000",
        "--junit", str(junit), "--markdown", str(markdown), "--json", "-",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = check_report(result.stdout)
    assert (report["outcome"], report["exit_code"]) == ("pass", 0)
    results = expectations_of(report, "127.0.0.1:" + direct.split(":")[2])
    assert set(results) == {"require-idle", "require-lifetime", "max-rtt-ms", "max-handshake-ms"}
    assert {r["outcome"] for r in results.values()} == {"pass"}
    assert seconds_in(results["require-idle"]["measured"]) >= 2.0
    assert 'failures="0"' in junit_of(junit) and 'errors="0"' in junit_of(junit)
    appended = summary.read_text(encoding="utf-8")
    assert appended.startswith("# Earlier step\n## ✅ wsdoctor check: passed")
    assert markdown.read_text(encoding="utf-8") in appended
    assert "\x1b[" not in result.stderr + result.stdout
    # With --json -, the summary goes to stderr.
    assert re.search(r"pass +require-idle", result.stderr)


def test_require_idle_fails_behind_a_proxy_idle_timeout(idle_edge, tmp_path: Path) -> None:  # noqa: ANN001
    _, edge = idle_edge
    junit = tmp_path / "junit.xml"
    result = run_cli("check", edge, "--require-idle", "2", "--junit", str(junit), "--json", "-")
    assert result.returncode == 1, result.stderr
    report = check_report(result.stdout)
    (target,) = report["targets"]
    idle = target["check"]["expectations"][0]
    assert (idle["name"], idle["outcome"]) == ("require-idle", "fail")
    assert abs(seconds_in(idle["measured"]) - 1.5) <= tolerance(1.5)
    text = junit_of(junit)
    assert 'failures="1"' in text and "<failure " in text and "dropped after" in text


def test_a_refused_target_is_a_junit_error_that_it_could_not_connect(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    junit = tmp_path / "junit.xml"
    result = run_cli(
        "check", f"ws://127.0.0.1:{port}/", "--require-idle", "2", "--max-rtt-ms", "100",
        "--junit", str(junit), "--json", "-", timeout=30,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    (target,) = check_report(result.stdout)["targets"]
    assert target["verdict"]["culprit"] == "unreachable"
    for expectation in target["check"]["expectations"]:
        assert expectation["outcome"] == "fail"
        assert expectation["no_connection"].startswith("direct: refused (")
    root = junit_tree(junit_of(junit))
    assert root.find(".//failure") is None
    errors = root.findall(".//error")
    assert len(errors) == 2
    for error in errors:
        message = error.get("message", "")
        assert message.startswith("could not connect: direct: refused (")
        assert str(port) in message
    names = [case.get("name") for case in root.iter("testcase")]
    assert names == [
        f"127.0.0.1:{port}/: require-idle (>= 2.0 s idle)",
        f"127.0.0.1:{port}/: max-rtt-ms (RTT p95 <= 100 ms)",
    ]


def test_fail_on_and_allow_judge_the_verdict(idle_edge) -> None:  # noqa: ANN001
    direct, edge = idle_edge
    base = ("check", direct, "--via-proxy", edge, "--max-idle", "3", "--json", "-")
    failed = run_cli(*base, "--fail-on", "lifetime_cap,proxy_idle_timeout")
    assert failed.returncode == 1, failed.stderr
    verdict = expectations_of(check_report(failed.stdout), "127.0.0.1:" + direct.split(":")[2])
    assert verdict["verdict"]["measured"] == "problem: proxy_idle_timeout"
    allowed = run_cli(*base, "--allow", "proxy_idle_timeout")
    assert allowed.returncode == 0, allowed.stderr
    report = check_report(allowed.stdout)
    assert report["targets"][0]["verdict"]["culprit"] == "proxy_idle_timeout"
    assert report["targets"][0]["check"]["expectations"][0]["outcome"] == "pass"


def test_require_lifetime_fails_when_connections_are_cut_at_an_age(tmp_path: Path) -> None:
    with background_lab(fault={"max_age_s": 1.5}) as (_, edge):
        result = run_cli("check", edge, "--require-lifetime", "2", "--json", "-")
    assert result.returncode == 1, result.stderr
    (target,) = check_report(result.stdout)["targets"]
    lifetime = target["check"]["expectations"][0]
    assert (lifetime["name"], lifetime["outcome"]) == ("require-lifetime", "fail")
    assert abs(seconds_in(lifetime["measured"]) - 1.5) <= tolerance(1.5)


def test_rtt_and_handshake_limits_fail_behind_a_slow_proxy(tmp_path: Path) -> None:
    with background_lab(fault={"latency_ms": 60}) as (_, edge):
        args = ("--max-rtt-ms", "50", "--max-handshake-ms", "60", "--json", "-")
        result = run_cli("check", edge, *args)
    assert result.returncode == 1, result.stderr
    (target,) = check_report(result.stdout)["targets"]
    results = {e["name"]: e for e in target["check"]["expectations"]}
    assert set(results) == {"max-rtt-ms", "max-handshake-ms"}  # the verdict is not judged
    for result_ in results.values():
        assert result_["outcome"] == "fail"
        # 60 ms each way: every round trip and every upgrade takes at least 120 ms.
        assert float(result_["measured"].removesuffix(" ms")) >= 119
    # Without an idle expectation there is no idle stage.
    assert [s["name"] for s in target["paths"][0]["stages"]] == ["handshake", "echo"]


def test_interrupted_check_still_writes_every_report(healthy, tmp_path: Path) -> None:  # noqa: ANN001
    direct, _ = healthy
    reports = [tmp_path / name for name in ("check.json", "junit.xml", "check.md")]
    args = ["--require-idle", "60", "--json", str(reports[0])]
    args += ["--junit", str(reports[1]), "--markdown", str(reports[2])]
    process = subprocess.Popen(
        [sys.executable, "-m", "wsdoctor", "check", direct, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert process.stderr is not None
    for _ in range(20):  # progress lines: starting, echo, idle
        line = process.stderr.readline()
        if ": idle" in line or not line:
            break
    assert ": idle" in line, line
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    report = check_report(reports[0].read_text())
    assert report["interrupted"] is True and report["exit_code"] == 130
    idle = report["targets"][0]["check"]["expectations"][0]
    assert (idle["name"], idle["outcome"]) == ("require-idle", "inconclusive")
    assert 'errors="1"' in junit_of(reports[1])
    assert "interrupted" in reports[2].read_text() and "interrupted" in stdout


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_never_reach_any_output(tmp_path: Path) -> None:
    config = tmp_path / "wsdoctor.toml"
    config.write_text(
        '[[target]]\nname = "hostile"\nurl = "${WS_URL}"\nrequire-idle = 2\n'
        'headers = { Authorization = "Bearer ${WS_TOKEN}", X-Tenant = "${TENANT}" }\n',
        encoding="utf-8",
    )
    summary = tmp_path / "summary.md"
    outputs = [tmp_path / name for name in ("junit.xml", "check.md", "check.json")]
    with reflecting_server() as url:
        env = {"WS_URL": url, "WS_TOKEN": SECRET, "TENANT": TENANT}
        from_file = run_cli(
            "check", "-c", str(config), "--junit", str(outputs[0]),
            "--markdown", str(outputs[1]), "--json", str(outputs[2]),
            env={**env, "GITHUB_STEP_SUMMARY": str(summary)},
        )  # fmt: skip
        from_flags = run_cli(
            "check", f"{url}?access_token={SECRET}", "-H", f"Authorization: Bearer {SECRET}",
            "--max-rtt-ms", "100", "--json", "-",
        )  # fmt: skip
    assert from_file.returncode in (1, 3), from_file.stderr
    assert from_flags.returncode in (0, 1, 3), from_flags.stderr
    texts = [from_file.stdout, from_file.stderr, from_flags.stdout, from_flags.stderr]
    texts += [path.read_text(encoding="utf-8") for path in (*outputs, summary)]
    for text in texts:
        assert SECRET not in text and TENANT not in text
    # The server did reflect them: the scrubber, not luck, kept them out.
    reasons = [
        c["ending"]["reason"]
        for t in check_report(outputs[2].read_text())["targets"]
        for p in t["paths"]
        for s in p["stages"]
        for c in s["connections"]
        if c["ending"]["reason"]
    ]
    assert reasons and all("[redacted] [redacted]" in r for r in reasons)
    junit_of(outputs[0])


# --- docs/ci.md ---------------------------------------------------------------------------------


def doc_blocks(language: str) -> list[str]:
    """The fenced code blocks of docs/ci.md in ``language``."""
    return re.findall(rf"```{language}\n(.*?)```", CI_DOC.read_text(encoding="utf-8"), re.S)


def doc_commands() -> list[str]:
    """Every `wsdoctor check` command line of the CI examples in docs/ci.md."""
    commands = []
    for block in doc_blocks("yaml"):
        for line in block.splitlines():
            match = re.match(r"\s*(?:- )?(?:run: )?(wsdoctor check .*)$", line)
            if match:
                commands.append(match.group(1))
    return commands


@pytest.fixture
def ci_shell(tmp_path: Path) -> Path:
    """A CI job's working directory: the example wsdoctor.toml, and `wsdoctor` on PATH."""
    (tmp_path / "wsdoctor.toml").write_text(EXAMPLE.read_text(encoding="utf-8"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "wsdoctor"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m wsdoctor "$@"\n')
    shim.chmod(0o755)
    return tmp_path


def run_doc_command(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = f"{cwd / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "NO_COLOR": "1", **env, "PATH": path},
    )


def test_docs_show_the_example_config_verbatim() -> None:
    (toml,) = doc_blocks("toml")
    assert toml == EXAMPLE.read_text(encoding="utf-8")
    commands = doc_commands()
    assert len(commands) == 3
    assert sum("-c wsdoctor.toml" in c for c in commands) == 2


def test_docs_ci_examples_pass_against_a_healthy_service(healthy, ci_shell: Path) -> None:  # noqa: ANN001
    direct, edge = healthy
    summary = ci_shell / "step-summary.md"
    env = {
        "WS_URL": edge,
        "WS_BACKEND_URL": direct,
        "WS_TOKEN": SECRET,
        "WSDOCTOR_REQUIRE_IDLE": "2",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    for command in doc_commands():
        result = run_doc_command(command, ci_shell, env)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert SECRET not in result.stdout + result.stderr
    junit = junit_of(ci_shell / "wsdoctor-junit.xml")
    assert junit.count("<testsuite ") == 2 and "<failure" not in junit
    assert check_report((ci_shell / "wsdoctor.json").read_text())["outcome"] == "pass"
    assert (ci_shell / "wsdoctor.md").read_text().startswith("## ✅ wsdoctor check")
    assert summary.read_text().count("wsdoctor check:") == 3  # one per step


def test_docs_ci_example_fails_when_the_edge_drops_idle_connections(idle_edge, ci_shell):  # noqa: ANN001
    direct, edge = idle_edge
    env = {"WS_URL": edge, "WS_BACKEND_URL": direct, "WS_TOKEN": SECRET}
    env["WSDOCTOR_REQUIRE_IDLE"] = "2"
    command = next(c for c in doc_commands() if "--json" in c)
    result = run_doc_command(command, ci_shell, env)
    assert result.returncode == 1, result.stderr
    report = check_report((ci_shell / "wsdoctor.json").read_text())
    assert expectations_of(report, "chat")["require-idle"]["outcome"] == "fail"
    via_edge = expectations_of(report, "chat-via-edge")
    assert via_edge["require-idle"]["outcome"] == "fail"
    assert via_edge["verdict"]["measured"] == "problem: proxy_idle_timeout"
    junit = junit_of(ci_shell / "wsdoctor-junit.xml")
    assert junit.count("<failure ") == 3
    # Both targets ran at once: each reported a stage before either was done.
    lines = result.stderr.splitlines()
    first_done = next(i for i, line in enumerate(lines) if ": done in " in line)
    for name in ("chat", "chat-via-edge"):
        running = rf"\] {name}: (?!done|starting|pending)"
        assert any(re.search(running, line) for line in lines[:first_done]), result.stderr
