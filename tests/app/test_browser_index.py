"""The run index seen from a browser: a cold start shows its progress on the page, a restart does not re-read.

Two ``nnwatch serve`` starts on one state folder over a generated tree of many short runs: reading it takes
longer than the first page waits for the runs before it shows a progress bar (two seconds), even on a quiet
machine with two cores.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from app_support import serving
from conftest_browser import NEEDS_CHROMIUM
from paths import REPO
from playwright.sync_api import Page, expect

from monitor.index import RunIndex
from monitor.synth import write_tree

N_RUNS = 6000

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]



@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1500, "height": 1400}}


@contextmanager
def _serve(root: Path, state: Path, log: Path) -> Iterator[str]:
    env = {**os.environ, "NNWATCH_STATE": str(state), "NNWATCH_JOBS_DB": str(state / "jobs.sqlite3"),
           "PYTHONPATH": str(REPO)}
    with serving(["--root", str(root)], env, log) as url:
        yield url


@pytest.mark.timeout(900)
def test_cold_start_shows_progress_and_a_restart_comes_from_the_index(page: Page, tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_tree(root, N_RUNS, 10)
    state = tmp_path / "state"
    log = tmp_path / "serve.log"
    listed = page.get_by_text(f"{N_RUNS} runs ·")
    with _serve(root, state, log) as url:
        page.goto(url)
        progress = page.locator('[data-testid="stProgress"]')
        expect(progress).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Reading the results tree")).to_be_visible()
        expect(listed).to_be_visible(timeout=600_000)
        expect(progress).to_have_count(0)
        deadline = time.monotonic() + 120
        index = RunIndex(state / "index.sqlite3")
        while index.info().runs < N_RUNS:  # saved in batches by the server's watcher
            assert time.monotonic() < deadline, "the server did not save every run to the index"
            time.sleep(0.5)
        index.close()
    with _serve(root, state, log) as url:
        started = time.monotonic()
        page.goto(url)
        expect(listed).to_be_visible(timeout=120_000)
        restart_s = time.monotonic() - started
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=120_000)
    assert "damaged" not in log.read_text()
    print(f"overview after a restart with the index warm: {restart_s:.1f} s")
