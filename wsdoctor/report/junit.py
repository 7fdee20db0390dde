"""JUnit XML for ``wsdoctor check``: one test suite per target, one test case per expectation.

A failed expectation is a ``<failure>``; one that could not be proven, or not measured because
the target could not be connected to (refused, DNS, TLS, an HTTP status instead of the
upgrade), an ``<error>`` that says so and why. Either carries the expectation's evidence, then
the verdict's summary, figures and findings. This is the Ant/Surefire shape that Jenkins,
GitLab and the GitHub test-report actions read.

Every test case's ``classname`` is ``wsdoctor.check``: viewers split a classname at its dots
into package and class, and a target's name is usually a host, an address or a URL, full of
dots (``wsdoctor.check.127.0.0.1:49025/`` showed as package ``wsdoctor.check.127.0.0``, class
``1:49025/``). The target goes in the test case's name instead, which no viewer splits, and in
the suite's name and ``target`` property.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from wsdoctor.diagnosis.expectations import ExpectationResult, TargetCheck
from wsdoctor.report.text import format_confidence, verdict_figures

SUITES_NAME = "wsdoctor check"
CLASSNAME = "wsdoctor.check"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("?", text)


def _timestamp(started_at: str) -> str | None:
    """The run's start as Ant writes it: ISO 8601 in UTC, seconds, no offset."""
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds")


def verdict_text(check: TargetCheck) -> str:
    """The verdict in a few plain lines: status, culprit, figures, summary and findings."""
    verdict = check.diagnosis.verdict
    head = f"Verdict: {verdict.status}, culprit {verdict.culprit}"
    if verdict.hop:
        head += f", hop {verdict.hop}"
    head += f", confidence {format_confidence(verdict.confidence)}"
    lines = [head]
    lines.extend(f"{label}: {value}" for label, value in verdict_figures(verdict))
    lines.append(verdict.summary)
    for finding in check.diagnosis.findings:
        lines.append(f"[{finding.severity}] {finding.title} ({finding.code})")
        lines.extend(f"  - {line}" for line in finding.evidence)
    return "\n".join(lines)


def _problem(result: ExpectationResult) -> str | None:
    """The element a test case carries: none, ``failure`` or ``error``."""
    if result.outcome == "pass":
        return None
    if result.outcome == "fail" and result.no_connection is None:
        return "failure"
    return "error"


def _case(check: TargetCheck, result: ExpectationResult, time_s: str) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=_xml_text(f"{check.name}: {result.name} ({result.required})"),
        classname=CLASSNAME,
        time=time_s,
    )
    tag = _problem(result)
    if tag is None:
        return case
    if result.no_connection is not None:
        message = f"could not connect: {result.no_connection}"
        kind = "no_connection"
        text = f"{result.name} was not measured: could not connect ({result.no_connection})"
    else:
        message = f"{result.name}: measured {result.measured}, {result.detail}"
        kind = result.name
        text = f"Measured: {result.measured}"
    problem = ET.SubElement(case, tag, message=_xml_text(message), type=kind)
    problem.text = _xml_text(
        f"Required: {result.required}\n{text}\n{result.detail}\n\n" + verdict_text(check)
    )
    return case


def _counts(results: list[ExpectationResult]) -> dict[str, str]:
    """The ``tests``, ``failures``, ``errors`` and ``skipped`` attributes of a suite."""
    tags = [_problem(r) for r in results]
    return {
        "tests": str(len(tags)),
        "failures": str(tags.count("failure")),
        "errors": str(tags.count("error")),
        "skipped": "0",
    }


def _suite(check: TargetCheck) -> ET.Element:
    time_s = f"{check.observations.duration_s:.3f}"
    attributes = {"name": _xml_text(check.name), **_counts(check.results), "time": time_s}
    suite = ET.Element("testsuite", attributes)
    timestamp = _timestamp(check.observations.started_at)
    if timestamp is not None:
        suite.set("timestamp", timestamp)
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="target", value=_xml_text(check.name))
    for path in check.observations.paths:
        value = path.url + (f" via {path.proxy}" if path.proxy else "")
        ET.SubElement(properties, "property", name=f"path.{path.name}", value=_xml_text(value))
    verdict = check.diagnosis.verdict
    ET.SubElement(properties, "property", name="verdict.status", value=verdict.status)
    ET.SubElement(properties, "property", name="verdict.culprit", value=verdict.culprit)
    for result in check.results:
        suite.append(_case(check, result, time_s))
    ET.SubElement(suite, "system-out").text = _xml_text(verdict_text(check))
    return suite


def render_junit(checks: list[TargetCheck], duration_s: float) -> str:
    """The whole check as a JUnit XML document (UTF-8, with its declaration)."""
    results = [r for check in checks for r in check.results]
    attributes = {"name": SUITES_NAME, **_counts(results), "time": f"{duration_s:.3f}"}
    root = ET.Element("testsuites", attributes)
    root.extend(_suite(check) for check in checks)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
