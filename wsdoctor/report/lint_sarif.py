"""``wsdoctor lint --sarif``: findings as SARIF 2.1.0, for GitHub code scanning and the like.

One run, the tool's driver listing every rule of the catalogue (id, name, descriptions, default
level), one result per finding at its file and line. Paths are relative to the working
directory where they lie under it (``uriBaseId`` ``%SRCROOT%``), so code scanning places them on
the pull request's lines. A finding with no file of its own (a measured drop nothing here
explains) is placed at line 1 of the first linted file, since code scanning needs a location.
"""

from __future__ import annotations

import os
from typing import Any

from wsdoctor import __version__
from wsdoctor.diagnosis.lint_rules import CATALOGUE, LintFinding, LintResult

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def _artifact(path: str) -> dict[str, Any]:
    uri = path.replace(os.sep, "/")
    if os.path.isabs(path):
        return {"uri": "file://" + uri}
    return {"uri": uri, "uriBaseId": "%SRCROOT%"}


def _result(finding: LintFinding, index: dict[str, int], fallback: str | None) -> dict[str, Any]:
    file, line = finding.file, finding.line
    if file is None:
        file, line = fallback, 1
    text = finding.message
    if finding.scope:
        text += f" [{finding.scope}]"
    if finding.remedy:
        text += f"\nFix:\n{finding.remedy}"
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": index[finding.code],
        "level": LEVELS[finding.severity],
        "message": {"text": text},
        "properties": {"product": finding.product, "severity": finding.severity},
    }
    if file is not None:
        result["locations"] = [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(file),
                    "region": {"startLine": line or 1},
                }
            }
        ]
    return result


def build_sarif(result: LintResult) -> dict[str, Any]:
    """The SARIF 2.1.0 log of one lint run."""
    rules = list(CATALOGUE.values())
    index = {rule.code: i for i, rule in enumerate(rules)}
    files = [path for config in result.configs for path in config.files]
    fallback = files[0] if files else None
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "wsdoctor",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [
                            {
                                "id": rule.code,
                                "name": "".join(w.title() for w in rule.code.split("_")),
                                "shortDescription": {"text": rule.title},
                                "fullDescription": {"text": rule.help},
                                "help": {"text": rule.help},
                                "defaultConfiguration": {"level": LEVELS[rule.severity]},
                            }
                            for rule in rules
                        ],
                    }
                },
                "originalUriBaseIds": {
                    "%SRCROOT%": {"uri": "file://" + os.getcwd().replace(os.sep, "/") + "/"}
                },
                "artifacts": [{"location": _artifact(path)} for path in files],
                "results": [_result(f, index, fallback) for f in result.findings],
            }
        ],
    }
