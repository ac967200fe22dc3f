"""Nightly full rebuild of every plan's CDN files, repairing any drift between database and bucket.

Each plan's changes are purged from the CDN as soon as they are uploaded; the purge task purges the
folders of deleted plans and whatever a build could not purge.

A manual run may be limited to some plans: trigger it with the `plans` param (a list of plan names).

Plans that the database no longer lists (deleted or unpublished) are removed only within the removal
guard: when the database lists no plans at all, or more would go than `max_plan_removals` allows, the
`remove_deleted_plans` task removes nothing and fails, saying what and why, until an operator confirms
with the `confirm_removals` param. Removed plans are kept under the bucket's private `_memora_cdn_trash/`
prefix for `trash_retention_days` (`python -m memora_cdn restore PLAN`); `purge_expired_trash` deletes
older copies.

Every plan is built through the same path as the sync's (`memora_cdn.tracking.run.run_plan`, triggered_by
Nightly): a plan repaired here leaves the dead letter and shows as succeeded; a plan failing here gets its retry
from the sync DAG. A failed run calls the failure notifier (alert_emails in memora_cdn_settings).
"""
from __future__ import annotations

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from memora_cdn import limits
from memora_cdn.orchestration.alerts import build_failed, nightly_failed
from memora_cdn.orchestration.assets import PLAN_PUBLISHED
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
        "confirm_removals": Param(
            False,
            type="boolean",
            title="Confirm removals",
            description="Remove every plan folder that the database does not list, even when the removal guard "
                        "would refuse (the database lists no plans, or more than max_plan_removals would go). "
                        "Removed plans stay restorable for trash_retention_days. Ignored when Plans is set.",
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

    # Each plan that changed emits a "plan published" event (see memora_cdn.orchestration.assets).
    @task(pool=BUILD_POOL, map_index_template="{{ plan_label }}", outlets=[PLAN_PUBLISHED],
          execution_timeout=timeout(limits.NIGHTLY_BUILD_TIMEOUT), on_failure_callback=build_failed)
    def build(plan_ids: list[str]) -> list[dict]:
        from memora_cdn.orchestration.tasks import build_plans, group_label

        ctx = get_current_context()
        ctx["plan_label"] = group_label(plan_ids)
        return build_plans(plan_ids, run_id=ctx["run_id"], final_try=final_try(ctx["ti"]),
                           published=ctx["outlet_events"][PLAN_PUBLISHED])

    @task(outlets=[PLAN_PUBLISHED], execution_timeout=timeout(limits.NIGHTLY_REMOVE_TIMEOUT))
    def remove_deleted_plans() -> list[str]:
        from memora_cdn.orchestration.tasks import remove_deleted_plans

        ctx = get_current_context()
        params = ctx["params"]
        if params.get("plans"):
            return []  # a limited run removes only the listed plans that no longer exist (the build does)
        return remove_deleted_plans(confirmed=params.get("confirm_removals") is True,
                                    published=ctx["outlet_events"][PLAN_PUBLISHED])

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def removal_refused() -> None:
        """Fails the run when the removal step failed (the purge, the other leaf below it, succeeds by design)."""
        raise RuntimeError("remove_deleted_plans failed: see its log (a refused removal says what it would have "
                           "removed and why; confirm with the confirm_removals param)")

    @task(multiple_outputs=False)
    def purge_expired_trash() -> dict:
        from memora_cdn.orchestration.tasks import purge_expired_trash

        return purge_expired_trash()

    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=timeout(limits.PURGE_TIMEOUT))
    def purge(built, removed) -> dict | None:
        from memora_cdn.orchestration.tasks import full_rebuild_purge

        return full_rebuild_purge(built, removed)

    groups = plan_groups()
    built = build.expand(plan_ids=groups)
    removed = remove_deleted_plans()
    groups >> removed
    purge(built, removed)
    removed >> removal_refused()
    purge_expired_trash()


memora_cdn_full_rebuild()
