"""memora_cdn_producer.plans / .queue against real MariaDB and Redis (db 13), on the tables Frappe builds from the
app's DocType JSON of both doctypes-002 and doctypes-008 (every test runs once per version).

The Frappe entry points (hooks.py) are tested in test_producer_hooks.py, the contract with the exporter in
test_producer_contract.py.
"""
from __future__ import annotations

import socket
import time

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from memora_cdn_producer import PENDING, PENDING_SINCE, affected_plans, mark_changed, queue_plans
from memora_cdn_producer.plans import plans_query
from tests.producer_support import (
    LEVELS, ODD_NAMES, expected_plans, frappe_database, generate_tree, insert, insert_rows,
)
from tests.support import REDIS_PORT, mysql_connect

REDIS_DB = 13
VERSIONS = ("002", "008")


@pytest.fixture(params=VERSIONS)
def version(request):
    return request.param


@pytest.fixture
def redis13():
    client = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def pending(client) -> set[str]:
    return {p.decode() for p in client.smembers(PENDING)}


def since(client) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in client.zrange(PENDING_SINCE, 0, -1, withscores=True)}


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


def execute(conn, sql: str, params=()) -> None:
    cur = conn.cursor()
    cur.execute(sql, params)
    cur.close()


def build_small_tree(conn) -> None:
    """P1, P2 list S1 (shared); P3 lists S2.  S1 - T1 - U1 - TP1 - L1 - ST1 ; S2 - T2 - U2 - TP2 - L2.
    P1 has an override row O1; PS1..PS3 are the plan-subject rows."""
    for plan in ("P1", "P2", "P3"):
        insert(conn, "Memora Academic Plan", plan)
    for n, (plan, subject) in enumerate((("P1", "S1"), ("P2", "S1"), ("P3", "S2")), start=1):
        insert(conn, "Memora Plan Subject", f"PS{n}", parent=plan, subject=subject, idx=1)
    insert(conn, "Memora Plan Override", "O1", parent="P1", target_doctype="Memora Lesson", target_name="L1",
           action="Hide")
    for i in ("1", "2"):
        insert(conn, "Memora Subject", f"S{i}")
        insert(conn, "Memora Track", f"T{i}", parent_subject=f"S{i}")
        insert(conn, "Memora Unit", f"U{i}", parent_track=f"T{i}")
        insert(conn, "Memora Topic", f"TP{i}", parent_unit=f"U{i}")
        insert(conn, "Memora Lesson", f"L{i}", parent_topic=f"TP{i}")
    insert(conn, "Memora Lesson Stage", "ST1", parent="L1", idx=1)
    conn.commit()


@pytest.fixture
def tree(version):
    with frappe_database(version) as (_, conn):
        build_small_tree(conn)
        yield conn


SMALL = dict(plans=4, subjects=5, subjects_per_plan=3, tracks=2, units=2, topics=2, lessons=2, stages=2, seed=11)
LARGE = dict(plans=12, subjects=10, subjects_per_plan=4, tracks=3, units=3, topics=3, lessons=8, stages=2, seed=12)


@pytest.fixture(scope="module", params=VERSIONS)
def generated(request):
    """(small conn, small rows, large conn, large rows) of generated trees, odd names included."""
    small, large = generate_tree(**SMALL), generate_tree(**LARGE)
    with frappe_database(request.param) as (_, small_conn), frappe_database(request.param) as (_, large_conn):
        insert_rows(small_conn, small)
        insert_rows(large_conn, large)
        yield small_conn, small, large_conn, large


# ---------------------------------------------------------------------------------------------
# affected_plans
# ---------------------------------------------------------------------------------------------


def test_every_row_resolves_to_the_plans_above_it(generated):
    conn, rows, _, _ = generated
    oracle = expected_plans(rows)
    assert len(oracle) > 300
    assert any(" " in name or not name.isascii() for _, name in oracle)  # odd names are in the tree
    wrong = {key: (got, want) for key, want in oracle.items() if (got := affected_plans(conn, *key)) != want}
    assert not wrong
    # orphans (missing topic, missing subject) belong to no plan, and that is not an error
    assert oracle[("Memora Lesson", "orphan lesson")] == set() == oracle[("Memora Track", "orphan track")]


def test_a_subject_shared_by_every_plan_marks_all_of_them(generated):
    conn, rows, _, _ = generated
    plans = {r["name"] for r in rows["Memora Academic Plan"]}
    shared = rows["Memora Subject"][0]["name"]
    stage = rows["Memora Lesson Stage"][0]["name"]  # the first stage sits under the first subject
    assert affected_plans(conn, "Memora Subject", shared) == plans
    assert affected_plans(conn, "Memora Lesson Stage", stage) == plans


def test_a_moved_lesson_affects_its_old_and_new_plans(tree):
    execute(tree, "UPDATE `tabMemora Lesson` SET parent_topic = 'TP2' WHERE name = 'L1'")
    assert affected_plans(tree, "Memora Lesson", "L1") == {"P3"}
    moved, queries = count_selects(tree, affected_plans, tree, "Memora Lesson", "L1",
                                   old_parent_links={"parent_topic": "TP1"})
    assert moved == {"P1", "P2", "P3"}
    assert queries == 1
    assert affected_plans(tree, "Memora Lesson Stage", "ST1") == {"P3"}  # its stages go up the new chain


@pytest.mark.parametrize("doctype, name, link, old", [
    ("Memora Topic", "TP1", "parent_unit", "U1"),
    ("Memora Unit", "U1", "parent_track", "T1"),
    ("Memora Track", "T1", "parent_subject", "S1"),
])
def test_a_moved_node_of_any_level_affects_both_chains(tree, doctype, name, link, old):
    assert affected_plans(tree, doctype, name) == {"P1", "P2"}
    execute(tree, f"UPDATE `tab{doctype}` SET `{link}` = %s WHERE name = %s", (old[:-1] + "2", name))
    assert affected_plans(tree, doctype, name) == {"P3"}
    assert affected_plans(tree, doctype, name, old_parent_links={link: old}) == {"P1", "P2", "P3"}
    # an unrelated key (another level's link) is ignored
    assert affected_plans(tree, doctype, name, old_parent_links={"parent_topic": "TP1"}) == {"P3"}


def test_deleted_rows_resolve_from_the_links_they_had(tree):
    execute(tree, "DELETE FROM `tabMemora Lesson Stage` WHERE name = 'ST1'")
    execute(tree, "DELETE FROM `tabMemora Lesson` WHERE name = 'L1'")
    assert affected_plans(tree, "Memora Lesson", "L1") == set()
    assert affected_plans(tree, "Memora Lesson", "L1", parent="TP1") == {"P1", "P2"}
    assert affected_plans(tree, "Memora Lesson Stage", "ST1", parent="L2") == {"P3"}
    execute(tree, "DELETE FROM `tabMemora Track` WHERE name = 'T2'")
    assert affected_plans(tree, "Memora Track", "T2", parent="S2") == {"P3"}
    assert affected_plans(tree, "Memora Lesson", "L2") == set()  # below a deleted track: an orphan
    execute(tree, "DELETE FROM `tabMemora Subject` WHERE name = 'S1'")
    assert affected_plans(tree, "Memora Subject", "S1") == {"P1", "P2"}  # through the plans that list it
    execute(tree, "DELETE FROM `tabMemora Academic Plan` WHERE name = 'P3'")
    plans, queries = count_selects(tree, affected_plans, tree, "Memora Academic Plan", "P3")
    assert plans == {"P3"} and queries == 0


def test_several_names_resolve_in_one_query(tree):
    """A rename passes the new and the old name: both chains, one statement."""
    plans, queries = count_selects(tree, affected_plans, tree, "Memora Lesson", ["L1", "L2", "gone"])
    assert plans == {"P1", "P2", "P3"} and queries == 1
    assert affected_plans(tree, "Memora Academic Plan", ["P1", "old plan name", None, ""]) == {"P1", "old plan name"}
    assert affected_plans(tree, "Memora Plan Override", ["O1", "nope"]) == {"P1"}


def test_plan_child_rows_resolve_to_their_plan(tree):
    assert affected_plans(tree, "Memora Plan Override", "O1") == {"P1"}
    assert affected_plans(tree, "Memora Plan Subject", "PS3") == {"P3"}
    execute(tree, "DELETE FROM `tabMemora Plan Override` WHERE name = 'O1'")
    assert affected_plans(tree, "Memora Plan Override", "O1") == set()
    plans, queries = count_selects(tree, affected_plans, tree, "Memora Plan Override", "O1", parent="P1")
    assert plans == {"P1"} and queries == 0


def test_unknown_doctypes_affect_nothing_and_run_no_query(tree):
    plans, queries = count_selects(tree, affected_plans, tree, "ToDo", "L1", parent="TP1")
    assert plans == set() and queries == 0


def test_hostile_names_are_looked_up_as_parameters(tree):
    for name in ("x' OR '1'='1", "L1'; DROP TABLE `tabMemora Lesson`; --", "a`b", "../../etc", "%s", "%(x)s", ""):
        for doctype in LEVELS:
            assert affected_plans(tree, doctype, name, parent=name,
                                  old_parent_links={"parent_topic": name, "parent": name}) == set()
        assert affected_plans(tree, "Memora Plan Override", name) == set()
    assert affected_plans(tree, "Memora Lesson", "L1") == {"P1", "P2"}  # the table is still there


def test_any_name_frappe_allows_resolves_at_every_level(tree):
    """Spaces, Unicode, punctuation, `/`, `..`, 140 characters: a chain made entirely of one such name (plan,
    subject, ..., stage) resolves, for each name; nothing is refused."""
    for odd in ODD_NAMES:
        insert(tree, "Memora Academic Plan", odd)
        insert(tree, "Memora Plan Subject", f"ps {odd}"[:140], parent=odd, subject=odd)
        insert(tree, "Memora Subject", odd)
        for doctype, link in (("Memora Track", "parent_subject"), ("Memora Unit", "parent_track"),
                              ("Memora Topic", "parent_unit"), ("Memora Lesson", "parent_topic")):
            insert(tree, doctype, odd, **{link: odd})
        insert(tree, "Memora Lesson Stage", odd, parent=odd)
    tree.commit()
    for odd in ODD_NAMES:
        for doctype in LEVELS:
            assert affected_plans(tree, doctype, odd) == {odd}, (doctype, odd)
        assert affected_plans(tree, "Memora Academic Plan", odd) == {odd}


CASES = [  # (doctype, kwargs, expected SELECTs)
    ("Memora Lesson Stage", {}, 1),
    ("Memora Lesson", {}, 1),
    ("Memora Lesson", {"old_parent_links": {"parent_topic": "first-topic"}}, 1),
    ("Memora Lesson", {"parent": "first-topic", "old_parent_links": {"parent_topic": "last-topic"}}, 1),
    ("Memora Topic", {}, 1),
    ("Memora Unit", {}, 1),
    ("Memora Track", {}, 1),
    ("Memora Subject", {}, 1),
    ("Memora Plan Subject", {}, 1),
    ("Memora Plan Override", {}, 1),
    ("Memora Plan Override", {"parent": "first-plan"}, 0),
    ("Memora Academic Plan", {}, 0),
]


def _query_counts(conn, rows) -> list[tuple[str, int, int]]:
    out = []
    resolve = {"first-topic": rows["Memora Topic"][0]["name"], "last-topic": rows["Memora Topic"][-1]["name"],
               "first-plan": rows["Memora Academic Plan"][0]["name"]}
    for doctype, kwargs, _ in CASES:
        kwargs = {k: ({kk: resolve.get(vv, vv) for kk, vv in v.items()} if isinstance(v, dict) else resolve.get(v, v))
                  for k, v in kwargs.items()}
        for r in (rows[doctype][0], rows[doctype][-1]):
            plans, queries = count_selects(conn, affected_plans, conn, doctype, r["name"], **kwargs)
            out.append((doctype, queries, len(plans)))
    return out


def test_a_fixed_number_of_queries_whatever_the_tree_size(generated):
    small_conn, small_rows, large_conn, large_rows = generated
    assert len(large_rows["Memora Lesson Stage"]) > 15 * len(small_rows["Memora Lesson Stage"])
    expected = [(doctype, queries) for doctype, _, queries in CASES for _ in range(2)]
    assert [(d, q) for d, q, _ in _query_counts(small_conn, small_rows)] == expected
    large = _query_counts(large_conn, large_rows)
    assert [(d, q) for d, q, _ in large] == expected
    assert max(n for _, _, n in large) == LARGE["plans"]  # a shared subject is under every plan


def test_the_query_walks_up_by_primary_key(tree):
    """EXPLAIN on the generated schema: every level above the changed row is an eq_ref/const lookup on PRIMARY;
    only the plan-subject step depends on an index the app may lack (docs/frappe-indexes.md)."""
    cur = tree.cursor()
    cur.execute("EXPLAIN " + plans_query("Memora Lesson Stage", 1), ("ST1",))
    cols = [d[0] for d in cur.description]
    plan = [dict(zip(cols, r)) for r in cur.fetchall()]
    cur.close()
    by_alias = {p["table"]: p for p in plan}
    for alias in ("n0", "n1", "n2", "n3", "n4"):
        assert by_alias[alias]["key"] == "PRIMARY", plan
    assert by_alias["ps"]["key"] in (None, "subject", "subject_index")


# ---------------------------------------------------------------------------------------------
# queue_plans / mark_changed
# ---------------------------------------------------------------------------------------------


def test_mark_changed_adds_the_plans_and_their_first_marked_time(tree, redis13):
    redis13.sadd(PENDING, "P9")
    before = time.time()
    assert mark_changed("Memora Lesson Stage", "ST1", db=tree, redis=redis13) == {"P1", "P2"}
    after = time.time()
    assert pending(redis13) == {"P1", "P2", "P9"}
    first = since(redis13)
    assert set(first) == {"P1", "P2"} and all(before - 0.001 <= t <= after + 0.001 for t in first.values())
    time.sleep(0.01)
    assert mark_changed("Memora Plan Override", "O1", db=tree, redis=redis13) == {"P1"}
    assert mark_changed("Memora Lesson", "L2", db=tree, redis=redis13) == {"P3"}
    assert pending(redis13) == {"P1", "P2", "P3", "P9"}
    later = since(redis13)
    assert later["P1"] == first["P1"] and later["P2"] == first["P2"]  # ZADD NX: the first time stays
    assert later["P3"] > first["P1"]
    assert mark_changed("Memora Lesson", "nope", db=tree, redis=redis13) == set()
    assert fallback_rows(tree) == []


def test_pending_since_is_written_as_the_epoch_score(redis13, tree):
    queue_plans(["P1"], db=tree, redis=redis13, now=1767600000.25)
    assert redis13.zscore(PENDING_SINCE, "P1") == 1767600000.25


def test_the_set_and_the_times_are_written_in_one_transaction(tree, redis13):
    """MULTI ... EXEC: the pipeline is sent as one transaction (redis-py's transactional pipeline)."""
    sent = []
    original = redis_lib.client.Pipeline.execute

    def spy(self, *args, **kwargs):
        sent.append((self.transaction, [cmd[0][0] for cmd in self.command_stack]))
        return original(self, *args, **kwargs)

    redis_lib.client.Pipeline.execute = spy
    try:
        queue_plans(["P1", "P2"], db=tree, redis=redis13)
    finally:
        redis_lib.client.Pipeline.execute = original
    assert sent == [(True, ["SADD", "ZADD"])]


def test_any_plan_name_is_marked_as_it_is(tree, redis13):
    for n, odd in enumerate(ODD_NAMES):
        insert(tree, "Memora Academic Plan", odd)
        insert(tree, "Memora Plan Subject", f"PSX{n}", parent=odd, subject="S1")
    tree.commit()
    assert mark_changed("Memora Lesson", "L1", db=tree, redis=redis13) == {"P1", "P2", *ODD_NAMES}
    assert pending(redis13) == {"P1", "P2", *ODD_NAMES}
    assert set(since(redis13)) == {"P1", "P2", *ODD_NAMES}


def test_empty_and_missing_names_mark_nothing(tree, redis13):
    for name in (None, "", [], [None, ""]):
        assert mark_changed("Memora Academic Plan", name, db=tree, redis=redis13) == set()
        assert mark_changed("Memora Lesson", name, db=tree, redis=redis13) == set()
    assert queue_plans([], db=tree, redis=redis13) == "none"
    assert redis13.exists(PENDING, PENDING_SINCE) == 0 and fallback_rows(tree) == []


def test_redis_down_writes_one_committed_fallback_row_per_plan(tree, caplog):
    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with caplog.at_level("WARNING", logger="memora_cdn_producer"):
        assert mark_changed("Memora Lesson", "L1", db=tree, redis=down) == {"P1", "P2"}
    assert fallback_rows(tree) == [("P1", "Queued", 1, "Fallback Recovery"), ("P2", "Queued", 1, "Fallback Recovery")]
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
    cur = tree.cursor()
    cur.execute("SELECT DATABASE()")
    other = mysql_connect(cur.fetchone()[0])
    cur.close()
    try:
        assert len(fallback_rows(other)) == 2  # committed: the exporter's connection sees them
    finally:
        other.close()


def test_redis_down_with_redis_py_default_retries_still_falls_back(tree):
    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert mark_changed("Memora Topic", "TP2", db=tree, redis=down) == {"P3"}
    assert fallback_rows(tree) == [("P3", "Queued", 1, "Fallback Recovery")]


def test_redis_timeout_writes_fallback_rows(tree):
    """A Redis that accepts connections but never answers: TimeoutError, not ConnectionError."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        client = redis_lib.Redis(host="127.0.0.1", port=server.getsockname()[1], socket_connect_timeout=0.2,
                                 socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
        assert mark_changed("Memora Plan Override", "O1", db=tree, redis=client) == {"P1"}
    assert fallback_rows(tree) == [("P1", "Queued", 1, "Fallback Recovery")]


def test_no_redis_client_writes_fallback_rows_with_the_reason(tree):
    assert queue_plans({"P2"}, db=tree, redis=None, reason="save of X", problem="memora_cdn_redis_url not set") \
        == "fallback"
    assert mark_changed("Memora Subject", "S2", db=tree) == {"P3"}
    assert fallback_rows(tree) == [("P2", "Queued", 1, "Fallback Recovery"), ("P3", "Queued", 1, "Fallback Recovery")]
    cur = tree.cursor()
    cur.execute("SELECT error_message FROM `tabCDN Sync Log` WHERE plan_id = 'P2'")
    assert cur.fetchone()[0] == "memora_cdn_redis_url not set; save of X"
    cur.close()


def test_other_redis_errors_fall_back_too(tree, redis13):
    redis13.set(PENDING, "not a set")  # SADD fails with WRONGTYPE (a ResponseError)
    assert mark_changed("Memora Lesson", "L2", db=tree, redis=redis13) == {"P3"}
    assert fallback_rows(tree) == [("P3", "Queued", 1, "Fallback Recovery")]


def test_a_database_error_while_writing_the_fallback_is_raised(tree):
    """Losing a change silently is worse than an error: with neither Redis nor the table, it raises."""
    execute(tree, "DROP TABLE `tabCDN Sync Log`")
    with pytest.raises(Exception, match="CDN Sync Log"):
        queue_plans(["P1"], db=tree, redis=None)


def test_the_recommended_doctype_change_indexes_the_lookup():
    """docs/frappe-patches/memora_plan_subject.json (the app's 008 definition plus `search_index: 1` on `subject`)
    makes Frappe's table carry an index on `subject`, and the producer's query uses it instead of a full scan."""
    import json

    from memora_cdn_demo import frappe_tables
    from tests.support import REPO

    patched = json.loads((REPO / "docs" / "frappe-patches" / "memora_plan_subject.json").read_text(encoding="utf-8"))
    original = next(d for d in frappe_tables.doctypes("008") if d["name"] == "Memora Plan Subject")
    changed = {k for k in set(patched) | set(original) if patched.get(k) != original.get(k)}
    assert changed == {"fields", "modified"} and patched["modified"] > original["modified"]
    assert [f for f in patched["fields"] if f["fieldname"] != "subject"] == \
        [f for f in original["fields"] if f["fieldname"] != "subject"]
    assert next(f for f in patched["fields"] if f["fieldname"] == "subject")["search_index"] == 1
    assert "KEY `subject`" not in frappe_tables.table_ddl(original)
    with frappe_database("008") as (_, conn):
        execute(conn, "DROP TABLE `tabMemora Plan Subject`")
        execute(conn, frappe_tables.table_ddl(patched))
        build_small_tree(conn)
        cur = conn.cursor()
        cur.execute("EXPLAIN " + plans_query("Memora Lesson", 1), ("L1",))
        cols = [d[0] for d in cur.description]
        ps = next(dict(zip(cols, r)) for r in cur.fetchall() if r[cols.index("table")] == "ps")
        cur.close()
        assert ps["key"] == "subject" and ps["type"] == "ref", ps
