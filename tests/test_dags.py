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


def dagbag(home: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _DAGBAG_PROBE], cwd=REPO, env=base_env(home),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("PROBE", 1)[1])


def test_dags_import_cleanly_and_follow_the_house_rules(airflow_home):
    bag = dagbag(airflow_home)
    assert bag["errors"] == {}
    dag = bag["dags"]["memora_cdn_full_rebuild"]
    assert dag["catchup"] is False and dag["max_active_runs"] == 1 and dag["params"] == ["plans"]
    assert dag["schedule"] == "0 2 * * *"
    build = dag["tasks"]["build"]
    # retries happen between runs (memora_cdn.tracking.run, from [core] default_task_retry_delay); in a run at most
    # one short fixed retry for a blip, so no run sits in a retry delay
    assert build["retries"] == 1 and not build["backoff"]
    assert build["pool"] == "memora_cdn_builds" and build["map_index_template"] == "{{ plan_label }}"
    assert build["retry_delay"] == 15.0
    assert bag["seconds"] < 30


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
    assert tasks["build"]["pool"] == "memora_cdn_builds" and tasks["build"]["map_index_template"] == "{{ plan_label }}"
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
