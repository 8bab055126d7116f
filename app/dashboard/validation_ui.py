"""Real validation on the dashboard: the run page's section, the case-by-case comparison of two runs, and the
cross-validation table of a configuration (the Datasets page draws it).

Everything shown is read by :mod:`monitor.validation`; results are cached per store version, so a new epoch or a
new ``summary.json`` recomputes them and nothing else does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.dashboard import resources
from app.dashboard.downloads import csv_button, safe_name
from app.dashboard.lineage import known_pairs
from app.dashboard.store import RunStore, RunSummary
from app.dashboard.tables import ModelGroup, model_key
from app.dashboard.ui import fmt_dice, status_text
from monitor.analyze import signed, spread
from monitor.validation import (
    CheckpointUsed,
    CrossValidation,
    FoldState,
    PairedVerdict,
    RunValidation,
    ValidationComparison,
    ValidationStatus,
    compare_model_folders,
    compare_runs,
    crossval_table,
    nnunet_crossval_stamp,
    pseudo_gap_sentence,
    read_run_validation,
    validation_folder,
)
from trainer import validated_with_best

__all__ = ["case_by_case_section", "compare_page_section", "comparison", "crossval_link", "crossval_section",
           "cv_table",
           "run_validation_section"]

_STATE_TEXT = {FoldState.VALIDATED: "✓ validated", FoldState.STALE: "⚠ stale", FoldState.UNVALIDATED: "– no validation",
               FoldState.UNREADABLE: "✗ unreadable", FoldState.MISSING: "missing"}


# The store's version is part of each cache key, so a new epoch or a new summary.json recomputes the result.
@st.cache_data(show_spinner=False, max_entries=256)
def _cached_validation(run_dir: str, version: str, stamp: int, summary_mtime: float | None,
                       val_best: bool | None) -> RunValidation:
    del stamp, summary_mtime
    return read_run_validation(run_dir, nnunet_version=version, val_best=val_best)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _validation(run_dir: str, version: str, stamp: int) -> RunValidation:
    """The run's validation, with what nnwatch's own jobs know about ``--val_best`` (the files cannot tell)."""
    summary_mtime = _mtime(validation_folder(Path(run_dir), version) / "summary.json")
    source = resources.jobs()
    val_best = validated_with_best(source.jobs(), run_dir, summary_mtime) if source is not None else None
    return _cached_validation(run_dir, version, stamp, summary_mtime, val_best)


@st.cache_data(show_spinner="Comparing the two runs case by case…", max_entries=128)
def comparison(first: str, second: str, folds: bool, stamp: int) -> ValidationComparison:
    """The case-by-case comparison of two runs, or of two model folders over their shared folds."""
    del stamp
    return (compare_model_folders if folds else compare_runs)(first, second)


@st.cache_data(show_spinner=False, max_entries=128)
def _cached_cv_table(model_dir: str, stamp: int, theirs: tuple[tuple[str, int], ...]) -> CrossValidation:
    del stamp, theirs
    return crossval_table(model_dir)


def cv_table(model_dir: str, stamp: int) -> CrossValidation:
    """The cross-validation table, rebuilt on a new store version and when nnU-Net accumulates its own results
    (``crossval_results_folds_*``, written by find_best_configuration, are not runs the store watches)."""
    return _cached_cv_table(model_dir, stamp, nnunet_crossval_stamp(model_dir))


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "–" if ci is None else f"{signed(ci[0])} to {signed(ci[1])}"


def _verdict_box(result: ValidationComparison) -> Any:
    return {PairedVerdict.BETTER: st.success, PairedVerdict.WORSE: st.error}.get(result.verdict, st.info)


def case_by_case_section(store: RunStore, first_id: str, second_id: str, *, key: str, folds: bool = False) -> None:
    """The paired, case-by-case verdict of ``second`` against ``first`` (runs, or model folders with ``folds``)."""
    first = store.location(first_id)
    second = store.location(second_id)
    if first is None or second is None:
        return
    a, b = (first.path.parent, second.path.parent) if folds else (first.path, second.path)
    try:
        result = comparison(str(a), str(b), folds, store.version)
    except ValueError as exc:
        st.info(f"No case-by-case comparison: {exc}.", icon=":material/info:")
        return
    if result.verdict is PairedVerdict.UNAVAILABLE:
        st.info(result.reason, icon=":material/query_stats:")
        return
    _verdict_box(result)(f"**Case by case, real validation:** {result.reason}", icon=":material/query_stats:")
    r = result.result
    cols = st.columns(4)
    cols[0].metric("Shared cases", r.cases, help=f"in fold(s) {', '.join(result.folds)}; "
                   f"{result.first_only + result.second_only} case(s) scored by only one run left out")
    cols[1].metric("Mean difference", signed(r.mean_difference, 4),
                   help=f"{result.second_label} minus {result.first_label}, foreground mean Dice per case")
    cols[2].metric("95 % interval", _fmt_ci(r.ci95),
                   help=f"paired bootstrap over the cases, {r.resamples} resamples, seed {r.seed}")
    cols[3].metric("Better / worse", f"{r.better} / {r.worse}", help=f"cases; {r.ties} tied")
    rows = [{"Class": c.name, "Mean difference": signed(c.result.mean_difference, 4),
             "95 % CI": _fmt_ci(c.result.ci95), "Better": c.result.better, "Worse": c.result.worse,
             "Cases": c.result.cases, "Verdict": c.result.verdict.value.replace("_", " ")} for c in result.per_class]
    if len(result.per_fold) > 1:
        rows += [{"Class": f"fold {f.fold} (foreground)", "Mean difference": signed(f.result.mean_difference, 4),
                  "95 % CI": _fmt_ci(f.result.ci95), "Better": f.result.better, "Worse": f.result.worse,
                  "Cases": f.result.cases, "Verdict": f.result.verdict.value.replace("_", " ")}
                 for f in result.per_fold]
    frame = pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_table")
    csv_button(frame, safe_name(f"case_by_case_{first_id}_{second_id}"), key=f"{key}_csv")


def _extension_pairs(store: RunStore, run_id: str) -> list[tuple[str, str]]:
    return [(parent, child) for parent, child, _ in known_pairs(store) if run_id in (parent, child)]


def _status_marks(validation: RunValidation) -> None:
    if validation.status is ValidationStatus.MISSING:
        st.info(validation.reason, icon=":material/hourglass_empty:")
    elif validation.status is ValidationStatus.UNREADABLE:
        st.error(validation.reason, icon=":material/broken_image:")
    elif validation.status is ValidationStatus.STALE:
        st.warning(f"**Stale validation.** {validation.reason}", icon=":material/history:")
    if validation.checkpoint is CheckpointUsed.BEST:
        st.warning(f"**Validated with checkpoint_best**, not the final checkpoint: {validation.checkpoint_evidence}.",
                   icon=":material/star:")
    if validation.summary is not None:
        for flag in validation.summary.flags:
            st.caption(f"⚠ {flag}")


def _class_rows(validation: RunValidation, frame: pd.DataFrame | None) -> pd.DataFrame:
    assert validation.summary is not None
    rows = []
    for k, metrics in enumerate(validation.summary.classes):
        column = f"dice_{k + 1}"
        pseudo = float(frame[column].iloc[-1]) if frame is not None and len(frame) and column in frame else math.nan
        rows.append({"Class": validation.label(metrics.key), "Real Dice": fmt_dice(metrics.dice),
                     "IoU": fmt_dice(metrics.iou), "Pseudo Dice (last epoch)": fmt_dice(pseudo),
                     "Gap": "–" if not math.isfinite(pseudo) or not math.isfinite(metrics.dice)
                     else signed(metrics.dice - pseudo, 4)})
    return pd.DataFrame(rows)


def _case_rows(validation: RunValidation) -> pd.DataFrame:
    assert validation.summary is not None
    keys = validation.summary.keys
    rows = [{"case": case.name, "foreground": case.foreground_dice,
             **{validation.label(k): case.dice(k) for k in keys}} for case in validation.summary.cases]
    return pd.DataFrame(rows)


def run_validation_section(store: RunStore, run_id: str, summary: RunSummary, frame: pd.DataFrame | None) -> None:
    """The run page's real validation: Dice next to the final pseudo Dice, its state, and extension verdicts."""
    location = store.location(run_id)
    if location is None:
        return
    st.subheader("Real validation")
    validation = _validation(str(location.path), location.nnunet_version, store.version)
    _status_marks(validation)
    if validation.summary is not None:
        real = validation.summary.foreground_dice
        pseudo = summary.last_mean_fg_dice
        cols = st.columns(4)
        cols[0].metric("Real validation Dice", fmt_dice(real), help="nnU-Net's foreground mean over the validation "
                       f"cases (validation/summary.json, {validation.cases} cases)")
        cols[1].metric("Final pseudo Dice", fmt_dice(pseudo),
                       help=f"Last epoch's mean pseudo Dice; its EMA was {fmt_dice(summary.last_ema_fg_dice)}")
        cols[2].metric("Gap (real − pseudo)", "–" if pseudo is None or not math.isfinite(real)
                       else signed(real - pseudo, 4))
        npz = (f"{validation.npz_files} of {validation.cases}" if validation.npz_files else "none")
        cols[3].metric("Checkpoint · npz", f"{validation.checkpoint.value} · {npz}",
                       help=f"{validation.checkpoint_evidence}. Ensembling and nnUNetv2_find_best_configuration "
                       "need the npz probabilities of every case (nnUNetv2_train … --val --npz writes them).")
        st.caption(pseudo_gap_sentence(real, pseudo))
        st.dataframe(_class_rows(validation, frame), hide_index=True, width="content", key="val_classes")
        with st.expander(f"Per-case Dice ({validation.cases} cases)"):
            cases = _case_rows(validation)
            st.dataframe(cases, hide_index=True, width="stretch", key="val_cases")
            csv_button(cases, f"{safe_name(run_id)}_validation_cases", key="val_cases_csv")
    st.page_link("views/dataset.py", label=f"Cross-validation table of {location.trainer} · {location.configuration}",
                 icon=":material/table_view:",
                 query_params={"dataset": location.dataset, "model": location.path.parent.name})
    for parent, child in _extension_pairs(store, run_id):
        other = parent if child == run_id else child
        role = "its parent" if child == run_id else "its extension"
        st.markdown(f"**Against {role}** `{other}`")
        case_by_case_section(store, parent, child, key=f"ext_{safe_name(other)}")


def _fold_rows(store: RunStore, table: CrossValidation, run_ids: dict[str, str]) -> pd.DataFrame:
    rows = []
    for fold in table.folds:
        summary = fold.summary
        run = store.summary(run_ids[fold.fold]) if fold.fold in run_ids else None
        validation = fold.validation
        row: dict[str, Any] = {
            "Fold": fold.fold, "Training": status_text(run.status) if run is not None else "–",
            "Validation": _STATE_TEXT[fold.state] + (" (best ckpt)" if validation is not None and summary is not None
                                                      and validation.checkpoint is CheckpointUsed.BEST else ""),
            "Cases": str(len(summary.cases)) if summary is not None else "–",
            "Foreground Dice": fmt_dice(summary.foreground_dice if summary is not None else None)}
        for key in table.keys:
            row[table.label(key)] = fmt_dice(summary.class_dice(key) if summary is not None else None)
        row["npz"] = f"{validation.npz_files}" if validation is not None and summary is not None else "–"
        rows.append(row)
    stats = (table.foreground, *table.per_class)

    def summary_row(name: str, values: dict[str, str]) -> dict[str, Any]:
        return {"Fold": name, "Training": "", "Validation": "", "Cases": "", **values, "npz": ""}

    folds = table.foreground.folds
    rows.append(summary_row(f"mean ± SD ({folds} fold{'' if folds == 1 else 's'})", {
        ("Foreground Dice" if s.key == "foreground" else table.label(s.key)):
            spread(s.mean, s.sd, s.folds) if s.folds > 1 else fmt_dice(s.mean) for s in stats}))
    rows.append(summary_row("pooled (all cases)", {
        ("Foreground Dice" if s.key == "foreground" else table.label(s.key)): fmt_dice(s.pooled) for s in stats}))
    rows[-1]["Cases"] = str(table.cases)
    return pd.DataFrame(rows)


def crossval_section(store: RunStore, model_dir: str) -> None:
    """The cross-validation table of one model folder, with the folds missing or unvalidated and nnU-Net's own
    accumulated results."""
    table = cv_table(model_dir, store.version)
    st.subheader(f"Cross-validation: {table.trainer} · {table.plans} · {table.configuration}")
    run_ids = {}
    for run_id in store.run_ids():
        location = store.location(run_id)
        if location is not None and str(location.path.parent) == model_dir:
            run_ids[location.fold] = run_id
    frame = _fold_rows(store, table, run_ids)
    st.dataframe(frame, hide_index=True, width="stretch", key="cv_table",
                 column_config={"Fold": st.column_config.TextColumn(width=170)})
    csv_button(pd.DataFrame(table.rows()), f"{safe_name(table.dataset)}_{safe_name(table.name)}_crossval",
               key="cv_csv")
    notes = []
    if table.missing:
        notes.append(f"missing fold(s): {', '.join(table.missing)} (train them for a complete 5-fold cross-validation)")
    if table.unvalidated:
        notes.append(f"not in the mean: fold(s) {', '.join(table.unvalidated)} (no current, readable validation)")
    if notes:
        text = "; ".join(notes)
        st.warning(text[0].upper() + text[1:] + ".", icon=":material/rule:")
    else:
        st.success(f"All {len(table.validated)} folds validated.", icon=":material/task_alt:")
    st.caption("Mean ± SD: over the folds' foreground Dice (how papers report cross-validation). Pooled: every "
               "validation case scored together, nnU-Net's rule in nnUNetv2_find_best_configuration.")
    for theirs in table.nnunet:
        box = st.success if theirs.agrees else (st.warning if theirs.agrees is False else st.info)
        box(f"nnU-Net's `{theirs.folder.name}`: {theirs.note}.", icon=":material/fact_check:")
    links = sorted(run_ids.items())
    for col, (fold, run_id) in zip(st.columns(max(len(links), 1)), links):
        col.page_link("views/run.py", label=f"Open fold {fold}", icon=":material/monitoring:",
                      query_params={"id": run_id})


def compare_page_section(store: RunStore, first_id: str, second_id: str) -> None:
    """Compare's case-by-case section: the two runs, and their configurations over every fold both validated."""
    st.subheader("Case by case, on the real validation")
    case_by_case_section(store, first_id, second_id, key="cmp_cases")
    first, second = store.location(first_id), store.location(second_id)
    if first is None or second is None or first.path.parent == second.path.parent:
        return
    with st.expander("Over all folds of the two configurations"):
        case_by_case_section(store, first_id, second_id, key="cmp_cases_folds", folds=True)


def crossval_link(store: RunStore, group: ModelGroup) -> None:
    """A link to the cross-validation table of an overview group, in the results root that holds it."""
    for run_id in store.run_ids():
        location = store.location(run_id)
        if (location is not None and store.label_of(run_id) == group.root and location.dataset == group.dataset
                and location.configuration == group.configuration and location.trainer == group.trainer
                and location.plans == group.plans):
            st.page_link("views/dataset.py", label="Cross-validation table", icon=":material/table_view:",
                         query_params={"dataset": group.dataset,
                                       "model": model_key(group.root, location.path.parent.name)})
            return
