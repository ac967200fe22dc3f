"""Databases and rows for the producer's tests and its index benchmark (bench/producer_indexes.py).

Tables come from the real app's DocType JSON (`memora_cdn_demo.frappe_tables`, versions 002 and 008), so the
indexes are the ones Frappe creates: `tabMemora Plan Subject.subject` has none. Rows are made here, with only
the columns both versions have (names, links, titles), so one generator serves both schemas.
"""
from __future__ import annotations

import itertools
import random
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime

from memora_cdn_demo import frappe_tables
from tests.support import mysql_connect

PLAN = "Memora Academic Plan"
PLAN_SUBJECT = "Memora Plan Subject"
PLAN_OVERRIDE = "Memora Plan Override"
LEVELS = ("Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson", "Memora Lesson Stage")
LINK = {"Memora Track": "parent_subject", "Memora Unit": "parent_track", "Memora Topic": "parent_unit",
        "Memora Lesson": "parent_topic", "Memora Lesson Stage": "parent"}
ABOVE = {"Memora Track": "Memora Subject", "Memora Unit": "Memora Track", "Memora Topic": "Memora Unit",
         "Memora Lesson": "Memora Topic", "Memora Lesson Stage": "Memora Lesson"}
NOW = datetime(2026, 1, 5, 8, 0)

#: names Frappe accepts for a document (anything but a few control characters, at most 140 characters);
#: the producer must mark them all and never build SQL or paths from them
ODD_NAMES = ("Plan 2026 – Grade 7", "خطة الصف السابع", "plan/with/slashes", "../escape", "x' OR '1'='1",
             "a`b\"c;--", "%s %(x)s", "名前 テスト", "P" * 140, "trailing.dot.", "..")


@contextmanager
def frappe_database(version: str, prefix: str = "memora_prod"):
    """(name, connection) of a new database with the app's tables as Frappe builds them from `doctypes-{version}`."""
    name = f"{prefix}_{version}_{uuid.uuid4().hex[:8]}"
    admin = mysql_connect()
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn = mysql_connect(name)
    try:
        cur = conn.cursor()
        for doctype in frappe_tables.doctypes(version):
            ddl = frappe_tables.table_ddl(doctype)
            if ddl:
                cur.execute(ddl)
        cur.close()
        conn.commit()
        yield name, conn
    finally:
        conn.close()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def row(doctype: str, name: str, **fields) -> dict:
    out = {"name": name, "creation": NOW, "modified": NOW, "owner": "Administrator", "modified_by": "Administrator",
           **fields}
    if doctype in LEVELS[:-1] or doctype == PLAN:
        out.setdefault("title", name[:140])
    if doctype in LEVELS[:-1]:
        out.setdefault("is_published", 1)
    if doctype == "Memora Lesson Stage":
        out.setdefault("parentfield", "stages")
        out.setdefault("parenttype", "Memora Lesson")
        out.setdefault("title", "Stage")
        out.setdefault("type", "Text")
        out.setdefault("config", "{}")
    if doctype in (PLAN_SUBJECT, PLAN_OVERRIDE):
        out.setdefault("parenttype", PLAN)
        out.setdefault("parentfield", "subjects" if doctype == PLAN_SUBJECT else "overrides")
    return out


def insert(conn, doctype: str, name: str, **fields) -> None:
    values = row(doctype, name, **fields)
    cols = ", ".join(f"`{c}`" for c in values)
    cur = conn.cursor()
    cur.execute(f"INSERT INTO `tab{doctype}` ({cols}) VALUES ({', '.join(['%s'] * len(values))})",
                list(values.values()))
    cur.close()


def insert_rows(conn, rows: dict[str, list[dict]]) -> None:
    """Insert generated rows (doctype -> rows with the same columns) with executemany, and commit."""
    cur = conn.cursor()
    cur.max_stmt_length = 1 << 20
    for doctype, table_rows in rows.items():
        if not table_rows:
            continue
        cols = list(table_rows[0])
        sql = (f"INSERT INTO `tab{doctype}` ({', '.join(f'`{c}`' for c in cols)}) "
               f"VALUES ({', '.join(['%s'] * len(cols))})")
        for start in range(0, len(table_rows), 2000):
            cur.executemany(sql, [[r[c] for c in cols] for r in table_rows[start:start + 2000]])
    cur.close()
    conn.commit()


def generate_tree(*, plans: int, subjects: int, subjects_per_plan: int, tracks: int = 2, units: int = 2,
                  topics: int = 2, lessons: int = 3, stages: int = 2, seed: int = 1,
                  odd_names: bool = True) -> dict[str, list[dict]]:
    """A random content tree: `subjects` subjects shared among `plans` plans (each lists `subjects_per_plan`,
    the first subject is listed by every plan), each subject with `tracks` tracks of `units` units of `topics`
    topics of `lessons` lessons of `stages` stages; plus orphans (a lesson under a missing topic, a track under
    a missing subject) and, with `odd_names`, names with spaces, Unicode and punctuation at every level."""
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = defaultdict(list)
    odd = itertools.cycle(ODD_NAMES)

    def name(prefix: str, n: int) -> str:
        if odd_names and n % 7 == 3:
            return f"{prefix}{n} {next(odd)}"[:140]
        return f"{prefix}-{n:06d}"

    subject_names = [name("S", i) for i in range(subjects)]
    for s in subject_names:
        rows["Memora Subject"].append(row("Memora Subject", s))
    counter = 0
    for s in subject_names:
        for _ in range(tracks):
            counter += 1
            t = name("T", counter)
            rows["Memora Track"].append(row("Memora Track", t, parent_subject=s))
            for _ in range(units):
                counter += 1
                u = name("U", counter)
                rows["Memora Unit"].append(row("Memora Unit", u, parent_track=t))
                for _ in range(topics):
                    counter += 1
                    tp = name("TP", counter)
                    rows["Memora Topic"].append(row("Memora Topic", tp, parent_unit=u))
                    for _ in range(lessons):
                        counter += 1
                        lesson = name("L", counter)
                        rows["Memora Lesson"].append(row("Memora Lesson", lesson, parent_topic=tp))
                        for k in range(stages):
                            counter += 1
                            rows["Memora Lesson Stage"].append(
                                row("Memora Lesson Stage", f"ST-{counter:07d}", parent=lesson, idx=k + 1))
    # orphans: below nothing a plan lists
    rows["Memora Lesson"].append(row("Memora Lesson", "orphan lesson", parent_topic="missing topic"))
    rows["Memora Track"].append(row("Memora Track", "orphan track", parent_subject="missing subject"))
    counter = 0
    for p in range(plans):
        plan = name("PLAN", p)
        rows[PLAN].append(row(PLAN, plan))
        listed = [subject_names[0]] + rng.sample(subject_names[1:], min(subjects_per_plan - 1, subjects - 1))
        for idx, s in enumerate(listed, start=1):
            counter += 1
            rows[PLAN_SUBJECT].append(row(PLAN_SUBJECT, f"PS-{counter:07d}", parent=plan, subject=s, idx=idx))
        counter += 1
        rows[PLAN_OVERRIDE].append(row(PLAN_OVERRIDE, f"PO-{counter:07d}", parent=plan, idx=1,
                                       target_doctype="Memora Lesson",
                                       target_name=rng.choice(rows["Memora Lesson"])["name"], action="Hide"))
    return dict(rows)


def expected_plans(rows: dict[str, list[dict]]) -> dict[tuple[str, str], set[str]]:
    """An independent oracle: walk each row up the tree in Python, then to the plans listing its subject."""
    by_doctype = {dt: {r["name"]: r for r in rows.get(dt, [])} for dt in LEVELS}
    plans_of_subject: dict[str, set[str]] = defaultdict(set)
    for r in rows.get(PLAN_SUBJECT, []):
        plans_of_subject[r["subject"]].add(r["parent"])

    def subject_of(doctype: str, name: str) -> str | None:
        while doctype != "Memora Subject":
            r = by_doctype[doctype].get(name)
            if r is None:
                return None
            doctype, name = ABOVE[doctype], r[LINK[doctype]]
        return name

    out = {}
    for doctype in LEVELS:
        for name in by_doctype[doctype]:
            subject = subject_of(doctype, name)
            out[(doctype, name)] = set(plans_of_subject.get(subject, ())) if subject else set()
    for table in (PLAN_SUBJECT, PLAN_OVERRIDE):
        for r in rows.get(table, []):
            out[(table, r["name"])] = {r["parent"]}
    for r in rows.get(PLAN, []):
        out[(PLAN, r["name"])] = {r["name"]}
    return out
