"""The debounce (issue 14): when a plan became pending is kept beside the pending set, a run starts when the oldest
change is `debounce_seconds` old (or `batch_threshold` plans wait), and the edit-to-CDN latency is recorded."""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from memora_cdn.tracking.registry import PENDING, PENDING_SINCE
from memora_cdn.tracking.triggers import PendingPlansTrigger, decide
from tests.support import REDIS_PORT

INF = float("-inf")


@pytest.mark.parametrize("case, kwargs, expected", [
    ("nothing pending", dict(count=0, oldest=None, fresh=None, last_fired=INF), None),
    ("a lone edit, younger than the debounce", dict(count=1, oldest=95.0, fresh=95.0, last_fired=INF), None),
    ("a lone edit, debounce reached", dict(count=1, oldest=80.0, fresh=80.0, last_fired=INF), "debounce"),
    ("the threshold, before the debounce", dict(count=50, oldest=99.0, fresh=99.0, last_fired=INF), "threshold"),
    ("threshold again inside the cooldown", dict(count=60, oldest=99.0, fresh=None, last_fired=70.0), None),
    ("threshold again after the cooldown", dict(count=60, oldest=99.0, fresh=None, last_fired=30.0), "threshold"),
    ("covered by the last event, run not done yet", dict(count=3, oldest=50.0, fresh=None, last_fired=70.0), None),
    ("covered by the last event, still pending a cooldown later", dict(count=3, oldest=20.0, fresh=None,
                                                                      last_fired=30.0), "backlog"),
    ("a new edit after the last event reaches the debounce even inside the cooldown",
     dict(count=4, oldest=20.0, fresh=80.0, last_fired=75.0), "debounce"),
    ("pending without times (an older producer): left to the cron", dict(count=3, oldest=None, fresh=None,
                                                                         last_fired=INF), None),
])
def test_decide(case, kwargs, expected):
    assert decide(now=100.0, threshold=50, debounce=15.0, cooldown=60.0, **kwargs) == expected, case


def _trigger(monkeypatch, **kwargs):
    import redis as redis_lib

    monkeypatch.setattr(PendingPlansTrigger, "_redis",
                        lambda self: redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=15))
    return PendingPlansTrigger(threshold=50, poll_interval=0.1, cooldown=60, **kwargs)


def test_marks_keep_the_first_time_a_plan_became_pending(registry, redis_db):
    registry.mark(["P1", "P2"], now=1000.0)
    registry.mark(["P1", "P3"], now=1005.0)  # P1 again: its first time stays
    assert {p.decode(): s for p, s in redis_db.zrange(PENDING_SINCE, 0, -1, withscores=True)} == {
        "P1": 1000.0, "P2": 1000.0, "P3": 1005.0}
    claim = registry.claim("run-1", batch_size=10)
    assert claim.pending_since == {"P1": 1000.0, "P2": 1000.0, "P3": 1005.0}
    assert redis_db.zcard(PENDING_SINCE) == 0 and redis_db.scard(PENDING) == 0
    registry.release("run-1", "P2", requeue=True, pending_since=1000.0)  # locked elsewhere: back, same time
    assert redis_db.zscore(PENDING_SINCE, "P2") == 1000.0
    registry.mark(["P1"], now=2000.0)  # marked again after its claim: a new change, a new time
    assert redis_db.zscore(PENDING_SINCE, "P1") == 2000.0


def test_recovered_claims_and_dead_letter_retries_get_a_time(registry, redis_db):
    registry.mark(["P1"], now=time.time())
    registry.claim("crashed-run", batch_size=10)
    claim = registry.claim("next-run", batch_size=10, recover_after=0)
    assert claim.plans == ["P1"] and claim.recovered == 1 and claim.pending_since["P1"] > 0
    registry.dead_letter("P9", "boom")
    registry.retry_dead_letter("P9")
    assert redis_db.zscore(PENDING_SINCE, "P9") is not None


def test_one_event_for_several_edits_inside_the_window(registry, monkeypatch):
    trigger = _trigger(monkeypatch, debounce_seconds=1)

    async def events_in(seconds: float) -> list:
        gen = trigger.run()
        got = []

        async def collect():
            async for event in gen:
                got.append((time.monotonic(), event.payload))

        task = asyncio.ensure_future(collect())
        started = time.monotonic()
        for plan in ("P1", "P2", "P1", "P3"):  # four saves within half a second
            registry.mark([plan])
            await asyncio.sleep(0.1)
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return [(at - started, payload) for at, payload in got]

    events = asyncio.run(events_in(3))
    assert len(events) == 1, events
    at, payload = events[0]
    assert payload["reason"] == "debounce" and payload["pending"] == 3
    assert 0.9 <= at <= 2.5, at  # the first save's debounce, not the last one's, nor the five-minute cron


def test_latency_is_recorded_and_kept_for_an_hour(registry):
    now = time.time()
    registry.record_latency("P1", pending_since=now - 4000, finished=now - 3700)  # finished over an hour ago
    registry.record_latency("P1", pending_since=now - 50, finished=now - 20)
    registry.record_latency("P2", pending_since=now - 12.5, finished=now)
    assert registry.latencies(now=now) == [30.0, 12.5]
    assert registry.oldest_pending_age() is None
    registry.mark(["P3"], now=now - 42)
    assert 41 <= registry.oldest_pending_age(now=now) <= 43
