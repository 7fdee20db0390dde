"""Kubernetes manifests for ingress-nginx into facts: Ingress annotations and the ConfigMap.

An Ingress's ``nginx.ingress.kubernetes.io/proxy-read-timeout`` annotation wins over the
controller ConfigMap's ``proxy-read-timeout``, which wins over the 60 s default; both are whole
seconds. The ConfigMap's ``worker-shutdown-timeout`` (default 240s) bounds how long old nginx
workers keep WebSockets after each reload, and ingress-nginx reloads on many Ingress changes.
"""

from __future__ import annotations

from typing import Any

from wsdoctor.lint.common import read_text, shown_path
from wsdoctor.lint.facts import ConfigFacts, LintInputError, Scope, Setting, nginx_seconds

ANNOTATION = "nginx.ingress.kubernetes.io/"
KEYS = ("proxy-read-timeout", "proxy-send-timeout")
DEFAULTS = {"proxy-read-timeout": "60", "proxy-send-timeout": "60"}
WORKER_SHUTDOWN_DEFAULT = "240s"


def _line(node: Any) -> int:
    return node.start_mark.line + 1


def _child(node: Any, *keys: str) -> Any:
    """The YAML node at ``keys`` below a mapping node, or None."""
    import yaml

    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        if node is None:
            return None
    return node


def _documents(text: str, file: str) -> list[tuple[Any, Any]]:
    """Each document of a YAML stream as (node, data)."""
    import yaml

    documents = []
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                documents.append((node, loader.construct_document(node)))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark else None
        position = getattr(error, "position", None)  # a reader error: a character offset
        if line is None and isinstance(position, int):
            line = text.count("\n", 0, position) + 1
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise LintInputError(f"YAML: {problem}", file, line) from None
    finally:
        if loader is not None:
            loader.dispose()
    return documents


def parse_kubernetes(paths: list[str]) -> ConfigFacts:
    """Read Kubernetes manifests (Ingress, the ingress-nginx ConfigMap) into facts."""
    facts = ConfigFacts("kubernetes")
    ingresses: list[tuple[Any, Any, str]] = []
    controller: dict[str, Setting] = {}
    for path in paths:
        file = shown_path(path)
        facts.files.append(file)
        for node, data in _documents(read_text(path), file):
            for item_node, item in _items(node, data):
                kind = item.get("kind")
                if kind == "Ingress":
                    ingresses.append((item_node, item, file))
                elif kind == "ConfigMap" and _is_controller_config(item):
                    controller.update(_configmap(item_node, item, file))
    if "worker-shutdown-timeout" in controller:
        facts.globals["worker-shutdown-timeout"] = controller["worker-shutdown-timeout"]
    elif ingresses:
        facts.globals["worker-shutdown-timeout"] = Setting(
            "worker-shutdown-timeout",
            WORKER_SHUTDOWN_DEFAULT,
            240.0,
            origin="default",
            context="ingress-nginx default",
        )
    for node, item, file in ingresses:
        facts.scopes.append(_ingress(node, item, file, controller))
    return facts


def _items(node: Any, data: Any) -> list[tuple[Any, dict]]:
    if not isinstance(data, dict):
        return []
    if data.get("kind") == "List" and isinstance(data.get("items"), list):
        nodes = _child(node, "items")
        return [
            (n, d)
            for n, d in zip(nodes.value if nodes is not None else [], data["items"])
            if isinstance(d, dict)
        ]
    return [(node, data)]


def _is_controller_config(item: dict) -> bool:
    data = _dict(item.get("data"))
    name = str(_dict(item.get("metadata")).get("name", ""))
    return any(k in data for k in (*KEYS, "worker-shutdown-timeout")) or "ingress" in name


def _name(item: dict) -> str:
    metadata = _dict(item.get("metadata"))
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{namespace}/{name}" if namespace else str(name)


def _configmap(node: Any, item: dict, file: str) -> dict[str, Setting]:
    data = _dict(item.get("data"))
    found: dict[str, Setting] = {}
    context = f"ConfigMap {_name(item)}"
    for key in (*KEYS, "worker-shutdown-timeout"):
        if key in data:
            value = str(data[key])
            value_node = _child(node, "data", key)
            seconds = nginx_seconds(value)
            found[key] = Setting(
                key,
                value,
                seconds,
                file,
                _line(value_node) if value_node is not None else None,
                "inherited",
                context,
            )
    return found


def _dict(value: Any) -> dict:
    """A mapping from the manifest, or an empty one where it holds something else."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _ingress(node: Any, item: dict, file: str, controller: dict[str, Setting]) -> Scope:
    metadata = _dict(item.get("metadata"))
    annotations = _dict(metadata.get("annotations"))
    spec = _dict(item.get("spec"))
    name = _name(item)
    settings: dict[str, Setting] = {}
    invalid: list[Setting] = []
    for key in KEYS:
        annotation = ANNOTATION + key
        if annotation in annotations:
            value = str(annotations[annotation])
            value_node = _child(node, "metadata", "annotations", annotation)
            line = _line(value_node) if value_node is not None else _line(node)
            setting = Setting(
                annotation, value, _whole_seconds(value), file, line, "here", f"Ingress {name}"
            )
            if setting.seconds is None:
                invalid.append(setting)
            else:
                settings[key] = setting
                continue
        if key in controller and controller[key].seconds is not None:
            settings[key] = controller[key]
        else:
            settings[key] = Setting(
                key,
                DEFAULTS[key],
                float(DEFAULTS[key]),
                origin="default",
                context="ingress-nginx default",
            )
    ingress_class = spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class")
    nginx_class = ingress_class is None or "nginx" in str(ingress_class)
    paths = [
        f"{_dict(rule).get('host', '*')}{_dict(p).get('path', '/')}"
        for rule in _list(spec.get("rules"))
        for p in _list(_dict(_dict(rule).get("http")).get("paths"))
    ]
    return Scope(
        "kubernetes",
        "Ingress",
        f"Ingress {name}",
        file,
        _line(node),
        "assumed" if nginx_class else "no",
        settings,
        {"class": ingress_class, "paths": paths, "invalid": invalid},
    )


def _whole_seconds(value: str) -> float | None:
    text = value.strip()
    return float(int(text)) if text.isdigit() else None
