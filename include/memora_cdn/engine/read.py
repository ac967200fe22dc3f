"""Read: load one plan's whole content tree from the Frappe database.

A plan is read with a fixed number of queries (`PLAN_QUERIES`), whatever its size: each level of
the tree is selected in one statement through the plan's subject list, never one query per node.
Every column is named, so extra Frappe columns and column order do not matter. Every statement is
parameterised; the only value that reaches SQL is the plan name, as a parameter.

The reader does not judge the content: visibility, overrides and access are `resolve`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

PLAN_DOCTYPE = "Memora Academic Plan"
CONTENT_DOCTYPES = ("Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson")

_NODE_COLUMNS = ("name", "title", "description", "image", "is_published", "is_free_preview", "sort_order")

# Each level selects its parent link too, and the columns only that level has.
SUBJECT_COLUMNS = _NODE_COLUMNS + ("color_code", "is_public", "required_item")
TRACK_COLUMNS = _NODE_COLUMNS + ("parent_subject", "is_sold_separately", "parent_item_required", "required_item")
UNIT_COLUMNS = _NODE_COLUMNS + ("parent_track", "badge_image")
TOPIC_COLUMNS = _NODE_COLUMNS + ("parent_unit",)
LESSON_COLUMNS = _NODE_COLUMNS + ("parent_topic",)
STAGE_COLUMNS = ("parent", "idx", "name", "title", "type", "config")
PLAN_SUBJECT_COLUMNS = ("name", "idx", "subject", "sort_order")
OVERRIDE_COLUMNS = ("name", "idx", "target_doctype", "target_name", "action", "override_value")


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

QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "plan": (
        "SELECT p.`name`, p.`title`, se.`title`, st.`title`, gr.`title` "
        "FROM `tabMemora Academic Plan` p "
        "LEFT JOIN `tabMemora Season` se ON se.`name` = p.`season` "
        "LEFT JOIN `tabMemora Stream` st ON st.`name` = p.`stream` "
        "LEFT JOIN `tabMemora Grade` gr ON gr.`name` = p.`grade` "
        "WHERE p.`name` = %s",
        ("name", "title", "season", "stream", "grade"),
    ),
    "plan_subjects": (
        f"SELECT {_cols('ps', PLAN_SUBJECT_COLUMNS)} FROM `tabMemora Plan Subject` ps "
        "WHERE ps.`parent` = %s AND ps.`parenttype` = 'Memora Academic Plan' ORDER BY ps.`idx`",
        PLAN_SUBJECT_COLUMNS,
    ),
    "overrides": (
        f"SELECT {_cols('o', OVERRIDE_COLUMNS)} FROM `tabMemora Plan Override` o "
        "WHERE o.`parent` = %s AND o.`parenttype` = 'Memora Academic Plan' ORDER BY o.`idx`",
        OVERRIDE_COLUMNS,
    ),
    "subjects": (
        f"SELECT {_cols('s', SUBJECT_COLUMNS)} FROM `tabMemora Subject` s WHERE s.`name` IN ({_PLAN_SUBJECTS})",
        SUBJECT_COLUMNS,
    ),
    "tracks": (
        f"SELECT {_cols('t2', TRACK_COLUMNS)} {_FROM_SUBJECTS}",
        TRACK_COLUMNS,
    ),
    "units": (
        f"SELECT {_cols('u2', UNIT_COLUMNS)} {_FROM_TRACKS}",
        UNIT_COLUMNS,
    ),
    "topics": (
        f"SELECT {_cols('p2', TOPIC_COLUMNS)} {_FROM_UNITS}",
        TOPIC_COLUMNS,
    ),
    "lessons": (
        f"SELECT {_cols('l2', LESSON_COLUMNS)} {_FROM_TOPICS}",
        LESSON_COLUMNS,
    ),
    "stages": (
        f"SELECT {_cols('sg', STAGE_COLUMNS)} {_FROM_TOPICS}"
        "STRAIGHT_JOIN `tabMemora Lesson Stage` sg ON sg.`parent` = l2.`name` AND sg.`parenttype` = 'Memora Lesson' "
        "ORDER BY sg.`parent`, sg.`idx`",
        STAGE_COLUMNS,
    ),
}
PLAN_QUERIES = len(QUERIES)


@dataclass
class PlanContent:
    """Raw rows of one plan, as the database holds them. `plan` is None when the plan does not exist."""

    plan_id: str
    plan: dict[str, Any] | None
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


def read_plan(conn, plan_id: str) -> PlanContent:
    """Load the plan and everything under its subjects, in `PLAN_QUERIES` statements."""
    cursor = conn.cursor()
    try:
        plan_rows = _fetch(cursor, *_with(QUERIES["plan"], plan_id))
        content = PlanContent(plan_id=plan_id, plan=plan_rows[0] if plan_rows else None, queries=1)
        if content.plan is None:
            return content
        for part in ("plan_subjects", "overrides", "subjects", "tracks", "units", "topics", "lessons", "stages"):
            setattr(content, part, _fetch(cursor, *_with(QUERIES[part], plan_id)))
            content.queries += 1
        return content
    finally:
        cursor.close()


def _with(query: tuple[str, tuple[str, ...]], plan_id: str) -> tuple[str, tuple, tuple[str, ...]]:
    sql, columns = query
    return sql, (plan_id,) * sql.count("%s"), columns


def list_plans(conn) -> list[str]:
    """Every plan name in the database, sorted."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT `name` FROM `tabMemora Academic Plan` ORDER BY `name`")
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()


def existing_plans(conn, names: Iterable[str]) -> set[str]:
    """The subset of `names` that are plans, in one parameterised query."""
    names = list(dict.fromkeys(names))
    if not names:
        return set()
    cursor = conn.cursor()
    try:
        placeholders = ", ".join(["%s"] * len(names))
        cursor.execute(f"SELECT `name` FROM `tabMemora Academic Plan` WHERE `name` IN ({placeholders})", names)
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()


# (child doctype table, link column, parent table) for the orphan scan
_PARENT_LINKS = (
    ("Memora Track", "parent_subject", "Memora Subject"),
    ("Memora Unit", "parent_track", "Memora Track"),
    ("Memora Topic", "parent_unit", "Memora Unit"),
    ("Memora Lesson", "parent_topic", "Memora Topic"),
    ("Memora Lesson Stage", "parent", "Memora Lesson"),
)


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
