"""Build one plan: read -> resolve -> render -> publish. The unit of work of both DAGs."""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from memora_cdn.engine import keys
from memora_cdn.engine.media import MediaSigner, s3_presigner
from memora_cdn.engine.publish import list_prefix, publish, read_state, reconcile, recorded_files
from memora_cdn.engine.read import read_plan
from memora_cdn.engine.render import render_plan
from memora_cdn.engine.resolve import resolve_plan
from memora_cdn.tracking.registry import PlanLocked, Registry
from memora_cdn.settings import Settings

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 50


@dataclass
class BuildResult:
    plan_id: str
    status: str  # "published" | "unchanged" | "removed"
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0
    files: int = 0
    lessons: int = 0
    problems: list[str] = field(default_factory=list)
    queries: int = 0
    seconds: float = 0.0
    renew_at: int | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step: list, read, ..., publish

    def summary(self) -> dict[str, Any]:
        """Small enough for XCom: counts, the changed keys, and the first problems."""
        out = asdict(self)
        out["problems"] = self.problems[:MAX_REPORTED_PROBLEMS]
        out["problem_count"] = len(self.problems)
        return out

    def purge_summary(self, prefix_threshold: int) -> dict[str, Any]:
        """`summary()` for XCom: counts, and the changed keys unless the plan's whole prefix is purged instead."""
        summary = self.summary()
        uploaded, deleted = summary.pop("uploaded"), summary.pop("deleted")
        changed = uploaded + deleted
        summary["files_uploaded"], summary["files_deleted"] = len(uploaded), len(deleted)
        summary["purge_prefix"] = len(changed) > prefix_threshold
        summary["purge_keys"] = [] if summary["purge_prefix"] else changed
        return summary


def build_plan(plan_id: str, *, db, s3, settings: Settings, now: datetime | None = None) -> BuildResult:
    """Make the bucket hold exactly what the database says plan `plan_id` publishes.

    `db` is a DB-API connection to the Frappe database, `s3` a boto3 S3 client. A plan that no
    longer exists has its whole folder removed.
    """
    started = time.monotonic()
    keys.check_name(plan_id, "plan")
    phases: dict[str, float] = {}

    def timed(phase: str, step, *args, **kwargs):
        t = time.monotonic()
        try:
            return step(*args, **kwargs)
        finally:
            phases[phase] = round(time.monotonic() - t, 3)

    # Listing the plan's folder is the slow part of a build without changes, and rendering needs only the
    # state object: render against it while the listing arrives, and again in the rare case that the
    # bucket turns out not to hold what the state object says (an interrupted build, files edited by hand).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="memora-listing") as background:
        listing = background.submit(timed, "list", list_prefix, s3, settings.bucket, keys.plan_prefix(plan_id))
        content = timed("read", read_plan, db, plan_id)
        if not content.exists:
            deleted = _remove_gone_plan(plan_id, listing.result(), db=db, s3=s3, settings=settings,
                                        why="is unpublished" if content.unpublished else "does not exist")
            return BuildResult(plan_id, "removed", deleted=deleted, queries=content.queries,
                               seconds=round(time.monotonic() - started, 3), phases=phases)
        recorded = timed("read_state", read_state, s3, settings.bucket, plan_id)
        resolved = timed("resolve", resolve_plan, content)
        signer = MediaSigner(
            media_bucket=settings.media_bucket,
            expiry_hours=settings.signed_url_expiry_hours,
            presign=s3_presigner(s3, settings.media_bucket),
            previous=recorded.get("signatures") or {},
        )
        rendered_against = recorded_files(recorded)
        rendering = timed("render", render_plan, resolved, settings, previous=rendered_against, signer=signer, now=now)
        state = timed("reconcile", reconcile, s3, settings.bucket, plan_id, listing.result(), recorded,
                      settings.upload_concurrency)
    if state.previous != rendered_against:
        log.info("plan %s: the bucket does not hold what its state object records; rendering against the bucket",
                 plan_id)
        rendering = timed("render_again", render_plan, resolved, settings, previous=state.previous, signer=signer,
                          now=now)
    published = timed(
        "publish", publish, s3, settings.bucket, rendering, state,
        cache_control=settings.cache_control, concurrency=settings.upload_concurrency,
        renew_at=signer.renew_at, signatures=signer.used,
    )
    problems = [str(p) for p in rendering.problems]
    for problem in problems[:MAX_REPORTED_PROBLEMS]:
        log.warning("%s", problem)
    if len(problems) > MAX_REPORTED_PROBLEMS:
        log.warning("plan %s: %d more problem(s) not shown", plan_id, len(problems) - MAX_REPORTED_PROBLEMS)
    result = BuildResult(
        plan_id,
        "published" if published.uploaded or published.deleted else "unchanged",
        uploaded=published.uploaded,
        deleted=published.deleted,
        bytes_uploaded=published.bytes_uploaded,
        files=len(rendering.files),
        lessons=rendering.lesson_count,
        problems=problems,
        queries=content.queries,
        seconds=round(time.monotonic() - started, 3),
        renew_at=signer.renew_at,
        phases=phases,
    )
    log.info("plan %s: %s, %d file(s), %d uploaded (%d bytes), %d deleted, %d problem(s), %d queries, %.2fs (%s)",
             plan_id, result.status, result.files, len(result.uploaded), result.bytes_uploaded,
             len(result.deleted), len(problems), result.queries, result.seconds,
             ", ".join(f"{phase} {seconds:.2f}s" for phase, seconds in phases.items()))
    return result


def _remove_gone_plan(plan_id: str, listed: dict[str, str], *, db, s3, settings: Settings,
                      why: str = "does not exist") -> list[str]:
    """A plan the database does not list: its folder goes to the trash, if the removal guard allows it
    (it refuses when the database lists no plans at all, or when max_plan_removals is 0): `RemovalRefused`."""
    from memora_cdn.engine.removal import judge, remove_plans

    if not listed and not list_prefix(s3, settings.bucket, keys.state_key(plan_id)):
        log.info("plan %s %s and has no files: nothing to remove", plan_id, why)
        return []
    decision = judge(db, s3, settings, [plan_id])
    deleted = remove_plans(s3, settings, decision, reason="not listed by the database (deleted or unpublished)",
                           listings={plan_id: listed})[plan_id]
    log.info("plan %s %s: moved its %d file(s) to the trash", plan_id, why, len(deleted))
    return deleted


def build_plan_locked(plan_id: str, *, registry: Registry | None, db, s3, settings: Settings) -> BuildResult:
    """`build_plan` under the plan's lock, then schedule its signed-URL renewal.

    Without a registry (no `memora_redis` configured) the plan is built without a lock. A plan locked
    by another build goes back into the pending set and `PlanLocked` is raised: it is never dropped.
    """
    if registry is None:
        return build_plan(plan_id, db=db, s3=s3, settings=settings)
    try:
        with registry.lock(plan_id, settings.lock_ttl_seconds):
            result = build_plan(plan_id, db=db, s3=s3, settings=settings)
    except PlanLocked:
        registry.mark([plan_id])  # the sync DAG builds it once the other build is done
        raise
    registry.schedule_renewal(plan_id, result.renew_at)
    return result
