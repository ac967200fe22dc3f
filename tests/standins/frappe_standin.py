"""A stand-in `frappe` module (Frappe is not installed here) with the behaviour the producer relies on, on a
real MariaDB connection. Modelled on Frappe v15's source:

- ``frappe.db.after_commit`` etc. are `CallbackManager`s (``frappe/utils/__init__.py``): ``run()`` pops each
  callback before calling it. ``Database.commit()`` (``frappe/database/database.py``) resets the rollback
  managers, runs ``before_commit``, sends ``COMMIT``, starts a new transaction and then runs ``after_commit``;
  ``rollback()`` drops ``before_commit``/``after_commit``, sends ``ROLLBACK`` and runs ``after_rollback``.
- ``frappe.db.sql(query, values)`` returns a tuple of row tuples, on the request's one connection.
- ``frappe.conf`` (a dict with attribute access) and ``frappe.get_site_config()``.
- Documents: ``doc.run_method(event, *args)`` calls every ``doc_events`` handler as
  ``handler(doc, event, *args)`` (``Document.hook`` in ``frappe/model/document.py``); ``get_doc_before_save()``.
- ``save_doc``/``insert_doc``/``delete_doc`` fire the events Frappe fires (after_insert + on_update; on_update
  with the document before the save loaded; on_trash, the DELETE, after_delete).
- ``rename_doc`` follows ``frappe/model/rename_doc.py``: ``before_rename`` on the old document, the row renamed
  in place (not when merging), child rows' ``parent`` and every Link and Dynamic Link to it rewritten (found
  from the app's DocType JSON, as Frappe finds them from ``tabDocField``), ``after_rename`` on the new
  document with ``(old, new, merge)``, then, when merging, the old document deleted.

`install(...)` builds one; tests put it into ``sys.modules["frappe"]``.
"""
from __future__ import annotations

import importlib
import types
from collections import deque
from typing import Any, Callable

from memora_cdn_demo import frappe_tables


class CallbackManager:
    def __init__(self) -> None:
        self._functions: deque[Callable] = deque()

    def add(self, func: Callable) -> None:
        self._functions.append(func)

    __call__ = add

    def run(self) -> None:
        while self._functions:
            func = self._functions.popleft()
            func()

    def reset(self) -> None:
        self._functions.clear()

    def __len__(self) -> int:
        return len(self._functions)


class Database:
    """``frappe.db`` on a real MariaDB connection (autocommit off: every statement is in the open transaction)."""

    def __init__(self, conn, *, with_after_commit: bool = True) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple]] = []
        self.commits = 0
        self.before_commit = CallbackManager()
        if with_after_commit:
            self.after_commit = CallbackManager()
        self.before_rollback = CallbackManager()
        self.after_rollback = CallbackManager()

    def sql(self, query: str, values=(), as_dict: bool = False):
        self.statements.append((query, tuple(values or ())))
        cur = self.conn.cursor()
        try:
            cur.execute(query, tuple(values) if values else None)
            rows = cur.fetchall() if cur.description else ()
            if as_dict and cur.description:
                cols = [d[0] for d in cur.description]
                return [dict(zip(cols, r)) for r in rows]
            return tuple(rows or ())
        finally:
            cur.close()

    def commit(self) -> None:
        self.before_rollback.reset()
        self.after_rollback.reset()
        self.before_commit.run()
        self.conn.commit()  # COMMIT; the next statement opens the new transaction (Frappe: begin())
        self.commits += 1
        if hasattr(self, "after_commit"):
            self.after_commit.run()

    def rollback(self) -> None:
        self.before_commit.reset()
        if hasattr(self, "after_commit"):
            self.after_commit.reset()
        self.before_rollback.run()
        self.conn.rollback()
        self.after_rollback.run()


class _dict(dict):
    """frappe._dict: missing attributes are None."""

    def __getattr__(self, key):
        return self.get(key)


class DoesNotExistError(Exception):
    pass


class Doc:
    def __init__(self, frappe, doctype: str, fields: dict[str, Any]) -> None:
        self._frappe, self.doctype, self._fields = frappe, doctype, dict(fields)
        self._doc_before_save = None

    @property
    def name(self) -> str:
        return self._fields["name"]

    def get(self, key, default=None):
        return self._fields.get(key, default)

    def set(self, key, value) -> None:
        self._fields[key] = value

    def get_doc_before_save(self):
        return self._doc_before_save

    def run_method(self, method: str, *args, **kwargs):
        """Frappe's Document.run_method: the controller (none here), then each doc_events handler."""
        out = None
        hooks = self._frappe.get_doc_hooks()
        for handler in hooks.get(self.doctype, {}).get(method, []) + hooks.get("*", {}).get(method, []):
            value = self._frappe.get_attr(handler)(self, method, *args, **kwargs)
            out = value or out
        return out


def _links_to(version: str) -> dict[str, dict[str, list]]:
    """doctype -> {"link": [(table doctype, field)], "dynamic": [(table doctype, field, doctype field)],
    "children": [child doctype]}, from the DocType JSON (what Frappe reads from tabDocField)."""
    definitions = frappe_tables.doctypes(version)
    out: dict[str, dict[str, list]] = {}
    for d in definitions:
        for f in d["fields"]:
            kind = f["fieldtype"]
            if kind == "Link":
                out.setdefault(f["options"], {}).setdefault("link", []).append((d["name"], f["fieldname"]))
            elif kind in ("Table", "Table MultiSelect"):
                out.setdefault(d["name"], {}).setdefault("children", []).append(f["options"])
    dynamic = [(d["name"], f["fieldname"], f["options"]) for d in definitions for f in d["fields"]
               if f["fieldtype"] == "Dynamic Link"]
    for d in definitions:
        out.setdefault(d["name"], {})["dynamic"] = dynamic
    return out


def install(conn, *, version: str = "008", conf: dict | None = None, frappe_version: str = "15.53.0",
            doc_events: dict | None = None, with_after_commit: bool = True) -> types.ModuleType:
    frappe = types.ModuleType("frappe")
    frappe.__version__ = frappe_version
    frappe.db = Database(conn, with_after_commit=with_after_commit)
    frappe.conf = _dict(conf or {})
    frappe.get_site_config = lambda: _dict(frappe.conf)
    frappe._dict = _dict
    frappe.DoesNotExistError = DoesNotExistError
    events = {dt: {ev: ([h] if isinstance(h, str) else list(h)) for ev, h in evs.items()}
              for dt, evs in (doc_events or {}).items()}
    frappe.get_doc_hooks = lambda: events
    links = _links_to(version)

    def get_attr(path: str):
        module, _, attr = path.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    def get_doc(doctype: str, name: str) -> Doc:
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT * FROM `tab{doctype}` WHERE name = %s", (name,))
            found = cur.fetchone()
            if found is None:
                raise DoesNotExistError(f"{doctype} {name} not found")
            return Doc(frappe, doctype, dict(zip([d[0] for d in cur.description], found)))
        finally:
            cur.close()

    def insert_doc(doctype: str, name: str, **fields) -> Doc:
        from tests.producer_support import insert

        insert(conn, doctype, name, **fields)
        doc = get_doc(doctype, name)
        doc.run_method("after_insert")
        doc.run_method("on_update")
        return doc

    def save_doc(doctype: str, name: str, **changes) -> Doc:
        before = get_doc(doctype, name)
        if changes:
            sets = ", ".join(f"`{k}` = %s" for k in changes)
            frappe.db.sql(f"UPDATE `tab{doctype}` SET {sets} WHERE name = %s", (*changes.values(), name))
        doc = get_doc(doctype, name)
        doc._doc_before_save = before
        doc.run_method("on_update")
        return doc

    def delete_doc(doctype: str, name: str) -> None:
        doc = get_doc(doctype, name)
        doc.run_method("on_trash")
        frappe.db.sql(f"DELETE FROM `tab{doctype}` WHERE name = %s", (name,))
        for child in links.get(doctype, {}).get("children", []):
            frappe.db.sql(f"DELETE FROM `tab{child}` WHERE parent = %s AND parenttype = %s", (name, doctype))
        doc.run_method("after_delete")

    def rename_doc(doctype: str, old: str, new: str, merge: bool = False) -> str:
        old_doc = get_doc(doctype, old)
        out = old_doc.run_method("before_rename", old, new, merge) or {}
        new = (out.get("new") or new) if isinstance(out, dict) else (out or new)
        if not merge:
            frappe.db.sql(f"UPDATE `tab{doctype}` SET name = %s WHERE name = %s", (new, old))
            for child in links.get(doctype, {}).get("children", []):
                frappe.db.sql(f"UPDATE `tab{child}` SET parent = %s WHERE parent = %s AND parenttype = %s",
                              (new, old, doctype))
        for table, field in links.get(doctype, {}).get("link", []):
            frappe.db.sql(f"UPDATE `tab{table}` SET `{field}` = %s WHERE `{field}` = %s", (new, old))
        for table, field, type_field in links.get(doctype, {}).get("dynamic", []):
            frappe.db.sql(f"UPDATE `tab{table}` SET `{field}` = %s WHERE `{field}` = %s AND `{type_field}` = %s",
                          (new, old, doctype))
        get_doc(doctype, new).run_method("after_rename", old, new, merge)
        if merge:
            delete_doc(doctype, old)
        return new

    frappe.get_attr = get_attr
    frappe.get_doc = get_doc
    frappe.insert_doc = insert_doc
    frappe.save_doc = save_doc
    frappe.delete_doc = delete_doc
    frappe.rename_doc = rename_doc
    return frappe
