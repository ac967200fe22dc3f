"""Which plans a change affects (SPEC §7), in at most one SELECT on the connection it is given.

A change to a Lesson Stage, Lesson, Topic, Unit, Track or Subject affects every plan that lists the subject
it sits under (`tabMemora Plan Subject`); a change to a plan's own child rows, or to the plan, affects that
plan. Names are whatever Frappe allows (spaces, Unicode, punctuation, up to 140 characters): they only ever
reach SQL as parameters, and every plan name the database returns is passed on unfiltered (the exporter
encodes names for its bucket keys).

Index use on the real schema (see docs/frappe-indexes.md): the chain is walked up by primary key
(``n1.name = n0.parent_topic`` ...), and the last step, subject -> plans, looks up
``tabMemora Plan Subject.subject``, which has no index unless the app sets ``search_index`` on it.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

log = logging.getLogger("memora_cdn_producer")

PLAN = "Memora Academic Plan"
PLAN_SUBJECT = "Memora Plan Subject"
PLAN_OVERRIDE = "Memora Plan Override"
SUBJECT = "Memora Subject"
TRACK = "Memora Track"
UNIT = "Memora Unit"
TOPIC = "Memora Topic"
LESSON = "Memora Lesson"
STAGE = "Memora Lesson Stage"

#: doctype -> (its link to the level above, the doctype above); Subject -> plans via Plan Subject.
PARENT_LINKS: dict[str, tuple[str, str]] = {
    STAGE: ("parent", LESSON),
    LESSON: ("parent_topic", TOPIC),
    TOPIC: ("parent_unit", UNIT),
    UNIT: ("parent_track", TRACK),
    TRACK: ("parent_subject", SUBJECT),
}
CONTENT_DOCTYPES = (SUBJECT, TRACK, UNIT, TOPIC, LESSON, STAGE)
PLAN_CHILD_DOCTYPES = (PLAN_SUBJECT, PLAN_OVERRIDE)
#: doctypes `affected_plans` knows; anything else affects no plan
DOCTYPES = CONTENT_DOCTYPES + PLAN_CHILD_DOCTYPES + (PLAN,)


def parent_link(doctype: str) -> str | None:
    """The field of `doctype` that names the level above (None for a Subject, a Plan or an unknown doctype)."""
    if doctype in PLAN_CHILD_DOCTYPES:
        return "parent"
    return PARENT_LINKS.get(doctype, (None, None))[0]


def _plans_above(doctype: str, count: int) -> str:
    """One SELECT of the plans listing the subject above `count` rows of `doctype` (names as %s).

    Joins up the chain on primary keys; no subject row is needed (a plan lists a subject by name), so a
    subject that is being deleted or was just renamed still resolves to its plans.
    """
    placeholders = ", ".join(["%s"] * count)
    if doctype == SUBJECT:
        return (
            "SELECT ps.`parent` FROM `tabMemora Plan Subject` ps "
            f"WHERE ps.`parenttype` = 'Memora Academic Plan' AND ps.`subject` IN ({placeholders})"
        )
    joins, alias, level, current = [], "n0", 0, doctype
    while True:
        link, above = PARENT_LINKS[current]
        if above == SUBJECT:
            subject = f"{alias}.`{link}`"
            break
        level += 1
        joins.append(f"JOIN `tab{above}` n{level} ON n{level}.`name` = {alias}.`{link}`")
        alias, current = f"n{level}", above
    return (
        f"SELECT ps.`parent` FROM `tab{doctype}` n0 {' '.join(joins)} "
        f"JOIN `tabMemora Plan Subject` ps ON ps.`subject` = {subject} "
        "AND ps.`parenttype` = 'Memora Academic Plan' "
        f"WHERE n0.`name` IN ({placeholders})"
    )


def plans_query(doctype: str, count: int) -> str:
    """The statement `affected_plans` runs for `count` names of a content doctype (for EXPLAIN and the docs)."""
    if doctype not in CONTENT_DOCTYPES:
        raise ValueError(f"{doctype!r} is not a content doctype ({', '.join(CONTENT_DOCTYPES)})")
    return _plans_above(doctype, count)


def names(values: Any) -> list[str]:
    """A link value (or several) as a list of names; None and "" (no link) are dropped, nothing else is."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = [values]
    out = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if value is None or value == "":
            continue
        out.append(value if isinstance(value, str) else str(value))
    return list(dict.fromkeys(out))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _query(db, sql: str, params: list[str]) -> set[str]:
    cursor = db.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return {_text(row[0]) for row in rows if row and row[0] is not None and row[0] != ""}


def affected_plans(db, doctype: str, name: Any, parent: Any = None,
                   old_parent_links: Mapping[str, Any] | None = None) -> set[str]:
    """Plans whose files a change of (doctype, name) affects, in at most one query on `db` (a DB-API connection).

    * Content (Lesson Stage, Lesson, Topic, Unit, Track, Subject): every plan listing the subject above the
      row, through one statement that joins up the chain. `name` may be several names (a rename passes the
      new and the old one). `parent` is the row's own link to the level above (a stage's lesson, a lesson's
      ``parent_topic``, ..., a track's ``parent_subject``; ignored for a subject), used when the row is gone
      (after_delete) and added to what the row says when it is not. `old_parent_links` holds the link's
      value before the save (``{"parent_topic": "OLD"}``; a stage uses ``"parent"``): a moved node affects
      its old chain's plans too. Other keys are ignored.
    * Memora Plan Subject / Memora Plan Override rows: their plan, the `parent` argument (no query) or else
      the row's ``parent`` column.
    * Memora Academic Plan: the plan itself (all of `name`), also when deleted or renamed; no query.
    * Any other doctype: no plan, no query.
    """
    if doctype == PLAN:
        return set(names(name))
    if doctype in PLAN_CHILD_DOCTYPES:
        plans = set(names(parent))
        wanted = names(name)
        if plans or not wanted:
            return plans
        table = "`tabMemora Plan Subject`" if doctype == PLAN_SUBJECT else "`tabMemora Plan Override`"
        placeholders = ", ".join(["%s"] * len(wanted))
        return _query(db, f"SELECT `parent` FROM {table} WHERE `name` IN ({placeholders})", wanted)
    if doctype not in CONTENT_DOCTYPES:
        return set()

    # starting points: (doctype, names) whose chains are unioned in one statement
    anchors: dict[str, list[str]] = {doctype: names(name)}
    if doctype in PARENT_LINKS:
        link, above = PARENT_LINKS[doctype]
        linked = names(parent)
        for key, value in (old_parent_links or {}).items():
            if key == link:
                linked += names(value)
            else:
                log.debug("ignoring old link %r of %s %r (its parent link is %r)", key, doctype, name, link)
        anchors[above] = linked
    parts, params = [], []
    for anchor_doctype, anchor_names in anchors.items():
        anchor_names = list(dict.fromkeys(anchor_names))
        if anchor_names:
            parts.append(_plans_above(anchor_doctype, len(anchor_names)))
            params += anchor_names
    if not parts:
        return set()
    return _query(db, " UNION ".join(parts), params)
