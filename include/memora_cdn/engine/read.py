"""Read: load one plan's whole content tree from the Frappe database.

A plan is read with a fixed number of queries (`PLAN_QUERIES`), whatever its size: each level of
the tree is selected in one statement through the plan's subject list, never one query per node.
Every column is named, so extra Frappe columns and column order do not matter. Every statement is
parameterised; the only value that reaches SQL is the plan name, as a parameter.

The reader does not judge the content: visibility, overrides and access are `resolve`'s job.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from memora_cdn.engine import doctypes as dt
from memora_cdn.engine.doctypes import Schema, probe

log = logging.getLogger(__name__)

PLAN_DOCTYPE = dt.PLAN
CONTENT_DOCTYPES = dt.CONTENT_DOCTYPES


def _cols(alias: str, columns: Iterable[str]) -> str:
    return ", ".join(f"{alias}.`{c}`" for c in columns)


# The plan's subjects (each once, even when listed twice), then each level joined downwards from them.
# STRAIGHT_JOIN keeps that order: left to itself, MariaDB may scan a whole level (all stages of all plans)
# and probe upwards, which costs seconds per plan on a database with many plans.
_PLAN_SUBJECTS = (
    "SELECT DISTINCT ps.`subject` FROM `tabMemora Plan Subject` ps "
    "WHERE ps.`parent` = %s AND ps.`parenttype` = 'Memora Academic Plan'"
)
_FROM_SUBJECTS = f"FROM ({_PLAN_SUBJECTS}) pss STRAIGHT_JOIN `tabMemora Track` t2 ON t2.`parent_subject` = pss.`subject` "
_FROM_TRACKS = _FROM_SUBJECTS + "STRAIGHT_JOIN `tabMemora Unit` u2 ON u2.`parent_track` = t2.`name` "
_FROM_UNITS = _FROM_TRACKS + "STRAIGHT_JOIN `tabMemora Topic` p2 ON p2.`parent_unit` = u2.`name` "
_FROM_TOPICS = _FROM_UNITS + "STRAIGHT_JOIN `tabMemora Lesson` l2 ON l2.`parent_topic` = p2.`name` "
_PLAN_JOINS = (
    "FROM `tabMemora Academic Plan` p "
    "LEFT JOIN `tabMemora Season` se ON se.`name` = p.`season` "
    "LEFT JOIN `tabMemora Stream` st ON st.`name` = p.`stream` "
    "LEFT JOIN `tabMemora Grade` gr ON gr.`name` = p.`grade` "
    "WHERE p.`name` = %s"
)

# The parts of a plan, in the order `read_plan` reads them after the plan row.
PARTS = ("plan_subjects", "overrides", "subjects", "tracks", "units", "topics", "lessons", "stages")
# Statements per plan: the schema probe, the plan row, then one per part, whatever the plan's size.
PLAN_QUERIES = 2 + len(PARTS)


@functools.lru_cache(maxsize=8)
def plan_queries(schema: Schema) -> dict[str, tuple[str, tuple[str, ...]]]:
    """(SQL, column names) per part of a plan, for the columns this database has.

    Every column name comes from `doctypes.COLUMNS` (a module constant); `schema` only leaves out the
    optional ones the database lacks. The only value that reaches SQL is the plan name, as a parameter."""
    c = schema.columns
    plan_extra = tuple(col for col in ("is_published",) if schema.has(dt.PLAN, col))
    return {
        "plan": (
            f"SELECT p.`name`, p.`title`, se.`title`, st.`title`, gr.`title`{''.join(f', p.`{x}`' for x in plan_extra)} "
            + _PLAN_JOINS,
            ("name", "title", "season", "stream", "grade") + plan_extra,
        ),
        "plan_subjects": (
            f"SELECT {_cols('ps', c(dt.PLAN_SUBJECT))} FROM `tabMemora Plan Subject` ps "
            "WHERE ps.`parent` = %s AND ps.`parenttype` = 'Memora Academic Plan' ORDER BY ps.`idx`",
            c(dt.PLAN_SUBJECT),
        ),
        "overrides": (
            f"SELECT {_cols('o', c(dt.PLAN_OVERRIDE))} FROM `tabMemora Plan Override` o "
            "WHERE o.`parent` = %s AND o.`parenttype` = 'Memora Academic Plan' ORDER BY o.`idx`",
            c(dt.PLAN_OVERRIDE),
        ),
        "subjects": (
            f"SELECT {_cols('s', c(dt.SUBJECT))} FROM `tabMemora Subject` s WHERE s.`name` IN ({_PLAN_SUBJECTS})",
            c(dt.SUBJECT),
        ),
        "tracks": (f"SELECT {_cols('t2', c(dt.TRACK))} {_FROM_SUBJECTS}", c(dt.TRACK)),
        "units": (f"SELECT {_cols('u2', c(dt.UNIT))} {_FROM_TRACKS}", c(dt.UNIT)),
        "topics": (f"SELECT {_cols('p2', c(dt.TOPIC))} {_FROM_UNITS}", c(dt.TOPIC)),
        "lessons": (f"SELECT {_cols('l2', c(dt.LESSON))} {_FROM_TOPICS}", c(dt.LESSON)),
        "stages": (
            f"SELECT {_cols('sg', c(dt.STAGE))} {_FROM_TOPICS}"
            # FORCE INDEX: MariaDB 10.11 was seen to join the stages by a full scan of the table with a block
            # nested loop (3.5 s per plan instead of 0.03 s on 74,000 stages, `make bench` P4), depending on its
            # statistics of the moment. `parent` is the index Frappe creates on every child table.
            "STRAIGHT_JOIN `tabMemora Lesson Stage` sg FORCE INDEX (`parent`) "
            "ON sg.`parent` = l2.`name` AND sg.`parenttype` = 'Memora Lesson' "
            "ORDER BY sg.`parent`, sg.`idx`",
            c(dt.STAGE),
        ),
    }


@dataclass
class PlanContent:
    """Raw rows of one plan, as the database holds them. `plan` is None when the plan does not exist or is
    unpublished (`is_published = 0`, where the column exists): either way nothing of it is published."""

    plan_id: str
    plan: dict[str, Any] | None
    unpublished: bool = False
    plan_subjects: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    subjects: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    units: list[dict[str, Any]] = field(default_factory=list)
    topics: list[dict[str, Any]] = field(default_factory=list)
    lessons: list[dict[str, Any]] = field(default_factory=list)
    stages: list[dict[str, Any]] = field(default_factory=list)
    queries: int = 0

    @property
    def exists(self) -> bool:
        return self.plan is not None


def _fetch(cursor, sql: str, params: tuple, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    cursor.execute(sql, params)
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def read_plan(conn, plan_id: str, schema: Schema | None = None) -> PlanContent:
    """Load the plan and everything under its subjects, in `PLAN_QUERIES` statements.

    The columns are looked up first (`doctypes.probe`), so the read fits the app version the database
    holds; pass `schema` to reuse a probe (the count then is one less)."""
    queries = 0
    if schema is None:
        schema = probe(conn)
        queries += 1
    parts = plan_queries(schema)
    cursor = conn.cursor()
    try:
        plan_rows = _fetch(cursor, *_with(parts["plan"], plan_id))
        queries += 1
        plan = plan_rows[0] if plan_rows else None
        unpublished = plan is not None and "is_published" in plan and not plan.pop("is_published")
        content = PlanContent(plan_id=plan_id, plan=None if unpublished else plan, unpublished=unpublished,
                              queries=queries)
        if content.plan is None:
            return content
        for part in PARTS:
            setattr(content, part, _fetch(cursor, *_with(parts[part], plan_id)))
            content.queries += 1
        return content
    finally:
        cursor.close()


def _with(query: tuple[str, tuple[str, ...]], plan_id: str) -> tuple[str, tuple, tuple[str, ...]]:
    sql, columns = query
    return sql, (plan_id,) * sql.count("%s"), columns


# Published plans only, where the app has `is_published` (008): an unpublished plan leaves the CDN like a
# deleted one.
_PLANS = "SELECT `name` FROM `tabMemora Academic Plan`"
_PUBLISHED = " WHERE `is_published` = 1"


def list_plans(conn, schema: Schema | None = None) -> list[str]:
    """Every published plan name in the database, sorted (unpublished plans are left out)."""
    schema = schema or probe(conn)
    sql = _PLANS + (_PUBLISHED if schema.has(dt.PLAN, "is_published") else "") + " ORDER BY `name`"
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()


def existing_plans(conn, names: Iterable[str], schema: Schema | None = None) -> set[str]:
    """The subset of `names` that are published plans, in one parameterised query (after the column probe)."""
    names = list(dict.fromkeys(names))
    if not names:
        return set()
    schema = schema or probe(conn)
    placeholders = ", ".join(["%s"] * len(names))
    published = " AND `is_published` = 1" if schema.has(dt.PLAN, "is_published") else ""
    cursor = conn.cursor()
    try:
        cursor.execute(f"{_PLANS} WHERE `name` IN ({placeholders}){published}", names)
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


_PARENT_LINKS = dt.PARENT_LINKS  # (child doctype, link column, parent doctype) for the orphan scan


def find_orphans(conn) -> list[dict[str, str]]:
    """Content rows whose parent row is missing, across all plans (one query per level).

    An orphan belongs to no plan, so no plan build can see it; the full rebuild reports these.
    """
    found: list[dict[str, str]] = []
    cursor = conn.cursor()
    try:
        for doctype, link, parent_doctype in _PARENT_LINKS:
            cursor.execute(
                f"SELECT c.`name`, c.`{link}` FROM `tab{doctype}` c "
                f"LEFT JOIN `tab{parent_doctype}` p ON p.`name` = c.`{link}` WHERE p.`name` IS NULL"
            )
            found += [
                {"doctype": doctype, "name": name, "reason": f"{link} {parent!r} does not exist"}
                for name, parent in cursor.fetchall()
            ]
    finally:
        cursor.close()
    return found
