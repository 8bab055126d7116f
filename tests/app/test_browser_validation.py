"""Real validation in a real browser, on the bundled demo: from the overview to a configuration's cross-validation
table, and on to the case-by-case verdict of an extension against its parent.

Playwright drives Debian's Chromium against ``nnwatch serve`` with no results root, so the server writes and serves
its demo tree (into a temporary cache folder). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from conftest_browser import ARTIFACTS, NEEDS_CHROMIUM, Demo, select_group, settled
from playwright.sync_api import Page, expect

PROSTATE = "Dataset101_Prostate"
PARENT = f"{PROSTATE}/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_1"
EXTENSION = f"{PROSTATE}/nnUNetTrainer_2000epochs__nnUNetPlans__3d_fullres/fold_1"

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]



@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1500, "height": 2400}}


@pytest.fixture(scope="module")
def demo(served_demo: Demo) -> str:
    """``nnwatch serve`` with no root: the demo tree, written under a temporary cache folder (shared, read only)."""
    return served_demo.url


def test_overview_to_the_cross_validation_table(page: Page, demo: str) -> None:
    select_group(page, demo, PROSTATE, 1)  # Prostate's groups: 2d, 3d_fullres nnUNetTrainer, 3d_fullres _2000epochs
    link = page.get_by_role("link", name="Cross-validation table")
    expect(link).to_be_visible(timeout=30_000)
    link.click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Cross-validation: nnUNetTrainer · nnUNetPlans · 3d_fullres")).to_be_visible(
        timeout=60_000)
    expect(page.get_by_text("Not in the mean: fold(s) 4", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Which one wins?")).to_be_visible()
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "validation_01_crossval.png"))
    page.get_by_text("Only the columns that differ").click()
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "validation_02_dataset_differing.png"))


def test_overview_to_the_case_by_case_verdict_of_an_extension(page: Page, demo: str) -> None:
    # Overview → the 2000-epoch group (Prostate's third: 2d, 3d_fullres nnUNetTrainer, _2000epochs) → its
    # cross-validation table → fold 1's run page, which weighs it against its parent case by case.
    select_group(page, demo, PROSTATE, 2)
    page.get_by_role("link", name="Cross-validation table").click()
    expect(page.get_by_text("Cross-validation: nnUNetTrainer_2000epochs · nnUNetPlans · 3d_fullres")).to_be_visible(
        timeout=60_000)
    page.get_by_role("link", name="Open fold 1").click()
    expect(page.get_by_role("heading", name="Real validation")).to_be_visible(timeout=90_000)
    expect(page.get_by_text(EXTENSION, exact=True).first).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Real validation Dice")).to_be_visible(
        timeout=30_000)
    expect(page.get_by_text("than the last pseudo Dice because", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Against its parent")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(PARENT, exact=True)).to_be_visible()
    verdict = page.locator('[data-testid="stAlert"]').filter(has_text="Case by case, real validation:").first
    expect(verdict).to_be_visible(timeout=60_000)
    expect(verdict).to_contain_text("2000 epochs: ")
    expect(verdict).to_contain_text("over 8 cases in 1 fold")
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "validation_03_extension_run.png"))

    page.goto(f"{demo}/compare?parent={quote(PARENT, safe='')}&child={quote(EXTENSION, safe='')}")
    page.get_by_role("tab", name="Parent vs extended run").click(timeout=90_000)
    expect(page.get_by_text("Case by case, on the real validation")).to_be_visible(timeout=60_000)
    box = page.locator('[data-testid="stAlert"]').filter(has_text="Case by case, real validation:").first
    expect(box).to_contain_text("over 8 cases in 1 fold", timeout=60_000)
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "validation_04_compare.png"))
