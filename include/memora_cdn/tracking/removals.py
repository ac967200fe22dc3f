"""What the removal guard refused, in Redis, for the dashboard and `python -m memora_cdn status`.

Keys (prefix `cdn_export:`):
- `removal_refused`  hash  source ("nightly" | "sync") -> JSON {refused_at, plans (first 20), count, refusal,
                           reason, limit, listed_plans, published}; the nightly entry is cleared by the next
                           nightly run whose removals pass the guard (or are confirmed), the sync entry once no
                           plan is held any more
- `removals_held`    set   plans a sync run claimed for removal but the guard refused: kept out of the
                           pending set (so they cannot crowd out real edits batch after batch), never dropped.
                           A held plan that the database lists again goes back to pending at the next claim;
                           one that stays gone is the nightly run's to remove (guarded) or the operator's
                           (`remove-plans --confirm`).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Iterable

from memora_cdn.tracking.registry import PENDING, PREFIX, Registry

log = logging.getLogger(__name__)

REFUSED = PREFIX + "removal_refused"
HELD = PREFIX + "removals_held"


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def record_refusal(registry: Registry, source: str, decision, now: datetime | None = None) -> None:
    entry = {"source": source, "refused_at": (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             **decision.as_dict()}
    registry.redis.hset(REFUSED, source, json.dumps(entry))


def clear_refusal(registry: Registry, source: str) -> None:
    registry.redis.hdel(REFUSED, source)


def refusals(registry: Registry) -> list[dict[str, Any]]:
    """The standing refusals, newest first."""
    out = []
    for source, raw in registry.redis.hgetall(REFUSED).items():
        try:
            entry = json.loads(_text(raw))
        except ValueError:
            entry = {"reason": "unreadable entry"}
        out.append({"source": _text(source), **entry} if isinstance(entry, dict) else {"source": _text(source)})
    out.sort(key=lambda e: e.get("refused_at") or "", reverse=True)
    return out


def hold(registry: Registry, plans: Iterable[str]) -> None:
    plans = list(plans)
    if plans:
        registry.redis.sadd(HELD, *plans)


def held(registry: Registry) -> list[str]:
    return sorted(_text(p) for p in registry.redis.smembers(HELD))


def release_held(registry: Registry, plans: Iterable[str], *, requeue: bool = False) -> int:
    """Take plans out of the held set (back into the pending set with `requeue`); once none is held, the sync's
    refusal is cleared. Returns how many were held."""
    plans = list(plans)
    if not plans:
        return 0
    pipe = registry.redis.pipeline()
    pipe.srem(HELD, *plans)
    if requeue:
        pipe.sadd(PENDING, *plans)
    released = pipe.execute()[0]
    if not registry.redis.scard(HELD):
        clear_refusal(registry, "sync")
    return int(released)
