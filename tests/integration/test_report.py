"""``riskctl report``: the dashboards' panels from a real replay as one offline HTML page, opened
in headless Chromium to check that every chart actually draws.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.report_html import format_value
from flows.dashboards import DASHBOARDS_DIR, load_dashboards
from flows.settings import Settings
from flows.store import StoreURL
from tests.integration.test_dashboards import NOW as PROCESSING_EPOCH  # noqa: F401
from tests.integration.test_dashboards import replayed  # noqa: F401  (the module's replayed store)

# The replayed store is processed at the dashboards module's fixed time; reports ask for
# "the last hours" of that time (the processing_clock fixture).
pytestmark = pytest.mark.usefixtures("processing_clock")

runner = CliRunner()
PANELS = [p for d in load_dashboards() for p in d.panels]
CHARTS = sum(1 for p in PANELS if p.type in ("timeseries", "barchart"))

# Rasterises each chart in the page and counts coloured (non-grey) pixels, so "rendered" means
# the browser painted the marks, not merely that an <svg> element exists.
PROBE = """
<script>
window.addEventListener('load', () => {
  const charts = Array.from(document.querySelectorAll('svg.chart'));
  document.body.dataset.charts = charts.length;
  let pending = charts.length;
  charts.forEach((svg) => {
    const box = svg.getBoundingClientRect();
    svg.dataset.width = Math.round(box.width);
    const [, , w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement('canvas');
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, w, h).data;
      let ink = 0;
      for (let i = 0; i < px.length; i += 4) {
        const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
        if (a > 0 && Math.abs(r - g) + Math.abs(g - b) + Math.abs(r - b) > 60) ink++;
      }
      svg.dataset.ink = ink;
      if (--pending === 0) document.body.dataset.done = 'yes';
    };
    img.src = 'data:image/svg+xml;charset=utf-8,' +
      encodeURIComponent(new XMLSerializer().serializeToString(svg));
  });
});
</script>
"""


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name) or name
    pytest.fail("headless Chromium is needed for this test: apt-get install -y chromium")


def dump_dom(page: Path) -> str:
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            # Nothing in the report may need the network; make any attempt fail.
            "--proxy-server=127.0.0.1:9",
            "--virtual-time-budget=10000",
            "--window-size=1400,2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Charts(HTMLParser):
    """The attributes of every chart, and the text of stat values, from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.charts: list[dict[str, str | None]] = []
        self.stats: list[str] = []
        self.table_rows = 0
        self._in_value = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.body = found
        elif tag == "svg" and "chart" in (found.get("class") or ""):
            self.charts.append(found)
        elif tag == "div" and found.get("class") == "value":
            self._in_value = True
        elif tag == "tr":
            self.table_rows += 1

    def handle_data(self, data: str) -> None:
        if self._in_value:
            self.stats.append(data)
            self._in_value = False


@pytest.fixture
def report(replayed: StoreURL, settings: Settings, tmp_path: Path) -> Path:  # noqa: F811
    out = tmp_path / "report.html"
    result = runner.invoke(
        app,
        ["report", "--out", str(out), "--home", str(settings.home), "--store", replayed.reveal()],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(PANELS)} panels, {len(PANELS)} with data" in result.output
    return out


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<script|<link|<img|<iframe|url\(|@import", page)
    assert re.findall(r"https?://[^\"'\s<]+", page) == ["http://www.w3.org/2000/svg"] * CHARTS
    for panel in PANELS:
        assert panel.title.replace("'", "&#x27;") in page


def test_every_chart_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    parsed = Charts()
    parsed.feed(dump_dom(probed))
    assert parsed.body.get("data-done") == "yes", "the charts never finished rasterising"
    assert int(parsed.body["data-charts"] or 0) == len(parsed.charts) == CHARTS
    for chart in parsed.charts:
        assert int(chart["data-width"] or 0) > 100, chart["aria-label"]
        # Axes, grid and labels are grey; only painted marks (bars, areas, lines, a lone
        # point's dot) count, so every chart must show coloured pixels.
        assert int(chart["data-ink"] or 0) >= 40, chart["aria-label"]
    inks = sorted(int(chart["data-ink"] or 0) for chart in parsed.charts)
    assert inks[len(inks) // 2] > 2000, inks  # most charts are substantial drawings
    stats = sum(1 for p in PANELS if p.type == "stat")
    assert len(parsed.stats) >= stats and "–" not in parsed.stats[:4]
    assert parsed.table_rows > 10


def test_report_with_a_variable_and_a_range(
    replayed: StoreURL,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    out = tmp_path / "high.html"
    result = runner.invoke(
        app,
        [
            "report",
            "--out",
            str(out),
            "--dashboard",
            "riskctl-business",
            "--last",
            "2h",
            "--var",
            "band=high,very_high",
            "--home",
            str(settings.home),
            "--store",
            replayed.reveal(),
        ],
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Band: high, very_high" in page
    assert "band IN (&#x27;high&#x27;,&#x27;very_high&#x27;)" in page
    assert "pipeline operations" not in page


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--var", "nosuch=1"], "no dashboard variable 'nosuch'"),
        (["--var", "band"], "--var takes name=value"),
        (["--last", "0h"], "duration '0h' must be positive"),
        (["--last", "6 hours"], "cannot read duration '6 hours'"),
        (["--last", "1h", "--from", "2026-01-01"], "either --last or --from/--to"),
        (["--from", "yesterday"], "--from must be an ISO-8601 time"),
        (["--dashboard", "nope"], "no dashboard nope"),
    ],
)
def test_bad_report_options_are_one_line_errors(
    args: list[str], fragment: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], lines
    assert not (tmp_path / "r.html").exists()


def test_a_store_without_the_schema_is_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["report", "--out", str(tmp_path / "r.html"), "--store", f"chdb://{tmp_path / 'empty'}"],
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output


def test_broken_panel_sql_is_reported_in_the_page_and_the_exit_code(
    replayed: StoreURL,  # noqa: F811
    tmp_path: Path,
) -> None:
    dashboards = tmp_path / "dashboards"
    dashboards.mkdir()
    text = (DASHBOARDS_DIR / "ops.json").read_text()
    (dashboards / "ops.json").write_text(text.replace("FROM dead_letters_minute", "FROM nowhere"))
    out = tmp_path / "r.html"
    args = ["report", "--out", str(out), "--dashboards", str(dashboards)]
    result = runner.invoke(app, [*args, "--store", replayed.reveal()])
    assert result.exit_code == 1
    ops = next(d for d in load_dashboards() if d.uid == "riskctl-ops")
    assert f"2 of {len(ops.panels)} panel queries failed" in result.output
    assert out.read_text().count('class="error">query failed') == 2


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.0312, "percentunit", "3.12%"),
        (0.25, "percentunit", "25.0%"),
        (1234567.0, "currencyUSD", "$1.23M"),
        (850.0, "ms", "850 ms"),
        (2500.0, "ms", "2.5 s"),
        (7200, "s", "2 h"),
        (None, "short", "–"),
        (float("nan"), "short", "nan"),
        (12.5, "reqps", "12.5/s"),
    ],
)
def test_values_are_formatted_for_their_unit(value: object, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown


@pytest.mark.parametrize(("low", "high"), [(0, 5.3), (0, 1), (0, 0.037), (-3, 10), (0, 123456)])
def test_axis_ticks_cover_the_data(low: float, high: float) -> None:
    from cli.report_html import _nice_ticks

    ticks = _nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert 3 <= len(ticks) <= 8
