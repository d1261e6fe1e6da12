"""The HTML report as a person sees it: rendered by a real headless browser.

A probe script appended to a copy of the report measures the laid-out page (where the
summary is, how many charts and bars are drawn and how large) and writes its findings
into the DOM, which ``chromium --dump-dom`` hands back. Skipped only when no chromium
binary is installed (``apt-get install chromium``; CI installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.compare import compare_paths
from harness.compare.report import to_html

BROWSER = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no chromium binary (apt-get install chromium) to render the report"
)

PROBE = """
<script>
const box = (el) => el.getBoundingClientRect();
const summary = document.querySelector("table");
const charts = [...document.querySelectorAll("svg.histogram")];
const bars = [...document.querySelectorAll("svg.histogram rect.bar")];
const found = {
  summaryTop: box(summary).top,
  summaryRows: summary.querySelectorAll("tr").length,
  firstChartTop: charts.length ? box(charts[0]).top : null,
  charts: charts.map((c) => ({label: c.getAttribute("aria-label"),
                              width: box(c).width, height: box(c).height})),
  bars: bars.map((b) => ({width: box(b).width, height: box(b).height,
                          fill: b.getAttribute("fill"),
                          title: b.querySelector("title").textContent})),
  text: document.body.innerText,
};
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(found);
document.body.appendChild(out);
</script>
"""


def render(html: str, folder: Path) -> dict[str, Any]:
    page = folder / "report.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    assert BROWSER is not None
    done = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stdout[-2000:]
    probed: dict[str, Any] = json.loads(
        match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
    return probed


def test_report_shows_summary_first_then_histograms(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((32, 16)).astype(np.float32)
    moved = weights.copy()
    bits = moved.view(np.uint32)
    bits[:8] += 1  # 128 elements 1 ULP apart: inside ulp:4
    bits[8:9] += 64  # 16 elements 64 ULP apart: outside it
    np.save(a / "weights.npy", weights)
    np.save(b / "weights.npy", moved)
    (a / "metrics.json").write_text('{"acc": 0.5}')
    (b / "metrics.json").write_text('{"acc": 0.5}')

    result = compare_paths(a, b, policy="ulp:4")
    page = render(to_html(result), tmp_path)

    assert page["summaryRows"] == 3  # header, metrics.json, weights.npy
    assert page["firstChartTop"] > page["summaryTop"]
    labels = [chart["label"] for chart in page["charts"]]
    assert labels == ["ULP distance (differing elements)", "|a - b|"]
    assert all(chart["width"] > 200 and chart["height"] > 30 for chart in page["charts"])
    ulp_bars = [bar for bar in page["bars"] if bar["title"].split(":")[0] in ("1", "64")]
    assert [(bar["title"], bar["fill"]) for bar in ulp_bars] == [
        ("1: 128", "#2da44e"),  # inside the policy: green
        ("64: 16", "#cf222e"),  # outside: red (the bin ends at the largest distance, 64)
    ]
    # Bars are proportional to their counts and visible.
    assert ulp_bars[0]["width"] == pytest.approx(8 * ulp_bars[1]["width"], rel=0.05)
    assert all(bar["height"] > 5 for bar in page["bars"])
    text = page["text"]
    assert "identical" in text
    assert "ULP percentiles" in text
    assert "p50 <= 1" in text
    assert "worst at" in text
