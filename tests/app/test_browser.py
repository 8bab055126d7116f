"""The dashboard in a real browser (Playwright driving Debian's Chromium) against ``nnwatch serve``.

What a lab member does: open the overview, open a run, see its chart, extend it, find the job on the Jobs
page; and watch a training run's page pick up a new epoch without reloading. Screenshots go to
``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from app_support import FixtureTree, append_epoch, build_fixture_tree, serving
from conftest_browser import ARTIFACTS, NEEDS_CHROMIUM, settled
from paths import REPO
from playwright.sync_api import Locator, Page, expect

from trainer import JobRegistry

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]



@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    # Tall: Streamlit scrolls inside its own container, so full-page screenshots would miss the bottom.
    return {**browser_context_args, "viewport": {"width": 1500, "height": 2000}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FixtureTree]]:
    """``nnwatch serve`` on a free port over the fixture tree, launches recorded instead of run."""
    tree = build_fixture_tree(tmp_path_factory.mktemp("browser"))
    env = {**os.environ, **tree.env, "PYTHONPATH": f"{REPO / 'tests'}:{REPO}"}
    with serving(["--root", str(tree.root), "--refresh", "1"], env, tree.base / "serve.log") as url:
        ARTIFACTS.mkdir(exist_ok=True)
        yield url, tree


def _fresh(scope: Locator, role: str, name: str) -> Locator:
    """An element of the current script run only: during a rerun Streamlit keeps the previous run's copy
    (marked ``data-stale``) on screen beside the new one, which would make a role locator ambiguous."""
    return scope.locator('[data-testid="stElementContainer"]:not([data-stale="true"])').get_by_role(role, name=name)


def test_overview_run_extend_and_job(page: Page, served: tuple[str, FixtureTree]) -> None:
    url, tree = served
    page.goto(url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=60_000)
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(2, timeout=30_000)
    expect(page.get_by_text(f"Runs ({len(tree.all_runs)})")).to_be_visible()
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "01_overview.png"))

    page.goto(f"{url}/run?id={quote(tree.improving, safe='')}")
    expect(page.get_by_role("heading", name="Dataset201_Kidney · 3d_fullres · fold 0")).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Validation pseudo Dice").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("improving", exact=False).first).to_be_visible()
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "02_run.png"))

    _fresh(page.locator("body"), "button", "Extend to 2000 epochs").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=30_000)
    expect(dialog.get_by_text("The verdict", exact=False).first).to_be_visible(timeout=60_000)
    expect(dialog.get_by_text("Pre-flight checks")).to_be_visible(timeout=90_000)  # the first plan loads nnU-Net
    expect(dialog.get_by_text("no NVIDIA GPU found", exact=False)).to_be_visible()
    dialog.get_by_role("radiogroup", name="Device").get_by_text("cpu", exact=True).click()
    expect(dialog.get_by_text("no NVIDIA GPU found", exact=False)).to_be_hidden(timeout=30_000)
    settled(page)
    start = _fresh(dialog, "button", "Start 2000-epoch run")
    expect(start).to_be_enabled(timeout=30_000)
    expect(dialog.get_by_text("nnUNetTrainer_2000epochs").first).to_be_visible()
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "03_extend_dialog.png"))
    start.click()
    expect(dialog).to_be_hidden(timeout=30_000)
    jobs = JobRegistry(tree.env["NNWATCH_JOBS_DB"]).list_jobs()
    assert len(jobs) == 1 and jobs[0].parent_run_id == tree.improving
    assert [e["job_id"] for e in tree.launches() if e["event"] == "launch"] == [jobs[0].job_id]
    link = _fresh(page.locator("body"), "link", f"Open job {jobs[0].job_id} on the Jobs page")
    expect(link).to_be_visible(timeout=30_000)
    link.click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(f"Job {jobs[0].job_id} ·")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("recorded launch (test backend)")).to_be_visible(timeout=30_000)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "04_jobs.png"))


#: The scripts this page fetched so far, by file name.
_SCRIPTS = "() => performance.getEntriesByType('resource').map(e => e.name).filter(n => n.endsWith('.js'))"


#: Records when the overview's two tables were on screen, and every text Plotly drew, however briefly.
_WATCH_PAGE = """
window.nnwatchSeen = {tablesAt: null, texts: []};
new MutationObserver((changes) => {
  const seen = window.nnwatchSeen;
  if (seen.tablesAt === null && document.querySelectorAll('[data-testid="stDataFrame"]').length === 2)
    seen.tablesAt = performance.now();
  for (const change of changes)
    for (const node of change.addedNodes)
      if (node.closest && node.closest(".js-plotly-plot") && node.textContent) seen.texts.push(node.textContent);
}).observe(document, {childList: true, subtree: true});
"""


def test_the_overview_prepares_the_run_page_scripts_before_a_run_is_opened(page: Page,
                                                                          served: tuple[str, FixtureTree]) -> None:
    url, _tree = served
    page.add_init_script(_WATCH_PAGE)
    page.goto(url)
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(2, timeout=60_000)
    page.wait_for_function("() => window.nnwatchRunPageWarm === 'ready'", timeout=30_000)
    fetched = page.evaluate(_SCRIPTS)
    assert any(re.search(r"/PlotlyChart\.[^/]+\.js$", name) for name in fetched)
    expect(page.locator(".js-plotly-plot")).to_have_count(0)  # the figures drawn to warm Plotly up are gone
    seen = page.evaluate("window.nnwatchSeen")
    for title in ("Validation pseudo Dice", "Learning rate", "Epoch time"):  # the run page's own two figures
        assert any(title in text for text in seen["texts"]), title
    plotly_fetched = page.evaluate(
        "() => performance.getEntriesByType('resource').find(e => /PlotlyChart\\.[^/]+\\.js$/.test(e.name)).startTime")
    assert seen["tablesAt"] is not None and plotly_fetched >= seen["tablesAt"]  # the tables did not wait for it
    runs = page.locator('[data-testid="stDataFrame"]').nth(1)
    box = runs.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # the first run's selection cell
    link = _fresh(page.locator("body"), "link", "Open run")
    expect(link).to_be_visible(timeout=30_000)
    before = page.evaluate(_SCRIPTS)
    link.click()
    expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)
    panels = page.locator(".js-plotly-plot").nth(1)
    for title in ("Loss", "Learning rate", "Epoch time"):
        expect(panels.get_by_text(title, exact=True)).to_be_visible()
    settled(page)
    assert page.evaluate(_SCRIPTS)[len(before):] == []  # the run page waited for no script


def test_running_run_updates_without_reload(page: Page, served: tuple[str, FixtureTree]) -> None:
    url, tree = served
    page.goto(f"{url}/run?id={quote(tree.running, safe='')}")
    epochs = page.locator('[data-testid="stMetric"]').filter(has_text="Epochs done").locator(
        '[data-testid="stMetricValue"]')
    expect(epochs).to_have_text("120", timeout=60_000)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    page.evaluate("window.__nnwatchMarker = 'same document'")
    try:
        append_epoch(tree, tree.running, 120)
        expect(epochs).to_have_text("121", timeout=30_000)
        append_epoch(tree, tree.running, 121)
        expect(epochs).to_have_text("122", timeout=30_000)
        assert page.evaluate("window.__nnwatchMarker") == "same document", "the page was not reloaded"
    finally:
        page.screenshot(path=str(ARTIFACTS / "05_live_run.png"))


def test_compare_page_shows_folds_and_pair(page: Page, served: tuple[str, FixtureTree]) -> None:
    url, tree = served
    page.goto(f"{url}/compare?dataset=Dataset201_Kidney&config=3d_fullres&trainer=nnUNetTrainer")
    expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("EMA pseudo Dice across folds").first).to_be_visible(timeout=30_000)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "06_compare_folds.png"))
    page.get_by_role("tab", name="Parent vs extended run").click()
    # one comparison statement, under the rule it names
    expect(page.get_by_text("Comparison rule: end of schedule", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"on track to beat its parent's final value|end higher than its parent"))
           ).to_have_count(1)
    pair = page.get_by_role("combobox", name="Parent → extended run")
    expect(pair).to_have_value(f"{tree.parent} → nnUNetTrainer_400epochs__nnUNetPlans__2d (trainer name)")
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "07_compare_pair.png"))
