"""Asset events for published plans, so that a downstream DAG can be scheduled on "a plan was published".

Every plan build that changed the bucket (files uploaded or deleted, or a deleted plan's folder removed) adds
one asset event through the asset alias `memora_cdn_plan_published`. The event is for the plan's folder,
`s3://<bucket>/plans/<plan>` (an asset per plan, created by Airflow on its first event), and its extra says
what changed (`event_extra`). A build that changed nothing adds no event. Airflow records the events only
when the task succeeds.

A consumer schedules on the alias (every plan) or on one plan's asset:

    schedule=[AssetAlias("memora_cdn_plan_published")]
    schedule=[Asset("s3://memora-cdn/plans/PLAN-2026-0001")]

Imported by the DAG files at parse time: nothing here but `airflow.sdk` and the key layout.
"""
from __future__ import annotations

from typing import Any, Mapping

from airflow.sdk import Asset, AssetAlias

from memora_cdn.engine import keys

PLAN_PUBLISHED = AssetAlias(name="memora_cdn_plan_published")

# At most this many changed keys travel in one event's extra (the asset event table is not a file listing);
# `changed_keys_complete` says whether the list is whole. When it is not, treat the plan's whole folder as changed.
MAX_EVENT_KEYS = 100

CHANGED_STATUSES = ("published", "removed")


def plan_asset(bucket: str, plan_id: str) -> Asset:
    """The asset of one plan's published folder: `s3://<bucket>/plans/<plan>` (name = URI)."""
    uri = f"s3://{bucket}/{keys.plan_prefix(plan_id)}".rstrip("/")
    return Asset(name=uri, uri=uri)


def event_extra(bucket: str, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The extra of the event for one build summary (`BuildResult.purge_summary`); None when nothing changed.

    Keys: plan_id, bucket, status ("published" or "removed"), files_uploaded, files_deleted, changed_keys
    (bucket keys, at most MAX_EVENT_KEYS) and changed_keys_complete.
    """
    status = summary.get("status")
    if status not in CHANGED_STATUSES:
        return None
    uploaded, deleted = int(summary.get("files_uploaded") or 0), int(summary.get("files_deleted") or 0)
    # Above the purge-prefix threshold the summary carries no key list: the whole folder counts as changed.
    changed = [] if summary.get("purge_prefix") else list(summary.get("purge_keys") or [])
    complete = not summary.get("purge_prefix") and len(changed) == uploaded + deleted and len(changed) <= MAX_EVENT_KEYS
    return {
        "plan_id": summary["plan_id"],
        "bucket": bucket,
        "status": status,
        "files_uploaded": uploaded,
        "files_deleted": deleted,
        "changed_keys": changed[:MAX_EVENT_KEYS],
        "changed_keys_complete": complete,
    }


def announce(published, bucket: str, summary: Mapping[str, Any]) -> bool:
    """Add the event of one build to `published` (the task's `outlet_events[PLAN_PUBLISHED]`); None is a no-op
    (a caller outside a DAG task). True when an event was added."""
    if published is None:
        return False
    extra = event_extra(bucket, summary)
    if extra is None:
        return False
    published.add(plan_asset(bucket, summary["plan_id"]), extra=extra)
    return True
