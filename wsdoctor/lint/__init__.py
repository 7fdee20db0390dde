"""Proxy configuration parsers for ``wsdoctor lint``: files in, facts with file and line out.

:func:`load` tells the product of each file (or takes ``--format``) and hands the files to its
parser; the rules in ``wsdoctor.diagnosis.lint_rules`` judge the facts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from wsdoctor.lint.common import read_text, shown_path
from wsdoctor.lint.facts import PRODUCTS, ConfigFacts, LintInputError

FORMATS = ("nginx", "haproxy", "apache", "caddy", "kubernetes")

_CONTENT = (
    ("kubernetes", re.compile(r"^\s*apiVersion:\s*\S+.*$(?s:.*)^\s*kind:\s*\S+", re.M)),
    (
        "apache",
        re.compile(
            r"^\s*(<(VirtualHost|Location|LocationMatch|IfModule|Directory|Proxy)\b|"
            r"(ProxyPass|ProxyPassMatch|LoadModule|ServerRoot|DocumentRoot|ServerName)\s)",
            re.M | re.I,
        ),
    ),
    ("haproxy", re.compile(r"^(global|defaults|frontend|backend|listen)(\s|$)", re.M)),
    (
        "nginx",
        re.compile(
            r"^\s*((http|server|events|stream|location|upstream)\b[^{\n]*\{|"
            r"(proxy_pass|worker_processes|server_name|listen)\s[^\n]*;)",
            re.M,
        ),
    ),
    ("caddy", re.compile(r"^\s*(reverse_proxy|import|handle|route|encode|tls|root)\b", re.M)),
)


def detect(path: str) -> str:
    """The product a configuration file is for, from its name and then its content."""
    name = os.path.basename(path).lower()
    if name.startswith("caddyfile") or name.endswith(".caddyfile"):
        return "caddy"
    if name.endswith((".yaml", ".yml")):
        return "kubernetes"
    if name.startswith("haproxy") and name.endswith(".cfg"):
        return "haproxy"
    if name in ("httpd.conf", "apache2.conf"):
        return "apache"
    if name == "nginx.conf":
        return "nginx"
    text = read_text(path)
    for product, pattern in _CONTENT:
        if pattern.search(text):
            return product
    raise LintInputError(
        "cannot tell which proxy this configuration is for (nginx, HAProxy, Apache, Caddy, "
        "Kubernetes); name it with --format",
        shown_path(path),
    )


def _parser(product: str) -> Callable[[list[str]], ConfigFacts]:
    if product == "nginx":
        from wsdoctor.lint.nginx import parse_nginx

        return parse_nginx
    if product == "haproxy":
        from wsdoctor.lint.haproxy import parse_haproxy

        return parse_haproxy
    if product == "apache":
        from wsdoctor.lint.apache import parse_apache

        return parse_apache
    if product == "caddy":
        from wsdoctor.lint.caddy import parse_caddy

        return parse_caddy
    from wsdoctor.lint.kubernetes import parse_kubernetes

    return parse_kubernetes


def load(paths: list[str], product: str | None = None) -> list[ConfigFacts]:
    """Parse every file with its product's parser; files of one product are read together."""
    if product is not None and product not in FORMATS:
        raise LintInputError(f"unknown --format {product!r}; one of {', '.join(FORMATS)}")
    groups: dict[str, list[str]] = {}
    for path in paths:
        if os.path.isdir(path):
            raise LintInputError(f"{path} is a directory; name the configuration files")
        if not os.path.exists(path):
            raise LintInputError(f"{path}: no such file")
        groups.setdefault(product or detect(path), []).append(path)
    return [_parser(p)(groups[p]) for p in PRODUCTS if p in groups]


__all__ = ["FORMATS", "ConfigFacts", "LintInputError", "detect", "load"]
