"""One pipeline for every command, and a report on every path after the arguments parse.

Real processes against real (if odd) servers on loopback: a redirect (also an endless chain of
them), an answer that is not HTTP, a TLS server behind a ws:// URL, an internal error. Each must
leave its JSON report with the named cause. The option parsing of every command is also fed
arbitrary strings as URLs, headers and proxy URLs (in-process, up to the pipeline): a one-line
usage error (exit 2) or a plan, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_budget
from hostile import in_thread, raw_server, read_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import wsdoctor.execute
from wsdoctor.cli import app
from wsdoctor.exitcodes import EXIT_USAGE
from wsdoctor.report.json_report import validate_report

server_url = test_budget.server_url  # the same fixture: the reference server in a thread
TOKEN = "s3cr3t-token-42"
NGINX_400 = b"<center>The plain HTTP request was sent to HTTPS port</center>"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsdoctor", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def report_of(result: subprocess.CompletedProcess[str], path: Path) -> dict[str, Any]:
    assert path.exists(), result.stderr
    report = json.loads(path.read_text())
    validate_report(report)
    return report


def probe_report(url: str, tmp_path: Path, *extra: str) -> tuple[dict[str, Any], int, str]:
    path = tmp_path / "report.json"
    result = run_cli("probe", url, "--stages", "handshake", "--json", str(path), *extra)
    assert "Traceback" not in result.stderr
    return report_of(result, path), result.returncode, result.stderr


# --- odd servers -----------------------------------------------------------------------------


def answer(data: bytes):  # noqa: ANN201 - a hostile.Behaviour
    async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(data)
        await writer.drain()

    return behaviour


def redirect_to(location: str) -> bytes:
    return (f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").encode()


def test_a_redirect_is_not_followed_and_is_named_with_its_location(tmp_path: Path) -> None:
    with raw_server(answer(redirect_to(f"wss://elsewhere.example/ws?token={TOKEN}"))) as port:
        report, code, _ = probe_report(f"ws://127.0.0.1:{port}/", tmp_path)
    assert code == 1
    assert report["verdict"]["culprit"] == "handshake_rejected"
    finding = report["findings"][0]
    assert finding["code"] == "handshake_rejected" and "redirect (HTTP 302)" in finding["title"]
    assert "wss://elsewhere.example/ws?token=" in finding["evidence"][0]
    assert TOKEN not in json.dumps(report)


def test_an_endless_chain_of_redirects_ends_with_a_report(tmp_path: Path) -> None:
    port_box: list[int] = []

    async def to_itself(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(redirect_to(f"ws://127.0.0.1:{port_box[0]}/again"))(reader, writer)

    with raw_server(to_itself) as port:
        port_box.append(port)
        report, code, _ = probe_report(f"ws://127.0.0.1:{port}/", tmp_path)
    assert code == 1 and report["verdict"]["culprit"] == "handshake_rejected"
    assert "/again" in report["findings"][0]["evidence"][0]


def test_an_answer_that_is_not_http_is_named(tmp_path: Path) -> None:
    with raw_server(answer(b"SSH-2.0-OpenSSH_9.6\r\n")) as port:
        report, code, _ = probe_report(f"ws://127.0.0.1:{port}/", tmp_path)
    assert code == 1 and report["verdict"]["culprit"] == "handshake_rejected"
    assert report["findings"][0]["title"] == "The server did not answer with HTTP"
    assert "not an HTTP response" in report["findings"][0]["evidence"][0]


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]),  # a TLS alert record
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(NGINX_400), NGINX_400),
    ],
    ids=["alert", "nginx-400"],
)
def test_a_tls_answer_to_ws_says_use_wss(tmp_path: Path, data: bytes) -> None:
    with raw_server(answer(data)) as port:
        report, code, _ = probe_report(f"ws://127.0.0.1:{port}/", tmp_path)
    assert code == 1 and report["verdict"]["culprit"] == "handshake_rejected"
    assert "speaks TLS" in report["findings"][0]["title"]
    assert "wss://" in report["findings"][0]["remedy"]


@contextlib.contextmanager
def tls_server() -> Iterator[int]:
    """A real TLS server (Python's ssl, OpenSSL) that closes on anything but TLS."""
    trustme = pytest.importorskip("trustme")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.read(1)
        writer.close()

    @contextlib.asynccontextmanager
    async def server():  # noqa: ANN202
        listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        async with listener:
            yield listener.sockets[0].getsockname()[1]

    with in_thread(server) as port:
        yield port


def test_ws_to_a_real_tls_port_says_use_wss(tmp_path: Path) -> None:
    with tls_server() as port:
        report, code, _ = probe_report(f"ws://127.0.0.1:{port}/", tmp_path)
    assert code == 1 and report["verdict"]["culprit"] == "handshake_rejected"
    finding = report["findings"][0]
    assert (
        "speaks TLS" in finding["title"] and "completes a TLS handshake" in finding["evidence"][0]
    )


def test_a_server_that_just_closes_is_still_unreachable(tmp_path: Path) -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    with raw_server(close) as port:
        report, code, _ = probe_report(f"ws://127.0.0.1:{port}/", tmp_path)
    assert code == 1 and report["verdict"]["culprit"] == "unreachable"


# --- internal errors -------------------------------------------------------------------------


def test_an_internal_error_still_writes_the_report(server_url: str, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    args = ("probe", server_url, "--stages", "handshake,echo", "--json", str(path))
    crash = {"WSDOCTOR_TEST_HANG": "echo:crash"}
    result = run_cli(*args, env=crash)
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("wsdoctor: ")]
    assert errors == ["wsdoctor: internal error: RuntimeError: " + errors[0].split(": ", 3)[3]]
    assert "Traceback" not in result.stderr
    report = report_of(result, path)
    assert report["verdict"]["status"] == "inconclusive"
    assert report["findings"][0]["code"] == "internal_error"
    assert report["paths"][0]["stages"][0]["name"] == "handshake"  # what was gathered stays
    loud = run_cli(*args, "--debug", env=crash)
    assert loud.returncode == 3 and "Traceback (most recent call last)" in loud.stderr
    assert json.loads(path.read_text())["findings"][0]["code"] == "internal_error"


# --- bad input: one line and exit 2 ------------------------------------------------------------

BAD_URLS = ["ws://[::1/", "ws://[::1]:99999/", "ws://host:port/", "wss://[x]/"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_urls_the_parser_rejects_are_one_line_usage_errors(url: str) -> None:
    for args in (["probe", url], ["watch", url], ["probe", "ws://127.0.0.1:1/", "--proxy", url]):
        result = run_cli(*args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == EXIT_USAGE, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("wsdoctor: error: "), result.stderr


class Planned(Exception):
    """Raised instead of running the pipeline: the options became a gatherer."""


@contextlib.contextmanager
def stop_before_the_pipeline() -> Iterator[list[Any]]:
    gatherers: list[Any] = []
    original = wsdoctor.execute.run_command

    def fake(gatherer: Any, outputs: Any) -> None:
        gatherers.append(gatherer)
        raise Planned

    wsdoctor.execute.run_command = fake  # type: ignore[assignment]
    try:
        yield gatherers
    finally:
        wsdoctor.execute.run_command = original  # type: ignore[assignment]


_lock = threading.Lock()
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
url_like = st.one_of(
    text,
    st.builds(lambda s, rest: f"{s}://{rest}", st.sampled_from(["ws", "wss", "http"]), text),
)
proxy_like = st.one_of(
    text,
    st.builds(lambda s, rest: f"{s}://{rest}", st.sampled_from(["http", "socks5", "socks4"]), text),
)


def command_lines(url: str, header: str, proxy: str) -> list[list[str]]:
    return [
        ["probe", url, "-H", header, "--proxy", proxy],
        ["compare", "--direct", url, "--via-proxy", proxy, "-H", header],
        ["check", url, "-H", header, "--via-proxy", proxy],
        ["watch", url, "-H", header, "--proxy", proxy],
        ["capacity", url, "-H", header, "--yes-i-own-this-server"],
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=url_like, header=text, proxy=proxy_like)
def test_arbitrary_urls_headers_and_proxies_never_escape_as_a_traceback(
    url: str, header: str, proxy: str
) -> None:
    runner = CliRunner(env={"NO_COLOR": "1", "HTTPS_PROXY": "", "ALL_PROXY": ""})
    with _lock, stop_before_the_pipeline() as gatherers:
        for args in command_lines(url, header, proxy):
            if args[1].startswith("-"):
                continue  # would parse as an option, not as the URL
            result = runner.invoke(app, args)
            if isinstance(result.exception, Planned):
                assert gatherers, args
                continue
            assert result.exit_code == EXIT_USAGE, (args, result.exception, result.stderr)
            assert isinstance(result.exception, SystemExit), (args, result.exception)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("wsdoctor: error: "), result.stderr
