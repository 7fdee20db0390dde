"""Secrets never leave wsdoctor: headers, URL passwords and token-like query parameters."""

from __future__ import annotations

import pytest
from labkit import json_report, run_cli

from wsdoctor.demo import free_port
from wsdoctor.redact import REDACTED, redact_headers, redact_url


def test_credential_headers_are_redacted() -> None:
    headers = {
        "Authorization": "Bearer s3cr3t",
        "Cookie": "session=abc",
        "Proxy-Authorization": "Basic Zm9v",
        "X-Api-Key": "k",
        "Server": "nginx",
    }
    redacted = redact_headers(headers)
    assert redacted["Server"] == "nginx"
    assert all(redacted[name] == REDACTED for name in headers if name != "Server")


@pytest.mark.parametrize(
    ("url", "kept", "gone"),
    [
        ("wss://user:pw@example.com/ws", "example.com/ws", "pw"),
        ("ws://h/ws?token=abc123&room=7", "room=7", "abc123"),
        ("ws://h/ws?access_token=abc123", "access_token=", "abc123"),
        ("ws://h/ws?X-Amz-Signature=abc123&a=b", "a=b", "abc123"),
        ("ws://h/ws?api_key=abc123", "api_key=", "abc123"),
    ],
)
def test_urls_are_redacted(url: str, kept: str, gone: str) -> None:
    redacted = redact_url(url)
    assert kept in redacted
    assert gone not in redacted


def test_planted_secrets_appear_in_no_output() -> None:
    secret = "planted-secret-7f3a"
    url = f"ws://alice:{secret}@127.0.0.1:{free_port()}/ws?token={secret}&room=1"
    result = run_cli(
        "probe",
        url,
        "-H",
        f"Authorization: Bearer {secret}",
        "-H",
        f"Cookie: s={secret}",
        "--json",
        "-",
    )
    assert result.returncode == 1, result.stderr
    assert secret not in result.stdout + result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == "unreachable"
    plain = run_cli("probe", url, "-H", f"Authorization: Bearer {secret}")
    assert secret not in plain.stdout + plain.stderr


def test_secrets_from_a_live_server_are_redacted() -> None:
    """A server that sets a cookie on the 101: the recorded headers must not carry it."""
    import asyncio
    import threading

    from websockets.asyncio.server import serve

    secret = "server-cookie-9c1d"
    ready = threading.Event()
    stop = threading.Event()
    port = free_port()

    def add_cookie(connection, request, response):  # noqa: ANN001, ANN202
        response.headers["Set-Cookie"] = f"s={secret}"

    async def echo(ws) -> None:  # noqa: ANN001
        async for message in ws:
            await ws.send(message)

    async def run_server() -> None:
        async with serve(echo, "127.0.0.1", port, process_response=add_cookie):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(run_server(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        url = f"ws://127.0.0.1:{port}/?token={secret}"
        result = run_cli(
            "probe",
            url,
            "--stages",
            "handshake,echo",
            "-H",
            f"Authorization: {secret}",
            "--json",
            "-",
        )
        assert secret not in result.stdout + result.stderr
        report = json_report(result)
        headers = report["paths"][0]["stages"][0]["connections"][0]["handshake"]["headers"]
        assert {k.lower(): v for k, v in headers.items()}["set-cookie"] == REDACTED
    finally:
        stop.set()
        thread.join(5)
