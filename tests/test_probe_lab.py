"""End to end: the real probes against `wsdoctor serve` and the fault proxy on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from hostile import in_thread
from labkit import LabRun, probe_lab, probe_urls, tolerance
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wsdoctor.lab import FaultConfig, FaultProxy
from wsdoctor.server import ServeOptions, running_server


def assert_heartbeat_remedy(remedies: list[str], idle_s: float) -> None:
    """A remedy names a heartbeat interval of about half the idle timeout."""
    intervals = [float(m) for r in remedies for m in re.findall(r"every ([0-9.]+) s", r)]
    assert any(0.3 * idle_s <= i <= 0.6 * idle_s for i in intervals), remedies


@pytest.mark.parametrize(("action", "ending"), [("fin", "eof"), ("rst", "reset")])
def test_proxy_idle_timeout_is_placed_at_the_proxy_hop(action: str, ending: str) -> None:
    run = probe_lab(fault={"idle_timeout_s": 3.0, "idle_action": action})
    verdict = run.verdict
    assert verdict.status == "problem"
    assert verdict.culprit == "proxy_idle_timeout"
    assert verdict.hop == "proxy"
    assert abs(verdict.idle_timeout_s - 3.0) <= tolerance(3.0)
    assert ending in run.endings("via-proxy")
    assert "open" in run.endings("direct") and ending not in run.endings("direct")
    assert_heartbeat_remedy(verdict.remedies, verdict.idle_timeout_s)


def test_black_hole_is_a_silent_network_drop() -> None:
    run = probe_lab(fault={"idle_timeout_s": 3.2, "idle_action": "silent"})
    verdict = run.verdict
    assert verdict.culprit == "nat_firewall_idle_drop"
    assert verdict.hop == "network"
    assert abs(verdict.idle_timeout_s - 3.2) <= tolerance(3.2)
    assert "silent" in run.endings("via-proxy")
    assert "silent" not in run.endings("direct")


def test_lifetime_cap_is_not_mistaken_for_an_idle_timeout() -> None:
    run = probe_lab(fault={"max_age_s": 4.0, "max_age_action": "fin"})
    verdict = run.verdict
    assert verdict.culprit == "lifetime_cap"
    assert abs(verdict.lifetime_cap_s - 4.0) <= tolerance(4.0)
    assert "eof" in run.endings("via-proxy", "heartbeat")


def test_server_idle_timeout_with_close_frame_on_one_path() -> None:
    server = ServeOptions(idle_timeout_s=3.0, idle_close="frame")
    run = probe_lab(server=server, paths=("direct",))
    verdict = run.verdict
    assert verdict.culprit == "server_idle_timeout"
    assert verdict.hop == "server"
    assert abs(verdict.idle_timeout_s - 3.0) <= tolerance(3.0)
    assert "close_frame" in run.endings("direct")


def test_server_idle_timeout_without_close_frame_shows_on_every_path() -> None:
    server = ServeOptions(idle_timeout_s=2.5, idle_close="fin")
    run = probe_lab(server=server, fault={})
    verdict = run.verdict
    assert verdict.culprit == "server_idle_timeout"
    assert verdict.hop == "server"
    assert abs(verdict.idle_timeout_s - 2.5) <= tolerance(2.5)


def test_idle_timer_that_ignores_protocol_pings_asks_for_app_heartbeats() -> None:
    server = ServeOptions(idle_timeout_s=3.0, idle_ignores_pings=True)
    run = probe_lab(server=server, paths=("direct",))
    assert run.verdict.culprit == "server_idle_timeout"
    assert "pings_ignored" in run.finding_codes()
    assert any("application heartbeat" in r for r in run.verdict.remedies)


def test_healthy_path_is_healthy() -> None:
    run = probe_lab(max_idle=4.0, paths=("direct",))
    assert run.verdict.status == "healthy"
    assert run.verdict.culprit == "none"
    assert set(run.endings("direct")) <= {"local", "open"}


def test_server_heartbeat_is_reported() -> None:
    run = probe_lab(server=ServeOptions(ping_interval_s=1.0), max_idle=4.0, paths=("direct",))
    assert run.verdict.status == "healthy"
    assert "server_heartbeat" in run.finding_codes()
    intervals = [
        c.server_ping_interval_s
        for s in run.observations.paths[0].stages
        for c in s.connections
        if c.server_ping_interval_s
    ]
    assert intervals and all(abs(i - 1.0) < 0.3 for i in intervals)


def test_stalling_path_is_unstable() -> None:
    run = probe_lab(
        fault={"stall_every_s": 1.0, "stall_for_s": 0.7}, max_idle=3.0, paths=("via-proxy",)
    )
    assert run.verdict.culprit == "network_instability"
    assert run.verdict.hop == "network"


def _refusing_server_probe(code: int, reason: str) -> LabRun:
    async def refuse(ws: ServerConnection) -> None:
        await ws.close(code, reason)

    async def main() -> LabRun:
        async with serve(refuse, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.to_thread(probe_urls, {"direct": f"ws://127.0.0.1:{port}/"}, 3.0)

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("code", "culprit"), [(1008, "handshake_rejected"), (1013, "server_limits")]
)
def test_server_that_closes_at_once_is_not_an_idle_timeout(code: int, culprit: str) -> None:
    run = _refusing_server_probe(code, "go away")
    assert run.verdict.culprit == culprit
    assert run.verdict.idle_timeout_s is None
    assert f"close {code} (go away)" in run.verdict.summary


def test_three_entry_points_name_the_first_hop_that_drops() -> None:
    """backend <- proxy A (no fault) <- proxy B (idle 3 s): the drop starts at B."""

    @asynccontextmanager
    async def chain() -> AsyncIterator[int]:
        async with AsyncExitStack() as stack:
            port = await stack.enter_async_context(running_server(ServeOptions(port=0)))
            inner = await stack.enter_async_context(FaultProxy(FaultConfig("127.0.0.1", port)))
            outer_config = FaultConfig("127.0.0.1", inner.port, idle_timeout_s=3.0)
            outer = await stack.enter_async_context(FaultProxy(outer_config))
            ports.update(direct=port, inner=inner.port, outer=outer.port)
            yield port

    ports: dict[str, int] = {}
    with in_thread(chain):
        run = probe_urls(
            {
                "direct": f"ws://127.0.0.1:{ports['direct']}/",
                "via-1": f"ws://127.0.0.1:{ports['inner']}/",
                "via-2": f"ws://127.0.0.1:{ports['outer']}/",
            }
        )
    verdict = run.verdict
    assert (verdict.culprit, verdict.hop) == ("proxy_idle_timeout", "proxy")
    assert abs(verdict.idle_timeout_s - 3.0) <= tolerance(3.0)
    assert "first seen on via-2" in verdict.summary


def test_server_refusing_concurrent_probe_connections_is_a_limit() -> None:
    run = probe_lab(server=ServeOptions(max_connections=8), max_idle=3.0, paths=("direct",))
    verdict = run.verdict
    assert verdict.culprit == "server_limits"
    assert "connections_refused" in run.finding_codes()
    assert verdict.connection_limit is not None and 6 <= verdict.connection_limit <= 8


def test_server_pushing_messages_is_reported_as_hiding_idle_timeouts() -> None:
    async def ticker(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for _ in range(200):  # bounded: 100 s at most
                await ws.send("tick")
                await asyncio.sleep(0.5)

    async def main() -> LabRun:
        async with serve(ticker, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            return await asyncio.to_thread(probe_urls, {"direct": f"ws://127.0.0.1:{port}/"}, 3.0)

    run = asyncio.run(main())
    assert run.verdict.status == "healthy"
    push = next(f for f in run.diagnosis.findings if f.code == "server_push")
    assert "every 0.5 s" in push.evidence[0]
