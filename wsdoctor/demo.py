"""`wsdoctor demo`: a lab on loopback (server and an idle-dropping proxy) to diagnose."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from wsdoctor.plan import IdlePlan, PathSpec, Plan

DEMO_MAX_IDLE_FACTOR = 3.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class DemoLab:
    """The demo's server and fault proxy ports, and its proxy's idle timeout."""

    idle_timeout_s: float
    server_port: int
    proxy_port: int

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the server and the proxy; stop both on exit."""
        from wsdoctor.lab.faultproxy import FaultConfig, FaultProxy
        from wsdoctor.server import ServeOptions, running_server

        async with running_server(ServeOptions(port=self.server_port)):
            config = FaultConfig(
                upstream_host="127.0.0.1",
                upstream_port=self.server_port,
                idle_timeout_s=self.idle_timeout_s,
                idle_action="fin",
            )
            async with FaultProxy(config, port=self.proxy_port):
                yield


def demo_fixture(idle_timeout_s: float) -> DemoLab:
    """A lab whose proxy closes connections idle for ``idle_timeout_s`` seconds."""
    return DemoLab(idle_timeout_s, free_port(), free_port())


def demo_plan(lab: DemoLab) -> Plan:
    """Probe the server directly and through the proxy, at once."""
    return Plan(
        paths=(
            PathSpec("direct", f"ws://127.0.0.1:{lab.server_port}/"),
            PathSpec("via-proxy", f"ws://127.0.0.1:{lab.proxy_port}/"),
        ),
        idle=IdlePlan(max_idle_s=max(10.0, lab.idle_timeout_s * DEMO_MAX_IDLE_FACTOR)),
    )
