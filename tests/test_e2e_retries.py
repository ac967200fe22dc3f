"""End to end against `airflow standalone` with Airflow's DEFAULT retry delay (no AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY):
a plan whose S3 writes keep failing does not hold back an edit to another plan, and is retried between runs on
its backoff schedule (300 s, then 600 s), by the schedules alone. About 12 minutes."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.settings import parse_settings
from memora_cdn.tracking import sync_log
from memora_cdn.tracking.registry import Registry
from tests.airflow_cluster import memora_env, standalone
from tests.standins.s3_proxy import S3FaultProxy
from tests.support import REDIS_PORT, scratch_database

PLANS = [f"PLAN-2026-{n:04d}" for n in range(1, 7)]
REDIS_DB = 9


@pytest.fixture(scope="module")
def stack(s3_server, tmp_path_factory):
    import redis

    home = tmp_path_factory.mktemp("airflow_e2e_retries")
    registry = Registry(redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB))
    registry.redis.flushdb()
    with scratch_database() as (db_name, conn), S3FaultProxy(s3_server.endpoint) as proxy:
        demo.load(conn, demo.generate(demo.DemoScale(plans=len(PLANS), subjects_per_plan=1, lessons_per_plan=6,
                                                     stages_per_lesson=1, shared_subjects=0)))
        settings = parse_settings({"bucket": "memora-e2e-retries", "media_bucket": "memora-e2e-retries-media",
                                   "cdn_base_url": "https://cdn.memora.test"})
        s3 = s3_server.client()
        for bucket in (settings.bucket, settings.media_bucket):
            s3.create_bucket(Bucket=bucket)
        for plan_id in PLANS:
            build_plan(plan_id, db=conn, s3=s3, settings=settings)
        env = memora_env(db_name=db_name, redis_db=REDIS_DB, s3_endpoint=proxy.endpoint, settings=settings)
        assert not any("RETRY_DELAY" in k for k in env)  # Airflow's default: 300 s
        try:
            with standalone(home, env, pools={"memora_cdn_builds": 4}) as api:
                yield {"api": api, "db": conn, "s3": s3, "settings": settings, "registry": registry, "proxy": proxy}
        finally:
            registry.redis.flushdb()


def title_in_bucket(stack, plan_id):
    body = stack["s3"].get_object(Bucket=stack["settings"].bucket, Key=keys.manifest_key(plan_id))["Body"].read()
    return json.loads(body)["title"]


def set_title(stack, plan_id, title):
    cur = stack["db"].cursor()
    cur.execute("UPDATE `tabMemora Academic Plan` SET title = %s WHERE name = %s", (title, plan_id))
    stack["db"].commit()


def rows(stack, plan_id):
    found = sync_log.recent(stack["db"], plan_id=plan_id, limit=20)
    stack["db"].commit()
    return sorted(found, key=lambda r: r["started_at"] or r["creation"])


def test_a_failing_plan_never_holds_back_another_and_is_retried_on_its_backoff(stack):
    api, proxy, registry = stack["api"], stack["proxy"], stack["registry"]
    failing, edited = PLANS[0], PLANS[1]
    proxy.deny_prefix(keys.plan_prefix(failing))  # its S3 writes keep failing from now on
    set_title(stack, failing, "Never reaches the bucket")
    # The failing plan's first failure (a manual run only to start the clock; the rest is the schedules alone).
    run = api.post("/dags/memora_cdn_sync/dagRuns", {"logical_date": None, "conf": {"plans": [failing]}})
    done = api.wait_run("memora_cdn_sync", run["dag_run_id"], timeout=300)
    assert done["state"] == "failed"  # the run is red: the plan failed
    build = [ti for ti in api.task_instances("memora_cdn_sync", run["dag_run_id"]) if ti["task_id"] == "build"][0]
    assert build["state"] == "failed" and build["try_number"] == 2  # one short in-run retry, then the run ends
    first = rows(stack, failing)[-1]
    assert first["status"] == "Failed" and first["retry_count"] == 0, first
    backoff = (first["next_retry_at"] - first["completed_at"]).total_seconds()
    print(f"\nfirst failure at {first['completed_at']}Z, next retry at {first['next_retry_at']}Z (+{backoff:.1f} s)")
    assert 299 <= backoff <= 301  # [core] default_task_retry_delay, Airflow's default
    run_ended = time.time()
    assert (datetime.fromisoformat(done["end_date"].replace("Z", "+00:00")).timestamp()
            - datetime.fromisoformat(done["start_date"].replace("Z", "+00:00")).timestamp()) < 120  # no retry delay held it

    # An edit to another plan, marked after the failure: the schedules alone publish it.
    set_title(stack, edited, "Edited after the failure")
    registry.mark([edited])
    marked = time.time()
    while time.time() - marked < 600:
        if title_in_bucket(stack, edited) == "Edited after the failure":
            break
        time.sleep(2)
    latency = time.time() - marked
    print(f"edit-to-bucket latency with a failing plan: {latency:.1f} s (marked {marked - run_ended:.1f} s after the failed run)")
    assert latency < 600, "the edit did not reach the bucket within 10 minutes"
    published_by = rows(stack, edited)[-1]
    assert published_by["status"] == "Success" and published_by["triggered_by"] in ("Scheduler", "Threshold")

    # The failing plan's retry: taken by the first */5 tick after next_retry_at, i.e. within 5 minutes of it.
    due = first["next_retry_at"]
    deadline = time.time() + max(0.0, (due - datetime.utcnow()).total_seconds()) + 360
    retry = None
    while time.time() < deadline:
        later = [r for r in rows(stack, failing) if r["name"] != first["name"]
                 and (r["status"] == "Dead Letter" or (r["status"] == "Failed" and r["next_retry_at"]))]
        if later:
            retry = later[0]
            break
        time.sleep(5)
    assert retry is not None, "the failing plan was not retried within 5 minutes of its next_retry_at"
    waited = (retry["started_at"] - first["completed_at"]).total_seconds()
    print(f"retry 1 started {waited:.1f} s after the first failure (due after 300 s); "
          f"next retry at +{(retry['next_retry_at'] - retry['completed_at']).total_seconds():.1f} s")
    assert retry["started_at"] >= due - timedelta(seconds=1)
    assert retry["started_at"] <= due + timedelta(seconds=330)
    assert retry["retry_count"] == 1 and retry["triggered_by"] == "Scheduler"
    assert 599 <= (retry["next_retry_at"] - retry["completed_at"]).total_seconds() <= 601  # doubled
    assert failing not in registry.dead_letters()
    assert title_in_bucket(stack, failing) != "Never reaches the bucket"  # the bucket still serves the last good build
