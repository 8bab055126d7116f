"""The Compare page on the real next-step pipeline: the find_best result shown is the one nnU-Net wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import streamlit as st
from conftest_steps import TINY, NextStepsPipeline
from paths import REPO
from streamlit.testing.v1 import AppTest

from app.dashboard.ui import fmt_dice

pytestmark = pytest.mark.nnunet

MAIN = str(REPO / "app" / "dashboard" / "main.py")


@pytest.fixture
def dashboard_env(next_steps_pipeline: NextStepsPipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in next_steps_pipeline.env.items():
        if key.startswith(("nnUNet_", "NNWATCH_")):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("NNWATCH_ROOT", str(next_steps_pipeline.results))
    monkeypatch.setenv("NNWATCH_HOST", "127.0.0.1")  # a loopback dashboard acts without a login
    monkeypatch.delenv("NNWATCH_USERS_FILE", raising=False)
    monkeypatch.delenv("NNWATCH_OPEN_VIEW", raising=False)
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def test_compare_shows_nnunets_best_configuration(next_steps_pipeline: NextStepsPipeline, dashboard_env: None) -> None:
    dataset_dir = next_steps_pipeline.dataset_dir
    at = AppTest.from_file(MAIN, default_timeout=180)
    at.run()
    at.query_params.update({"dataset": dataset_dir.name, "config": "2d", "trainer": TINY})
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    info = json.loads((dataset_dir / "inference_information.json").read_text())
    chosen = info["best_model_or_ensemble"]
    members = " + ".join(f"`{m['trainer']}__{m['plans_identifier']}__{m['configuration']}`"
                         for m in chosen["selected_model_or_models"])
    text = "\n".join(str(m.value) for m in at.markdown)
    assert f"(find_best_configuration, folds 0, 1):** {members}" in text
    results = next(df.value for df in at.dataframe if "Model or ensemble" in df.value.columns)
    assert dict(zip(results["Model or ensemble"], results["CV Dice"])) == {
        name: fmt_dice(dice) for name, dice in info["all_results"].items()}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["CV Dice"] == fmt_dice(chosen["result_on_crossval_pre_pp"])
    assert metrics["CV Dice after postprocessing"] == fmt_dice(chosen["result_on_crossval_post_pp"])
    instructions = (dataset_dir / "inference_instructions.txt").read_text()
    commands = "\n".join(line.strip() for line in instructions.splitlines() if line.startswith("nnUNetv2_"))
    assert commands in [c.value for c in at.code]
    # Folds 0 and 1 are finished and validated with --npz; the split's folds 2-4 are not trained, so find-best
    # over the whole split stays disabled, naming them, and is enabled for folds 0 and 1.
    files = next(df.value for df in at.dataframe if "Files" in df.value.columns)
    assert set(files.set_index("Fold").loc[["0", "1"], "Files"]) == {"validated with --npz (2 cases)"}
    button = at.button(key="steps_cmp_find_best")
    assert button.disabled and "fold 2: not trained" in button.help and "fold 0" not in button.help
    at.multiselect(key="steps_cmp_fb_folds").set_value(["0", "1"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.button(key="steps_cmp_find_best").disabled
