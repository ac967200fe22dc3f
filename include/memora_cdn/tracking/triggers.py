"""Event-driven start of `memora_cdn_sync` when `batch_threshold` plans are pending (SPEC §7).

`PendingPlansTrigger` runs in Airflow's triggerer, attached to the `memora_pending_plans` asset through
an `AssetWatcher`; the sync DAG is scheduled on its cron *or* that asset. The trigger polls SCARD of
`cdn_export:pending_plans` every few seconds and emits an event when the set reaches the threshold,
then at most once per `cooldown` while it stays there (a backlog larger than one batch keeps runs
coming; events that arrive while a run is active coalesce into the next run).

The triggerer must be able to import this module: `include/` has to be on its PYTHONPATH too.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)


class PendingPlansTrigger(BaseEventTrigger):
    def __init__(self, threshold: int | None = None, redis_conn_id: str = "memora_redis",
                 poll_interval: float = 5.0, cooldown: float = 60.0) -> None:
        super().__init__()
        self.threshold = threshold  # None: `batch_threshold` from memora_cdn_settings, re-read every minute
        self.redis_conn_id = redis_conn_id
        self.poll_interval = poll_interval
        self.cooldown = cooldown

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("memora_cdn.tracking.triggers.PendingPlansTrigger", {
            "threshold": self.threshold, "redis_conn_id": self.redis_conn_id,
            "poll_interval": self.poll_interval, "cooldown": self.cooldown,
        })

    def _threshold(self) -> int:
        if self.threshold is not None:
            return self.threshold
        from memora_cdn.settings import load_settings

        return load_settings().batch_threshold

    def _redis(self):
        from airflow.providers.redis.hooks.redis import RedisHook

        return RedisHook(redis_conn_id=self.redis_conn_id).get_conn()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from memora_cdn.tracking.registry import PENDING

        redis = await asyncio.to_thread(self._redis)
        threshold, threshold_read = await asyncio.to_thread(self._threshold), time.monotonic()
        last_fired = -float("inf")
        while True:
            try:
                if time.monotonic() - threshold_read > 60:
                    threshold, threshold_read = await asyncio.to_thread(self._threshold), time.monotonic()
                count = await asyncio.to_thread(redis.scard, PENDING)
            except Exception as exc:  # Redis or the Variable unavailable: keep watching
                log.warning("pending-plans watcher: %s: %s", type(exc).__name__, exc)
                count = 0
            now = time.monotonic()
            if count >= threshold and now - last_fired >= self.cooldown:
                last_fired = now
                log.info("%d plans pending (threshold %d): starting memora_cdn_sync", count, threshold)
                yield TriggerEvent({"pending": int(count), "threshold": threshold})
            elif count < threshold:
                last_fired = -float("inf")
            await asyncio.sleep(self.poll_interval)
