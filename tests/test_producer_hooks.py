"""memora_cdn_producer.hooks driven the way Frappe drives it: a stand-in `frappe` module (tests/standins/
frappe_standin.py, modelled on Frappe v15) whose documents fire the `doc_events` of the hooks.py block in
docs/frappe.md, on real MariaDB tables generated from doctypes-002 and doctypes-008, and real Redis (db 13).
"""
from __future__ import annotations

import importlib
import logging
import re
import sys
import textwrap

import pytest
import redis as redis_lib

import memora_cdn_producer
from memora_cdn_producer import queue
from tests.producer_support import ODD_NAMES, frappe_database
from tests.standins import frappe_standin
from tests.support import REDIS_PORT, REPO
from tests.test_producer import build_small_tree, fallback_rows, pending, since

REDIS_DB = 13
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}"
DOCS = REPO / "docs" / "frappe.md"
DOCTYPES = {"Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson", "Memora Academic Plan"}


def documented_hooks() -> dict:
    """Execute the ```python block of docs/frappe.md that starts with `# memora/hooks.py`; return its globals."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    block = next(b for b in blocks if b.startswith("# memora/hooks.py"))
    scope: dict = {}
    exec(compile(textwrap.dedent(block), "hooks.py", "exec"), scope)
    return scope


@pytest.fixture(params=("002", "008"))
def tree(request):
    with frappe_database(request.param) as (_, conn):
        build_small_tree(conn)
        yield request.param, conn


@pytest.fixture
def redis13():
    client = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def frappe(monkeypatch, tree, redis13):
    """install(conf=..., ...) -> the stand-in, in sys.modules["frappe"], wired with the documented hooks."""
    version, conn = tree

    def install(conf=None, **kwargs):
        module = frappe_standin.install(conn, version=version,
                                        conf={"memora_cdn_redis_url": REDIS_URL} if conf is None else conf,
                                        doc_events=documented_hooks()["doc_events"], **kwargs)
        monkeypatch.setitem(sys.modules, "frappe", module)
        monkeypatch.delitem(sys.modules, "memora_cdn_producer.hooks", raising=False)  # imports this frappe
        monkeypatch.delattr(memora_cdn_producer, "hooks", raising=False)
        return module

    monkeypatch.setattr(queue, "_clients", {})
    return install


def select_count(conn, sql, params=()) -> int:
    cur = conn.cursor()
    cur.execute(sql, params)
    value = cur.fetchone()[0]
    cur.close()
    return value


# ---------------------------------------------------------------------------------------------
# the documented hooks.py lines
# ---------------------------------------------------------------------------------------------


def test_the_documented_hooks_resolve_to_the_handlers(frappe):
    frappe()
    from memora_cdn_producer import hooks

    doc_events = documented_hooks()["doc_events"]
    assert set(doc_events) == DOCTYPES
    for events in doc_events.values():
        assert set(events) == {"after_insert", "on_update", "on_trash", "after_delete", "on_restore", "after_rename"}
        for event, path in events.items():
            module, _, attr = path.rpartition(".")
            handler = getattr(importlib.import_module(module), attr)
            assert handler is (hooks.on_rename if event == "after_rename" else hooks.on_change)


# ---------------------------------------------------------------------------------------------
# after the commit, never before
# ---------------------------------------------------------------------------------------------


def test_a_save_is_queued_after_the_commit(frappe, tree, redis13):
    fr = frappe()
    _, conn = tree
    doc = fr.save_doc("Memora Lesson", "L1", parent_topic="TP2")  # moved: both chains
    assert pending(redis13) == set() and since(redis13) == {}  # not before the editor's transaction commits
    assert len(fr.db.after_commit) == 1
    assert doc.get_doc_before_save().get("parent_topic") == "TP1"
    # one statement, from the document's links (new and old topic): `tabMemora Plan Subject` is read once
    resolves = [(q, p) for q, p in fr.db.statements if "tabMemora Plan Subject" in q]
    assert len(resolves) == 1 and "UNION" not in resolves[0][0] and set(resolves[0][1]) == {"TP1", "TP2"}
    fr.db.commit()
    assert pending(redis13) == {"P1", "P2", "P3"}
    assert set(since(redis13)) == {"P1", "P2", "P3"}


def test_a_rolled_back_save_marks_nothing(frappe, redis13):
    fr = frappe()
    fr.save_doc("Memora Topic", "TP1", title="changed")
    fr.db.rollback()
    fr.db.commit()
    assert pending(redis13) == set()


def test_trash_then_delete_of_a_lesson(frappe, redis13):
    fr = frappe()
    fr.delete_doc("Memora Lesson", "L1")  # on_trash (row there), DELETE, after_delete (row gone: doc's link)
    statements = [q for q, _ in fr.db.statements if q.lstrip().upper().startswith("SELECT PS.")]
    assert len(statements) == 2
    fr.db.commit()
    assert pending(redis13) == {"P1", "P2"}


def test_insert_of_a_lesson_and_the_plan_itself(frappe, redis13):
    fr = frappe()
    fr.insert_doc("Memora Lesson", "new lesson", parent_topic="TP2")
    fr.save_doc("Memora Academic Plan", "P1", title="renamed title")
    fr.db.commit()
    assert pending(redis13) == {"P1", "P3"}


def test_the_handlers_return_none(frappe):
    """Frappe collects hook return values; for before_rename it would even use one as the new name."""
    fr = frappe()
    from memora_cdn_producer import hooks

    doc = fr.get_doc("Memora Lesson", "L1")
    assert hooks.on_change(doc, "on_update") is None
    assert hooks.on_rename(doc, "after_rename", "L0", "L1", 0) is None


# ---------------------------------------------------------------------------------------------
# renames, through the stand-in's rename_doc (Frappe's sequence: rename in place, rewrite the links,
# after_rename(doc, method, old, new, merge), delete the old one when merging)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("new", ["L1 renamed", ODD_NAMES[1], ODD_NAMES[3], "P" * 140])
def test_a_renamed_lesson_marks_its_plans(frappe, tree, redis13, new):
    fr = frappe()
    _, conn = tree
    fr.rename_doc("Memora Lesson", "L1", new)
    assert select_count(conn, "SELECT COUNT(*) FROM `tabMemora Lesson Stage` WHERE parent = %s", (new,)) == 1
    assert select_count(conn, "SELECT COUNT(*) FROM `tabMemora Plan Override` WHERE target_name = %s", (new,)) == 1
    fr.db.commit()
    assert pending(redis13) == {"P1", "P2"}


def test_a_renamed_plan_marks_the_old_and_the_new_plan_id(frappe, tree, redis13):
    fr = frappe()
    _, conn = tree
    fr.rename_doc("Memora Academic Plan", "P3", "Plan 3 / Grade 7")
    assert select_count(conn, "SELECT COUNT(*) FROM `tabMemora Plan Subject` WHERE parent = 'Plan 3 / Grade 7'") == 1
    fr.db.commit()
    assert pending(redis13) == {"P3", "Plan 3 / Grade 7"}
    assert set(since(redis13)) == {"P3", "Plan 3 / Grade 7"}


def test_a_renamed_subject_marks_the_plans_listing_it(frappe, tree, redis13):
    fr = frappe()
    _, conn = tree
    fr.rename_doc("Memora Subject", "S1", "Mathematics – الرياضيات")
    assert select_count(conn, "SELECT COUNT(*) FROM `tabMemora Plan Subject` WHERE subject = %s",
                        ("Mathematics – الرياضيات",)) == 2
    assert select_count(conn, "SELECT COUNT(*) FROM `tabMemora Track` WHERE parent_subject = %s",
                        ("Mathematics – الرياضيات",)) == 1
    fr.db.commit()
    assert pending(redis13) == {"P1", "P2"}


def test_a_merge_marks_both_chains(frappe, redis13):
    """Merging lesson L1 (under S1: P1, P2) into L2 (under S2: P3): after_rename sees both rows; Frappe then
    deletes L1, whose on_trash/after_delete mark its chain again (harmless)."""
    fr = frappe()
    fr.rename_doc("Memora Lesson", "L1", "L2", merge=True)
    fr.db.commit()
    assert pending(redis13) == {"P1", "P2", "P3"}


def test_a_rolled_back_rename_marks_nothing(frappe, redis13):
    fr = frappe()
    fr.rename_doc("Memora Academic Plan", "P1", "P1-new")
    fr.db.rollback()
    assert pending(redis13) == set()


# ---------------------------------------------------------------------------------------------
# Redis configuration and the fallback rows
# ---------------------------------------------------------------------------------------------


def test_without_a_redis_url_fallback_rows_are_written_after_the_commit_and_logged_once(frappe, tree, redis13, caplog):
    """Never frappe.cache / redis_cache: without memora_cdn_redis_url the plans go to tabCDN Sync Log, in the
    after_commit callback's own transaction, committed there; one warning per process."""
    fr = frappe(conf={"redis_cache": REDIS_URL})
    _, conn = tree
    with caplog.at_level(logging.WARNING, logger="memora_cdn_producer"):
        fr.save_doc("Memora Subject", "S1", title="x")
        # inside the editor's transaction: no row, not even on the editor's own connection
        assert select_count(conn, "SELECT COUNT(*) FROM `tabCDN Sync Log`") == 0
        commits = fr.db.commits
        fr.db.commit()
        assert fr.db.commits == commits + 2  # the editor's commit, then the callback's own
        fr.save_doc("Memora Track", "T2", title="y")
        fr.db.commit()
    assert fallback_rows(conn) == [("P1", "Queued", 1, "Fallback Recovery"), ("P2", "Queued", 1, "Fallback Recovery"),
                                   ("P3", "Queued", 1, "Fallback Recovery")]
    assert pending(redis13) == set()  # redis_cache (the same server here) was not used
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "memora_cdn_redis_url" in warnings[0]


def test_the_fallback_commit_does_not_commit_later_editor_work(frappe, tree):
    """The callback runs right after the COMMIT; work the request does afterwards stays in its own transaction."""
    fr = frappe(conf={})
    _, conn = tree
    fr.save_doc("Memora Topic", "TP2", title="x")
    fr.db.commit()
    fr.db.sql("UPDATE `tabMemora Topic` SET title = 'uncommitted' WHERE name = 'TP2'")
    fr.db.rollback()
    assert select_count(conn, "SELECT COUNT(*) FROM `tabMemora Topic` WHERE title = 'uncommitted'") == 0
    assert fallback_rows(conn) == [("P3", "Queued", 1, "Fallback Recovery")]


def test_redis_down_writes_fallback_rows_after_the_commit(frappe, tree, redis13, caplog):
    fr = frappe(conf={"memora_cdn_redis_url": "redis://127.0.0.1:1/0", "redis_cache": REDIS_URL})
    _, conn = tree
    fr.save_doc("Memora Unit", "U1", title="x")
    assert fallback_rows(conn) == []
    with caplog.at_level(logging.WARNING, logger="memora_cdn_producer"):
        fr.db.commit()
    assert fallback_rows(conn) == [("P1", "Queued", 1, "Fallback Recovery"), ("P2", "Queued", 1, "Fallback Recovery")]
    assert pending(redis13) == set()
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)


def test_a_malformed_redis_url_falls_back(frappe, tree):
    fr = frappe(conf={"memora_cdn_redis_url": "not a url"})
    _, conn = tree
    fr.save_doc("Memora Lesson", "L2", title="x")
    fr.db.commit()
    assert fallback_rows(conn) == [("P3", "Queued", 1, "Fallback Recovery")]


def test_a_failing_callback_is_logged_and_the_other_callbacks_still_run(frappe, tree, caplog):
    fr = frappe(conf={})
    _, conn = tree
    fr.save_doc("Memora Lesson", "L2", title="x")
    ran = []
    fr.db.after_commit.add(lambda: ran.append(True))
    cur = conn.cursor()
    cur.execute("DROP TABLE `tabCDN Sync Log`")  # DDL: an implicit commit, fine for this test
    cur.close()
    with caplog.at_level(logging.ERROR, logger="memora_cdn_producer"):
        fr.db.commit()  # does not raise
    assert ran == [True]
    assert any("could not queue plan(s) 'P3'" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------
# unsupported Frappe
# ---------------------------------------------------------------------------------------------


def test_frappe_14_is_refused_at_import(frappe):
    frappe(frappe_version="14.82.1")
    with pytest.raises(ImportError, match=r"needs Frappe v15 or newer .* Frappe 14\.82\.1"):
        importlib.import_module("memora_cdn_producer.hooks")


def test_a_frappe_without_after_commit_is_refused_at_hook_time(frappe, tree, redis13):
    fr = frappe(frappe_version="15.0.0-dev", with_after_commit=False)
    from memora_cdn_producer.hooks import UnsupportedFrappe

    with pytest.raises(UnsupportedFrappe, match="frappe.db.after_commit"):
        fr.save_doc("Memora Lesson", "L1", title="x")
    with pytest.raises(UnsupportedFrappe):
        fr.rename_doc("Memora Academic Plan", "P1", "P1-new")
    assert pending(redis13) == set()
