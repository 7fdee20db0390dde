"""``wsdoctor lint --json``: the lint result as ``wsdoctor.lint/1`` (schema shipped beside it).

Field names and codes are a contract, like the probe report's: additions are fine, renames are
not. ``lint_schema.json`` in this package is the JSON Schema; the tests validate every output.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from wsdoctor import __version__
from wsdoctor.diagnosis.lint_rules import Join, LintResult, Prediction
from wsdoctor.lint.facts import Setting

SCHEMA_ID = "wsdoctor.lint/1"


def _setting(setting: Setting | None) -> dict[str, Any] | None:
    if setting is None:
        return None
    return {
        "name": setting.name,
        "value": setting.value,
        "seconds": setting.seconds,
        "file": setting.file,
        "line": setting.line,
        "origin": setting.origin,
        "context": setting.context,
    }


def _scope(prediction: Prediction) -> dict[str, Any]:
    scope = prediction.scope
    return {
        "product": scope.product,
        "kind": scope.kind,
        "name": scope.name,
        "file": scope.file,
        "line": scope.line,
        "websocket": scope.websocket,
        "idle_timeout_s": prediction.idle_timeout_s,
        "idle_setting": _setting(prediction.idle_setting),
        "lifetime_cap_s": prediction.lifetime_cap_s,
        "lifetime_setting": _setting(prediction.lifetime_setting),
        "reload_cut_s": prediction.reload_cut_s,
        "reload_setting": _setting(prediction.reload_setting),
        "note": prediction.note or None,
    }


def _join(join: Join) -> dict[str, Any]:
    settings = []
    for prediction in join.matches:
        setting = prediction.idle_setting if join.kind == "idle_timeout" else None
        if join.kind == "lifetime_cap":
            setting = prediction.lifetime_setting
        entry = _setting(setting) or {}
        settings.append({**entry, "scope": prediction.scope.name})
    return {
        "kind": join.kind,
        "measured_s": join.measured_s,
        "tolerance_s": join.tolerance_s,
        "explained": bool(join.matches),
        "settings": settings,
        "known_defaults_near": join.candidates,
    }


def build_lint_report(result: LintResult) -> dict[str, Any]:
    """The ``wsdoctor.lint/1`` document for one lint run."""
    counts = {"error": 0, "warning": 0, "info": 0}
    for finding in result.findings:
        counts[finding.severity] += 1
    measurement = result.measurement
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "wsdoctor", "version": __version__},
        "files": [
            {"path": path, "product": config.product}
            for config in result.configs
            for path in config.files
        ],
        "heartbeat_s": result.heartbeat_s,
        "scopes": [_scope(p) for p in result.predictions],
        "findings": [
            {
                "code": f.code,
                "severity": f.severity,
                "title": f.title,
                "product": f.product,
                "message": f.message,
                "file": f.file,
                "line": f.line,
                "scope": f.scope,
                "setting": f.setting,
                "remedy": f.remedy,
            }
            for f in result.findings
        ],
        "measurement": None
        if measurement is None
        else {
            "source": measurement.source,
            "idle_timeout_s": measurement.idle_timeout_s,
            "idle_timeout_range_s": measurement.idle_timeout_range_s,
            "lifetime_cap_s": measurement.lifetime_cap_s,
            "culprit": measurement.culprit,
            "hop": measurement.hop,
            "joins": [_join(j) for j in result.joins],
        },
        "summary": counts,
    }


def dumps(report: dict[str, Any]) -> str:
    """The report as indented JSON text with a final newline."""
    return json.dumps(report, indent=2) + "\n"


@functools.cache
def load_lint_schema() -> dict[str, Any]:
    """The JSON Schema of ``wsdoctor.lint/1``, shipped in this package."""
    text = resources.files("wsdoctor.report").joinpath("lint_schema.json").read_text("utf-8")
    return json.loads(text)


def validate_lint_report(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``report`` keeps to ``wsdoctor.lint/1``."""
    import jsonschema

    jsonschema.Draft202012Validator(load_lint_schema()).validate(report)
