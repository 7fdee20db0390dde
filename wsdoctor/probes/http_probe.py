"""A plain HTTP request to the WebSocket URL's origin: its headers often name intermediaries.

httpx is imported here, at module level, so that it is imported in the main thread when the
probes load, never in a worker thread while the main thread imports too (the import lock).
Only building the client (loading CA certificates, which blocks) runs in a worker thread: a
daemon thread (``wsdoctor.eventloop``) that cannot hold up the end of the process.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from wsdoctor.fingerprints import recognise
from wsdoctor.observations import Fingerprint
from wsdoctor.plan import ConnectOptions, PathSpec

HTTP_TIMEOUT_S = 5.0
CLOSE_S = 2.0


def http_url_for(ws_url: str) -> str:
    """The http(s) URL of the same origin and path."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def _client(path: PathSpec, options: ConnectOptions) -> Any:
    """An httpx client (loading CA certificates blocks: run in a thread)."""
    verify: bool | str = False if options.insecure else (options.cacert or True)
    return httpx.AsyncClient(
        verify=verify,
        proxy=path.proxy,
        timeout=min(HTTP_TIMEOUT_S, options.open_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


async def plain_http_fingerprints(path: PathSpec, options: ConnectOptions) -> list[Fingerprint]:
    """Fingerprints from one GET to the path's origin; none when the request fails."""
    if path.proxy and not path.proxy.startswith("http"):
        return []  # a plain request would bypass a SOCKS proxy and describe another path
    try:
        client = await asyncio.to_thread(_client, path, options)
    except (OSError, ValueError):
        return []
    budget = min(HTTP_TIMEOUT_S, options.open_timeout_s)
    try:
        # The request and the client's close, together: neither may outlast the budget.
        response = await asyncio.wait_for(
            _get(client, http_url_for(path.url), list(options.headers)), budget + CLOSE_S
        )
    except (httpx.HTTPError, OSError, ValueError, asyncio.TimeoutError):
        return []
    return recognise(dict(response.headers.items()), "http")


async def _get(client: Any, url: str, headers: list[tuple[str, str]]) -> Any:
    async with client:
        return await client.get(url, headers=headers)
