"""The browser tests' shared parts (via tests/conftest.py): Debian's Chromium as the browser, and one ``nnwatch
serve`` of the bundled demo per session, shared by every module that only reads it.

Starting a server and letting its first page read and analyse every demo run is a large part of a browser
module's cost, so the modules that look at the demo (tests/app/test_demo_browser.py,
tests/app/test_browser_validation.py) share this one, each through its own ``demo`` fixture. A test that changes
the demo (starts a job in it) runs after the read-only ones and leaves nothing running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_support import serving
from paths import REPO
from playwright.sync_api import Page, expect

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
#: Every browser module's skip: the tests drive Debian's Chromium, not a browser Playwright downloads.
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's Chromium is not installed at "
                                    "/usr/bin/chromium (apt-get install -y chromium)")


class Demo:
    """The served demo: its URL, where its tree was written, and what ``serve`` printed."""

    def __init__(self, url: str, base: Path, log: Path) -> None:
        self.url, self.base, self.log = url, base, log

    @property
    def root(self) -> Path:
        return self.base / "cache" / "nnwatch" / "demo" / "nnUNet_results"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Every browser test drives Debian's Chromium (pytest-playwright's fixture, with its path)."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="session")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``nnwatch serve`` with no root and no nnU-Net or nnwatch variables: the demo, written under a private
    cache folder, with the default refresh (a shorter one keeps a loaded machine re-rendering live panels)."""
    base = tmp_path_factory.mktemp("demo")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("nnUNet_", "NNWATCH_"))}
    env.update(XDG_CACHE_HOME=str(base / "cache"), NNWATCH_STATE=str(base / "state"), PYTHONPATH=str(REPO))
    log = base / "serve.log"
    with serving([], env, log) as url:
        ARTIFACTS.mkdir(exist_ok=True)
        yield Demo(url, base, log)


def settled(page: Page) -> None:
    """Wait until Streamlit has finished running the script (its 'running' indicator is gone)."""
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


def select_group(page: Page, url: str, dataset: str, row: int) -> None:
    """On the overview filtered to ``dataset``, select the ``row``-th group (the row selector is a canvas cell)."""
    page.goto(f"{url}/?dataset={dataset}")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=120_000)
    groups = page.locator('[data-testid="stDataFrame"]').first
    expect(groups).to_be_visible(timeout=60_000)
    settled(page)
    box = groups.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 35 * row + 17)
