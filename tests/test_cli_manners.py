"""CLI manners: help that teaches, output levels, shared connection options, early errors.

Each test runs the real command (a process, or typer's runner for ``--help``) against real
servers on loopback.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hostile import tls_echo_server
from labkit import json_report, run_cli
from rich.console import Console
from typer.testing import CliRunner

from wsdoctor.cli import COMMANDS as CLI_COMMANDS
from wsdoctor.cli import app
from wsdoctor.demo import free_port
from wsdoctor.observations import observations_from_dict
from wsdoctor.report.html import diagnosis_from_dict
from wsdoctor.report.terminal import render_terminal

COMMANDS = [name for _, name, _ in CLI_COMMANDS]
CONNECTING = ("probe", "compare", "check", "watch", "capacity")
CONNECT_OPTIONS = (
    "--header",
    "--subprotocol",
    "--origin",
    "--insecure",
    "--cacert",
    "--cert",
    "--key",
    "--open-timeout",
)
QUICK = ("--stages", "handshake,echo")


def help_text(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "-h"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


# --- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_h_names_not_types_and_examples(command: str) -> None:
    text = help_text(command)
    assert not re.search(r"<(str|int|float|list\[str\])>|list\[str\]", text), text
    assert "Examples:" in text
    examples = text.split("Examples:")[1].split("Options:")[0]
    assert f"wsdoctor {command}" in examples


def test_the_root_help_says_where_to_start() -> None:
    text = help_text()
    assert "wsdoctor demo" in text and "Exit codes:" in text
    for _, name, short_help in CLI_COMMANDS:
        assert f"{name} " in text and short_help in " ".join(text.split())  # never cut


def test_metavars_say_what_to_type() -> None:
    text = help_text("probe")
    for shown in ("URL", "--max-idle SECONDS", "-H, --header 'NAME: VALUE'", "--cacert FILE"):
        assert shown in text, shown
    assert "--open-timeout SECONDS" in text and "(default 10)" in text


@pytest.mark.parametrize("command", CONNECTING)
def test_every_connecting_command_takes_the_same_connection_options(command: str) -> None:
    text = help_text(command)
    for option in CONNECT_OPTIONS:
        assert option in text, f"{command} lacks {option}"
    assert "(default 10)" in text  # one --open-timeout default everywhere


@pytest.mark.parametrize("command", ("probe", "check", "watch"))
def test_commands_that_follow_proxy_variables_can_ignore_them(command: str) -> None:
    text = help_text(command)
    assert "--no-proxy" in text and "HTTP_PROXY for ws://" in text


def test_shell_completion_is_offered_and_completes_commands() -> None:
    assert "--install-completion" in help_text()
    result = subprocess.run(
        [sys.executable, "-m", "wsdoctor"],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "_WSDOCTOR_COMPLETE": "complete_bash",
            "COMP_WORDS": "wsdoctor pro",
            "COMP_CWORD": "1",
            "PATH": "/usr/bin:/bin",
        },
    )
    assert "probe" in result.stdout.split(), (result.stdout, result.stderr)


def test_version_does_not_import_the_cli_framework() -> None:
    code = (
        "import sys; sys.argv = ['wsdoctor', '--version']; "
        "from wsdoctor.entry import main; main(); print('typer' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split("\n")[:2] == [f"wsdoctor {_version()}", "False"], result


def _version() -> str:
    from wsdoctor import __version__

    return __version__


# --- output levels --------------------------------------------------------------------------


def test_a_healthy_default_report_fits_a_screen(serve_url: str, tmp_path: Path) -> None:
    report_file = tmp_path / "run.json"
    args = ("probe", serve_url, "--max-idle", "2", "--stages", "handshake,echo,idle,size")
    result = run_cli(*args, "--json", str(report_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 40, result.stdout
    out = result.stdout
    assert out.index("HEALTHY") < out.index("Findings") < out.index("Stages")
    assert "Connections on" not in out  # the per-connection table is for -v
    for stage in ("handshake", "echo", "idle", "heartbeat", "size"):
        assert sum(1 for line in lines if line.strip().startswith(stage + " ")) == 1, stage
    remedies = json.loads(report_file.read_text())["verdict"]["remedies"]
    for remedy in remedies:  # piped output is never wrapped: every remedy on one line
        assert any(remedy in line for line in lines), remedy


def test_compare_shows_paths_side_by_side_and_keeps_progress_lines_whole(serve_url: str) -> None:
    args = ("--via-proxy", serve_url, "--via", serve_url, "--max-idle", "6")
    result = run_cli("compare", "--direct", serve_url, *args, "--stages", "handshake,idle")
    assert result.returncode == 0, result.stderr
    assert "Paths side by side" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert {row[0] for row in rows if len(row) > 1 and row[1] == "idle"} == {
        "direct",
        "via-1",
        "via-2",
    }
    progress = [line for line in result.stderr.splitlines() if line.strip()]
    assert progress, "a 6 s idle stage prints progress at 5 s"
    assert all(line.startswith("[") for line in progress), progress  # none wrapped
    assert any(len(line) > 80 and "via-2" in line for line in progress), progress


def test_verbose_adds_stage_tables_and_connections(serve_url: str) -> None:
    result = run_cli("probe", serve_url, *QUICK, "-v")
    assert result.returncode == 0, result.stderr
    assert "Stages on direct" in result.stdout and "Connections on direct" in result.stdout
    assert "handshake-1" in result.stdout


def test_quiet_prints_the_verdict_line_only(serve_url: str) -> None:
    result = run_cli("probe", serve_url, *QUICK, "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HEALTHY (confidence ")
    assert len(result.stdout.splitlines()) == 1 and result.stderr == ""


def test_quiet_names_the_culprit_and_hop_of_a_problem() -> None:
    result = run_cli("probe", f"ws://127.0.0.1:{free_port()}/", *QUICK, "-q")
    assert result.returncode == 1
    assert re.fullmatch(r"PROBLEM unreachable \(confidence \d+ %\)\n", result.stdout)


def test_quiet_check_and_watch_print_one_line(serve_url: str) -> None:
    check = run_cli("check", serve_url, "-q", "--max-idle", "2")
    assert check.returncode == 0, check.stderr
    assert check.stdout == "wsdoctor check: 1 of 1 target passed\n" and check.stderr == ""
    watch = run_cli("watch", serve_url, "--duration", "2", "--interval", "0.5", "-q")
    assert watch.returncode == 0, watch.stderr
    assert watch.stdout.startswith("HEALTHY") and len(watch.stdout.splitlines()) == 1
    assert watch.stderr == ""


def test_quiet_and_verbose_together_is_a_usage_error(serve_url: str) -> None:
    result = run_cli("probe", serve_url, *QUICK, "-q", "-v")
    assert result.returncode == 2 and "together" in result.stderr


def test_tables_fold_to_a_narrow_terminal(serve_url: str) -> None:
    result = run_cli("probe", serve_url, *QUICK, "--json", "-")
    saved = json_report(result)
    console = Console(width=80, force_terminal=True, record=True, color_system=None)
    render_terminal(observations_from_dict(saved), diagnosis_from_dict(saved), console, True)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text  # no column cut to an ellipsis
    for word in ("Loop", "lag", "Age/idle", "Pings", "Connection"):  # headers never vanish
        assert word in text, word


# --- early errors and wording ---------------------------------------------------------------


def test_json_under_a_file_fails_before_the_run(serve_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("probe", serve_url, "--json", str(blocker / "out.json"), timeout=20)
    assert result.returncode == 2
    assert "is not a directory" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""  # nothing was probed


def test_a_limit_in_seconds_reads_as_days() -> None:
    result = run_cli("watch", "ws://127.0.0.1:1/", "--duration", "-1")
    assert result.returncode == 2
    assert "365 days" in result.stderr and "e+" not in result.stderr


def test_capacity_names_its_recovery_step(serve_url: str) -> None:
    args = ("capacity", serve_url, "--max-connections", "20", "--hold", "0.2")
    result = run_cli(*args, "--json", "-")
    assert result.returncode == 0, result.stderr
    plain = run_cli(*args)
    assert "ok up to 20" in plain.stdout and "recovery: " in plain.stdout, plain.stdout
    assert "new connections ok" in plain.stdout


# --- the same connection options everywhere -------------------------------------------------


def test_check_takes_the_connection_options_and_no_proxy(serve_url: str) -> None:
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    env = {"HTTP_PROXY": dead_proxy, "http_proxy": dead_proxy, "NO_PROXY": "", "no_proxy": ""}
    options = ("--subprotocol", "chat", "--origin", "http://localhost", "-k", "--max-idle", "2")
    followed = run_cli("check", serve_url, *options, "--json", "-", env=env)
    assert followed.returncode == 1  # the environment's dead proxy is a second path
    paths = json.loads(followed.stdout)["targets"][0]["paths"]
    assert [p["name"] for p in paths] == ["direct", "via-proxy"]
    ignored = run_cli("check", serve_url, *options, "--no-proxy", "--json", "-", env=env)
    assert ignored.returncode == 0, ignored.stdout + ignored.stderr
    target = json.loads(ignored.stdout)["targets"][0]
    assert [p["name"] for p in target["paths"]] == ["direct"]


@contextmanager
def mutual_tls_server(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """A WebSocket echo server that demands a client certificate signed by its CA."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    client = ca.issue_cert("client@example.test")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "client.pem", "key": tmp_path / "k.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    with tls_echo_server(context) as port:
        yield port, {name: str(path) for name, path in files.items()}


def test_client_certificates_open_a_mutual_tls_endpoint(tmp_path: Path) -> None:
    with mutual_tls_server(tmp_path) as (port, files):
        url = f"wss://127.0.0.1:{port}/"
        trust = ("--cacert", files["ca"], *QUICK, "--json", "-")
        without = run_cli("probe", url, *trust, timeout=30)
        with_cert = run_cli(
            "probe", url, *trust, "--cert", files["cert"], "--key", files["key"], timeout=30
        )
    assert without.returncode == 1, without.stderr
    assert json_report(without)["verdict"]["status"] == "problem"
    assert with_cert.returncode == 0, with_cert.stdout + with_cert.stderr
    assert json_report(with_cert)["verdict"]["status"] == "healthy"


def test_a_key_that_does_not_match_is_a_usage_error(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert, other = tmp_path / "cert.pem", tmp_path / "other.pem"
    ca.issue_cert("a.example").cert_chain_pems[0].write_to_path(str(cert))
    ca.issue_cert("b.example").private_key_pem.write_to_path(str(other))
    result = run_cli("probe", "wss://127.0.0.1:1/", "--cert", str(cert), "--key", str(other))
    assert result.returncode == 2 and "cannot use --cert/--key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
