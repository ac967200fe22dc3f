"""Rebuild the plans that changed: as soon as the oldest pending change is `debounce_seconds` old or
`batch_threshold` plans are pending (the asset watcher in the triggerer), and every five minutes as a safety net.
A debounce- or threshold-started run is recorded as `Threshold` in the sync log.

check (skip cheaply when nothing waits, including plans whose retry is due) -> claim a batch -> build each plan
(mapped, locked), each build purging the CDN for what it changed as soon as it is uploaded -> purge what the
builds could not (CDN API down). A manual run can add plans with the `plans` param.

A plan that fails is not retried inside the run (one short retry for a blip at most): its build task fails, and
a later run retries it once its backoff has passed ([core] default_task_retry_delay, doubling, 3 retries, then
the dead letter). Clearing the failed build task rebuilds it at once. The run is bounded (dagrun_timeout), every
task has an execution_timeout.
"""
from __future__ import annotations

from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronTriggerTimetable,
    Param,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

from memora_cdn import limits
from memora_cdn.orchestration.alerts import build_failed
from memora_cdn.orchestration.assets import PLAN_PUBLISHED
from memora_cdn.orchestration.defaults import BUILD_POOL, DAG_ARGS, final_try, timeout
from memora_cdn.tracking.triggers import PendingPlansTrigger

PENDING_PLANS = Asset(
    name="memora_pending_plans",
    uri="redis://memora_redis/cdn_export:pending_plans",
    watchers=[AssetWatcher(name="memora_pending_plans_threshold", trigger=PendingPlansTrigger())],
)

TRIGGERED_BY = {"scheduled": "Scheduler", "asset_triggered": "Threshold", "manual": "Manual"}


@dag(
    dag_id="memora_cdn_sync",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("*/5 * * * *", timezone="UTC"), assets=[PENDING_PLANS]),
    doc_md=__doc__,
    dagrun_timeout=timeout(limits.SYNC_DAGRUN_TIMEOUT),
    # No DeadlineAlert for the 10-minute service level: not usable in Airflow 3.3.2 (docs/operations.md says why).
    **DAG_ARGS,
    params={
        "plans": Param([], type="array", items={"type": "string"}, title="Plans",
                       description="Plan names to mark as changed before claiming (optional)."),
    },
)
def memora_cdn_sync():
    # check and claim are not retried: a retry would hold the only allowed run open for minutes, and the
    # next five-minute run does the same work (nothing is lost: claims and fallback rows are atomic).
    @task.short_circuit(retries=0, execution_timeout=timeout(limits.CHECK_TIMEOUT))
    def check() -> bool:
        from memora_cdn.orchestration.tasks import sync_waiting

        return sync_waiting(get_current_context()["params"].get("plans") or [])

    @task(retries=0, execution_timeout=timeout(limits.CLAIM_TIMEOUT))
    def claim() -> list[dict]:
        from memora_cdn.orchestration.tasks import sync_claim

        ctx = get_current_context()
        run_type = ctx["dag_run"].run_type
        return sync_claim(ctx["run_id"], TRIGGERED_BY.get(getattr(run_type, "value", run_type), "Scheduler"))

    # One XCom per build (the summary), not one per key too; a plan that changed emits a "plan published" event.
    @task(pool=BUILD_POOL, map_index_template="{{ plan_label }}", multiple_outputs=False, outlets=[PLAN_PUBLISHED],
          execution_timeout=timeout(limits.BUILD_TIMEOUT), on_failure_callback=build_failed)
    def build(plan: dict) -> dict:
        from memora_cdn.orchestration.tasks import sync_build

        ctx = get_current_context()
        ctx["plan_label"] = plan["plan_id"]
        return sync_build(plan, run_id=ctx["run_id"], final_try=final_try(ctx["ti"]),
                          published=ctx["outlet_events"][PLAN_PUBLISHED])

    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timeout(limits.PURGE_TIMEOUT))
    def purge(summaries) -> dict | None:
        from memora_cdn.orchestration.tasks import sync_purge

        return sync_purge(summaries)

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0, execution_timeout=timeout(60))
    def any_plan_failed() -> None:
        """Fails the run when a plan failed (the purge, its other leaf, succeeds by design)."""
        raise RuntimeError("at least one plan build failed: see the failed `build` task instances and the dead letters")

    claimed = claim()
    check() >> claimed
    builds = build.expand(plan=claimed)
    purge(builds)
    builds >> any_plan_failed()


memora_cdn_sync()
