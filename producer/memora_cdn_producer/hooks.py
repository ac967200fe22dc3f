"""The Frappe entry points: `doc_events` handlers for the Memora app's hooks.py (docs/frappe.md has the lines).

Imported only by Frappe (through the dotted paths in hooks.py), never by the exporter. Supported: Frappe v15
and newer, which have ``frappe.db.after_commit`` (a `CallbackManager`: callbacks run right after the SQL
``COMMIT`` of the request's transaction and are dropped on rollback). Frappe v14 and older have no such hook;
importing this module there raises ImportError, and a handler that finds no ``frappe.db.after_commit`` raises
`UnsupportedFrappe`: the save fails with that message rather than marking plans before they are committed.

What a handler does, for one document event:

1. Inside the editor's transaction, on Frappe's own connection (``frappe.db.sql``, so the query sees the row
   being saved): resolve the affected plans (`affected_plans`, one SELECT at most).
2. Register one ``frappe.db.after_commit`` callback that queues those plans: Redis (``SADD`` +
   ``ZADD NX pending_since`` in one MULTI), or the ``tabCDN Sync Log`` fallback rows. An exporter that took
   the plan before the commit would build the old content; a rolled-back save marks nothing.

The fallback rows are written in that callback, never in the editor's transaction. Frappe's
``Database.commit()`` runs ``COMMIT``, then ``begin()`` (a new transaction), then the after_commit
callbacks; the rows are inserted in that new transaction and committed with ``frappe.db.commit()`` at once.
Nothing of the editor's is in it (their work was committed just before; the request does not continue until
the callbacks return), only what earlier after_commit callbacks of the same commit wrote, which Frappe
would otherwise never commit: no request or job commits again after its final commit. The nested
``commit()`` runs any remaining after_commit callbacks itself; each still runs exactly once (Frappe's
`CallbackManager.run` pops a callback before calling it).

A callback never raises: after the commit, an exception would turn a saved document into an error page and
skip the other callbacks. A failure is logged (the nightly full rebuild repairs what was missed).
"""
from __future__ import annotations

import logging
import re
import threading
from typing import Any

import frappe

from memora_cdn_producer.contract import REDIS_URL_KEY
from memora_cdn_producer.plans import (
    DOCTYPES, PARENT_LINKS, PLAN, PLAN_CHILD_DOCTYPES, SUBJECT, affected_plans, parent_link,
)
from memora_cdn_producer.queue import REDIS_ERRORS, queue_plans, redis_client

log = logging.getLogger("memora_cdn_producer")

MIN_FRAPPE_MAJOR = 15


class UnsupportedFrappe(RuntimeError):
    """This Frappe has no ``frappe.db.after_commit`` (Frappe v14 and older)."""


def _major(version: Any) -> int | None:
    match = re.match(r"\s*(\d+)", str(version or ""))
    return int(match.group(1)) if match else None


_MAJOR = _major(getattr(frappe, "__version__", None))
if _MAJOR is not None and _MAJOR < MIN_FRAPPE_MAJOR:
    raise ImportError(
        f"memora-cdn-producer needs Frappe v{MIN_FRAPPE_MAJOR} or newer (frappe.db.after_commit); this bench runs "
        f"Frappe {frappe.__version__}. Remove the memora_cdn_producer lines from the app's hooks.py or upgrade Frappe."
    )


class FrappeConnection:
    """The DB-API surface `affected_plans` and the fallback rows use, over ``frappe.db``: queries run on Frappe's
    connection, in its current transaction; ``commit()`` is ``frappe.db.commit()``."""

    def __init__(self, frappe_db) -> None:
        self._db = frappe_db

    def cursor(self) -> "_FrappeCursor":
        return _FrappeCursor(self._db)

    def commit(self) -> None:
        self._db.commit()


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

    def close(self) -> None:
        self._rows = []


def _after_commit():
    """``frappe.db.after_commit`` or UnsupportedFrappe."""
    after_commit = getattr(getattr(frappe, "db", None), "after_commit", None)
    if not callable(getattr(after_commit, "add", None)):
        raise UnsupportedFrappe(
            f"memora-cdn-producer needs frappe.db.after_commit (Frappe v{MIN_FRAPPE_MAJOR} or newer); this Frappe "
            f"({getattr(frappe, '__version__', 'unknown version')}) has none, so a change cannot be queued after "
            "its commit. Remove the memora_cdn_producer lines from the app's hooks.py or upgrade Frappe."
        )
    return after_commit


def _site_config_value(key: str):
    conf = getattr(frappe, "conf", None)
    value = conf.get(key) if conf is not None and callable(getattr(conf, "get", None)) else None
    if value is None and callable(getattr(frappe, "get_site_config", None)):
        value = frappe.get_site_config().get(key)
    return value or None


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *args) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


def _client():
    """(Redis client or None, why there is none). Only the dedicated URL is used: never ``redis_cache`` or
    ``frappe.cache`` (bench's cache Redis evicts keys and keeps nothing across a restart)."""
    url = _site_config_value(REDIS_URL_KEY)
    if not url:
        _warn_once("no-url", "CDN export: %r is not set in the site config; changed plans are queued in "
                   "tabCDN Sync Log (fallback rows) until it is", REDIS_URL_KEY)
        return None, f"{REDIS_URL_KEY} not set in the site config"
    try:
        return redis_client(str(url)), None
    except (ValueError, *REDIS_ERRORS) as exc:  # a malformed URL must not lose the change
        _warn_once(f"bad-url:{url}", "CDN export: cannot use %r from the site config (%s); queueing in "
                   "tabCDN Sync Log", REDIS_URL_KEY, exc)
        return None, f"{REDIS_URL_KEY} unusable ({type(exc).__name__})"


def _queue_after_commit(plans: set[str], reason: str) -> None:
    after_commit = _after_commit()
    if not plans:
        return
    plans = set(plans)

    def push() -> None:
        try:
            client, problem = _client()
            queue_plans(plans, db=FrappeConnection(frappe.db), redis=client, reason=reason, problem=problem)
        except Exception:  # noqa: BLE001 - after the commit nothing may raise (see the module docstring)
            log.exception("CDN export: could not queue plan(s) %s after %s",
                          ", ".join(map(repr, sorted(plans))), reason)

    after_commit.add(push)


def plans_for_event(doc, db) -> set[str]:
    """The plans a saved/deleted/restored document affects (its own chain, and its old chain if it moved)."""
    doctype, name = doc.doctype, doc.name
    link = parent_link(doctype)
    parent = doc.get(link) if link else None
    old_parent_links = None
    if link and doctype not in PLAN_CHILD_DOCTYPES:
        before_save = getattr(doc, "get_doc_before_save", None)
        before = before_save() if callable(before_save) else None
        if before is not None:
            old = before.get(link)
            if old and old != parent:
                old_parent_links = {link: old}
    # Content below a subject: the document's own link names the level above (the row, if it still exists,
    # holds the same value inside this transaction), so the chain is resolved from there alone: one lookup of
    # `tabMemora Plan Subject` instead of two (own row + link) in the UNION.
    own = None if doctype in PARENT_LINKS else name
    return affected_plans(db, doctype, own, parent=parent, old_parent_links=old_parent_links)


def on_change(doc, method: str | None = None, *args, **kwargs) -> None:
    """`doc_events` handler for after_insert, on_update, on_trash, after_delete and on_restore.

    Resolves the affected plans now (inside the editor's transaction) and queues them after the commit.
    Returns None: Frappe collects handlers' return values (and `before_rename` would even use one as the new
    name), so nothing is returned.
    """
    _after_commit()  # refuse before doing any work on an unsupported Frappe
    if doc.doctype in DOCTYPES:
        plans = plans_for_event(doc, FrappeConnection(frappe.db))
        _queue_after_commit(plans, f"{method or 'change'} of {doc.doctype} {doc.name!r}")


def on_rename(doc, method: str | None = None, old: str | None = None, new: str | None = None,
              merge: Any = False, *args, **kwargs) -> None:
    """`doc_events` handler for after_rename: Frappe calls it as ``handler(doc, "after_rename", old, new, merge)``
    (``rename_doc`` runs ``new_doc.run_method("after_rename", old, new, merge)`` after it renamed the row and
    rewrote every Link and Dynamic Link to it).

    Marks the plans of both names: for a plan, the old and the new plan id (the exporter removes the old folder
    and builds the new one); for content, the plans found from the new name (whose Links were rewritten), from
    the old name (still a row when ``merge`` is set: Frappe deletes it after this hook, which fires its own
    on_trash/after_delete) and from the document's parent link.
    """
    _after_commit()
    new = new or doc.name
    doctype = doc.doctype
    if doctype == PLAN:
        plans = affected_plans(None, PLAN, [new, old])
    elif doctype == SUBJECT or doctype in PARENT_LINKS:
        link = parent_link(doctype)
        plans = affected_plans(FrappeConnection(frappe.db), doctype, [new, old],
                               parent=doc.get(link) if link else None)
    else:
        return
    _queue_after_commit(plans, f"{'merge' if merge else 'rename'} of {doctype} {old!r} to {new!r}")
