"""A renamed lesson and a renamed plan, end to end (issue 12): Frappe renames the document (the stand-in of Frappe
v15 renames it in place, rewrites every Link and calls `after_rename`), the producer's documented hooks mark the
affected plans after the commit, and the next sync run (its real claim and `run_plan`, as the DAG's tasks call
them) publishes the lesson under its new name and deletes the old file; a renamed plan moves to its new folder and
the old one goes to the trash. Real MariaDB (the app's 008 tables), Redis and the moto S3 server."""
from __future__ import annotations

import sys

import pytest

import memora_cdn_producer
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.publish import list_prefix
from memora_cdn.tracking.run import run_plan
from memora_cdn.tracking.sync import claim_batch
from memora_cdn_demo import content as demo
from memora_cdn_producer import queue
from tests.standins import frappe_standin
from tests.support import REDIS_PORT, scratch_database
from tests.test_producer_hooks import documented_hooks

NEW_NAME = "Lesson 1: intro / مقدمة ?#%"


@pytest.fixture
def stack(redis_db, s3, settings, monkeypatch):
    with scratch_database(version="008") as (_, conn):
        demo.load(conn, demo.generate(demo.DemoScale(plans=3, subjects_per_plan=1, lessons_per_plan=6,
                                                     stages_per_lesson=2, shared_subjects=1), version="008"))
        cur = conn.cursor()
        cur.execute("SELECT name FROM `tabMemora Academic Plan` ORDER BY name")
        plans = [r[0] for r in cur.fetchall()]
        for plan_id in plans:
            build_plan(plan_id, db=conn, s3=s3, settings=settings)
        fr = frappe_standin.install(conn, version="008",
                                    conf={"memora_cdn_redis_url": f"redis://127.0.0.1:{REDIS_PORT}/15"},
                                    doc_events=documented_hooks()["doc_events"])
        monkeypatch.setitem(sys.modules, "frappe", fr)
        monkeypatch.delitem(sys.modules, "memora_cdn_producer.hooks", raising=False)
        monkeypatch.delattr(memora_cdn_producer, "hooks", raising=False)
        monkeypatch.setattr(queue, "_clients", {})
        yield {"db": conn, "frappe": fr, "plans": plans}


def sync_once(registry, db, s3, settings, run_id: str) -> list[str]:
    """One sync run: the DAG's claim, then each claimed plan through `run_plan` (what its build task calls)."""
    batch = claim_batch(registry, db, s3, settings, run_id, "Threshold")
    for plan in batch.plans:
        run_plan(plan["plan_id"], run_id=run_id, triggered_by=plan["triggered_by"], registry=registry, db=db, s3=s3,
                 settings=settings, pending_since=plan["pending_since"])
    return [p["plan_id"] for p in batch.plans]


def lessons_of(s3, settings, plan_id: str) -> set[str]:
    prefix = keys.plan_prefix(plan_id) + "lessons/"
    return {keys.decode_name(k[len(prefix):-len(".json")]) for k in list_prefix(s3, settings.bucket, prefix)}


def test_a_renamed_lesson_is_published_under_its_new_name_and_the_old_file_deleted(stack, registry, s3, settings):
    db, fr = stack["db"], stack["frappe"]
    cur = db.cursor()
    # a lesson of the subject every plan shares: its rename affects all of them
    cur.execute("SELECT l.name FROM `tabMemora Lesson` l JOIN `tabMemora Topic` t ON t.name = l.parent_topic "
                "JOIN `tabMemora Unit` u ON u.name = t.parent_unit JOIN `tabMemora Track` tr ON tr.name = u.parent_track "
                "JOIN `tabMemora Plan Subject` ps ON ps.subject = tr.parent_subject "
                "GROUP BY l.name HAVING COUNT(DISTINCT ps.parent) = %s ORDER BY l.name", (len(stack["plans"]),))
    published_everywhere = [name for (name,) in cur.fetchall()
                            if all(name in lessons_of(s3, settings, p) for p in stack["plans"])]
    old = published_everywhere[0]

    fr.rename_doc("Memora Lesson", old, NEW_NAME)
    assert registry.pending() == set()  # nothing before the commit
    fr.db.commit()  # the editor's commit: the producer's after_commit callback marks the plans
    assert registry.pending() == set(stack["plans"])

    assert sorted(sync_once(registry, db, s3, settings, "run-rename")) == sorted(stack["plans"])
    for plan_id in stack["plans"]:
        lessons = lessons_of(s3, settings, plan_id)
        assert NEW_NAME in lessons and old not in lessons, plan_id
        key = keys.lesson_key(plan_id, NEW_NAME)
        assert "/" not in key[len(keys.plan_prefix(plan_id) + "lessons/"):]  # one segment, never a path
        doc = s3.get_object(Bucket=settings.bucket, Key=key)["Body"].read().decode("utf-8")
        assert f'"id":"{NEW_NAME}"' in doc.replace(" ", "") or NEW_NAME in doc
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=settings.bucket, Key=keys.lesson_key(plan_id, old))
    assert registry.pending() == set() and registry.latencies()  # built once, latency recorded


def test_a_renamed_plan_moves_to_its_new_folder_and_the_old_one_is_trashed(stack, registry, s3, settings):
    db, fr = stack["db"], stack["frappe"]
    old = stack["plans"][0]
    new = "Plan 2026 / Grade 7 – الصف السابع"
    before = lessons_of(s3, settings, old)
    fr.rename_doc("Memora Academic Plan", old, new)
    fr.db.commit()
    assert registry.pending() == {old, new}

    assert sorted(sync_once(registry, db, s3, settings, "run-plan-rename")) == sorted([old, new])
    assert lessons_of(s3, settings, new) == before  # the same content under the new plan id
    assert list_prefix(s3, settings.bucket, keys.plan_prefix(old)) == {}  # the old folder is gone ...
    assert list_prefix(s3, settings.bucket, keys.trash_prefix(old))  # ... into the trash, restorable
    for plan_id in stack["plans"][1:]:  # the other plans are untouched
        assert lessons_of(s3, settings, plan_id)
