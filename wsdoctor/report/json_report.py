"""The machine-readable report (``wsdoctor.report/1``): build, write and validate it."""

from __future__ import annotations

import functools
import json
import os
import sys
from importlib import resources
from typing import Any

from wsdoctor import __version__
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.observations import Observations, to_dict

SCHEMA_ID = "wsdoctor.report/1"


def build_report(observations: Observations, diagnosis: Diagnosis) -> dict[str, Any]:
    """The report contract's JSON-ready form of one run."""
    return {
        "schema": SCHEMA_ID,
        "tool": {"name": "wsdoctor", "version": __version__},
        "started_at": observations.started_at,
        "duration_s": observations.duration_s,
        "interrupted": observations.interrupted,
        "paths": [to_dict(path) for path in observations.paths],
        "host": to_dict(observations.host),
        "watch": to_dict(observations.watch),
        "findings": [to_dict(finding) for finding in diagnosis.findings],
        "verdict": to_dict(diagnosis.verdict),
    }


def write_json(report: dict[str, Any], destination: str) -> None:
    """Write ``report`` to stdout when ``destination`` is ``-``, else atomically to that file."""
    text = json.dumps(report, indent=2) + "\n"
    if destination == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    directory, name = os.path.split(os.path.abspath(destination))
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, destination)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def load_schema() -> dict[str, Any]:
    """The JSON Schema of the report, as shipped inside the package."""
    text = resources.files("wsdoctor.report").joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_report(report: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``report`` keeps to the schema.

    Needs the ``jsonschema`` package (a test dependency); raises RuntimeError without it.
    """
    try:
        import jsonschema
    except ImportError:
        raise RuntimeError(
            "validating a report needs the 'jsonschema' package: pip install 'wsdoctor[test]'"
        ) from None
    _validator(jsonschema.Draft202012Validator).validate(report)


@functools.cache
def _validator(cls: type) -> Any:
    return cls(load_schema())
