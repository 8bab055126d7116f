"""The run and Compare pages, read as rendered text under AppTest: provisional verdicts marked, no cost or
recommendation before a schedule ends, every "no" with its reason, and the one comparison statement."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_support import FixtureTree, build_fixture_tree, dashboard_env, open_page, page_texts
from streamlit.testing.v1 import AppTest

from monitor.analyze import analyze_run, compare_runs, verdict_label

TIMEOUT = 60


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FixtureTree]:
    built = build_fixture_tree(tmp_path_factory.mktemp("verdicts"))
    with dashboard_env(built.env):
        yield built


def _page(page: str | None = None, **query: str) -> AppTest:
    at = open_page(page, timeout=TIMEOUT, **query)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_running_run_shows_a_provisional_verdict_without_cost_or_recommendation(tree: FixtureTree) -> None:
    at = _page("views/run.py", id=tree.running)
    text = page_texts(at)
    label = verdict_label(analyze_run(tree.root / tree.running))
    assert label.endswith("(so far)")
    assert f"{label}**" in text  # the badge says what the PNG badge says
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cost of 2000 epochs"] == "after the schedule ends"
    assert metrics["Recommended schedule"] == "not decided yet"
    assert "GPU-h" not in " ".join(str(v) for v in metrics.values())


def test_a_finished_run_gives_a_reason_for_every_no(tree: FixtureTree) -> None:
    at = _page("views/run.py", id=tree.plateau)
    table = next(df.value for df in at.dataframe if "worth it" in df.value.columns)
    answers = list(table["worth it"])
    assert answers and all(a == "yes" or (a.startswith("no: ") and len(a) > 10) for a in answers), answers
    assert not any(v.startswith(("-0", "\u22120 ", "+0.000")) for v in table["projected gain"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Recommended schedule"] in ("no longer run",) or metrics["Recommended schedule"].endswith(" ep")


def test_the_compare_banner_states_the_rule_and_the_same_answer_as_the_json(tree: FixtureTree) -> None:
    at = _page("views/compare.py", parent=tree.parent, child=tree.extended)
    text = page_texts(at)
    expected = compare_runs(tree.root / tree.parent, tree.root / tree.extended)
    assert expected.question.startswith("Is the extended run on track")  # the extension is still training
    assert f"**{expected.question}** {expected.statement}" in text
    assert "Comparison rule: **end of schedule**" in text
    table = next(df.value for df in at.dataframe if "Fold" in df.value.columns)
    assert table.iloc[-1]["Fold"] == "mean ± SD" and " ± " in table.iloc[-1]["Best EMA"]
    assert all(str(link).startswith("run?id=") for link in table["Run"].iloc[:-1])
