"""`tabCDN Sync Log` (SPEC §2, §7): the audit trail of plan builds, and the queue of last resort.

Rows written here: one per sync run and plan, `Processing` -> `Success` / `Failed` / `Dead Letter`,
updated on every attempt. Rows written by the Frappe side when Redis is down (`Queued`,
`is_fallback=1`) are drained into the Redis pending set by the next sync run.
Every statement is parameterised.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

TABLE = "`tabCDN Sync Log`"
STATUSES = ("Queued", "Processing", "Success", "Failed", "Dead Letter")
# `Nightly` (the nightly full rebuild) is not among the Select options of the DocType in Frappe app version 008
# (Scheduler, Threshold, Manual, Fallback Recovery); the column is a varchar(140), so the row is stored and shown.
TRIGGERS = ("Scheduler", "Threshold", "Manual", "Nightly", "Fallback Recovery")
COLUMNS = ("name", "plan_id", "status", "started_at", "completed_at", "files_uploaded", "files_deleted",
           "error_message", "retry_count", "next_retry_at", "is_fallback", "triggered_by", "creation")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def row_name(run_id: str, plan_id: str) -> str:
    return "CDN-" + hashlib.sha1(f"{run_id}\0{plan_id}".encode()).hexdigest()[:20]


def start(db, run_id: str, plan_id: str, triggered_by: str, retry_count: int) -> str:
    """Insert (or, on a retry, reset) this run's row for the plan as `Processing`."""
    name, now = row_name(run_id, plan_id), _now()
    cur = db.cursor()
    cur.execute(
        f"INSERT INTO {TABLE} (name, creation, modified, owner, modified_by, plan_id, status, started_at, "
        "retry_count, triggered_by, is_fallback) VALUES (%s, %s, %s, 'Administrator', 'Administrator', %s, "
        "'Processing', %s, %s, %s, 0) ON DUPLICATE KEY UPDATE status = 'Processing', modified = VALUES(modified), "
        "started_at = VALUES(started_at), completed_at = NULL, retry_count = VALUES(retry_count), "
        "next_retry_at = NULL, error_message = NULL",
        (name, now, now, plan_id, now, retry_count, triggered_by),
    )
    db.commit()
    return name


def finish(db, name: str, status: str, *, uploaded: int = 0, deleted: int = 0, error: str | None = None,
           next_retry_at: datetime | None = None) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown sync log status {status!r}")
    now = _now()
    db.cursor().execute(
        f"UPDATE {TABLE} SET status = %s, modified = %s, completed_at = %s, files_uploaded = %s, files_deleted = %s, "
        "error_message = %s, next_retry_at = %s WHERE name = %s",
        (status, now, now, uploaded, deleted, error[:10000] if error else None,
         next_retry_at.replace(tzinfo=None) if next_retry_at else None, name),
    )
    db.commit()


def write_fallback(db, plan_id: str, reason: str = "Redis unreachable") -> str:
    """What the Frappe side writes when it cannot reach Redis: a `Queued` fallback row."""
    now = _now()
    name = "CDN-" + hashlib.sha1(f"fallback\0{plan_id}\0{now.isoformat()}".encode()).hexdigest()[:20]
    db.cursor().execute(
        f"INSERT INTO {TABLE} (name, creation, modified, owner, modified_by, plan_id, status, is_fallback, "
        "triggered_by, error_message) VALUES (%s, %s, %s, 'Administrator', 'Administrator', %s, 'Queued', 1, "
        "'Fallback Recovery', %s) ON DUPLICATE KEY UPDATE modified = VALUES(modified)",
        (name, now, now, plan_id, reason),
    )
    db.commit()
    return name


def count_waiting(db) -> tuple[int, int]:
    """(queued fallback rows, failed rows whose retry is due and no run is retrying) in one query."""
    cur = db.cursor()
    cur.execute(
        f"SELECT COALESCE(SUM(status = 'Queued' AND is_fallback = 1), 0), "
        f"COALESCE(SUM(status = 'Failed' AND next_retry_at IS NOT NULL AND next_retry_at <= %s), 0) "
        f"FROM {TABLE} WHERE status IN ('Queued', 'Failed')",
        (_now(),),
    )
    queued, due = cur.fetchone()
    return int(queued), int(due)


def take_waiting(db, limit: int = 10_000) -> tuple[list[str], list[str]]:
    """Lock and mark the queued fallback rows and the due retries; return their plan names.

    The caller puts the plans into the pending set and then commits; on any error it rolls back,
    so no row is marked taken unless its plan reached Redis.
    """
    cur = db.cursor()
    cur.execute(
        f"SELECT name, plan_id, status FROM {TABLE} WHERE (status = 'Queued' AND is_fallback = 1) "
        "OR (status = 'Failed' AND next_retry_at IS NOT NULL AND next_retry_at <= %s) "
        "ORDER BY creation LIMIT %s FOR UPDATE",
        (_now(), limit),
    )
    rows = cur.fetchall()
    fallback = [name for name, _, status in rows if status == "Queued"]
    retries = [name for name, _, status in rows if status == "Failed"]
    now = _now()
    if fallback:
        cur.execute(
            f"UPDATE {TABLE} SET status = 'Success', completed_at = %s, modified = %s, "
            f"error_message = 'moved to the Redis pending set' WHERE name IN ({', '.join(['%s'] * len(fallback))})",
            (now, now, *fallback),
        )
    if retries:
        cur.execute(
            f"UPDATE {TABLE} SET next_retry_at = NULL, modified = %s WHERE name IN ({', '.join(['%s'] * len(retries))})",
            (now, *retries),
        )
    by_name = {name: plan for name, plan, _ in rows}
    return sorted({by_name[n] for n in fallback}), sorted({by_name[n] for n in retries})


def failed_runs_before(db, plan_id: str, row: str) -> int:
    """How many runs in a row have failed this plan, not counting the run of `row` (its retry number).

    The latest finished build row of the plan decides: `Failed` with retry_count n means n + 1 failed runs,
    anything else (a success, a dead letter an operator has since retried, no row) means none. Fallback rows
    are not builds; `Queued` (requeued while locked) and `Processing` rows are not results."""
    cur = db.cursor()
    cur.execute(
        f"SELECT status, retry_count FROM {TABLE} WHERE plan_id = %s AND name <> %s AND is_fallback = 0 "
        "AND status IN ('Success', 'Failed', 'Dead Letter') "
        "ORDER BY COALESCE(completed_at, started_at, creation) DESC, creation DESC LIMIT 1",
        (plan_id, row),
    )
    found = cur.fetchone()
    db.commit()  # end the read's transaction (REPEATABLE READ would otherwise pin this snapshot)
    if not found or found[0] != "Failed":
        return 0
    return int(found[1] or 0) + 1


def backing_off(db, plan_ids: list[str], now: datetime | None = None) -> set[str]:
    """The plans among `plan_ids` whose next retry is scheduled for later (they wait for it, not for an edit)."""
    if not plan_ids:
        return set()
    cur = db.cursor()
    cur.execute(
        f"SELECT DISTINCT plan_id FROM {TABLE} WHERE status = 'Failed' AND next_retry_at > %s "
        f"AND plan_id IN ({', '.join(['%s'] * len(plan_ids))})",
        ((now or _now()).replace(tzinfo=None), *plan_ids),
    )
    return {plan for (plan,) in cur.fetchall()}


def cancel_retries(db, plan_id: str) -> int:
    """The plan was built: retries scheduled by earlier failures are no longer needed."""
    cur = db.cursor()
    cur.execute(
        f"UPDATE {TABLE} SET next_retry_at = NULL, modified = %s WHERE plan_id = %s AND status = 'Failed' "
        "AND next_retry_at IS NOT NULL",
        (_now(), plan_id),
    )
    db.commit()
    return cur.rowcount


def sweep_abandoned(db, older_than_minutes: int = 60) -> int:
    """Rows left `Processing` by a build that died (SIGKILL, lost database) become `Failed`, so the
    dashboard does not show them running forever. The plan itself is safe: its claim is recovered."""
    now = _now()
    cur = db.cursor()
    cur.execute(
        f"UPDATE {TABLE} SET status = 'Failed', modified = %s, completed_at = %s, "
        "error_message = 'abandoned: the build stopped without reporting (its plan was claimed again)' "
        "WHERE status = 'Processing' AND started_at < %s - INTERVAL %s MINUTE",
        (now, now, now, int(older_than_minutes)),
    )
    db.commit()
    return cur.rowcount


def recent(db, plan_id: str | None = None, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    where, params = [], []
    if plan_id:
        where.append("plan_id = %s")
        params.append(plan_id)
    if status:
        where.append("status = %s")
        params.append(status)
    sql = f"SELECT {', '.join(COLUMNS)} FROM {TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    cur = db.cursor()
    cur.execute(sql + " ORDER BY creation DESC, name LIMIT %s", (*params, int(limit)))
    return [dict(zip(COLUMNS, row)) for row in cur.fetchall()]


def last_success(db) -> dict[str, datetime]:
    cur = db.cursor()
    cur.execute(f"SELECT plan_id, MAX(completed_at) FROM {TABLE} WHERE status = 'Success' AND is_fallback = 0 GROUP BY plan_id")
    return {plan: when for plan, when in cur.fetchall()}
