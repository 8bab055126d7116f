"""nnU-Net's next steps on the run page and on Compare: buttons for the jobs, and find_best's result.

A run gets "Validate with --npz" (finished runs only; ``--val_best`` never without checkpoint_final.pth),
"Train fold N" for the folds its configuration is missing, and "Find best configuration". A configuration
on Compare gets its folds' files at a glance, the same buttons per fold, and find-best over the trainers,
plans and configurations the user picks: the button stays disabled, with the reasons, until every chosen fold
is finished and validated with ``--npz``. The result panel shows what nnU-Net wrote
(``inference_information.json``, ``inference_instructions.txt``) and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app.dashboard import resources
from app.dashboard.roots_store import group_root
from app.dashboard.steps_dialog import RESULT_KEY, StepRequest, open_step_dialog, render_step_dialog
from app.dashboard.store import RunStore
from app.dashboard.tables import ModelGroup
from app.dashboard.ui import fmt_dice, guard
from monitor.numbers import moment
from monitor.validation import BestConfigurationError, read_best_configuration
from trainer import (
    NPZ_WHY,
    FoldFiles,
    JobKind,
    expected_folds,
    fold_files,
    plan_find_best,
)

__all__ = ["best_configuration_panel", "configuration_next_steps", "run_next_steps"]


def _result_banner(context: str) -> None:
    result = st.session_state.get(RESULT_KEY)
    if not result or result.get("context") != context:
        return
    verb = "was already active" if result.get("existing") else "was created"
    st.success(f"{result['kind'].replace('_', ' ').capitalize()} job **{result['job_id']}** {verb}: {result['state']}"
               + (f" — {result['reason']}" if result.get("reason") else ""), icon=":material/rocket_launch:")
    st.page_link("views/jobs.py", label=f"Open job {result['job_id']} on the Jobs page",
                 icon=":material/work_history:", query_params={"job": result["job_id"]})


def _facts(files: FoldFiles) -> str:
    if not files.has_run:
        return "not trained"
    if not files.checkpoint_final:
        return "not finished (no checkpoint_final.pth)"  # still training, or stopped early
    if not files.validation_summary:
        return "finished, not validated"
    if not files.npz_complete:
        return f"validated, .npz for {files.npz_count} of {files.validation_cases} cases"
    return f"validated with --npz ({files.npz_count} cases)"


def _validate_why_not(files: FoldFiles) -> str | None:
    if not files.checkpoint_final:
        return ("Not finished: nnUNetv2_train --val needs checkpoint_final.pth. --val_best is not offered either: "
                "nnU-Net loads the final checkpoint before the best one and fails without it (nnU-Net issue #3056).")
    return None


def _open(request: StepRequest) -> None:
    open_step_dialog(request)
    st.rerun(scope="app")


def _fold_buttons(model_dir: Path, root: str | None, context: str, folds: tuple[str, ...], key: str) -> None:
    """One button per fold that needs a job: train the missing ones, validate the finished ones without npz."""
    missing = [fold for fold in folds if not fold_files(model_dir / f"fold_{fold}").has_run]
    unvalidated = [fold for fold in folds if (files := fold_files(model_dir / f"fold_{fold}")).checkpoint_final
                   and not files.npz_complete]
    cols = st.columns(max(1, len(missing) + len(unvalidated)) + 1)
    for col, fold in zip(cols, missing):
        if col.button(f"Train fold {fold}", key=f"{key}_train_{fold}", icon=":material/add_circle:",
                      help="nnUNetv2_train with this configuration's trainer and plans, --npz"):
            _open(StepRequest(JobKind.TRAIN_FOLD, str(model_dir), root, fold=fold, context=context))
    for col, fold in zip(cols[len(missing):], unvalidated):
        if col.button(f"Validate fold {fold} with --npz", key=f"{key}_validate_{fold}", icon=":material/fact_check:",
                      help=NPZ_WHY):
            _open(StepRequest(JobKind.VALIDATE, str(model_dir / f"fold_{fold}"), root, context=context))


def _find_best_controls(store: RunStore, dataset_dir: Path, trainer: str, configuration: str, plans: str,
                        key: str, context: str, root: Path) -> None:
    """find-best over the dataset's models; ``root`` is the results root that holds ``dataset_dir``."""
    table = store.table()
    here = table[table["dataset"] == dataset_dir.name]
    if "root" in here.columns:  # several roots: find-best runs in this one, over its own models only
        here = here[[store.root_of(run_id) == root for run_id in here["run_id"]]]
    trainers = sorted(set(here["trainer"].astype(str)) | {trainer})
    configurations = sorted(set(here["configuration"].astype(str)) | {configuration})
    all_plans = sorted(set(here["plans"].astype(str)) | {plans})
    cols = st.columns([2, 1.4, 1.2, 1.2])
    chosen_trainers = tuple(cols[0].multiselect("Trainers", trainers, default=[trainer], key=f"{key}_fb_trainers"))
    chosen_plans = tuple(cols[1].multiselect("Plans", all_plans, default=[plans], key=f"{key}_fb_plans",
                                             help="nnU-Net tries every trainer × plans × configuration chosen; "
                                                  "each one needs its folds trained and validated with --npz"))
    chosen_configs = tuple(cols[2].multiselect("Configurations", configurations, default=[configuration],
                                               key=f"{key}_fb_configs"))
    all_folds = expected_folds(dataset_dir.name)
    folds = tuple(cols[3].multiselect("Folds", all_folds, default=list(all_folds), key=f"{key}_fb_folds"))
    why = None
    try:
        plan = plan_find_best(dataset_dir, configurations=chosen_configs, trainers=chosen_trainers,
                              plans=chosen_plans, folds=folds or all_folds, root=root)
        why = None if plan.ok else "\n".join(f"- {problem}" for problem in plan.problems)
    except (ValueError, FileNotFoundError) as exc:
        why = str(exc)
    if st.button("Find best configuration", key=f"{key}_find_best", disabled=why is not None,
                 type="primary" if why is None else "secondary", icon=":material/emoji_events:",
                 help="nnUNetv2_find_best_configuration: picks the best model or ensemble from the "
                      "cross-validation and determines postprocessing" if why is None else why):
        _open(StepRequest(JobKind.FIND_BEST, str(dataset_dir), str(root), trainers=chosen_trainers,
                          configurations=chosen_configs, plans=chosen_plans, folds=folds or all_folds,
                          context=context))
    if why is not None:
        st.caption("**Find best configuration is not available yet:**\n" + why)


def best_configuration_panel(dataset_dir: Path) -> None:
    """find_best_configuration's result for a dataset, as nnU-Net wrote it (or why there is none)."""
    try:
        best = read_best_configuration(dataset_dir)
    except BestConfigurationError as exc:
        st.warning(f"**The find_best_configuration result cannot be read:** {exc}", icon=":material/warning:")
        return
    if best is None:
        st.caption(f"No find_best_configuration result for {dataset_dir.name} yet.")
        return
    what = "Ensemble" if best.is_ensemble else "Model"
    members = " + ".join(f"`{m.identifier}`" for m in best.selected)
    st.markdown(f"**Best {what.lower()} (find_best_configuration, folds {', '.join(best.folds)}):** {members}")
    cols = st.columns(3)
    cols[0].metric("CV Dice", fmt_dice(best.dice_before_postprocessing), help="Foreground mean Dice over the "
                   "cross-validation, before postprocessing")
    cols[1].metric("CV Dice after postprocessing", fmt_dice(best.dice_after_postprocessing))
    cols[2].metric("Written", moment(best.written_at))
    rows = sorted(best.all_results.items(), key=lambda item: -item[1])
    st.dataframe(pd.DataFrame({"Model or ensemble": [name for name, _ in rows],
                               "CV Dice": [fmt_dice(dice) for _, dice in rows],
                               "Chosen": ["✓" if name == best.best_identifier else "" for name, _ in rows]}),
                 hide_index=True, width="stretch")
    st.markdown("Inference, as nnU-Net wrote it (`inference_instructions.txt`):")
    st.code("\n".join(best.commands) or "(no inference_instructions.txt)", language="bash", wrap_lines=True)
    st.caption(f"Postprocessing: `{best.postprocessing_file}`")


def run_next_steps(run_id: str) -> None:
    """The run page's next-step buttons (and the dialog they open)."""
    store = resources.store()
    location = store.location(run_id) if store is not None else None
    if store is None or location is None:
        return
    with guard("show the next steps"):
        st.subheader("Next steps")
        if location.nnunet_version != "v2":
            st.caption("Next-step jobs run nnunetv2 and need an nnU-Net v2 run.")
            return
        context = f"run:{run_id}"
        _result_banner(context)
        files = fold_files(location.path)
        st.caption(f"This fold: {_facts(files)}.")
        why = _validate_why_not(files)
        if st.button("Validate with --npz" if not files.npz_complete else "Validate again with --npz",
                     key="steps_run_validate", disabled=why is not None, icon=":material/fact_check:",
                     help=why or NPZ_WHY):
            _open(StepRequest(JobKind.VALIDATE, str(location.path), str(store.root_of(run_id)), context=context))
        if why:
            st.caption(why)
        _fold_buttons(location.path.parent, str(store.root_of(run_id)), context, expected_folds(location.dataset),
                      key="steps_run")
        with st.expander("Find the best configuration of this dataset"):
            _find_best_controls(store, location.path.parents[1], location.trainer, location.configuration,
                                location.plans, key="steps_run", context=context, root=store.root_of(run_id))
            best_configuration_panel(location.path.parents[1])
    render_step_dialog()


def configuration_next_steps(store: RunStore, group: ModelGroup) -> None:
    """Compare's section for one model's group of folds: fold files, fold jobs, find-best, result."""
    members = group.members(store.table())
    locations = [loc for loc in (store.location(str(r)) for r in members["run_id"]) if loc is not None]
    locations = [loc for loc in locations if loc.nnunet_version == "v2"]
    if not locations:
        return
    with guard("show the next steps"):
        st.markdown("##### Next steps for this configuration")
        context = "compare:" + "/".join([group.root, group.dataset, group.configuration, group.trainer, group.plans])
        _result_banner(context)
        model_dir = locations[0].path.parent
        folds = expected_folds(group.dataset)
        st.dataframe(pd.DataFrame({"Fold": list(folds),
                                   "Files": [_facts(fold_files(model_dir / f"fold_{fold}")) for fold in folds]}),
                     hide_index=True, width="stretch")
        root = group_root(store, group)
        _fold_buttons(model_dir, str(root), context, folds, key="steps_cmp")
        _find_best_controls(store, model_dir.parent, group.trainer, group.configuration, group.plans,
                            key="steps_cmp", context=context, root=root)
        best_configuration_panel(model_dir.parent)
    render_step_dialog()
