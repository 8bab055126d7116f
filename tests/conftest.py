"""Shared fixtures: the corpus of real logs and a real tiny nnU-Net environment."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from paths import CORPUS


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


# Fixtures of the trainer tests (a real SLURM cluster, a file-only nnU-Net tree, a job registry).
from conftest_trainer import extend_parent, fake_nnunet, job_registry, slurm_cluster  # noqa: E402, F401
