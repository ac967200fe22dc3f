"""The removal guard and recoverable removals (SPEC §7, docs/removals.md).

The decision is a pure function, tested by its table; every path that removes a plan is then tested against
real MariaDB, Redis and the moto S3 server: a build, a sync run's claim, the nightly DAG under
`airflow dags test`, the command line's `remove-plans` and `restore`, and the nightly purge of expired trash.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.publish import list_prefix, list_published_plans
from memora_cdn.engine.read import list_plans
from memora_cdn.engine.removal import (EMPTY_DATABASE, OVER_LIMIT, RemovalRefused, decide_removals, judge,
                                       removal_limit, remove_plans)
from memora_cdn.engine.trash import RECORD, TrashError, purge_expired, restore_plan, trashed_copies
from memora_cdn.ops import status as ops_status
from memora_cdn.settings import SettingsError, parse_settings
from memora_cdn.tracking import removals as removal_record
from memora_cdn.tracking.sync import claim_batch
from tests.support import AWS_KEY, AWS_SECRET, PYTHONPATH, REDIS_PORT, mysql_airflow_conn
from tests.test_cli import cli
from tests.test_dags import airflow_home, dags_test  # noqa: F401 - airflow_home is a fixture

P1, P2, P3 = "PLAN-2026-0001", "PLAN-2026-0002", "PLAN-2026-0003"
PLAN_TABLE = "`tabMemora Academic Plan`"


# -- the pure guard ----------------------------------------------------------------------------------------

def names(n: int) -> list[str]:
    return [f"PLAN-{i:04d}" for i in range(n)]


@pytest.mark.parametrize("setting, published, limit", [
    (None, 0, 5), (None, 10, 5), (None, 59, 5), (None, 60, 6), (None, 100, 10), (None, 125, 12), (None, 10_000, 1000),
    (0, 100, 0), (3, 10_000, 3), (50, 10, 50),
])
def test_removal_limit_is_the_setting_or_ten_percent_at_least_five(setting, published, limit):
    assert removal_limit(setting, published) == limit


@pytest.mark.parametrize("candidates, listed, published, setting, confirmed, refusal", [
    (0, 0, 0, None, False, None),              # nothing to remove: fine, even with an empty database
    (0, 0, 40, None, False, None),
    (1, 0, 1, None, False, EMPTY_DATABASE),    # the database lists no plans: never, whatever the count
    (40, 0, 40, None, False, EMPTY_DATABASE),
    (40, 0, 40, 1000, False, EMPTY_DATABASE),  # not even under a generous limit
    (40, 0, 40, None, True, None),             # ... until an operator confirms
    (5, 15, 20, None, False, None),            # at least 5 by default
    (6, 14, 20, None, False, OVER_LIMIT),
    (10, 90, 100, None, False, None),          # 10% of the plans on the CDN
    (11, 89, 100, None, False, OVER_LIMIT),
    (11, 89, 100, None, True, None),
    (12, 113, 125, None, False, None),         # 12.5 rounds down
    (13, 112, 125, None, False, OVER_LIMIT),
    (1, 99, 100, 0, False, OVER_LIMIT),        # max_plan_removals 0: every removal needs a confirmation
    (1, 99, 100, 0, True, None),
    (3, 97, 100, 3, False, None),
    (4, 96, 100, 3, False, OVER_LIMIT),
    (40, 20, 60, 50, False, None),             # the setting wins over the default rule
])
def test_the_guard_decides_by_its_table(candidates, listed, published, setting, confirmed, refusal):
    plans = names(candidates)
    decision = decide_removals(reversed(plans), listed_plans=listed, published=published,
                               max_plan_removals=setting, confirmed=confirmed)
    assert decision.refusal == refusal
    assert decision.refused is (refusal is not None)
    assert decision.candidates == tuple(plans)  # sorted, each once
    assert decision.remove == (() if refusal else tuple(plans))  # all or nothing
    if refusal:
        with pytest.raises(RemovalRefused) as caught:
            remove_plans(None, parse_settings({}), decision, reason="test")  # refuses before touching anything
        assert caught.value.decision is decision


def test_a_refusal_says_what_it_would_have_removed_why_not_and_how_to_confirm():
    empty = decide_removals(names(25), listed_plans=0, published=25, max_plan_removals=None)
    text = str(RemovalRefused(empty))
    assert text.startswith("refused to remove 25 plan(s) that the database does not list (deleted or unpublished): ")
    assert "PLAN-0000, PLAN-0001" in text and "PLAN-0019 (+5 more)" in text and "PLAN-0020" not in text  # capped
    assert "the database lists no plans at all" in text and "memora_mysql" in text
    assert "Nothing was removed" in text and "confirm_removals=true" in text and "remove-plans --confirm" in text
    over = decide_removals(names(11), listed_plans=89, published=100, max_plan_removals=None)
    assert "11 removals are more than one run may make: max_plan_removals allows 10 (10% of the 100 plans on " \
           "the CDN, at least 5)" in over.message()
    assert "max_plan_removals allows 3." in decide_removals(names(4), listed_plans=1, published=9,
                                                            max_plan_removals=3).message()
    assert empty.as_dict()["count"] == 25 and len(empty.as_dict()["plans"]) == 20


@pytest.mark.parametrize("raw, message", [
    ({"max_plan_removals": -1}, "memora_cdn_settings.max_plan_removals: -1 is out of range 0..100000"),
    ({"max_plan_removals": "10"}, "memora_cdn_settings.max_plan_removals: expected an integer, got '10'"),
    ({"max_plan_removals": True}, "memora_cdn_settings.max_plan_removals: expected an integer, got True"),
    ({"trash_retention_days": 0}, "memora_cdn_settings.trash_retention_days: 0 is out of range 1..3650"),
    ({"trash_retention_days": None}, "memora_cdn_settings.trash_retention_days: expected an integer, got None"),
])
def test_removal_settings_are_validated_naming_the_key(raw, message):
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw)
    assert str(caught.value) == message


def test_removal_settings_defaults_and_null():
    assert parse_settings({}).max_plan_removals is None and parse_settings({}).trash_retention_days == 30
    assert parse_settings({"max_plan_removals": None}).max_plan_removals is None
    assert parse_settings({"max_plan_removals": 0, "trash_retention_days": 7}).as_dict()["max_plan_removals"] == 0


@pytest.mark.parametrize("name, folder", [("../x", "~2E.~2Fx"), ("a/b", "a~2Fb"), ("x y", "x~20y"),
                                          ("", None), ("a" * 141, None), (None, None)])
def test_the_trash_is_outside_what_the_cdn_serves_and_any_plan_name_is_one_folder(name, folder):
    assert not keys.TRASH_PREFIX.startswith(keys.PLANS_PREFIX) and keys.TRASH_PREFIX != keys.STATE_PREFIX
    assert keys.trash_prefix(P1, "20260514T020304Z") == "_memora_cdn_trash/PLAN-2026-0001/20260514T020304Z/"
    if folder is None:  # not a name Frappe allows
        with pytest.raises(keys.UnsafeName):
            keys.trash_prefix(name)
    else:  # any Frappe name is one encoded folder, never a path
        assert keys.trash_prefix(name) == f"_memora_cdn_trash/{folder}/"
        assert keys.decode_name(folder) == name
    for stamp in ("../x", "a/b", "", "20260514T020304Z/.."):  # a stamp is never a path either
        with pytest.raises(keys.UnsafeName):
            keys.trash_prefix(P1, stamp)


# -- with the services ----------------------------------------------------------------------------------------

def execute(db, sql, *params):
    db.cursor().execute(sql, params)
    db.commit()


def snapshot(s3, bucket: str, plan_id: str) -> dict[str, tuple]:
    """Every object of the plan (its files and its state object): body and the headers a client or a build sees."""
    out = {}
    for key in sorted(list_prefix(s3, bucket, keys.plan_prefix(plan_id))) + [keys.state_key(plan_id)]:
        obj = s3.get_object(Bucket=bucket, Key=key)
        out[key] = (obj["Body"].read(), obj["ContentType"], obj.get("CacheControl"), obj.get("Metadata"),
                    obj["ETag"], obj.get("ContentEncoding"))
    return out


@pytest.fixture
def built(content_db, s3, settings):
    """Three demo plans, all published."""
    name, db = content_db
    demo.load(db, demo.generate(demo.DemoScale(plans=3)))
    for plan_id in list_plans(db):
        build_plan(plan_id, db=db, s3=s3, settings=settings)
    assert list_published_plans(s3, settings.bucket) == {P1, P2, P3}
    execute(db, f"CREATE TABLE `plan_backup` AS SELECT * FROM {PLAN_TABLE}")
    return name, db


def restore_plan_rows(db):
    execute(db, f"INSERT INTO {PLAN_TABLE} SELECT * FROM `plan_backup` b WHERE b.name NOT IN (SELECT name FROM {PLAN_TABLE})")


def test_a_removed_plan_moves_to_the_trash_and_restores_byte_for_byte(built, s3, settings):
    _, db = built
    before = snapshot(s3, settings.bucket, P2)
    execute(db, f"DELETE FROM {PLAN_TABLE} WHERE name = %s", P2)
    result = build_plan(P2, db=db, s3=s3, settings=settings)  # the build path: guarded (2 plans listed)
    assert result.status == "removed" and sorted(result.deleted) == sorted(k for k in before if k.startswith("plans/"))
    assert list_prefix(s3, settings.bucket, keys.plan_prefix(P2)) == {}
    assert list_prefix(s3, settings.bucket, keys.state_key(P2)) == {}
    [copy] = trashed_copies(s3, settings.bucket, P2)
    assert copy.complete and copy.files == len(result.deleted) and "deleted or unpublished" in copy.reason
    trashed = list_prefix(s3, settings.bucket, keys.trash_prefix(P2, copy.stamp))
    assert set(trashed) == {keys.trash_prefix(P2, copy.stamp) + k for k in before} | {keys.trash_prefix(P2, copy.stamp) + RECORD}
    assert not any(k.startswith(keys.PLANS_PREFIX) for k in list_prefix(s3, settings.bucket, keys.TRASH_PREFIX))

    chosen, restored = restore_plan(s3, settings.bucket, P2)
    assert chosen.stamp == copy.stamp and sorted(restored) == sorted(k for k in before if k.startswith("plans/"))
    assert snapshot(s3, settings.bucket, P2) == before  # bodies, Content-Type, Cache-Control, metadata, ETag
    with pytest.raises(TrashError, match="has files under plans/PLAN-2026-0002/ now"):
        restore_plan(s3, settings.bucket, P2)  # never mixes two versions
    with pytest.raises(TrashError, match="no trashed copy at '1999'"):
        restore_plan(s3, settings.bucket, P2, at="1999")

    # back in the database: its versions continue from the restored state, nothing is uploaded again
    restore_plan_rows(db)
    again = build_plan(P2, db=db, s3=s3, settings=settings)
    assert again.uploaded == [] and again.deleted == []


def test_an_incomplete_trashed_copy_is_never_restored(built, s3, settings):
    _, db = built
    s3.put_object(Bucket=settings.bucket, Key=keys.trash_prefix(P3, "20990101T000000Z") + keys.manifest_key(P3), Body=b"{}")
    with pytest.raises(TrashError, match="no restorable copy"):
        restore_plan(s3, settings.bucket, P3)
    assert trashed_copies(s3, settings.bucket, P3)[0].complete is False


def test_the_build_path_refuses_to_remove_when_the_database_lists_no_plans(built, s3, settings):
    _, db = built
    before = snapshot(s3, settings.bucket, P1)
    execute(db, f"DELETE FROM {PLAN_TABLE}")
    with pytest.raises(RemovalRefused, match="the database lists no plans at all"):
        build_plan(P1, db=db, s3=s3, settings=settings)
    assert snapshot(s3, settings.bucket, P1) == before
    assert list_prefix(s3, settings.bucket, keys.TRASH_PREFIX) == {}
    # max_plan_removals 0: every removal waits for a confirmation
    restore_plan_rows(db)
    execute(db, f"DELETE FROM {PLAN_TABLE} WHERE name = %s", P1)
    with pytest.raises(RemovalRefused, match="max_plan_removals allows 0"):
        build_plan(P1, db=db, s3=s3, settings=parse_settings(settings.as_dict() | {"max_plan_removals": 0}))
    assert snapshot(s3, settings.bucket, P1) == before


def test_sync_claims_hold_plans_the_guard_refuses_and_requeue_them_once_the_database_is_back(built, registry, s3, settings):
    _, db = built
    before = {p: snapshot(s3, settings.bucket, p) for p in (P1, P2, P3)}
    execute(db, f"DELETE FROM {PLAN_TABLE}")  # a restore in progress
    registry.mark([P1, P2])
    batch = claim_batch(registry, db, s3, settings, "run-1", "Scheduler")
    assert batch.plans == [] and batch.refused == []  # not claimed, and not dropped as "no such plan"
    assert removal_record.held(registry) == [P1, P2]
    assert registry.claimed() == {} and registry.pending_count() == 0  # held apart: they cannot crowd out edits
    assert {p: snapshot(s3, settings.bucket, p) for p in before} == before
    [refusal] = removal_record.refusals(registry)
    assert refusal["source"] == "sync" and refusal["refusal"] == EMPTY_DATABASE and refusal["plans"] == [P1, P2]
    figures = ops_status.status(registry, db)
    assert figures["removal_refused"][0]["count"] == 2 and figures["removals_held"] == [P1, P2]

    # a later run, once the database lists its plans again: the held plans are pending again, then rebuilt
    restore_plan_rows(db)
    registry.mark([P3])
    batch = claim_batch(registry, db, s3, settings, "run-2", "Scheduler")
    assert [p["plan_id"] for p in batch.plans] == [P3]
    assert removal_record.held(registry) == [] and registry.pending() == {P1, P2}
    assert removal_record.refusals(registry) == []
    batch = claim_batch(registry, db, s3, settings, "run-3", "Scheduler")
    assert sorted(p["plan_id"] for p in batch.plans) == [P1, P2]


def test_sync_claims_hold_removals_over_the_limit(built, registry, s3, settings):
    _, db = built
    settings = parse_settings(settings.as_dict() | {"max_plan_removals": 1})
    execute(db, f"DELETE FROM {PLAN_TABLE} WHERE name IN (%s, %s)", P1, P2)
    registry.mark([P1, P2, P3])
    batch = claim_batch(registry, db, s3, settings, "run-1", "Scheduler")
    assert [p["plan_id"] for p in batch.plans] == [P3]  # the run goes on with the rest
    assert removal_record.held(registry) == [P1, P2]
    assert removal_record.refusals(registry)[0]["refusal"] == OVER_LIMIT
    assert list_published_plans(s3, settings.bucket) == {P1, P2, P3}
    # within the limit the claim goes through and the build removes it (to the trash)
    registry.redis.delete(removal_record.HELD)
    registry.mark([P1])
    batch = claim_batch(registry, db, s3, settings, "run-2", "Scheduler")
    assert [p["plan_id"] for p in batch.plans] == [P1]


def test_expired_trash_is_purged_by_age_and_in_bounded_steps(built, s3, settings):
    _, db = built
    execute(db, f"DELETE FROM {PLAN_TABLE} WHERE name IN (%s, %s)", P2, P3)
    now = datetime.now(timezone.utc)
    decision = judge(db, s3, settings, [P2, P3])
    assert not decision.refused
    remove_plans(s3, settings, decision, reason="test")
    assert purge_expired(s3, settings.bucket, 30, now=now + timedelta(days=29))["deleted"] == []
    assert len(trashed_copies(s3, settings.bucket, P2)) == 1
    first = purge_expired(s3, settings.bucket, 30, now=now + timedelta(days=31), max_objects=1)
    assert len(first["deleted"]) == 1 and first["left"] == 1  # bounded: the rest is left for the next run
    second = purge_expired(s3, settings.bucket, 30, now=now + timedelta(days=31))
    assert len(second["deleted"]) == 1 and second["left"] == 0
    assert list_prefix(s3, settings.bucket, keys.TRASH_PREFIX) == {}
    assert list_published_plans(s3, settings.bucket) == {P1}  # the trash purge never touches plans/


# -- the nightly DAG and the command line, end to end ----------------------------------------------------------

def test_full_rebuild_refuses_an_empty_plan_table_until_confirmed_and_restore_brings_a_plan_back(
        airflow_home, content_db, s3_server, s3, settings, redis_db, registry, cloudflare, tmp_path):  # noqa: F811
    name, db = content_db
    demo.load(db, demo.generate(demo.DemoScale(), media_bucket=settings.media_bucket))
    cdn = settings.as_dict() | {"purge_provider": "cloudflare"}
    purge_conn = json.dumps({"conn_type": "http", "host": cloudflare.url, "password": "cf-test-token-123",
                             "extra": {"zone_id": "zone-abc"}})
    env = {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_CONN_MEMORA_REDIS": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT,
                                                 "extra": {"db": 15}}),
        "AIRFLOW_CONN_MEMORA_CDN_PURGE": purge_conn,
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(cdn),
    }
    done = dags_test(airflow_home, env)
    assert done.returncode == 0 and "state=success" in done.stdout + done.stderr, (done.stdout + done.stderr)[-5000:]
    before = {p: snapshot(s3, settings.bucket, p) for p in (P1, P2)}

    execute(db, f"DELETE FROM {PLAN_TABLE}")
    done = dags_test(airflow_home, env)
    output = done.stdout + done.stderr
    assert "state=failed" in output or done.returncode != 0, output[-5000:]
    assert f"refused to remove 2 plan(s) that the database does not list (deleted or unpublished): {P1}, {P2}" in output
    assert "the database lists no plans at all" in output and "RemovalRefused" in output, output[-5000:]
    assert output.count("Retry policy decision") >= 1 and "action=fail" in output  # not retried: it waits for people
    assert {p: snapshot(s3, settings.bucket, p) for p in before} == before  # every plan folder is still there
    [refusal] = removal_record.refusals(registry)
    assert refusal["source"] == "nightly" and refusal["plans"] == [P1, P2]

    cli_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA", "AWS_"))}
    cli_env.update(PYTHONPATH=PYTHONPATH, PYTHONIOENCODING="utf-8", MEMORA_MYSQL_URL=f"mysql://root@127.0.0.1/{name}",
                   MEMORA_REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/15", MEMORA_S3_ENDPOINT=s3_server.endpoint,
                   AWS_ACCESS_KEY_ID=AWS_KEY, AWS_SECRET_ACCESS_KEY=AWS_SECRET, MEMORA_CDN_SETTINGS=json.dumps(cdn),
                   AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW_CONN_MEMORA_CDN_PURGE=purge_conn)
    shown = cli(cli_env, "status")
    assert shown.code == 0 and "REMOVAL REFUSED by memora_cdn_full_rebuild" in shown.out, shown.out + shown.err
    assert "the database lists no plans at all" in shown.out
    dry = cli(cli_env, "remove-plans", "--all")
    assert dry.code == 0 and f"would remove 2 plan(s): {P1}, {P2}" in dry.out and "nothing removed" in dry.out
    assert list_published_plans(s3, settings.bucket) == {P1, P2}

    done = dags_test(airflow_home, env, "-c", json.dumps({"confirm_removals": True}))
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in output, output[-5000:]
    assert list_published_plans(s3, settings.bucket) == set()
    assert list_prefix(s3, settings.bucket, keys.STATE_PREFIX) == {}
    assert {c.plan_id for p in (P1, P2) for c in trashed_copies(s3, settings.bucket, p)} == {P1, P2}
    assert removal_record.refusals(registry) == []  # the confirmed run cleared the dashboard's refusal

    listed = cli(cli_env, "trash", P1)
    assert listed.code == 0 and P1 in listed.out and "not listed by the database" in listed.out, listed.out + listed.err
    cloudflare.reset()
    restored = cli(cli_env, "restore", P1)
    assert restored.code == 0, restored.out + restored.err
    assert f"{P1}: restored {len([k for k in before[P1] if k.startswith('plans/')])} file(s)" in restored.out
    assert "the database does not list" in restored.err
    assert snapshot(s3, settings.bucket, P1) == before[P1]  # byte for byte: bodies, headers, metadata, state
    assert sorted(cloudflare.purged_files) == sorted(f"https://cdn.memora.test/{k}" for k in before[P1]
                                                     if k.startswith("plans/"))
    assert list_published_plans(s3, settings.bucket) == {P1}
    again = cli(cli_env, "restore", P1)
    assert again.code == 2 and "has files under plans/PLAN-2026-0001/ now" in again.err


def test_remove_plans_on_the_command_line_is_a_dry_run_until_confirmed(built, s3_server, s3, settings, registry, tmp_path):
    name, db = built
    execute(db, f"DELETE FROM {PLAN_TABLE} WHERE name = %s", P3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA", "AWS_"))}
    env.update(PYTHONPATH=PYTHONPATH, MEMORA_MYSQL_URL=f"mysql://root@127.0.0.1/{name}",
               MEMORA_REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/15", MEMORA_S3_ENDPOINT=s3_server.endpoint,
               AWS_ACCESS_KEY_ID=AWS_KEY, AWS_SECRET_ACCESS_KEY=AWS_SECRET, MEMORA_CDN_SETTINGS=json.dumps(settings.as_dict()),
               AIRFLOW_HOME=str(tmp_path / "airflow"))
    refused = cli(env, "remove-plans", "--confirm", P1)
    assert refused.code == 2 and f"the database lists {P1}" in refused.err
    dry = cli(env, "remove-plans", P3)
    assert dry.code == 0 and "the removal guard would allow this in a run" in dry.out
    assert P3 in list_published_plans(s3, settings.bucket)
    removal_record.hold(registry, [P3])
    done = cli(env, "remove-plans", "--confirm", P3)
    assert done.code == 0 and f"{P3}: moved" in done.out, done.out + done.err
    assert list_published_plans(s3, settings.bucket) == {P1, P2} and removal_record.held(registry) == []
