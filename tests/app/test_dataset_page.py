"""The Datasets page and the run page's real validation under AppTest, over the fixture tree (garbled and empty
folds included), and the 'only the columns that differ' rule."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import streamlit as st
from app_support import DATASET, FixtureTree, build_fixture_tree
from paths import REPO
from streamlit.testing.v1 import AppTest

from app.dashboard.dataset_table import only_differing

MAIN = str(REPO / "app" / "dashboard" / "main.py")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureTree]:
    built = build_fixture_tree(tmp_path_factory.mktemp("dataset"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in built.env.items():
            patch.setenv(key, value)
        patch.delenv("NNWATCH_USERS_FILE", raising=False)
        yield built
    st.cache_resource.clear()
    st.cache_data.clear()


def _page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=90)
    at.run()
    at.query_params.update(query)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e for e in at.error if "Could not" in str(e.value)], [e.value for e in at.error]
    return at


def test_dataset_page_shows_the_cross_validation_table(tree: FixtureTree) -> None:
    at = _page("views/dataset.py", dataset=DATASET)
    wins = next(df.value for df in at.dataframe if "CV Dice (mean ± SD)" in df.value.columns)
    assert list(wins["Trainer"]) == ["nnUNetTrainer"] and wins.iloc[0]["Folds validated"] == "2 of 5"
    assert wins.iloc[0]["Case by case vs highest"] == "highest CV Dice"
    folds = next(df.value for df in at.dataframe if "Validation" in df.value.columns)
    states = dict(zip(folds["Fold"], folds["Validation"]))
    assert states["0"] == "✓ validated" and states["1"] == "✓ validated"
    assert states["2"] == states["3"] == states["4"] == "– no validation"  # running, empty, garbled
    assert list(folds["Cases"].iloc[2:5]) == ["–"] * 3  # a dash like every other unknown, never "None"
    assert folds.iloc[5]["Fold"] == "mean ± SD (2 folds)" and folds.iloc[6]["Cases"] == "16"
    # the side-by-side table and the fold table state the spread of the same folds the same way as the overview
    shown = wins.iloc[0]["CV Dice (mean ± SD)"]
    assert shown == folds.iloc[5]["Foreground Dice"]
    mean, sd = (float(part) for part in shown.split(" ± "))
    dice = [float(folds.iloc[i]["Foreground Dice"]) for i in (0, 1)]
    assert mean == pytest.approx(sum(dice) / 2, abs=1e-4) and sd == pytest.approx(abs(dice[0] - dice[1]) / 2 ** 0.5,
                                                                                 abs=2e-4)
    assert any("Not in the mean: fold(s) 2, 3, 4" in str(w.value) for w in at.warning)


def test_dataset_page_of_a_v1_task(tree: FixtureTree) -> None:
    at = _page("views/dataset.py", dataset="Task003_Liver")
    folds = next(df.value for df in at.dataframe if "Validation" in df.value.columns)
    assert dict(zip(folds["Fold"], folds["Validation"]))["0"] == "✓ validated"


def test_run_page_shows_real_validation_and_the_extension_verdict(tree: FixtureTree) -> None:
    at = _page("views/run.py", id=tree.improving)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Real validation Dice"] != "–" and metrics["Gap (real − pseudo)"].startswith(("+", "−"))
    assert any("than the last pseudo Dice because" in str(c.value) for c in at.caption)
    parent = _page("views/run.py", id=tree.parent)
    assert any("Only pseudo Dice to compare" in str(i.value) for i in parent.info)  # its extension still trains


def test_only_differing_keeps_what_tells_rows_apart() -> None:
    frame = pd.DataFrame({"Trainer": ["A", "B"], "Plans": ["P", "P"], "Config": ["2d", "2d"],
                          "CV Dice (mean ± SD)": ["0.8", "0.9"], "Epochs": ["1000", "1000"], "model": ["a", "b"]})
    assert list(only_differing(frame).columns) == ["Trainer", "CV Dice (mean ± SD)", "model"]
    same_trainer = frame.assign(Trainer="A", Epochs=["1000", "2000"])
    assert list(only_differing(same_trainer).columns) == ["Trainer", "Plans", "Config", "CV Dice (mean ± SD)",
                                                          "Epochs", "model"]
