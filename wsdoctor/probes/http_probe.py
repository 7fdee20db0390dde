"""A plain HTTP request to the WebSocket URL's origin: its headers often name intermediaries."""

from __future__ import annotations

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


async def plain_http_fingerprints(path: PathSpec, options: ConnectOptions) -> list[Fingerprint]:
    """Fingerprints from one GET to the path's origin; none when the request fails."""
    import httpx

    if path.proxy and not path.proxy.startswith("http"):
        return []  # a plain request would bypass a SOCKS proxy and describe another path
    verify: bool | str = False if options.insecure else (options.cacert or True)
    try:
        async with httpx.AsyncClient(
            verify=verify,
            proxy=path.proxy,
            timeout=min(HTTP_TIMEOUT_S, options.open_timeout_s),
            follow_redirects=False,
            trust_env=False,
        ) as client:
            response = await client.get(http_url_for(path.url), headers=list(options.headers))
    except (httpx.HTTPError, OSError, ValueError):
        return []
    return recognise(dict(response.headers.items()), "http")
