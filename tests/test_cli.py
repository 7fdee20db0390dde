"""The command line as users run it: real processes, exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from labkit import json_report, run_cli, tolerance

from wsdoctor import __version__
from wsdoctor.demo import free_port


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words in lines[0]


class _Plain(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status = 404 if self.path.startswith("/missing") else 200
        body = b"<html>not a websocket</html>"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def plain_http() -> Iterator[int]:
    """A plain HTTP server that never upgrades."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Plain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"wsdoctor {__version__}"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["probe", "http://example.test/"], "unsupported URL scheme 'http'"),
        (["probe", "ws://"], "has no host"),
        (["probe", "ws://127.0.0.1:99999/"], "invalid URL"),
        (["probe", "ws://127.0.0.1:1/", "-H", "NoColonHere"], "bad header"),
        (["probe", "ws://127.0.0.1:1/", "--max-idle", "-5"], "--max-idle must be"),
        (["probe", "ws://127.0.0.1:1/", "--cacert", "/nonexistent.pem"], "cannot read --cacert"),
        (["probe", "ws://127.0.0.1:1/", "--proxy", "ftp://p:21"], "unsupported proxy scheme"),
        (["compare", "--direct", "ws://127.0.0.1:1/"], "needs --via-proxy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str) -> None:
    assert_one_line_error(run_cli(*args), 2, words)


def test_refused_port_is_unreachable() -> None:
    result = run_cli("probe", f"ws://127.0.0.1:{free_port()}/", "--json", "-")
    assert result.returncode == 1, result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == "unreachable"
    failure = report["paths"][0]["stages"][0]["connections"][0]["handshake"]["failure"]
    assert failure["reason"] == "refused"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("path", "culprit", "status"),
    [("/", "upgrade_blocked", 200), ("/missing", "handshake_rejected", 404)],
)
def test_plain_http_endpoint(plain_http: int, path: str, culprit: str, status: int) -> None:
    result = run_cli("probe", f"ws://127.0.0.1:{plain_http}{path}", "--json", "-")
    assert result.returncode == 1, result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == culprit
    assert str(status) in report["verdict"]["summary"]


def test_healthy_server_exits_0(serve_url: str) -> None:
    result = run_cli("probe", serve_url, "--max-idle", "3", "--json", "-")
    assert result.returncode == 0, result.stderr
    report = json_report(result)
    assert report["verdict"]["status"] == "healthy"
    assert report["verdict"]["culprit"] == "none"
    stages = [s["name"] for s in report["paths"][0]["stages"]]
    # Loopback targets get every stage; stability runs beside idle, so those end in any order.
    assert stages[:2] == ["handshake", "echo"] and stages[-2:] == ["size", "rate"]
    assert set(stages[2:-2]) == {"idle", "heartbeat", "stability"}


@pytest.mark.parametrize("stages", ["handshake", "handshake,echo"])
def test_a_quick_connectivity_check_is_healthy(serve_url: str, stages: str) -> None:
    """``--stages handshake[,echo]`` answers like wscat -c: healthy when the path upgrades."""
    result = run_cli("probe", serve_url, "--stages", stages, "--json", "-")
    assert result.returncode == 0, result.stderr
    report = json_report(result)
    verdict = report["verdict"]
    assert (verdict["status"], verdict["culprit"]) == ("healthy", "none")
    assert "not run: " in verdict["summary"] and "idle" in verdict["summary"]
    evidence = next(f for f in report["findings"] if f["code"] == "stages_ok")["evidence"]
    assert "handshake" in evidence[0] and "HTTP 101" in evidence[0]
    assert ("echo RTT p50" in evidence[0]) == ("echo" in stages)
    assert [s["name"] for s in report["paths"][0]["stages"]] == stages.split(",")


def test_a_quick_check_of_an_unreachable_server_is_no_healthy_verdict() -> None:
    result = run_cli("probe", f"ws://127.0.0.1:{free_port()}/", "--stages", "handshake")
    assert result.returncode == 1, result.stderr


def test_interrupted_probe_writes_a_partial_report(serve_url: str, tmp_path) -> None:  # noqa: ANN001
    target = tmp_path / "partial.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wsdoctor",
            "probe",
            serve_url,
            "--max-idle",
            "60",
            "--json",
            str(target),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    report = json.loads(target.read_text())
    assert report["interrupted"] is True
    assert report["verdict"]["status"] == "inconclusive"
    assert any(s["name"] == "idle" for s in report["paths"][0]["stages"])


def test_demo_names_the_proxy_idle_timeout() -> None:
    began = time.monotonic()
    result = run_cli("demo", "--json", "-")
    elapsed = time.monotonic() - began
    assert result.returncode == 1, result.stderr
    verdict = json_report(result)["verdict"]
    assert verdict["culprit"] == "proxy_idle_timeout"
    assert verdict["hop"] == "proxy"
    assert abs(verdict["idle_timeout_s"] - 4.0) <= tolerance(4.0)
    assert re.search(r"\b4\.0 s", verdict["summary"])
    side_by_side = result.stderr[result.stderr.index("Paths side by side") :]
    assert re.search(r"idle drop\s+none seen\s+\d\.\d s by FIN", side_by_side)
    print(f"demo took {elapsed:.1f} s")


def test_environment_proxy_is_honoured_and_no_proxy_ignores_it(serve_url: str) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"
    env = {"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}
    args = ("probe", serve_url, "--stages", "handshake", "--json", "-")
    report = json_report(run_cli(*args, env=env))
    assert [p["name"] for p in report["paths"]] == ["direct", "via-proxy"]
    via = report["paths"][1]
    assert via["proxy"] == proxy
    assert via["stages"][0]["connections"][0]["handshake"]["failure"]["reason"] == "refused"
    ignored = json_report(run_cli(*args, "--no-proxy", env=env))
    assert [p["name"] for p in ignored["paths"]] == ["direct"]
