"""What the DAGs' tasks do, with Airflow's connections and Variable. The DAG files stay thin.

Each function here is called inside a running task; nothing runs at DAG parse time.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from include import keys
from include.build import build_plan
from include.connections import mysql_connection, s3_client
from include.publish import list_published_plans, remove_plan
from include.read import find_orphans, list_plans
from include.settings import load_settings

log = logging.getLogger(__name__)


class PlanBuildsFailed(RuntimeError):
    """Some plans of a mapped build task failed; the others were published."""


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
        return list_plans(db)
    finally:
        db.close()


def build_plans(plan_ids: list[str]) -> list[dict[str, Any]]:
    """Build each plan; one failing plan does not stop the others, but fails the task at the end."""
    settings = load_settings()
    s3 = s3_client(settings)
    db = mysql_connection()
    summaries: list[dict[str, Any]] = []
    failures: list[str] = []
    try:
        for plan_id in plan_ids:
            try:
                result = build_plan(plan_id, db=db, s3=s3, settings=settings)
            except Exception as exc:
                log.exception("plan %s failed", plan_id)
                failures.append(f"{plan_id}: {type(exc).__name__}: {exc}")
                continue
            summaries.append(purge_summary(result.summary(), settings.purge_prefix_threshold))
    finally:
        db.close()
    if failures:
        raise PlanBuildsFailed(f"{len(failures)} of {len(plan_ids)} plan(s) failed: " + "; ".join(failures))
    return summaries


def purge_summary(summary: dict[str, Any], prefix_threshold: int) -> dict[str, Any]:
    """Shrink a build summary for XCom: counts, and the changed keys unless the plan's prefix is purged instead."""
    uploaded, deleted = summary.pop("uploaded"), summary.pop("deleted")
    changed = uploaded + deleted
    summary["files_uploaded"], summary["files_deleted"] = len(uploaded), len(deleted)
    summary["purge_prefix"] = len(changed) > prefix_threshold
    summary["purge_keys"] = [] if summary["purge_prefix"] else changed
    summary["changed"] = len(changed)
    return summary


def remove_deleted_plans() -> list[str]:
    """Remove the folders of plans that are in the bucket but no longer in the database."""
    settings = load_settings()
    s3 = s3_client(settings)
    db = mysql_connection()
    try:
        in_db = set(list_plans(db))
    finally:
        db.close()
    removed = []
    for plan_id in sorted(list_published_plans(s3, settings.bucket) - in_db):
        if not keys.is_safe_name(plan_id):
            log.warning("bucket folder plans/%s/ is not a plan name; left alone", plan_id)
            continue
        deleted = remove_plan(s3, settings.bucket, plan_id)
        log.info("plan %s no longer exists: removed its %d file(s)", plan_id, len(deleted))
        removed.append(plan_id)
    return removed
