"""Nightly full rebuild of every plan's CDN files, repairing any drift between database and bucket.

Each plan's changes are purged from the CDN as soon as they are uploaded; the purge task purges the
folders of deleted plans and whatever a build could not purge.

A manual run may be limited to some plans: trigger it with the `plans` param (a list of plan names).
"""
from __future__ import annotations

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from memora_cdn.orchestration.assets import PLAN_PUBLISHED
from memora_cdn.orchestration.defaults import BUILD_POOL, DAG_ARGS


@dag(
    dag_id="memora_cdn_full_rebuild",
    schedule="0 2 * * *",
    doc_md=__doc__,
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
    @task
    def plan_groups() -> list[list[str]]:
        from airflow.sdk.configuration import conf

        from memora_cdn.orchestration.tasks import group_plans, plans_to_rebuild

        plans = plans_to_rebuild(get_current_context()["params"].get("plans"))
        return group_plans(plans, conf.getint("core", "max_map_length", fallback=1024))

    # Each plan that changed emits a "plan published" event (see memora_cdn.orchestration.assets).
    @task(pool=BUILD_POOL, map_index_template="{{ plan_label }}", outlets=[PLAN_PUBLISHED])
    def build(plan_ids: list[str]) -> list[dict]:
        from memora_cdn.orchestration.tasks import build_plans, group_label

        ctx = get_current_context()
        ctx["plan_label"] = group_label(plan_ids)
        return build_plans(plan_ids, published=ctx["outlet_events"][PLAN_PUBLISHED])

    @task(outlets=[PLAN_PUBLISHED])
    def remove_deleted_plans() -> list[str]:
        from memora_cdn.orchestration.tasks import remove_deleted_plans

        ctx = get_current_context()
        if ctx["params"].get("plans"):
            return []  # a limited run removes only the listed plans that no longer exist (the build does)
        return remove_deleted_plans(published=ctx["outlet_events"][PLAN_PUBLISHED])

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def purge(built, removed) -> dict | None:
        from memora_cdn.orchestration.tasks import full_rebuild_purge

        return full_rebuild_purge(built, removed)

    groups = plan_groups()
    built = build.expand(plan_ids=groups)
    removed = remove_deleted_plans()
    groups >> removed
    purge(built, removed)


memora_cdn_full_rebuild()
