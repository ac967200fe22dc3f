"""Event-driven start of `memora_cdn_sync` (SPEC §7, §9): a threshold and a debounce.

`PendingPlansTrigger` runs in Airflow's triggerer, attached to the `memora_pending_plans` asset through an
`AssetWatcher`; the sync DAG is scheduled on its cron (the safety net) *or* that asset. Every `poll_interval`
seconds it reads two things from Redis: how many plans are pending (SCARD `cdn_export:pending_plans`) and when
they became pending (`cdn_export:pending_since`, written by the Frappe side in the same transaction). It emits an
event when

- **debounce**: a change that became pending after the last event is now `debounce_seconds` old, so edits made
  together (several saves of one lesson, a plan's whole subject list) still give one build, and a lone edit
  waits no longer than the debounce plus the run's own start-up;
- **threshold**: `batch_threshold` plans are pending (a burst starts a run at once);
- **backlog**: changes the last event already covered are still pending `cooldown` seconds later (a backlog
  larger than one batch, or a run that could not claim them), at most once per `cooldown`.

The state that matters lives in Redis, so a triggerer restart loses at most the time of the last event (one
extra run that finds little to do). Events that arrive while a run is active coalesce into one queued run.

The triggerer imports this module from the installed `memora_cdn` package (triggerers do not load DAG bundles).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

SETTINGS_REFRESH = 60.0


def decide(*, now: float, count: int, oldest: float | None, fresh: float | None, threshold: int, debounce: float,
           last_fired: float, cooldown: float) -> str | None:
    """Why to start a run now, or None. `oldest`: when the oldest pending change became pending; `fresh`: the
    oldest one that became pending after the last event (`last_fired`, epoch seconds). Pure, table-tested."""
    if count <= 0:
        return None
    if fresh is not None and now - fresh >= debounce:
        return "debounce"
    if now - last_fired < cooldown:
        return None
    if count >= threshold:
        return "threshold"
    if oldest is not None and oldest <= last_fired:
        return "backlog"
    return None  # pending plans without a time (an older producer): the five-minute cron takes them


class PendingPlansTrigger(BaseEventTrigger):
    def __init__(self, threshold: int | None = None, debounce_seconds: float | None = None,
                 redis_conn_id: str = "memora_redis", poll_interval: float = 2.0, cooldown: float = 60.0) -> None:
        super().__init__()
        self.threshold = threshold  # None: `batch_threshold` from memora_cdn_settings, re-read every minute
        self.debounce_seconds = debounce_seconds  # None: `debounce_seconds` from memora_cdn_settings
        self.redis_conn_id = redis_conn_id
        self.poll_interval = poll_interval
        self.cooldown = cooldown

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("memora_cdn.tracking.triggers.PendingPlansTrigger", {
            "threshold": self.threshold, "debounce_seconds": self.debounce_seconds,
            "redis_conn_id": self.redis_conn_id, "poll_interval": self.poll_interval, "cooldown": self.cooldown,
        })

    def _limits(self) -> tuple[int, float]:
        if self.threshold is not None and self.debounce_seconds is not None:
            return self.threshold, float(self.debounce_seconds)
        from memora_cdn.settings import load_settings

        settings = load_settings()
        return (self.threshold if self.threshold is not None else settings.batch_threshold,
                float(self.debounce_seconds if self.debounce_seconds is not None else settings.debounce_seconds))

    def _redis(self):
        from airflow.providers.redis.hooks.redis import RedisHook

        return RedisHook(redis_conn_id=self.redis_conn_id).get_conn()

    @staticmethod
    def _read(redis, last_fired: float) -> tuple[int, float | None, float | None]:
        from memora_cdn.tracking.registry import PENDING, PENDING_SINCE

        pipe = redis.pipeline(transaction=False)
        pipe.scard(PENDING)
        pipe.zrange(PENDING_SINCE, 0, 0, withscores=True)
        pipe.zrangebyscore(PENDING_SINCE, f"({last_fired}" if last_fired != float("-inf") else "-inf", "+inf",
                           start=0, num=1, withscores=True)
        count, oldest, fresh = pipe.execute()
        return int(count), (float(oldest[0][1]) if oldest else None), (float(fresh[0][1]) if fresh else None)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        redis = await asyncio.to_thread(self._redis)
        (threshold, debounce), limits_read = await asyncio.to_thread(self._limits), time.monotonic()
        last_fired = float("-inf")
        while True:
            reason = None
            try:
                if time.monotonic() - limits_read > SETTINGS_REFRESH:
                    (threshold, debounce), limits_read = await asyncio.to_thread(self._limits), time.monotonic()
                count, oldest, fresh = await asyncio.to_thread(self._read, redis, last_fired)
                now = time.time()
                reason = decide(now=now, count=count, oldest=oldest, fresh=fresh, threshold=threshold,
                                debounce=debounce, last_fired=last_fired, cooldown=self.cooldown)
            except Exception as exc:  # Redis or the Variable unavailable: keep watching
                log.warning("pending-plans watcher: %s: %s", type(exc).__name__, exc)
            if reason:
                last_fired = now
                age = round(now - oldest, 1) if oldest is not None else None
                log.info("%d plan(s) pending, oldest %s s (%s): starting memora_cdn_sync", count, age, reason)
                yield TriggerEvent({"pending": count, "oldest_age": age, "reason": reason,
                                    "threshold": threshold, "debounce_seconds": debounce})
            await asyncio.sleep(self.poll_interval)
