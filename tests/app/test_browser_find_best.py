"""The real CPU pipeline in a real browser: from the overview to a configuration's cross-validation table, the
case-by-case verdict on its extension, and a ``find_best_configuration`` job started with a click, whose result
the page then shows as nnU-Net wrote it.

The runs are the shared pipeline's (``next_steps_pipeline``: two folds of the tiny trainer and of its extension,
trained and validated with ``--npz`` through nnwatch's jobs). That pipeline has already run find-best, so this
module serves a copy of its results tree without find-best's output (``inference_*`` files, ``ensembles/``,
``crossval_results_folds_*``) and with an empty job registry: the state of a lab whose folds are validated and
that has not yet asked which configuration wins. Copying keeps the trained runs (no training here) and leaves the
pipeline's tree untouched for the other tests. ``nnwatch serve`` runs with the local backend, so the click really
starts ``nnUNetv2_find_best_configuration``. Playwright drives Debian's Chromium; screenshots go to
``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from app_support import serving
from conftest_browser import ARTIFACTS, NEEDS_CHROMIUM, select_group, settled
from conftest_steps import LONGER, TINY, NextStepsPipeline
from paths import REPO
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

FIND_BEST_DEADLINE_MS = 900_000  # nnUNetv2_find_best_configuration on two CPU folds of two trainers

pytestmark = [pytest.mark.browser, pytest.mark.nnunet, NEEDS_CHROMIUM]



@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1500, "height": 2400}}


@dataclass(frozen=True)
class Served:
    url: str
    results: Path
    dataset_dir: Path

    def run_id(self, trainer: str, fold: str) -> str:
        return f"{self.dataset_dir.name}/{trainer}__nnUNetPlans__2d/fold_{fold}"


def _without_find_best_output(dataset_dir: Path) -> None:
    """Remove what ``nnUNetv2_find_best_configuration`` wrote, leaving the trained and validated folds."""
    for name in ("inference_information.json", "inference_instructions.txt"):
        (dataset_dir / name).unlink(missing_ok=True)
    for path in [dataset_dir / "ensembles", *dataset_dir.glob("*/crossval_results_folds_*")]:
        if path.is_dir():
            shutil.rmtree(path)


@pytest.fixture(scope="module")
def served(next_steps_pipeline: NextStepsPipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``nnwatch serve`` (local backend, empty registry) over a copy of the pipeline's tree before find-best."""
    base = tmp_path_factory.mktemp("find_best_browser")
    results = base / "results"
    shutil.copytree(next_steps_pipeline.results, results)  # copy2: modification times stay, so nothing turns stale
    dataset_dir = results / next_steps_pipeline.dataset_dir.name
    _without_find_best_output(dataset_dir)
    env = {**next_steps_pipeline.env, "nnUNet_results": str(results), "NNWATCH_ROOT": str(results),
           "NNWATCH_JOBS_DB": str(base / "jobs.sqlite3"), "NNWATCH_STATE": str(base / "state"),
           "NNWATCH_HOST": "127.0.0.1", "PYTHONPATH": str(REPO)}
    for key in ("NNWATCH_USERS_FILE", "NNWATCH_BACKEND_FACTORY", "NNWATCH_OPEN_VIEW"):
        env.pop(key, None)
    with serving(["--root", str(results), "--refresh", "1"], env, base / "serve.log") as url:
        ARTIFACTS.mkdir(exist_ok=True)
        yield Served(url, results, dataset_dir)


def _cases(run_dir: Path) -> set[str]:
    summary = json.loads((run_dir / "validation" / "summary.json").read_text())
    return {Path(case["reference_file"]).name for case in summary["metric_per_case"]}


def _multiselect_input(page: Page, label: str) -> Any:
    return page.locator('[data-testid="stMultiSelect"]').filter(has_text=label).locator("input")


def _pick(page: Page, label: str, option: str, tries: int = 3) -> None:
    """Choose ``option`` in the multiselect labelled ``label``, opening its menu again if a rerun closed it."""
    field = _multiselect_input(page, label)
    expect(field).to_be_visible(timeout=30_000)
    choice = page.get_by_role("option", name=option, exact=True)
    for attempt in range(tries):
        settled(page)
        field.click()
        try:
            choice.click(timeout=10_000)
            break
        except PlaywrightTimeoutError:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
    page.keyboard.press("Escape")


def test_overview_to_crossval_verdict_and_a_find_best_job(page: Page, served: Served) -> None:
    dataset, url = served.dataset_dir.name, served.url
    tiny_dir = served.dataset_dir / f"{TINY}__nnUNetPlans__2d"
    longer_dir = served.dataset_dir / f"{LONGER}__nnUNetPlans__2d"

    # Overview → the tiny trainer's group → its cross-validation table.
    select_group(page, url, dataset, 0)  # the first group: the tiny trainer
    page.get_by_role("link", name="Cross-validation table").click()
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(f"Cross-validation: {TINY} · nnUNetPlans · 2d")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Missing fold(s): 2, 3, 4", exact=False)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("crossval_results_folds_", exact=False)).to_have_count(0)  # find-best has not run
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "find_best_01_crossval.png"))

    # The table's fold 0 → its run page → the case-by-case verdict on its extension.
    page.get_by_role("link", name="Open fold 0").click()
    expect(page.get_by_role("heading", name="Real validation")).to_be_visible(timeout=90_000)
    expect(page.get_by_text("Against its extension")).to_be_visible(timeout=60_000)
    expect(page.get_by_text(served.run_id(LONGER, "0"), exact=True)).to_be_visible()
    shared = _cases(tiny_dir / "fold_0") & _cases(longer_dir / "fold_0")
    assert shared, "the two fold-0 validations share no case"
    verdict = page.locator('[data-testid="stAlert"]').filter(has_text="Case by case, real validation:").first
    expect(verdict).to_be_visible(timeout=60_000)
    expect(verdict).to_contain_text(f"over {len(shared)} cases in 1 fold")
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "find_best_02_extension_verdict.png"))

    # Find the best of both trainers over the two trained folds: pick them, start, follow the job.
    expect(page.get_by_role("heading", name="Next steps")).to_be_visible(timeout=120_000)
    page.get_by_text("Find the best configuration of this dataset").click(timeout=90_000)
    _pick(page, "Trainers", LONGER)
    settled(page)
    folds = _multiselect_input(page, "Folds")
    folds.click()
    for _ in range(3):  # the default is the split's five folds; drop 4, 3 and 2, which were never trained
        folds.press("Backspace")
        settled(page)
    page.keyboard.press("Escape")
    start = page.get_by_role("button", name="Find best configuration")
    expect(start).to_be_enabled(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "find_best_03_controls.png"))
    start.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Find the best configuration", exact=True)).to_be_visible(timeout=60_000)
    expect(dialog.get_by_text("nnUNetv2_find_best_configuration", exact=False).first).to_be_visible(timeout=60_000)
    confirm = dialog.get_by_role("button", name="Start")
    expect(confirm).to_be_enabled(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "find_best_04_dialog.png"))
    confirm.click()
    banner = page.locator('[data-testid="stAlert"]').filter(has_text="Find best job").first
    expect(banner).to_contain_text("was created", timeout=60_000)
    match = re.search(r"Find best job (\w+) was created", banner.inner_text())
    assert match, banner.inner_text()
    job_id = match.group(1)
    page.get_by_role("link", name=f"Open job {job_id} on the Jobs page").click()
    heading = page.get_by_role("heading", name=re.compile(f"Job {job_id}"))
    expect(heading).to_have_text(re.compile("succeeded|failed|cancelled"), timeout=FIND_BEST_DEADLINE_MS)
    page.screenshot(path=str(ARTIFACTS / "find_best_05_job.png"))
    assert "succeeded" in heading.inner_text(), page.locator('[data-testid="stCode"]').last.inner_text()

    # The result, as the page shows it, is what nnU-Net wrote.
    info = json.loads((served.dataset_dir / "inference_information.json").read_text())
    chosen = info["best_model_or_ensemble"]
    members = " + ".join(f"{m['trainer']}__{m['plans_identifier']}__{m['configuration']}"
                         for m in chosen["selected_model_or_models"])
    what = "ensemble" if len(chosen["selected_model_or_models"]) > 1 else "model"
    instructions = (served.dataset_dir / "inference_instructions.txt").read_text()
    commands = [line.strip() for line in instructions.splitlines() if line.startswith("nnUNetv2_")]
    assert commands, instructions
    page.goto(f"{url}/run?id={quote(served.run_id(TINY, '0'), safe='')}")
    expect(page.get_by_role("heading", name="Next steps")).to_be_visible(timeout=120_000)
    settled(page)
    page.get_by_text("Find the best configuration of this dataset").click(timeout=90_000)
    result = page.locator('[data-testid="stMarkdownContainer"]').filter(
        has_text=f"Best {what} (find_best_configuration, folds 0, 1):").first
    expect(result).to_be_visible(timeout=60_000)
    expect(result).to_contain_text(members)
    code = page.locator('[data-testid="stCode"]').filter(has_text="nnUNetv2_predict").first
    for command in commands:
        expect(code).to_contain_text(command)
    cv_dice = page.locator('[data-testid="stMetric"]').filter(has_text="CV Dice after postprocessing")
    expect(cv_dice).to_contain_text(f"{chosen['result_on_crossval_post_pp']:.4f}")
    settled(page)
    result.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "find_best_06_result.png"))

    # find-best accumulated each trainer's folds; the cross-validation table now agrees with nnU-Net's own.
    page.goto(f"{url}/dataset?dataset={dataset}&model={TINY}__nnUNetPlans__2d")
    theirs = page.locator('[data-testid="stAlert"]').filter(has_text="crossval_results_folds_0_1").first
    expect(theirs).to_contain_text("agrees with nnU-Net's crossval_results_folds_0_1/summary.json", timeout=60_000)
