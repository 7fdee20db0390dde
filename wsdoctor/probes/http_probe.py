"""A plain HTTP request to the WebSocket URL's origin: its headers often name intermediaries.

It costs nothing the user waits for:

- the runner asks for it only beside the long stages (idle, heartbeat, stability, size, rate),
  never on the path of a quick check (``--stages handshake`` or ``handshake,echo``), and the
  runner imports this module (httpx) only then;
- one client per run (per forward proxy), shared by the paths, built on first use;
- a CA bundle is loaded only when the request or its proxy speaks TLS: for a ``ws://`` target
  the client is built with ``verify=False``, which loads nothing and costs about a millisecond,
  so it is built on the event loop. Loading CA certificates blocks (about 20 ms, more on a
  cold disk): that client is built in a worker thread, a daemon thread
  (``wsdoctor.eventloop``) that cannot hold up the end of the process.

httpx and httpcore are imported here, at module level, so that they are imported in the main
thread, never in a worker thread while the main thread imports too (the import lock): httpx
0.28 imports httpcore only when its first transport is built, which is in a worker thread
for a ``wss://`` target.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import httpcore  # noqa: F401 - imported here, not by the first client built in a thread
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


def speaks_tls(path: PathSpec) -> bool:
    """Whether the plain request to ``path`` (or its forward proxy) needs TLS, so a CA bundle."""
    return path.url.startswith("wss:") or bool(path.proxy and path.proxy.startswith("https:"))


def verify_for(path: PathSpec, options: ConnectOptions) -> bool | str:
    """httpx's ``verify``: False (nothing loaded) unless TLS is spoken and checked."""
    if options.insecure or not speaks_tls(path):
        return False
    return options.cacert or True


def build_client(path: PathSpec, options: ConnectOptions) -> httpx.AsyncClient:
    """An httpx client for ``path`` (blocks while it loads a CA bundle, if it needs one)."""
    return httpx.AsyncClient(
        verify=verify_for(path, options),
        proxy=path.proxy,
        timeout=min(HTTP_TIMEOUT_S, options.open_timeout_s),
        follow_redirects=False,
        trust_env=False,
    )


class HttpClients:
    """The run's httpx clients: one per forward proxy and TLS need, built once, closed once.

    Paths that share a forward proxy (or have none) share a client; building one that loads a
    CA bundle runs in a worker thread, and concurrent requests for it wait for the same build.
    """

    def __init__(self, options: ConnectOptions) -> None:
        self.options = options
        self.built = 0
        self._clients: dict[tuple[str | None, bool], asyncio.Future[httpx.AsyncClient]] = {}

    async def client(self, path: PathSpec) -> httpx.AsyncClient:
        """The client for ``path``; raises OSError or ValueError when it cannot be built."""
        key = (path.proxy, speaks_tls(path))
        if key not in self._clients:
            self.built += 1
            if verify_for(path, self.options) is False:
                future = asyncio.get_running_loop().create_future()
                try:
                    future.set_result(build_client(path, self.options))
                except (OSError, ValueError) as error:
                    future.set_exception(error)
            else:
                future = asyncio.ensure_future(asyncio.to_thread(build_client, path, self.options))
            self._clients[key] = future
        return await asyncio.shield(self._clients[key])

    async def aclose(self) -> None:
        """Close every client built (within ``CLOSE_S``); errors closing are ignored."""
        futures, self._clients = list(self._clients.values()), {}
        for future in futures:
            if not future.done():
                future.cancel()
                continue
            if future.cancelled() or future.exception() is not None:
                continue
            with contextlib.suppress(Exception):
                await asyncio.wait_for(future.result().aclose(), CLOSE_S)


async def plain_http_fingerprints(path: PathSpec, clients: HttpClients) -> list[Fingerprint]:
    """Fingerprints from one GET to the path's origin; none when the request fails."""
    if path.proxy and not path.proxy.startswith("http"):
        return []  # a plain request would bypass a SOCKS proxy and describe another path
    options = clients.options
    budget = min(HTTP_TIMEOUT_S, options.open_timeout_s)
    try:
        client = await clients.client(path)
        response = await asyncio.wait_for(
            client.get(http_url_for(path.url), headers=list(options.headers)), budget + CLOSE_S
        )
    except (TimeoutError, httpx.HTTPError, OSError, ValueError):
        return []
    return recognise(dict(response.headers.items()), "http")
