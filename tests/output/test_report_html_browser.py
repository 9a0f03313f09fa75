"""report.html in a real browser: headless Chromium (the Debian package ``chromium``), driven over its
DevTools pipe (tests/browser.py).  The page must load without console errors or network requests,
and its tables, plots and gallery images must render, at laptop and phone widths.

Screenshots go to the test's tmp folder, and also to $ROBUSTPATH_SCREENSHOT_DIR when it is set.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser import EAGER_IMAGES, find_chromium, open_page
from html_fixtures import html_runs  # noqa: F401  (fixture)
from model_fixtures import tiny_open_clip  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium to run report.html in: install the Debian package chromium (apt-get install chromium) "
    "or set ROBUSTPATH_CHROMIUM to a Chromium or Chrome binary",
)

RENDERED = """(() => {
  const visible = element => element.getClientRects().length > 0;
  const tables = Array.from(document.querySelectorAll("table")).filter(visible);
  const charts = Array.from(document.querySelectorAll("svg.chart")).filter(visible);
  const cases = Array.from(document.querySelectorAll("figure.case")).filter(visible);
  const thumbs = cases.flatMap(figure => Array.from(figure.querySelectorAll("img.thumb")));
  return {
    tables: tables.length,
    rows: tables.map(table => table.tBodies[0] ? table.tBodies[0].rows.length : 0),
    chart_lines: charts.map(svg => svg.querySelectorAll("polyline").length),
    chart_sizes: charts.map(svg => [svg.getBoundingClientRect().width, svg.getBoundingClientRect().height]),
    cases: cases.length,
    thumbs_loaded: thumbs.filter(img => img.complete && img.naturalWidth > 0).length,
    thumbs: thumbs.length,
    page_width: document.documentElement.scrollWidth,
  };
})()"""


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = page.screenshot(tmp_path / name)
    assert path.stat().st_size > 10_000
    copy_to = os.environ.get("ROBUSTPATH_SCREENSHOT_DIR")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(copy_to) / name)
    return path


@pytest.mark.parametrize("width, mobile", [(1280, False), (390, True)], ids=["laptop", "phone"])
def test_the_report_renders_offline_without_errors(html_runs, tmp_path, width, mobile):
    with open_page(html_runs.clip / "report.html", width=width, height=900, mobile=mobile) as page:
        assert all(page.evaluate(EAGER_IMAGES))  # every image decodes
        shown = page.evaluate(RENDERED)
        save_screenshot(page, tmp_path, f"report-{'phone' if mobile else 'laptop'}.png")
        assert page.console_errors() == []
        assert [url for url in page.requests() if not url.startswith("data:") and url != page.url] == []
    assert shown["tables"] >= 8 and all(rows > 0 for rows in shown["rows"])
    assert len(shown["chart_lines"]) >= 12 and all(lines >= 1 for lines in shown["chart_lines"])
    assert all(w > 200 and h > 100 for w, h in shown["chart_sizes"])
    assert shown["cases"] >= 6 and shown["thumbs"] >= 12 and shown["thumbs_loaded"] == shown["thumbs"]
    assert shown["page_width"] <= width  # wide tables scroll inside their boxes, not the page


def test_tables_sort_and_series_toggle(html_runs):
    with open_page(html_runs.merged / "report.html") as page:
        column = page.evaluate("""Array.from(document.querySelectorAll('#table-results thead th'))
            .findIndex(th => th.textContent.trim() === 'value')""")
        values = f"Array.from(document.querySelectorAll('#table-results tbody tr')).map(r => r.cells[{column}].dataset.value)"
        before = page.evaluate(values)
        page.evaluate(f"document.querySelectorAll('#table-results thead th')[{column}].querySelector('button').click()")
        ascending = page.evaluate(values)
        page.evaluate(f"document.querySelectorAll('#table-results thead th')[{column}].querySelector('button').click()")
        descending = page.evaluate(values)
        state = page.evaluate(f"document.querySelectorAll('#table-results thead th')[{column}].getAttribute('aria-sort')")
        toggle = page.evaluate("""(() => {
          const input = document.querySelector('input[data-series-toggle]');
          const group = document.getElementById(input.dataset.group);
          const key = input.dataset.seriesToggle;
          const series = Array.from(group.querySelectorAll('[data-series]')).filter(e => e.dataset.series === key);
          input.click();
          const hidden = series.every(e => getComputedStyle(e).display === 'none');
          input.click();
          return [series.length, hidden, series.every(e => getComputedStyle(e).display !== 'none')];
        })()""")
        panel = page.evaluate("""(() => {
          const input = document.querySelector('#curves input[data-panel-toggle]');
          const group = document.getElementById(input.dataset.group);
          const panel = Array.from(group.querySelectorAll('[data-panel]')).find(p => p.dataset.panel === input.dataset.panelToggle);
          input.click();
          const hidden = panel.getClientRects().length === 0;
          input.click();
          return [hidden, panel.getClientRects().length > 0];
        })()""")
        filtered = page.evaluate("""(() => {
          const input = document.querySelector('input[data-filter="table-results"]');
          input.value = 'retrieval top1_accuracy';
          input.dispatchEvent(new Event('input'));
          return Array.from(document.querySelectorAll('#table-results tbody tr')).filter(r => !r.hidden).length;
        })()""")
        assert page.console_errors() == []
    numbers = [float(v) for v in before]
    assert [float(v) for v in ascending] == sorted(numbers) and [float(v) for v in descending] == sorted(numbers, reverse=True)
    assert state == "descending"
    assert toggle[0] > 0 and toggle[1] and toggle[2]
    assert panel == [True, True]
    runs = 2
    assert filtered == runs * (1 + 2 * 4)  # clean + 2 severities × (blur pre, blur post, markup, brightness)
