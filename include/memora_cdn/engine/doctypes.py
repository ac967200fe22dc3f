"""The Frappe DocTypes the exporter reads: their tables, parent links and the columns read from each.

The Memora app's schema evolves (SPEC §2): 008 dropped `Memora Subject.is_public` and added `is_linear`,
`bit_index`, the stage `weight`/`target_time`/`is_skippable` and `Memora Academic Plan.is_published`.
Frappe adds columns on migrate and never drops them, so a database may hold any mix. The exporter reads
the columns that exist: `probe` asks `information_schema` once, and `Schema` says which of the
`OPTIONAL` columns are there. A missing table or a missing column that is not optional is an error
that names it (the database is not a Memora app this exporter knows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

PLAN = "Memora Academic Plan"
PLAN_SUBJECT = "Memora Plan Subject"
PLAN_OVERRIDE = "Memora Plan Override"
SEASON, STREAM, GRADE = "Memora Season", "Memora Stream", "Memora Grade"
SUBJECT, TRACK, UNIT, TOPIC, LESSON = "Memora Subject", "Memora Track", "Memora Unit", "Memora Topic", "Memora Lesson"
STAGE = "Memora Lesson Stage"
CONTENT_DOCTYPES = (SUBJECT, TRACK, UNIT, TOPIC, LESSON)

# (child doctype, link column, parent doctype): each content level names its parent in one column.
PARENT_LINKS = (
    (TRACK, "parent_subject", SUBJECT),
    (UNIT, "parent_track", TRACK),
    (TOPIC, "parent_unit", UNIT),
    (LESSON, "parent_topic", TOPIC),
    (STAGE, "parent", LESSON),
)

_NODE = ("name", "title", "description", "image", "is_published", "is_free_preview", "sort_order")

# The columns the exporter reads, per DocType (the plan query also joins Season/Stream/Grade titles).
COLUMNS: dict[str, tuple[str, ...]] = {
    PLAN: ("name", "title", "season", "stream", "grade", "is_published"),
    PLAN_SUBJECT: ("name", "idx", "subject", "sort_order"),
    PLAN_OVERRIDE: ("name", "idx", "target_doctype", "target_name", "action", "override_value"),
    SEASON: ("name", "title"),
    STREAM: ("name", "title"),
    GRADE: ("name", "title"),
    SUBJECT: _NODE + ("color_code", "is_public", "required_item", "is_linear"),
    TRACK: _NODE + ("parent_subject", "is_sold_separately", "parent_item_required", "required_item", "is_linear"),
    UNIT: _NODE + ("parent_track", "badge_image", "is_linear"),
    TOPIC: _NODE + ("parent_unit", "is_linear"),
    LESSON: _NODE + ("parent_topic", "bit_index"),
    STAGE: ("parent", "idx", "name", "title", "type", "config", "weight", "target_time", "is_skippable"),
}

# Columns that only some versions of the app have (002: is_public; 008: the rest).
OPTIONAL: dict[str, frozenset[str]] = {
    PLAN: frozenset({"is_published"}),
    SUBJECT: frozenset({"is_public", "is_linear"}),
    TRACK: frozenset({"is_linear"}),
    UNIT: frozenset({"is_linear"}),
    TOPIC: frozenset({"is_linear"}),
    LESSON: frozenset({"bit_index"}),
    STAGE: frozenset({"weight", "target_time", "is_skippable"}),
}

TABLES = tuple(f"tab{doctype}" for doctype in COLUMNS)
_DOCTYPE_OF_TABLE = {f"tab{doctype}": doctype for doctype in COLUMNS}

PROBE_SQL = (
    "SELECT `TABLE_NAME`, `COLUMN_NAME` FROM information_schema.`COLUMNS` "
    "WHERE `TABLE_SCHEMA` = DATABASE() AND `TABLE_NAME` IN (" + ", ".join(["%s"] * len(TABLES)) + ")"
)


class SchemaMismatch(RuntimeError):
    """The database lacks a table or column the exporter needs: not a Memora app schema it knows."""


@dataclass(frozen=True)
class Schema:
    """Which optional columns the database has (every other read column is there: `probe` checks)."""

    present: frozenset[tuple[str, str]]  # (doctype, column) of the OPTIONAL columns that exist

    @classmethod
    def of(cls, columns: dict[str, Iterable[str]]) -> "Schema":
        """From doctype -> column names (as `information_schema` lists them); checks the required ones."""
        missing = [f"`tab{doctype}`" for doctype in COLUMNS if doctype not in columns]
        if missing:
            raise SchemaMismatch(f"the Frappe database has no table {', '.join(missing)}")
        lacking = [f"`tab{doctype}`.`{c}`" for doctype, wanted in COLUMNS.items() for c in wanted
                   if c not in OPTIONAL.get(doctype, ()) and c not in set(columns[doctype])]
        if lacking:
            raise SchemaMismatch(f"the Frappe database lacks column(s) {', '.join(lacking)}")
        return cls(frozenset((doctype, c) for doctype, optional in OPTIONAL.items()
                             for c in optional if c in set(columns[doctype])))

    def has(self, doctype: str, column: str) -> bool:
        return column not in OPTIONAL.get(doctype, ()) or (doctype, column) in self.present

    def columns(self, doctype: str) -> tuple[str, ...]:
        """The columns to read from `doctype` in this database, in `COLUMNS` order."""
        return tuple(c for c in COLUMNS[doctype] if self.has(doctype, c))


def probe(conn) -> Schema:
    """Look up the exporter's tables' columns in one `information_schema` query."""
    cursor = conn.cursor()
    try:
        cursor.execute(PROBE_SQL, TABLES)
        found: dict[str, set[str]] = {}
        for table, column in cursor.fetchall():
            table = table.decode() if isinstance(table, bytes) else table
            column = column.decode() if isinstance(column, bytes) else column
            found.setdefault(_DOCTYPE_OF_TABLE[table], set()).add(column)
    finally:
        cursor.close()
    return Schema.of(found)
