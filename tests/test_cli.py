"""`python -m memora_cdn` end to end, in subprocesses, against MariaDB, Redis db 15 and the local S3 server.

Most runs use the plain flags' environment variables (`MEMORA_*`, no Airflow start-up); one path uses
exactly what the DAGs use (`AIRFLOW_CONN_MEMORA_*`, `AIRFLOW_VAR_MEMORA_CDN_SETTINGS`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.tracking import sync_log
from memora_cdn.engine.publish import list_prefix
from memora_cdn.tracking.registry import DEAD_LETTER
from tests.support import AWS_KEY, AWS_SECRET, PYTHONPATH, REDIS_PORT, REPO, free_port, mysql_airflow_conn

P1, P2 = "PLAN-2026-0001", "PLAN-2026-0002"


@dataclass
class Done:
    code: int
    out: str
    err: str


@pytest.fixture
def stack(content_db, redis_db, s3_server, s3, settings, tmp_path):
    """Demo content, and two environments for the CLI: plain MEMORA_* variables, and Airflow's."""
    name, db = content_db
    demo.load(db, demo.generate(demo.DemoScale(), media_bucket=settings.media_bucket))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA", "AWS_"))}
    base.update(PYTHONPATH=PYTHONPATH, PYTHONIOENCODING="utf-8")
    plain = dict(base, MEMORA_MYSQL_URL=f"mysql://root@127.0.0.1/{name}", MEMORA_REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/15",
                 MEMORA_S3_ENDPOINT=s3_server.endpoint, AWS_ACCESS_KEY_ID=AWS_KEY, AWS_SECRET_ACCESS_KEY=AWS_SECRET,
                 MEMORA_CDN_SETTINGS=json.dumps(settings.as_dict()))
    airflow = dict(base, AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                   AIRFLOW_CONN_MEMORA_MYSQL=mysql_airflow_conn(name),
                   AIRFLOW_CONN_MEMORA_REDIS=json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT,
                                                         "extra": {"db": 15}}),
                   AIRFLOW_CONN_MEMORA_S3=s3_server.airflow_conn(),
                   AIRFLOW_VAR_MEMORA_CDN_SETTINGS=json.dumps(settings.as_dict()))
    return {"db": db, "plain": plain, "airflow": airflow}


def cli(env: dict[str, str], *args: str, module: str = "memora_cdn.ops.cli") -> Done:
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    return Done(done.returncode, done.stdout, done.stderr)


def test_help_documents_the_commands_and_the_connections():
    done = cli({**os.environ, "PYTHONPATH": PYTHONPATH}, "--help", module="memora_cdn")
    assert done.code == 0
    for word in ("status", "mark", "rebuild", "verify", "dead-letter", "sync-log", "--mysql-url", "--redis-url",
                 "--s3-endpoint", "--settings", "AIRFLOW_CONN_MEMORA_MYSQL", "AIRFLOW_VAR_MEMORA_CDN_SETTINGS", "Exit status"):
        assert word in done.out, word


def test_status_mark_and_dead_letters(stack, registry):
    env = stack["plain"]
    done = cli(env, "status")
    assert done.code == 0, done.err
    assert "Pending plans:        0" in done.out and "NEVER BUILT" in done.out
    assert "الصف الثاني عشر" in done.out  # Arabic titles

    done = cli(env, "mark", P1, P2)
    assert done.code == 0 and "marked 2 plan(s)" in done.out, done.err
    assert registry.pending() == {P1, P2}
    registry.redis.delete("cdn_export:pending_plans")
    for bad, message in ((["PLAN-1999-0000"], "unknown plan: PLAN-1999-0000"), (["../etc"], "unknown plan: ../etc"),
                         ([P1, "x" * 141], "not plan names")):
        done = cli(env, "mark", *bad)
        assert done.code == 2 and message in done.err, done.err
    assert registry.pending_count() == 0  # all or nothing

    registry.dead_letter(P2, "NoSuchBucket: https://key:hunter2@s3.example/x")
    done = cli(env, "status", "--json")
    figures = json.loads(done.out)
    assert figures["dead_letter"][0]["plan_id"] == P2 and figures["overdue_plans"] == 2
    done = cli(env, "dead-letter", "list")
    assert done.code == 0 and P2 in done.out and "NoSuchBucket" in done.out and "hunter2" not in done.out

    done = cli(env, "dead-letter", "retry", P2)
    assert done.code == 0 and "moved back to the pending set" in done.out
    assert not registry.redis.hexists(DEAD_LETTER, P2) and registry.pending() == {P2}
    done = cli(env, "dead-letter", "retry", P2)
    assert done.code == 2 and "not in the dead letter" in done.err


def test_rebuild_then_verify_and_verify_catches_tampering(stack, registry, s3, settings):
    env, db = stack["plain"], stack["db"]
    done = cli(env, "rebuild", P1, P2)
    assert done.code == 0, done.err
    assert f"{P1}: published" in done.out and f"{P2}: published" in done.out and "2 built, 0 queued, 0 failed" in done.out
    assert "2/2" in done.err  # the progress bar, on stderr
    rows = {r["plan_id"]: r for r in sync_log.recent(db)}
    assert rows[P1]["status"] == rows[P2]["status"] == "Success" and rows[P1]["triggered_by"] == "Manual"
    assert not registry.is_locked(P1)

    done = cli(env, "verify", P1, P2)
    assert done.code == 0 and f"{P1}: ok" in done.out and f"{P2}: ok" in done.out, done.out + done.err

    listed = list_prefix(s3, settings.bucket, keys.plan_prefix(P1))
    lesson = sorted(k for k in listed if "/lessons/" in k)[0]
    unit = sorted(k for k in listed if "/units/" in k)[0]
    body = s3.get_object(Bucket=settings.bucket, Key=lesson)["Body"].read()
    s3.put_object(Bucket=settings.bucket, Key=lesson, Body=body.replace(b'"title":"', b'"title":"X', 1))
    s3.delete_object(Bucket=settings.bucket, Key=unit)
    s3.put_object(Bucket=settings.bucket, Key=keys.plan_prefix(P1) + "lessons/stray.json", Body=b"{}")
    done = cli(env, "verify", P1)
    assert done.code == 1, done.out + done.err
    assert f"different: {lesson}" in done.out and f"missing: {unit}" in done.out
    assert f"extra: {keys.plan_prefix(P1)}lessons/stray.json" in done.out and "audit:" in done.out
    assert "1 with differences" in done.out

    # the repair, through exactly what the DAGs read: Airflow's connections and Variable
    done = cli(stack["airflow"], "rebuild", P1)
    assert done.code == 0 and f"{P1}: published" in done.out, done.err
    assert "INFO" not in done.err and "info " not in done.err  # Airflow's start-up logging kept quiet
    done = cli(env, "verify", P1)
    assert done.code == 0 and f"{P1}: ok" in done.out, done.out + done.err


def test_rebuild_of_a_locked_plan_queues_it_instead(stack, registry):
    with registry.lock(P1, 30):
        done = cli(stack["plain"], "rebuild", P1)
    assert done.code == 0 and "locked" in done.out, done.out + done.err
    assert registry.pending() == {P1}
    assert sync_log.recent(stack["db"], plan_id=P1)[0]["status"] == "Queued"


def test_sync_log_and_bad_input(stack):
    env = stack["plain"]
    cli(env, "rebuild", P2, "--no-purge")
    done = cli(env, "sync-log", "--plan", P2)
    assert done.code == 0 and P2 in done.out and "Success" in done.out and "Manual" in done.out
    assert json.loads(cli(env, "sync-log", "--status", "Failed", "--json").out) == []
    for args, message in ((["sync-log", "--limit", "501"], "from 1 to 500"), (["sync-log", "--status", "Nope"], "status must be"),
                          (["verify"], "at least one plan"), (["verify", "PLAN-1999-0000"], "unknown plan")):
        done = cli(env, *args)
        assert done.code == 2 and message in done.err, (args, done.err, done.out)


def test_an_unreachable_service_exits_3_without_showing_secrets(stack):
    env = dict(stack["plain"], MEMORA_MYSQL_URL=f"mysql://root:hunter2@127.0.0.1:{free_port()}/memora")
    done = cli(env, "sync-log")
    assert done.code == 3 and "cannot connect to MariaDB" in done.err and "hunter2" not in done.err + done.out
    env = dict(stack["plain"], MEMORA_REDIS_URL=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    done = cli(env, "rebuild", P1)
    assert done.code == 3 and "--no-lock" in done.err and "hunter2" not in done.err + done.out
