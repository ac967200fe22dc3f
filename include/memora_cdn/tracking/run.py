"""The one build path: every trigger builds a plan through `run_plan`.

The sync DAG's build task (triggered_by Scheduler, Threshold, Manual or Fallback Recovery), the nightly full
rebuild (Nightly, whole or limited to some plans), the dashboard's rebuild and dead-letter retry buttons (they
mark the plan, or trigger the sync DAG, whose build task lands here) and the command line's `rebuild` (Manual)
all call it, so every build keeps the same records:

- the plan's lock in Redis (renewed while the build runs, no longer than the build's time budget);
- its `tabCDN Sync Log` row for this run (`Processing` -> `Success` / `Failed` / `Dead Letter` / `Queued`);
- the retry schedule between runs: a failed plan's row gets `next_retry_at` = now + delay * 2^n, where n is the
  number of runs in a row that failed it and the delay is Airflow's `[core] default_task_retry_delay`; the sync
  DAG's check starts a run when a retry is due, and its claim takes it (`sync_log.take_waiting`). After
  `PLAN_RETRIES` retries the plan is dead-lettered instead (Redis hash and `Dead Letter` row) and
  `PlanDeadLettered` is raised, which the DAGs' failure callbacks report;
- on success: the dead letter cleared, retries no longer needed cancelled, the signed-URL renewal scheduled,
  the sync run's claim released;
- the plan's own CDN purge, right after its upload.

Plain function over a `Registry` (or None without Redis), a DB-API connection and an S3 client: tested
without a scheduler.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from memora_cdn import limits
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.settings import Settings
from memora_cdn.tracking import sync_log
from memora_cdn.tracking.registry import DEAD_LETTER, PlanLocked, Registry

log = logging.getLogger(__name__)

TRIGGERS = sync_log.TRIGGERS


class PlanDeadLettered(RuntimeError):
    """A plan failed its last retry and was put in the dead letter (raised from the build's own error)."""

    def __init__(self, plan_id: str, tries: int, error: str) -> None:
        super().__init__(f"plan {plan_id} failed {tries} runs in a row and is dead-lettered ({DEAD_LETTER}): {error}")
        self.plan_id = plan_id
        self.dead_lettered = [plan_id]


def retry_delay() -> timedelta:
    """The first delay of the retry schedule: Airflow's `[core] default_task_retry_delay` (300 s by default)."""
    try:
        from airflow.sdk.configuration import conf

        seconds = conf.getfloat("core", "default_task_retry_delay", fallback=limits.DEFAULT_RETRY_DELAY)
    except Exception:  # noqa: BLE001 - the command line may run without an Airflow configuration
        seconds = limits.DEFAULT_RETRY_DELAY
    return timedelta(seconds=max(float(seconds), 0.0))


def next_retry_delay(failed_runs_before: int, base: timedelta | None = None) -> timedelta:
    """How long a plan waits after failing run number `failed_runs_before + 1` in a row: base, 2x, 4x, ..."""
    return (base if base is not None else retry_delay()) * (2 ** failed_runs_before)


def _is_failure(exc: BaseException) -> bool:
    # Airflow's execution_timeout raises AirflowTaskTimeout, a BaseException: it is a failed build like any other.
    return isinstance(exc, Exception) or type(exc).__name__ == "AirflowTaskTimeout"


def run_plan(plan_id: str, *, run_id: str, triggered_by: str, registry: Registry | None, db, s3,
             settings: Settings, purger: Callable[[], Any] | None = None, final_try: bool = True,
             budget_seconds: float | None = limits.BUILD_TIMEOUT, base_delay: timedelta | None = None,
             reconnect: Callable[[], Any] | None = None, pending_since: float | None = None) -> dict[str, Any]:
    """Build plan `plan_id` for run `run_id` and keep every record; the summary of what changed comes back.

    - `triggered_by`: one of `TRIGGERS` (written to the sync log row as given).
    - `registry`: None builds without the lock (no `memora_redis`: a laptop's full rebuild).
    - `purger`: a factory of the CDN purger; the plan's changes are purged right after the upload (the summary's
      `purged` says whether the CDN took it; the caller purges what did not). None: no purge here.
    - `final_try`: False while the caller's own short in-run retry is still to come (Airflow retries the task):
      a failure then keeps the plan claimed and schedules nothing.
    - `budget_seconds`: the build's time budget; the lock is not renewed past it.
    - `base_delay`: the first retry delay (default: `retry_delay()`).
    - `reconnect`: opens a fresh database connection, used when `db` died with the build (a read timeout closes
      it), so that the failure is still recorded.
    - `pending_since`: when the plan became pending (the sync claim hands it over): a requeued plan keeps it, and
      a published one records its edit-to-CDN latency (`Registry.record_latency`, the dashboard's median).

    Locked elsewhere: the plan goes back to pending and the summary's status is `requeued`. On failure the error
    is re-raised after the records are written (`PlanDeadLettered` from it when this was the last retry).
    """
    keys.check_name(plan_id, "plan")
    row = sync_log.row_name(run_id, plan_id)
    failed_before = sync_log.failed_runs_before(db, plan_id, row)
    sync_log.start(db, run_id, plan_id, triggered_by, retry_count=failed_before)
    started = time.monotonic()
    try:
        if registry is None:
            result = build_plan(plan_id, db=db, s3=s3, settings=settings)
        else:
            with registry.lock(plan_id, settings.lock_ttl_seconds, max_hold_seconds=budget_seconds):
                result = build_plan(plan_id, db=db, s3=s3, settings=settings)
    except PlanLocked as exc:
        # never dropped: the sync DAG builds it afterwards, and its wait still counts from the first mark
        registry.release(run_id, plan_id, requeue=True, pending_since=pending_since)
        sync_log.finish(db, row, "Queued", error=f"{exc}; requeued")
        log.info("%s; put back into the pending set", exc)
        return {"plan_id": plan_id, "status": "requeued", "purge_keys": [], "purge_prefix": False}
    except BaseException as exc:
        if not _is_failure(exc):
            raise
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.error("plan %s failed after %.1f s (run %d in a row): %s", plan_id, time.monotonic() - started,
                  failed_before + 1, error)
        dead = _record_failure(plan_id, run_id, row, error, failed_before, registry=registry, db=db,
                               final_try=final_try, base_delay=base_delay, reconnect=reconnect)
        if dead:
            raise PlanDeadLettered(plan_id, failed_before + 1, error) from exc
        raise
    _record_success(plan_id, run_id, row, result, registry=registry, db=db)
    summary = result.purge_summary(settings.purge_prefix_threshold)
    if purger is not None:
        from memora_cdn.tracking.sync import purge_built_plan

        summary = purge_built_plan(purger, settings, summary)
    if registry is not None and pending_since is not None:  # uploaded, and the purge sent (or left to the run's)
        _best_effort(plan_id, "record its edit-to-CDN latency", lambda: registry.record_latency(plan_id, pending_since))
    return summary


def _best_effort(plan_id: str, what: str, step: Callable[[], Any]) -> bool:
    try:
        step()
        return True
    except Exception as exc:  # noqa: BLE001 - reported; the caller decides what is left for later
        log.warning("plan %s: could not %s (%s: %s)", plan_id, what, type(exc).__name__, exc)
        return False


def _record_failure(plan_id: str, run_id: str, row: str, error: str, failed_before: int, *, registry, db,
                    final_try: bool, base_delay: timedelta | None, reconnect) -> bool:
    """Write what a failed build leaves behind; True when the plan was dead-lettered.

    The claim is released only once the retry (or the dead letter) is recorded: if the database cannot take the
    record, the plan stays claimed and a later run recovers the claim and builds it. Nothing is dropped."""
    if not final_try:
        status, next_retry_at = "Failed", None  # the in-run retry comes next; the plan stays claimed
    elif failed_before >= limits.PLAN_RETRIES:
        status, next_retry_at = "Dead Letter", None
    else:
        status = "Failed"
        next_retry_at = datetime.now(timezone.utc) + next_retry_delay(failed_before, base_delay)

    def finish(conn) -> None:
        try:
            conn.rollback()  # whatever the build left open
        except Exception:  # noqa: BLE001 - a dead connection: finish() below says so
            pass
        if final_try:  # a plan has one retry schedule: this failure's replaces any earlier one
            sync_log.cancel_retries(conn, plan_id)
        sync_log.finish(conn, row, status, error=error, next_retry_at=next_retry_at)

    recorded = _best_effort(plan_id, f"record {status} in the sync log", lambda: finish(db))
    if not recorded and reconnect is not None:
        fresh = None
        try:
            fresh = reconnect()
            recorded = _best_effort(plan_id, f"record {status} in the sync log (new connection)", lambda: finish(fresh))
        except Exception as exc:  # noqa: BLE001
            log.warning("plan %s: could not reconnect to the database (%s: %s)", plan_id, type(exc).__name__, exc)
        finally:
            if fresh is not None:
                _best_effort(plan_id, "close the new connection", fresh.close)
    if not final_try or not recorded:
        if not recorded:
            log.warning("plan %s stays claimed by run %s; a later run recovers the claim and builds it", plan_id, run_id)
        return False
    if registry is None:
        if status == "Dead Letter":
            log.error("plan %s failed its last retry (no memora_redis: recorded in the sync log only)", plan_id)
        return status == "Dead Letter"
    if status == "Dead Letter":
        _best_effort(plan_id, "write its dead letter", lambda: registry.dead_letter(plan_id, error))
        log.error("plan %s failed %d runs in a row; recorded in %s", plan_id, failed_before + 1, DEAD_LETTER)
    else:
        log.warning("plan %s: retry %d of %d after %s", plan_id, failed_before + 1, limits.PLAN_RETRIES,
                    next_retry_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    _best_effort(plan_id, "release its claim", lambda: registry.release(run_id, plan_id))
    return status == "Dead Letter"


def _record_success(plan_id: str, run_id: str, row: str, result, *, registry, db) -> None:
    """The files are published: from here on nothing may fail the build (its summary must reach the purge).
    What cannot be recorded now is repaired later: the claim is released only once the renewal is scheduled, and
    a claim left behind is recovered and rebuilt by a later run (which schedules the renewal again)."""
    if registry is not None:
        _best_effort(plan_id, "clear its dead letter", lambda: registry.clear_dead_letter(plan_id))
        if _best_effort(plan_id, "schedule its signed-URL renewal", lambda: registry.schedule_renewal(plan_id, result.renew_at)):
            _best_effort(plan_id, "release its claim", lambda: registry.release(run_id, plan_id))
    _best_effort(plan_id, "cancel retries it no longer needs", lambda: sync_log.cancel_retries(db, plan_id))
    _best_effort(plan_id, "record Success in the sync log",
                 lambda: sync_log.finish(db, row, "Success", uploaded=len(result.uploaded), deleted=len(result.deleted)))
