"""The bundled demo in a real browser at 900 and 1400 px: what a new user reads must be whole and consistent.

One ``nnwatch serve`` of the demo (no root; the session's ``served_demo``) is shared by every test of this
module; a page checked at both widths is loaded once and resized. Each assertion reads the
rendered page (text and element geometry), never Streamlit's session state: extension links between a parent
and its running extension, no value or button label cut off, headline counts that follow the filters, an
Extend dialog that recognises the running extension and keeps its buttons on bad input, and messages for ids
that do not exist.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from conftest_browser import ARTIFACTS, NEEDS_CHROMIUM, Demo, settled
from playwright.sync_api import Locator, Page, expect

from app.demo import DEMO_RUNNING
from app.demo_job import DEMO_JOB_RUN
from monitor import scan

PARENT = "Dataset101_Prostate/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
CHILD = DEMO_RUNNING[0]
WIDTHS = (900, 1400)

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

# The first page of a fresh server reads and analyses every demo run; on a loaded 2-core machine that
# takes a while, and later pages are quick. One generous deadline for every wait.
expect.set_options(timeout=180_000)


@pytest.fixture(scope="module")
def demo(served_demo: Demo) -> Demo:
    """``nnwatch serve`` with no root: the demo, written under a private cache folder."""
    return served_demo


def _open(page: Page, url: str, width: int) -> None:
    page.set_default_timeout(180_000)
    _resize(page, width)
    page.goto(url)
    expect(page.locator('[data-testid="stMain"]')).to_be_visible(timeout=180_000)


def _resize(page: Page, width: int) -> None:
    """The same page at another width (the layout is the browser's: the server renders it the same)."""
    page.set_viewport_size({"width": width, "height": 1600})


_CUT = """() => {
  const cut = [];
  const boxes = document.querySelectorAll('[data-testid="stMetric"] *, button[data-testid^="stBaseButton"] *');
  for (const el of boxes) {
    if (!el.childElementCount && el.textContent.trim() && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1
        && getComputedStyle(el).overflow !== 'visible') cut.push(el.textContent.trim());
  }
  for (const el of document.querySelectorAll('[data-testid="stMetric"] div, [data-testid="stMetric"] p')) {
    const style = getComputedStyle(el);
    if (style.textOverflow === 'ellipsis' && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
      cut.push(el.textContent.trim());
  }
  return cut;
}"""


def _nothing_cut(page: Page, where: str) -> None:
    """Wait (a page that is re-rendering may be mid-layout) until no metric or button text is cut off."""
    try:
        page.wait_for_function(f"() => ({_CUT})().length === 0", timeout=30_000)
    except Exception:
        raise AssertionError(f"cut off on {where}: {page.evaluate(_CUT)}") from None


def _fresh_button(scope: Locator, name: str) -> Locator:
    """A button of the current script run (a rerun keeps the previous run's copy, marked stale, for a moment)."""
    fresh = scope.locator('[data-testid="stElementContainer"]:not([data-stale="true"])')
    return fresh.get_by_role("button", name=re.compile(name)).first


def _metric(page: Page, label: str) -> str:
    tile = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return tile.locator('[data-testid="stMetricValue"]').inner_text().strip()


def test_serve_and_the_sidebar_name_the_demo_tree_and_the_log_has_no_warning(page: Page, demo: Demo) -> None:
    _open(page, demo.url, 1400)
    expect(page.get_by_text(str(demo.root), exact=False).first).to_be_visible(timeout=180_000)
    log = demo.log.read_text()
    assert str(demo.root) in log
    assert [line for line in log.splitlines() if "WARNING" in line] == []  # the warm-up wrote the demo quietly


def test_parent_and_extension_link_to_each_other(page: Page, demo: Demo) -> None:
    _open(page, f"{demo.url}/run?id={quote(PARENT, safe='')}", WIDTHS[-1])
    line = page.get_by_text(re.compile(r"extended → \d+/2000, running"))
    expect(line).to_be_visible(timeout=180_000)
    settled(page)
    for width in reversed(WIDTHS):  # ends at the narrowest, where the link is then clicked
        _resize(page, width)
        expect(line).to_be_visible()
        expect(page.get_by_role("link", name=re.compile("Compare the two"))).to_be_visible(timeout=180_000)
        page.screenshot(path=str(ARTIFACTS / f"demo_parent_{width}.png"))
    page.get_by_role("link", name=re.compile("Open the extension")).click()
    expect(page.get_by_text(re.compile(r"extension of ← 1000/1000, finished"))).to_be_visible(timeout=180_000)
    for width in WIDTHS:
        _resize(page, width)
        expect(page.get_by_text(re.compile(r"extension of ← 1000/1000, finished"))).to_be_visible()
        expect(page.get_by_text(f"`{CHILD}`", exact=False).or_(page.get_by_text(CHILD, exact=False)).first
               ).to_be_visible()
        expect(page.get_by_role("link", name=re.compile("Open the parent"))).to_be_visible()


def test_nothing_a_user_decides_on_is_cut_off(page: Page, demo: Demo) -> None:
    for run_id in (PARENT, DEMO_RUNNING[1]):
        _open(page, f"{demo.url}/run?id={quote(run_id, safe='')}", WIDTHS[-1])
        expect(page.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=180_000)
        slope = page.locator('[data-testid="stMetric"]').filter(has_text=re.compile("Slope (at the end|so far)"))
        expect(slope).to_be_visible(timeout=180_000)
        settled(page)
        values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
        assert values and all(value.strip() for value in values)
        for width in WIDTHS:
            _resize(page, width)
            _nothing_cut(page, f"{run_id} at {width} px")
            expect(page.get_by_role("button", name=re.compile("Extend to 2000 epochs"))).to_be_visible()
            if run_id == DEMO_RUNNING[1]:
                page.screenshot(path=str(ARTIFACTS / f"demo_running_{width}.png"))
    _open(page, demo.url, WIDTHS[-1])
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Still improving")).to_be_visible(timeout=180_000)
    settled(page)
    for width in WIDTHS:
        _resize(page, width)
        _nothing_cut(page, f"the overview at {width} px")


def test_headline_counts_follow_the_filters(page: Page, demo: Demo) -> None:
    _open(page, f"{demo.url}/?status=running", 1400)
    heading = page.get_by_text(re.compile(r"^Runs \((\d+)\)$"))
    expect(heading).to_be_visible(timeout=180_000)
    settled(page)
    shown = int(re.search(r"\d+", heading.inner_text()).group())  # type: ignore[union-attr]
    assert shown == len(DEMO_RUNNING)
    assert _metric(page, "Runs") == str(shown) and _metric(page, "Running") == str(shown)
    assert _metric(page, "Finished") == "0"
    expect(page.get_by_text(re.compile(r"Filtered: 2 of \d+ runs"))).to_be_visible()
    _nothing_cut(page, "the filtered overview")

    _open(page, f"{demo.url}/?verdict=declining", 1400)
    heading = page.get_by_text(re.compile(r"^Runs \((\d+)\)$"))
    expect(heading).to_be_visible(timeout=180_000)
    settled(page)
    table = scan(demo.root, verdicts=True, workers=1)
    declining = table[table["verdict"] == "declining"]
    groups = declining[["dataset", "configuration", "trainer", "plans"]].drop_duplicates()
    assert _metric(page, "Runs") == str(len(declining))
    assert heading.inner_text() == f"Runs ({len(declining)})"
    expect(page.get_by_text(f"{len(groups)} group(s) of folds", exact=True)).to_be_visible()
    assert _metric(page, "Still improving") == "0"


def test_runs_table_decision_columns_fit_1400_px(page: Page, demo: Demo) -> None:
    _open(page, demo.url, 1400)
    grid = page.locator('[data-testid="stDataFrame"]').nth(1)
    expect(grid).to_be_visible()
    settled(page)
    # Configured widths up to and including "Why", plus the row-selection column.
    needed = 30 + sum((50, 120, 75, 140, 36, 88, 118, 80, 68, 190))
    width = grid.evaluate("el => el.getBoundingClientRect().width")
    assert width >= needed, f"the runs table is {width:.0f} px wide; its decision columns need {needed}"
    page.screenshot(path=str(ARTIFACTS / "demo_overview_1400.png"))


def test_demo_jobs_page_has_a_history(page: Page, demo: Demo) -> None:
    _open(page, f"{demo.url}/jobs", 1400)
    expect(page.get_by_text(re.compile(r"Job de7a0\w+ ·")).first).to_be_visible()
    expect(page.get_by_text("CUDA out of memory (demo)", exact=False).first).to_be_attached()


def test_extend_dialog_on_the_demo_recognises_the_running_extension(page: Page, demo: Demo) -> None:
    _open(page, f"{demo.url}/run?id={quote(PARENT, safe='')}", 1400)
    page.get_by_role("button", name=re.compile("Extend to 2000 epochs")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("nothing can start from here", exact=False)).to_be_visible(timeout=180_000)
    expect(dialog.get_by_text("Pre-flight checks")).to_be_visible(timeout=180_000)  # generous: a loaded machine
    expect(dialog.get_by_text("started outside nnwatch, is training", exact=False)).to_be_visible()
    expect(dialog.get_by_text("Folder for the new run", exact=False)).to_be_visible()
    assert "delete" not in dialog.inner_text().lower()
    start = _fresh_button(dialog, "^Start")
    expect(start).to_be_disabled()
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "demo_extend_dialog.png"))

    epochs = dialog.get_by_label("Epochs")
    epochs.fill("0")
    epochs.press("Enter")
    expect(dialog.get_by_text("whole number above 0", exact=False)).to_be_visible(timeout=180_000)
    expect(_fresh_button(dialog, "^Start")).to_be_visible()
    expect(_fresh_button(dialog, "^Cancel")).to_be_visible()
    epochs.fill("99999999")
    epochs.press("Enter")
    expect(dialog.get_by_text("far beyond any nnU-Net schedule", exact=False)).to_be_visible(timeout=180_000)
    epochs.fill("2000")
    epochs.press("Enter")
    gpu = dialog.get_by_label("GPU index")
    gpu.fill("first")
    gpu.press("Enter")
    expect(dialog.get_by_text("The GPU index is a number", exact=False)).to_be_visible(timeout=180_000)
    expect(_fresh_button(dialog, "^Start")).to_be_visible()
    expect(_fresh_button(dialog, "^Cancel")).to_be_visible()


def test_unknown_ids_get_a_message(page: Page, demo: Demo) -> None:
    _open(page, f"{demo.url}/jobs?job=deadbeef00", 1400)
    expect(page.get_by_text("No job deadbeef00", exact=False)).to_be_visible(timeout=180_000)
    _open(page, f"{demo.url}/compare?parent=Dataset1_Nope/x__y__2d/fold_0&child={quote(CHILD, safe='')}", 1400)
    page.get_by_role("tab", name="Parent vs extended run").click()
    expect(page.get_by_text("No run Dataset1_Nope/x__y__2d/fold_0", exact=False)).to_be_visible(timeout=180_000)
    _open(page, f"{demo.url}/run?id=Dataset1_Nope%2Fx__y__2d%2Ffold_0", 1400)
    expect(page.get_by_text("No run Dataset1_Nope/x__y__2d/fold_0", exact=False)).to_be_visible(timeout=180_000)


def test_demo_job_starts_grows_its_run_and_is_cancelled(page: Page, demo: Demo) -> None:
    """Last in this module: the job adds a run to the demo (cancelled at the end, so nothing stays running)."""
    main = page.locator('[data-testid="stMain"]')
    _open(page, f"{demo.url}/jobs", 1400)
    expect(_fresh_button(main, "Start the demo job")).to_be_enabled(timeout=180_000)
    settled(page)
    _fresh_button(main, "Start the demo job").click()
    heading = page.get_by_text(re.compile(r"^Job [0-9a-f]{12} · ▶ running$"))
    expect(heading).to_be_visible(timeout=180_000)
    job_id = heading.inner_text().split()[1]
    assert not job_id.startswith("de7a0"), "a new job, not one of the demo's history"
    expect(page.get_by_text(f"Demo job {job_id} is running: a new epoch every second.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"epoch \d+, pseudo Dice")).first).to_be_attached(timeout=120_000)
    settled(page)
    _fresh_button(main, "Start the demo job").click()  # a second click starts nothing new
    expect(page.get_by_text(f"Demo job {job_id} is already running", exact=False)).to_be_visible(timeout=180_000)

    _open(page, f"{demo.url}/run?id={quote(DEMO_JOB_RUN, safe='')}", 1400)
    epochs = page.locator('[data-testid="stMetric"]').filter(has_text="Epochs done (of 300)")
    expect(epochs).to_be_visible(timeout=180_000)
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Status")).to_contain_text("running")
    value = epochs.locator('[data-testid="stMetricValue"]')
    expect(value).not_to_have_text(value.inner_text().strip(), timeout=120_000)  # the live run grows

    _open(page, f"{demo.url}/jobs?job={job_id}", 1400)
    expect(_fresh_button(main, "^Cancel job")).to_be_visible(timeout=180_000)
    settled(page)
    _fresh_button(main, "^Cancel job").click()
    confirm = _fresh_button(main, "Yes, cancel it")
    expect(confirm).to_be_visible(timeout=180_000)
    settled(page)
    confirm.click()
    expect(page.get_by_text(f"Job {job_id} · ■ cancelled", exact=True)).to_be_visible(timeout=180_000)
    expect(page.get_by_text(f"Job {job_id} is cancelled", exact=False)).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "demo_job_cancelled.png"))
