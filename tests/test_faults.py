"""Faults: whatever fails on the way, a content change reaches the CDN and the bucket never refers to a missing file.

Every test here runs against the real services (MariaDB, Redis db 11, the moto S3 server, the Cloudflare
stand-in) and takes one of them "down" without touching the shared server: S3 through `S3FaultProxy`,
MariaDB and Redis through `TcpProxy` (or a closed port). While builds run, a background thread samples
the bucket with `audit_plan(..., settled=False)`; no sample may show a manifest, subject or unit that
refers to a missing file (or to a newer version than the file holds). Afterwards, every change made
before or during the fault is published, nothing is dead-lettered, and no claim is left behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import MySQLdb
import pytest
import redis as redis_lib
from botocore.config import Config

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.tracking import sync_log
from memora_cdn.ops.audit import audit_plan
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.media import MediaSigner
from memora_cdn.engine.publish import list_prefix
from memora_cdn.purge import CloudflarePurger, PlanPurge, PurgeError
from memora_cdn.tracking.registry import RENEWALS, Registry, claim_key, lock_key
from memora_cdn.tracking.run import run_plan
from memora_cdn.tracking.sync import claim_batch, purge, purge_requests, waiting
from tests.standins.s3_proxy import S3FaultProxy
from tests.standins.tcp_proxy import TcpProxy
from tests.support import AWS_KEY, AWS_SECRET, MYSQL, PYTHONPATH, REDIS_PORT, REPO, free_port

P1, P2 = "PLAN-2026-0001", "PLAN-2026-0002"
PLANS = (P1, P2)
REDIS_DB = 11  # this suite's own Redis database; only it is ever flushed
RETRY = dict(base_delay=timedelta(seconds=0))  # retries between runs, due at once


# -- fixtures and helpers ------------------------------------------------------------------------------


@pytest.fixture
def redis11():
    client = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.ping()  # Redis absent: the test fails, it does not skip
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def reg(redis11):
    return Registry(redis11)


@pytest.fixture
def demo_db(content_db, content_version, settings):
    """The demo content (2 plans sharing a subject), Video stages pointing into this test's media bucket."""
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(lessons_per_plan=30), media_bucket=settings.media_bucket,
                                  version=content_version))
    return SimpleNamespace(name=name, conn=conn)


def connect(database: str, port: int | None = None):
    return MySQLdb.connect(**dict(MYSQL, port=port or MYSQL["port"]), db=database, charset="utf8mb4",
                           autocommit=False, connect_timeout=3)


def s3_client(endpoint: str, attempts: int = 2):
    """An exporter-side S3 client that gives up fast when the endpoint is down."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AWS_KEY, aws_secret_access_key=AWS_SECRET,
                        region_name="us-east-1",
                        config=Config(signature_version="s3v4", max_pool_connections=32, connect_timeout=2,
                                      read_timeout=10, retries={"mode": "standard", "max_attempts": attempts}))


def on_put(client, n: int, action) -> threading.Event:
    """Run `action()` once, just before the `n`-th PutObject of `client` is sent; the event is set then."""
    fired = threading.Event()
    count = [0]
    lock = threading.Lock()

    def hook(**_):
        with lock:
            count[0] += 1
            go = count[0] == n
        if go:
            action()
            fired.set()

    client.meta.events.register("before-send.s3.PutObject", hook)
    return fired


def block_puts(client) -> tuple[threading.Event, threading.Event]:
    """Hold every PutObject of `client` until `release` is set; `reached` is set at the first one."""
    reached, release = threading.Event(), threading.Event()

    def hook(**_):
        reached.set()
        assert release.wait(60), "test never released the blocked upload"

    client.meta.events.register("before-send.s3.PutObject", hook)
    return reached, release


class Sampler:
    """Audits the plans' published files in a loop, from its own S3 client, while builds run."""

    def __init__(self, s3, settings, plans=PLANS) -> None:
        self.s3 = s3_client(s3.meta.endpoint_url, attempts=3)  # straight to the S3 server, never through a proxy
        self.settings, self.plans = settings, plans
        self.samples = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bucket-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for plan_id in self.plans:
                try:
                    self.problems += audit_plan(self.s3, self.settings.bucket, plan_id, self.settings.media_bucket,
                                                settled=False)
                except Exception as exc:  # noqa: BLE001 - a failed sample is a finding too
                    self.problems.append(f"sample of {plan_id} failed: {type(exc).__name__}: {exc}")
            self.samples += 1
            self._stop.wait(0.02)  # leave the builds some CPU on a 2-core machine

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)

    def wait_for(self, samples: int, timeout: float = 30) -> None:
        target = self.samples + samples
        deadline = time.monotonic() + timeout
        while self.samples < target and time.monotonic() < deadline:
            time.sleep(0.05)


def execute(db, sql, *params):
    cur = db.cursor()
    cur.execute(sql, params)
    db.commit()
    return cur


def lesson_of(db, plan_id: str) -> str:
    """A published lesson of the plan, under a subject only that plan lists."""
    cur = execute(db, "SELECT l.name FROM `tabMemora Lesson` l JOIN `tabMemora Topic` t ON t.name = l.parent_topic "
                      "JOIN `tabMemora Unit` u ON u.name = t.parent_unit JOIN `tabMemora Track` tr ON tr.name = u.parent_track "
                      "JOIN `tabMemora Plan Subject` ps ON ps.subject = tr.parent_subject "
                      "WHERE l.is_published = 1 AND t.is_published = 1 AND u.is_published = 1 AND tr.is_published = 1 "
                      "GROUP BY l.name HAVING COUNT(DISTINCT ps.parent) = 1 AND MIN(ps.parent) = %s "
                      "ORDER BY l.name LIMIT 1", plan_id)
    return cur.fetchone()[0]


def edit_all_lessons(db, tag: str) -> None:
    """A content change touching every lesson of both plans (so a build has many files to upload)."""
    execute(db, "UPDATE `tabMemora Lesson` SET title = CONCAT(SUBSTRING_INDEX(title, ' #', 1), %s)", f" #{tag}")


def published_titles(s3, settings, plan_id: str) -> dict[str, str]:
    out = {}
    for key in list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id)):
        if "/lessons/" in key:
            doc = json.loads(s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read())
            out[doc["id"]] = doc["title"]
    return out


def assert_published_everywhere(db, s3, settings, tag: str | None = None, plans=PLANS, except_lessons=()) -> None:
    """The bucket holds exactly what the database says: a fresh build has nothing to upload or delete,
    every plan audits clean (settled), and (with `tag`) every published lesson carries the latest edit."""
    for plan_id in plans:
        assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []
        result = build_plan(plan_id, db=db, s3=s3, settings=settings)
        assert result.status == "unchanged", (plan_id, result.uploaded[:5], result.deleted[:5])
        if tag is not None:
            renamed = {row[0] for row in execute(
                db, "SELECT target_name FROM `tabMemora Plan Override` WHERE parent = %s AND action = 'Rename'",
                plan_id).fetchall()}
            titles = {k: t for k, t in published_titles(s3, settings, plan_id).items()
                      if k not in renamed and k not in except_lessons}
            assert titles and all(t.endswith(f" #{tag}") for t in titles.values()), plan_id


def assert_nothing_lost(reg, db, dead_letter_rows: int = 0) -> None:
    """Nothing dead-lettered (the log keeps `dead_letter_rows` historic rows), claimed, pending or waiting."""
    assert reg.dead_letters() == {}
    assert len(sync_log.recent(db, status="Dead Letter")) == dead_letter_rows
    assert reg.claimed() == {} and reg.pending_count() == 0
    assert not waiting(reg, db).anything


SUMMARIES: list[dict] = []  # every summary a build handed to the purge, in this test


@pytest.fixture(autouse=True)
def _summaries():
    SUMMARIES.clear()
    yield
    SUMMARIES.clear()


def build(reg, db, s3, settings, plan_id, run_id, final_try=True):
    summary = run_plan(plan_id, run_id=run_id, triggered_by="Scheduler", final_try=final_try,
                       registry=reg, db=db, s3=s3, settings=settings, **RETRY)
    SUMMARIES.append(summary)
    return summary


def listing(s3, settings, plans=PLANS) -> dict[str, str]:
    return {k: v for p in plans for k, v in list_prefix(s3, settings.bucket, keys.plan_prefix(p)).items()}


def assert_purged(s3, settings, before: dict[str, str], plans=PLANS) -> None:
    """Every file that changed, appeared or disappeared since `before` was handed to the CDN purge by some
    successful build: reaching the bucket is not enough, a cached old copy must be invalidated too."""
    after = listing(s3, settings, plans)
    changed = {k for k, etag in after.items() if before.get(k) != etag} | (set(before) - set(after))
    purged = {k for s in SUMMARIES for k in s.get("purge_keys") or ()}
    whole = {s["plan_id"] for s in SUMMARIES if s.get("purge_prefix")}
    missed = sorted(k for k in changed if k not in purged and keys.plan_of_key(k) not in whole)
    assert changed and missed == [], f"{len(missed)} changed file(s) never purged, e.g. {missed[:3]}"


def cycle(reg, db, s3, settings, run_id, recover_after=120):
    """One sync run without Airflow (claim, build each plan); returns {plan: summary}."""
    batch = claim_batch(reg, db, s3, settings, run_id, "Scheduler", recover_after=recover_after)
    return {p["plan_id"]: build(reg, db, s3, settings, p["plan_id"], run_id) for p in batch.plans}


def baseline(db, s3, settings) -> None:
    for plan_id in PLANS:
        build_plan(plan_id, db=db, s3=s3, settings=settings)


# -- S3 ------------------------------------------------------------------------------------------------


def test_s3_endpoint_stops_mid_build_then_the_retry_and_the_next_cycle_complete_it(demo_db, reg, s3_server, s3, settings):
    """The S3 endpoint goes down after 9 uploads of a build and comes back: both plans' builds fail (retry
    scheduled, claim kept); an edit made during the outage is marked; Airflow's retry of one plan and the next
    run (which drains the other plan's due retry from the sync log) publish everything, and purge every file
    that changed, including those the failed attempt had already uploaded. No sample ever saw a missing file."""
    db = demo_db.conn
    baseline(db, s3, settings)
    before = listing(s3, settings)
    edit_all_lessons(db, "before")
    reg.mark(PLANS)
    with S3FaultProxy(upstream=s3_server.endpoint) as proxy, Sampler(s3, settings) as sampler:
        exporter = s3_client(proxy.endpoint)
        down = on_put(exporter, 10, proxy.pause)  # the endpoint dies after 9 uploads of the first build
        batch = claim_batch(reg, db, exporter, settings, "run-1", "Scheduler")
        assert sorted(p["plan_id"] for p in batch.plans) == sorted(PLANS)
        for plan_id in PLANS:  # P1's task has its in-run retry to come, P2's was its last try of run-1
            with pytest.raises(Exception) as failure:
                build(reg, db, exporter, settings, plan_id, "run-1", final_try=plan_id != P1)
            assert "Connection" in type(failure.value).__name__ or "connection" in str(failure.value).lower()
        assert down.is_set()
        # nothing dropped: P1 still claimed by run-1 for its in-run retry, P2's retry scheduled for a later run
        rows = {plan_id: sync_log.recent(db, plan_id=plan_id)[0] for plan_id in PLANS}
        assert rows[P1]["status"] == "Failed" and rows[P1]["next_retry_at"] is None
        assert rows[P2]["status"] == "Failed" and rows[P2]["next_retry_at"] is not None
        assert reg.claimed()[claim_key("run-1")] == [P1]
        # a change made while S3 is down is marked as usual
        lesson = lesson_of(db, P1)
        execute(db, "UPDATE `tabMemora Lesson` SET title = 'Changed while S3 was down' WHERE name = %s", lesson)
        reg.mark([P1])
        sampler.wait_for(2)
        proxy.resume()

        # Airflow retries P1's task (try 2 of run-1); P2's retry is due, so the next run drains it from the log
        assert build(reg, db, exporter, settings, P1, "run-1")["status"] == "published"
        summaries = cycle(reg, db, exporter, settings, "run-2")
        assert set(summaries) == set(PLANS)  # P1 marked during the outage, P2 the due retry
        assert all(s["status"] in ("published", "unchanged") for s in summaries.values())
        sampler.wait_for(1)
    assert sampler.samples >= 3 and sampler.problems == []
    assert published_titles(s3, settings, P1)[lesson] == "Changed while S3 was down"
    assert_published_everywhere(db, s3, settings, tag="before", except_lessons=(lesson,))
    assert_purged(s3, settings, before)
    assert_nothing_lost(reg, db)


def test_s3_errors_on_every_upload_reach_the_dead_letter_and_stay_retryable(demo_db, reg, s3_server, s3, settings):
    """A plan whose uploads keep failing is dead-lettered after its last retry, never dropped; it is rebuilt
    once an operator retries it. The bucket stays consistent throughout."""
    db = demo_db.conn
    baseline(db, s3, settings)
    before = listing(s3, settings, (P1,))
    edit_all_lessons(db, "x")
    reg.mark([P1])
    with S3FaultProxy(upstream=s3_server.endpoint) as proxy, Sampler(s3, settings, (P1,)) as sampler:
        exporter = s3_client(proxy.endpoint, attempts=1)
        proxy.deny_prefix(keys.plan_prefix(P1) + "units/")  # lessons go up, then every unit is refused
        claim_batch(reg, db, exporter, settings, "run-1", "Scheduler")
        for attempt in (1, 2, 3, 4):  # the first try and 3 retries, each in its own run
            with pytest.raises(Exception, match="AccessDenied"):
                build(reg, db, exporter, settings, P1, "run-1" if attempt == 1 else f"retry-{attempt}")
        assert "AccessDenied" in reg.dead_letters()[P1]["error"]
        assert sync_log.recent(db, plan_id=P1)[0]["status"] == "Dead Letter"
        assert reg.claimed() == {}
        proxy.allow_all()
        assert reg.retry_dead_letter(P1)
        assert cycle(reg, db, exporter, settings, "run-2")[P1]["status"] == "published"
    assert sampler.samples >= 1 and sampler.problems == []
    assert_published_everywhere(db, s3, settings, tag="x", plans=(P1,))
    assert_purged(s3, settings, before, plans=(P1,))
    assert_nothing_lost(reg, db, dead_letter_rows=1)  # run-1's row stays in the audit trail


# -- Redis ---------------------------------------------------------------------------------------------


@pytest.fixture
def redis_proxy(redis11):
    with TcpProxy("127.0.0.1", REDIS_PORT) as proxy:
        yield proxy


def fast_redis(port: int):
    """A client that fails within about a second when Redis is unreachable (one retry, no backoff)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis_lib.Redis(host="127.0.0.1", port=port, db=REDIS_DB, socket_timeout=2, socket_connect_timeout=1,
                           retry=Retry(NoBackoff(), 1))


def test_redis_down_producer_falls_back_sync_fails_cleanly_and_the_fallback_drains_when_it_returns(
        demo_db, reg, redis_proxy, s3, settings):
    """Redis down: the Frappe side writes `Queued` fallback rows; the sync's check (`waiting`) and claim raise a
    Redis error without taking anything (the rows stay `Queued`, the claim of an earlier run stays in Redis);
    a claimed build fails without losing its claim, also on its last attempt. When Redis is back, one run
    drains the fallback rows, recovers the stale claim and publishes every change."""
    from memora_cdn_producer import mark_changed

    db = demo_db.conn
    baseline(db, s3, settings)
    via_proxy = Registry(fast_redis(redis_proxy.port))
    via_proxy.mark([P2])
    assert [p["plan_id"] for p in claim_batch(via_proxy, db, s3, settings, "run-1", "Scheduler").plans] == [P2]

    redis_proxy.pause()
    lesson = lesson_of(db, P1)
    execute(db, "UPDATE `tabMemora Lesson` SET title = 'Edited while Redis was down' WHERE name = %s", lesson)
    assert mark_changed("Memora Lesson", lesson, db=db, redis=fast_redis(redis_proxy.port)) == {P1}
    queued = sync_log.recent(db, status="Queued")
    assert [(r["plan_id"], r["is_fallback"]) for r in queued] == [(P1, 1)]

    # the sync DAG's check task and claim task fail with the Redis error; nothing is taken
    with pytest.raises(redis_lib.exceptions.ConnectionError):
        waiting(via_proxy, db)
    with pytest.raises(redis_lib.exceptions.ConnectionError):
        claim_batch(via_proxy, db, s3, settings, "run-2", "Scheduler")
    assert len(sync_log.recent(db, status="Queued")) == 1  # rolled back, not marked taken
    # run-1's build of P2 fails on every attempt (the lock needs Redis); its claim survives, nothing is dead-lettered
    for final_try in (False, True):
        with pytest.raises(redis_lib.exceptions.ConnectionError):
            build(via_proxy, db, s3, settings, P2, "run-1", final_try=final_try)
    assert reg.claimed() == {claim_key("run-1"): [P2]} and reg.dead_letters() == {}

    redis_proxy.resume()
    summaries = cycle(via_proxy, db, s3, settings, "run-3", recover_after=0)
    assert set(summaries) == {P1, P2}
    assert summaries[P1]["status"] == "published"
    assert published_titles(s3, settings, P1)[lesson] == "Edited while Redis was down"
    assert sync_log.recent(db, status="Queued") == []
    assert_published_everywhere(db, s3, settings)
    assert_nothing_lost(reg, db)


def test_redis_dies_during_a_build_files_still_publish_and_the_claim_and_lock_survive(
        demo_db, reg, redis_proxy, s3, settings):
    """Redis dies while a claimed plan uploads: the build completes and its task succeeds (so its summary reaches
    the purge); the claim (it could not be released) and the lock (it could not be unlocked, TTL <= 30 s) stay in
    Redis. When Redis is back, a later run recovers the claim, waits out the lock and rebuilds (nothing left to do)."""
    db = demo_db.conn
    baseline(db, s3, settings)
    settings = replace(settings, lock_ttl_seconds=30)
    before = listing(s3, settings, (P1,))
    via_proxy = Registry(fast_redis(redis_proxy.port))
    lesson = lesson_of(db, P1)
    execute(db, "UPDATE `tabMemora Lesson` SET title = 'Edited before Redis died' WHERE name = %s", lesson)
    via_proxy.mark([P1])
    claim_batch(via_proxy, db, s3, settings, "run-1", "Scheduler")
    exporter = s3_client(s3.meta.endpoint_url)
    on_put(exporter, 1, redis_proxy.pause)  # Redis goes down once the build is uploading
    with Sampler(s3, settings, (P1,)) as sampler:
        assert build(via_proxy, db, exporter, settings, P1, "run-1")["status"] == "published"
    assert sampler.problems == []
    assert published_titles(s3, settings, P1)[lesson] == "Edited before Redis died"
    assert reg.claimed() == {claim_key("run-1"): [P1]}  # could not be released: kept, not lost
    assert 0 < reg.redis.pttl(lock_key(P1)) <= 30_000  # could not be released: expires by itself
    assert sync_log.recent(db, plan_id=P1)[0]["status"] == "Success"  # MariaDB was fine

    redis_proxy.resume()
    # a later run recovers run-1's claim; the orphaned lock sends the plan back to pending until it expires
    assert cycle(via_proxy, db, exporter, settings, "run-2", recover_after=0)[P1]["status"] == "requeued"
    assert reg.pending() == {P1}
    reg.redis.pexpire(lock_key(P1), 1)  # the TTL (asserted above to be at most 30 s) runs out
    time.sleep(0.05)
    assert cycle(via_proxy, db, exporter, settings, "run-3")[P1]["status"] == "unchanged"
    assert reg.redis.zscore(RENEWALS, P1) is not None  # the renewal Redis missed is scheduled again
    assert_published_everywhere(db, s3, settings)
    assert_purged(s3, settings, before, plans=(P1,))
    assert_nothing_lost(reg, db)


# -- MariaDB -------------------------------------------------------------------------------------------


class PauseOnQuery:
    """A DB-API connection whose `proxy` is paused just before the first statement containing `marker`."""

    def __init__(self, conn, proxy: TcpProxy, marker: str) -> None:
        self._conn, self._proxy, self._marker = conn, proxy, marker

    def cursor(self):
        cursor, proxy, marker = self._conn.cursor(), self._proxy, self._marker

        class Cursor:
            def __getattr__(self, name):
                return getattr(cursor, name)

            def execute(self, sql, params=None):
                if marker in sql:
                    proxy.pause()
                return cursor.execute(sql, params)

        return Cursor()

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_mariadb_down_during_a_build_fails_it_and_the_retry_publishes(demo_db, reg, s3, settings):
    db = demo_db.conn
    baseline(db, s3, settings)
    before_all = listing(s3, settings)
    edit_all_lessons(db, "db")
    reg.mark(PLANS)
    before = {p: list_prefix(s3, settings.bucket, keys.plan_prefix(p)) for p in PLANS}
    with TcpProxy("127.0.0.1", MYSQL["port"]) as proxy, Sampler(s3, settings) as sampler:
        # MariaDB down before the claim: nothing is taken from Redis
        proxy.pause()
        with pytest.raises(MySQLdb.OperationalError):
            claim_batch(reg, connect(demo_db.name, proxy.port), s3, settings, "run-1", "Scheduler")
        assert reg.pending() == set(PLANS)
        proxy.resume()
        assert len(claim_batch(reg, connect(demo_db.name, proxy.port), s3, settings, "run-1", "Scheduler").plans) == 2

        # 1. it dies while the plan is read (at the stages query): nothing was uploaded, the claim is kept
        reading = PauseOnQuery(connect(demo_db.name, proxy.port), proxy, "`tabMemora Lesson Stage`")
        with pytest.raises(MySQLdb.OperationalError):
            build(reg, reading, s3, settings, P1, "run-1")
        assert list_prefix(s3, settings.bucket, keys.plan_prefix(P1)) == before[P1]
        assert sorted(reg.claimed()[claim_key("run-1")]) == sorted(PLANS)
        proxy.resume()
        # Airflow's retry opens a new connection
        assert build(reg, connect(demo_db.name, proxy.port), s3, settings, P1, "run-1", 2)["status"] == "published"

        # 2. it dies while the plan is uploaded: the build completes and the task succeeds (its summary reaches
        #    the purge); only its sync log row cannot say so
        exporter = s3_client(s3.meta.endpoint_url)
        on_put(exporter, 1, proxy.pause)
        assert build(reg, connect(demo_db.name, proxy.port), exporter, settings, P2, "run-1")["status"] == "published"
        proxy.resume()
    assert sampler.problems == []
    assert_published_everywhere(db, s3, settings, tag="db")
    assert_purged(s3, settings, before_all)
    assert_nothing_lost(reg, db)
    assert [r["status"] for r in sync_log.recent(db, plan_id=P1)] == ["Success"]
    assert [r["status"] for r in sync_log.recent(db, plan_id=P2)] == ["Processing"]  # written before MariaDB died


# -- a build killed with SIGKILL -----------------------------------------------------------------------

_KILLED_BUILD = r"""
import json, sys, time
from datetime import timedelta
import boto3, MySQLdb, redis
from botocore.config import Config
from memora_cdn.tracking.registry import Registry
from memora_cdn.settings import parse_settings
from memora_cdn.tracking.run import run_plan
from memora_cdn.tracking.sync import claim_batch

a = json.loads(sys.argv[1])
settings = parse_settings(a["settings"])
db = MySQLdb.connect(**a["mysql"], charset="utf8mb4")
reg = Registry(redis.Redis(host="127.0.0.1", port=a["redis_port"], db=a["redis_db"]))
s3 = boto3.client("s3", endpoint_url=a["endpoint"], aws_access_key_id=a["key"], aws_secret_access_key=a["secret"],
                  region_name="us-east-1", config=Config(signature_version="s3v4"))
puts = [0]

def slow(**_):
    puts[0] += 1
    if puts[0] == 8:
        print("UPLOADING", flush=True)
    time.sleep(0.2)

s3.meta.events.register("before-send.s3.PutObject", slow)
batch = claim_batch(reg, db, s3, settings, "killed-run", "Scheduler")
print("CLAIMED", json.dumps([p["plan_id"] for p in batch.plans]), flush=True)
for p in batch.plans:
    run_plan(p["plan_id"], run_id="killed-run", triggered_by="Scheduler", base_delay=timedelta(seconds=0),
             registry=reg, db=db, s3=s3, settings=settings)
print("DONE", flush=True)
"""


def test_a_build_killed_mid_upload_its_lock_expires_its_claim_is_recovered_and_the_next_run_completes(
        demo_db, reg, s3_server, s3, settings):
    import queue

    db = demo_db.conn
    baseline(db, s3, settings)
    before = listing(s3, settings, (P1,))
    edit_all_lessons(db, "after-kill")
    reg.mark([P1])
    killed_settings = replace(settings, lock_ttl_seconds=30, upload_concurrency=2)
    args = {"settings": killed_settings.as_dict(), "mysql": dict(MYSQL, db=demo_db.name), "redis_db": REDIS_DB, "redis_port": REDIS_PORT,
            "endpoint": s3_server.endpoint, "key": AWS_KEY, "secret": AWS_SECRET}
    lines: queue.Queue[str] = queue.Queue()
    with Sampler(s3, settings, (P1,)) as sampler:
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, json.dumps(args)], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": PYTHONPATH})
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        try:
            seen = []
            while "UPLOADING\n" not in seen:
                seen.append(lines.get(timeout=60))
                assert seen[-1] != "DONE\n", "the build finished before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert 'CLAIMED ["PLAN-2026-0001"]\n' in seen
        sampler.wait_for(1)
    assert sampler.samples >= 1 and sampler.problems == []
    uploaded = list_prefix(s3, settings.bucket, keys.plan_prefix(P1))
    assert audit_plan(s3, settings.bucket, P1, settings.media_bucket, settled=False) == []
    assert 0 < reg.redis.pttl(lock_key(P1)) <= 30_000  # the dead process's lock has at most lock_ttl_seconds left
    assert reg.claimed() == {claim_key("killed-run"): [P1]}
    assert sync_log.recent(db, plan_id=P1)[0]["status"] == "Processing"

    # the next run recovers the dead run's claim; the plan is still locked, so it goes back to pending
    first = claim_batch(reg, db, s3, settings, "run-2", "Scheduler", recover_after=0)
    assert first.recovered == 1 and [p["plan_id"] for p in first.plans] == [P1]
    assert build(reg, db, s3, settings, P1, "run-2")["status"] == "requeued"
    assert reg.pending() == {P1} and reg.claimed() == {}
    reg.redis.pexpire(lock_key(P1), 1)  # the rest of the TTL passes
    deadline = time.monotonic() + 5
    while reg.is_locked(P1) and time.monotonic() < deadline:
        time.sleep(0.01)
    summaries = cycle(reg, db, s3, settings, "run-3")
    assert summaries[P1]["status"] == "published"
    # the files the dead build uploaded are not recorded in the plan's state: uploaded again, hence purged
    by_dead_build = {k for k, etag in uploaded.items() if before.get(k) != etag}
    assert by_dead_build and by_dead_build <= set(summaries[P1]["purge_keys"])
    assert_published_everywhere(db, s3, settings, tag="after-kill", plans=(P1,))
    assert_purged(s3, settings, before, plans=(P1,))
    assert_nothing_lost(reg, db)


# -- concurrent builds ---------------------------------------------------------------------------------


class Background:
    """Run `fn` in a thread; `result()` re-raises its exception."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.value = self.error = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def result(self, timeout: float = 60):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background build did not finish"
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def full_rebuild_env(demo_db, reg, settings, monkeypatch):
    """`memora_cdn.orchestration.tasks` (what the full-rebuild DAG's tasks call) wired to this test's services instead of
    Airflow connections; each call gets a fresh DB connection, as a task does. Returns a setter for its S3 client."""
    import memora_cdn.orchestration.tasks as tasks

    clients = {}
    monkeypatch.setattr(tasks, "load_settings", lambda: settings)
    monkeypatch.setattr(tasks, "s3_client", lambda _settings: clients["s3"])
    monkeypatch.setattr(tasks, "registry", lambda required=True: reg)
    monkeypatch.setattr(tasks, "mysql_connection", lambda: connect(demo_db.name))
    return clients


def test_full_rebuild_and_sync_build_the_same_plan_at_once(demo_db, reg, s3, settings, full_rebuild_env):
    """The full rebuild's `build_plans` and the sync's `run_plan` meet on one plan, both ways round:
    the second one finds the lock, puts the plan back into pending (never drops it) and carries on with its
    other plans; a change made during the first build is published by the next sync run, and every changed
    file reaches a purge (the full rebuild's summaries go to its own purge task)."""
    from memora_cdn.orchestration.tasks import build_plans

    db = demo_db.conn
    baseline(db, s3, settings)
    before = listing(s3, settings)
    lesson = lesson_of(db, P1)

    # 1. the sync builds P1 (held mid-upload) while the nightly full rebuild reaches P1 and P2
    execute(db, "UPDATE `tabMemora Lesson` SET title = 'Edit 1' WHERE name = %s", lesson)
    reg.mark([P1])
    claim_batch(reg, db, s3, settings, "sync-1", "Scheduler")
    sync_s3 = s3_client(s3.meta.endpoint_url)
    reached, release = block_puts(sync_s3)
    with Sampler(s3, settings) as sampler:
        sync = Background(build, reg, connect(demo_db.name), sync_s3, settings, P1, "sync-1")
        assert reached.wait(30)
        execute(db, "UPDATE `tabMemora Lesson` SET title = 'Edit 2' WHERE name = %s", lesson)  # after the sync read it
        full_rebuild_env["s3"] = s3
        summaries = build_plans([P1, P2])  # does not fail: P1 is left to the sync DAG
        SUMMARIES.extend(summaries)
        assert [s["plan_id"] for s in summaries] == [P2]
        assert reg.pending() == {P1}
        release.set()
        assert sync.result()["status"] == "published"
        assert published_titles(s3, settings, P1)[lesson] == "Edit 1"
        assert cycle(reg, db, s3, settings, "sync-2")[P1]["status"] == "published"
        assert published_titles(s3, settings, P1)[lesson] == "Edit 2"

        # 2. the full rebuild holds P1 (held mid-upload) while a sync run claims it for an edit the rebuild read
        execute(db, "UPDATE `tabMemora Lesson` SET title = 'Edit 3' WHERE name = %s", lesson)
        full_s3 = s3_client(s3.meta.endpoint_url)
        reached, release = block_puts(full_s3)
        full_rebuild_env["s3"] = full_s3
        full = Background(build_plans, [P1])
        assert reached.wait(30)
        reg.mark([P1])
        assert cycle(reg, db, s3, settings, "sync-3")[P1]["status"] == "requeued"
        assert reg.pending() == {P1} and reg.claimed() == {}
        release.set()
        rebuilt = full.result()
        SUMMARIES.extend(rebuilt)
        assert [(s["plan_id"], s["status"]) for s in rebuilt] == [(P1, "published")]
        # the requeued plan is built again; the full rebuild already published Edit 3
        assert cycle(reg, db, s3, settings, "sync-4")[P1]["status"] == "unchanged"
        assert published_titles(s3, settings, P1)[lesson] == "Edit 3"
    assert sampler.problems == []
    assert_published_everywhere(db, s3, settings)
    assert_purged(s3, settings, before)
    assert_nothing_lost(reg, db)


def test_two_overlapping_sync_runs_never_build_one_plan_twice_and_lose_nothing(demo_db, reg, s3, settings):
    """Run A builds P1 (held mid-upload); a forced overlapping run B claims P1 again after a new edit: it never
    touches A's fresh claim on P2, finds P1 locked and requeues it; run C publishes the edit B could not."""
    db = demo_db.conn
    baseline(db, s3, settings)
    before = listing(s3, settings)
    lesson = lesson_of(db, P1)
    edit_all_lessons(db, "a")
    reg.mark(PLANS)
    run_a = claim_batch(reg, db, s3, settings, "run-a", "Scheduler")
    assert sorted(p["plan_id"] for p in run_a.plans) == sorted(PLANS)
    a_s3 = s3_client(s3.meta.endpoint_url)
    reached, release = block_puts(a_s3)
    with Sampler(s3, settings) as sampler:
        a_build = Background(build, reg, connect(demo_db.name), a_s3, settings, P1, "run-a")
        assert reached.wait(30)
        # run B starts while A is building P1: an editor changes P1 again
        execute(db, "UPDATE `tabMemora Lesson` SET title = 'Changed during run A' WHERE name = %s", lesson)
        reg.mark([P1])
        run_b = claim_batch(reg, db, s3, settings, "run-b", "Scheduler")
        assert [p["plan_id"] for p in run_b.plans] == [P1]  # A's fresh claim on P2 is not taken
        assert run_b.recovered == 0
        assert build(reg, connect(demo_db.name), s3, settings, P1, "run-b")["status"] == "requeued"
        release.set()
        assert a_build.result()["status"] == "published"
        assert build(reg, connect(demo_db.name), a_s3, settings, P2, "run-a")["status"] == "published"
        assert reg.pending() == {P1}
        assert cycle(reg, db, s3, settings, "run-c")[P1]["status"] == "published"
    assert sampler.problems == []
    assert published_titles(s3, settings, P1)[lesson] == "Changed during run A"
    assert_published_everywhere(db, s3, settings)
    assert_purged(s3, settings, before)
    assert_nothing_lost(reg, db)


# -- Cloudflare ----------------------------------------------------------------------------------------

CF_TOKEN = "cf-test-token-123"


def bucket_snapshot(s3, bucket: str) -> dict[str, str]:
    return list_prefix(s3, bucket, "")


def test_cloudflare_bursts_of_429_5xx_and_timeouts_end_in_a_purge_or_a_purge_error_never_touching_the_bucket(
        demo_db, reg, s3, settings, cloudflare):
    db = demo_db.conn
    baseline(db, s3, settings)
    edit_all_lessons(db, "cf")
    reg.mark([P1])
    summaries = list(cycle(reg, db, s3, settings, "run-1").values())
    requests = purge_requests(summaries)
    expected = {f"{settings.cdn_base_url}/{k}" for r in requests for k in r.keys}
    assert len(expected) > 10
    snapshot = bucket_snapshot(s3, settings.bucket)
    s3_calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: s3_calls.append(model.name))

    def purger(**kw):
        return CloudflarePurger(cloudflare.url, CF_TOKEN, "zone-abc", files_per_request=10, timeout=0.3,
                                backoff_base=0.05, **kw)

    # a burst: two 429s with Retry-After, a 503, a timeout, a 502, another 429 -> purged in the end
    cloudflare.fail_next(("429", 0.3), ("429", 0.2), ("5xx", 503), ("timeout", 0.6), ("5xx", 502), ("429", 0.1))
    started = time.monotonic()
    report = purge(purger(max_attempts=8), settings, requests)
    assert time.monotonic() - started >= 0.6  # every Retry-After was honoured
    assert report.retries == 6 and report.failures == []
    assert set(cloudflare.purged_files) >= expected

    # a longer outage: every batch is tried, then PurgeError; the token is in no message
    cloudflare.reset()
    cloudflare.fail_next(*[("5xx", 503)] * 40)
    with pytest.raises(PurgeError) as failure:
        purge(purger(max_attempts=3), settings, requests)
    assert failure.value.report.failures and CF_TOKEN not in str(failure.value)
    assert all(CF_TOKEN not in f for f in failure.value.report.failures)

    # a Retry-After longer than the deadline: it gives up at once instead of sleeping past it
    cloudflare.reset()
    cloudflare.fail_next(("429", 30))
    started = time.monotonic()
    with pytest.raises(PurgeError, match="deadline"):
        purge(purger(max_attempts=6, deadline_seconds=2), settings, [PlanPurge(P1, (keys.manifest_key(P1),))])
    assert time.monotonic() - started < 5

    assert s3_calls == []  # the purge never called S3 ...
    assert bucket_snapshot(s3, settings.bucket) == snapshot  # ... and nothing was rolled back
    assert sync_log.recent(db, plan_id=P1)[0]["status"] == "Success"
    assert_nothing_lost(reg, db)


# -- the clock jumps past the signed-URL expiry --------------------------------------------------------


def signed_lessons(s3, settings, plan_id: str) -> dict[str, dict]:
    """lesson key -> {"expiry": epoch of signed_url_expiry, "urls": [signed URLs]} for lessons with private media."""
    from calendar import timegm
    from urllib.parse import parse_qs, urlsplit

    out = {}
    for key in list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id)):
        if "/lessons/" not in key:
            continue
        doc = json.loads(s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read())
        urls = [s["config"]["video_url"] for s in doc["stages"]
                if "X-Amz-Signature=" in s.get("config", {}).get("video_url", "")]
        if urls:
            assert "signed_url_expiry" in doc, key
            expiry = timegm(time.strptime(doc["signed_url_expiry"], "%Y-%m-%dT%H:%M:%SZ"))
            url_expiries = []
            for url in urls:
                query = parse_qs(urlsplit(url).query)
                assert query["X-Amz-Expires"] == [str(settings.signed_url_expiry_hours * 3600)]
                signed_at = timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
                url_expiries.append(signed_at + int(query["X-Amz-Expires"][0]))
            out[key] = {"expiry": expiry, "urls": urls, "url_expiry": min(url_expiries)}
    return out


def test_the_clock_jumps_past_the_signed_url_expiry_and_every_lesson_is_resigned(demo_db, reg, s3, settings,
                                                                                  monkeypatch):
    """Signatures are renewed at half-life through the renewals zset, well before they expire; when the clock
    jumps past every expiry (a VM paused for hours, an NTP step), the next run re-signs every lesson. The
    exporter's clock (`MediaSigner(now=...)`, the registry's and botocore's signing time) is simulated."""
    from datetime import datetime, timezone

    clock = [float(int(time.time()))]
    monkeypatch.setattr("memora_cdn.engine.build.MediaSigner", partial(MediaSigner, now=lambda: clock[0]))
    monkeypatch.setattr("botocore.auth.get_current_datetime",  # X-Amz-Date of the presigned URLs
                        lambda remove_tzinfo=True: datetime.fromtimestamp(clock[0], timezone.utc).replace(tzinfo=None))
    monkeypatch.setattr("memora_cdn.tracking.registry.time",
                        SimpleNamespace(time=lambda: clock[0], strftime=time.strftime, gmtime=time.gmtime))
    lifetime = settings.signed_url_expiry_hours * 3600
    db = demo_db.conn
    reg.mark(PLANS)
    cycle(reg, db, s3, settings, "run-1")
    signed = {p: signed_lessons(s3, settings, p) for p in PLANS}
    for plan_id in PLANS:
        assert signed[plan_id], f"the demo has private videos in {plan_id}"
        renew_at = reg.redis.zscore(RENEWALS, plan_id)
        earliest = min(v["expiry"] for v in signed[plan_id].values())
        assert earliest == clock[0] + lifetime == min(v["url_expiry"] for v in signed[plan_id].values())
        assert renew_at == earliest - lifetime // 2  # re-signing is due two hours before anything expires

    # an hour later nothing is due, and a rebuild reuses the signatures (no churn)
    clock[0] += 3600
    assert waiting(reg, db).renewals_due == 0
    assert build_plan(P1, db=db, s3=s3, settings=settings).status == "unchanged"

    # the clock jumps past every expiry (a VM paused for hours, an NTP step): the next run re-signs everything
    clock[0] += lifetime
    assert waiting(reg, db).renewals_due == 2
    summaries = cycle(reg, db, s3, settings, "run-2")
    assert {p: s["status"] for p, s in summaries.items()} == {P1: "published", P2: "published"}
    for plan_id in PLANS:
        now_signed = signed_lessons(s3, settings, plan_id)
        assert set(now_signed) == set(signed[plan_id])
        old_urls = {u for v in signed[plan_id].values() for u in v["urls"]}
        for key, entry in now_signed.items():
            assert entry["expiry"] == entry["url_expiry"] == clock[0] + lifetime, key  # valid again, for 4 h
            assert not old_urls & set(entry["urls"]), f"{key} still holds a signature from before the jump"
        assert reg.redis.zscore(RENEWALS, plan_id) == clock[0] + lifetime // 2
        assert audit_plan(s3, settings.bucket, plan_id, settings.media_bucket) == []
    assert_nothing_lost(reg, db)


# -- the sync DAG itself when Redis is down -------------------------------------------------------------

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
                "PYTHONPATH": PYTHONPATH})
    return env


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_home")
    subprocess.run([AIRFLOW, "db", "migrate"], env=airflow_env(home), check=True, capture_output=True, timeout=300)
    return home


def test_the_sync_dag_with_redis_down_fails_its_check_and_takes_nothing(airflow_home, demo_db, reg, s3_server, s3,
                                                                        settings):
    """What `memora_cdn_sync` does when Redis is down: its `check` task fails with the Redis connection error
    (after its retries), `claim`, `build` and `purge` never run, and nothing is taken: the fallback rows the
    Frappe side wrote stay `Queued`. The next run after Redis returns drains them."""
    from tests.support import mysql_airflow_conn

    db = demo_db.conn
    sync_log.write_fallback(db, P1)
    closed = free_port()
    env = airflow_env(airflow_home) | {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(demo_db.name),
        "AIRFLOW_CONN_MEMORA_S3": s3_server.airflow_conn(),
        "AIRFLOW_CONN_MEMORA_REDIS": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": closed,
                                                 "extra": {"db": REDIS_DB}}),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict()),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "0",  # `dags test` sleeps through the check's 3 retries
    }
    done = subprocess.run([AIRFLOW, "dags", "test", "memora_cdn_sync"], env=env, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0 or "state=failed" in output, output[-4000:]
    assert "ConnectionError" in output and str(closed) in output, output[-4000:]
    assert "claimed " not in output and "purged " not in output
    assert [(r["plan_id"], r["is_fallback"]) for r in sync_log.recent(db, status="Queued")] == [(P1, 1)]
    assert list_prefix(s3, settings.bucket, "") == {}

    # Redis is back: the next run drains the fallback row and publishes the plan
    assert cycle(reg, db, s3, settings, "run-after")[P1]["status"] == "published"
    assert sync_log.recent(db, status="Queued") == []
    assert audit_plan(s3, settings.bucket, P1, settings.media_bucket) == []
    assert_nothing_lost(reg, db)
