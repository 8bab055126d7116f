"""A first start of the dashboard's store on an empty run index reads the runs in worker processes, through the
index, and shows exactly the table a store without an index shows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from index_support import mixed_tree

from app.dashboard.store import RunStore
from monitor.index import RunIndex

_CLOCK_COLUMNS = ["eta_s", "eta"]  # a running run's ETA moves with the clock between the two reads


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("cold") / "results"
    return root, mixed_tree(root, 36)


def _table(store: RunStore) -> pd.DataFrame:
    return store.table().drop(columns=_CLOCK_COLUMNS).set_index("run_id").sort_index()


def test_a_cold_start_through_workers_gives_the_table_of_a_plain_read(tree: tuple[Path, dict[str, str]],
                                                                      tmp_path: Path) -> None:
    root, intended = tree
    plain = RunStore(root)
    try:
        expected = _table(plain)
    finally:
        plain.close()
    index = RunIndex(tmp_path / "index.sqlite3")
    cold = RunStore(root, index=index)
    try:
        # read by the workers into the index before anything was shown (the store's own saving waits for a
        # first table and a save period: it cannot have stored them yet)
        assert index.info().runs == len(intended)
        assert cold.progress == (len(intended), len(intended))
        table = _table(cold)
    finally:
        cold.close()
    pd.testing.assert_frame_equal(table, expected)
    assert dict(table["status"]) == intended
    assert set(table["stop_cause"].dropna()) and table["verdict"].nunique() >= 3  # not a table of blanks
