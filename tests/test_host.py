"""`wsdoctor host`: this machine's real limits, and recorded ones in tests/fixtures/host.

Recorded hosts (directories shaped like /proc):
- small-nofile: a shell with the common soft RLIMIT_NOFILE 1024 (hard 524288), no conntrack;
- conntrack-server: server process 4242 with 65536 descriptors (40 open), a conntrack table of
  32768 with 27000 entries in use, a 600 s conntrack established timeout, somaxconn 128.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
from labkit import json_report, run_cli

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.diagnosis.model import Diagnosis
from wsdoctor.diagnosis.rules.host import FD_HEADROOM
from wsdoctor.observations import Observations
from wsdoctor.probes.hostlimits import gather_host_facts
from wsdoctor.report.json_report import build_report, validate_report

FIXTURES = Path(__file__).parent / "fixtures" / "host"
SMALL_NOFILE = str(FIXTURES / "small-nofile")
CONNTRACK_SERVER = str(FIXTURES / "conntrack-server")


def within_10_percent(measured: int | None, truth: int) -> bool:
    return measured is not None and abs(measured - truth) <= 0.1 * truth


def diagnosed(root: str, pid: int | None = None, target: int | None = None) -> Diagnosis:
    observations = Observations(
        started_at="2026-11-02T09:00:00+00:00",
        duration_s=0.0,
        host=gather_host_facts(root, pid, target),
    )
    diagnosis = diagnose(observations)
    validate_report(build_report(observations, diagnosis))
    return diagnosis


def finding(diagnosis: Diagnosis, code: str):  # noqa: ANN201 - Finding
    return next((f for f in diagnosis.findings if f.code == code), None)


def test_this_machine() -> None:
    pid = str(os.getpid())
    result = run_cli("host", "--pid", pid, "--target-connections", "1000", "--json", "-")
    report = json_report(result)
    expected_code = 1 if report["verdict"]["status"] == "problem" else 0
    assert result.returncode == expected_code, result.stderr
    values = {limit["name"]: limit["value"] for limit in report["host"]["limits"]}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert values["server_nofile_soft"] == soft
    assert values["server_nofile_hard"] == (hard if hard != resource.RLIM_INFINITY else "unlimited")
    assert isinstance(values["nofile_soft"], int)
    assert isinstance(values["fs.file-max"], int) and values["fs.file-max"] > 0
    assert values["net.ipv4.ip_local_port_range"].count(" ") == 1
    assert report["host"]["pid"] == os.getpid()
    assert report["verdict"]["connection_limit"] is not None


def test_this_machine_terminal_report_lists_the_limits() -> None:
    result = run_cli("host")
    assert result.returncode in (0, 1), result.stderr
    assert "Host limits" in result.stdout
    assert "net.core.somaxconn" in result.stdout
    assert result.stdout.index("Verdict") < result.stdout.index("Host limits")


def test_recorded_small_nofile_with_5000_connections() -> None:
    diagnosis = diagnosed(SMALL_NOFILE, target=5000)
    verdict = diagnosis.verdict
    assert verdict.status == "problem"
    assert verdict.culprit == "server_limits"
    assert "RLIMIT_NOFILE" in verdict.summary
    assert within_10_percent(verdict.connection_limit, 1024 - FD_HEADROOM)
    nofile = finding(diagnosis, "host_nofile")
    assert nofile is not None and nofile.severity == "error"
    assert "ulimit -n 8192" in nofile.remedy and "LimitNOFILE=8192" in nofile.remedy
    assert "hard limit" not in nofile.remedy  # 8192 fits under the recorded hard limit 524288
    unreadable = finding(diagnosis, "host_unreadable")
    assert unreadable is not None
    assert any("not loaded" in line for line in unreadable.evidence)


def test_recorded_small_nofile_without_target_is_healthy() -> None:
    verdict = diagnosed(SMALL_NOFILE).verdict
    assert verdict.status == "healthy"
    assert within_10_percent(verdict.connection_limit, 1024 - FD_HEADROOM)
    (remedy,) = verdict.remedies
    assert "RLIMIT_NOFILE" in remedy and "--target-connections N" in remedy
    assert "<" not in remedy  # no unfilled placeholder such as <limit>


def test_recorded_conntrack_server() -> None:
    diagnosis = diagnosed(CONNTRACK_SERVER, pid=4242, target=10000)
    verdict = diagnosis.verdict
    assert verdict.culprit == "server_limits"
    assert "nf_conntrack_max" in verdict.summary
    assert within_10_percent(verdict.connection_limit, 32768 - 27000)
    assert finding(diagnosis, "host_nofile") is None  # 65536 - 40 descriptors leave room
    conntrack = finding(diagnosis, "host_conntrack_max")
    assert "sysctl -w net.netfilter.nf_conntrack_max=" in conntrack.remedy
    timeout = finding(diagnosis, "host_conntrack_timeout")
    assert timeout is not None and "600 s" in timeout.title
    assert finding(diagnosis, "host_accept_queue") is not None  # somaxconn 128 < 10000


def test_recorded_nofile_above_the_hard_limit() -> None:
    """The recorded shell has soft = hard = 1024: raising past it needs root."""
    diagnosis = diagnosed(CONNTRACK_SERVER, target=3000)
    nofile = finding(diagnosis, "host_nofile")
    assert nofile is not None
    assert "above the hard limit (1024)" in nofile.remedy


def test_cli_on_recorded_values() -> None:
    result = run_cli("host", "--root", SMALL_NOFILE, "--target-connections", "5000", "--json", "-")
    assert result.returncode == 1, result.stderr
    report = json_report(result)
    assert report["verdict"]["culprit"] == "server_limits"
    assert any(f["code"] == "host_nofile" for f in report["findings"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--pid", "999999999"], "no process with pid"),
        (["--target-connections", "0"], "--target-connections must be"),
        (["--root", "/nonexistent/root"], "is not a directory"),
    ],
)
def test_bad_host_options_are_one_line_errors(args: list[str], words: str) -> None:
    result = run_cli("host", *args)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.stderr
