"""Telling the exporter: the Redis pending set (with the first-marked time), or the sync-log fallback rows.

`queue_plans` is the one place that writes either. Redis errors never escape it (an editor's save must not
fail because Redis is down); a database error while writing the fallback rows does, because the change
would otherwise be lost without a trace.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from redis import exceptions as redis_exceptions

from memora_cdn_producer.contract import (
    FALLBACK_OWNER, FALLBACK_REASON_MAX, FALLBACK_STATUS, FALLBACK_TRIGGER, PENDING, PENDING_SINCE,
)
from memora_cdn_producer.plans import affected_plans

log = logging.getLogger("memora_cdn_producer")

#: Redis errors that send the plans to the sync log instead (connection refused, timeouts, auth, a read-only
#: replica, WRONGTYPE, ...): nothing Redis does may make an editor's save fail.
REDIS_ERRORS = (redis_exceptions.RedisError, OSError)

REDIS_SOCKET_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 1.0
REDIS_RETRIES = 1  # redis-py's default (several retries with backoff) would hold an editor's request for seconds


def _epoch(now: float | None) -> str:
    return f"{time.time() if now is None else now:.6f}"


def push_pending(redis, plans: list[str], now: float | None = None) -> None:
    """One MULTI/EXEC: ``SADD cdn_export:pending_plans`` the plans and ``ZADD NX cdn_export:pending_since`` each
    plan's first-marked time (a plan already waiting keeps its earlier time). Raises the Redis error."""
    since = float(_epoch(now))
    pipe = redis.pipeline(transaction=True)
    pipe.sadd(PENDING, *plans)
    pipe.zadd(PENDING_SINCE, {plan: since for plan in plans}, nx=True)
    pipe.execute()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def write_fallback_rows(db, plans: Iterable[str], reason: str) -> list[str]:
    """Insert one ``Queued`` / ``is_fallback=1`` row per plan into `tabCDN Sync Log` on `db` and commit.

    `db` is a DB-API connection (``cursor()``, ``commit()``); inside Frappe it is `FrappeConnection`, whose
    commit is ``frappe.db.commit()`` (see hooks.py for why that is only ever called after the editor's commit).
    Returns the row names.
    """
    now = _utcnow()
    rows = []
    for plan in plans:
        name = "CDN-" + hashlib.sha1(f"fallback\0{plan}\0{now.isoformat()}".encode()).hexdigest()[:20]
        rows.append((name, now, now, FALLBACK_OWNER, FALLBACK_OWNER, plan, FALLBACK_STATUS, FALLBACK_TRIGGER,
                     reason[:FALLBACK_REASON_MAX]))
    if not rows:
        return []
    cursor = db.cursor()
    try:
        for row in rows:
            cursor.execute(
                "INSERT INTO `tabCDN Sync Log` (name, creation, modified, owner, modified_by, plan_id, status, "
                "is_fallback, triggered_by, error_message) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s, %s) "
                "ON DUPLICATE KEY UPDATE modified = VALUES(modified)",
                row,
            )
    finally:
        cursor.close()
    db.commit()
    return [row[0] for row in rows]


def queue_plans(plans: Iterable[str], *, db, redis=None, reason: str = "", problem: str | None = None,
                now: float | None = None) -> str:
    """Queue the plans for a rebuild: Redis (`push_pending`), or one fallback sync-log row per plan on `db`.

    `redis` None means no Redis is configured (`problem` says why, for the row and the log). Returns "redis",
    "fallback" or "none" (nothing to queue).
    """
    plans = sorted(set(plans))
    if not plans:
        return "none"
    level = logging.INFO  # no Redis configured: the caller says so (hooks.py warns once per process)
    if redis is not None:
        try:
            push_pending(redis, plans, now)
            return "redis"
        except REDIS_ERRORS as exc:
            problem, level = f"Redis unreachable ({type(exc).__name__}: {exc})", logging.WARNING
    problem = problem or "no Redis client configured"
    log.log(level, "CDN export: %s; queueing plan(s) %s in the sync log", problem, ", ".join(map(repr, plans)))
    write_fallback_rows(db, plans, f"{problem}; {reason}" if reason else problem)
    return "fallback"


def mark_changed(doctype: str, name: Any, *, db, redis=None, parent: Any = None,
                 old_parent_links: Mapping[str, Any] | None = None) -> set[str]:
    """Resolve the plans a change of (doctype, name) affects (`affected_plans`) and queue them at once.

    For callers that manage their own transaction (scripts, the benchmarks): call it after the change is
    committed. Inside Frappe use the hooks (hooks.py), which resolve inside the save and queue after the commit.
    Returns the plans queued. Never raises because of Redis.
    """
    plans = affected_plans(db, doctype, name, parent=parent, old_parent_links=old_parent_links)
    queue_plans(plans, db=db, redis=redis, reason=f"change of {doctype} {name!r}")
    return plans


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def redis_client(url: str):
    """One `redis.Redis` per URL for the process, with short timeouts and one immediate retry, so a Redis outage
    costs an editor about two seconds at most before the fallback rows are written. Raises ValueError for a
    malformed URL."""
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), REDIS_RETRIES),
                                          socket_connect_timeout=REDIS_SOCKET_CONNECT_TIMEOUT,
                                          socket_timeout=REDIS_SOCKET_TIMEOUT)
            _clients[url] = client
        return client
