"""End to end through real Debian proxies: nginx, HAProxy, Squid and tinyproxy on loopback.

Each test runs ``wsdoctor serve`` in-process as the backend, a real proxy in front of it with
a configuration written into ``tmp_path``, and probes the direct and the proxied path at the
same time with the real probes. Figures (measured timeout, how connections ended, time to
verdict) are printed for the notes: run with ``pytest -s`` to see them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from labkit import HOST, json_report, run_cli, tolerance
from realproxies import RealRun, haproxy, nginx, probe_real, squid, summary_line, tinyproxy

from wsdoctor.execute import EXIT_HEALTHY, exit_code_for
from wsdoctor.server import ServeOptions, running_server

pytestmark = pytest.mark.lab

TIMEOUT_S = 3.0
MAX_IDLE_S = 9.0  # about 3 x the configured timeout
SQUID_CLOCK_S = 1.0
"""Squid times its comm timeouts in whole seconds (``F->timeout = squid_curtime + timeout``,
``squid_curtime`` being ``time_t``), so ``read_timeout N`` fires between N-1 and N seconds
after the last byte, depending on where in the second that byte arrived."""


def report_figures(case: str, run: RealRun, configured_s: float | None) -> None:
    print("\n" + summary_line(case, run, configured_s))


def assert_idle_timeout_at_proxy(run: RealRun) -> None:
    verdict = run.lab.verdict
    assert verdict.status == "problem", verdict.summary
    assert verdict.culprit == "proxy_idle_timeout", verdict.summary
    assert verdict.hop == "proxy", verdict.summary
    assert verdict.idle_timeout_s is not None


def assert_fin_without_close_frame(run: RealRun) -> None:
    """Fully idle connections ended by a FIN; none saw a close frame; direct ones survived."""
    idle = run.lab.observations.paths[1].stage("idle")
    assert idle is not None
    sentinels = [c.ending.kind for c in idle.connections if c.role == "sentinel"]
    assert sentinels and set(sentinels) == {"eof"}, sentinels
    ends = run.ends("via-proxy")
    assert "close_frame" not in ends, ends
    # A rung that pings just as the proxy closes may see an RST instead; nothing else. Rungs
    # that answered their ping go quiet again and may still be open when the stage ends.
    assert set(ends) <= {"eof", "reset", "local", "open"}, ends
    still_open = [c for c in idle.connections if c.ending.kind == "open"]
    assert all(
        c.role == "rung" and any(e.kind == "pong_received" for e in c.events) for c in still_open
    ), [c.id for c in still_open]
    assert set(run.ends("direct")) <= {"local", "open"}, run.ends("direct")


def test_nginx_proxy_read_timeout(tmp_path: Path) -> None:
    run = probe_real(
        lambda port: nginx(tmp_path, port, read_timeout_s=TIMEOUT_S, send_timeout_s=TIMEOUT_S),
        max_idle_s=MAX_IDLE_S,
    )
    report_figures("nginx proxy_read_timeout 3s", run, TIMEOUT_S)
    assert_idle_timeout_at_proxy(run)
    assert abs(run.lab.verdict.idle_timeout_s - TIMEOUT_S) <= tolerance(TIMEOUT_S)
    assert_fin_without_close_frame(run)
    assert "upstream timed out" in run.proxy_log


def test_haproxy_timeout_tunnel(tmp_path: Path) -> None:
    run = probe_real(
        lambda port: haproxy(tmp_path, port, tunnel_timeout_s=TIMEOUT_S), max_idle_s=MAX_IDLE_S
    )
    report_figures("haproxy timeout tunnel 3s", run, TIMEOUT_S)
    assert_idle_timeout_at_proxy(run)
    assert abs(run.lab.verdict.idle_timeout_s - TIMEOUT_S) <= tolerance(TIMEOUT_S)
    assert_fin_without_close_frame(run)
    # HAProxy's own log: "cD" = client-side timeout while in the data (tunnel) phase.
    assert " cD" in run.proxy_log


@pytest.mark.parametrize(
    ("case", "options", "status"),
    [
        # nginx then sends "Connection: close" and no Upgrade upstream; the backend
        # (websockets) answers 426 Upgrade Required, which nginx relays.
        ("nginx without Upgrade/Connection headers", {"upgrade_headers": False}, 426),
        # nginx then speaks HTTP/1.0 upstream; the backend (websockets) answers
        # 505 HTTP Version Not Supported, which nginx relays (with its own Server header).
        ("nginx without proxy_http_version 1.1", {"http_11": False}, 505),
    ],
)
def test_nginx_misconfigured_upgrade(tmp_path: Path, case: str, options: dict, status: int) -> None:
    run = probe_real(lambda port: nginx(tmp_path, port, **options), max_idle_s=4.0)
    report_figures(case, run, None)
    verdict = run.lab.verdict
    assert verdict.status == "problem", verdict.summary
    assert verdict.culprit == "upgrade_blocked", verdict.summary
    assert verdict.hop == "proxy", verdict.summary
    handshake = run.lab.observations.paths[1].stage("handshake")
    assert handshake is not None
    record = handshake.connections[0]
    assert record.ending.kind == "handshake_failed"
    assert record.handshake.failure is not None
    assert record.handshake.failure.status == status
    assert set(run.ends("direct")) <= {"local", "open"}


def test_nginx_with_long_timeout_is_healthy(tmp_path: Path) -> None:
    run = probe_real(lambda port: nginx(tmp_path, port, read_timeout_s=60.0), max_idle_s=4.0)
    report_figures("nginx proxy_read_timeout 60s, max idle 4", run, 60.0)
    verdict = run.lab.verdict
    assert verdict.status == "healthy", verdict.summary
    assert verdict.culprit == "none", verdict.summary
    assert exit_code_for(run.lab.diagnosis, None) == EXIT_HEALTHY
    for path in ("direct", "via-proxy"):
        assert set(run.ends(path)) <= {"local", "open"}, (path, run.ends(path))


def test_tinyproxy_forward_proxy_timeout(tmp_path: Path) -> None:
    run = probe_real(
        lambda port: tinyproxy(tmp_path, port, timeout_s=TIMEOUT_S), max_idle_s=MAX_IDLE_S
    )
    report_figures("tinyproxy (CONNECT) Timeout 3", run, TIMEOUT_S)
    assert run.lab.observations.paths[1].proxy is not None
    assert_idle_timeout_at_proxy(run)
    assert abs(run.lab.verdict.idle_timeout_s - TIMEOUT_S) <= tolerance(TIMEOUT_S)
    assert_fin_without_close_frame(run)
    assert "Idle Timeout" in run.proxy_log


def test_squid_forward_proxy_read_timeout(tmp_path: Path) -> None:
    run = probe_real(
        lambda port: squid(tmp_path, port, read_timeout_s=TIMEOUT_S), max_idle_s=MAX_IDLE_S
    )
    report_figures("squid (CONNECT) read_timeout 3 seconds", run, TIMEOUT_S)
    assert run.lab.observations.paths[1].proxy is not None
    assert_idle_timeout_at_proxy(run)
    # Squid itself fires between N-1 and N s (whole-second clock); the figure is the earliest
    # of its FINs (what a heartbeat must beat), and the range reaches what the sentinels saw.
    verdict = run.lab.verdict
    measured = verdict.idle_timeout_s
    assert TIMEOUT_S - SQUID_CLOCK_S - 0.1 <= measured <= TIMEOUT_S + tolerance(TIMEOUT_S)
    idle = run.lab.observations.paths[1].stage("idle")
    assert idle is not None
    sentinels = [c.ending.idle_s for c in idle.connections if c.role == "sentinel"]
    assert measured <= min(sentinels) + 0.05, (measured, sentinels)
    assert verdict.idle_timeout_range_s is not None
    low, high = verdict.idle_timeout_range_s
    assert low == measured and high >= max(sentinels) - 0.05, (low, high, sentinels)
    assert high - low <= SQUID_CLOCK_S + 0.1, (low, high)
    assert_fin_without_close_frame(run)


def test_cli_compare_through_nginx(tmp_path: Path) -> None:
    """``python -m wsdoctor compare`` as a real process, against nginx with a 3 s timeout."""

    async def main() -> tuple[object, float]:
        async with (
            running_server(ServeOptions(port=0)) as backend_port,
            nginx(tmp_path, backend_port, read_timeout_s=TIMEOUT_S) as proxy,
        ):
            began = time.monotonic()
            result = await asyncio.to_thread(
                run_cli,
                "compare",
                "--direct",
                f"ws://{HOST}:{backend_port}/",
                "--via-proxy",
                proxy.url,
                "--max-idle",
                "10",
                "--json",
                "-",
                timeout=25,
            )
            return result, time.monotonic() - began

    result, elapsed = asyncio.run(main())
    report = json_report(result)
    verdict = report["verdict"]
    print(
        f"\n[real-proxy] CLI compare via nginx proxy_read_timeout 3s: exit={result.returncode} "
        f"culprit={verdict['culprit']} hop={verdict['hop']} "
        f"idle_timeout_s={verdict['idle_timeout_s']} report duration_s={report['duration_s']} "
        f"process wall time_s={elapsed:.2f}"
    )
    assert result.returncode == 1, result.stderr
    assert verdict["status"] == "problem"
    assert verdict["culprit"] == "proxy_idle_timeout"
    assert verdict["hop"] == "proxy"
    assert abs(verdict["idle_timeout_s"] - TIMEOUT_S) <= tolerance(TIMEOUT_S)
