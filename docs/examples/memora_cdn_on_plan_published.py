"""Example consumer: runs whenever Memora CDN publishes a plan (see docs/assets.md).

The Memora DAGs emit one asset event per plan whose published files changed, through the asset alias
`memora_cdn_plan_published`, on the asset `s3://<bucket>/plans/<plan>`. Events that arrive while this DAG is
queued land in one run; each event's extra names the plan and the keys that changed. Copy this file into
any DAG bundle of the same Airflow: it needs neither the memora_cdn package nor its connections.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from airflow.sdk import AssetAlias, dag, get_current_context, task

# The contract with the Memora DAGs: the alias name (memora_cdn.orchestration.assets.PLAN_PUBLISHED).
PLAN_PUBLISHED = AssetAlias(name="memora_cdn_plan_published")

log = logging.getLogger(__name__)


@dag(
    dag_id="memora_cdn_example_on_plan_published",
    schedule=[PLAN_PUBLISHED],  # or [Asset("s3://memora-cdn/plans/PLAN-2026-0001")] for one plan only
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["memora", "cdn", "example"],
    doc_md=__doc__,
)
def memora_cdn_example_on_plan_published():
    @task(multiple_outputs=False)
    def published_plans() -> list[dict]:
        """What this run was triggered by: one entry per published plan (the latest event of each plan)."""
        latest: dict[str, dict] = {}
        for event in get_current_context()["triggering_asset_events"][PLAN_PUBLISHED]:
            extra = event.extra or {}
            latest[extra["plan_id"]] = {
                "plan_id": extra["plan_id"],
                "asset_uri": event.asset.uri,
                "status": extra["status"],
                "changed_keys": extra["changed_keys"],
                # False: more keys changed than the event lists; treat the plan's whole folder as changed
                "changed_keys_complete": extra["changed_keys_complete"],
                "source": f"{event.source_dag_id}/{event.source_run_id}",
            }
        for plan in latest.values():
            log.info("plan %s %s (%d key(s) listed) by %s", plan["plan_id"], plan["status"],
                     len(plan["changed_keys"]), plan["source"])
        return sorted(latest.values(), key=lambda p: p["plan_id"])

    published_plans()


memora_cdn_example_on_plan_published()
