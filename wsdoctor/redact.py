"""Keep secrets out of every output: credential headers, URL passwords, token-like parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "sec-websocket-key",
        "sec-websocket-accept",
    }
)
_SECRET_PARAM = re.compile(
    r"(token|key|secret|signature|sig|password|passwd|pwd|auth|session|credential|jwt|code)",
    re.IGNORECASE,
)


def is_secret_header(name: str) -> bool:
    """True for headers whose value is a credential."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or bool(re.search(r"(token|secret|api-key|auth)", lowered))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credential values replaced."""
    return {k: (REDACTED if is_secret_header(k) else v) for k, v in headers.items()}


def redact_url(url: str) -> str:
    """``url`` without user:password and with token-like query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, REDACTED if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="[]"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
