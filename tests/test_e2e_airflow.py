"""End to end against a running Airflow (`airflow standalone`: api-server, scheduler, dag-processor, triggerer),
driven only through its REST API v2, as the UI does. Real MariaDB, Redis, moto S3 (behind a fault proxy)."""
from __future__ import annotations

import json
import time

import pytest

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.publish import list_prefix
from memora_cdn.tracking.registry import Registry
from memora_cdn.settings import parse_settings
from tests.standins.s3_proxy import S3FaultProxy
from tests.airflow_cluster import memora_env, standalone
from tests.support import REDIS_PORT, scratch_database

PLANS = [f"PLAN-2026-{n:04d}" for n in range(1, 51)]
REDIS_DB = 10


@pytest.fixture(scope="module")
def stack(s3_server, tmp_path_factory):
    """Demo content (50 small plans), published once, and an Airflow standalone wired to it."""
    import redis

    home = tmp_path_factory.mktemp("airflow_e2e")
    registry = Registry(redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB))
    registry.redis.flushdb()
    with scratch_database() as (db_name, conn), S3FaultProxy(s3_server.endpoint) as proxy:
        demo.load(conn, demo.generate(demo.DemoScale(plans=50, subjects_per_plan=1, lessons_per_plan=6,
                                                     stages_per_lesson=1, shared_subjects=0)))
        settings = parse_settings({"bucket": "memora-e2e", "media_bucket": "memora-e2e-media", "batch_size": 50,
                                   "batch_threshold": 50, "cdn_base_url": "https://cdn.memora.test"})
        s3 = s3_server.client()
        for bucket in (settings.bucket, settings.media_bucket):
            s3.create_bucket(Bucket=bucket)
        for plan_id in PLANS:
            build_plan(plan_id, db=conn, s3=s3, settings=settings)
        env = memora_env(db_name=db_name, redis_db=REDIS_DB, s3_endpoint=proxy.endpoint, settings=settings)
        env["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "2"
        try:
            with standalone(home, env, pools={"memora_cdn_builds": 4}) as api:
                yield {"api": api, "db": conn, "s3": s3, "settings": settings, "registry": registry, "proxy": proxy,
                       "home": home}
        finally:
            registry.redis.flushdb()


def etags(stack, plan_id):
    return list_prefix(stack["s3"], stack["settings"].bucket, keys.plan_prefix(plan_id))


def edit_plan_title(stack, plan_id, title):
    cur = stack["db"].cursor()
    cur.execute("UPDATE `tabMemora Academic Plan` SET title = %s WHERE name = %s", (title, plan_id))
    stack["db"].commit()


def test_the_scheduler_runs_the_sync_on_its_own_after_a_plan_is_marked(stack):
    api, plan_id = stack["api"], PLANS[0]
    before = etags(stack, plan_id)
    edit_plan_title(stack, plan_id, "خطة مجدولة")
    marked_at = time.time()
    stack["registry"].mark([plan_id])
    # the next */5 cron tick: at most five minutes away
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        runs = [r for r in api.runs("memora_cdn_sync") if r["run_type"] == "scheduled" and r["state"] == "success"
                and r["start_date"] and time.mktime(time.strptime(r["start_date"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone >= marked_at - 1]
        if runs:
            break
        time.sleep(5)
    else:
        raise AssertionError("no scheduled memora_cdn_sync run picked the plan up")
    assert etags(stack, plan_id)[keys.manifest_key(plan_id)] != before[keys.manifest_key(plan_id)]
    assert stack["registry"].pending_count() == 0


def test_threshold_starts_a_run_within_30_seconds(stack):
    api = stack["api"]
    known = {r["dag_run_id"] for r in api.runs("memora_cdn_sync")}
    marked = time.monotonic()
    stack["registry"].mark(PLANS)
    run = None
    while time.monotonic() - marked < 30:
        fresh = [r for r in api.runs("memora_cdn_sync") if r["dag_run_id"] not in known]
        if fresh:
            run = fresh[0]
            break
        time.sleep(1)
    assert run is not None, "50 pending plans did not start memora_cdn_sync within 30 s"
    assert run["run_type"] == "asset_triggered"
    done = api.wait_run("memora_cdn_sync", run["dag_run_id"], timeout=600)
    assert done["state"] == "success"
    builds = [ti for ti in api.task_instances("memora_cdn_sync", run["dag_run_id"]) if ti["task_id"] == "build"]
    assert sorted(ti["rendered_map_index"] for ti in builds) == PLANS  # each mapped task shows its plan


def test_a_manual_full_rebuild_with_a_plan_list_rebuilds_only_those(stack):
    api = stack["api"]
    chosen, other = PLANS[2], PLANS[3]
    edit_plan_title(stack, chosen, "Chosen plan")
    edit_plan_title(stack, other, "Not chosen")
    before_other = etags(stack, other)
    run = api.post("/dags/memora_cdn_full_rebuild/dagRuns", {"logical_date": None, "conf": {"plans": [chosen]}})
    done = api.wait_run("memora_cdn_full_rebuild", run["dag_run_id"])
    assert done["state"] == "success"
    manifest = json.loads(stack["s3"].get_object(Bucket=stack["settings"].bucket, Key=keys.manifest_key(chosen))["Body"].read())
    assert manifest["title"] == "Chosen plan"
    assert etags(stack, other) == before_other
    builds = [ti for ti in api.task_instances("memora_cdn_full_rebuild", run["dag_run_id"]) if ti["task_id"] == "build"]
    assert [ti["rendered_map_index"] for ti in builds] == [chosen]


def test_a_broken_plan_fails_alone_is_dead_lettered_after_its_retries_then_clearing_its_task_fixes_it(stack):
    """Retries between runs with a 2 s delay (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY): each run tries the broken
    plan once (plus one short in-run retry) and ends; the next run retries it once its backoff has passed; the
    fourth failed run dead-letters it. Once S3 accepts its writes, clearing that task publishes it."""
    from memora_cdn.tracking import sync_log

    api, proxy = stack["api"], stack["proxy"]
    broken, fine = PLANS[4], PLANS[5]
    edit_plan_title(stack, broken, "Broken for now")
    edit_plan_title(stack, fine, "Fine")
    proxy.deny_prefix(keys.plan_prefix(broken))  # the S3 key policy refuses this plan's writes
    try:
        run = api.post("/dags/memora_cdn_sync/dagRuns", {"logical_date": None, "conf": {"plans": [broken, fine]}})
        done = api.wait_run("memora_cdn_sync", run["dag_run_id"], timeout=600)
        assert done["state"] == "failed"
        builds = {ti["rendered_map_index"]: ti for ti in api.task_instances("memora_cdn_sync", run["dag_run_id"])
                  if ti["task_id"] == "build"}
        assert builds[fine]["state"] == "success" and builds[broken]["state"] == "failed"
        assert builds[broken]["try_number"] == 2  # one short in-run retry, no backoff inside the run
        manifest = json.loads(stack["s3"].get_object(Bucket=stack["settings"].bucket, Key=keys.manifest_key(fine))["Body"].read())
        assert manifest["title"] == "Fine"
        # each later run takes the due retry (started by hand here, to be quick; a scheduled run may take it too)
        dead_run = None
        for _ in range(8):
            time.sleep(9)  # the longest backoff here: 2 s * 2^2
            run = api.post("/dags/memora_cdn_sync/dagRuns", {"logical_date": None, "conf": {}})
            api.wait_run("memora_cdn_sync", run["dag_run_id"], timeout=600)
            stack["db"].commit()
            tries = sorted((r for r in sync_log.recent(stack["db"], plan_id=broken, limit=10)
                            if r["status"] in ("Failed", "Dead Letter")), key=lambda r: r["retry_count"])
            if tries and tries[-1]["status"] == "Dead Letter":
                dead_run = next(r["dag_run_id"] for r in api.runs("memora_cdn_sync")
                                if sync_log.row_name(r["dag_run_id"], broken) == tries[-1]["name"])
                break
        assert dead_run is not None, tries
        assert [r["retry_count"] for r in tries] == [0, 1, 2, 3]  # the first try and 3 retries, one per run
        assert broken in stack["registry"].dead_letters()
        run = api.get(f"/dags/memora_cdn_sync/dagRuns/{dead_run}")
        assert run["state"] == "failed"
        builds = {ti["rendered_map_index"]: ti for ti in api.task_instances("memora_cdn_sync", dead_run)
                  if ti["task_id"] == "build"}
    finally:
        proxy.allow_all()  # the cause is fixed
    api.post("/dags/memora_cdn_sync/clearTaskInstances", {
        "dry_run": False, "dag_run_id": run["dag_run_id"], "task_ids": [["build", builds[broken]["map_index"]]],
        "only_failed": False, "include_downstream": True,  # the purge and the failure watcher run again too
    })
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        tis = {ti["rendered_map_index"]: ti for ti in api.task_instances("memora_cdn_sync", run["dag_run_id"]) if ti["task_id"] == "build"}
        if tis[broken]["state"] in ("success", "failed"):
            break
        time.sleep(2)
    assert tis[broken]["state"] == "success"
    assert api.wait_run("memora_cdn_sync", run["dag_run_id"])["state"] == "success"
    manifest = json.loads(stack["s3"].get_object(Bucket=stack["settings"].bucket, Key=keys.manifest_key(broken))["Body"].read())
    assert manifest["title"] == "Broken for now"
    assert broken not in stack["registry"].dead_letters()
