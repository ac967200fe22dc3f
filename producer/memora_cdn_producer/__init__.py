"""The Frappe side of change tracking (SPEC §7): which plans an edit affects, and telling the exporter.

The Frappe app calls this module from its document events. It runs inside the Frappe process, so it
imports nothing from Airflow: only the standard library, `redis` (which every Frappe bench has) and
`memora_cdn.engine.keys` / `memora_cdn.tracking.registry` / `memora_cdn.tracking.sync_log`, which are standard-library only too. `frappe`
itself is imported inside `frappe_doc_event`, so the module (and its tests) load without Frappe.

Wiring, in the Frappe app's ``hooks.py`` (merge into an existing ``doc_events``; the dotted path assumes
this bundle's ``include`` package is importable in the bench's environment, adjust it if the module is
vendored into the app)::

    # memora/hooks.py
    _memora_cdn_hook = "memora_cdn_producer.frappe_doc_event"
    _memora_cdn_events = {
        "after_insert": _memora_cdn_hook,
        "on_update": _memora_cdn_hook,
        "on_trash": _memora_cdn_hook,
        "after_delete": _memora_cdn_hook,
        "on_restore": _memora_cdn_hook,
    }

    doc_events = {
        "Memora Subject": _memora_cdn_events,
        "Memora Track": _memora_cdn_events,
        "Memora Unit": _memora_cdn_events,
        "Memora Topic": _memora_cdn_events,
        "Memora Lesson": _memora_cdn_events,
        "Memora Academic Plan": _memora_cdn_events,
    }

Frappe ignores hooks.py names that start with ``_``. Why these events:

* ``Memora Lesson Stage`` is a child table: its rows are saved with their lesson and fire no events of
  their own, so the lesson's ``on_update`` covers every stage change. ``Memora Plan Subject`` and
  ``Memora Plan Override`` are likewise covered by their plan's ``on_update`` (a subject removed from
  a plan marks that plan, whose rebuild deletes the subject's files).
* ``on_update`` also fires on insert; ``after_insert`` is there too so a new document is marked even
  when an app skips ``on_update``. Frappe's "restore" re-inserts the document (``after_insert`` and
  ``on_update`` fire); ``on_restore`` is listed for versions and apps that fire it. Marking a plan twice
  is harmless: the pending set holds it once.
* ``on_trash`` runs before the row is deleted (the chain is read from the row), ``after_delete`` after
  it (the chain is read from the document's own parent link, passed as ``parent``).
* A document moved to another parent (``parent_topic`` and the like changed) marks the plans of both
  the old chain (from ``doc.get_doc_before_save()``) and the new one.

The plans are resolved inside the editor's transaction, on Frappe's own connection (so the query sees
the row being saved), and added to Redis only after that transaction commits
(``frappe.db.after_commit``): an exporter that took the plan before the commit would build the old
content and drop the change. A rolled-back save marks nothing.

Redis: the exporter's Redis, ``memora_cdn_redis_url`` in the site config, else ``redis_cache``. The
client is a plain ``redis.Redis`` (``frappe.cache()`` prefixes every key with the site, so it cannot
write ``cdn_export:pending_plans``). When Redis is unreachable, one ``tabCDN Sync Log`` row per plan
(``Queued``, ``is_fallback=1``) is written instead; the next sync run moves those into Redis.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterable, Mapping

from redis import exceptions as redis_exceptions

from memora_cdn.engine.keys import is_safe_name
from memora_cdn.tracking.registry import PENDING
from memora_cdn.tracking.sync_log import write_fallback

log = logging.getLogger(__name__)

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

#: Redis errors that send the plans to the sync log instead (connection refused, timeouts, auth,
#: a read-only replica, ...): nothing Redis does may make an editor's save fail.
REDIS_ERRORS = (redis_exceptions.RedisError, OSError)

REDIS_URL_KEY = "memora_cdn_redis_url"
REDIS_SOCKET_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 1.0
REDIS_RETRIES = 1  # redis-py's default (10 retries with backoff) would hold an editor's save for seconds


# -- resolving ---------------------------------------------------------------------------------


def _plans_above(doctype: str, count: int) -> str:
    """One SELECT of the plans listing the subject above `count` rows of `doctype` (names as %s).

    Joins up the chain on the indexed link columns; no subject row is needed (a plan lists a subject
    by name), so a subject that is being deleted still resolves to its plans.
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


def _names(values: Any) -> list[str]:
    """A link value (or several) as a list of non-empty names."""
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
    return out


def _query(db, sql: str, params: list[str]) -> set[str]:
    cursor = db.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return {_text(row[0]) for row in rows if row and row[0] is not None and row[0] != ""}


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def affected_plans(db, doctype: str, name: str, parent: str | None = None,
                   old_parent_links: Mapping[str, Any] | None = None) -> set[str]:
    """Plans whose files a change of (doctype, name) affects, in at most one query.

    * Content (Lesson Stage, Lesson, Topic, Unit, Track, Subject): every plan listing the subject
      above the row (`tabMemora Plan Subject.parent`), through one statement that joins up the chain.
      `parent` is the row's own link to the level above (a stage's lesson, a lesson's
      ``parent_topic``, ..., a track's ``parent_subject``; ignored for a subject), used when the row
      is gone (after_delete) and added to what the row says when it is not.
      `old_parent_links` holds the link's value before the save (``{"parent_topic": "OLD"}``; a stage
      uses ``"parent"``): a moved node affects its old chain's plans too. Other keys are ignored.
    * Memora Plan Subject / Memora Plan Override rows: their plan, the `parent` argument (no query)
      or else the row's ``parent`` column.
    * Memora Academic Plan: the plan itself, also when deleted (its folder must go); no query.
    * Any other doctype: no plan, no query.

    Every name reaches SQL as a parameter, so unsafe names are looked up safely. The result is the
    raw plan names; `mark_changed` keeps only the safe ones.
    """
    if doctype == PLAN:
        return set(_names(name))
    if doctype in PLAN_CHILD_DOCTYPES:
        plans = set(_names(parent))
        if plans or not _names(name):
            return plans
        table = f"`tab{doctype}`"
        return _query(db, f"SELECT `parent` FROM {table} WHERE `name` = %s", _names(name))
    if doctype not in CONTENT_DOCTYPES:
        return set()

    # starting points: (doctype, names) whose chains are unioned in one statement
    anchors: dict[str, list[str]] = {doctype: _names(name)}
    if doctype in PARENT_LINKS:
        link, above = PARENT_LINKS[doctype]
        linked = _names(parent)
        for key, value in (old_parent_links or {}).items():
            if key == link:
                linked += _names(value)
            else:
                log.debug("ignoring old link %r of %s %r (its parent link is %r)", key, doctype, name, link)
        anchors[above] = linked
    parts, params = [], []
    for anchor_doctype, names in anchors.items():
        names = list(dict.fromkeys(names))
        if names:
            parts.append(_plans_above(anchor_doctype, len(names)))
            params += names
    if not parts:
        return set()
    return _query(db, " UNION ".join(parts), params)


# -- marking -----------------------------------------------------------------------------------


def _safe_plans(plans: Iterable[str], doctype: str, name: str) -> list[str]:
    safe = sorted(p for p in plans if is_safe_name(p))
    unsafe = sorted(p for p in plans if not is_safe_name(p))
    if unsafe:
        log.warning(
            "CDN export: not marking plan(s) %s after a change of %s %r: the names cannot be used in "
            "bucket keys (1-140 characters of A-Z a-z 0-9 _ . -, no '..'); rename the plan(s)",
            ", ".join(repr(p) for p in unsafe), doctype, name,
        )
    return safe


def queue_plans(plans: Iterable[str], *, db, redis=None, reason: str = "") -> str:
    """SADD the plans to `cdn_export:pending_plans`, or write one fallback sync-log row per plan.

    Returns "redis", "fallback" or "none" (nothing to queue). Redis errors never escape; a database
    error while writing the fallback rows does (the change would otherwise be lost silently).
    """
    plans = sorted(set(plans))
    if not plans:
        return "none"
    if redis is not None:
        try:
            redis.sadd(PENDING, *plans)
            return "redis"
        except REDIS_ERRORS as exc:
            problem = f"Redis unreachable ({type(exc).__name__}: {exc})"
    else:
        problem = "no Redis client configured"
    log.warning("CDN export: %s; queueing plan(s) %s in the sync log", problem, ", ".join(plans))
    message = f"{problem}; {reason}" if reason else problem
    for plan in plans:
        write_fallback(db, plan, message[:1000])
    return "fallback"


def mark_changed(doctype: str, name: str, *, db, redis=None, parent: str | None = None,
                 old_parent_links: Mapping[str, Any] | None = None) -> set[str]:
    """Resolve the plans a change of (doctype, name) affects and queue them for a rebuild.

    Safe plan names go to the Redis set `cdn_export:pending_plans` in one SADD; when `redis` is None
    or unreachable (any Redis error), one `Queued` / `is_fallback=1` row per plan goes to
    `tabCDN Sync Log` on `db` instead (committed). Unsafe plan names are logged, never queued.
    Returns the plans queued. Never raises because of Redis.
    """
    plans = _safe_plans(affected_plans(db, doctype, name, parent=parent, old_parent_links=old_parent_links),
                        doctype, name)
    queue_plans(plans, db=db, redis=redis, reason=f"change of {doctype} {name!r}")
    return set(plans)


# -- Frappe ------------------------------------------------------------------------------------


class FrappeConnection:
    """The DB-API surface this module uses (`cursor().execute/fetchall/close`, `commit`), over
    `frappe.db.sql`, so queries run on Frappe's connection, inside the request's transaction."""

    def __init__(self, frappe_db) -> None:
        self._db = frappe_db

    def cursor(self) -> "_FrappeCursor":
        return _FrappeCursor(self._db)

    def commit(self) -> None:
        self._db.commit()

    def rollback(self) -> None:
        self._db.rollback()


class _FrappeCursor:
    def __init__(self, frappe_db) -> None:
        self._db = frappe_db
        self._rows: list = []

    def execute(self, sql: str, params=None) -> int:
        self._rows = list(self._db.sql(sql, tuple(params or ())) or ())
        return len(self._rows)

    def fetchall(self) -> list:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self):
        return self._rows.pop(0) if self._rows else None

    def close(self) -> None:
        self._rows = []


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_client(url: str | None):
    """One `redis.Redis` per URL for the process, with short timeouts and one immediate retry, so a
    Redis outage costs an editor about two seconds at most before the fallback row is written.
    None without a URL."""
    if not url:
        return None
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            options = dict(socket_connect_timeout=REDIS_SOCKET_CONNECT_TIMEOUT, socket_timeout=REDIS_SOCKET_TIMEOUT)
            try:
                client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), REDIS_RETRIES), **options)
            except TypeError:  # a redis-py older than 4.1 (no `retry`): it does not retry by default
                client = redis.Redis.from_url(url, **options)
            _clients[url] = client
        return client


def _conf_value(conf, key: str):
    if conf is None:
        return None
    getter = getattr(conf, "get", None)
    value = getter(key) if callable(getter) else None
    return value if value is not None else getattr(conf, key, None)


def frappe_doc_event(doc, method: str | None = None) -> set[str]:
    """The `doc_events` handler (see the module docstring for hooks.py).

    Resolves the affected plans now, on `frappe.db` inside the current transaction, and queues them
    after the commit (`frappe.db.after_commit`; at once where that does not exist). Returns the plans.
    """
    import frappe

    doctype, name = doc.doctype, doc.name
    link = PARENT_LINKS.get(doctype, (None, None))[0]
    if doctype in PLAN_CHILD_DOCTYPES:
        link = "parent"
    parent = doc.get(link) if link else None
    old_parent_links = None
    if link and doctype != SUBJECT:
        before_save = getattr(doc, "get_doc_before_save", None)
        before = before_save() if callable(before_save) else None
        if before is not None:
            old = before.get(link)
            if old and old != parent:
                old_parent_links = {link: old}

    db = FrappeConnection(frappe.db)
    plans = _safe_plans(affected_plans(db, doctype, name, parent=parent, old_parent_links=old_parent_links),
                        doctype, name)
    if not plans:
        return set()
    reason = f"{method or 'change'} of {doctype} {name!r}"

    def push() -> None:
        url = _conf_value(frappe.conf, REDIS_URL_KEY) or _conf_value(frappe.conf, "redis_cache")
        try:
            client = redis_client(url)
        except (ValueError, *REDIS_ERRORS) as exc:  # a malformed URL must not lose the change
            log.warning("CDN export: cannot use Redis URL from the site config: %s", exc)
            client = None
        queue_plans(plans, db=db, redis=client, reason=reason)

    after_commit = getattr(frappe.db, "after_commit", None)
    if after_commit is not None and callable(getattr(after_commit, "add", None)):
        def push_after_commit() -> None:
            # the editor's save is committed: a failure here (even of the fallback insert) must not
            # turn it into an error page; the nightly full rebuild repairs what is missed
            try:
                push()
            except Exception:
                log.exception("CDN export: could not queue plan(s) %s after %s", ", ".join(plans), reason)

        after_commit.add(push_after_commit)
    else:
        push()
    return set(plans)
