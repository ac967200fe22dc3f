"""Nightly full rebuild of every plan's CDN files, repairing any drift between database and bucket.

Each plan's changes are purged from the CDN as soon as they are uploaded; the purge task purges the
folders of deleted plans and whatever a build could not purge.

A manual run may be limited to some plans: trigger it with the `plans` param (a list of plan names).

Every plan is built through the same path as the sync's (`memora_cdn.tracking.run.run_plan`, triggered_by
Nightly): a plan repaired here leaves the dead letter and shows as succeeded; a plan failing here gets its retry
from the sync DAG. A failed run calls the failure notifier (alert_emails in memora_cdn_settings).
"""
from __future__ import annotations

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from memora_cdn import limits
from memora_cdn.orchestration.alerts import build_failed, nightly_failed
from memora_cdn.orchestration.defaults import BUILD_POOL, DAG_ARGS, final_try, timeout


@dag(
    dag_id="memora_cdn_full_rebuild",
    schedule="0 2 * * *",
    doc_md=__doc__,
    dagrun_timeout=timeout(limits.NIGHTLY_DAGRUN_TIMEOUT),
    on_failure_callback=nightly_failed,
    **DAG_ARGS,
    params={
        "plans": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Plans",
            description="Plan names to rebuild, one per line. Leave empty to rebuild every plan and remove deleted plans.",
        ),
    },
)
def memora_cdn_full_rebuild():
    @task(execution_timeout=timeout(limits.NIGHTLY_LIST_TIMEOUT))
    def plan_groups() -> list[list[str]]:
        from airflow.sdk.configuration import conf

        from memora_cdn.orchestration.tasks import group_plans, plans_to_rebuild

        plans = plans_to_rebuild(get_current_context()["params"].get("plans"))
        return group_plans(plans, conf.getint("core", "max_map_length", fallback=1024))

    @task(pool=BUILD_POOL, map_index_template="{{ plan_label }}",
          execution_timeout=timeout(limits.NIGHTLY_BUILD_TIMEOUT), on_failure_callback=build_failed)
    def build(plan_ids: list[str]) -> list[dict]:
        from memora_cdn.orchestration.tasks import build_plans, group_label

        ctx = get_current_context()
        ctx["plan_label"] = group_label(plan_ids)
        return build_plans(plan_ids, run_id=ctx["run_id"], final_try=final_try(ctx["ti"]))

    @task(execution_timeout=timeout(limits.NIGHTLY_REMOVE_TIMEOUT))
    def remove_deleted_plans() -> list[str]:
        from memora_cdn.orchestration.tasks import remove_deleted_plans

        if get_current_context()["params"].get("plans"):
            return []  # a limited run removes only the listed plans that no longer exist (the build does)
        return remove_deleted_plans()

    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timeout(limits.PURGE_TIMEOUT))
    def purge(built, removed) -> dict | None:
        from memora_cdn.orchestration.tasks import full_rebuild_purge

        return full_rebuild_purge(built, removed)

    groups = plan_groups()
    built = build.expand(plan_ids=groups)
    removed = remove_deleted_plans()
    groups >> removed
    purge(built, removed)


memora_cdn_full_rebuild()
