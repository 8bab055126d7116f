"""The source scan that plans use finds the same trainer classes as nnU-Net's import-based search, without
importing torch, so an Extend plan shows at once even in a process that never imported nnU-Net."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest_trainer import FakeNnunet
from paths import REPO

from trainer.variants import find_trainer, locate_trainer, resolve_variant

NAMES = ("nnUNetTrainer", "nnUNetTrainer_2000epochs", "nnUNetTrainer_1epoch", "nnUNetTrainerDA5",
         "nnUNetTrainerNoSuchClass")


def test_the_scan_agrees_with_nnunets_import_search(tmp_path: Path) -> None:
    folder = tmp_path / "ext"
    folder.mkdir()
    environ = {**os.environ, "nnUNet_extTrainer": str(folder), "NNWATCH_VARIANTS_DIR": str(folder)}
    live = resolve_variant("nnUNetTrainerDA5", 1500, environ)
    (folder / f"{live.name}.py").write_text(live.source)
    stale = resolve_variant("nnUNetTrainerDA5", 777, environ)
    (folder / f"{stale.name}.py").write_text(stale.source.replace(stale.parent.module, "gone.module"))
    (folder / "zz_other.py").write_text(
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n"
        "class nnUNetTrainer_nnwatchOther(nnUNetTrainer):\n    pass\n")
    for name in (*NAMES, live.name, stale.name, "nnUNetTrainer_nnwatchOther"):
        assert find_trainer(name, environ) == locate_trainer(name, environ), name
    assert find_trainer(stale.name, environ) is None, "a variant whose parent is gone does not exist for nnU-Net"
    found = find_trainer(live.name, environ)
    assert found is not None and (found.base_trainer, found.base_epochs) == ("nnUNetTrainerDA5", 1500)


def test_a_plan_does_not_import_torch_or_nnunet(fake_nnunet: FakeNnunet) -> None:
    code = ("import sys\nfrom trainer import plan_extend\n"
            f"plan = plan_extend({str(fake_nnunet.run_dir)!r}, device='cpu')\n"
            "print(plan.new_trainer, 'torch' in sys.modules, 'nnunetv2' in sys.modules)\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                               check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert completed.stdout.split() == ["nnUNetTrainer_2000epochs", "False", "False"]
