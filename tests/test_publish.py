"""Integration: build the demo content into a real S3-compatible server from a real MariaDB."""
from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import orjson
import pytest
import requests
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.publish import list_prefix, list_published_plans
from memora_cdn.engine.read import PLAN_QUERIES, list_plans, read_plan
from memora_cdn.ops.audit import _strings, audit_plan, is_raw_private_address, kind_of_key
from memora_cdn.orchestration.tasks import remove_deleted_plans
from memora_cdn_demo import content as demo

from tests.support import SCHEMA_VERSIONS

# The read/build core runs on every app schema: 002, 008, and a 002 database migrated to 008.
every_schema = pytest.mark.parametrize("schema_version", SCHEMA_VERSIONS, indirect=True)

CONTRACTS = Path(__file__).resolve().parent / "fixtures" / "contracts"  # the vendored upstream contracts


@pytest.fixture
def demo_db(content_db, content_version):
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(), version=content_version))
    return name, conn


def build_all(conn, s3, settings, **kw):
    return {plan_id: build_plan(plan_id, db=conn, s3=s3, settings=settings, **kw) for plan_id in list_plans(conn)}


def bucket_bodies(s3, bucket, plan_id):
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in list_prefix(s3, bucket, keys.plan_prefix(plan_id))}


def execute(conn, sql, *params):
    conn.cursor().execute(sql, params)
    conn.commit()


@every_schema
def test_full_build_publishes_valid_consistent_files(demo_db, s3, settings, schema_version):
    _, conn = demo_db
    results = build_all(conn, s3, settings)
    assert len(results) >= 2
    contracts = {p.name.split(".")[0]: json.loads(p.read_text()) for p in CONTRACTS.glob("*.schema.json")}
    assert set(contracts) == {"manifest", "subject", "unit", "lesson", "search_index"}, "shared contracts missing"
    for plan_id, result in results.items():
        assert result.status == "published" and result.lessons > 0
        assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []
        for key, body in bucket_bodies(s3, settings.bucket, plan_id).items():
            kind = kind_of_key(plan_id, key)
            if kind in contracts:
                jsonschema.validate(orjson.loads(body), contracts[kind])
            head = s3.head_object(Bucket=settings.bucket, Key=key)
            assert head["ContentType"] == "application/json; charset=utf-8"
            assert head["CacheControl"] == settings.cache_control
        # the state object is outside plans/, so the CDN never serves it
        s3.head_object(Bucket=settings.bucket, Key=keys.state_key(plan_id))
    # the app's 008 fields are published exactly where the database has their columns
    has_008 = schema_version != "002"
    text = b"".join(body for plan_id in results for body in bucket_bodies(s3, settings.bucket, plan_id).values())
    for field in (b'"is_linear":', b'"weight":', b'"target_time":', b'"is_skippable":'):
        assert (field in text) == has_008, field
    assert (b'"bit_index":' in text) == (schema_version == "008")  # migrated: every lesson has -1, no bit yet
    assert b"/private/files/" not in text


@every_schema
def test_every_visible_lesson_is_searchable_and_orphans_are_not_published(demo_db, s3, settings):
    _, conn = demo_db
    build_all(conn, s3, settings)
    for plan_id in list_plans(conn):
        bodies = {k: orjson.loads(v) for k, v in bucket_bodies(s3, settings.bucket, plan_id).items()}
        lessons = {k.rsplit("/", 1)[1][:-5] for k in bodies if "/lessons/" in k}
        index = bodies[keys.search_index_key(plan_id)]
        entries = index.get("entries") or [e for k, d in bodies.items() if "/search/" in k for e in d["entries"]]
        assert {e["lesson_id"] for e in entries} == lessons
        assert index["total_lessons"] == len(lessons)
    cur = conn.cursor()
    cur.execute("SELECT l.name FROM `tabMemora Lesson` l LEFT JOIN `tabMemora Topic` t ON t.name = l.parent_topic WHERE t.name IS NULL")
    orphans = [r[0] for r in cur.fetchall()]
    assert orphans, "the demo content should contain an orphan lesson"
    published = {k for p in list_plans(conn) for k in list_prefix(s3, settings.bucket, keys.plan_prefix(p))}
    assert not any(k.endswith(f"/lessons/{o}.json") for o in orphans for k in published)


@every_schema
def test_plan_is_read_with_a_fixed_number_of_queries(content_db, content_version):
    """PLAN_QUERIES statements whatever the plan's size: the column probe, the plan row, one per part."""
    _, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(plans=2, lessons_per_plan=40), version=content_version))
    small = read_plan(conn, "PLAN-2026-0001")

    def statements():
        cur = conn.cursor()
        cur.execute("SHOW SESSION STATUS LIKE 'Com_select'")
        return int(cur.fetchone()[1])

    before = statements()
    read_plan(conn, "PLAN-2026-0001")
    small_count = statements() - before  # SHOW STATUS is not a SELECT
    demo.reset_content(conn)
    demo.load(conn, demo.generate(demo.DemoScale(plans=2, lessons_per_plan=400), version=content_version))
    before = statements()
    big = read_plan(conn, "PLAN-2026-0001")
    big_count = statements() - before
    assert len(big.lessons) > 5 * len(small.lessons)
    assert small_count == big_count == PLAN_QUERIES == big.queries


@every_schema
def test_plan_queries_look_rows_up_by_index_never_by_scanning_a_level(content_db, content_version):
    """Every level below the plan's subjects is joined through an index (EXPLAIN: ref/eq_ref), never by a scan of
    the whole table. In `make bench` P4 (74,000 stages, after many edits) MariaDB chose a block-nested-loop scan of
    all stages instead: 3.5 s per plan instead of 0.03 s. That choice depends on the server's statistics of the
    moment and did not reproduce on a freshly loaded database, so this test does not recreate it; it fails if a
    level loses its index or the stages join stops forcing Frappe's `parent` index."""
    from memora_cdn.engine import doctypes
    from memora_cdn.engine.read import plan_queries

    _, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(plans=4, lessons_per_plan=400), version=content_version))
    cur = conn.cursor()
    queries = plan_queries(doctypes.probe(conn))
    scans = {}
    for part, (sql, _) in queries.items():
        cur.execute("EXPLAIN " + sql, (("PLAN-2026-0001",) * sql.count("%s")))
        cols = [d[0] for d in cur.description]
        for row in (dict(zip(cols, r)) for r in cur.fetchall()):
            if row["table"] in ("sg", "l2", "p2", "u2", "t2") and row["type"] not in ("ref", "eq_ref"):
                scans.setdefault(part, []).append((row["table"], row["type"], row["Extra"]))
    assert scans == {}
    assert "`tabMemora Lesson Stage` sg FORCE INDEX (`parent`)" in queries["stages"][0]


@every_schema
def test_second_build_uploads_and_deletes_nothing(demo_db, s3, settings):
    _, conn = demo_db
    build_all(conn, s3, settings)
    before = {p: bucket_bodies(s3, settings.bucket, p) for p in list_plans(conn)}
    again = build_all(conn, s3, settings)
    for plan_id, result in again.items():
        assert (result.status, result.uploaded, result.deleted) == ("unchanged", [], [])
        assert bucket_bodies(s3, settings.bucket, plan_id) == before[plan_id]
        # rendered once, against the state object, while the listing was fetched
        assert "render" in result.phases and "render_again" not in result.phases


@every_schema
def test_an_edit_changes_only_the_files_it_should(demo_db, s3, settings):
    _, conn = demo_db
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[0]
    bodies = {k: orjson.loads(v) for k, v in bucket_bodies(s3, settings.bucket, plan_id).items()}
    lesson_key = sorted(k for k in bodies if "/lessons/" in k)[3]
    lesson = bodies[lesson_key]
    execute(conn, "UPDATE `tabMemora Lesson` SET title = %s WHERE name = %s", "عنوان جديد", lesson["id"])
    result = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    expected = {lesson_key, keys.unit_key(plan_id, lesson["parent"]["unit_id"]),
                keys.subject_key(plan_id, lesson["parent"]["subject_id"]), keys.manifest_key(plan_id),
                keys.search_index_key(plan_id)}
    for side in ("previous_lesson", "next_lesson"):
        if side in lesson["navigation"]:
            expected.add(lesson["navigation"][side]["url"])
    assert set(result.uploaded) == expected and result.deleted == []
    assert len(result.uploaded) <= 10
    assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []


def test_unpublishing_and_trashing_remove_files(demo_db, s3, settings):
    _, conn = demo_db
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[0]
    lessons = sorted(k for k in list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id)) if "/lessons/" in k)
    trashed, unpublished = (k.rsplit("/", 1)[1][:-5] for k in lessons[:2])
    execute(conn, "DELETE FROM `tabMemora Lesson` WHERE name = %s", trashed)
    execute(conn, "UPDATE `tabMemora Lesson` SET is_published = 0 WHERE name = %s", unpublished)
    result = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    assert set(result.deleted) == {keys.lesson_key(plan_id, trashed), keys.lesson_key(plan_id, unpublished)}
    assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []


def test_a_subject_removed_from_the_plan_takes_its_files(demo_db, s3, settings):
    _, conn = demo_db
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[0]
    manifest = orjson.loads(s3.get_object(Bucket=settings.bucket, Key=keys.manifest_key(plan_id))["Body"].read())
    subject_id = manifest["subjects"][-1]["id"]
    subject = orjson.loads(s3.get_object(Bucket=settings.bucket, Key=keys.subject_key(plan_id, subject_id))["Body"].read())
    units = {u["id"] for t in subject["tracks"] for u in t["units"]}
    execute(conn, "DELETE FROM `tabMemora Plan Subject` WHERE parent = %s AND subject = %s", plan_id, subject_id)
    result = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    assert keys.subject_key(plan_id, subject_id) in result.deleted
    assert {keys.unit_key(plan_id, u) for u in units} <= set(result.deleted)
    assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []


def test_drift_is_repaired(demo_db, s3, settings):
    _, conn = demo_db
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[0]
    original = bucket_bodies(s3, settings.bucket, plan_id)
    lessons = sorted(k for k in original if "/lessons/" in k)
    lost, edited = lessons[0], lessons[1]
    extra = keys.plan_prefix(plan_id) + "lessons/not-a-lesson.json"
    s3.delete_object(Bucket=settings.bucket, Key=lost)
    s3.put_object(Bucket=settings.bucket, Key=edited, Body=b'{"hand": "edited"}')
    s3.put_object(Bucket=settings.bucket, Key=extra, Body=b"{}")
    result = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    assert set(result.uploaded) == {lost, edited} and result.deleted == [extra]
    assert bucket_bodies(s3, settings.bucket, plan_id) == original  # same bytes, same versions


def test_lost_state_object_is_recovered_from_object_metadata(demo_db, s3, settings):
    _, conn = demo_db
    # the demo addresses the bucket "memora-media"; point them at this test's media bucket, so some lessons sign
    execute(conn, "UPDATE `tabMemora Lesson Stage` SET config = REPLACE(config, 'memora-media', %s)", settings.media_bucket)
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[0]
    before = bucket_bodies(s3, settings.bucket, plan_id)
    signed = {k for k, body in before.items() if "/lessons/" in k and b"X-Amz-Signature" in body}
    unsigned = {k for k in before if "/lessons/" in k} - signed
    assert signed and unsigned
    s3.delete_object(Bucket=settings.bucket, Key=keys.state_key(plan_id))
    time.sleep(1.1)  # SigV4 signs to the second: a signature made anew must differ from the lost one
    result = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    # The listing shows files the (missing) state object does not record: the plan is rendered again against
    # the versions read from the objects' own metadata, so files without signed media keep their exact bytes
    # (without it, every file would get a new version). The signatures were kept only in the state object, so
    # lessons with signed media are signed anew. Every unrecorded file is written again, to be purged.
    assert "render_again" in result.phases
    after = bucket_bodies(s3, settings.bucket, plan_id)
    assert all(after[k] == before[k] for k in unsigned)
    assert all(after[k] != before[k] for k in signed)
    assert set(result.uploaded) == set(before)
    again = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    assert again.uploaded == [] and again.deleted == []


def test_deleted_plan_folder_is_removed(demo_db, s3, settings, monkeypatch):
    _, conn = demo_db
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[-1]
    execute(conn, "DELETE FROM `tabMemora Academic Plan` WHERE name = %s", plan_id)
    result = build_plan(plan_id, db=conn, s3=s3, settings=settings)
    assert result.status == "removed" and result.deleted
    assert list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id)) == {}
    assert plan_id not in list_published_plans(s3, settings.bucket)


def test_full_rebuild_removes_plans_missing_from_the_database(demo_db, s3, settings, monkeypatch):
    name, conn = demo_db
    build_all(conn, s3, settings)
    plan_id = list_plans(conn)[-1]
    execute(conn, "DELETE FROM `tabMemora Academic Plan` WHERE name = %s", plan_id)
    monkeypatch.setattr("memora_cdn.orchestration.tasks.load_settings", lambda: settings)
    monkeypatch.setattr("memora_cdn.orchestration.tasks.s3_client", lambda _settings: s3)
    monkeypatch.setattr("memora_cdn.orchestration.tasks.mysql_connection", lambda: __import__("tests.support", fromlist=["x"]).mysql_connect(name))
    assert remove_deleted_plans() == [plan_id]
    assert list_published_plans(s3, settings.bucket) == set(list_plans(conn))


def test_signed_video_urls_work_and_raw_addresses_never_publish(demo_db, s3, settings):
    _, conn = demo_db
    cur = conn.cursor()
    cur.execute("SELECT config FROM `tabMemora Lesson Stage` WHERE type = 'Video'")
    media_keys = set()
    for (config,) in cur.fetchall():
        url = json.loads(config)["video_url"]
        if "memora-media" in url:
            media_keys.add(url.split("memora-media/", 1)[1])
    assert media_keys
    for key in media_keys:
        s3.put_object(Bucket=settings.media_bucket, Key=key, Body=b"video-bytes")
    # the demo addresses the bucket "memora-media"; point them at this test's media bucket
    execute(conn, "UPDATE `tabMemora Lesson Stage` SET config = REPLACE(config, 'memora-media', %s)", settings.media_bucket)
    build_all(conn, s3, settings)
    signed = 0
    for plan_id in list_plans(conn):
        for key, body in bucket_bodies(s3, settings.bucket, plan_id).items():
            assert not any(is_raw_private_address(v, settings.media_bucket) for v in _strings(orjson.loads(body)))
            if "/lessons/" not in key:
                continue
            doc = orjson.loads(body)
            for stage in doc["stages"]:
                url = (stage.get("config") or {}).get("video_url", "")
                assert not url.startswith("s3://")
                if "X-Amz-Signature" in url:
                    signed += 1
                    assert "X-Amz-Expires=14400" in url and "signed_url_expiry" in doc
                    assert requests.get(url, timeout=10).content == b"video-bytes"
    assert signed > 0


@pytest.mark.parametrize("schema_version", ["008", "002to008"], indirect=True)
def test_an_unpublished_plan_is_listed_nowhere_and_its_build_removes_its_folder(demo_db, s3, settings):
    from memora_cdn.engine.read import existing_plans

    _, conn = demo_db
    build_all(conn, s3, settings)
    plans = list_plans(conn)
    gone, kept = plans[0], plans[1:]
    execute(conn, "UPDATE `tabMemora Academic Plan` SET is_published = 0 WHERE name = %s", gone)
    assert list_plans(conn) == kept and existing_plans(conn, plans) == set(kept)
    assert read_plan(conn, gone).unpublished and not read_plan(conn, gone).exists
    others = {p: bucket_bodies(s3, settings.bucket, p) for p in kept}
    result = build_plan(gone, db=conn, s3=s3, settings=settings)
    assert result.status == "removed" and result.deleted
    assert list_prefix(s3, settings.bucket, keys.plan_prefix(gone)) == {}
    assert {p: bucket_bodies(s3, settings.bucket, p) for p in kept} == others
    execute(conn, "UPDATE `tabMemora Academic Plan` SET is_published = 1 WHERE name = %s", gone)
    assert build_plan(gone, db=conn, s3=s3, settings=settings).status == "published"  # published again


def test_the_read_names_what_a_database_lacks(content_db):
    from memora_cdn.engine.doctypes import SchemaMismatch

    _, conn = content_db
    execute(conn, "ALTER TABLE `tabMemora Lesson` DROP COLUMN `parent_topic`")
    with pytest.raises(SchemaMismatch, match="`tabMemora Lesson`.`parent_topic`"):
        read_plan(conn, "PLAN-2026-0001")
    execute(conn, "DROP TABLE `tabMemora Lesson Stage`")
    with pytest.raises(SchemaMismatch, match="no table `tabMemora Lesson Stage`"):
        list_plans(conn)
