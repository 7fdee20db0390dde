"""A plain HTTP request to the WebSocket URL's origin: its headers often name intermediaries."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wsdoctor.fingerprints import recognise
from wsdoctor.observations import Fingerprint
from wsdoctor.plan import ConnectOptions, PathSpec

HTTP_TIMEOUT_S = 5.0


def http_url_for(ws_url: str) -> str:
    """The http(s) URL of the same origin and path."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def _client(path: PathSpec, options: ConnectOptions) -> Any:
    """An httpx client (importing httpx and loading CA certificates block: run in a thread)."""
    import httpx

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
    import httpx

    budget = min(HTTP_TIMEOUT_S, options.open_timeout_s)
    try:
        async with client:
            response = await asyncio.wait_for(
                client.get(http_url_for(path.url), headers=list(options.headers)), budget
            )
    except (httpx.HTTPError, OSError, ValueError, asyncio.TimeoutError):
        return []
    return recognise(dict(response.headers.items()), "http")
