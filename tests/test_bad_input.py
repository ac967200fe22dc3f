"""Bad input: no bad record, name or setting crashes a batch; each is reported; nothing is published wrongly.

One module-scoped fixture writes three plans into a scratch MariaDB database: `P-GOOD` (clean), `P-BAD`
(every kind of bad record the Frappe side can hold, next to good content) and `P-BIG` (a lesson over
10 MB), then builds all three in ONE sync batch (`claim_batch` + `run_plan`, real Redis db 11,
the moto S3 server) and once more through the full rebuild's `memora_cdn.orchestration.tasks.build_plans`. The tests read
what that published and reported. Pending-set floods, unsafe plan names and bad settings have their own tests.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timedelta

import MySQLdb
import orjson
import pytest
import redis as redis_lib

from memora_cdn.engine import keys
from memora_cdn.tracking import sync_log
from memora_cdn.ops.audit import audit_plan
from memora_cdn.engine.publish import list_prefix
from memora_cdn.tracking.registry import PENDING, Registry, claim_key
from memora_cdn.settings import SettingsError, parse_settings
from memora_cdn.tracking.run import run_plan
from memora_cdn.tracking.sync import claim_batch
from tests.support import REDIS_PORT, scratch_database

REDIS_DB = 11
GOOD, BAD, BIG = "P-GOOD", "P-BAD", "P-BIG"
PLANS = (GOOD, BAD, BIG)
LONG = "ط" * 9_990 + "0123456789"  # 10 000 characters (the title column is ALTERed to TEXT for it)
# Names Frappe allows (published under encoded keys) and names it cannot give (over 140 characters: reported, skipped).
ODD_NAMES = ("L/slash", "..", "L..x", "L space", 'L"quote', "L'quote", "L?x=1#y", "100%")
NON_NAMES = ("x" * 141, "y" * 10_000)
DOCTYPES = {"subject": "Memora Subject", "track": "Memora Track", "unit": "Memora Unit", "topic": "Memora Topic",
            "lesson": "Memora Lesson"}
LINKS = {"track": "parent_subject", "unit": "parent_track", "topic": "parent_unit", "lesson": "parent_topic"}


# -- a tiny SQL tree writer ------------------------------------------------------------------------------


class Tree:
    def __init__(self, db) -> None:
        self.db = db
        self.n = 0

    def insert(self, doctype: str, **cols) -> None:
        self.n += 1
        cols = {"creation": datetime(2026, 1, 1), "modified": datetime(2026, 1, 1), "owner": "Administrator",
                "modified_by": "Administrator", "idx": self.n, **cols}
        names = ", ".join(f"`{c}`" for c in cols)
        self.db.cursor().execute(f"INSERT INTO `tab{doctype}` ({names}) VALUES ({', '.join(['%s'] * len(cols))})",
                                 list(cols.values()))

    def plan(self, name: str, *subjects: str) -> None:
        self.insert("Memora Academic Plan", name=name, title=f"Plan {name}")
        for i, subject in enumerate(subjects):
            self.listed(name, subject, i)

    def listed(self, plan: str, subject: str, sort: int = 0) -> None:
        self.insert("Memora Plan Subject", name=f"ps-{uuid.uuid4().hex[:10]}", parent=plan, parentfield="subjects",
                    parenttype="Memora Academic Plan", subject=subject, sort_order=sort)

    def node(self, kind: str, name: str, parent: str | None = None, **cols) -> str:
        cols.setdefault("title", f"Title of {name}")
        cols.setdefault("is_published", 1)
        if kind != "subject":
            cols[LINKS[kind]] = parent
        self.insert(DOCTYPES[kind], name=name, **cols)
        return name

    def chain(self, prefix: str, subject: str | None = None, **subject_cols) -> dict[str, str]:
        """subject -> track -> unit -> topic -> lesson (with one Text stage), all published."""
        ids = {"subject": subject or f"{prefix}S"}
        if subject is None:
            self.node("subject", ids["subject"], **subject_cols)
        parent = ids["subject"]
        for kind in ("track", "unit", "topic", "lesson"):
            ids[kind] = self.node(kind, f"{prefix}{kind[:2].upper()}", parent)
            parent = ids[kind]
        self.stage(ids["lesson"], "Text", {"body": "hello"})
        return ids

    def stage(self, lesson: str, type_, config, title="Stage", name: str | None = None) -> str:
        name = name or f"st-{uuid.uuid4().hex[:10]}"
        raw = config if isinstance(config, str) or config is None else json.dumps(config)
        self.insert("Memora Lesson Stage", name=name, parent=lesson, parentfield="stages",
                    parenttype="Memora Lesson", title=title, type=type_, config=raw)
        return name

    def override(self, plan: str, doctype: str, target, action, value=None, name: str | None = None) -> str:
        name = name or f"ov-{uuid.uuid4().hex[:10]}"
        self.insert("Memora Plan Override", name=name, parent=plan, parentfield="overrides",
                    parenttype="Memora Academic Plan", target_doctype=doctype, target_name=target, action=action,
                    override_value=value)
        return name


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# -- the shared build ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(s3_server):
    s3 = s3_server.client()
    suffix = uuid.uuid4().hex[:8]
    settings = parse_settings({"bucket": f"memora-bad-{suffix}", "media_bucket": f"memora-badm-{suffix}",
                               "cdn_base_url": "https://cdn.memora.test", "media_base_url": "https://media.memora.test",
                               "upload_concurrency": 8})
    s3.create_bucket(Bucket=settings.bucket)
    s3.create_bucket(Bucket=settings.media_bucket)
    redis = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    redis.ping()
    redis.flushdb()
    reg = Registry(redis)
    with scratch_database("memora_bad") as (db_name, db):
        cur = db.cursor()
        for table in ("Memora Subject", "Memora Unit", "Memora Topic", "Memora Lesson"):
            cur.execute(f"ALTER TABLE `tab{table}` MODIFY `title` TEXT")  # room for a 10 000-character title
        # room for a 10 000-character lesson name (Frappe's varchar(140) primary key would refuse it)
        cur.execute("ALTER TABLE `tabMemora Lesson` DROP PRIMARY KEY, MODIFY `name` VARCHAR(10000) NOT NULL")
        t = Tree(db)
        ids = {}
        # P-GOOD: clean, shares nothing with P-BAD
        t.plan(GOOD, "GS")
        t.node("subject", "GS")
        ids["good"] = t.chain("G", "GS")

        # P-BAD: good content next to every kind of bad record
        t.plan(BAD, "BS", "PAIDS", "BS")  # BS listed twice
        t.listed(BAD, "NO-SUCH-SUBJECT")
        t.node("subject", "BS")
        ids["bad"] = t.chain("B", "BS")
        lesson = ids["bad"]["lesson"]
        topic = ids["bad"]["topic"]
        unit = ids["bad"]["unit"]
        track = ids["bad"]["track"]
        # stages: config not an object / NULL; unknown and NULL types; a good one. (Config that is not JSON at all
        # cannot exist: MariaDB's JSON column checks json_valid; test_invalid_json_config_cannot_exist_in_the_table)
        ids["st_list"] = t.stage(lesson, "Interactive", "[1, 2]")
        ids["st_string"] = t.stage(lesson, "Question", '"just a string"')
        ids["st_null"] = t.stage(lesson, "Text", None)
        ids["st_quiz"] = t.stage(lesson, "Quiz", {"q": 1})
        ids["st_notype"] = t.stage(lesson, None, {"q": 1})
        ids["st_nul_title"] = t.stage(lesson, "Text", {"body": "x"}, title="Sta\x00ge")
        # titles: empty / NULL (skipped with their subtree), NUL bytes, emoji, RTL marks, 10 000 characters
        ids["empty_topic"] = t.node("topic", "B-EMPTY-TOPIC", unit, title="")
        t.node("lesson", "B-UNDER-EMPTY-TOPIC", "B-EMPTY-TOPIC")
        ids["null_lesson"] = t.node("lesson", "B-NULL-TITLE", topic, title=None)
        ids["blank_lesson"] = t.node("lesson", "B-BLANK-TITLE", topic, title=" \x00\t ")
        ids["nul_lesson"] = t.node("lesson", "B-NUL", topic, title="Null\x00 byte", sort_order=1)
        ids["emoji_lesson"] = t.node("lesson", "B-EMOJI", topic, title="Fractions 🍕🧮", sort_order=2)
        ids["rtl_lesson"] = t.node("lesson", "B-RTL", topic, title="\u200fالكسور\u200e (RTL)", sort_order=3)
        ids["long_lesson"] = t.node("lesson", "B-LONG", topic, title=LONG, sort_order=4)
        ids["long_unit"] = t.node("unit", "B-LONG-UNIT", track, title=LONG)
        # names with `/`, `..`, spaces, quotes, `?#%` (published, encoded), and names no Frappe document can have
        for i, name in enumerate(ODD_NAMES + NON_NAMES):
            t.node("lesson", name, topic, sort_order=10 + i)
        t.node("unit", "U/../../x", track)
        t.node("topic", "T-UNDER-ODD-UNIT", "U/../../x")
        # an image URL that cannot be published as an absolute URL
        ids["bad_image"] = t.node("lesson", "B-BAD-IMAGE", topic, image="https://exa mple.com/x.png", sort_order=30)
        # a paid subject: unknown actions and unknown doctypes must not free it
        t.node("subject", "PAIDS", required_item="ITEM-PAID")
        paid = t.chain("PD", "PAIDS")
        ids["paid"] = paid
        t.override(BAD, "Memora Lesson", paid["lesson"], "Set free")  # wrong case: unknown action
        t.override(BAD, "Memora Lesson", paid["lesson"], "Make Free")
        t.override(BAD, "Memora Banana", paid["lesson"], "Set Free")
        t.override(BAD, "Memora Lesson", paid["lesson"], None)
        t.override(BAD, "Memora Lesson", paid["lesson"], "Rename", "   ")  # rename to nothing
        # overrides whose target does not exist
        t.override(BAD, "Memora Lesson", "NO-SUCH-LESSON", "Set Free")
        t.override(BAD, "Memora Unit", "NO-SUCH-UNIT", "Hide")
        t.override(BAD, "Memora Subject", None, "Hide")
        # orphans at every level (their parent row is missing); they belong to no plan
        t.node("track", "ORPHAN-TRACK", "NO-SUCH-SUBJECT")
        t.node("unit", "ORPHAN-UNIT", "NO-SUCH-TRACK")
        t.node("topic", "ORPHAN-TOPIC", "NO-SUCH-UNIT")
        t.node("lesson", "ORPHAN-LESSON", "NO-SUCH-TOPIC")
        ids["orphan_stage"] = t.stage("NO-SUCH-LESSON", "Text", {"body": "orphan"})

        # P-BIG: one lesson over 10 MB
        t.plan(BIG, "BIGS")
        t.node("subject", "BIGS")
        big = t.chain("BG", "BIGS")
        ids["big"] = big
        t.stage(big["lesson"], "Text", {"body": "x" * 10_500_000})
        db.commit()

        handler = Records()
        logging.getLogger("memora_cdn").addHandler(handler)
        try:
            reg.mark(PLANS)
            batch = claim_batch(reg, db, s3, settings, "run-1", "Scheduler")
            summaries = {}
            for plan in batch.plans:
                summaries[plan["plan_id"]] = run_plan(
                    plan["plan_id"], run_id="run-1", triggered_by="Scheduler", base_delay=timedelta(seconds=1),
                    registry=reg, db=db, s3=s3, settings=settings)
            from memora_cdn.engine import read
            from memora_cdn.orchestration import tasks
            from tests.support import mysql_connect

            with pytest.MonkeyPatch.context() as mp:  # the full rebuild's path, on this test's services
                mp.setattr(tasks, "load_settings", lambda: settings)
                mp.setattr(tasks, "s3_client", lambda _settings: s3)
                mp.setattr(tasks, "registry", lambda required=True: reg)
                mp.setattr(tasks, "mysql_connection", lambda: mysql_connect(db_name))
                rebuild_plans = tasks.plans_to_rebuild(None)
                rebuild = tasks.build_plans(rebuild_plans)
            orphans = read.find_orphans(db)
        finally:
            logging.getLogger("memora_cdn").removeHandler(handler)
        docs = {}
        for plan_id in PLANS:
            for key in list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id)):
                body = s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
                docs[key] = {"_bytes": len(body), **orjson.loads(body)} if len(body) < 1_000_000 else {"_bytes": len(body)}
        yield dict(s3=s3, settings=settings, db=db, reg=reg, ids=ids, batch=batch, summaries=summaries,
                   rebuild=rebuild, rebuild_plans=rebuild_plans, orphans=orphans, logs=handler.messages, docs=docs)
    redis.flushdb()


def problems(built, plan_id: str) -> list[str]:
    return built["summaries"][plan_id]["problems"]


def reported(built, plan_id: str, *fragments: str) -> bool:
    return any(all(f in p for f in fragments) for p in problems(built, plan_id))


def doc(built, plan_id: str, kind: str, node_id: str) -> dict | None:
    key = {"lesson": keys.lesson_key, "unit": keys.unit_key, "subject": keys.subject_key}[kind](plan_id, node_id)
    return built["docs"].get(key)


def all_text(built, plan_id: str) -> str:
    return json.dumps({k: v for k, v in built["docs"].items() if k.startswith(keys.plan_prefix(plan_id))},
                      ensure_ascii=False)


# -- the batch ---------------------------------------------------------------------------------------------


def test_no_bad_record_crashes_the_batch(built):
    """Three plans in one sync batch, one full of bad records and one over 10 MB: all three are published (and
    the full rebuild's `build_plans` raises nothing); the bucket audits clean; the problems are counted."""
    assert sorted(p["plan_id"] for p in built["batch"].plans) == sorted(PLANS)
    assert {p: s["status"] for p, s in built["summaries"].items()} == {p: "published" for p in PLANS}
    assert sorted(s["plan_id"] for s in built["rebuild"]) == sorted(PLANS)
    assert {r["status"] for p in PLANS for r in sync_log.recent(built["db"], plan_id=p)} == {"Success"}
    assert built["reg"].dead_letters() == {} and built["reg"].claimed() == {}
    for plan_id in PLANS:
        assert audit_plan(built["s3"], built["settings"].bucket, plan_id) == [], plan_id
    assert built["summaries"][GOOD]["problems"] == []
    assert 20 <= built["summaries"][BAD]["problem_count"] < 50  # every one of them is in the summary
    good = built["ids"]["good"]
    assert doc(built, GOOD, "lesson", good["lesson"])["title"] == f"Title of {good['lesson']}"


# -- stages -----------------------------------------------------------------------------------------------


def test_stage_config_not_an_object_is_published_without_config_and_reported(built):
    ids = built["ids"]
    for stage in ("st_list", "st_string"):
        assert reported(built, BAD, ids[stage], "config"), stage
    assert reported(built, BAD, ids["st_list"], "list, not an object")
    lesson = doc(built, BAD, "lesson", ids["bad"]["lesson"])
    by_type = [(s["type"], "config" in s) for s in lesson["stages"]]
    # Text (good), Interactive (list), Question (string), Text (NULL), Text (NUL title)
    assert by_type == [("Text", True), ("Interactive", False), ("Question", False), ("Text", False), ("Text", True)]
    assert [s["idx"] for s in lesson["stages"]] == [1, 2, 3, 4, 5]  # 1-based, gaps of skipped stages closed
    # the neighbours' navigation carries the long title too
    emoji = doc(built, BAD, "lesson", "B-EMOJI")
    assert emoji["navigation"]["previous_lesson"]["title"] == "Null byte"


def test_invalid_json_config_cannot_exist_in_the_table(content_db):
    """Frappe's JSON field is MariaDB's JSON type: a CHECK (json_valid) refuses what is not JSON, so the exporter
    only ever meets non-object JSON (covered above) or NULL. (resolve still reports invalid JSON: test_resolve.)"""
    _, db = content_db
    with pytest.raises(MySQLdb.OperationalError, match="CONSTRAINT"):
        Tree(db).stage("L", "Video", "{not json")
    Tree(db).stage("L", "Video", "[1, 2]")  # valid JSON, not an object: can exist


# -- names ------------------------------------------------------------------------------------------------


def test_any_frappe_name_is_published_under_its_encoded_key_and_non_names_are_reported(built):
    import re

    for name in NON_NAMES:
        assert reported(built, BAD, repr(name)[:60].rstrip("'"), "cannot be used in a bucket key"), name
    segment = r"(?!\.)(?:[A-Za-z0-9_.-]|~[0-9A-F]{2})+"
    safe_key = rf"^plans/P-(GOOD|BAD|BIG)/(manifest|search_index|(subjects|units|lessons)/{segment}|search/{segment}(~p[0-9]+)?)\.json$"
    assert all(re.match(safe_key, k) and not {".", ".."} & set(k.split("/")) for k in built["docs"]), sorted(built["docs"])
    lessons = {keys.decode_name(k.rsplit("/", 1)[1][:-len(".json")]) for k in built["docs"] if k.startswith("plans/P-BAD/lessons/")}
    assert set(ODD_NAMES) <= lessons and not set(NON_NAMES) & lessons
    for name in ODD_NAMES:
        assert doc(built, BAD, "lesson", name)["id"] == name
    unit = doc(built, BAD, "unit", "U/../../x")
    assert unit["id"] == "U/../../x" and "T-UNDER-ODD-UNIT" in all_text(built, BAD)


def test_an_unusable_image_url_is_omitted_and_reported_not_fatal(built):
    lesson = doc(built, BAD, "lesson", "B-BAD-IMAGE")
    assert lesson is not None and "image" not in lesson
    assert reported(built, BAD, "B-BAD-IMAGE", "image")


# -- orphans ----------------------------------------------------------------------------------------------


def test_orphans_at_every_level_are_reported_and_never_fatal(built):
    found = {(o["doctype"], o["name"]) for o in built["orphans"]}
    assert found >= {("Memora Track", "ORPHAN-TRACK"), ("Memora Unit", "ORPHAN-UNIT"),
                     ("Memora Topic", "ORPHAN-TOPIC"), ("Memora Lesson", "ORPHAN-LESSON"),
                     ("Memora Lesson Stage", built["ids"]["orphan_stage"])}
    for doctype, name in found:  # the full rebuild logs each one
        assert any(f"orphan {doctype} {name!r}" in m for m in built["logs"]), (doctype, name)
    assert sorted(built["rebuild_plans"]) == sorted(PLANS)
    assert not any("ORPHAN" in k for k in built["docs"])


# -- sizes ------------------------------------------------------------------------------------------------


def test_a_lesson_over_10_mb_is_published_with_a_warning_and_reported(built):
    key = keys.lesson_key(BIG, built["ids"]["big"]["lesson"])
    assert built["docs"][key]["_bytes"] > 10_000_000
    assert reported(built, BIG, key, "over 10 MB")
    assert any("over 10 MB" in m for m in built["logs"])


def test_100000_pending_entries_claim_a_batch_quickly(s3_server):
    """100 000 names in the pending set (none of them a plan): a claim takes one batch in well under a second;
    the names are refused and reported, never built, and the rest stays pending."""
    redis = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    redis.flushdb()
    try:
        pipe = redis.pipeline(transaction=False)
        for start in range(0, 100_000, 10_000):
            pipe.sadd(PENDING, *[f"PLAN-FLOOD-{i:06d}" for i in range(start, start + 10_000)])
        pipe.execute()
        reg = Registry(redis)
        assert reg.pending_count() == 100_000
        started = time.perf_counter()
        claim = reg.claim("run-flood", 50)
        claim_seconds = time.perf_counter() - started
        assert len(claim.plans) == 50 and reg.pending_count() == 99_950
        assert claim_seconds < 0.5, f"claiming 50 of 100 000 took {claim_seconds:.3f} s"

        s3 = s3_server.client()
        bucket = f"memora-flood-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        settings = parse_settings({"bucket": bucket})
        with scratch_database("memora_flood") as (_, db):
            started = time.perf_counter()
            batch = claim_batch(reg, db, s3, settings, "run-flood-2", "Scheduler")
            batch_seconds = time.perf_counter() - started
        assert batch.plans == [] and len(batch.refused) == 50 and all("no such plan" in r for r in batch.refused)
        assert reg.pending_count() == 99_900 and reg.claimed() == {claim_key("run-flood"): sorted(claim.plans)}
        assert batch_seconds < 3, f"claim_batch over 100 000 pending took {batch_seconds:.3f} s"
        print(f"\nclaim of 50 out of 100 000 pending: {claim_seconds * 1000:.1f} ms; "
              f"claim_batch (with refusals): {batch_seconds * 1000:.0f} ms")
    finally:
        redis.flushdb()


# -- plan names ---------------------------------------------------------------------------------------------


def test_plan_names_frappe_cannot_give_are_refused_everywhere_and_odd_ones_work(s3_server, content_db, caplog):
    """Names over 140 characters (or empty) are refused from the pending set (reported, never keys) and in a manual
    run's list (the error names them). Names Frappe allows (`/`, `..`, spaces, quotes) are plan names like any
    other: one that is not in the database is refused as "no such plan", and a plan ROW with one is rebuilt."""
    from memora_cdn.orchestration import tasks
    from tests.support import mysql_connect

    non_names = ["x" * 10_000, "x" * 141, ""]
    odd = ["a/b", "..", "../../etc", "PLAN 1", 'PLAN"1', "PLAN'1", "PLAN-OK.."]
    redis = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    redis.flushdb()
    try:
        reg = Registry(redis)
        redis.sadd(PENDING, *non_names, *odd)
        s3 = s3_server.client()
        bucket = f"memora-names-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        settings = parse_settings({"bucket": bucket})
        name, db = content_db
        batch = claim_batch(reg, db, s3, settings, "run-names", "Scheduler")
        assert batch.plans == [] and len(batch.refused) == len(non_names) + len(odd)
        assert sum("not a valid plan name" in r for r in batch.refused) == len(non_names)
        assert sum("no such plan" in r for r in batch.refused) == len(odd)
        assert any("…" in r for r in batch.refused)  # the 10 000-character name is shortened in the report
        assert reg.pending_count() == 0 and reg.claimed() == {}
        assert list_prefix(s3, bucket, "") == {}

        with pytest.raises(ValueError, match=r"not plan names: 'xxxx"):
            tasks.plans_to_rebuild(["PLAN-2026-0001", "x" * 141])
        assert tasks.plans_to_rebuild(["PLAN 3", "a/b"]) == ["PLAN 3", "a/b"]

        Tree(db).insert("Memora Academic Plan", name="PLAN 3", title="A plan with a space")
        Tree(db).insert("Memora Academic Plan", name="PLAN-OK", title="Fine")
        db.commit()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tasks, "mysql_connection", lambda: mysql_connect(name))
            assert tasks.plans_to_rebuild(None) == ["PLAN 3", "PLAN-OK"]

        # the Frappe side marks any name Frappe allows, as it is (issue 12): tests/test_producer.py
    finally:
        redis.flushdb()


# -- settings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, message", [
    ("{not json", "memora_cdn_settings is not valid JSON"),
    ('["bucket"]', "memora_cdn_settings must be a JSON object, got list"),
    ("42", "memora_cdn_settings must be a JSON object, got int"),
    ("null", "memora_cdn_settings must be a JSON object, got NoneType"),
    ('"memora-cdn"', "memora_cdn_settings must be a JSON object, got str"),
    ({"bukcet": "x"}, "unknown key(s) bukcet"),
    ({"batch_size": "50"}, "memora_cdn_settings.batch_size: expected an integer, got '50'"),
    ({"batch_size": 50.0}, "memora_cdn_settings.batch_size: expected an integer, got 50.0"),
    ({"batch_size": True}, "memora_cdn_settings.batch_size: expected an integer, got True"),
    ({"batch_size": None}, "memora_cdn_settings.batch_size: expected an integer, got None"),
    ({"batch_size": 0}, "memora_cdn_settings.batch_size: 0 is out of range 1..1000"),
    ({"batch_size": 1001}, "memora_cdn_settings.batch_size: 1001 is out of range 1..1000"),
    ({"signed_url_expiry_hours": 48}, "memora_cdn_settings.signed_url_expiry_hours: 48 is out of range 1..24"),
    ({"signed_url_expiry_hours": 0}, "memora_cdn_settings.signed_url_expiry_hours: 0 is out of range 1..24"),
    ({"lock_ttl_seconds": 29}, "memora_cdn_settings.lock_ttl_seconds: 29 is out of range 30..300"),
    ({"lock_ttl_seconds": 301}, "memora_cdn_settings.lock_ttl_seconds: 301 is out of range 30..300"),
    ({"upload_concurrency": -1}, "memora_cdn_settings.upload_concurrency: -1 is out of range 1..64"),
    ({"purge_files_per_request": 10_000}, "memora_cdn_settings.purge_files_per_request: 10000 is out of range"),
    ({"bucket": 7}, "memora_cdn_settings.bucket: expected a non-empty string, got 7"),
    ({"bucket": ""}, "memora_cdn_settings.bucket: expected a non-empty string"),
    ({"bucket": "Bad_Bucket"}, "memora_cdn_settings.bucket: 'Bad_Bucket' is not a valid bucket name"),
    ({"media_bucket": "../x"}, "memora_cdn_settings.media_bucket: '../x' is not a valid bucket name"),
    ({"cdn_base_url": "cdn.memora.app"}, "memora_cdn_settings.cdn_base_url: expected an http(s) URL"),
    ({"media_base_url": "javascript:alert(1)"}, "memora_cdn_settings.media_base_url: expected an http(s) URL"),
    ({"purge_provider": "akamai"}, "memora_cdn_settings.purge_provider: 'akamai' is not one of"),
    ({"cache_control": ["public"]}, "memora_cdn_settings.cache_control: expected a non-empty string"),
])
def test_bad_settings_are_refused_with_a_message_naming_the_key(raw, message):
    with pytest.raises(SettingsError) as refused:
        parse_settings(raw)
    assert message in str(refused.value)


def test_bad_settings_from_the_airflow_variable_are_refused_naming_the_key(monkeypatch):
    from memora_cdn.settings import load_settings

    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS", json.dumps({"batch_size": 50, "lock_ttl_seconds": "300"}))
    with pytest.raises(SettingsError, match=r"memora_cdn_settings\.lock_ttl_seconds: expected an integer"):
        load_settings()
    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS", "{'bucket': 'x'}")  # Python, not JSON
    with pytest.raises(SettingsError, match="memora_cdn_settings is not valid JSON"):
        load_settings()
    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS", json.dumps({"batch_size": 7}))
    assert load_settings().batch_size == 7
