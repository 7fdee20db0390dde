"""The HTML report: a self-contained page with the verdict and the connection timeline.

The demo's page comes from a real run (``wsdoctor demo --html --json`` against its loopback lab);
fleets and a long watch are laid out by hand. Every page must parse as HTML5 and point at no
other host; headless Chromium (Debian's package) renders the demo's page to a PNG, which must
show a picture, and a fleet with more connections must draw a taller timeline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import html5lib
import pytest
from labkit import require_binary, run_cli
from observation_builders import catalogue, observations
from pngtools import Picture, read_png
from test_clusters import fleet_path, healthy_direct

from wsdoctor.diagnosis.engine import diagnose
from wsdoctor.observations import (
    Disconnect,
    Ending,
    Observations,
    PathResult,
    WatchLog,
    observations_from_dict,
)
from wsdoctor.report.html import render_html
from wsdoctor.report.json_report import build_report, validate_report

ONE_MIB = 1024 * 1024
PLOT_RGB = bytes((0xFB, 0xFC, 0xFE))
"""The timeline's background colour (``--plot`` in the light scheme)."""
FIN_RGB = bytes((0xE8, 0x59, 0x0C))
"""The colour of a FIN end mark (``--eof``)."""
PROBLEM_RGB = bytes((0xC9, 0x2A, 0x2A))
"""The verdict badge of a problem (``--problem``)."""
FOREIGN = re.compile(r"""(?:src|href|action|poster)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


# --- pages ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real demo run with ``--html`` and ``--json``: the page, the report and their paths."""
    folder = tmp_path_factory.mktemp("demo")
    page, saved = folder / "demo.html", folder / "demo.json"
    began = time.monotonic()
    result = run_cli("demo", "--html", str(page), "--json", str(saved), timeout=120)
    assert result.returncode == 1, result.stderr  # a problem is diagnosed
    report = json.loads(saved.read_text(encoding="utf-8"))
    validate_report(report)
    return {
        "page": page.read_text(encoding="utf-8"),
        "html_path": page,
        "json_path": saved,
        "report": report,
        "elapsed_s": time.monotonic() - began,
    }


def fleet_report(timeouts: list[float | None], max_idle_s: float, extra_open: int = 0) -> dict:
    """A saved report of a fleet behind one address: connections land round robin on nodes."""
    finite = [t for t in timeouts if t is not None]
    end = min(max_idle_s, max(finite) * 1.1 + 1)
    via = fleet_path("via-proxy", timeouts, max_idle_s, end, extra_open)
    obs = observations(healthy_direct(max_idle_s, end), via)
    report = build_report(obs, diagnose(obs))
    validate_report(report)
    return report


def watch_report(drops: int) -> dict:
    """A watch of four connections over a day with ``drops`` disconnects."""
    kinds = ["eof", "close_frame", "reset", "silent"]
    log = WatchLog(
        duration_s=86400.0,
        connections=4,
        up_s=4 * 86000.0,
        disconnects=[
            Disconnect(
                at_s=86400.0 * (i + 0.5) / drops,
                connection=i % 4,
                ending=Ending(
                    kind=kinds[i % 4],  # type: ignore[arg-type]
                    age_s=60.0,
                    idle_s=60.0,
                    code=1001 if kinds[i % 4] == "close_frame" else None,
                ),
                reconnect_delay_s=0.5,
                reconnect_attempts=1,
            )
            for i in range(drops)
        ],
    )
    obs = Observations(started_at="2026-01-01T00:00:00+00:00", duration_s=86400.0, watch=log)
    obs.paths = [PathResult(name="direct", url="ws://watched.example/")]
    report = build_report(obs, diagnose(obs))
    validate_report(report)
    return report


def lanes(page: str) -> dict[str, int]:
    """How many lanes each timeline draws: ``{"idle": n, "age": a, "run": m}``."""
    found = re.findall(r'<figure class="timeline (\w+)">.*?data-lanes="(\d+)"', page, re.S)
    return {clock: int(count) for clock, count in found}


def connection_count(report: dict) -> int:
    return sum(len(s["connections"]) for p in report["paths"] for s in p["stages"])


def assert_sound_page(page: str) -> str:
    """Valid HTML5, nothing fetched from anywhere, no script; returns the page's text."""
    tree = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)
    assert not FOREIGN.search(page), FOREIGN.search(page)
    assert "<script" not in page.lower()
    assert "@import" not in page and "url(" not in page
    return " ".join("".join(tree.itertext()).split())


# --- the demo's page ----------------------------------------------------------------------


def test_demo_page_is_sound_and_shows_the_verdict_and_every_connection(demo: dict) -> None:
    page, report = demo["page"], demo["report"]
    text = assert_sound_page(page)
    verdict = report["verdict"]
    assert verdict["culprit"] == "proxy_idle_timeout"
    for line in (verdict["summary"], verdict["culprit"], *verdict["remedies"]):
        assert line in text
    drawn = lanes(page)
    assert drawn["run"] == connection_count(report)
    idle = [
        c
        for p in report["paths"]
        for s in p["stages"]
        if s["name"] in ("idle", "heartbeat")
        for c in s["connections"]
    ]
    assert drawn["idle"] == len(idle)
    assert page.count('class="conn ') == drawn["run"] + drawn["idle"]
    # the table repeats the picture: a row per connection
    table = page.split('class="table-twin"', 1)[1].split("</details>", 1)[0]
    assert table.count("<tr><td>") == connection_count(report)
    # the cluster of drops stands as a column on the idle-age view
    assert '<g class="band binding">' in page
    assert "4.0 s: 20 (100 %)" in page or re.search(r"4\.0 s: \d+ \(\d+ %\)", page)
    assert len(page.encode()) < ONE_MIB


def test_report_command_gives_the_same_page(demo: dict, tmp_path: Path) -> None:
    again = tmp_path / "again.html"
    result = run_cli("report", str(demo["json_path"]), "--html", str(again))
    assert result.returncode == 0, result.stderr
    assert again.read_text(encoding="utf-8") == demo["page"]


def test_report_command_prints_the_terminal_report(demo: dict) -> None:
    result = run_cli("report", str(demo["json_path"]))
    assert result.returncode == 0, result.stderr
    assert "proxy_idle_timeout" in result.stdout and "Findings" in result.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json", "not JSON"), ('{"schema": "other/1"}', "not a wsdoctor report")],
)
def test_report_command_refuses_other_files(tmp_path: Path, content: str, message: str) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(content, encoding="utf-8")
    result = run_cli("report", str(saved), "--html", str(tmp_path / "page.html"))
    assert result.returncode == 2
    assert message in result.stderr and not (tmp_path / "page.html").exists()


# --- fleets, checks and watches ------------------------------------------------------------


def test_fleet_with_two_timeouts_shows_two_columns() -> None:
    report = fleet_report([6.0, 12.0], max_idle_s=30.0)
    clusters = report["verdict"]["idle_clusters"]
    assert [c["idle_s"] for c in clusters] == [6.0, 12.0]
    page = render_html(report)
    assert_sound_page(page)
    assert lanes(page)["run"] == connection_count(report)
    assert page.count('<g class="band') == 2
    assert page.count('<g class="band binding">') == 1  # the shorter timeout is the figure
    for cluster in clusters:
        assert f"{cluster['idle_s']:.1f} s: {cluster['connections']} (" in page


def test_check_report_has_a_section_per_target() -> None:
    targets = []
    for name, timeouts in (("edge", [6.0, 12.0]), ("api", [4.0])):
        report = fleet_report(timeouts, max_idle_s=20.0)
        report["check"] = {"target": name, "outcome": "fail", "expectations": []}
        targets.append(report)
    page = render_html({"schema": "wsdoctor.check/1", "outcome": "fail", "targets": targets})
    assert_sound_page(page)
    assert 'id="target-1"' in page and 'id="target-2"' in page
    assert "Target edge" in page and "Target api" in page


def test_a_long_watch_is_summarised_not_drawn_drop_by_drop() -> None:
    saved = watch_report(12)
    back = observations_from_dict(json.loads(json.dumps(saved))).watch
    assert back is not None and back.connections == 4 and len(back.disconnects) == 12
    few, many = render_html(saved), render_html(watch_report(3000))
    for page in (few, many):
        assert_sound_page(page)
    assert few.count('<g class="end k-') == 12
    assert '<g class="end k-' not in many and "histogram" in many
    assert len(many.encode()) < ONE_MIB


@pytest.mark.parametrize(
    "scenario",
    [
        "healthy",
        "close-frame-45",
        "black-hole",
        "lifetime-5",
        "compare-cdn",
        "compare-direct-unreachable",
        "interrupted-early",
        "handshake-http-426",
        "no-paths",
    ],
)
def test_every_kind_of_run_gives_a_sound_page(scenario: str) -> None:
    obs = catalogue()[scenario]()
    report = build_report(obs, diagnose(obs))
    page = render_html(report)
    text = assert_sound_page(page)
    assert report["verdict"]["summary"] in text
    drawn = lanes(page)
    assert drawn.get("run", 0) == connection_count(report)
    assert ("age" in drawn) == (report["verdict"]["lifetime_cap_s"] is not None)
    assert len(page.encode()) < ONE_MIB


def test_pages_need_no_network_and_stay_small_for_a_big_fleet() -> None:
    page = render_html(fleet_report([5.0, 8.0, 13.0], max_idle_s=120.0, extra_open=40))
    assert_sound_page(page)
    assert len(page.encode()) < ONE_MIB


# --- a real browser ----------------------------------------------------------------------


def screenshot(page_path: Path, png: Path, height: int = 2000) -> Picture:
    """Render ``page_path`` in headless Chromium and read the screenshot."""
    browser = shutil.which("chromium") or require_binary("chromium")
    profile = png.parent / f"{png.stem}-profile"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size=1200,{height}",
        page_path.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert png.exists(), f"chromium wrote no screenshot: {result.stderr[-2000:]}"
    return read_png(str(png))


def timeline_height(picture: Picture, gap: int = 4) -> int:
    """Rows of the tallest block of rows that show the timeline's background colour.

    A block runs on across a few rows without it (a rule across the whole chart).
    """
    best, top, last = 0, None, -gap - 1
    for y in range(picture.height):
        if PLOT_RGB not in picture.row_colours(y):
            continue
        if y - last > gap + 1:
            top = y
        last = y
        best = max(best, y - (top or 0) + 1)
    return best


@pytest.fixture(scope="module")
def browser() -> str:
    return require_binary("chromium")


def test_chromium_renders_the_demo_page(demo: dict, browser: str, tmp_path: Path) -> None:
    png = tmp_path / "demo.png"
    picture = screenshot(demo["html_path"], png)
    assert (picture.width, picture.height) == (1200, 2000)
    colours = set().union(*(picture.row_colours(y) for y in range(0, picture.height, 4)))
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    assert PROBLEM_RGB in colours, "no problem badge in the verdict"
    assert FIN_RGB in colours, "no FIN marks in the timeline"
    assert timeline_height(picture) > 300
    keep = os.environ.get("WSDOCTOR_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)


def test_the_timeline_grows_with_the_connections(browser: str, tmp_path: Path) -> None:
    heights = []
    for extra in (0, 16):
        report = fleet_report([6.0, 12.0], max_idle_s=12.0, extra_open=extra)
        page = tmp_path / f"fleet-{extra}.html"
        page.write_text(render_html(report), encoding="utf-8")
        picture = screenshot(page, tmp_path / f"fleet-{extra}.png", 2400)
        heights.append((connection_count(report), timeline_height(picture)))
    (few, short), (many, tall) = heights
    print(f"[html] timeline {short} px for {few} connections, {tall} px for {many}")
    assert many > few and tall > short
    # a lane is a fixed number of pixels: the picture grows by about that much per connection
    assert tall - short >= (many - few) * 12
