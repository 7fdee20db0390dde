"""Tunnels through forward proxies (HTTP CONNECT, SOCKS4/5) using python-socks."""

from __future__ import annotations

import socket

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
from python_socks.async_.asyncio import Proxy

from wsdoctor.redact import redact_url


class ForwardProxyError(Exception):
    """The forward proxy could not open a tunnel; ``reason`` uses the handshake vocabulary."""

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


async def open_tunnel(proxy_url: str, host: str, port: int, timeout_s: float) -> socket.socket:
    """A connected socket to ``host:port`` through the proxy at ``proxy_url``."""
    shown = redact_url(proxy_url)
    try:
        proxy = Proxy.from_url(proxy_url)
        return await proxy.connect(host, port, timeout=max(0.1, timeout_s))
    except ProxyTimeoutError:
        raise ForwardProxyError("timeout", f"proxy {shown} timed out") from None
    except ProxyConnectionError as exc:
        refused = exc.errno == 111 or "refused" in str(exc).lower()
        reason = "refused" if refused else "other"
        raise ForwardProxyError(reason, f"cannot reach proxy {shown}: {exc}") from None
    except ProxyError as exc:
        code = exc.error_code if isinstance(exc.error_code, int) else None
        raise ForwardProxyError(
            "http_status" if code else "other",
            f"proxy {shown} refused the tunnel to {host}:{port}: {exc}",
            status=code,
        ) from None
    except ValueError as exc:
        raise ForwardProxyError("other", f"bad proxy URL {shown}: {exc}") from None
