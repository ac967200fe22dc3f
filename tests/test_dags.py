"""The DAG files: they parse fast without I/O, follow the house rules, and run under `airflow dags test`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.ops.audit import audit_plan
from memora_cdn.engine.publish import list_prefix
from tests.support import PYTHONPATH, REDIS_PORT, REPO, mysql_airflow_conn

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """A temporary AIRFLOW_HOME with a migrated SQLite metadata DB (what `airflow dags test` needs)."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = base_env(home)
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return home


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        "PYTHONPATH": PYTHONPATH,
    })
    return env


_DAGBAG_PROBE = """
import json, time
started = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="dags")
out = {"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}, "dags": {}, "seconds": time.monotonic() - started}
for dag_id in bag.dag_ids:
    dag = bag.get_dag(dag_id)
    out["dags"][dag_id] = {
        "catchup": dag.catchup, "max_active_runs": dag.max_active_runs, "params": list(dag.params),
        "schedule": getattr(dag.timetable, "expression", None),
        "tasks": {t.task_id: {"retries": t.retries, "backoff": t.retry_exponential_backoff, "pool": t.pool,
                              "map_index_template": t.map_index_template, "retry_delay": t.retry_delay.total_seconds(),
                              "trigger_rule": str(t.trigger_rule)} for t in dag.tasks},
    }
print("PROBE" + json.dumps(out))
"""


def dagbag(home: Path, env_extra: dict[str, str] | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", _DAGBAG_PROBE], cwd=REPO, env=base_env(home) | (env_extra or {}),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("PROBE", 1)[1])


def test_dags_import_cleanly_and_follow_the_house_rules(airflow_home):
    bag = dagbag(airflow_home)
    assert bag["errors"] == {}
    dag = bag["dags"]["memora_cdn_full_rebuild"]
    assert dag["catchup"] is False and dag["max_active_runs"] == 1 and dag["params"] == ["plans", "confirm_removals"]
    assert dag["schedule"] == "0 2 * * *"
    build = dag["tasks"]["build"]
    # retries happen between runs (memora_cdn.tracking.run, from [core] default_task_retry_delay); in a run at most
    # one short fixed retry for a blip, so no run sits in a retry delay
    assert build["retries"] == 1 and not build["backoff"]
    assert build["pool"] == "default_pool" and build["map_index_template"] == "{{ plan_label }}"
    assert build["retry_delay"] == 15.0
    assert bag["seconds"] < 30


def test_the_build_pool_comes_from_airflow_config(airflow_home):
    """`[memora_cdn] build_pool` picks the builds' pool; unset (the tests above), they run in `default_pool`."""
    bag = dagbag(airflow_home, {"AIRFLOW__MEMORA_CDN__BUILD_POOL": "memora_cdn_builds"})
    assert bag["errors"] == {}
    pools = {(dag_id, task_id): t["pool"] for dag_id, dag in bag["dags"].items() for task_id, t in dag["tasks"].items()}
    assert pools[("memora_cdn_sync", "build")] == pools[("memora_cdn_full_rebuild", "build")] == "memora_cdn_builds"
    # only the plan builds: the cheap tasks never wait behind them
    assert {pool for key, pool in pools.items() if key[1] != "build"} == {"default_pool"}


def test_dag_files_do_no_io_at_parse_time():
    """Importing a DAG file must not import the engine's heavy parts (hooks, boto3, MySQLdb)."""
    code = (
        "import sys, runpy; runpy.run_path('dags/memora_cdn_full_rebuild.py');"
        "heavy = [m for m in ('boto3', 'MySQLdb', 'memora_cdn.engine.build', 'memora_cdn.engine.publish', 'redis') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": PYTHONPATH},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout


def dags_test(home: Path, env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = base_env(home) | env_extra
    return subprocess.run([AIRFLOW, "dags", "test", "memora_cdn_full_rebuild", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_airflow_dags_test_full_rebuild(airflow_home, content_db, s3_server, s3, settings):
    """Only the three variables SPEC §10 names, and `dags/` as the DAG folder: the whole demo is published."""
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale()))
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict()),
    }
    done = dags_test(airflow_home, env)
    assert done.returncode == 0 and "state=success" in done.stdout + done.stderr, (done.stdout + done.stderr)[-5000:]
    for plan_id in ("PLAN-2026-0001", "PLAN-2026-0002"):
        assert list_prefix(s3, settings.bucket, keys.manifest_key(plan_id))
        assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []

    # a manual run limited to one plan rebuilds only that plan
    conn.cursor().execute("UPDATE `tabMemora Lesson` SET title = CONCAT(title, ' *')")
    conn.commit()
    before = {p: list_prefix(s3, settings.bucket, keys.plan_prefix(p)) for p in ("PLAN-2026-0001", "PLAN-2026-0002")}
    done = dags_test(airflow_home, env, "-c", json.dumps({"plans": ["PLAN-2026-0002"]}))
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert list_prefix(s3, settings.bucket, keys.plan_prefix("PLAN-2026-0001")) == before["PLAN-2026-0001"]
    assert list_prefix(s3, settings.bucket, keys.plan_prefix("PLAN-2026-0002")) != before["PLAN-2026-0002"]


def test_bad_settings_fail_the_run_naming_the_key(airflow_home, content_db, s3_server):
    name, _ = content_db
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps({"signed_url_expiry_hours": 48}),
    }
    demo.load(content_db[1], demo.generate(demo.DemoScale(plans=1)))
    done = dags_test(airflow_home, env)
    output = done.stdout + done.stderr
    assert "memora_cdn_settings.signed_url_expiry_hours: 48 is out of range 1..24" in output
    assert "state=failed" in output or done.returncode != 0
    assert output.count("Retry policy decision") >= 1 and "action=fail" in output  # not retried: it cannot fix itself


def test_failed_plan_builds_retry_three_times_with_the_configured_delay(airflow_home, content_db, s3_server):
    """Mapped builds retry 3 times, backing off from AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY (1 s here)."""
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(plans=1)))
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps({"bucket": "memora-bucket-that-does-not-exist"}),
    }
    started = time.monotonic()
    done = dags_test(airflow_home, env)
    output = done.stdout + done.stderr
    attempts = output.count("plan PLAN-2026-0001 failed")
    assert attempts == 4, output[-3000:]
    assert "NoSuchBucket" in output
    assert time.monotonic() - started < 120  # not Airflow's 300 s fallback for mapped tasks


def test_sync_dag_parses_with_its_schedule_and_rules(airflow_home):
    dag = dagbag(airflow_home)["dags"]["memora_cdn_sync"]
    assert dag["catchup"] is False and dag["max_active_runs"] == 1 and dag["params"] == ["plans"]
    tasks = dag["tasks"]
    assert set(tasks) == {"check", "claim", "build", "purge", "any_plan_failed"}
    assert tasks["any_plan_failed"]["trigger_rule"].lower().endswith("one_failed")
    assert tasks["build"]["pool"] == "default_pool" and tasks["build"]["map_index_template"] == "{{ plan_label }}"
    assert tasks["build"]["retries"] == 1 and not tasks["build"]["backoff"]  # retries between runs (run_plan)
    assert tasks["purge"]["trigger_rule"].lower().endswith("all_done")


def test_airflow_dags_test_sync_publishes_an_edit_and_purges_its_urls(airflow_home, content_db, s3_server, s3, settings,
                                                                      redis_db, cloudflare):
    """An edit, then `airflow dags test memora_cdn_sync`: only the affected files change, exactly their URLs are purged."""
    from memora_cdn.engine.build import build_plan
    from memora_cdn.tracking.registry import Registry

    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale()))
    for plan_id in ("PLAN-2026-0001", "PLAN-2026-0002"):
        build_plan(plan_id, db=conn, s3=s3, settings=settings)
    before = {p: list_prefix(s3, settings.bucket, keys.plan_prefix(p)) for p in ("PLAN-2026-0001", "PLAN-2026-0002")}
    conn.cursor().execute("UPDATE `tabMemora Academic Plan` SET title = 'خطة معدلة' WHERE name = 'PLAN-2026-0002'")
    conn.commit()
    Registry(redis_db).mark(["PLAN-2026-0002"])
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_CONN_MEMORA_REDIS": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT, "extra": {"db": 15}}),
        "AIRFLOW_CONN_MEMORA_CDN_PURGE": json.dumps({"conn_type": "http", "host": cloudflare.url, "password": "cf-test-token-123",
                                                     "extra": {"zone_id": "zone-abc"}}),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict() | {"purge_provider": "cloudflare"}),
    }
    done = subprocess.run([AIRFLOW, "dags", "test", "memora_cdn_sync"], env=base_env(airflow_home) | env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in output, output[-5000:]
    assert "cf-test-token-123" not in output  # the token never reaches the logs
    after = {p: list_prefix(s3, settings.bucket, keys.plan_prefix(p)) for p in before}
    assert after["PLAN-2026-0001"] == before["PLAN-2026-0001"]
    changed = [k for k, etag in after["PLAN-2026-0002"].items() if before["PLAN-2026-0002"].get(k) != etag]
    assert changed == [keys.manifest_key("PLAN-2026-0002")]  # the plan title is only in the manifest
    assert cloudflare.purged_files == [f"https://cdn.memora.test/{keys.manifest_key('PLAN-2026-0002')}"]
    # purged by the plan's build task as soon as it was uploaded; the run's purge task had nothing left
    assert "1 plan(s) were purged by their own build" in output and "nothing left to purge" in output, output[-5000:]
    assert "PLAN-2026-0002" in output and "map_index=0" in output
    assert Registry(redis_db).pending_count() == 0


def test_airflow_dags_test_sync_skips_cheaply_when_nothing_waits(airflow_home, content_db, s3_server, settings, redis_db):
    name, _ = content_db
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_CONN_MEMORA_REDIS": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT, "extra": {"db": 15}}),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict()),
    }
    done = subprocess.run([AIRFLOW, "dags", "test", "memora_cdn_sync"], env=base_env(airflow_home) | env,
                          capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in output, output[-5000:]
    assert "waiting: 0 pending, 0 fallback row(s)" in output
    assert "claimed " not in output and "nothing to purge" not in output  # claim and purge were skipped


def _objects(s3, bucket: str) -> dict[str, bytes]:
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in list_prefix(s3, bucket, "")}


@pytest.mark.parametrize("schema_version", ["008"], indirect=True)
def test_full_rebuild_on_the_apps_008_schema(airflow_home, content_db, schema_version, s3_server, s3, settings):
    """On a 008 database `airflow dags test memora_cdn_full_rebuild` publishes is_linear (Set Linear applied per
    plan), bit_index, Set Access Level with inheritance and the stage fields; never a /private/files/ path; and once
    a plan is unpublished, the next rebuild removes that plan's folder and nothing else."""
    import orjson

    assert schema_version == "008"
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(plans=3), media_bucket=settings.media_bucket))
    cur = conn.cursor()
    plan = "PLAN-2026-0001"
    # a plan-listed unit with lessons, its track, and one of its lessons (visible: published all the way up)
    cur.execute(
        "SELECT u.name, u.is_linear, t.name FROM `tabMemora Unit` u JOIN `tabMemora Track` t ON t.name = u.parent_track "
        "JOIN `tabMemora Plan Subject` ps ON ps.subject = t.parent_subject AND ps.parent = %s "
        "JOIN `tabMemora Subject` s ON s.name = t.parent_subject "
        "WHERE u.is_published = 1 AND t.is_published = 1 AND s.is_published = 1 AND u.name NOT IN "
        "(SELECT target_name FROM `tabMemora Plan Override`) "
        "AND EXISTS (SELECT 1 FROM `tabMemora Topic` p JOIN `tabMemora Lesson` l ON l.parent_topic = p.name "
        "WHERE p.parent_unit = u.name AND p.is_published = 1 AND l.is_published = 1) ORDER BY u.name LIMIT 1",
        (plan,))
    unit, unit_linear, track = cur.fetchone()
    overrides = [("Memora Unit", unit, "Set Linear", "0" if unit_linear else "1"),
                 ("Memora Unit", unit, "Set Access Level", "public")]
    for i, (doctype, target, action, value) in enumerate(overrides):
        cur.execute("INSERT INTO `tabMemora Plan Override` (name, parent, parenttype, parentfield, idx, target_doctype, "
                    "target_name, action, override_value) VALUES (%s, %s, 'Memora Academic Plan', 'overrides', %s, %s, "
                    "%s, %s, %s)", (f"ov-test-{i}", plan, 100 + i, doctype, target, action, value))
    # private files wherever an editor can attach one
    cur.execute("UPDATE `tabMemora Subject` SET image = '/private/files/subject.png'")
    cur.execute("UPDATE `tabMemora Unit` SET badge_image = '/private/files/badge.png'")
    cur.execute("UPDATE `tabMemora Lesson Stage` SET config = JSON_SET(config, '$.image', '/private/files/w.png') "
                "WHERE type = 'Interactive'")
    conn.commit()
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict()),
    }
    done = dags_test(airflow_home, env)
    logs = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in logs, logs[-5000:]
    plans = ("PLAN-2026-0001", "PLAN-2026-0002", "PLAN-2026-0003")
    for plan_id in plans:
        assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []
    bodies = _objects(s3, settings.bucket)
    assert b"/private/files/" not in b"".join(bodies.values())
    assert "is a Frappe private file" in logs  # reported (plan, record, field), not silently dropped
    docs = {k: orjson.loads(v) for k, v in bodies.items() if k.startswith("plans/")}

    # Set Linear and Set Access Level on the unit, in this plan only; descendants inherit the level
    unit_doc = docs[keys.unit_key(plan, unit)]
    assert unit_doc["is_linear"] is (not unit_linear)
    assert unit_doc["access"]["access_level"] == "public"
    lessons_below = [ls for tp in unit_doc["topics"] for ls in tp["lessons"]]
    # below it the six rules apply as usual: public is inherited (rule 6) unless a node is free preview itself
    below = [tp["access"]["access_level"] for tp in unit_doc["topics"]] + [ls["access"]["access_level"] for ls in lessons_below]
    assert "public" in below and set(below) <= {"public", "free_preview"}, below
    subject_doc = next(d for k, d in docs.items() if k.startswith(keys.plan_prefix(plan) + "subjects/")
                       and any(t["id"] == track for t in d["tracks"]))
    summary = next(u for t in subject_doc["tracks"] for u in t["units"] if u["id"] == unit)
    assert summary["is_linear"] is (not unit_linear) and summary["access"]["access_level"] == "public"
    for other in plans[1:]:  # the overrides are plan 1's
        other_unit = docs.get(keys.unit_key(other, unit))
        if other_unit is not None:
            assert other_unit["is_linear"] is bool(unit_linear)

    # bit_index on lesson documents and on the lesson entries of unit files; stage fields; is_linear everywhere
    lesson_docs = [d for k, d in docs.items() if "/lessons/" in k]
    assert lesson_docs and all(isinstance(d["bit_index"], int) and d["bit_index"] >= 0 for d in lesson_docs)
    by_id = {d["id"]: d["bit_index"] for d in lesson_docs}
    for k, d in docs.items():
        if "/units/" in k:
            assert "is_linear" in d
            for tp in d["topics"]:
                assert "is_linear" in tp
                assert all(ls["bit_index"] == by_id[ls["id"]] for ls in tp["lessons"])
    stages = [s for d in lesson_docs for s in d["stages"]]
    assert stages and all({"weight", "target_time", "is_skippable"} <= set(s) for s in stages)
    assert {s["is_skippable"] for s in stages} == {True, False}
    manifest = docs[keys.manifest_key(plan)]
    assert all("is_linear" in s for s in manifest["subjects"])
    # 008 dropped is_public: the demo's public subjects are public through `Set Access Level`
    assert any(s["access"]["access_level"] == "public" for p in plans for s in docs[keys.manifest_key(p)]["subjects"])

    # unpublish one plan of three: the next full rebuild removes its folder and nothing else
    gone = "PLAN-2026-0002"
    before = _objects(s3, settings.bucket)
    conn.cursor().execute("UPDATE `tabMemora Academic Plan` SET is_published = 0 WHERE name = %s", (gone,))
    conn.commit()
    done = dags_test(airflow_home, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    after = _objects(s3, settings.bucket)
    assert list_prefix(s3, settings.bucket, keys.plan_prefix(gone)) == {}
    trashed = {k for k in after if k.startswith(keys.trash_prefix(gone))}
    assert trashed, "the unpublished plan's files are kept in the trash, restorable"
    assert {k: v for k, v in after.items() if k not in trashed} == {
        k: v for k, v in before.items() if keys.plan_of_key(k) != gone and k != keys.state_key(gone)}
