"""The sync path against real Redis, MariaDB, the local S3 server and the Cloudflare stand-in."""
from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest

from tests.support import REDIS_PORT

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.tracking import sync_log
from memora_cdn.engine.build import build_plan
from memora_cdn.purge import CloudflarePurger
from memora_cdn.engine.read import list_plans
from memora_cdn.tracking.registry import CLAIMS, PENDING, LockLost, PlanLocked, claim_key
from memora_cdn.tracking.run import run_plan
from memora_cdn.tracking.sync import claim_batch, purge, purge_built_plan, purge_requests, waiting
from memora_cdn.tracking.triggers import PendingPlansTrigger

P1, P2 = "PLAN-2026-0001", "PLAN-2026-0002"


@pytest.fixture
def demo_db(content_db, content_version):
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(), version=content_version))
    return conn


def build_claimed(plan_id, registry, db, s3, settings, run_id="run-1", triggered_by="Scheduler", final_try=True):
    """`run_plan` as the sync DAG's build task calls it (retries between runs, from a 1 s delay)."""
    return run_plan(plan_id, run_id=run_id, triggered_by=triggered_by, final_try=final_try,
                    base_delay=timedelta(seconds=1), registry=registry, db=db, s3=s3, settings=settings)


def cf_purger(cloudflare, **kwargs):
    return CloudflarePurger(cloudflare.url, "cf-test-token-123", "zone-abc", **kwargs)


def run_cycle(registry, db, s3, settings, run_id="run-1", cloudflare=None, triggered_by="Scheduler"):
    """One sync run without Airflow, as the DAG runs it: claim; build every claimed plan, each build purging what
    it changed; then the run's purge of what is left. Returns (batch, summaries, the run's purge report)."""
    batch = claim_batch(registry, db, s3, settings, run_id, triggered_by)
    purger = cf_purger(cloudflare, files_per_request=30) if cloudflare else None
    summaries = []
    for p in batch.plans:
        summary = build_claimed(p["plan_id"], registry, db, s3, settings, run_id, p["triggered_by"])
        summaries.append(purge_built_plan(lambda: purger, settings, summary) if purger else summary)
    report = purge(purger, settings, purge_requests(summaries)) if purger else None
    return batch, summaries, report


def cdn_urls(keys_):
    return sorted(f"https://cdn.memora.test/{k}" for k in keys_)


def execute(db, sql, *params):
    db.cursor().execute(sql, params)
    db.commit()


def test_an_edit_publishes_only_affected_files_and_purges_exactly_their_urls(demo_db, registry, s3, settings, cloudflare):
    for plan_id in list_plans(demo_db):
        build_plan(plan_id, db=demo_db, s3=s3, settings=settings)
    cur = demo_db.cursor()
    cur.execute("SELECT l.name FROM `tabMemora Lesson` l JOIN `tabMemora Topic` t ON t.name = l.parent_topic "
                "JOIN `tabMemora Unit` u ON u.name = t.parent_unit JOIN `tabMemora Track` tr ON tr.name = u.parent_track "
                "JOIN `tabMemora Plan Subject` ps ON ps.subject = tr.parent_subject AND ps.parent = %s "
                "WHERE l.is_published = 1 AND t.is_published = 1 AND u.is_published = 1 AND tr.is_published = 1 "
                "ORDER BY l.name LIMIT 1", (P2,))
    lesson = cur.fetchone()[0]
    execute(demo_db, "UPDATE `tabMemora Lesson` SET title = 'Edited' WHERE name = %s", lesson)
    registry.mark([P2])
    assert waiting(registry, demo_db).pending == 1
    batch, summaries, report = run_cycle(registry, demo_db, s3, settings, cloudflare=cloudflare)
    assert [p["plan_id"] for p in batch.plans] == [P2]
    changed = summaries[0]["purge_keys"]
    assert keys.lesson_key(P2, lesson) in changed and keys.manifest_key(P2) in changed
    assert 4 <= len(changed) <= 10
    assert sorted(cloudflare.purged_files) == cdn_urls(changed)
    # purged by the plan's own build; nothing was left for the run's purge
    assert summaries[0]["purged"] is True and summaries[0]["purge"]["urls_purged"] == len(changed)
    assert report is None
    assert registry.pending_count() == 0 and registry.claimed() == {}
    rows = sync_log.recent(demo_db, plan_id=P2)
    assert rows[0]["status"] == "Success" and rows[0]["files_uploaded"] == len(changed)


def test_twenty_edits_of_one_plan_give_one_rebuild(demo_db, registry, s3, settings):
    for i in range(20):
        registry.mark([P1])
    batch, summaries, _ = run_cycle(registry, demo_db, s3, settings)
    assert [p["plan_id"] for p in batch.plans] == [P1] and len(summaries) == 1
    assert not waiting(registry, demo_db).anything


def test_batch_size_caps_a_run_and_the_rest_waits(demo_db, registry, s3, settings):
    from dataclasses import replace

    registry.mark([P1, P2])
    small = replace(settings, batch_size=1)
    first = claim_batch(registry, demo_db, s3, small, "run-a", "Scheduler")
    assert len(first.plans) == 1 and registry.pending_count() == 1


def test_a_locked_plan_goes_back_to_pending(demo_db, registry, s3, settings):
    registry.mark([P1])
    with registry.lock(P1):
        batch, summaries, _ = run_cycle(registry, demo_db, s3, settings)
    assert summaries == [{"plan_id": P1, "status": "requeued", "purge_keys": [], "purge_prefix": False}]
    assert registry.pending() == {P1} and registry.claimed() == {}
    _, summaries, _ = run_cycle(registry, demo_db, s3, settings, run_id="run-2")
    assert summaries[0]["status"] == "published"


def test_a_change_during_the_build_is_rebuilt_later(demo_db, registry, s3, settings):
    registry.mark([P1])
    batch = claim_batch(registry, demo_db, s3, settings, "run-1", "Scheduler")
    registry.mark([P1])  # the Frappe side marks it again while the run builds it
    build_claimed(P1, registry, demo_db, s3, settings)
    assert registry.pending() == {P1}


def test_a_crashed_runs_claim_is_recovered_by_the_next_run(demo_db, registry, s3, settings):
    registry.mark([P1, P2])
    claim_batch(registry, demo_db, s3, settings, "crashed-run", "Scheduler")
    assert registry.pending_count() == 0 and registry.claimed() == {claim_key("crashed-run"): [P1, P2]}
    batch = claim_batch(registry, demo_db, s3, settings, "overlapping-run", "Scheduler")
    assert batch.recovered == 0 and batch.plans == []  # a fresh claim may belong to a live run: left alone
    registry.redis.hset(CLAIMS, claim_key("crashed-run"), int(time.time()) - 121)
    batch = claim_batch(registry, demo_db, s3, settings, "next-run", "Scheduler")
    assert batch.recovered == 2 and sorted(p["plan_id"] for p in batch.plans) == [P1, P2]
    assert sorted(registry.claimed()) == [claim_key("next-run")]


def test_fallback_rows_and_due_retries_are_drained(demo_db, registry, s3, settings):
    sync_log.write_fallback(demo_db, P1)
    sync_log.write_fallback(demo_db, P1)
    row = sync_log.start(demo_db, "dead-run", P2, "Scheduler", 0)
    execute(demo_db, "UPDATE `tabCDN Sync Log` SET status='Failed', next_retry_at = NOW() - INTERVAL 1 MINUTE WHERE name=%s", row)
    found = waiting(registry, demo_db)
    assert (found.pending, found.fallback_rows, found.due_retries) == (0, 2, 1)
    batch, summaries, _ = run_cycle(registry, demo_db, s3, settings)
    assert {p["plan_id"]: p["triggered_by"] for p in batch.plans} == {P1: "Fallback Recovery", P2: "Scheduler"}
    assert batch.drained == 2  # plans: the two fallback rows of P1 give one rebuild
    assert not waiting(registry, demo_db).anything
    assert {r["status"] for r in sync_log.recent(demo_db, status="Queued")} == set()


def test_dead_letter_after_the_last_retry_then_a_retry(demo_db, registry, s3, settings):
    """Each try is its own run (retries happen between runs): 1 s, 2 s, 4 s later, then the dead letter."""
    from dataclasses import replace

    broken = replace(settings, bucket="memora-no-such-bucket")
    registry.mark([P1])
    claim_batch(registry, demo_db, s3, settings, "run-1", "Scheduler")
    # the first try's in-run retry is still to come: no schedule, the plan stays claimed
    with pytest.raises(Exception, match="NoSuchBucket"):
        build_claimed(P1, registry, demo_db, s3, broken, final_try=False)
    row = sync_log.recent(demo_db, plan_id=P1)[0]
    assert row["status"] == "Failed" and row["next_retry_at"] is None and registry.claimed() == {claim_key("run-1"): [P1]}
    for attempt in (1, 2, 3, 4):
        with pytest.raises(Exception, match="NoSuchBucket"):
            build_claimed(P1, registry, demo_db, s3, broken, run_id=f"run-{attempt}")
        row = sync_log.recent(demo_db, plan_id=P1)[0]
        assert row["retry_count"] == attempt - 1 and registry.claimed() == {}
        if attempt < 4:
            assert row["status"] == "Failed" and row["next_retry_at"]
            delay = (row["next_retry_at"] - row["completed_at"]).total_seconds()
            assert 2 ** (attempt - 1) - 0.1 <= delay <= 2 ** (attempt - 1) + 0.5, delay  # 1 s, 2 s, 4 s
    assert row["status"] == "Dead Letter" and "NoSuchBucket" in row["error_message"]
    assert "NoSuchBucket" in registry.dead_letters()[P1]["error"]
    # an operator retries it (or clears the failed task): it is rebuilt and leaves the dead letter hash
    assert registry.retry_dead_letter(P1) and registry.pending() == {P1}
    run_cycle(registry, demo_db, s3, settings, run_id="run-5")
    assert registry.dead_letters() == {}
    assert sync_log.recent(demo_db, plan_id=P1)[0]["status"] == "Success"


def test_invalid_names_do_not_disturb_valid_ones(demo_db, registry, s3, settings):
    junk = ["../x", "", "a" * 10_000, "PLAN 1", 'PL"AN', "plans/../../etc", "NO-SUCH-PLAN", "x/y"]
    registry.redis.sadd(PENDING, *junk, P1)
    batch, summaries, _ = run_cycle(registry, demo_db, s3, settings)
    assert [p["plan_id"] for p in batch.plans] == [P1] and len(batch.refused) == len(junk)
    assert summaries[0]["status"] == "published"
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=settings.bucket).get("Contents", [])}
    assert all(k.startswith(("plans/PLAN-2026-0001/", "_memora_cdn_state/PLAN-2026-0001")) for k in listed)
    assert registry.claimed() == {} and registry.pending_count() == 0


def test_a_deleted_plan_name_is_valid_and_its_folder_removed(demo_db, registry, s3, settings):
    build_plan(P2, db=demo_db, s3=s3, settings=settings)
    execute(demo_db, "DELETE FROM `tabMemora Academic Plan` WHERE name = %s", P2)
    registry.mark([P2])
    batch, summaries, _ = run_cycle(registry, demo_db, s3, settings)
    assert summaries[0]["status"] == "removed" and summaries[0]["files_deleted"] > 0
    assert s3.list_objects_v2(Bucket=settings.bucket, Prefix=keys.plan_prefix(P2)).get("KeyCount") == 0


def test_signed_url_renewals_are_scheduled_and_claimed_when_due(demo_db, registry, s3, settings):
    execute(demo_db, "UPDATE `tabMemora Lesson Stage` SET config = REPLACE(config, 'memora-media', %s)", settings.media_bucket)
    registry.mark([P1])
    run_cycle(registry, demo_db, s3, settings)
    renew_at = registry.redis.zscore("cdn_export:renewals", P1)
    assert renew_at and renew_at > time.time() + 3600  # half of 4 hours ahead
    assert waiting(registry, demo_db).renewals_due == 0
    registry.redis.zadd("cdn_export:renewals", {P1: time.time() - 1})
    assert waiting(registry, demo_db).renewals_due == 1
    batch = claim_batch(registry, demo_db, s3, settings, "run-2", "Scheduler")
    assert [p["plan_id"] for p in batch.plans] == [P1]


def test_lock_is_exclusive_renewed_and_released_only_by_its_holder(registry):
    with registry.lock(P1, ttl_seconds=3):
        with pytest.raises(PlanLocked):
            with registry.lock(P1):
                pass
        time.sleep(4)  # longer than the TTL: the renewer keeps it
        assert registry.is_locked(P1)
        assert 0 < registry.redis.pttl(f"cdn_export:lock:{P1}") <= 3000
    assert not registry.is_locked(P1)
    with pytest.raises(LockLost):
        with registry.lock(P2, ttl_seconds=3):
            registry.redis.set(f"cdn_export:lock:{P2}", "someone-else")
            time.sleep(1.5)
    assert registry.redis.get(f"cdn_export:lock:{P2}") == b"someone-else"  # not released: not ours
    with pytest.raises(ValueError):
        with registry.lock(P1, ttl_seconds=301):
            pass


def test_concurrent_claims_never_hand_a_plan_to_two_runs(registry):
    registry.mark([f"PLAN-{i:04d}" for i in range(500)])
    results = {}

    def claim(run):
        results[run] = registry.claim(run, 50).plans

    threads = [threading.Thread(target=claim, args=(f"r{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [p for plans in results.values() for p in plans]
    assert len(claimed) == len(set(claimed))


def test_threshold_trigger_fires_when_the_pending_set_reaches_it(redis_db, monkeypatch):
    import redis as redis_lib

    monkeypatch.setattr(PendingPlansTrigger, "_redis", lambda self: redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=15))
    trigger = PendingPlansTrigger(threshold=50, debounce_seconds=3600, poll_interval=0.1, cooldown=60)
    assert trigger.serialize() == ("memora_cdn.tracking.triggers.PendingPlansTrigger",
                                   {"threshold": 50, "debounce_seconds": 3600, "redis_conn_id": "memora_redis",
                                    "poll_interval": 0.1, "cooldown": 60})

    async def first_event():
        gen = trigger.run()
        redis_db.sadd(PENDING, *[f"P{i}" for i in range(49)])
        task = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.5)
        assert not task.done()  # 49 < 50
        started = time.monotonic()
        redis_db.sadd(PENDING, "P49")
        event = await asyncio.wait_for(task, timeout=5)
        await gen.aclose()
        return event, time.monotonic() - started

    event, latency = asyncio.run(first_event())
    assert event.payload == {"pending": 50, "oldest_age": None, "reason": "threshold", "threshold": 50,
                             "debounce_seconds": 3600.0}
    assert latency < 30


def test_rows_left_processing_by_a_dead_build_are_swept(demo_db, registry, s3, settings):
    row = sync_log.start(demo_db, "killed-run", P1, "Scheduler", 0)
    execute(demo_db, "UPDATE `tabCDN Sync Log` SET started_at = NOW() - INTERVAL 2 HOUR WHERE name = %s", row)
    fresh = sync_log.start(demo_db, "live-run", P2, "Scheduler", 0)
    claim_batch(registry, demo_db, s3, settings, "run-x", "Scheduler")
    rows = {r["name"]: r for r in sync_log.recent(demo_db)}
    assert rows[row]["status"] == "Failed" and "abandoned" in rows[row]["error_message"]
    assert rows[fresh]["status"] == "Processing"


def both_plans_edited_and_claimed(db, registry, s3, settings):
    """Both demo plans published, then their titles edited (a manifest change each), marked and claimed."""
    for plan_id in list_plans(db):
        build_plan(plan_id, db=db, s3=s3, settings=settings)
    execute(db, "UPDATE `tabMemora Academic Plan` SET title = CONCAT(title, ' *')")
    registry.mark([P1, P2])
    return claim_batch(registry, db, s3, settings, "run-1", "Scheduler")


def test_each_plan_is_purged_right_after_its_own_upload_not_after_the_run(demo_db, registry, s3, settings, cloudflare):
    """SPEC §8: the CDN hears of a plan's changes within 60 s of their upload, however long the run's other
    plans take (or wait for a retry): each build purges its own changes before the next plan is built."""
    batch = both_plans_edited_and_claimed(demo_db, registry, s3, settings)
    assert sorted(p["plan_id"] for p in batch.plans) == [P1, P2]
    purger = cf_purger(cloudflare, files_per_request=30)
    seen = []
    for plan in batch.plans:
        summary = build_claimed(plan["plan_id"], registry, demo_db, s3, settings)
        summary = purge_built_plan(lambda: purger, settings, summary)
        seen += summary["purge_keys"]
        assert summary["purged"] is True and keys.manifest_key(plan["plan_id"]) in summary["purge_keys"]
        assert sorted(cloudflare.purged_files) == cdn_urls(seen)  # before the next plan is even built


def test_a_purge_the_cdn_refuses_is_left_to_the_runs_purge_task(demo_db, registry, s3, settings, cloudflare):
    """A build whose purge fails still succeeds (its files are published) and says so; the run's purge task,
    which Airflow retries, purges it. A purger that cannot even be made (a broken connection) counts the same."""
    batch = both_plans_edited_and_claimed(demo_db, registry, s3, settings)
    impatient = cf_purger(cloudflare, max_attempts=1)

    def broken():
        raise ValueError("Airflow connection 'memora_cdn_purge': extra 'zone_id' is missing")

    summaries = []
    for plan, make_purger in zip(sorted(batch.plans, key=lambda p: p["plan_id"]), (lambda: impatient, broken)):
        summary = build_claimed(plan["plan_id"], registry, demo_db, s3, settings)
        cloudflare.fail_next(("5xx", 503))
        summaries.append(purge_built_plan(make_purger, settings, summary))
    assert [s["purged"] for s in summaries] == [False, False]
    assert cloudflare.purged_files == []
    cloudflare.reset()
    left = purge_requests(summaries)
    assert sorted(r.plan_id for r in left) == [P1, P2]
    report = purge(cf_purger(cloudflare, files_per_request=30), settings, left)
    assert sorted(cloudflare.purged_files) == cdn_urls(k for s in summaries for k in s["purge_keys"])
    assert report.urls_purged == sum(len(s["purge_keys"]) for s in summaries)
    assert registry.claimed() == {} and registry.pending_count() == 0
