"""The notifier: a watcher, the job registry and the outbox, in two background threads.

The detector follows the watcher's events (and sweeps every run now and then, for what only time changes),
polls the job registry (reconciling it with the backends, so a dead job is seen without a browser open) and
records new events in the outbox. The dispatcher sends what is due, one message per URL and quiet window,
and retries what failed. A failing channel never stops either thread, nor the watcher.

The registry is also the watcher's liveness (:class:`trainer.JobLiveness`): a run whose job is running is never
called crashed, one whose job failed or was cancelled is crashed at once, with the job's evidence for its cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from app.notify import compare
from app.notify.config import ConfigError, NotifyConfig, load_config
from app.notify.derive import (
    Condition,
    event_key,
    job_conditions,
    job_notification,
    latest_jobs_by_run,
    run_conditions,
    run_notifications,
)
from app.notify.events import DEFAULT_BASE_URL, EventKind, Links, Notification
from app.notify.outbox import Batch, Outbox
from app.notify.sender import send
from monitor.runs import RunStatus
from monitor.watch import ResultsWatcher, RunSnapshot, WatchSnapshot
from trainer import Job, JobLiveness, JobRegistry, JobState

__all__ = ["Notifier"]

log = logging.getLogger("nnwatch.notify")

BEHIND_CHECK_S = 60.0  # an extension is compared with its parent at most this often


def _warm_up() -> None:
    """Import the report renderer (matplotlib) ahead of the first finished run: seconds on a busy machine."""
    try:
        from matplotlib.backends import backend_agg  # noqa: F401

        import monitor.report.run  # noqa: F401  (the run report's panels: matplotlib's axes, lines, ticks)
    except Exception:  # drawn without a report then
        log.debug("cannot import the report renderer", exc_info=True)


class Notifier:
    """Watch ``root`` and notify per ``config``; :meth:`start` / :meth:`stop` or a ``with`` block.

    ``watcher``: share one already made for this root (its liveness is then the caller's business);
    otherwise the notifier makes its own, polling every ``poll`` seconds where given. ``dashboard_url`` and
    ``root_label``: the dashboard that serves this root, where links point unless the rules name a ``base_url``,
    and the label of this root in its run ids where it serves several (:class:`Links`).
    """

    def __init__(self, root: str | os.PathLike[str], config: NotifyConfig, *, outbox: Outbox | None = None,
                 registry: JobRegistry | None = None, watcher: ResultsWatcher | None = None,
                 poll: float | None = None, sweep_s: float = 30.0, dispatch_s: float = 0.25,
                 behind_check_s: float = BEHIND_CHECK_S, clock: Callable[[], float] = time.time,
                 dashboard_url: str = DEFAULT_BASE_URL, root_label: str = "") -> None:
        self.root = Path(root).absolute()
        self.config = config
        self._dashboard_url, self._root_label = dashboard_url, root_label
        self.outbox = outbox or Outbox()
        self.registry = registry
        self._jobs: list[Job] = []
        self._job_liveness = JobLiveness(lambda: self._jobs, self.root, min_interval_s=0.0)
        self._latest_jobs: dict[str, Job] = {}
        self._owns_watcher = watcher is None
        self.watcher = watcher or ResultsWatcher(self.root, poll=poll, liveness=self._job_liveness, clock=clock)
        self._clock = clock
        self._sweep_s = sweep_s
        self._dispatch_s = dispatch_s
        self._behind_check_s = behind_check_s
        self._behind_checked: dict[str, float] = {}
        self._pairs: dict[str, str] = {}
        self._pairs_signature: tuple[frozenset[str], tuple[str, ...]] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.report_dir = self.outbox.path.parent / "notification_reports"
        self.last_error: str | None = None  # the newest failed send, for a status line
        self._config_stamp: int | None = None
        if config.path is not None:
            with contextlib.suppress(OSError):
                self._config_stamp = config.path.stat().st_mtime_ns

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self) -> Notifier:
        if self._threads:
            raise RuntimeError("notifier already started")
        self._poll_jobs(record=False)  # liveness before the watcher's first reading of every run
        threading.Thread(target=_warm_up, name="nnwatch-notify-warm-up", daemon=True).start()
        if self._owns_watcher:
            self.watcher.start()
        self._threads = [threading.Thread(target=self._guarded, args=(self._detect_loop,), name="nnwatch-notify",
                                          daemon=True),
                         threading.Thread(target=self._guarded, args=(self._dispatch_loop,),
                                          name="nnwatch-notify-send", daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._owns_watcher:
            self.watcher.stop()

    def __enter__(self) -> Notifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _guarded(self, loop: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                loop()
                return
            except Exception:
                log.exception("notifier: %s failed; starting it again in 5 s", loop.__name__)
                self._stop.wait(5.0)

    def _poll_jobs(self, *, record: bool = True, baseline: bool = False) -> None:
        if self.registry is None:
            return
        try:
            jobs = self.registry.refresh()
        except Exception as exc:  # a locked or unreadable registry: keep the last known state
            log.warning("notifier: cannot read the job registry %s: %s", self.registry.path, exc)
            return
        self._jobs = jobs  # the watcher's liveness (JobLiveness) reads the newest job of each run from here
        self._latest_jobs = dict(latest_jobs_by_run(jobs))
        if not record:
            return
        conditions = [c for job in jobs for c in job_conditions(job)]
        new = self._new(conditions)
        by_key = {c.key: (c, job) for job in jobs for c in job_conditions(job)}
        if baseline:
            self.outbox.record_many([(Notification(by_key[key][0].event, by_key[key][0].run_id, key,
                                                   job_id=by_key[key][1].job_id), ()) for key in new], baseline=True)
            return
        self._record_all([job_notification(by_key[key][1], by_key[key][0].event) for key in new], time.time())

    # -- detection -------------------------------------------------------------------------------------
    def _detect_loop(self) -> None:
        snapshot = self.watcher.snapshot()
        version = snapshot.version
        root = str(self.root)
        if not self.outbox.is_primed(root):
            self._evaluate(snapshot, snapshot.runs, baseline=True)
            self._poll_jobs(baseline=True)
            self.outbox.mark_primed(root)
            log.info("notifier: first start on %s: %d runs recorded as they are, nothing sent", root,
                     len(snapshot.runs))
        else:
            self._evaluate(snapshot, snapshot.runs)
        next_jobs = time.monotonic() + self.config.jobs_poll_s
        next_sweep = time.monotonic() + self._sweep_s
        while not self._stop.is_set():
            changes = self.watcher.changes_since(version, timeout=0.5)
            version = changes.version
            self._reload_config()
            now = time.monotonic()
            if now >= next_jobs:
                self._poll_jobs()
                next_jobs = time.monotonic() + self.config.jobs_poll_s
            touched: set[str] | None = None  # None: every run
            if changes.events is None or now >= next_sweep:
                next_sweep = now + self._sweep_s
            else:
                touched = {event.run_id for event in changes.events if event.kind != "run_removed"}
                if not touched:
                    continue
            snapshot = self.watcher.snapshot()
            self._evaluate(snapshot, snapshot.runs if touched is None else touched)

    @property
    def links(self) -> Links:
        """Where this notifier's messages link to, per the rules in force."""
        return Links(self.config.base_url or self._dashboard_url, self._root_label)

    def _reload_config(self) -> None:
        """Pick up an edited rules file; a broken edit keeps the rules in force (and says so, once)."""
        path = self.config.path
        if path is None:
            return
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return
        if self._config_stamp is None:
            self._config_stamp = stamp
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            self.config = load_config(path)
        except ConfigError as exc:
            log.warning("notifier: keeping the previous rules: %s", exc)
            return
        log.info("notifier: rules reloaded from %s (%d rule(s))", path, len(self.config.rules))

    def _new(self, conditions: list[Condition]) -> list[str]:
        keys = list(dict.fromkeys(c.key for c in conditions))
        if not keys:
            return []
        # a run event recorded before keys were scoped by their root counts as this root's
        unscoped = {key: key.removeprefix(f"{self.root}\t") for key in keys}
        known = self.outbox.known(list(dict.fromkeys([*keys, *unscoped.values()])))
        return [key for key in keys if key not in known and unscoped[key] not in known]

    def _evaluate(self, snapshot: WatchSnapshot, run_ids: Iterable[str], *, baseline: bool = False) -> None:
        now = self._clock()
        detected = time.time()  # the quiet window runs while the message is prepared (verdict, report)
        runs = [snapshot.runs[run_id] for run_id in run_ids if run_id in snapshot.runs]
        conditions = [c for run in runs
                      for c in run_conditions(run, now, self.config.final_dice_wait_s, root=str(self.root))]
        new = set(self._new(conditions))
        events_by_run: dict[str, set[EventKind]] = {}
        for condition in conditions:
            if condition.key in new:
                events_by_run.setdefault(condition.run_id, set()).add(condition.event)
        if baseline:
            self.outbox.record_many([(Notification(c.event, c.run_id, c.key), ()) for c in conditions
                                     if c.key in new], baseline=True)
            return
        for run_id, events in events_by_run.items():
            run = snapshot.runs[run_id]
            job = self._latest_jobs.get(run_id)
            failed = job if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED) else None
            try:
                notifications = run_notifications(run, events, report_dir=self.report_dir, failed_job=failed,
                                                  root=str(self.root))
            except Exception:
                log.exception("notifier: cannot describe %s for %s", sorted(events), run_id)
                continue
            self._record_all(notifications, detected)
        self._check_extensions(snapshot, runs)

    def _targets(self, notification: Notification) -> list[tuple[str, str, bool]]:
        dataset = notification.dataset or notification.run_id.split("/")[0]
        return [(rule.name, url, rule.attach_report)
                for rule, url in self.config.targets(notification.event, notification.run_id, dataset)]

    def _record_all(self, notifications: list[Notification], detected: float | None = None) -> None:
        """Record one run's events together: they leave in the same message."""
        items = [(notification, self._targets(notification)) for notification in notifications]
        for (notification, targets), new in zip(items, self.outbox.record_many(items, now=detected)):
            if new and targets:
                log.info("notifier: %s", notification.headline())
                self._wake.set()

    # -- extensions against their parents -------------------------------------------------------------
    def _extension_parents(self, snapshot: WatchSnapshot) -> dict[str, str]:
        jobs = tuple(sorted(self._latest_jobs))
        signature = (frozenset(snapshot.runs), jobs)
        if signature != self._pairs_signature:
            import pandas as pd

            table = pd.DataFrame([run.summary.row() for run in snapshot.runs.values()])
            self._pairs = compare.pairs(table, self._latest_jobs.values())
            self._pairs_signature = signature
        return self._pairs

    def _check_extensions(self, snapshot: WatchSnapshot, runs: list[RunSnapshot]) -> None:
        running = [run for run in runs if run.status == RunStatus.RUNNING]
        if not running:
            return
        parents = self._extension_parents(snapshot)
        now = time.monotonic()
        for run in running:
            parent_id = parents.get(run.run_id)
            parent = snapshot.runs.get(parent_id) if parent_id else None
            if parent is None or now - self._behind_checked.get(run.run_id, -1e18) < self._behind_check_s:
                continue
            self._behind_checked[run.run_id] = now
            key = event_key(run.run_id, EventKind.EXTENSION_BEHIND, root=str(self.root))
            if not self._new([Condition(EventKind.EXTENSION_BEHIND, run.run_id, key)]):
                continue
            try:
                comparison = compare.fell_behind(parent, run)
            except Exception:
                log.exception("notifier: cannot compare %s with its parent %s", run.run_id, parent_id)
                continue
            if comparison is not None:
                behind = Notification(EventKind.EXTENSION_BEHIND, run.run_id, key, run.run_id.split("/")[0],
                                      cause=f"behind its parent {parent_id} ({comparison.certainty.value})",
                                      detail=f"{comparison.question} {comparison.statement}")
                self._record_all([behind])

    # -- dispatch --------------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            self.dispatch_once()
            self._wake.wait(self._dispatch_s)
            self._wake.clear()

    def _drop_reports(self, batch: Batch) -> None:
        """A report PNG is kept only until every channel of its event has it."""
        for delivery in batch.deliveries:
            report = delivery.notification.report
            if report and self.outbox.pending_for(delivery.notification.key) == 0:
                with contextlib.suppress(OSError):
                    Path(report).unlink(missing_ok=True)

    def dispatch_once(self) -> int:
        """Send every batch that is due; the number of messages accepted."""
        sent = 0
        for batch in self.outbox.claim_due(self.config.quiet_s):
            result = send(batch, self.links)
            if result.ok:
                self.outbox.mark_sent(batch.ids)
                self._drop_reports(batch)
                sent += 1
            else:
                delay = self.outbox.mark_failed(batch.ids, result.error, retry_max_s=self.config.retry_max_s)
                self.last_error = f"{result.url}: {result.error}"
                log.warning("notifier: %d notification(s) to %s not delivered (%s); retrying in %.0f s",
                            len(batch.ids), result.url, result.error, delay)
        return sent
