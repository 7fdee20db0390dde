"""A real Linux conntrack black hole between the probe and a server in a network namespace.

The server runs in its own namespace behind a veth pair. That namespace's conntrack forgets
established TCP flows after a few idle seconds (``nf_conntrack_tcp_timeout_established``),
``nf_conntrack_tcp_loose=0`` stops it from picking a flow up again mid-stream, and nftables
drops the then-invalid packets: exactly the silent idle drop of a NAT or stateful firewall.
Addresses are the namespace's own (never routed beyond this machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CLIENT_ADDRESS = "10.213.7.1"
SERVER_ADDRESS = "10.213.7.2"
SERVER_PORT = 8765
RULES = """
table inet wsdoctor_test {
  chain input { type filter hook input priority 0; policy accept; ct state invalid drop; }
  chain output { type filter hook output priority 0; policy accept; ct state invalid drop; }
}
"""


def _require_tools() -> None:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    reason = f"needs {', '.join(missing)}" if missing else None
    if os.geteuid() != 0:
        reason = "needs root to create a network namespace"
    if reason is None:
        return
    if os.environ.get("WSDOCTOR_REQUIRE_LAB") == "1":
        pytest.fail(f"the network-namespace lab {reason} (WSDOCTOR_REQUIRE_LAB=1)")
    pytest.skip(f"the network-namespace lab {reason}")


def _run(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, check=True, input=stdin, text=True, capture_output=True, timeout=10)


@contextmanager
def conntrack_black_hole(timeout_s: int) -> Iterator[str]:
    """A `wsdoctor serve` behind a conntrack black hole of ``timeout_s``; yields its URL."""
    _require_tools()
    name = f"wsdoctor-{os.getpid()}"
    host_end, ns_end = f"wsdc{os.getpid() % 10000}", f"wsds{os.getpid() % 10000}"
    in_ns = ("ip", "netns", "exec", name)
    server = None
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        _run("ip", "link", "set", ns_end, "netns", name)
        _run("ip", "addr", "add", f"{CLIENT_ADDRESS}/30", "dev", host_end)
        _run("ip", "link", "set", host_end, "up")
        _run(*in_ns, "ip", "addr", "add", f"{SERVER_ADDRESS}/30", "dev", ns_end)
        _run(*in_ns, "ip", "link", "set", ns_end, "up")
        _run(*in_ns, "ip", "link", "set", "lo", "up")
        _run(
            *in_ns, "sysctl", "-w",
            f"net.netfilter.nf_conntrack_tcp_timeout_established={timeout_s}",
            "net.netfilter.nf_conntrack_tcp_loose=0",
        )  # fmt: skip
        _run(*in_ns, "nft", "-f", "-", stdin=RULES)
        server = subprocess.Popen(
            [*in_ns, sys.executable, "-m", "wsdoctor", "serve",
             "--host", SERVER_ADDRESS, "--port", str(SERVER_PORT)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stderr is not None
        line = server.stderr.readline()
        assert "listening" in line, line
        yield f"ws://{SERVER_ADDRESS}:{SERVER_PORT}/"
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        time.sleep(0.1)
