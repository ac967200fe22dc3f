"""The Memora app's tables as Frappe (v15, MariaDB) builds them from the app's DocType JSON.

`frappe/doctypes-002/` and `frappe/doctypes-008/` beside this module are the real app's DocType definitions,
vendored unchanged (see `frappe/README.md`). Nothing here is written by hand per table: every column, type,
default and index follows from a DocType's fields the way Frappe's schema builder derives them
(`frappe.database.mariadb.schema` / `frappe.database.schema.DbColumn`):

- standard columns `name` (primary key), `creation`, `modified`, `modified_by`, `owner`, `docstatus`, `idx`;
- non-child DocTypes also `_user_tags`, `_comments`, `_assign`, `_liked_by`, and an index on `creation`
  (and on `modified` when that is the sort field); child DocTypes `parent`, `parentfield`, `parenttype` and
  an index on `parent`;
- one column per data field, typed by `fieldtype`; Check/Int/Float-like columns are NOT NULL with the
  field's default (0 without one); other defaults are quoted;
- an index only where a field has `search_index: 1`, a unique key where it has `unique: 1`. A Link column is
  not indexed by itself.

Single DocTypes (`issingle`, e.g. CDN Settings) have no table. Development and tests only.
"""
from __future__ import annotations

import json
from pathlib import Path

FRAPPE_DIR = Path(__file__).parent / "frappe"
VERSIONS = ("002", "008")
LATEST = "008"

_TYPES = {
    **dict.fromkeys(("Data", "Link", "Dynamic Link", "Select", "Read Only", "Color", "Phone", "Autocomplete"),
                    "varchar({length})"),
    "Check": "int(1)",
    "Int": "int(11)",
    **dict.fromkeys(("Float", "Currency", "Percent", "Duration"), "decimal(21,9)"),
    **dict.fromkeys(("Small Text", "Text", "Password", "Attach", "Attach Image"), "text"),
    **dict.fromkeys(("Long Text", "Code", "Text Editor", "Markdown Editor", "HTML Editor"), "longtext"),
    "JSON": "json",
    "Date": "date",
    "Datetime": "datetime(6)",
}
_NOT_NULL_NUMERIC = ("Check", "Int", "Float", "Currency", "Percent")
_NO_COLUMN = ("Table", "Table MultiSelect", "Section Break", "Column Break", "Tab Break", "Button", "HTML",
              "Heading", "Fold", "Image")
_STANDARD = [
    "`name` varchar(140) NOT NULL",
    "`creation` datetime(6) DEFAULT NULL",
    "`modified` datetime(6) DEFAULT NULL",
    "`modified_by` varchar(140) DEFAULT NULL",
    "`owner` varchar(140) DEFAULT NULL",
    "`docstatus` int(1) NOT NULL DEFAULT 0",
    "`idx` int(8) NOT NULL DEFAULT 0",
]
_CHILD = ["`parent` varchar(140) DEFAULT NULL", "`parentfield` varchar(140) DEFAULT NULL",
          "`parenttype` varchar(140) DEFAULT NULL"]
_NON_CHILD = ["`_user_tags` text DEFAULT NULL", "`_comments` text DEFAULT NULL", "`_assign` text DEFAULT NULL",
              "`_liked_by` text DEFAULT NULL"]


def doctypes(version: str = LATEST) -> list[dict]:
    """The DocType definitions of one app version, in file-name order."""
    if version not in VERSIONS:
        raise ValueError(f"unknown Memora app version {version!r}; known: {', '.join(VERSIONS)}")
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((FRAPPE_DIR / f"doctypes-{version}").glob("*.json"))]


def _number(value, cast) -> str:
    try:
        number = cast(value or 0)
    except (TypeError, ValueError):
        number = cast(0)
    return repr(number) if cast is float else str(number)


def column(field: dict) -> str | None:
    """The column definition Frappe derives from one DocType field, or None for a field with no column."""
    fieldtype = field["fieldtype"]
    if fieldtype in _NO_COLUMN:
        return None
    if fieldtype not in _TYPES:
        raise ValueError(f"field {field['fieldname']!r}: fieldtype {fieldtype!r} has no known column type")
    sql_type = _TYPES[fieldtype].format(length=int(field.get("length") or 140))
    definition = f"`{field['fieldname']}` {sql_type}"
    default = field.get("default")
    if fieldtype in _NOT_NULL_NUMERIC:
        return f"{definition} NOT NULL DEFAULT {_number(default, int if fieldtype in ('Check', 'Int') else float)}"
    if fieldtype == "JSON":
        return f"{definition} DEFAULT NULL CHECK (json_valid(`{field['fieldname']}`))"
    if default not in (None, "") and not str(default).startswith(":") and default not in ("Today", "now", "__user"):
        escaped = str(default).replace("\\", "\\\\").replace("'", "\\'")
        return f"{definition} DEFAULT '{escaped}'"
    return f"{definition} DEFAULT NULL"


def table_ddl(doctype: dict) -> str | None:
    """CREATE TABLE for one DocType (None for a Single)."""
    if doctype.get("issingle"):
        return None
    child = bool(doctype.get("istable"))
    columns = list(_STANDARD) + (_CHILD if child else [])
    keys = ["PRIMARY KEY (`name`)"]
    for field in doctype["fields"]:
        definition = column(field)
        if definition is None:
            continue
        columns.append(definition)
        name = field["fieldname"]
        if field.get("unique"):
            keys.append(f"UNIQUE KEY `{name}` (`{name}`)")
        elif field.get("search_index"):
            keys.append(f"KEY `{name}` (`{name}`)")
    if child:
        keys.append("KEY `parent` (`parent`)")
    else:
        columns += _NON_CHILD
        keys.append("KEY `creation` (`creation`)")
        if (doctype.get("sort_field") or "modified") == "modified":
            keys.append("KEY `modified` (`modified`)")
    body = ",\n  ".join(columns + keys)
    return (f"CREATE TABLE IF NOT EXISTS `tab{doctype['name']}` (\n  {body}\n) "
            "ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;")


def schema_sql(version: str = LATEST) -> str:
    """The whole schema of one app version as SQL text (what `sql/frappe_schema_{version}.sql` holds)."""
    header = (f"-- Generated by memora_cdn_demo.frappe_tables from the Memora app's DocType JSON (doctypes-{version}).\n"
              f"-- Do not edit: `python -m memora_cdn_demo.frappe_tables` writes it again.\n\n")
    statements = [ddl for ddl in (table_ddl(d) for d in doctypes(version)) if ddl]
    return header + "\n\n".join(statements) + "\n"


def sql_path(version: str = LATEST) -> Path:
    return Path(__file__).parent / "sql" / f"frappe_schema_{version}.sql"


def table_names(version: str = LATEST) -> list[str]:
    return [f"tab{d['name']}" for d in doctypes(version) if not d.get("issingle")]


def columns(version: str = LATEST) -> dict[str, list[str]]:
    """Table name -> its column names, in table order (what `table_ddl` creates)."""
    out = {}
    for doctype in doctypes(version):
        if doctype.get("issingle"):
            continue
        names = [c.split("`")[1] for c in _STANDARD + (_CHILD if doctype.get("istable") else [])]
        names += [f["fieldname"] for f in doctype["fields"] if column(f) is not None]
        if not doctype.get("istable"):
            names += [c.split("`")[1] for c in _NON_CHILD]
        out[f"tab{doctype['name']}"] = names
    return out


def migrate_sql(old: str, new: str) -> list[str]:
    """What `bench migrate` does to the tables between two versions: add the new columns (and their indexes),
    never drop one. Changed types are left alone, as Frappe leaves them when no data would fit the new type."""
    before = {d["name"]: d for d in doctypes(old)}
    statements = []
    for doctype in doctypes(new):
        if doctype.get("issingle"):
            continue
        if doctype["name"] not in before:
            statements.append(table_ddl(doctype))
            continue
        had = {f["fieldname"] for f in before[doctype["name"]]["fields"]}
        for field in doctype["fields"]:
            definition = column(field)
            if definition is None or field["fieldname"] in had:
                continue
            statements.append(f"ALTER TABLE `tab{doctype['name']}` ADD COLUMN {definition}")
            # as `MariaDBTable.alter` does: a unique key named after the field, an index named `{field}_index`
            if field.get("unique"):
                statements.append(f"ALTER TABLE `tab{doctype['name']}` ADD UNIQUE INDEX `{field['fieldname']}` "
                                  f"(`{field['fieldname']}`)")
            elif field.get("search_index"):
                statements.append(f"ALTER TABLE `tab{doctype['name']}` ADD INDEX `{field['fieldname']}_index` "
                                  f"(`{field['fieldname']}`)")
    return statements


if __name__ == "__main__":
    for v in VERSIONS:
        sql_path(v).write_text(schema_sql(v), encoding="utf-8")
        print("wrote", sql_path(v))
