"""What the DAGs' tasks do, with Airflow's connections and Variable. The DAG files stay thin.

Each function here is called inside a running task; nothing runs at DAG parse time.
"""
from __future__ import annotations

import functools
import logging
import os
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from memora_cdn.engine import keys
from memora_cdn.engine.publish import list_published_plans
from memora_cdn.orchestration.assets import announce
from memora_cdn.orchestration.connections import mysql_connection, registry, s3_client
from memora_cdn.engine.read import find_orphans, list_plans
from memora_cdn.settings import load_settings

log = logging.getLogger(__name__)


class PlanBuildsFailed(RuntimeError):
    """Some plans of a mapped build task failed; the others were published. `dead_lettered` names the plans
    that failed their last retry (the failure callback reports them)."""

    def __init__(self, message: str, dead_lettered: list[str] | None = None) -> None:
        super().__init__(message)
        self.dead_lettered = list(dead_lettered or [])


def group_plans(plan_ids: list[str], max_groups: int) -> list[list[str]]:
    """One plan per mapped task, or contiguous groups when there are more plans than `max_groups`."""
    if not plan_ids:
        return []
    size = -(-len(plan_ids) // max_groups)  # ceiling division
    return [plan_ids[i:i + size] for i in range(0, len(plan_ids), size)]


def group_label(plan_ids: list[str]) -> str:
    return plan_ids[0] if len(plan_ids) == 1 else f"{plan_ids[0]} … {plan_ids[-1]} ({len(plan_ids)} plans)"


def plans_to_rebuild(requested: Iterable[str] | None) -> list[str]:
    """The plans a full rebuild covers: the requested names (validated), or every plan in the database."""
    requested = [name for name in (requested or []) if name not in ("", None)]
    if requested:
        bad = [name for name in requested if not keys.is_safe_name(name)]
        if bad:
            raise ValueError(f"not plan names: {', '.join(repr(b) for b in bad[:10])}")
        return sorted(dict.fromkeys(requested))
    db = mysql_connection()
    try:
        for orphan in find_orphans(db):
            log.warning("orphan %s %r: %s; it is in no plan and is not published", orphan["doctype"], orphan["name"], orphan["reason"])
        plans = list_plans(db)
    finally:
        db.close()
    # A plan whose name cannot be a bucket key is reported and skipped (as the sync refuses it), not failed on
    # every night: it would fail its build task and its retries, and never publish.
    for name in [p for p in plans if not keys.is_safe_name(p)]:
        log.warning("plan %s cannot be published: its name cannot be used in a bucket key (%s); rename it",
                    repr(name if len(name) <= 60 else name[:60] + "…"), keys.NAME_RULE)
    return [p for p in plans if keys.is_safe_name(p)]


def cdn_purger(settings) -> Callable[[], Any]:
    """The CDN purger of the settings' `purge_provider`, made on first use and then reused."""
    from memora_cdn.purge import purger_for

    return functools.cache(lambda: purger_for(settings.purge_provider, files_per_request=settings.purge_files_per_request))


def build_plans(plan_ids: list[str], *, run_id: str | None = None, final_try: bool = True,
                published=None) -> list[dict[str, Any]]:
    """The nightly full rebuild's build task: each plan through `run_plan` (triggered_by `Nightly`), its changes
    purged right away. One failing plan does not stop the others, but fails the task at the end (its retry is
    scheduled like the sync's, or it is dead-lettered). A plan locked by a sync build is left to the sync DAG.
    What could not be purged is left to the DAG's purge task. Each plan that changed adds an asset event to
    `published` (`outlet_events[PLAN_PUBLISHED]`; Airflow records them if the task succeeds)."""
    from memora_cdn.tracking.run import PlanDeadLettered, run_plan

    settings = load_settings()
    purger = cdn_purger(settings)
    s3 = s3_client(settings)
    plan_registry = registry(required=False)
    if plan_registry is None:
        log.warning("connection memora_redis is not configured: building without the per-plan lock")
    run_id = run_id or f"nightly__{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}__{os.getpid()}"
    db = mysql_connection()
    summaries: list[dict[str, Any]] = []
    failures: list[str] = []
    dead: list[str] = []
    try:
        for plan_id in plan_ids:
            try:
                summary = run_plan(plan_id, run_id=run_id, triggered_by="Nightly", registry=plan_registry, db=db,
                                   s3=s3, settings=settings, purger=purger, final_try=final_try,
                                   reconnect=mysql_connection)
            except Exception as exc:
                log.exception("plan %s failed", plan_id)
                failures.append(f"{plan_id}: {type(exc).__name__}: {exc}")
                if isinstance(exc, PlanDeadLettered):
                    dead.append(plan_id)
                db = _usable(db)
                continue
            if summary["status"] == "requeued":
                log.info("plan %s is being built by the sync DAG; queued for it instead", plan_id)
                continue
            summaries.append(summary)
            announce(published, settings.bucket, summary)
    finally:
        db.close()
    if failures:
        message = f"{len(failures)} of {len(plan_ids)} plan(s) failed: " + "; ".join(failures)
        raise PlanBuildsFailed(message, dead_lettered=dead)
    return summaries


def _usable(db):
    """`db`, or a new connection when a failed build took it down (a read timeout closes it)."""
    try:
        db.ping()
        return db
    except Exception:  # noqa: BLE001
        try:
            db.close()
        except Exception:  # noqa: BLE001
            pass
        return mysql_connection()


def remove_deleted_plans(confirmed: bool = False, published=None) -> list[str]:
    """Remove the folders of plans that are in the bucket but that the database does not list (deleted or
    unpublished), through the removal guard: a refusal removes nothing, is recorded for the dashboard and
    raises `RemovalRefused` (the task fails, not retried). `confirmed` (the run's `confirm_removals` param)
    is an operator's confirmation. Removed plans go to the trash, restorable for `trash_retention_days`. Each
    removal adds an asset event to `published` (as `build_plans`)."""
    from memora_cdn.engine.removal import RemovalRefused, decide_removals, remove_plans
    from memora_cdn.tracking import removals as removal_record

    settings = load_settings()
    s3 = s3_client(settings)
    db = mysql_connection()
    try:
        in_db = set(list_plans(db))
    finally:
        db.close()
    on_cdn = list_published_plans(s3, settings.bucket)
    candidates = []
    for plan_id in sorted(on_cdn - in_db):
        if not keys.is_safe_name(plan_id):
            log.warning("bucket folder plans/%s/ is not a plan name; left alone", plan_id)
            continue
        candidates.append(plan_id)
    decision = decide_removals(candidates, listed_plans=len(in_db), published=len(on_cdn),
                               max_plan_removals=settings.max_plan_removals, confirmed=confirmed)
    plan_registry = registry(required=False)

    def record(step, what: str) -> None:  # the verdict stands even when Redis cannot take the record
        if plan_registry is None:
            return
        try:
            step()
        except Exception as exc:
            log.warning("could not %s in Redis (%s: %s)", what, type(exc).__name__, exc)

    if decision.refused:
        record(lambda: removal_record.record_refusal(plan_registry, "nightly", decision), "record the refusal")
        raise RemovalRefused(decision)
    if confirmed and candidates:
        log.warning("removals confirmed by the run's confirm_removals param: %s", decision.named())
    trashed = remove_plans(s3, settings, decision, reason="not listed by the database (deleted or unpublished)")
    removed = sorted(trashed)
    for plan_id in removed:
        announce(published, settings.bucket, {"plan_id": plan_id, "status": "removed",
                                              "files_deleted": len(trashed[plan_id]), "purge_keys": [],
                                              "purge_prefix": True})
    record(lambda: removal_record.clear_refusal(plan_registry, "nightly"), "clear the last refusal")
    # held by sync runs: the ones removed now are done, the ones the database lists again are rebuilt tonight
    record(lambda: removal_record.release_held(
        plan_registry, [p for p in removal_record.held(plan_registry) if p in in_db or p in removed]),
        "release held plans")
    log.info("removed %d plan(s) that the database does not list: %s", len(removed), decision.named() or "none")
    return removed


def purge_expired_trash() -> dict[str, Any]:
    """The nightly step that deletes removed plans' trashed copies older than `trash_retention_days`."""
    from memora_cdn.engine.trash import purge_expired

    settings = load_settings()
    return purge_expired(s3_client(settings), settings.bucket, settings.trash_retention_days)


def full_rebuild_purge(built, removed) -> dict[str, Any] | None:
    """Purge what the full rebuild changed: the files its builds changed (each mapped build returns a list of
    summaries; a failed one returns nothing) and the folders of the plans it removed."""
    summaries = [s for i in range(len(built)) for s in (built[i] or [])] if built is not None else []
    summaries += [{"plan_id": p, "purge_keys": [], "purge_prefix": True} for p in (removed or [])]
    return sync_purge(summaries)


# -- memora_cdn_sync ---------------------------------------------------------------------------------

def sync_waiting(requested: list[str]) -> bool:
    """The short-circuit: True when anything waits. Requested plans (manual runs) are marked first."""
    from memora_cdn.tracking.sync import waiting

    plan_registry = registry()
    if requested:
        bad = [name for name in requested if not keys.is_safe_name(name)]
        if bad:
            raise ValueError(f"not plan names: {', '.join(repr(b) for b in bad[:10])}")
        plan_registry.mark(requested)
    db = mysql_connection()
    try:
        found = waiting(plan_registry, db)
    finally:
        db.close()
    log.info("waiting: %d pending, %d fallback row(s), %d due retr(ies), %d signed-URL renewal(s)",
             found.pending, found.fallback_rows, found.due_retries, found.renewals_due)
    return found.anything


def sync_claim(run_id: str, triggered_by: str) -> list[dict[str, str]]:
    from memora_cdn.tracking.sync import claim_batch

    settings = load_settings()
    db = mysql_connection()
    try:
        return claim_batch(registry(), db, s3_client(settings), settings, run_id, triggered_by).plans
    finally:
        db.close()


def sync_build(plan: dict[str, Any], *, run_id: str, final_try: bool, published=None) -> dict[str, Any]:
    """Build one claimed plan through `run_plan` and purge what it changed at once (the run's purge task takes
    what fails here). `final_try` is False while the task's short in-run retry is still to come. If it changed, an
    asset event goes to `published` (`outlet_events[PLAN_PUBLISHED]`)."""
    from memora_cdn.tracking.run import run_plan

    settings = load_settings()
    db = mysql_connection()
    try:
        summary = run_plan(plan["plan_id"], run_id=run_id, triggered_by=plan["triggered_by"], registry=registry(),
                           db=db, s3=s3_client(settings), settings=settings, purger=cdn_purger(settings),
                           final_try=final_try, reconnect=mysql_connection, pending_since=plan.get("pending_since"))
    finally:
        try:
            db.close()
        except Exception:  # noqa: BLE001 - a connection a timeout already closed
            pass
    announce(published, settings.bucket, summary)
    return summary


def sync_purge(summaries) -> dict[str, Any] | None:
    """The run's purge: what the builds could not purge themselves (failed mapped builds leave no summary)."""
    from memora_cdn.tracking.sync import purge, purge_requests

    settings = load_settings()
    # Index the lazy sequence of mapped XComs instead of iterating past its end.
    summaries = [summaries[i] for i in range(len(summaries))]
    purged_by_builds = sum(1 for s in summaries if s and s.get("purged"))
    if purged_by_builds:
        log.info("%d plan(s) were purged by their own build", purged_by_builds)
    requests = purge_requests(summaries)
    report = purge(cdn_purger(settings)() if requests else None, settings, requests)
    return report.as_dict() if report else None
