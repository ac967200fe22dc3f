"""P4, one simulated hour: random content edits replayed as five-minute sync cycles.

The edits are made the way the Frappe side makes them: a committed change in MariaDB, then
`memora_cdn_producer.mark_changed` (the producer module) resolves the affected plans and SADDs them
to the Redis pending set. Each five-minute window's edits are applied, then one sync cycle runs
through the real code path of `memora_cdn_sync` without Airflow (`memora_cdn.tracking.sync`: claim_batch,
build_claimed_plan for every claimed plan, each followed by purge_built_plan, as the DAG's build task does,
then purge_requests + purge for what is left, as its purge task does; against the local Cloudflare stand-in). Time is compressed: the edits of
window k are all in the database when cycle k starts (what a run at minute 5(k+1) would find).

Edit mix (per edit: a plan chosen uniformly, then a target of that plan chosen uniformly; a target in
the subject every plan shares affects all plans, as it would in production):
  title 45% (lesson 70%, topic 12%, unit 10%, track 5%, subject 3%), publish/unpublish toggle 15%
  (lesson 80%, topic 10%, unit 10%), trash a lesson (row and stages deleted) 8%, new lesson with 8
  stages 14%, plan override added (Hide / Rename / Set Free) or removed 10%, stage edit 8%.
"""
from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

from bench import common

KIND_WEIGHTS = (("title", 45), ("publish", 15), ("trash", 8), ("new_lesson", 14), ("override", 10), ("stage", 8))
TITLE_LEVELS = (("Memora Lesson", 70), ("Memora Topic", 12), ("Memora Unit", 10), ("Memora Track", 5), ("Memora Subject", 3))
PUBLISH_LEVELS = (("Memora Lesson", 80), ("Memora Topic", 10), ("Memora Unit", 10))
LEVELS = ("Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson")
LINKS = {"Memora Track": "parent_subject", "Memora Unit": "parent_track", "Memora Topic": "parent_unit",
         "Memora Lesson": "parent_topic"}


def _choose(rng: random.Random, weighted) -> str:
    names, weights = zip(*weighted)
    return rng.choices(names, weights=weights)[0]


class Tree:
    """The content tree as names only, kept in step with the edits (what the editor can pick)."""

    def __init__(self, db) -> None:
        cur = db.cursor()
        self.plan_subjects: dict[str, list[str]] = defaultdict(list)
        cur.execute("SELECT parent, subject FROM `tabMemora Plan Subject` ORDER BY parent, idx")
        for plan, subject in cur.fetchall():
            self.plan_subjects[plan].append(subject)
        self.children: dict[str, dict[str, list[str]]] = {}
        self.parent: dict[str, dict[str, str]] = {}
        for doctype, link in LINKS.items():
            cur.execute(f"SELECT name, `{link}` FROM `tab{doctype}` ORDER BY name")
            kids: dict[str, list[str]] = defaultdict(list)
            parents: dict[str, str] = {}
            for name, parent in cur.fetchall():
                kids[parent].append(name)
                parents[name] = parent
            self.children[doctype] = kids
            self.parent[doctype] = parents
        self.overrides: dict[str, list[str]] = defaultdict(list)
        cur.execute("SELECT parent, name FROM `tabMemora Plan Override` ORDER BY parent, idx")
        for plan, name in cur.fetchall():
            self.overrides[plan].append(name)
        cur.close()

    def nodes(self, plan: str, doctype: str) -> list[str]:
        level = list(self.plan_subjects[plan])
        for current in LEVELS[1:LEVELS.index(doctype) + 1]:
            kids = self.children[current]
            level = [c for p in level for c in kids.get(p, ())]
        return level


class Editor:
    def __init__(self, db, redis, tree: Tree, rng: random.Random) -> None:
        from memora_cdn_producer import mark_changed

        self.db, self.redis, self.tree, self.rng = db, redis, tree, rng
        self.mark_changed = mark_changed
        self.serial = 0

    def _exec(self, sql: str, params: tuple = ()) -> None:
        cur = self.db.cursor()
        cur.execute(sql, params)
        cur.close()

    def _name(self) -> str:
        return "%010x" % self.rng.getrandbits(40)

    def _now(self) -> datetime:
        return datetime.now(timezone.utc).replace(tzinfo=None)

    def apply(self, kind: str, plan: str) -> tuple[str, set[str]]:
        """Make one edit of `kind` in `plan`; returns (what was done, plans marked)."""
        self.serial += 1
        method = getattr(self, f"_{kind}")
        done, marks = method(plan)
        plans: set[str] = set()
        for doctype, name, parent in marks:
            plans |= self.mark_changed(doctype, name, db=self.db, redis=self.redis, parent=parent)
        return done, plans

    def _pick(self, plan: str, doctype: str) -> str | None:
        nodes = self.tree.nodes(plan, doctype)
        return self.rng.choice(nodes) if nodes else None

    def _title(self, plan: str):
        doctype = _choose(self.rng, TITLE_LEVELS)
        name = self._pick(plan, doctype)
        if name is None:
            return "title: nothing to edit", []
        self._exec(f"UPDATE `tab{doctype}` SET title = CONCAT(SUBSTRING_INDEX(title, ' · edit ', 1), %s), "
                   "modified = %s WHERE name = %s", (f" · edit {self.serial}", self._now(), name))
        self.db.commit()
        return f"title {doctype}", [(doctype, name, None)]

    def _publish(self, plan: str):
        doctype = _choose(self.rng, PUBLISH_LEVELS)
        name = self._pick(plan, doctype)
        if name is None:
            return "publish: nothing to toggle", []
        self._exec(f"UPDATE `tab{doctype}` SET is_published = 1 - is_published, modified = %s WHERE name = %s",
                   (self._now(), name))
        self.db.commit()
        return f"publish toggle {doctype}", [(doctype, name, None)]

    def _trash(self, plan: str):
        name = self._pick(plan, "Memora Lesson")
        if name is None:
            return "trash: no lesson", []
        topic = self.tree.parent["Memora Lesson"].pop(name)
        self.tree.children["Memora Lesson"][topic].remove(name)
        self._exec("DELETE FROM `tabMemora Lesson Stage` WHERE parent = %s AND parenttype = 'Memora Lesson'", (name,))
        self._exec("DELETE FROM `tabMemora Lesson` WHERE name = %s", (name,))
        self.db.commit()
        # after_delete: the row is gone, the chain is found from the document's own parent link
        return "trash lesson", [("Memora Lesson", name, topic)]

    def _new_lesson(self, plan: str):
        topic = self._pick(plan, "Memora Topic")
        model = self._pick(plan, "Memora Lesson")
        if topic is None or model is None:
            return "new lesson: no topic", []
        cur = self.db.cursor()
        cur.execute("SELECT title, type, config FROM `tabMemora Lesson Stage` WHERE parent = %s ORDER BY idx", (model,))
        stages = cur.fetchall()
        cur.execute("SELECT COALESCE(MAX(sort_order), 0) FROM `tabMemora Lesson` WHERE parent_topic = %s", (topic,))
        sort_order = int(cur.fetchone()[0]) + 10
        cur.close()
        name, now = self._name(), self._now()
        self._exec("INSERT INTO `tabMemora Lesson` (name, creation, modified, modified_by, owner, docstatus, idx, title, "
                   "description, image, is_published, is_free_preview, sort_order, parent_topic) "
                   "VALUES (%s, %s, %s, 'Administrator', 'Administrator', 0, 0, %s, NULL, NULL, 1, 0, %s, %s)",
                   (name, now, now, f"New lesson {self.serial}", sort_order, topic))
        for idx, (title, type_, config) in enumerate(stages, start=1):
            self._exec("INSERT INTO `tabMemora Lesson Stage` (name, creation, modified, modified_by, owner, docstatus, idx, "
                       "parent, parentfield, parenttype, title, type, config) VALUES (%s, %s, %s, 'Administrator', "
                       "'Administrator', 0, %s, %s, 'stages', 'Memora Lesson', %s, %s, %s)",
                       (self._name(), now, now, idx, name, title, type_, config))
        self.db.commit()
        self.tree.children["Memora Lesson"][topic].append(name)
        self.tree.parent["Memora Lesson"][name] = topic
        return "new lesson", [("Memora Lesson", name, None)]

    def _override(self, plan: str):
        existing = self.tree.overrides[plan]
        if existing and self.rng.random() < 0.4:
            name = existing.pop(self.rng.randrange(len(existing)))
            self._exec("DELETE FROM `tabMemora Plan Override` WHERE name = %s", (name,))
            self.db.commit()
            return "override removed", [("Memora Plan Override", name, plan)]
        action, doctype = self.rng.choice([("Hide", "Memora Lesson"), ("Hide", "Memora Unit"),
                                           ("Rename", "Memora Lesson"), ("Rename", "Memora Unit"),
                                           ("Rename", "Memora Topic"), ("Set Free", "Memora Lesson"),
                                           ("Set Free", "Memora Topic")])
        target = self._pick(plan, doctype)
        if target is None:
            return "override: no target", []
        value = f"Renamed {self.serial}" if action == "Rename" else None
        name, now = self._name(), self._now()
        self._exec("INSERT INTO `tabMemora Plan Override` (name, creation, modified, modified_by, owner, docstatus, idx, "
                   "parent, parentfield, parenttype, target_doctype, target_name, action, override_value) VALUES "
                   "(%s, %s, %s, 'Administrator', 'Administrator', 0, %s, %s, 'overrides', 'Memora Academic Plan', "
                   "%s, %s, %s, %s)", (name, now, now, 100 + self.serial, plan, doctype, target, action, value))
        self.db.commit()
        existing.append(name)
        return f"override {action} {doctype}", [("Memora Plan Override", name, plan)]

    def _stage(self, plan: str):
        lesson = self._pick(plan, "Memora Lesson")
        if lesson is None:
            return "stage: no lesson", []
        self._exec("UPDATE `tabMemora Lesson Stage` SET title = CONCAT(SUBSTRING_INDEX(title, ' · edit ', 1), %s), "
                   "modified = %s WHERE parent = %s AND parenttype = 'Memora Lesson' AND idx = %s",
                   (f" · edit {self.serial}", self._now(), lesson, self.rng.randint(1, 8)))
        self.db.commit()
        # a child-table row is saved with its lesson: the lesson's on_update marks the plans
        return "stage edit", [("Memora Lesson", lesson, None)]


def schedule(rng: random.Random, plans: list[str], edits: int, windows: int, window_seconds: int) -> list[list[tuple[float, str, str]]]:
    """Edits (time, kind, plan) spread uniformly over the hour, grouped by five-minute window."""
    out: list[list[tuple[float, str, str]]] = [[] for _ in range(windows)]
    for _ in range(edits):
        at = rng.uniform(0, windows * window_seconds)
        out[min(windows - 1, int(at // window_seconds))].append((at, _choose(rng, KIND_WEIGHTS), rng.choice(plans)))
    for window in out:
        window.sort()
    return out


def simulate(spec: dict[str, Any]) -> dict[str, Any]:
    from memora_cdn.purge import CloudflarePurger
    from memora_cdn.tracking.registry import Registry
    from memora_cdn.tracking.run import run_plan
    from memora_cdn.tracking.sync import claim_batch, purge, purge_built_plan, purge_requests, waiting
    from tests.standins.cloudflare import CloudflareStandIn

    settings = common.settings_for(spec["bucket"])
    s3 = common.s3_client(spec["endpoint"], settings.upload_concurrency)
    calls = common.S3Calls(s3)
    builder_db = common.mysql_connect(spec["db"])
    editor_db = common.mysql_connect(spec["db"])
    redis = common.redis_client()
    registry = Registry(redis)
    rng = random.Random(spec.get("seed", 11))
    tree = Tree(editor_db)
    editor = Editor(editor_db, redis, tree, rng)
    windows = schedule(rng, spec["plans"], spec["edits"], spec["windows"], spec["window_seconds"])
    cycles = []
    with CloudflareStandIn(token=common.CF_TOKEN, zone_id=common.CF_ZONE, max_files=30) as cloudflare:
        purger = CloudflarePurger(cloudflare.url, common.CF_TOKEN, common.CF_ZONE,
                                  files_per_request=settings.purge_files_per_request)
        for k, window in enumerate(windows):
            t_edit = time.perf_counter()
            kinds: Counter[str] = Counter()
            marked: set[str] = set()
            for _, kind, plan in window:
                done, plans = editor.apply(kind, plan)
                kinds[done] += 1
                marked |= plans
            edit_seconds = time.perf_counter() - t_edit
            pending_at_start = registry.pending_count()
            run_id = f"bench-hour-{k + 1:02d}"
            puts_before, requests_before = calls.get("PutObject"), len(cloudflare.requests)
            failures: list[str] = []
            t0 = time.perf_counter()
            batch = claim_batch(registry, builder_db, s3, settings, run_id, "Scheduler")
            t1 = time.perf_counter()
            summaries, build_seconds, purge_after_upload = [], [], []
            for plan in batch.plans:
                tb = time.perf_counter()
                try:
                    # the sync DAG's build task: run_plan (purger=None here, so that the purge is timed below,
                    # the same purge_built_plan that run_plan calls right after the upload)
                    summary = run_plan(plan["plan_id"], run_id=run_id, triggered_by=plan["triggered_by"],
                                       registry=registry, db=builder_db, s3=s3, settings=settings,
                                       pending_since=plan.get("pending_since"))
                except Exception as exc:  # a failed mapped task: Airflow would retry it; recorded here
                    failures.append(f"{plan['plan_id']}: {type(exc).__name__}: {exc}"[:300])
                else:
                    uploaded_at = time.perf_counter()
                    summary = purge_built_plan(lambda: purger, settings, summary)
                    if summary.get("purged"):
                        purge_after_upload.append(time.perf_counter() - uploaded_at)
                    summaries.append(summary)
                build_seconds.append(time.perf_counter() - tb)
            t2 = time.perf_counter()
            report = purge(purger, settings, purge_requests(summaries))
            t3 = time.perf_counter()
            purged_by_builds = [s["purge"] for s in summaries if s.get("purged") and s.get("purge")]
            found = waiting(registry, builder_db)
            claimed_left = sum(len(p) for p in registry.claimed().values())
            dead = len(registry.dead_letters())
            backlog = found.pending + found.fallback_rows + found.due_retries + claimed_left + dead
            cycles.append({
                "cycle": k + 1,
                "edits": len(window),
                "edit_kinds": dict(kinds),
                "edit_seconds": edit_seconds,
                "plans_marked": len(marked),
                "pending_at_start": pending_at_start,
                "plans_built": len(batch.plans),
                "wall": t3 - t0,
                "claim_seconds": t1 - t0,
                "build_seconds": t2 - t1,
                "purge_seconds": t3 - t2,
                "max_plan_seconds": max(build_seconds, default=0.0),
                "uploaded": sum(s.get("files_uploaded", 0) for s in summaries),
                "deleted": sum(s.get("files_deleted", 0) for s in summaries),
                "puts": calls.get("PutObject") - puts_before,
                "purged_urls": sum(p["urls_purged"] for p in purged_by_builds) + (report.urls_purged if report else 0),
                "purged_prefixes": sum(p["prefixes_purged"] for p in purged_by_builds)
                + (report.prefixes_purged if report else 0),
                "plans_purged_by_build": len(purged_by_builds),
                "max_purge_after_upload_seconds": max(purge_after_upload, default=0.0),
                "purge_requests": len(cloudflare.requests) - requests_before,
                "failures": failures,
                "backlog": backlog,
                "backlog_detail": {"pending": found.pending, "fallback_rows": found.fallback_rows,
                                   "due_retries": found.due_retries, "claimed": claimed_left, "dead_letters": dead},
            })
    builder_db.close()
    editor_db.close()
    redis.close()
    return {"cycles": cycles, "peak_rss_mb": common.peak_rss_mb()}
