"""Header patterns that name an intermediary (facts from shared/intermediaries.md).

Recognising a header is a fact the probes record; what the intermediary's presence means
(its default timeouts, its settings) is knowledge the rules use, keyed by the same names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wsdoctor.observations import Fingerprint

Kind = Literal["proxy", "load_balancer", "cdn", "paas", "server"]


@dataclass(frozen=True)
class Pattern:
    """A header whose value (matched case-insensitively) names an intermediary."""

    name: str
    kind: Kind
    header: str
    value: str = ""  # a regular expression; empty = the header's presence is enough


PATTERNS: tuple[Pattern, ...] = (
    Pattern("cloudflare", "cdn", "cf-ray"),
    Pattern("cloudflare", "cdn", "server", r"^cloudflare"),
    Pattern("cloudfront", "cdn", "x-amz-cf-id"),
    Pattern("cloudfront", "cdn", "x-amz-cf-pop"),
    Pattern("cloudfront", "cdn", "via", r"cloudfront"),
    Pattern("fastly", "cdn", "x-served-by", r"^cache-"),
    Pattern("fastly", "cdn", "via", r"varnish"),
    Pattern("akamai", "cdn", "server", r"akamaighost"),
    Pattern("azure_frontdoor", "cdn", "x-azure-ref"),
    Pattern("alb", "load_balancer", "server", r"^awselb"),
    Pattern("google", "load_balancer", "via", r"\bgoogle\b"),
    Pattern("google", "load_balancer", "server", r"^google frontend"),
    Pattern("azure_appgw", "load_balancer", "server", r"azure-application-gateway"),
    Pattern("heroku", "paas", "via", r"vegur"),
    Pattern("fly", "paas", "fly-request-id"),
    Pattern("fly", "paas", "server", r"^fly/"),
    Pattern("envoy", "proxy", "server", r"envoy"),
    Pattern("envoy", "proxy", "x-envoy-upstream-service-time"),
    Pattern("caddy", "proxy", "server", r"^caddy"),
    Pattern("caddy", "proxy", "via", r"caddy"),
    Pattern("nginx", "proxy", "server", r"^nginx"),
    Pattern("apache", "proxy", "server", r"^apache"),
    Pattern("squid", "proxy", "via", r"squid"),
    Pattern("tinyproxy", "proxy", "via", r"tinyproxy"),
    Pattern("traefik", "proxy", "server", r"^traefik"),
    Pattern("websockets", "server", "server", r"websockets/"),
    Pattern("uvicorn", "server", "server", r"^uvicorn"),
)


def recognise(headers: Mapping[str, str], source: Literal["upgrade", "http"]) -> list[Fingerprint]:
    """Every intermediary that ``headers`` name, once each, with the header that told."""
    lowered = {k.lower(): v for k, v in headers.items()}
    found: dict[str, Fingerprint] = {}
    for pattern in PATTERNS:
        value = lowered.get(pattern.header)
        if value is None or pattern.name in found:
            continue
        if pattern.value and not re.search(pattern.value, value, re.IGNORECASE):
            continue
        found[pattern.name] = Fingerprint(
            name=pattern.name,
            kind=pattern.kind,
            header=pattern.header,
            value=value[:200],
            source=source,
        )
    return list(found.values())
