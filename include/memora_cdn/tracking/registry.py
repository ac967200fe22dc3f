"""The Redis change registry (SPEC §7): pending plans, per-run claims, per-plan build locks, dead letters.

Keys (prefix `cdn_export:`):
- `pending_plans`  set    plan names waiting for a rebuild; the Frappe side SADDs here
- `claim:{run}`    set    plans a sync run took from `pending_plans`; `claims` (hash claim key -> epoch)
                          lists the live claims so that a crashed run's claim is recovered by the next one
- `lock:{plan}`    string build lock: a random token, TTL <= 300 s, renewed while a build runs,
                          released only by its holder
- `dead_letter`    hash   plan -> JSON {error, failed_at} for plans that failed all their retries
- `renewals`       zset   plan -> epoch second when its presigned media URLs pass half-life
- `pending_since`  zset   plan -> epoch seconds when it became pending (first mark since its last claim); the
                          Frappe side writes it with ZADD NX in the same transaction as the SADD. The debounce
                          trigger starts a run when the oldest is `debounce_seconds` old; a claim removes it
                          and hands the time to the build, which records the edit-to-CDN latency
- `latency`        zset   "plan:finished" -> finished epoch; its members carry the latency (last hour kept)

Every multi-step change is one Lua script, so no SADD from the Frappe side can fall between two
commands and be lost. Redis returns bytes (RedisHook has no decode_responses): names are decoded here.
"""
from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import monotonic as _monotonic  # the build budget: elapsed time, not the wall clock
from typing import Iterable, Iterator

log = logging.getLogger(__name__)

PREFIX = "cdn_export:"
PENDING = PREFIX + "pending_plans"
CLAIMS = PREFIX + "claims"
DEAD_LETTER = PREFIX + "dead_letter"
RENEWALS = PREFIX + "renewals"  # sorted set: plan -> epoch when its signed media URLs must be renewed
PENDING_SINCE = PREFIX + "pending_since"  # sorted set: plan -> epoch seconds when it became pending
LATENCY = PREFIX + "latency"  # sorted set: "seconds|plan|finished" -> finished epoch (the last hour)
LATENCY_WINDOW = 3600


def claim_key(run_id: str) -> str:
    return f"{PREFIX}claim:{run_id}"


def lock_key(plan_id: str) -> str:
    return f"{PREFIX}lock:{plan_id}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# KEYS: pending, this run's claim, claims registry, renewals, pending_since.
# ARGV: batch size, now, this claim's key, grace.
# 1. plans whose signed URLs are due for renewal join pending; 2. another claim older than `grace` seconds
#    belongs to a run that is over (the sync DAG runs one at a time; the grace keeps a forced overlapping run's
#    fresh claim out of reach): its plans go back to pending; 3. up to `batch size` plans move from pending into
#    this run's claim, and their pending-since times (or now, for a plan that has none) are returned with them.
_CLAIM = """
local recovered = 0
for _, plan in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[2])) do
  redis.call('SADD', KEYS[1], plan)
  redis.call('ZADD', KEYS[5], 'NX', ARGV[2], plan)
  redis.call('ZREM', KEYS[4], plan)
end
for _, other in ipairs(redis.call('HKEYS', KEYS[3])) do
  local since = tonumber(redis.call('HGET', KEYS[3], other)) or 0
  if other ~= ARGV[3] and tonumber(ARGV[2]) - since >= tonumber(ARGV[4]) then
    for _, plan in ipairs(redis.call('SMEMBERS', other)) do
      recovered = recovered + redis.call('SADD', KEYS[1], plan)
      redis.call('ZADD', KEYS[5], 'NX', ARGV[2], plan)
    end
    redis.call('DEL', other)
    redis.call('HDEL', KEYS[3], other)
  end
end
local plans = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
local since = {}
if #plans > 0 then
  redis.call('SADD', KEYS[2], unpack(plans))
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
  for i, plan in ipairs(plans) do
    since[i] = redis.call('ZSCORE', KEYS[5], plan) or ARGV[2]
    redis.call('ZREM', KEYS[5], plan)
  end
end
return {recovered, plans, since}
"""

# KEYS: claim, claims registry, pending, pending_since. ARGV: plan, requeue (0/1), its pending-since time.
# Removes the plan from the claim (and the claim from the registry once empty); with requeue, the plan goes back
# to pending in the same step, keeping the time it first became pending.
_RELEASE = """
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[3], ARGV[1])
end
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('HDEL', KEYS[2], KEYS[1]) end
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# KEYS: pending, pending_since. ARGV: now, plans... Marks plans pending, remembering when each first became so.
_MARK = """
local added = 0
for i = 2, #ARGV do
  added = added + redis.call('SADD', KEYS[1], ARGV[i])
  redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[i])
end
return added
"""


@dataclass
class Claim:
    key: str
    plans: list[str]
    recovered: int
    pending_since: dict[str, float] = field(default_factory=dict)  # plan -> epoch when it became pending


class PlanLocked(Exception):
    """Another build (the other DAG, or an overlapping run) holds the plan's lock."""


class LockLost(Exception):
    """The lock expired or was taken over while the build ran."""


class Registry:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._unlock = redis.register_script(_UNLOCK)
        self._mark = redis.register_script(_MARK)

    # -- pending ---------------------------------------------------------------------------------

    def mark(self, plan_ids: Iterable[str], now: float | None = None) -> int:
        plan_ids = list(plan_ids)
        if not plan_ids:
            return 0
        return int(self._mark(keys=[PENDING, PENDING_SINCE], args=[repr(now if now is not None else time.time()),
                                                                   *plan_ids]))

    def oldest_pending_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest pending change became pending (None when nothing is pending)."""
        oldest = self.redis.zrange(PENDING_SINCE, 0, 0, withscores=True)
        if not oldest:
            return None
        return max(0.0, (now if now is not None else time.time()) - float(oldest[0][1]))

    def pending_count(self) -> int:
        return int(self.redis.scard(PENDING))

    def pending(self) -> set[str]:
        return {_text(p) for p in self.redis.smembers(PENDING)}

    # -- claims ----------------------------------------------------------------------------------

    def claim(self, run_id: str, batch_size: int, recover_after: int = 120) -> Claim:
        """Take up to `batch_size` pending plans for this run, after recovering claims abandoned for `recover_after` s."""
        key = claim_key(run_id)
        recovered, plans, since = self._claim(keys=[PENDING, key, CLAIMS, RENEWALS, PENDING_SINCE],
                                              args=[batch_size, int(time.time()), key, recover_after])
        if recovered:
            log.warning("recovered %d plan(s) from the claims of runs that ended without releasing them", recovered)
        pending_since = {_text(p): float(_text(t)) for p, t in zip(plans, since)}
        return Claim(key=key, plans=sorted(pending_since), recovered=int(recovered), pending_since=pending_since)

    def release(self, run_id: str, plan_id: str, requeue: bool = False, pending_since: float | None = None) -> None:
        since = pending_since if pending_since is not None else time.time()
        self._release(keys=[claim_key(run_id), CLAIMS, PENDING, PENDING_SINCE],
                      args=[plan_id, "1" if requeue else "0", repr(since)])

    # -- edit-to-CDN latency ---------------------------------------------------------------------

    def record_latency(self, plan_id: str, pending_since: float, finished: float | None = None) -> float:
        """Record one plan's edit-to-CDN time (pending -> uploaded and purged); keeps the last hour."""
        finished = finished if finished is not None else time.time()
        seconds = max(0.0, finished - pending_since)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(LATENCY, {f"{seconds:.3f}|{plan_id}|{finished:.3f}": finished})
        pipe.zremrangebyscore(LATENCY, "-inf", finished - LATENCY_WINDOW)
        pipe.execute()
        return seconds

    def latencies(self, now: float | None = None) -> list[float]:
        """Edit-to-CDN seconds of the plans finished in the last hour, oldest first."""
        now = now if now is not None else time.time()
        members = self.redis.zrangebyscore(LATENCY, now - LATENCY_WINDOW, "+inf")
        return [float(_text(m).split("|", 1)[0]) for m in members]

    def claimed(self) -> dict[str, list[str]]:
        """Live claims: claim key -> plans (what runs are building now)."""
        return {_text(k): sorted(_text(p) for p in self.redis.smembers(_text(k))) for k in self.redis.hkeys(CLAIMS)}

    # -- signed media renewals -------------------------------------------------------------------

    def schedule_renewal(self, plan_id: str, renew_at: int | None) -> None:
        if renew_at is None:
            self.redis.zrem(RENEWALS, plan_id)
        else:
            self.redis.zadd(RENEWALS, {plan_id: renew_at})

    def renewals_due(self, now: float | None = None) -> int:
        return int(self.redis.zcount(RENEWALS, "-inf", int(now if now is not None else time.time())))

    # -- locks -----------------------------------------------------------------------------------

    @contextmanager
    def lock(self, plan_id: str, ttl_seconds: int = 300, max_hold_seconds: float | None = None) -> Iterator[None]:
        """Hold `lock:{plan}` for the block; renewed every ttl/3 by a thread; released only if still ours.

        With `max_hold_seconds` (the build's time budget) the renewal stops once the block has run that long, so
        a hung build's lock expires at most `ttl_seconds` later and another run can build the plan. A block that
        ends after its lock expired raises `LockLost` (its plan is rebuilt later; nothing is dropped).
        """
        if not 1 <= ttl_seconds <= 300:
            raise ValueError("the plan lock's TTL must be 1..300 s")
        key, token = lock_key(plan_id), secrets.token_hex(16)
        if not self.redis.set(key, token, nx=True, px=ttl_seconds * 1000):
            raise PlanLocked(f"plan {plan_id} is being built elsewhere (lock {key} is held)")
        stop = threading.Event()
        lost = threading.Event()
        over_budget = threading.Event()
        give_up_at = _monotonic() + max_hold_seconds if max_hold_seconds else None

        def renew() -> None:
            while not stop.wait(ttl_seconds / 3):
                if give_up_at is not None and _monotonic() >= give_up_at:
                    over_budget.set()
                    log.warning("plan %s: the build has run past its budget of %.0f s; no longer renewing lock %s "
                                "(it expires within %d s)", plan_id, max_hold_seconds, key, ttl_seconds)
                    return
                try:
                    if not self._renew(keys=[key], args=[token, ttl_seconds * 1000]):
                        lost.set()
                        return
                except Exception:  # Redis blip: try again next tick; the TTL still covers us
                    log.warning("could not renew lock %s; will retry", key, exc_info=True)

        renewer = threading.Thread(target=renew, name=f"lock-{plan_id}", daemon=True)
        renewer.start()
        try:
            yield
            if over_budget.is_set():
                current = self.redis.get(key)
                if current is None or _text(current) != token:
                    lost.set()
            if lost.is_set():
                raise LockLost(f"lost the lock of plan {plan_id} during the build")
        finally:
            stop.set()
            renewer.join(5)
            try:
                self._unlock(keys=[key], args=[token])
            except Exception:
                log.warning("could not release lock %s; it expires by itself", key, exc_info=True)

    def is_locked(self, plan_id: str) -> bool:
        return bool(self.redis.exists(lock_key(plan_id)))

    # -- dead letters ----------------------------------------------------------------------------

    def dead_letter(self, plan_id: str, error: str) -> None:
        entry = {"error": error[:2000], "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.redis.hset(DEAD_LETTER, plan_id, json.dumps(entry, ensure_ascii=False))

    def clear_dead_letter(self, plan_id: str) -> bool:
        return bool(self.redis.hdel(DEAD_LETTER, plan_id))

    def dead_letters(self) -> dict[str, dict[str, str]]:
        out = {}
        for plan, raw in self.redis.hgetall(DEAD_LETTER).items():
            try:
                entry = json.loads(_text(raw))
            except ValueError:  # written by hand or by an older version: the value is the error
                entry = {"error": _text(raw), "failed_at": ""}
            out[_text(plan)] = entry
        return out

    def retry_dead_letter(self, plan_id: str) -> bool:
        """Move a dead-lettered plan back to pending, atomically."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(DEAD_LETTER, plan_id)
        pipe.sadd(PENDING, plan_id)
        pipe.zadd(PENDING_SINCE, {plan_id: time.time()}, nx=True)
        removed, _, _ = pipe.execute()
        return bool(removed)
