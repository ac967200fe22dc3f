"""memora_cdn_demo.content: deterministic demo content and its bulk loader, against the real MariaDB.

Nothing is mocked. A MariaDB that cannot be reached makes the database tests fail (errors in
the fixture), never skip. Each test database is named ``memora_demo_t_<random>`` and dropped.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter, defaultdict
from datetime import datetime

import MySQLdb
import pytest

from memora_cdn_demo import content as demo
from memora_cdn_demo.content import DemoScale, create_schema, generate, load, reset_content

MYSQL = dict(host=os.environ.get("MEMORA_TEST_MYSQL_HOST", "127.0.0.1"),
             port=int(os.environ.get("MEMORA_TEST_MYSQL_PORT", "3306")),
             user=os.environ.get("MEMORA_TEST_MYSQL_USER", "root"),
             passwd=os.environ.get("MEMORA_TEST_MYSQL_PASSWORD", ""))

HASH = re.compile(r"^[0-9a-f]{10}$")
ARABIC = re.compile(r"[\u0600-\u06FF]")
CONTENT = ("Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson")
PARENT_LINK = {"Memora Track": ("parent_subject", "Memora Subject"),
               "Memora Unit": ("parent_track", "Memora Track"),
               "Memora Topic": ("parent_unit", "Memora Unit"),
               "Memora Lesson": ("parent_topic", "Memora Topic")}
CHILD_TABLES = {"tabMemora Plan Subject": ("subjects", "Memora Academic Plan", "tabMemora Academic Plan"),
                "tabMemora Plan Override": ("overrides", "Memora Academic Plan", "tabMemora Academic Plan"),
                "tabMemora Lesson Stage": ("stages", "Memora Lesson", "tabMemora Lesson")}


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def _admin():
    return MySQLdb.connect(charset="utf8mb4", autocommit=True, **MYSQL)


@pytest.fixture
def db_name():
    """A fresh database name memora_demo_t_<random>; created here and always dropped afterwards."""
    name = f"memora_demo_t_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield name
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def conn(db_name):
    c = MySQLdb.connect(db=db_name, charset="utf8mb4", autocommit=False, **MYSQL)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def rows():
    return generate(DemoScale())


def _count(conn, table):
    cur = conn.cursor()
    cur.execute(f"SELECT COUNT(*) FROM `{table}`")
    (n,) = cur.fetchone()
    cur.close()
    return n


# ---------------------------------------------------------------------------------------------
# an independent reading of the rows (does not use demo's internals)
# ---------------------------------------------------------------------------------------------


class Content:
    def __init__(self, rows):
        self.rows = rows
        self.docs = {dt: {r["name"]: r for r in rows[f"tab{dt}"]} for dt in CONTENT}
        self.children = {dt: defaultdict(list) for dt in CONTENT}
        for dt, (link, parent_dt) in PARENT_LINK.items():
            for r in rows[f"tab{dt}"]:
                self.children[parent_dt][r[link]].append(r)
        self.plans = {r["name"]: r for r in rows["tabMemora Academic Plan"]}
        self.plan_subjects = defaultdict(list)
        for r in rows["tabMemora Plan Subject"]:
            self.plan_subjects[r["parent"]].append(r["subject"])
        self.overrides = defaultdict(list)
        for r in rows["tabMemora Plan Override"]:
            self.overrides[r["parent"]].append(r)

    def parent(self, dt, row):
        if dt == "Memora Subject":
            return None
        link, parent_dt = PARENT_LINK[dt]
        p = self.docs[parent_dt].get(row[link])
        return None if p is None else (parent_dt, p)

    def chain(self, dt, name):
        """[(doctype, row)] from the node up to its subject; None when an ancestor is missing."""
        out = [(dt, self.docs[dt][name])]
        while out[-1][0] != "Memora Subject":
            p = self.parent(*out[-1])
            if p is None:
                return None
            out.append(p)
        return out

    def subtree(self, dt, name):
        order = list(CONTENT)
        out, todo = [], [(dt, self.docs[dt][name])]
        while todo:
            d, r = todo.pop()
            out.append((d, r))
            i = order.index(d)
            if i + 1 < len(order):
                todo.extend((order[i + 1], c) for c in self.children[d][r["name"]])
        return out

    def visible(self, plan, dt, name):
        chain = self.chain(dt, name)
        if chain is None or chain[-1][1]["name"] not in self.plan_subjects[plan]:
            return False
        hidden = {o["target_name"] for o in self.overrides[plan] if o["action"] == "Hide"}
        return all(r["is_published"] and r["name"] not in hidden for _, r in chain)

    def base_access(self, dt, name):
        """SPEC §4 rules 2-6 (no overrides)."""
        level = None
        for _, r in reversed(self.chain(dt, name)):
            if r["is_free_preview"]:
                level = "free_preview"
            elif r.get("required_item"):
                level = "paid"
            elif level == "paid":
                level = "paid"
            elif r.get("is_public"):
                level = "public"
            elif level in ("public", "free_preview"):
                pass
            else:
                level = "authenticated"
        return level

    def plan_lessons(self, plan):
        return [n for n in self.docs["Memora Lesson"]
                if (c := self.chain("Memora Lesson", n)) and c[-1][1]["name"] in self.plan_subjects[plan]]


@pytest.fixture(scope="module")
def content(rows):
    return Content(rows)


# ---------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------


def test_split_sql_handles_comments_and_quotes():
    sql = "-- a comment; with a semicolon\nCREATE TABLE `a;b` (x text DEFAULT 'p;q');\n/* c; */ SELECT 1;\n"
    assert demo.split_sql(sql) == ["CREATE TABLE `a;b` (x text DEFAULT 'p;q')", "SELECT 1"]


def test_committed_sql_files_are_the_generators_output():
    from memora_cdn_demo import frappe_tables

    for version in frappe_tables.VERSIONS:
        assert frappe_tables.sql_path(version).read_text(encoding="utf-8") == frappe_tables.schema_sql(version), (
            f"sql/frappe_schema_{version}.sql is stale: run python -m memora_cdn_demo.frappe_tables")


@pytest.mark.parametrize("version", ["002", "008"])
def test_008_fields_only_in_008_rows(version):
    rows = generate(DemoScale(), version=version)
    new = {"tabMemora Subject": {"is_linear", "next_bit_index"}, "tabMemora Track": {"is_linear"},
           "tabMemora Unit": {"is_linear"}, "tabMemora Topic": {"is_linear"}, "tabMemora Lesson": {"bit_index"},
           "tabMemora Lesson Stage": {"weight", "target_time", "is_skippable"},
           "tabMemora Academic Plan": {"is_published"}}
    for table, columns in new.items():
        assert all((columns <= set(r)) == (version == "008") for r in rows[table]), table
    assert all(("is_public" in r) == (version == "002") for r in rows["tabMemora Subject"])
    if version == "008":
        for level in ("Subject", "Track", "Unit", "Topic"):
            assert {r["is_linear"] for r in rows[f"tabMemora {level}"]} == {0, 1}, level
        c = Content(rows)
        for subject, srow in c.docs["Memora Subject"].items():
            bits = [r["bit_index"] for _, r in c.subtree("Memora Subject", subject) if "bit_index" in r]
            assert sorted(bits) == list(range(len(bits))) and srow["next_bit_index"] == len(bits)
        assert {r["is_skippable"] for r in rows["tabMemora Lesson Stage"]} == {0, 1}
        assert all(r["weight"] > 0 and r["target_time"] > 0 for r in rows["tabMemora Lesson Stage"])


@pytest.mark.parametrize("version", ["002", "008"])
def test_rows_of_each_version_load_into_its_schema(conn, version):
    create_schema(conn, version)
    counts = load(conn, generate(DemoScale(), version=version))
    assert counts["tabMemora Lesson"] == _count(conn, "tabMemora Lesson") > 0


def test_create_schema_creates_every_table_and_is_idempotent(conn):
    create_schema(conn)
    create_schema(conn)
    cur = conn.cursor()
    cur.execute("SHOW TABLES")
    tables = {t for (t,) in cur.fetchall()}
    expected = set(demo.schema_tables())
    assert len(expected) == 13 and "tabCDN Sync Log" in expected
    assert tables == expected
    assert set(demo.CONTENT_TABLES) <= expected


# ---------------------------------------------------------------------------------------------
# determinism, names, standard columns, child rows
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_rows():
    scale = DemoScale(plans=3, subjects_per_plan=4, lessons_per_plan=90, stages_per_lesson=5, seed=11)
    assert generate(scale) == generate(scale)
    assert generate(DemoScale()) == generate(DemoScale())


def test_other_seed_or_bucket_gives_other_rows(rows):
    other = generate(DemoScale(seed=8))
    assert [r["name"] for r in other["tabMemora Lesson"]] != [r["name"] for r in rows["tabMemora Lesson"]]
    configs = "".join(r["config"] for r in generate(DemoScale(), media_bucket="other-media")["tabMemora Lesson Stage"])
    assert "s3://other-media/videos/" in configs and "memora-media" not in configs


def test_names(rows):
    for table in ("tabMemora Subject", "tabMemora Track", "tabMemora Unit", "tabMemora Topic", "tabMemora Lesson",
                  *CHILD_TABLES):
        assert rows[table], table
        assert all(HASH.match(r["name"]) for r in rows[table]), table
    all_names = [r["name"] for table in rows.values() for r in table]
    assert len(all_names) == len(set(all_names))
    assert [r["name"] for r in rows["tabMemora Academic Plan"]] == ["PLAN-2026-0001", "PLAN-2026-0002"]
    assert [r["name"] for r in rows["tabMemora Season"]] == ["2026-2027"]
    assert "Scientific" in {r["name"] for r in rows["tabMemora Stream"]}
    assert "Grade 12" in {r["name"] for r in rows["tabMemora Grade"]}
    lookups = {t: {r["name"] for r in rows[f"tabMemora {t}"]} for t in ("Season", "Stream", "Grade")}
    for plan in rows["tabMemora Academic Plan"]:
        assert plan["season"] in lookups["Season"] and plan["stream"] in lookups["Stream"]
        assert plan["grade"] in lookups["Grade"] and plan["title"]


def test_standard_columns(rows):
    for table, table_rows in rows.items():
        for r in table_rows:
            assert r["owner"] == "Administrator" and r["modified_by"] == "Administrator", table
            assert r["docstatus"] == 0, table
            assert isinstance(r["creation"], datetime) and isinstance(r["modified"], datetime), table
            assert datetime(2025, 1, 1) < r["creation"] <= r["modified"] < datetime(2026, 10, 1), table
            if table not in CHILD_TABLES:
                assert r["idx"] == 0, table


def test_child_rows_point_to_their_parent_with_1_based_idx(rows):
    for table, (field, parenttype, parent_table) in CHILD_TABLES.items():
        parents = {r["name"]: r for r in rows[parent_table]}
        by_parent = defaultdict(list)
        for r in rows[table]:
            assert (r["parentfield"], r["parenttype"]) == (field, parenttype), table
            assert r["parent"] in parents, table
            by_parent[r["parent"]].append(r["idx"])
        for parent, idxs in by_parent.items():
            assert idxs == list(range(1, len(idxs) + 1)), (table, parent)
    # every lesson (orphans included) has stages_per_lesson stages
    per_lesson = Counter(r["parent"] for r in rows["tabMemora Lesson Stage"])
    assert set(per_lesson) == {r["name"] for r in rows["tabMemora Lesson"]}
    assert set(per_lesson.values()) == {DemoScale().stages_per_lesson}


# ---------------------------------------------------------------------------------------------
# the default scale holds every feature the exporter's tests need (for several seeds)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["002", "008"])
@pytest.mark.parametrize("seed", [7, 1, 2, 3, 123])
def test_default_scale_has_every_feature(seed, version):
    rows = generate(DemoScale(seed=seed), version=version)
    c = Content(rows)
    plans = list(c.plans)
    scale = DemoScale()

    # tree: each plan lists subjects_per_plan subjects, the first shared by all, ~lessons_per_plan lessons
    for plan in plans:
        assert len(c.plan_subjects[plan]) == scale.subjects_per_plan
        assert len(c.plan_lessons(plan)) == scale.lessons_per_plan
    shared = set.intersection(*(set(c.plan_subjects[p]) for p in plans))
    assert len(shared) == scale.shared_subjects
    for subject in c.docs["Memora Subject"]:
        assert 1 <= len(c.children["Memora Subject"][subject]) <= 3

    # titles in Arabic and English at every level; descriptions, images (some missing), badges, colours
    for dt in CONTENT:
        titles = [r["title"] for r in c.docs[dt].values()]
        assert all(titles), dt
        assert any(ARABIC.search(t) for t in titles), dt
        assert any(not ARABIC.search(t) for t in titles), dt
        assert any(r["description"] for r in c.docs[dt].values()), dt
        images = [r["image"] for r in c.docs[dt].values()]
        assert any(i is None for i in images), dt
        assert all(re.match(r"^/files/[\w.-]+\.png$", i) for i in images if i), dt
        assert any(images), dt
    assert any(re.match(r"^الدرس \d+: ", r["title"]) for r in c.docs["Memora Lesson"].values())
    assert any(re.match(r"^Lesson \d+: ", r["title"]) for r in c.docs["Memora Lesson"].values())
    assert "الرياضيات" in {r["title"] for r in c.docs["Memora Subject"].values()}
    badges = [r["badge_image"] for r in c.docs["Memora Unit"].values()]
    assert any(badges) and not all(badges)
    assert all(re.match(r"^#[0-9A-F]{6}$", r["color_code"]) for r in c.docs["Memora Subject"].values())

    # sort_order ties between siblings
    def has_tie(dt):
        link = PARENT_LINK[dt][0]
        return any(n > 1 for n in Counter((r[link], r["sort_order"]) for r in c.docs[dt].values()).values())
    assert has_tie("Memora Lesson")
    assert all(r["sort_order"] > 0 for dt in CONTENT for r in c.docs[dt].values())

    # access mixes
    subjects = list(c.docs["Memora Subject"].values())
    if version == "002":
        assert any(s["is_public"] for s in subjects)
    else:  # 008 dropped is_public: a plan makes a subject public with `Set Access Level`
        assert all("is_public" not in s for s in subjects)
        assert any(o["action"] == "Set Access Level" and o["override_value"] == "public"
                   and o["target_doctype"] == "Memora Subject" for p in plans for o in c.overrides[p])
    assert any(s["is_free_preview"] for s in subjects)
    assert any(re.match(r"^ITEM-[A-Z]+-\d+", s["required_item"] or "") for s in subjects)
    assert any(not s.get("is_public") and not s["is_free_preview"] and not s["required_item"] for s in subjects)
    for s in subjects:
        if s["name"] in shared:
            assert s["required_item"]  # the shared subject is paid
    dlc = [t for t in c.docs["Memora Track"].values() if t["is_sold_separately"]]
    assert any(t["required_item"] and t["parent_item_required"] for t in dlc)
    assert any(t["required_item"] and not t["parent_item_required"] for t in dlc)
    items = [r["required_item"] for dt in ("Memora Subject", "Memora Track")
             for r in c.docs[dt].values() if r["required_item"]]
    assert len(items) == len(set(items))
    for dt in CONTENT:
        assert any(r["is_free_preview"] for r in c.docs[dt].values()), dt
    # a free-preview track inside paid content
    assert any(t["is_free_preview"] and c.base_access("Memora Subject", t["parent_subject"]) == "paid"
               for t in c.docs["Memora Track"].values())

    # unpublished nodes at several levels, incl. an unpublished unit holding published lessons
    for dt in ("Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson"):
        assert any(not r["is_published"] and c.chain(dt, n) for n, r in c.docs[dt].items()), dt
    assert any(not u["is_published"] and c.chain("Memora Unit", n)
               and any(d == "Memora Lesson" and r["is_published"] for d, r in c.subtree("Memora Unit", n))
               for n, u in c.docs["Memora Unit"].items())
    for plan in plans:  # unpublished content is in the plans, not only in orphans
        assert any(not c.visible(plan, "Memora Lesson", n) for n in c.plan_lessons(plan))

    # overrides: all four actions, split between the plans, on existing targets
    actions_by_plan = {p: {o["action"] for o in c.overrides[p]} for p in plans}
    new_actions = set(demo.NEW_OVERRIDE_ACTIONS) if version == "008" else set()
    assert set().union(*actions_by_plan.values()) == set(demo.OVERRIDE_ACTIONS) | new_actions
    assert all(actions_by_plan.values())
    hides, renames, frees, sold = [], [], [], []
    for plan in plans:
        for o in c.overrides[plan]:
            assert o["target_doctype"] in CONTENT
            assert o["target_name"] in c.docs[o["target_doctype"]]
            # the target is in the plan and visible there (until the override itself hides it)
            assert c.chain(o["target_doctype"], o["target_name"])[-1][1]["name"] in c.plan_subjects[plan]
            {"Hide": hides, "Rename": renames, "Set Free": frees, "Set Sold Separately": sold,
             "Set Access Level": [], "Set Linear": []}[o["action"]].append((plan, o))
    assert {o["target_doctype"] for _, o in hides} >= {"Memora Lesson", "Memora Unit"}
    for plan, o in renames:
        assert ARABIC.search(o["override_value"])
        assert o["override_value"] != c.docs[o["target_doctype"]][o["target_name"]]["title"]
    for plan, o in frees:
        assert o["target_doctype"] in ("Memora Lesson", "Memora Topic")
        assert c.base_access(o["target_doctype"], o["target_name"]) == "paid"  # would otherwise be paid
        assert c.visible(plan, o["target_doctype"], o["target_name"])
    assert any(o["override_value"] and o["override_value"].startswith("ITEM-") for _, o in sold)
    assert any(not o["override_value"] for _, o in sold)
    # the shared subject is overridden differently by different plans
    overridden_shared = defaultdict(set)
    for plan in plans:
        for o in c.overrides[plan]:
            if c.chain(o["target_doctype"], o["target_name"])[-1][1]["name"] in shared:
                overridden_shared[plan].add(o["action"])
    assert len(overridden_shared) >= 2

    # orphans: a lesson whose topic is missing, a unit whose track is missing; in no plan
    orphan_lessons = [n for n, r in c.docs["Memora Lesson"].items() if r["parent_topic"] not in c.docs["Memora Topic"]]
    orphan_units = [n for n, r in c.docs["Memora Unit"].items() if r["parent_track"] not in c.docs["Memora Track"]]
    assert orphan_lessons and orphan_units
    for name in orphan_lessons:
        assert all(name not in c.plan_lessons(p) for p in plans)
    for name in orphan_units:
        assert c.chain("Memora Unit", name) is None
        assert any(d == "Memora Lesson" for d, _ in c.subtree("Memora Unit", name))  # a lesson below it
    # the only broken links are those orphans
    for dt, (link, parent_dt) in PARENT_LINK.items():
        broken = [n for n, r in c.docs[dt].items() if r[link] not in c.docs[parent_dt]]
        assert broken == {"Memora Lesson": orphan_lessons, "Memora Unit": orphan_units}.get(dt, []), dt

    # stages: the four types, valid JSON object configs, the three kinds of video address
    stages = rows["tabMemora Lesson Stage"]
    assert {s["type"] for s in stages} == set(demo.STAGE_TYPES)
    urls = []
    for s in stages:
        config = json.loads(s["config"])
        assert isinstance(config, dict) and s["title"]
        if s["type"] == "Video":
            assert set(config) == {"video_url", "duration_seconds"} and config["duration_seconds"] > 0
            urls.append(config["video_url"])
        elif s["type"] == "Question":
            assert set(config) == {"question", "choices", "answer_index"}
            assert 0 <= config["answer_index"] < len(config["choices"])
        elif s["type"] == "Text":
            assert set(config) == {"body"} and config["body"]
        else:
            assert set(config) == {"widget", "params"} and isinstance(config["params"], dict)
    patterns = (r"^s3://memora-media/videos/[0-9a-f]{10}\.mp4$",
                r"^https://media\.memora\.test/memora-media/videos/[0-9a-f]{10}\.mp4$",
                r"^https://videos\.example\.com/watch/[0-9a-f]{10}\.mp4$")
    for pattern in patterns:
        assert any(re.match(pattern, u) for u in urls), pattern
    assert all(any(re.match(p, u) for p in patterns) for u in urls)
    assert not any("s3.amazonaws.com" in u for u in urls)
    assert any(ARABIC.search(json.loads(s["config"]).get("body", "")) for s in stages if s["type"] == "Text")
    assert any(not ARABIC.search(json.loads(s["config"]).get("body", "")) for s in stages if s["type"] == "Text")


def test_lessons_scale_linearly():
    for plans, per_plan, lessons in ((1, 2, 40), (3, 5, 250), (4, 7, 1000)):
        c = Content(generate(DemoScale(plans=plans, subjects_per_plan=per_plan, lessons_per_plan=lessons,
                                       stages_per_lesson=1)))
        assert len(c.plans) == plans
        for plan in c.plans:
            assert len(c.plan_subjects[plan]) == per_plan
            assert len(c.plan_lessons(plan)) == lessons
        assert len(c.docs["Memora Subject"]) == 1 + plans * (per_plan - 1)


@pytest.mark.parametrize("scale", [
    DemoScale(plans=1, subjects_per_plan=1, lessons_per_plan=1, stages_per_lesson=1),
    DemoScale(plans=1, subjects_per_plan=3, lessons_per_plan=10, stages_per_lesson=0),
    DemoScale(plans=3, subjects_per_plan=2, lessons_per_plan=5, shared_subjects=0),
    DemoScale(plans=2, subjects_per_plan=2, lessons_per_plan=8, shared_subjects=5),
    DemoScale(plans=1, subjects_per_plan=3, lessons_per_plan=60),
], ids=["tiny", "no-stages", "no-shared", "all-shared", "one-plan"])
def test_small_and_odd_scales_stay_consistent(scale):
    rows = generate(scale)
    c = Content(rows)
    assert len(c.plans) == scale.plans
    for o in rows["tabMemora Plan Override"]:
        assert o["target_name"] in c.docs[o["target_doctype"]]
    assert len(rows["tabMemora Lesson Stage"]) == scale.stages_per_lesson * len(rows["tabMemora Lesson"])
    if scale.plans == 1 and scale.lessons_per_plan >= 60:  # a single plan carries all four actions
        assert {o["action"] for o in rows["tabMemora Plan Override"]} == \
            set(demo.OVERRIDE_ACTIONS) | set(demo.NEW_OVERRIDE_ACTIONS)  # 008, the default


# ---------------------------------------------------------------------------------------------
# loading into MariaDB
# ---------------------------------------------------------------------------------------------


def test_load_counts_match_and_rows_round_trip(conn, rows):
    create_schema(conn)
    counts = load(conn, rows)
    assert counts == {table: len(r) for table, r in rows.items()}
    for table, n in counts.items():
        assert _count(conn, table) == n, table
    assert _count(conn, "tabCDN Sync Log") == 0

    # rows read back equal the generated ones (types, Arabic text, datetimes with microseconds)
    for table in ("tabMemora Lesson", "tabMemora Plan Override", "tabMemora Lesson Stage", "tabMemora Subject"):
        cols = list(rows[table][0])
        cur = conn.cursor()
        cur.execute("SELECT {} FROM `{}`".format(", ".join(f"`{c}`" for c in cols), table))
        got = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
        assert got == {r["name"]: r for r in rows[table]}, table

    # children's idx as stored is 1-based per parent
    cur = conn.cursor()
    cur.execute("SELECT parent, MIN(idx), MAX(idx), COUNT(*) FROM `tabMemora Lesson Stage` GROUP BY parent")
    assert all(lo == 1 and hi == n for _, lo, hi, n in cur.fetchall())


def test_load_uses_chunks_and_reset_content_empties_every_table(conn):
    create_schema(conn)
    rows = generate(DemoScale(plans=2, subjects_per_plan=3, lessons_per_plan=120, stages_per_lesson=6))
    counts = load(conn, rows, chunk_size=97)  # many chunks, several multi-row statements each
    assert counts["tabMemora Lesson Stage"] == len(rows["tabMemora Lesson Stage"]) > 97 * 5
    assert _count(conn, "tabMemora Lesson Stage") == counts["tabMemora Lesson Stage"]
    cur = conn.cursor()
    cur.execute("INSERT INTO `tabCDN Sync Log` (name, plan_id, status) VALUES ('log1', 'PLAN-2026-0001', 'Queued')")
    conn.commit()
    reset_content(conn)
    for table in demo.schema_tables():
        assert _count(conn, table) == 0, table
    assert load(conn, rows) == counts  # same names load again after the reset


def test_load_failure_rolls_back(conn, rows):
    create_schema(conn)
    bad = {"tabMemora Subject": rows["tabMemora Subject"],
           "tabMemora Lesson": rows["tabMemora Lesson"][:3] + rows["tabMemora Lesson"][:1]}  # duplicate key
    with pytest.raises(MySQLdb.IntegrityError):
        load(conn, bad)
    assert _count(conn, "tabMemora Subject") == 0 and _count(conn, "tabMemora Lesson") == 0


def test_main_creates_database_loads_and_resets(db_name, capsys):
    args = ["--plans", "2", "--subjects", "3", "--lessons", "30", "--stages", "2", "--seed", "5",
            "--database", db_name, "--host", MYSQL["host"], "--port", str(MYSQL["port"]),
            "--user", MYSQL["user"], "--password", MYSQL["passwd"], "--media-bucket", "demo-media"]
    # the fixture created the database; main must also cope with a missing one
    admin = _admin()
    admin.cursor().execute(f"DROP DATABASE `{db_name}`")
    admin.close()
    assert demo.main(args) == 0
    out = capsys.readouterr().out
    expected = generate(DemoScale(plans=2, subjects_per_plan=3, lessons_per_plan=30, stages_per_lesson=2, seed=5),
                        media_bucket="demo-media")
    assert re.search(rf"tabMemora Lesson\s+{len(expected['tabMemora Lesson'])}\n", out)
    assert re.search(rf"tabMemora Lesson Stage\s+{len(expected['tabMemora Lesson Stage'])}\n", out)

    assert demo.main(args) == 1  # same names again without --reset: refused with a hint
    assert "--reset" in capsys.readouterr().err
    assert demo.main(args + ["--reset"]) == 0

    c = MySQLdb.connect(db=db_name, charset="utf8mb4", **MYSQL)
    try:
        for table, table_rows in expected.items():
            assert _count(c, table) == len(table_rows), table
        cur = c.cursor()
        cur.execute("SELECT COUNT(*) FROM `tabMemora Lesson Stage` WHERE config LIKE '%s3://demo-media/%'")
        assert cur.fetchone()[0] > 0
    finally:
        c.close()
