"""The overview's tables, as plain pandas: filters, the runs table as shown, and the fold-group summary.

No Streamlit here, so the benchmark and tests can call it directly and ``st.cache_data`` can key it on
the store's version. Display frames use short column names and human text (``812 / 1000``, ``3 h 10
min``) because that is what a lab member scans; the raw numbers stay available in the CSV download.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pandas as pd

from monitor.analyze import mean_sd
from monitor.stops import StopCause

__all__ = [
    "DEFAULT_PLANS",
    "STATUS_LABELS",
    "VERDICT_LABELS",
    "Filters",
    "ModelGroup",
    "apply_filters",
    "fmt_duration",
    "group_of_row",
    "groups_frame",
    "model_groups",
    "model_key",
    "run_link",
    "runs_frame",
    "runs_of",
]

STATUS_LABELS = {
    "running": "▶ running", "stalled": "⏸ stalled", "crashed": "✗ crashed", "finished": "✓ finished",
    "unknown": "? unknown",
}
VERDICT_LABELS = {
    "improving": "↗ improving", "plateau": "→ plateau", "declining": "↘ declining",
    "insufficient_data": "… too early to say",
}
_FOLD_MARK = {"finished": "✓", "running": "▶", "stalled": "⏸", "crashed": "✗", "unknown": "?"}
_FILTER_FIELDS = ("dataset", "configuration", "trainer", "status", "verdict")


DEFAULT_PLANS = "nnUNetPlans"


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def model_key(root: str, model_folder: str) -> str:
    """The Datasets page's name of a model folder: ``<root label>/<Trainer>__<Plans>__<configuration>`` where several
    results roots are served (``root`` is then the label), the folder's name alone with one."""
    return f"{root}/{model_folder}" if root else model_folder


@dataclass(frozen=True, order=True)
class ModelGroup:
    """One trained model's group of folds: ``<dataset>/<trainer>__<plans>__<configuration>/fold_*`` in one
    results root. ``root`` is the root's label where several roots are served, "" with one root.

    Every view that groups folds (the overview's group table, Compare, the dataset PNG, next steps) groups by
    this, so that two plans of one trainer, or one model found in two roots, are never mixed."""

    dataset: str
    configuration: str
    trainer: str
    plans: str = DEFAULT_PLANS
    root: str = ""

    @property
    def trainer_label(self) -> str:
        """The trainer, with its plans where they are not nnU-Net's default (``Trainer · Plans``)."""
        return self.trainer if self.plans in (DEFAULT_PLANS, "") else f"{self.trainer} · {self.plans}"

    @property
    def label(self) -> str:
        """``Dataset · configuration · trainer[ · plans][ · root]``, as a picker shows the group."""
        return " · ".join([self.dataset, self.configuration, self.trainer_label, *([self.root] if self.root else [])])

    @property
    def name(self) -> str:
        """A file-name stem for downloads: every part, so that two groups never share a name."""
        return "_".join([self.dataset, self.configuration, self.trainer, self.plans, *([self.root] if self.root
                                                                                        else [])])

    def query(self) -> dict[str, str]:
        """The Compare page's URL parameters for this group."""
        out = {"dataset": self.dataset, "config": self.configuration, "trainer": self.trainer, "plans": self.plans}
        if self.root:
            out["root"] = self.root
        return out

    def members(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of a run table that belong to this group."""
        if table.empty:
            return table
        return table[[group == self for group in model_groups(table)]]


def _row_keys(table: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Each row's (dataset, configuration, trainer, plans, root), as they are in the table."""
    roots = table["root"].tolist() if "root" in table.columns else [""] * len(table)
    plans = table["plans"].tolist() if "plans" in table.columns else [DEFAULT_PLANS] * len(table)
    return list(zip(table["dataset"].tolist(), table["configuration"].tolist(), table["trainer"].tolist(), plans,
                    roots))


def _group_of(key: tuple[Any, ...]) -> ModelGroup:
    return ModelGroup(*(_text(part) for part in key))


def model_groups(table: pd.DataFrame) -> list[ModelGroup]:
    """Each row's :class:`ModelGroup`, in row order (the ``root`` column, present with several roots, sets its
    root)."""
    made: dict[tuple[Any, ...], ModelGroup] = {}
    return [made[key] if key in made else made.setdefault(key, _group_of(key)) for key in _row_keys(table)]


def group_of_row(row: pd.Series) -> ModelGroup:
    """The group of a row of :func:`groups_frame` (as a selection on the overview gives it back)."""
    return ModelGroup(_text(row["Dataset"]), _text(row["Config"]), _text(row["trainer"]), _text(row["plans"]),
                      _text(row.get("Root", "")))


_PLAIN_ID = re.compile(r"[A-Za-z0-9_.~/-]*")


def run_link(run_id: str) -> str:
    """The shareable, relative URL of a run's page (``run?id=<url-encoded id>``)."""
    if _PLAIN_ID.fullmatch(run_id):  # the usual id: only its slashes need encoding (quote is slow per row)
        return "run?id=" + run_id.replace("/", "%2F")
    return "run?id=" + quote(run_id, safe="")


def fmt_duration(seconds: float | None) -> str:
    """``2 d 4 h``, ``3 h 12 min``, ``7 min``; empty for unknown."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return ""
    minutes = int(round(seconds / 60.0))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{max(minutes, 1)} min" if seconds > 0 else "0 min"


@dataclass
class Filters:
    """The overview's filters; they round-trip through the URL query string (lists as comma lists)."""

    dataset: list[str] = field(default_factory=list)
    configuration: list[str] = field(default_factory=list)
    trainer: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)
    q: str = ""

    @classmethod
    def from_query(cls, params: Mapping[str, Any]) -> Filters:
        values: dict[str, Any] = {}
        for name in _FILTER_FIELDS:
            raw = params.get(name)
            if isinstance(raw, list):
                raw = ",".join(raw)
            values[name] = [part for part in (raw or "").split(",") if part]
        q = params.get("q") or ""
        return cls(q=q if isinstance(q, str) else str(q[-1]), **values)

    def to_query(self) -> dict[str, str]:
        """Only the filters that are set, so an unfiltered overview has a clean URL."""
        out = {name: ",".join(getattr(self, name)) for name in _FILTER_FIELDS if getattr(self, name)}
        if self.q:
            out["q"] = self.q
        return out

    @property
    def active(self) -> bool:
        return bool(self.to_query())


def apply_filters(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows that match every set filter; ``q`` is a case-insensitive substring of the run id."""
    if table.empty:
        return table
    mask = pd.Series(True, index=table.index)
    for name in _FILTER_FIELDS:
        wanted = getattr(filters, name)
        if wanted and name in table.columns:
            mask &= table[name].astype(str).isin(wanted)
    if filters.q:
        mask &= table["run_id"].str.contains(filters.q, case=False, regex=False)
    return table[mask]


def _job_text(jobs: Iterable[Any], run_id: str) -> str:
    """The newest job touching a run: ``extend job 3fa2… running`` or ``extension of … (job …)``."""
    for job in jobs:  # newest first
        if job.parent_run_id == run_id:
            return f"{job.state.value}: → {job.epochs} ep ({job.job_id})"
        if job.new_run_id == run_id:
            return f"extension, job {job.job_id} {job.state.value}"
    return ""


def _column(table: pd.DataFrame, name: str, default: Any = None) -> pd.Series:
    return table[name] if name in table.columns else pd.Series(default, index=table.index)


def _dice_text(values: pd.Series) -> pd.Series:
    """Dice as fixed-width text ("0.8123", "–" where unknown): the table shows a dash, not "None", for a
    run without epochs yet, and fixed width keeps a click on the header sorting by value."""
    return pd.Series([f"{v:.4f}" if math.isfinite(v) else "–" for v in _floats(values)], index=values.index,
                     dtype=object)


def _floats(values: pd.Series) -> list[float]:
    """The column as plain floats, NaN for anything missing or not a number."""
    return pd.to_numeric(values, errors="coerce").astype("float64").tolist()  # type: ignore[no-any-return]


def _verdict_text(verdict: str, label: Any) -> str:
    """The verdict's icon and the analyzer's words for it (``↗ improving (so far)``), as every view says them."""
    icon = VERDICT_LABELS.get(verdict, verdict).split(" ", 1)[0]
    if isinstance(label, str) and label:
        return f"{icon} {label}"
    return VERDICT_LABELS.get(verdict, verdict)


def runs_frame(table: pd.DataFrame, jobs_by_run: Mapping[str, list[Any]] | None = None) -> pd.DataFrame:
    """One display row per run, in the overview's column order."""
    jobs_by_run = jobs_by_run or {}
    if table.empty:
        return pd.DataFrame(columns=["Open", "Dataset", "Config", "Trainer", "Fold", "Status", "Epoch",
                                     "ETA", "Last EMA", "Best EMA", "Verdict", "Why", "Stopped by", "Job",
                                     "run_id"])
    # Plain lists, not pandas' per-element calls: this runs on every new store version over every run.
    done = _floats(_column(table, "epochs_completed"))
    planned = _floats(_column(table, "planned_epochs"))
    epoch_text = [f"{int(d) if d == d else 0} / {int(p) if p == p else '?'}" for d, p in zip(done, planned)]
    verdicts = _column(table, "verdict", "").fillna("")
    frame = pd.DataFrame({
        "Open": [run_link(r) for r in table["run_id"]],
        "Dataset": table["dataset"],
        "Config": table["configuration"],
        "Trainer": [t + (" (v1)" if v == "v1" else "") for t, v in zip(table["trainer"].tolist(), _column(
            table, "nnunet_version", "").tolist())],
        "Fold": table["fold"].astype(str),
        "Status": [STATUS_LABELS.get(s, s) for s in table["status"].tolist()],
        "Epoch": epoch_text,
        "ETA": [fmt_duration(v) for v in _column(table, "eta_s").tolist()],
        "Last EMA": _dice_text(_column(table, "last_ema_fg_dice")),
        "Best EMA": _dice_text(_column(table, "best_ema_fg_dice")),
        "Verdict": [_verdict_text(v, w) for v, w in zip(verdicts, _column(table, "verdict_label", None))],
        "Why": [_start_of(reason) for reason in _column(table, "verdict_reason", "").fillna("").tolist()],
        "Stopped by": [_stop_label(v) for v in _column(table, "stop_cause").tolist()],
        "Job": [_job_text(jobs_by_run.get(r, []), r) for r in table["run_id"]],
        "run_id": table["run_id"],
    })
    if "root" in table.columns:  # several results roots: where each run lives
        frame.insert(1, "Root", table["root"].tolist())
    return _dictionary_encoded(frame, unique=("Open", "run_id")).reset_index(drop=True)


def runs_of(runs: pd.DataFrame, run_ids: Collection[str]) -> pd.DataFrame:
    """The rows of :func:`runs_frame` for ``run_ids`` (distinct ids of its runs), in its order; their texts only,
    so a filtered table does not carry every run's texts to the browser. Every run is ``runs`` itself, without a
    lookup: an unfiltered overview asks at every live refresh."""
    if len(run_ids) == len(runs):
        return runs
    rows = runs[runs["run_id"].isin(set(run_ids))].reset_index(drop=True)
    texts = [c for c in rows.columns if isinstance(rows[c].dtype, pd.CategoricalDtype)]
    return rows.assign(**{c: rows[c].cat.remove_unused_categories() for c in texts})


def _dictionary_encoded(frame: pd.DataFrame, unique: tuple[str, ...] = ()) -> pd.DataFrame:
    """``frame`` with its text columns, but those named ``unique``, as pandas categoricals: they travel to the
    browser as Arrow dictionaries, so a text that repeats over thousands of rows is sent once."""
    texts = [c for c in frame.columns if c not in unique and pd.api.types.is_string_dtype(frame[c])]
    return frame.astype(dict.fromkeys(texts, "category"))


#: The runs table shows the start of the analyzer's reason (its column shows about 30 characters); the overview
#: prints a selected run's reason whole. Sent whole, the reasons would be most of the table's payload.
_WHY_CHARS = 100


def _start_of(reason: str) -> str:
    if len(reason) <= _WHY_CHARS:
        return reason
    cut = reason.rfind(" ", 0, _WHY_CHARS)
    return reason[:cut if cut > 0 else _WHY_CHARS] + " …"


def _stop_label(value: Any) -> str:
    """The stop cause's human name for a stopped run; empty for the others."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return StopCause(value).label
    except ValueError:
        return value


def _fold_key(fold: str) -> tuple[int, str]:
    return (int(fold), "") if str(fold).isdigit() else (10_000, str(fold))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def groups_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per :class:`ModelGroup` (with a "Root" column where several roots are served): its folds at a
    glance and how many are done. ``trainer`` and ``plans`` (not shown) give the row's group back.

    Plain Python over the columns (one pass, then one row per group): thousands of runs in milliseconds."""
    several_roots = "root" in table.columns
    columns = ["Dataset", "Config", "Trainer", *(["Root"] if several_roots else []), "Folds", "Finished", "Running",
               "Crashed", "Best EMA (mean ± SD)", "Verdicts", "trainer", "plans"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    folds_of = table["fold"].astype(str).tolist()
    status_of = table["status"].tolist()
    best_of = pd.to_numeric(table["best_ema_fg_dice"], errors="coerce").tolist()
    verdict_of = table["verdict"].tolist() if "verdict" in table.columns else [None] * len(table)
    by_key: dict[tuple[Any, ...], list[int]] = {}
    for position, row_key in enumerate(_row_keys(table)):
        by_key.setdefault(row_key, []).append(position)
    members: dict[ModelGroup, list[int]] = {}
    for row_key, positions in by_key.items():  # a missing value and its text ("") are one group
        members.setdefault(_group_of(row_key), []).extend(positions)
    rows = []
    for key in sorted(members):
        group = members[key]
        ordered = sorted(((folds_of[i], status_of[i]) for i in group), key=lambda item: _fold_key(item[0]))
        folds = "  ".join(f"{fold}{_FOLD_MARK.get(status, '?')}" for fold, status in ordered)
        best = [b for b in (best_of[i] for i in group) if not _missing(b)]
        counts = Counter(verdict_of[i] for i in group if not _missing(verdict_of[i]))
        verdict_text = ", ".join(f"{n} {VERDICT_LABELS.get(str(v), str(v)).split(' ', 1)[-1]}"
                                 for v, n in counts.most_common())
        numeric_folds = {f for f, _ in ordered if f.isdigit()}
        statuses = Counter(status for _, status in ordered)
        rows.append({
            "Dataset": key.dataset, "Config": key.configuration, "Trainer": key.trainer_label, "Root": key.root,
            "Folds": folds,
            "Finished": f"{statuses['finished']} / {max(5, len(numeric_folds))}" if numeric_folds
            else f"{statuses['finished']} / {len(group)}",
            "Running": statuses["running"],
            "Crashed": statuses["crashed"],
            "Best EMA (mean ± SD)": mean_sd(best),
            "Verdicts": verdict_text,
            "trainer": key.trainer, "plans": key.plans,
        })
    return _dictionary_encoded(pd.DataFrame(rows, columns=columns))
