"""Shared fixtures: the corpus of real logs and a real tiny nnU-Net environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from paths import CORPUS

# Tests that train nnU-Net, build a Docker image, start a SLURM cluster or drive a browser pay for that
# setup inside their first test; pyproject.toml's default timeout is for everything else. A test's own
# ``@pytest.mark.timeout`` wins.
MARKER_TIMEOUT_S = {"nnunet": 2400, "docker": 3600, "slurm": 600, "browser": 600}
_COUNTS = pytest.StashKey[tuple[int, int]]()
_OWN_STATE = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """The suite keeps its job registry, run index and notification log in a state folder of its own (inherited
    by every nnwatch process it starts), never in the user's: tests must not read a developer's jobs or index."""
    if not os.environ.get("NNWATCH_STATE"):
        os.environ["NNWATCH_STATE"] = config.stash[_OWN_STATE] = tempfile.mkdtemp(prefix="nnwatch-test-state-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the state folder this session made (not one the caller gave)."""
    if _OWN_STATE in config.stash:
        shutil.rmtree(config.stash[_OWN_STATE], ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects, so that ``-m "not slow"`` sees the added marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of the slow markers ``slow`` and give them their longer timeout."""
    for item in items:
        limits = [limit for name, limit in MARKER_TIMEOUT_S.items() if item.get_closest_marker(name)]
        if limits:
            item.add_marker(pytest.mark.slow)
        if limits and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(max(limits)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Count the selected tests and the test functions they come from (a parametrized function once)."""
    functions = {item.nodeid.split("[", 1)[0] for item in session.items}
    session.config.stash[_COUNTS] = (len(session.items), len(functions))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the number of test functions beside the number of tests: many tests are seeds of a few
    parametrized functions, so the total alone overstates how many different things are checked."""
    if _COUNTS in config.stash:
        tests, functions = config.stash[_COUNTS]
        terminalreporter.write_line(f"{tests} tests from {functions} test functions")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The folder of real training logs; tests that need it skip where it is absent."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"real-log corpus not found at {CORPUS} (it lives beside the repository in shared/corpus)")
    return CORPUS


@pytest.fixture(scope="session")
def tiny_nnunet(tmp_path_factory: pytest.TempPathFactory):
    """A real nnU-Net environment with a planned and preprocessed tiny 2D dataset (~45 s, once)."""
    if importlib.util.find_spec("nnunetv2") is None:
        pytest.skip("nnunetv2 is not installed")
    from nnunet_tiny import prepare

    return prepare(tmp_path_factory.mktemp("nnunet"))


@pytest.fixture(scope="session")
def tiny_parent_run(tiny_nnunet) -> Path:
    """A finished real 4-epoch training of fold 0 on the CPU (~70 s, once): its fold folder."""
    from nnunet_tiny import train

    return train(tiny_nnunet, 0, epochs=4)


# Fixtures of the trainer tests (a real SLURM cluster, a file-only nnU-Net tree, a job registry), the real
# next-step pipeline (train missing folds, validate with --npz, find the best configuration) with the --npz
# fold it trains, and the browser tests' Chromium and demo (served once).
from conftest_browser import browser_type_launch_args, served_demo  # noqa: E402, F401
from conftest_steps import next_steps_pipeline, tiny_npz_fold  # noqa: E402, F401
from conftest_trainer import (  # noqa: E402, F401
    extend_parent,
    fake_nnunet,
    job_registry,
    slurm_cluster,
    slurm_time_limit_job,
)
