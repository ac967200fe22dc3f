"""Deployed as Airflow 3 users deploy: the DAG files from a `GitDagBundle` (a git repository made from this checkout,
`subdir="dags"`), the memora_cdn package installed (never imported from the bundle), and an Airflow nobody prepared:
no pool created and no `[memora_cdn] build_pool`, so the builds run in `default_pool`. A second bundle (a
`LocalDagBundle`) holds the example consumer DAG, which the "plan published" asset events trigger.

One real `airflow standalone` (LocalExecutor, its own SQLite metadata DB) for the whole module.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from memora_cdn.engine import keys
from memora_cdn.settings import parse_settings
from memora_cdn_demo import content as demo
from tests.airflow_cluster import MEMORA_DAGS, memora_env, standalone
from tests.support import REDIS_PORT, REPO, scratch_database

CONSUMER = "memora_cdn_example_on_plan_published"
PLANS = ["PLAN-2026-0001", "PLAN-2026-0002"]
REDIS_DB = 11


def git(*args: str, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120).stdout.strip()


def repository_from_checkout(target) -> str:
    """A git repository holding this checkout's files as they are on disk (tracked files, edits included), one
    commit on `main`; returns the commit."""
    target.mkdir()
    for path in git("ls-files", "-z", cwd=REPO).split("\0"):
        if path and (REPO / path).is_file():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, target / path)
    git("init", "-q", "-b", "main", cwd=target)
    git("add", "-A", cwd=target)
    git("-c", "user.name=memora-tests", "-c", "user.email=tests@memora.invalid", "commit", "-q", "-m", "bundle",
        cwd=target)
    return git("rev-parse", "HEAD", cwd=target)


@pytest.fixture(scope="module")
def deployment(s3_server, tmp_path_factory):
    import redis

    home = tmp_path_factory.mktemp("airflow_bundles")
    repo = home / "memora-repo"
    commit = repository_from_checkout(repo)
    redis_client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    redis_client.flushdb()
    with scratch_database() as (db_name, conn):
        demo.load(conn, demo.generate(demo.DemoScale(plans=len(PLANS), subjects_per_plan=1, lessons_per_plan=3,
                                                     stages_per_lesson=1, shared_subjects=0)))
        settings = parse_settings({"bucket": "memora-bundles", "media_bucket": "memora-bundles-media",
                                   "cdn_base_url": "https://cdn.memora.test"})
        s3 = s3_server.client()
        for bucket in (settings.bucket, settings.media_bucket):
            s3.create_bucket(Bucket=bucket)
        env = memora_env(db_name=db_name, redis_db=REDIS_DB, s3_endpoint=s3_server.endpoint, settings=settings)
        env["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "2"
        env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH"] = str(home / "bundle-storage")
        env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps([
            {"name": "memora", "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
             "kwargs": {"repo_url": str(repo), "tracking_ref": "main", "subdir": "dags"}},
            {"name": "examples", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(REPO / "docs" / "examples")}},
        ])
        try:
            with standalone(home, env, expect_dags=(*MEMORA_DAGS, CONSUMER)) as api:  # no pools
                yield {"api": api, "db": conn, "s3": s3, "settings": settings, "commit": commit, "home": home}
        finally:
            redis_client.flushdb()


def manifest_title(deployment, plan_id: str) -> str:
    obj = deployment["s3"].get_object(Bucket=deployment["settings"].bucket, Key=keys.manifest_key(plan_id))
    return json.loads(obj["Body"].read())["title"]


def edit_plan_title(deployment, plan_id: str, title: str) -> None:
    cur = deployment["db"].cursor()
    cur.execute("UPDATE `tabMemora Academic Plan` SET title = %s WHERE name = %s", (title, plan_id))
    deployment["db"].commit()


def consumer_runs_for(api, dag_id: str, run_id: str, timeout: float = 180) -> list[tuple[dict, list[dict]]]:
    """The consumer's finished runs triggered by events of producer run `run_id`, with those events."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for run in api.runs(CONSUMER):
            events = api.get(f"/dags/{CONSUMER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")["asset_events"]
            ours = [e for e in events if e["source_dag_id"] == dag_id and e["source_run_id"] == run_id]
            if ours and run["state"] in ("success", "failed"):
                found.append((run, ours))
        if found or time.monotonic() > deadline:
            return found
        time.sleep(3)


def consumer_output(api, run_id: str) -> list[dict]:
    entry = api.get(f"/dags/{CONSUMER}/dagRuns/{run_id}/taskInstances/published_plans/xcomEntries/return_value")
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def test_dags_parse_from_their_bundles(deployment):
    api = deployment["api"]
    for dag_id in MEMORA_DAGS:
        details = api.get(f"/dags/{dag_id}/details")
        assert details["bundle_name"] == "memora" and details["bundle_version"] == deployment["commit"], details
        assert details["relative_fileloc"] == f"{dag_id}.py"  # from the bundle's `dags` subdir
    assert api.get(f"/dags/{CONSUMER}/details")["bundle_name"] == "examples"
    assert api.get("/importErrors")["total_entries"] == 0


def test_the_first_full_rebuild_ran_in_default_pool(deployment):
    """Airflow starts the nightly rebuild when the DAG appears: with no pool created it must not wait forever."""
    api = deployment["api"]
    runs = api.runs("memora_cdn_full_rebuild")
    assert runs and all(r["state"] == "success" for r in runs), runs
    builds = [ti for ti in api.task_instances("memora_cdn_full_rebuild", runs[-1]["dag_run_id"]) if ti["task_id"] == "build"]
    assert sorted(ti["rendered_map_index"] for ti in builds) == PLANS
    assert {ti["pool"] for ti in builds} == {"default_pool"}
    assert runs[-1]["bundle_version"] == deployment["commit"]
    for plan_id in PLANS:
        assert manifest_title(deployment, plan_id)


def test_a_limited_rebuild_publishes_one_plan_and_triggers_the_consumer(deployment):
    api, plan_id = deployment["api"], PLANS[0]
    edit_plan_title(deployment, plan_id, "Published from a git bundle")
    run = api.post("/dags/memora_cdn_full_rebuild/dagRuns", {"logical_date": None, "conf": {"plans": [plan_id]}})
    assert api.wait_run("memora_cdn_full_rebuild", run["dag_run_id"])["state"] == "success"
    assert manifest_title(deployment, plan_id) == "Published from a git bundle"

    triggered = consumer_runs_for(api, "memora_cdn_full_rebuild", run["dag_run_id"])
    assert triggered, "the consumer DAG was not triggered by the rebuild's asset event"
    consumer_run, events = triggered[0]
    assert consumer_run["state"] == "success" and consumer_run["run_type"] == "asset_triggered"
    (event,) = events  # one plan rebuilt and changed: one event
    assert event["uri"] == f"s3://{deployment['settings'].bucket}/plans/{plan_id}"
    assert event["extra"]["plan_id"] == plan_id and event["extra"]["status"] == "published"
    assert keys.manifest_key(plan_id) in event["extra"]["changed_keys"]
    seen = {p["plan_id"]: p for p in consumer_output(api, consumer_run["dag_run_id"])}
    assert keys.manifest_key(plan_id) in seen[plan_id]["changed_keys"]
    assert seen[plan_id]["source"] == f"memora_cdn_full_rebuild/{run['dag_run_id']}"


def test_a_sync_run_publishes_an_edit_and_triggers_the_consumer(deployment):
    api, plan_id = deployment["api"], PLANS[1]
    edit_plan_title(deployment, plan_id, "Synced from a git bundle")
    run = api.post("/dags/memora_cdn_sync/dagRuns", {"logical_date": None, "conf": {"plans": [plan_id]}})
    assert api.wait_run("memora_cdn_sync", run["dag_run_id"])["state"] == "success"
    assert manifest_title(deployment, plan_id) == "Synced from a git bundle"
    builds = [ti for ti in api.task_instances("memora_cdn_sync", run["dag_run_id"]) if ti["task_id"] == "build"]
    assert [(ti["rendered_map_index"], ti["pool"], ti["state"]) for ti in builds] == [(plan_id, "default_pool", "success")]
    # one XCom per build (multiple_outputs off): the summary, not its keys besides
    xcoms = api.get(f"/dags/memora_cdn_sync/dagRuns/{run['dag_run_id']}/taskInstances/build/xcomEntries",
                    map_index=builds[0]["map_index"])["xcom_entries"]
    assert [x["key"] for x in xcoms] == ["return_value"]

    triggered = consumer_runs_for(api, "memora_cdn_sync", run["dag_run_id"])
    assert triggered, "the consumer DAG was not triggered by the sync's asset event"
    consumer_run, events = triggered[0]
    assert consumer_run["state"] == "success"
    assert [e["extra"]["plan_id"] for e in events] == [plan_id]
    assert events[0]["extra"]["changed_keys"] == [keys.manifest_key(plan_id)]  # the title is only in the manifest
    assert events[0]["extra"]["changed_keys_complete"] is True
    seen = {p["plan_id"]: p for p in consumer_output(api, consumer_run["dag_run_id"])}
    assert seen[plan_id]["changed_keys"] == [keys.manifest_key(plan_id)]


def test_a_build_that_changes_nothing_emits_no_event(deployment):
    api = deployment["api"]
    run = api.post("/dags/memora_cdn_full_rebuild/dagRuns", {"logical_date": None, "conf": {"plans": [PLANS[0]]}})
    assert api.wait_run("memora_cdn_full_rebuild", run["dag_run_id"])["state"] == "success"
    events = api.get("/assets/events", source_dag_id="memora_cdn_full_rebuild", source_run_id=run["dag_run_id"])
    assert events["total_entries"] == 0
