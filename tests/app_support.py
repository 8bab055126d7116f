"""Shared pieces of the dashboard tests: a fixture results tree with bad runs, an nnU-Net environment that
passes ``plan_extend``'s checks, and a backend that records launches instead of starting nnU-Net.

The recording backend is plugged in the way an operator would plug any backend into the dashboard:
``NNWATCH_BACKEND_FACTORY=app_support:recording_backend`` (``tests/`` is on ``sys.path`` through
pytest's ``pythonpath`` and, for ``nnwatch serve`` subprocesses, ``PYTHONPATH``). Each launch appends one
JSON line to ``$NNWATCH_TEST_LAUNCHES``, so a test can assert that exactly one launch happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pandas as pd
import pytest

from monitor.synth import CurveSpec, FakeRun, RunSpec, write_run
from trainer.backends import Backend, Launched, LaunchRequest, Observation
from trainer.jobs import Job
from trainer.states import JobState

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

__all__ = ["FixtureTree", "RecordingBackend", "append_epoch", "build_fixture_tree", "recording_backend", "runs_table"]

DATASET = "Dataset201_Kidney"
LABELS = ("kidney", "tumor")
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


class RecordingBackend(Backend):
    """Records each launch to a JSON-lines file and reports jobs as running until cancelled."""

    name = "recording"

    def _record(self, event: dict[str, object]) -> None:
        target = os.environ.get("NNWATCH_TEST_LAUNCHES")
        if target:
            with open(target, "a") as handle:
                handle.write(json.dumps(event) + "\n")

    def launch(self, request: LaunchRequest) -> Launched:
        request.job_dir.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text("recorded launch (test backend): " + " ".join(request.argv) + "\n")
        self._record({"event": "launch", "job_id": request.job_id, "argv": list(request.argv)})
        return Launched(backend_job_id=f"rec-{request.job_id}", state=JobState.RUNNING)

    def poll(self, jobs: Sequence[Job]) -> dict[str, Observation]:
        return {job.job_id: Observation(JobState.RUNNING) for job in jobs if job.backend_job_id}

    def cancel(self, job: Job, grace_s: float) -> Observation:
        self._record({"event": "cancel", "job_id": job.job_id})
        return Observation(JobState.CANCELLED, exit_code=-15)


def recording_backend(name: str) -> Backend:
    """The factory named in ``NNWATCH_BACKEND_FACTORY``: one recording backend for every backend name."""
    del name
    return RecordingBackend()


@dataclass(frozen=True)
class FixtureTree:
    """Paths and run ids of the fixture tree, and the environment the dashboard needs to act on it."""

    base: Path
    root: Path
    env: dict[str, str]
    improving: str
    plateau: str
    running: str
    empty: str
    garbled: str
    v1: str
    parent: str
    extended: str

    @property
    def all_runs(self) -> list[str]:
        return [self.improving, self.plateau, self.running, self.empty, self.garbled, self.v1, self.parent,
                self.extended]

    def launches(self) -> list[dict[str, object]]:
        path = Path(self.env["NNWATCH_TEST_LAUNCHES"])
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _preprocessed(base: Path) -> Path:
    """Just enough of nnUNet_preprocessed for ``check_preprocessed``: plans, dataset.json, a data file."""
    folder = base / "nnUNet_preprocessed" / DATASET
    (folder / "nnUNetPlans_3d_fullres").mkdir(parents=True, exist_ok=True)
    (folder / "nnUNetPlans_3d_fullres" / "case_000.npz").write_bytes(b"\0")
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "kidney": 1, "tumor": 2}}))
    plans = {"configurations": {"3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres"}}}
    (folder / "nnUNetPlans.json").write_text(json.dumps(plans))
    return folder.parent


def build_fixture_tree(base: Path, *, now: float | None = None) -> FixtureTree:
    """Good runs, a running one, an empty fold, a garbled log, a v1 run and an extended pair."""
    now = time.time() if now is None else now
    root = base / "nnUNet_results"
    rising = CurveSpec((0.80, 0.70), timescale=0.6, noise=0.008, epoch_time_s=60.0, seed=1)
    long_rising = CurveSpec((0.80, 0.70), timescale=0.55, noise=0.010, epoch_time_s=60.0, seed=5)
    flat = CurveSpec((0.82, 0.72), timescale=0.05, noise=0.008, epoch_time_s=60.0, seed=2)
    specs = [
        RunSpec(DATASET, "nnUNetTrainer", "3d_fullres", 0, 1000, long_rising),  # nnU-Net's default schedule
        RunSpec(DATASET, "nnUNetTrainer", "3d_fullres", 1, 300, flat),
        RunSpec(DATASET, "nnUNetTrainer", "3d_fullres", 2, 300, rising, epochs_done=120, state="running"),
        RunSpec("Dataset202_Spleen", "nnUNetTrainer", "2d", 0, 200,
                CurveSpec((0.85,), timescale=0.05, noise=0.008, epoch_time_s=30.0, seed=4)),
        RunSpec("Dataset202_Spleen", "nnUNetTrainer_400epochs", "2d", 0, 400,
                CurveSpec((0.83,), timescale=0.2, noise=0.008, epoch_time_s=30.0, seed=3), epochs_done=150,
                state="running"),
        RunSpec("Task003_Liver", "nnUNetTrainerV2", "3d_fullres", 0, 150, flat, version="v1",
                plans="nnUNetPlansv2.1"),
    ]
    for spec in specs:
        labels = ("spleen",) if spec.dataset.startswith("Dataset202") else LABELS
        write_run(root, spec, now=now, labels=labels)
    empty = root / DATASET / MODEL / "fold_3"
    empty.mkdir(parents=True)
    garbled = root / DATASET / MODEL / "fold_4"
    garbled.mkdir(parents=True)
    (garbled / "training_log_2024_1_1_00_00_00.txt").write_bytes(
        b"\x00\x01garbage\xff\n2024-01-01 00:00:00.000000: Epoch 0 \n2024-01-01 00:00:00.000000: Pseudo dice "
        b"[np.float32(0.5\n\x00\x00 not a log at all \x89PNG\r\n")
    (garbled / "debug.json").write_text("{ half written")
    for path in garbled.iterdir():  # a run that died long ago, leaving garbage behind
        os.utime(path, (now - 10 * 86400, now - 10 * 86400))
    env = {
        "NNWATCH_ROOT": str(root),
        "NNWATCH_JOBS_DB": str(base / "jobs" / "jobs.sqlite3"),
        "NNWATCH_STATE": str(base / "state"),
        "NNWATCH_HOST": "127.0.0.1",
        "NNWATCH_REFRESH_S": "1",
        "NNWATCH_BACKEND_FACTORY": "app_support:recording_backend",
        "NNWATCH_TEST_LAUNCHES": str(base / "launches.jsonl"),
        "NNWATCH_VARIANTS_DIR": str(base / "variants"),
        "nnUNet_raw": str(base / "nnUNet_raw"),
        "nnUNet_preprocessed": str(_preprocessed(base)),
        "nnUNet_results": str(root),
    }
    (base / "nnUNet_raw").mkdir(exist_ok=True)
    return FixtureTree(
        base=base, root=root, env=env,
        improving=f"{DATASET}/{MODEL}/fold_0", plateau=f"{DATASET}/{MODEL}/fold_1",
        running=f"{DATASET}/{MODEL}/fold_2", empty=f"{DATASET}/{MODEL}/fold_3", garbled=f"{DATASET}/{MODEL}/fold_4",
        v1="nnUNet/3d_fullres/Task003_Liver/nnUNetTrainerV2__nnUNetPlansv2.1/fold_0",
        parent="Dataset202_Spleen/nnUNetTrainer__nnUNetPlans__2d/fold_0",
        extended="Dataset202_Spleen/nnUNetTrainer_400epochs__nnUNetPlans__2d/fold_0",
    )


def append_epoch(tree: FixtureTree, run_id: str, epoch: int) -> None:
    """Append epoch ``epoch`` of the fixture curves to a run's log, as nnU-Net would while training."""
    folder = tree.root / run_id
    spec = CurveSpec((0.80, 0.70), timescale=0.6, noise=0.008, epoch_time_s=60.0, seed=1)
    run = FakeRun(folder, 300, None, spec, clock=datetime.now() - timedelta(seconds=60), next_epoch=epoch,
                  log_path=sorted(folder.glob("training_log_*.txt"))[-1])
    run.history(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    import pytest

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("nnwatch serve did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)  # the port is not open yet; nothing to await but the next try


@contextlib.contextmanager
def serving(args: Sequence[str], env: Mapping[str, str], log: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """``nnwatch serve`` with ``args`` on a free port, its output appended to ``log``: yields its URL once it answers
    its health check (a test fails with the end of the log when it exits or does not answer within ``timeout_s``),
    and stops it with SIGTERM on exit (killed if it has not stopped within 30 s)."""
    import signal
    import sys

    from paths import REPO

    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", *args, "--port", str(port)], cwd=REPO,
                                   env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log, timeout_s)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


DASHBOARD_MAIN = str(Path(__file__).resolve().parents[1] / "app" / "dashboard" / "main.py")


@contextlib.contextmanager
def dashboard_env(env: Mapping[str, str], **extra: str) -> Iterator[None]:
    """The environment a dashboard under AppTest reads: ``env`` and ``extra`` set, no users file and no open
    view; Streamlit's caches are cleared afterwards so that the next module's stores start fresh."""
    import streamlit as st

    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**env, **extra}.items():
            patch.setenv(key, value)
        patch.delenv("NNWATCH_USERS_FILE", raising=False)
        patch.delenv("NNWATCH_OPEN_VIEW", raising=False)
        yield
    st.cache_resource.clear()
    st.cache_data.clear()


def open_page(page: str | None, *, timeout: float, **query: str) -> AppTest:
    """A fresh dashboard session (AppTest of the real entrypoint), switched to ``page`` with ``query``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(DASHBOARD_MAIN, default_timeout=timeout)
    at.run()
    if page:
        at.query_params.update(query)
        at.switch_page(page).run()
    return at


def runs_table(at: AppTest) -> pd.DataFrame:
    """The overview's runs table as the browser receives it, with ``run_id`` read back from each row's link."""
    runs = next(df.value for df in at.dataframe if "Open" in df.value.columns)
    assert "run_id" not in runs.columns, "the run id travels in the link, not as a column of its own"
    return runs.assign(run_id=[unquote(link.removeprefix("run?id=")) for link in runs["Open"]])


def page_texts(at: AppTest) -> str:
    """Every text block the page shows (markdown, captions and the four callouts), one per line."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [s.value for s in at.success] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def assert_no_crash(at: AppTest) -> None:
    """No exception on the page and no "Could not …" error box."""
    assert not at.exception, [e.value for e in at.exception]
    assert not [e for e in at.error if "Could not" in str(e.value)], [e.value for e in at.error]
