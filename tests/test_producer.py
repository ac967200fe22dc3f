"""memora_cdn_producer: the Frappe side of change tracking, against the real MariaDB and Redis (db 13).

Nothing is mocked but Frappe itself (not installed here): `frappe_doc_event` is run with a tiny
`frappe` module in sys.modules whose `db.sql` goes to the real MariaDB connection.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap
import types
from collections import defaultdict
from datetime import datetime

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

import memora_cdn_producer as producer
from memora_cdn_demo.content import DemoScale, generate, load
from memora_cdn_producer import affected_plans, frappe_doc_event, mark_changed
from memora_cdn.tracking.registry import PENDING
from tests.support import REDIS_PORT, REPO, scratch_database

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"

LEVELS = ("Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson", "Memora Lesson Stage")
LINK = {"Memora Track": "parent_subject", "Memora Unit": "parent_track", "Memora Topic": "parent_unit",
        "Memora Lesson": "parent_topic", "Memora Lesson Stage": "parent"}
ABOVE = {"Memora Track": "Memora Subject", "Memora Unit": "Memora Track", "Memora Topic": "Memora Unit",
         "Memora Lesson": "Memora Topic", "Memora Lesson Stage": "Memora Lesson"}


# ---------------------------------------------------------------------------------------------
# fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def redis13():
    client = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def down_redis():
    """A client of a port nothing listens on (connection refused)."""
    return redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)


def pending(client) -> set[str]:
    return {p.decode() for p in client.smembers(PENDING)}


def fallback_rows(conn) -> list[tuple]:
    cur = conn.cursor()
    cur.execute("SELECT plan_id, status, is_fallback, triggered_by FROM `tabCDN Sync Log` ORDER BY plan_id")
    rows = list(cur.fetchall())
    cur.close()
    return rows


def com_select(conn) -> int:
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Com_select'")
    value = int(cur.fetchone()[1])
    cur.close()
    return value


def count_selects(conn, fn, *args, **kwargs):
    """(result of fn, SELECT statements it ran on conn)."""
    base = com_select(conn)
    baseline = com_select(conn) - base  # what SHOW STATUS itself counts (0 on MariaDB)
    before = com_select(conn)
    result = fn(*args, **kwargs)
    return result, com_select(conn) - before - baseline


def insert(conn, doctype: str, name: str, **fields) -> None:
    now = datetime(2026, 1, 5, 8, 0)
    row = {"name": name, "creation": now, "modified": now, "owner": "Administrator",
           "modified_by": "Administrator", **fields}
    if doctype in LEVELS[:-1]:
        row.setdefault("title", name)
        row.setdefault("is_published", 1)
    cols = ", ".join(f"`{c}`" for c in row)
    cur = conn.cursor()
    cur.execute(f"INSERT INTO `tab{doctype}` ({cols}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values()))
    cur.close()


def execute(conn, sql: str, params=()) -> None:
    cur = conn.cursor()
    cur.execute(sql, params)
    cur.close()


@pytest.fixture
def tree():
    """A small hand-made tree:

        P1, P2 list S1 (shared); P3 lists S2
        S1 - T1 - U1 - TP1 - L1 - ST1 ; S2 - T2 - U2 - TP2 - L2
        P1 also has an override row O1 and its plan-subject row PS1
    """
    with scratch_database("memora_prod_t") as (_, conn):
        for plan in ("P1", "P2", "P3"):
            insert(conn, "Memora Academic Plan", plan, title=plan)
        for n, (plan, subject) in enumerate((("P1", "S1"), ("P2", "S1"), ("P3", "S2")), start=1):
            insert(conn, "Memora Plan Subject", f"PS{n}", parent=plan, parentfield="subjects",
                   parenttype="Memora Academic Plan", subject=subject, idx=1)
        insert(conn, "Memora Plan Override", "O1", parent="P1", parentfield="overrides",
               parenttype="Memora Academic Plan", target_doctype="Memora Lesson", target_name="L1", action="Hide")
        for i in ("1", "2"):
            insert(conn, "Memora Subject", f"S{i}")
            insert(conn, "Memora Track", f"T{i}", parent_subject=f"S{i}")
            insert(conn, "Memora Unit", f"U{i}", parent_track=f"T{i}")
            insert(conn, "Memora Topic", f"TP{i}", parent_unit=f"U{i}")
            insert(conn, "Memora Lesson", f"L{i}", parent_topic=f"TP{i}")
        insert(conn, "Memora Lesson Stage", "ST1", parent="L1", parentfield="stages", parenttype="Memora Lesson",
               idx=1, title="Intro", type="Text", config="{}")
        conn.commit()
        yield conn


def expected_plans(rows: dict[str, list[dict]]) -> dict[tuple[str, str], set[str]]:
    """An independent oracle: walk each row up the tree in Python, then to the plans listing its subject."""
    by_doctype = {dt: {r["name"]: r for r in rows[f"tab{dt}"]} for dt in LEVELS}
    plans_of_subject: dict[str, set[str]] = defaultdict(set)
    for r in rows["tabMemora Plan Subject"]:
        plans_of_subject[r["subject"]].add(r["parent"])

    def subject_of(doctype: str, name: str) -> str | None:
        while doctype != "Memora Subject":
            row = by_doctype[doctype].get(name)
            if row is None:
                return None
            doctype, name = ABOVE[doctype], row[LINK[doctype]]
        return name

    out = {}
    for doctype in LEVELS:
        for name in by_doctype[doctype]:
            subject = subject_of(doctype, name)
            out[(doctype, name)] = set(plans_of_subject.get(subject, ())) if subject else set()
    for table in ("Memora Plan Subject", "Memora Plan Override"):
        for r in rows[f"tab{table}"]:
            out[(table, r["name"])] = {r["parent"]}
    for r in rows["tabMemora Academic Plan"]:
        out[("Memora Academic Plan", r["name"])] = {r["name"]}
    return out


SMALL = DemoScale(plans=3, subjects_per_plan=3, lessons_per_plan=40, stages_per_lesson=3, seed=11)
LARGE = DemoScale(plans=6, subjects_per_plan=4, lessons_per_plan=1200, stages_per_lesson=3, seed=12)


@pytest.fixture(scope="module")
def demo_small():
    rows = generate(SMALL)
    with scratch_database("memora_prod_t") as (_, conn):
        load(conn, rows)
        yield conn, rows


@pytest.fixture(scope="module")
def demo_large():
    rows = generate(LARGE)
    with scratch_database("memora_prod_t") as (_, conn):
        load(conn, rows)
        yield conn, rows


# ---------------------------------------------------------------------------------------------
# affected_plans
# ---------------------------------------------------------------------------------------------


def test_every_row_of_the_demo_resolves_to_the_plans_above_it(demo_small):
    conn, rows = demo_small
    oracle = expected_plans(rows)
    assert len(oracle) > 400
    wrong = {key: (affected_plans(conn, *key), want) for key, want in oracle.items()
             if affected_plans(conn, *key) != want}
    assert not wrong
    # the demo's orphans (missing topic, missing track) belong to no plan, and that is not an error
    assert any(not plans for (doctype, _), plans in oracle.items() if doctype == "Memora Lesson")


def test_a_subject_shared_by_several_plans_marks_all_of_them(demo_small):
    conn, rows = demo_small
    plans = {r["name"] for r in rows["tabMemora Academic Plan"]}
    listed_by = defaultdict(set)
    for r in rows["tabMemora Plan Subject"]:
        listed_by[r["subject"]].add(r["parent"])
    shared = [s for s, ps in listed_by.items() if ps == plans]
    assert shared and len(plans) == 3
    topics = {r["name"]: r for r in rows["tabMemora Topic"]}
    units = {r["name"]: r for r in rows["tabMemora Unit"]}
    tracks = {r["name"]: r for r in rows["tabMemora Track"]}
    stage = next(st for st in rows["tabMemora Lesson Stage"]
                 for lesson in [next(l for l in rows["tabMemora Lesson"] if l["name"] == st["parent"])]
                 if lesson["parent_topic"] in topics
                 and tracks.get(units[topics[lesson["parent_topic"]]["parent_unit"]]["parent_track"], {})
                 .get("parent_subject") == shared[0])
    assert affected_plans(conn, "Memora Lesson Stage", stage["name"]) == plans
    assert affected_plans(conn, "Memora Subject", shared[0]) == plans


def test_a_moved_lesson_affects_its_old_and_new_plans(tree):
    execute(tree, "UPDATE `tabMemora Lesson` SET parent_topic = 'TP2' WHERE name = 'L1'")
    assert affected_plans(tree, "Memora Lesson", "L1") == {"P3"}
    moved, queries = count_selects(tree, affected_plans, tree, "Memora Lesson", "L1",
                                   old_parent_links={"parent_topic": "TP1"})
    assert moved == {"P1", "P2", "P3"}
    assert queries == 1
    # its stages now go up the new chain
    assert affected_plans(tree, "Memora Lesson Stage", "ST1") == {"P3"}


@pytest.mark.parametrize("doctype, name, link, old, before, after", [
    ("Memora Topic", "TP1", "parent_unit", "U1", {"P1", "P2"}, {"P3"}),
    ("Memora Unit", "U1", "parent_track", "T1", {"P1", "P2"}, {"P3"}),
    ("Memora Track", "T1", "parent_subject", "S1", {"P1", "P2"}, {"P3"}),
])
def test_a_moved_node_of_any_level_affects_both_chains(tree, doctype, name, link, old, before, after):
    assert affected_plans(tree, doctype, name) == before
    new = old[:-1] + "2"
    execute(tree, f"UPDATE `tab{doctype}` SET `{link}` = %s WHERE name = %s", (new, name))
    assert affected_plans(tree, doctype, name) == after
    assert affected_plans(tree, doctype, name, old_parent_links={link: old}) == before | after
    # an unrelated key (another level's link) is ignored
    assert affected_plans(tree, doctype, name, old_parent_links={"parent_topic": "TP1"}) == after


def test_deleted_rows_resolve_from_the_links_they_had(tree):
    execute(tree, "DELETE FROM `tabMemora Lesson Stage` WHERE name = 'ST1'")
    execute(tree, "DELETE FROM `tabMemora Lesson` WHERE name = 'L1'")
    # after_delete: the row is gone; its link comes from the document
    assert affected_plans(tree, "Memora Lesson", "L1") == set()
    assert affected_plans(tree, "Memora Lesson", "L1", parent="TP1") == {"P1", "P2"}
    assert affected_plans(tree, "Memora Lesson", "L1", old_parent_links={"parent_topic": "TP1"}) == {"P1", "P2"}
    assert affected_plans(tree, "Memora Lesson Stage", "ST1") == set()
    assert affected_plans(tree, "Memora Lesson Stage", "ST1", parent="L2") == {"P3"}
    execute(tree, "DELETE FROM `tabMemora Track` WHERE name = 'T2'")
    assert affected_plans(tree, "Memora Track", "T2") == set()
    assert affected_plans(tree, "Memora Track", "T2", parent="S2") == {"P3"}
    assert affected_plans(tree, "Memora Lesson", "L2") == set()  # below a deleted track: an orphan
    # a deleted subject still resolves through the plans that list it
    execute(tree, "DELETE FROM `tabMemora Subject` WHERE name = 'S1'")
    assert affected_plans(tree, "Memora Subject", "S1") == {"P1", "P2"}
    # a deleted plan: itself, with no query, so its folder gets removed
    execute(tree, "DELETE FROM `tabMemora Academic Plan` WHERE name = 'P3'")
    plans, queries = count_selects(tree, affected_plans, tree, "Memora Academic Plan", "P3")
    assert plans == {"P3"} and queries == 0


def test_plan_child_rows_resolve_to_their_plan(tree):
    assert affected_plans(tree, "Memora Plan Override", "O1") == {"P1"}
    assert affected_plans(tree, "Memora Plan Subject", "PS3") == {"P3"}
    # the parent argument is enough (and the only way once the row is deleted)
    execute(tree, "DELETE FROM `tabMemora Plan Override` WHERE name = 'O1'")
    assert affected_plans(tree, "Memora Plan Override", "O1") == set()
    plans, queries = count_selects(tree, affected_plans, tree, "Memora Plan Override", "O1", parent="P1")
    assert plans == {"P1"} and queries == 0
    assert affected_plans(tree, "Memora Plan Subject", "gone", parent="P2") == {"P2"}


def test_unknown_doctypes_affect_nothing_and_run_no_query(tree):
    plans, queries = count_selects(tree, affected_plans, tree, "ToDo", "L1", parent="TP1")
    assert plans == set() and queries == 0


def test_unsafe_names_are_looked_up_as_parameters(tree):
    for name in ("x' OR '1'='1", "L1'; DROP TABLE `tabMemora Lesson`; --", "a`b", "../../etc", "%s", ""):
        for doctype in LEVELS:
            assert affected_plans(tree, doctype, name, parent=name,
                                  old_parent_links={"parent_topic": name, "parent": name}) == set()
        assert affected_plans(tree, "Memora Plan Override", name) == set()
    assert affected_plans(tree, "Memora Lesson", "L1") == {"P1", "P2"}  # table still there


CASES = [  # (doctype, how to pick a row, kwargs, expected SELECTs)
    ("Memora Lesson Stage", None, {}, 1),
    ("Memora Lesson", None, {}, 1),
    ("Memora Lesson", None, {"old_parent_links": {"parent_topic": "first-topic"}}, 1),
    ("Memora Lesson", None, {"parent": "first-topic", "old_parent_links": {"parent_topic": "last-topic"}}, 1),
    ("Memora Topic", None, {}, 1),
    ("Memora Unit", None, {}, 1),
    ("Memora Track", None, {}, 1),
    ("Memora Subject", None, {}, 1),
    ("Memora Plan Subject", None, {}, 1),
    ("Memora Plan Override", None, {}, 1),
    ("Memora Plan Override", None, {"parent": "first-plan"}, 0),
    ("Memora Academic Plan", None, {}, 0),
]


def _query_counts(conn, rows) -> list[tuple[str, int, int]]:
    """(doctype, SELECTs, plans found) for the first and the last row of each case's table."""
    out = []
    resolve = {"first-topic": rows["tabMemora Topic"][0]["name"], "last-topic": rows["tabMemora Topic"][-1]["name"],
               "first-plan": rows["tabMemora Academic Plan"][0]["name"]}
    for doctype, _, kwargs, _ in CASES:
        kwargs = {k: ({kk: resolve.get(vv, vv) for kk, vv in v.items()} if isinstance(v, dict) else resolve.get(v, v))
                  for k, v in kwargs.items()}
        for row in (rows[f"tab{doctype}"][0], rows[f"tab{doctype}"][-1]):
            plans, queries = count_selects(conn, affected_plans, conn, doctype, row["name"], **kwargs)
            out.append((doctype, queries, len(plans)))
    return out


def test_a_fixed_number_of_queries_whatever_the_tree_size(demo_small, demo_large):
    small_conn, small_rows = demo_small
    large_conn, large_rows = demo_large
    assert len(large_rows["tabMemora Lesson Stage"]) > 20 * len(small_rows["tabMemora Lesson Stage"])
    small = _query_counts(small_conn, small_rows)
    large = _query_counts(large_conn, large_rows)
    expected = [(doctype, queries) for doctype, _, _, queries in CASES for _ in range(2)]
    assert [(d, q) for d, q, _ in small] == expected
    assert [(d, q) for d, q, _ in large] == expected
    # the large scale really resolved many plans per change (a shared subject is under every plan)
    assert max(n for _, _, n in large) == LARGE.plans


# ---------------------------------------------------------------------------------------------
# mark_changed
# ---------------------------------------------------------------------------------------------


def test_mark_changed_adds_the_plans_to_the_pending_set(tree, redis13):
    redis13.sadd(PENDING, "P9")
    assert mark_changed("Memora Lesson Stage", "ST1", db=tree, redis=redis13) == {"P1", "P2"}
    assert pending(redis13) == {"P1", "P2", "P9"}
    assert mark_changed("Memora Plan Override", "O1", db=tree, redis=redis13) == {"P1"}
    assert mark_changed("Memora Lesson", "L2", db=tree, redis=redis13) == {"P3"}
    assert pending(redis13) == {"P1", "P2", "P3", "P9"}
    assert mark_changed("Memora Lesson", "nope", db=tree, redis=redis13) == set()
    assert fallback_rows(tree) == []


def test_mark_changed_of_a_moved_and_then_deleted_lesson(tree, redis13):
    execute(tree, "UPDATE `tabMemora Lesson` SET parent_topic = 'TP2' WHERE name = 'L1'")
    assert mark_changed("Memora Lesson", "L1", db=tree, redis=redis13,
                        old_parent_links={"parent_topic": "TP1"}) == {"P1", "P2", "P3"}
    assert pending(redis13) == {"P1", "P2", "P3"}
    redis13.delete(PENDING)
    execute(tree, "DELETE FROM `tabMemora Lesson` WHERE name = 'L1'")
    assert mark_changed("Memora Lesson", "L1", db=tree, redis=redis13, parent="TP2") == {"P3"}
    assert pending(redis13) == {"P3"}


def test_plan_names_frappe_allows_are_queued_and_non_names_reported_not_queued(tree, redis13, caplog):
    for n, plan in enumerate(("bad/plan", "../escape", "ok-plan.2"), start=1):
        insert(tree, "Memora Academic Plan", plan, title=plan)
        insert(tree, "Memora Plan Subject", f"PSX{n}", parent=plan, parentfield="subjects",
               parenttype="Memora Academic Plan", subject="S1")
    tree.commit()
    assert affected_plans(tree, "Memora Lesson", "L1") == {"P1", "P2", "bad/plan", "../escape", "ok-plan.2"}
    marked = mark_changed("Memora Lesson", "L1", db=tree, redis=redis13)
    assert marked == {"P1", "P2", "bad/plan", "../escape", "ok-plan.2"}  # keys encode any Frappe name
    assert pending(redis13) == marked
    # a name no Frappe document can have (over 140 characters) changed directly: reported, nothing queued
    long = "x" * 141
    with caplog.at_level(logging.WARNING, logger="memora_cdn_producer"):
        assert mark_changed("Memora Academic Plan", long, db=tree, redis=redis13) == set()
    assert any(repr(long) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert pending(redis13) == marked


def test_redis_down_writes_one_fallback_row_per_plan(tree, caplog):
    with caplog.at_level(logging.WARNING, logger="memora_cdn_producer"):
        marked = mark_changed("Memora Lesson", "L1", db=tree,
                              redis=redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                                                    retry=Retry(NoBackoff(), 0)))
    assert marked == {"P1", "P2"}
    assert fallback_rows(tree) == [("P1", "Queued", 1, "Fallback Recovery"), ("P2", "Queued", 1, "Fallback Recovery")]
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
    # committed: another connection (the exporter) sees them
    from tests.support import mysql_connect
    cur = tree.cursor()
    cur.execute("SELECT DATABASE()")
    other = mysql_connect(cur.fetchone()[0])
    try:
        assert len(fallback_rows(other)) == 2
    finally:
        other.close()


def test_redis_down_with_the_default_client_settings(tree):
    """The client the brief describes (redis-py's default retries included) still falls back."""
    assert mark_changed("Memora Topic", "TP2", db=tree, redis=down_redis()) == {"P3"}
    assert fallback_rows(tree) == [("P3", "Queued", 1, "Fallback Recovery")]


def test_redis_timeout_writes_fallback_rows(tree):
    """A Redis that accepts connections but never answers: TimeoutError, not ConnectionError."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # never accepted: the kernel completes the handshake, nobody replies
        client = redis_lib.Redis(host="127.0.0.1", port=server.getsockname()[1], socket_connect_timeout=0.2,
                                 socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
        assert mark_changed("Memora Plan Override", "O1", db=tree, redis=client) == {"P1"}
    assert fallback_rows(tree) == [("P1", "Queued", 1, "Fallback Recovery")]


def test_no_redis_client_writes_fallback_rows(tree):
    assert mark_changed("Memora Academic Plan", "P2", db=tree, redis=None) == {"P2"}
    assert mark_changed("Memora Subject", "S2", db=tree) == {"P3"}
    assert fallback_rows(tree) == [("P2", "Queued", 1, "Fallback Recovery"), ("P3", "Queued", 1, "Fallback Recovery")]


def test_other_redis_errors_fall_back_too(tree, redis13):
    redis13.set(PENDING, "not a set")  # SADD fails with WRONGTYPE (a ResponseError)
    assert mark_changed("Memora Lesson", "L2", db=tree, redis=redis13) == {"P3"}
    assert fallback_rows(tree) == [("P3", "Queued", 1, "Fallback Recovery")]


# ---------------------------------------------------------------------------------------------
# frappe_doc_event, with a stand-in `frappe` module (Frappe is not installed here)
# ---------------------------------------------------------------------------------------------


class FakeCallbacks:
    def __init__(self) -> None:
        self.functions = []

    def add(self, fn) -> None:
        self.functions.append(fn)

    def run(self) -> None:
        while self.functions:
            self.functions.pop(0)()


class FakeFrappeDB:
    """frappe.db: `sql` and `commit` on the real MariaDB connection; commit runs `after_commit`."""

    def __init__(self, conn, after_commit: bool = True) -> None:
        self.conn = conn
        self.statements = []
        if after_commit:
            self.after_commit = FakeCallbacks()

    def sql(self, query, values=()):
        self.statements.append(query)
        cur = self.conn.cursor()
        try:
            cur.execute(query, values or None)
            return cur.fetchall()
        finally:
            cur.close()

    def commit(self) -> None:
        self.conn.commit()
        if hasattr(self, "after_commit"):
            self.after_commit.run()

    def rollback(self) -> None:
        self.conn.rollback()
        if hasattr(self, "after_commit"):
            self.after_commit.functions.clear()


class ConfDict(dict):
    """frappe.conf: a dict whose missing attributes are None."""

    def __getattr__(self, key):
        return self.get(key)


class FakeDoc:
    def __init__(self, doctype, name, before=None, **fields) -> None:
        self.doctype, self.name, self._fields, self._before = doctype, name, fields, before

    def get(self, key, default=None):
        return self._fields.get(key, default)

    def get_doc_before_save(self):
        return self._before


@pytest.fixture
def fake_frappe(monkeypatch, tree, redis13):
    def install(conf=None, after_commit=True):
        module = types.ModuleType("frappe")
        module.db = FakeFrappeDB(tree, after_commit=after_commit)
        module.conf = ConfDict(conf if conf is not None else {"memora_cdn_redis_url": REDIS_URL})
        monkeypatch.setitem(sys.modules, "frappe", module)
        return module

    monkeypatch.setattr(producer, "_clients", {})
    return install


def test_frappe_event_queues_after_the_commit(fake_frappe, tree, redis13):
    frappe = fake_frappe()
    execute(tree, "UPDATE `tabMemora Lesson` SET parent_topic = 'TP2' WHERE name = 'L1'")  # the save
    doc = FakeDoc("Memora Lesson", "L1", before=FakeDoc("Memora Lesson", "L1", parent_topic="TP1"),
                  parent_topic="TP2", title="L1")
    assert frappe_doc_event(doc, "on_update") == {"P1", "P2", "P3"}
    assert len(frappe.db.statements) == 1
    assert pending(redis13) == set()  # not before the editor's transaction commits
    frappe.db.commit()
    assert pending(redis13) == {"P1", "P2", "P3"}


def test_frappe_event_of_a_rolled_back_save_marks_nothing(fake_frappe, tree, redis13):
    frappe = fake_frappe()
    frappe_doc_event(FakeDoc("Memora Topic", "TP1", parent_unit="U1"), "on_update")
    frappe.db.rollback()
    frappe.db.commit()
    assert pending(redis13) == set()


def test_frappe_event_without_after_commit_queues_at_once(fake_frappe, redis13):
    fake_frappe(after_commit=False)
    assert frappe_doc_event(FakeDoc("Memora Academic Plan", "P3"), "on_update") == {"P3"}
    assert pending(redis13) == {"P3"}


def test_frappe_trash_then_delete_of_a_lesson(fake_frappe, tree, redis13):
    frappe = fake_frappe()
    doc = FakeDoc("Memora Lesson", "L1", parent_topic="TP1")
    assert frappe_doc_event(doc, "on_trash") == {"P1", "P2"}  # row still there
    execute(tree, "DELETE FROM `tabMemora Lesson` WHERE name = 'L1'")
    assert frappe_doc_event(doc, "after_delete") == {"P1", "P2"}  # row gone: from the doc's link
    frappe.db.commit()
    assert pending(redis13) == {"P1", "P2"}


def test_frappe_event_of_a_stage_and_of_a_plan_child(fake_frappe, redis13):
    frappe = fake_frappe(after_commit=False)
    assert frappe_doc_event(FakeDoc("Memora Lesson Stage", "gone", parent="L2"), "after_delete") == {"P3"}
    assert frappe_doc_event(FakeDoc("Memora Plan Override", "O1", parent="P1"), "on_update") == {"P1"}
    assert frappe_doc_event(FakeDoc("ToDo", "x"), "on_update") == set()
    assert pending(redis13) == {"P1", "P3"}
    assert len(frappe.db.statements) == 1  # the plan child's parent needed no query


def test_frappe_event_falls_back_to_redis_cache_url(fake_frappe, redis13):
    fake_frappe(conf={"redis_cache": REDIS_URL}, after_commit=False)
    assert frappe_doc_event(FakeDoc("Memora Unit", "U2", parent_track="T2"), "after_insert") == {"P3"}
    assert pending(redis13) == {"P3"}


def test_frappe_event_with_redis_down_writes_fallback_rows_after_commit(fake_frappe, tree, redis13):
    frappe = fake_frappe(conf={"memora_cdn_redis_url": "redis://127.0.0.1:1/0", "redis_cache": REDIS_URL})
    assert frappe_doc_event(FakeDoc("Memora Subject", "S1"), "on_update") == {"P1", "P2"}
    assert fallback_rows(tree) == []
    frappe.db.commit()
    assert fallback_rows(tree) == [("P1", "Queued", 1, "Fallback Recovery"), ("P2", "Queued", 1, "Fallback Recovery")]
    assert pending(redis13) == set()  # the exporter's Redis is the configured one, not redis_cache


def test_frappe_event_without_any_redis_url_writes_fallback_rows(fake_frappe, tree):
    fake_frappe(conf={}, after_commit=False)
    assert frappe_doc_event(FakeDoc("Memora Track", "T2", parent_subject="S2"), "on_update") == {"P3"}
    assert fallback_rows(tree) == [("P3", "Queued", 1, "Fallback Recovery")]


# ---------------------------------------------------------------------------------------------
# importable in a Frappe process; the hooks snippet
# ---------------------------------------------------------------------------------------------


def test_importable_without_airflow_or_frappe():
    code = ("import sys, memora_cdn_producer as p; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'frappe', 'boto3', 'MySQLdb')); "
            "assert not bad, bad; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_hooks_snippet_in_the_docstring_is_valid():
    lines = producer.__doc__.splitlines()
    block = []
    for line in lines[lines.index("    # memora/hooks.py"):]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    snippet = textwrap.dedent("\n".join(block))
    hooks: dict = {}
    exec(compile(snippet, "hooks.py", "exec"), hooks)
    doc_events = hooks["doc_events"]
    assert set(doc_events) == {"Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson",
                               "Memora Academic Plan"}
    for events in doc_events.values():
        assert set(events) == {"after_insert", "on_update", "on_trash", "after_delete", "on_restore"}
        for path in events.values():
            module, _, attr = path.rpartition(".")
            assert getattr(__import__(module, fromlist=[attr]), attr) is frappe_doc_event
