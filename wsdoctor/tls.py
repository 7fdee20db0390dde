"""The TLS client context every transport uses: trust, verification and client certificates."""

from __future__ import annotations

import ssl


def client_context(
    cacert: str | None = None,
    insecure: bool = False,
    client_cert: str | None = None,
    client_key: str | None = None,
) -> ssl.SSLContext:
    """A client context: ``cacert`` trusted, no verification when ``insecure``, and the client
    certificate (an unencrypted PEM key: never a password prompt) for mutual TLS."""
    context = ssl.create_default_context(cafile=cacert)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        context.load_cert_chain(client_cert, client_key, password=b"")
    return context
