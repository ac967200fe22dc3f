"""The five-minute sync (SPEC §7-8): what is waiting, claiming a batch, purging. A claimed plan is built by
`memora_cdn.tracking.run.run_plan`, the one build path of every trigger.

Plain functions over a `Registry` (Redis), a DB-API connection and an S3 client, so they are tested
without a scheduler; `dags/memora_cdn_sync.py` only wires them to Airflow.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from memora_cdn.engine import keys
from memora_cdn.tracking import sync_log
from memora_cdn.purge import PlanPurge, PurgeReport
from memora_cdn.engine.read import existing_plans
from memora_cdn.tracking.registry import Registry
from memora_cdn.settings import Settings

log = logging.getLogger(__name__)

MAX_REPORTED_REFUSALS = 20


@dataclass
class Waiting:
    pending: int
    fallback_rows: int
    due_retries: int
    renewals_due: int

    @property
    def anything(self) -> bool:
        return any((self.pending, self.fallback_rows, self.due_retries, self.renewals_due))


def waiting(registry: Registry, db) -> Waiting:
    """What a sync run would have to do: one SCARD, one ZCOUNT and one small query on the sync log."""
    fallback_rows, due_retries = sync_log.count_waiting(db)
    return Waiting(registry.pending_count(), fallback_rows, due_retries, registry.renewals_due())


@dataclass
class ClaimedBatch:
    plans: list[dict[str, Any]] = field(default_factory=list)  # [{"plan_id", "triggered_by", "pending_since"}]
    refused: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # waiting for their scheduled retry
    recovered: int = 0
    drained: int = 0


def _describe(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:60] + "…")


def claim_batch(registry: Registry, db, s3, settings: Settings, run_id: str, triggered_by: str,
                recover_after: int = 120) -> ClaimedBatch:
    """Drain the sync log's queued fallbacks and due retries into the pending set, then claim a batch.

    Names that are not plans are refused (reported, dropped from the claim, never made into keys).
    A name that is no longer in the database but still has files is a deleted plan: it is claimed,
    and its build removes the folder, if the removal guard allows (`engine.removal`); when it refuses
    (the database lists no plans, or too many removals at once) those plans are held, not claimed.
    """
    abandoned = sync_log.sweep_abandoned(db)
    if abandoned:
        log.warning("marked %d sync log row(s) left Processing by builds that died as Failed", abandoned)
    fallback, retries = sync_log.take_waiting(db)
    try:
        registry.mark(fallback + retries)
        db.commit()
    except Exception:
        db.rollback()
        raise
    claim = registry.claim(run_id, settings.batch_size, recover_after)
    batch = ClaimedBatch(recovered=claim.recovered, drained=len(fallback) + len(retries))
    if triggered_by != "Manual":
        # A plan waiting for its next retry is not rebuilt for an edit in the meantime (it would fail again at
        # once and use up a retry): its due retry brings it back, and that build reads the edit too.
        for name in sorted(sync_log.backing_off(db, [n for n in claim.plans if keys.is_safe_name(n)])):
            registry.release(run_id, name)
            batch.deferred.append(name)
            log.info("plan %s waits for its scheduled retry; its retry builds this change too", name)
        claim.plans = [n for n in claim.plans if n not in batch.deferred]
    safe = [name for name in claim.plans if keys.is_safe_name(name)]
    in_db = existing_plans(db, safe)
    removals = []  # gone from the database but still on the CDN: removed by their build, if the guard allows
    for name in claim.plans:
        if name in in_db or (keys.is_safe_name(name) and _has_files(s3, settings.bucket, name)):
            if name not in in_db:
                removals.append(name)
            batch.plans.append({"plan_id": name, "triggered_by": "Fallback Recovery" if name in fallback else triggered_by,
                                "pending_since": claim.pending_since.get(name)})
            continue
        reason = "not a valid plan name" if not keys.is_safe_name(name) else "no such plan"
        batch.refused.append(f"{_describe(name)}: {reason}")
        registry.release(run_id, name)
    if removals:
        held = _guard_removals(registry, db, s3, settings, run_id, removals)
        batch.plans = [p for p in batch.plans if p["plan_id"] not in held]
    _requeue_held_plans_that_are_back(registry, db)
    for refusal in batch.refused[:MAX_REPORTED_REFUSALS]:
        log.warning("refused pending entry %s", refusal)
    if len(batch.refused) > MAX_REPORTED_REFUSALS:
        log.warning("refused %d more pending entries", len(batch.refused) - MAX_REPORTED_REFUSALS)
    log.info("claimed %d plan(s) (%d recovered from earlier runs, %d drained from the sync log), refused %d, "
             "%d waiting for their retry", len(batch.plans), batch.recovered, batch.drained, len(batch.refused),
             len(batch.deferred))
    return batch


def _guard_removals(registry: Registry, db, s3, settings: Settings, run_id: str, removals: list[str]) -> set[str]:
    """The removal guard over the claimed plans this run would remove. Refused: they leave the claim for the
    held set (never dropped, never removed; see `tracking.removals`), the refusal is recorded for the
    dashboard, and the run goes on with its other plans. Returns the held plans."""
    from memora_cdn.engine.removal import judge
    from memora_cdn.tracking import removals as removal_record

    decision = judge(db, s3, settings, removals)
    if not decision.refused:
        return set()
    removal_record.hold(registry, decision.candidates)
    for name in decision.candidates:
        registry.release(run_id, name)
    removal_record.record_refusal(registry, "sync", decision)
    log.error("sync: %s The plans are held (cdn_export:removals_held), not dropped.", decision.message())
    return set(decision.candidates)


def _requeue_held_plans_that_are_back(registry: Registry, db) -> None:
    """Held plans that the database lists again (the restore finished) go back to pending: they are rebuilt."""
    from memora_cdn.tracking import removals as removal_record

    held = removal_record.held(registry)
    if not held:
        return
    back = sorted(existing_plans(db, [p for p in held if keys.is_safe_name(p)]))
    if back:
        removal_record.release_held(registry, back, requeue=True)
        log.info("%d held plan(s) are in the database again and are pending again: %s", len(back), ", ".join(back[:20]))


def _has_files(s3, bucket: str, plan_id: str) -> bool:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=keys.plan_prefix(plan_id), MaxKeys=1)
    return bool(page.get("KeyCount"))


def purge_requests(summaries: Iterable[dict[str, Any] | None]) -> list[PlanPurge]:
    """What is left to purge for the plans that succeeded: failed mapped tasks leave no summary, and a plan
    whose build already purged its changes (`purge_built_plan`) has nothing left."""
    out = []
    for summary in summaries:
        if not summary or summary.get("purged") or not (summary.get("purge_keys") or summary.get("purge_prefix")):
            continue
        out.append(PlanPurge(summary["plan_id"], tuple(summary.get("purge_keys") or ()), bool(summary.get("purge_prefix"))))
    return out


def purge_built_plan(make_purger: Callable[[], Any], settings: Settings, summary: dict[str, Any]) -> dict[str, Any]:
    """Purge one plan's changes as soon as its build has uploaded them, so that no plan waits for the rest of
    its run (SPEC §8: within 60 s of the upload; a run's other plans may take minutes, or be waiting for a retry).

    Never raises: the files are published. The summary comes back with `purged` true when the CDN took the
    purge; when it did not, `purged` is false and the run's purge task (which runs whatever the builds did,
    and is retried) purges it.
    """
    requests = purge_requests([summary])
    if not requests:
        return summary
    try:
        report = purge(make_purger(), settings, requests)
    except Exception as exc:  # the purgers never put the token in a message
        log.warning("plan %s: purge failed (%s: %s); the run's purge task will retry it",
                    summary["plan_id"], type(exc).__name__, exc)
        return {**summary, "purged": False}
    return {**summary, "purged": True, "purge": report.as_dict() if report else None}


def purge(purger, settings: Settings, requests: list[PlanPurge]) -> PurgeReport | None:
    if not requests:
        log.info("nothing left to purge")
        return None
    report = purger.purge(settings.cdn_base_url, requests, settings.purge_prefix_threshold)
    log.info("purged %d URL(s) and %d prefix(es) in %d request(s), %d retries",
             report.urls_purged, report.prefixes_purged, report.requests, report.retries)
    return report
