"""Hostile and broken endpoints: the right culprit or a one-line error, never a traceback,
bounded memory, and an end within the command's budget (subprocess timeouts catch hangs)."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hostile import (
    hold,
    in_thread,
    raw_server,
    read_request,
    reset,
    switching_protocols,
    tls_echo_server,
    upgrade,
)
from labkit import json_report, run_cli

from wsdoctor.report.json_report import validate_report
from wsdoctor.server import ServeOptions, running_server

FAST = (
    "--open-timeout",
    "2",
    "--max-idle",
    "2",
    "--stages",
    "handshake,echo,idle,heartbeat",
    "--json",
    "-",
)


async def never_answers(reader, writer) -> None:  # noqa: ANN001
    await hold(reader)


async def one_byte_per_second(reader, writer) -> None:  # noqa: ANN001
    headers = await read_request(reader)
    for byte in switching_protocols(headers.get("sec-websocket-key", ""))[:20]:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


async def wrong_accept(reader, writer) -> None:  # noqa: ANN001
    headers = await read_request(reader)
    writer.write(switching_protocols(headers.get("sec-websocket-key", ""), accept="d3Jvbmc="))
    await writer.drain()
    await hold(reader)


async def reset_mid_handshake(reader, writer) -> None:  # noqa: ANN001
    await reader.read(10)
    reset(writer)


def after_upgrade(frame: bytes, repeat: int = 1):  # noqa: ANN201
    async def behaviour(reader, writer) -> None:  # noqa: ANN001
        await upgrade(reader, writer)
        for _ in range(repeat):
            writer.write(frame)
            await writer.drain()
        await hold(reader)

    return behaviour


async def hundred_mib(reader, writer) -> None:  # noqa: ANN001
    await upgrade(reader, writer)
    writer.write(b"\x82\x7f" + (100 << 20).to_bytes(8, "big"))
    chunk = bytes(1 << 16)
    for _ in range(1600):  # at most 100 MiB, and the client stops reading long before
        writer.write(chunk)
        await asyncio.wait_for(writer.drain(), 5)


MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[2:]).returncode\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def run_and_measure(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, int]:  # noqa: ANN001
    """Run the CLI under a wrapper whose only child it is; return the result and peak RSS (KiB)."""
    peak_file = tmp_path / "peak"
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(peak_file), sys.executable, "-m", "wsdoctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return result, int(peak_file.read_text())


@pytest.mark.parametrize(
    ("behaviour", "culprit", "reason"),
    [
        (never_answers, "unreachable", "timeout"),
        (one_byte_per_second, "unreachable", "timeout"),
        (reset_mid_handshake, "unreachable", "reset"),
        (wrong_accept, "upgrade_blocked", "upgrade_not_performed"),
    ],
)
def test_broken_handshakes(behaviour, culprit: str, reason: str) -> None:  # noqa: ANN001
    with raw_server(behaviour) as port:
        result = run_cli("probe", f"ws://127.0.0.1:{port}/", *FAST, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == culprit
    failure = report["paths"][0]["stages"][0]["connections"][0]["handshake"]["failure"]
    assert failure["reason"] == reason


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xff" * 16, 1002),  # garbage after the upgrade
        (b"\x82\x7f" + (2**63 - 1).to_bytes(8, "big"), 1009),  # a frame announcing 2^63 bytes
        (b"\x81\x02\xc3\x28", 1007),  # invalid UTF-8 in a text frame
        (b"\x88\x02" + (999).to_bytes(2, "big"), 1002),  # a close frame with an invalid code
    ],
)
def test_protocol_violations_after_the_upgrade(frame: bytes, code: int) -> None:
    with raw_server(after_upgrade(frame)) as port:
        result = run_cli("probe", f"ws://127.0.0.1:{port}/", *FAST, timeout=40)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    report = json_report(result)
    assert report["verdict"]["status"] == "inconclusive"
    violation = next(f for f in report["findings"] if f["code"] == "protocol_error")
    assert str(code) in violation["evidence"][0]


def test_a_100_mib_message_does_not_blow_client_memory(tmp_path) -> None:  # noqa: ANN001
    with raw_server(hundred_mib) as port:
        result, peak_kib = run_and_measure(tmp_path, "probe", f"ws://127.0.0.1:{port}/", *FAST)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    validate_report(json.loads(result.stdout))
    assert 0 < peak_kib < 150 * 1024, f"peak RSS {peak_kib} KiB"


@contextmanager
def tls_server(cert_identity: str, expired: bool, tmp_path) -> Iterator[tuple[int, str]]:  # noqa: ANN001
    """A TLS WebSocket echo server; yields its port and the CA file that signed it."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    now = datetime.datetime.now(datetime.UTC)
    window = {
        "not_before": now - datetime.timedelta(days=30),
        "not_after": now - datetime.timedelta(days=1),
    }
    cert = ca.issue_cert(cert_identity, **(window if expired else {}))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with tls_echo_server(context) as port:
        yield port, str(ca_file)


@pytest.mark.parametrize(
    ("identity", "expired", "trust", "words"),
    [
        ("127.0.0.1", False, False, "certificate"),  # self-signed: not trusted
        ("127.0.0.1", True, True, "expired"),
        ("other.example", False, True, "127.0.0.1"),  # the wrong host name
    ],
)
def test_tls_failures(identity: str, expired: bool, trust: bool, words: str, tmp_path) -> None:  # noqa: ANN001
    with tls_server(identity, expired, tmp_path) as (port, ca_file):
        extra = ("--cacert", ca_file) if trust else ()
        result = run_cli("probe", f"wss://127.0.0.1:{port}/", *extra, *FAST, timeout=30)
    assert result.returncode == 1, result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == "tls_error"
    assert words in report["verdict"]["summary"]


def test_trusted_tls_server_is_healthy(tmp_path) -> None:  # noqa: ANN001
    with tls_server("127.0.0.1", False, tmp_path) as (port, ca_file):
        result = run_cli("probe", f"wss://127.0.0.1:{port}/", "--cacert", ca_file, *FAST)
    assert result.returncode == 0, result.stderr
    tls_s = json_report(result)["paths"][0]["stages"][0]["connections"][0]["handshake"]["tls_s"]
    assert tls_s is not None and tls_s > 0


def test_unresolvable_name_is_unreachable() -> None:
    result = run_cli("probe", "ws://nonexistent-host.invalid/", *FAST, timeout=30)
    assert result.returncode == 1, result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == "unreachable"
    assert (
        report["paths"][0]["stages"][0]["connections"][0]["handshake"]["failure"]["reason"] == "dns"
    )


def test_ipv6_literal() -> None:
    with in_thread(lambda: running_server(ServeOptions(host="::1", port=0))) as port:
        result = run_cli("probe", f"ws://[::1]:{port}/", *FAST)
    assert result.returncode == 0, result.stderr
    assert json_report(result)["verdict"]["status"] == "healthy"
