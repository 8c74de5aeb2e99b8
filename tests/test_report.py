"""`snakemake --report` on the demo run, opened in a real headless Chromium.

The assertions are on the DOM Chromium rendered (after the report's scripts ran), not on the
HTML file; the screenshots land beside the report for a person to look at.
"""

from __future__ import annotations

import shutil

import pytest
from workflow_helpers import DEMO, snakemake

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def test_report_renders_tables_figures_and_config(demo_run, tmp_path, browser):
    report = tmp_path / "report.html"
    result = snakemake(demo_run, *DEMO, "--report", str(report))
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text()
    assert "<script src=\"http" not in html and "<link href=\"http" not in html  # self-contained

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(report.as_uri())
    menu = page.inner_text("body")
    for category in ("Tables", "Training", "Hybrid", "Configuration"):
        assert category in menu

    # the tables page, rendered inside the report
    page.get_by_role("link", name="Tables").click()
    page.locator("tr", has_text="tables.html").locator("a[iconname=eye]").click()
    tables = page.frame_locator("iframe").first
    tables.locator("#table5").wait_for()
    shown = tables.locator("table.result-table").evaluate_all("tables => tables.map(t => t.id)")
    assert shown == ["table1", "table2", "table3", "table4", "table5", "table5_extended", "table6",
                     "gate_settings", "hybrid_variants"]
    table5 = tables.locator("#table5")
    assert table5.locator("tbody tr").count() == 6  # linrec, fmlp, hybrid per protocol
    assert "full" in table5.inner_text() and "uniform99" in table5.inner_text()
    page.screenshot(path=tmp_path / "report_tables.png")

    # a figure, shown as an image the browser decoded
    page.goto(report.as_uri())
    page.get_by_role("link", name="Hybrid").click()
    page.locator("tr", has_text="fig4_shap_demo_full.png").locator("a[iconname=eye]").click()
    image = page.locator("img[src^='data:image/png']").first
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth") > 300
    page.screenshot(path=tmp_path / "report_figure.png")

    # the run's configuration
    page.goto(report.as_uri())
    page.get_by_role("link", name="Configuration").click()
    page.locator("tr", has_text="config.html").locator("a[iconname=eye]").click()
    config = page.frame_locator("iframe").first.locator("#config")
    config.wait_for()
    assert "datasets:\n  - demo" in config.inner_text() or "datasets: [demo]" in config.inner_text()
    page.close()
