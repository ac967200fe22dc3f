"""Task defaults shared by both DAGs (imported at parse time: keep it free of I/O and heavy imports).

Retries happen between runs, not inside them (SPEC §7, docs/operations.md): a plan that fails is retried by a
later sync run once its backoff has passed (`memora_cdn.tracking.run`), so no run ever sits in a retry delay.
Inside a run a task gets at most one short retry, for a transient blip; every task has an execution_timeout
(sizes in `memora_cdn.limits`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.configuration import conf

from memora_cdn import limits

# The pool of the plan builds of both DAGs: Airflow config `[memora_cdn] build_pool`
# (AIRFLOW__MEMORA_CDN__BUILD_POOL), read from the configuration Airflow has already loaded (no I/O here).
# Unset, builds run in `default_pool`, so an Airflow nobody prepared (Astro, MWAA, an existing cluster)
# runs them; a pool named here must exist, or the scheduler never schedules the builds.
DEFAULT_POOL = "default_pool"
# The dedicated pool `make airflow`, the Celery cluster and docker-compose create and configure; it caps how
# many plan builds run at once across both DAGs.
DEDICATED_BUILD_POOL = "memora_cdn_builds"
BUILD_POOL = (conf.get("memora_cdn", "build_pool", fallback="") or "").strip() or DEFAULT_POOL

# The in-run retry is a fixed short delay, passed explicitly: the between-runs schedule is the one that starts from
# `[core] default_task_retry_delay` (read at run time by memora_cdn.tracking.run). Airflow 3.3.2 also loses the
# configured default for mapped tasks (a serialized mapped operator falls back to a hard-coded 300 s).
DEFAULT_ARGS = {
    "owner": "memora-platform",
    "retries": limits.BUILD_IN_RUN_RETRIES,
    "retry_delay": timedelta(seconds=limits.BUILD_IN_RUN_RETRY_DELAY),
    "retry_exponential_backoff": 0,
    "execution_timeout": timedelta(seconds=limits.PURGE_TIMEOUT),  # every task; the DAGs set tighter ones
    # A bad `memora_cdn_settings` will not fix itself between retries: fail at once, naming the key.
    "retry_policy": ExceptionRetryPolicy(rules=[
        RetryRule(exception="memora_cdn.settings.SettingsError", action=RetryAction.FAIL,
                  reason="memora_cdn_settings is invalid; fix the Variable and clear the task"),
        # A refused removal waits for an operator (or a database that lists its plans again), not for a retry.
        RetryRule(exception="memora_cdn.engine.removal.RemovalRefused", action=RetryAction.FAIL,
                  reason="the removal guard refused; see the message, confirm with confirm_removals"),
    ]),
}

TAGS = ["memora", "cdn"]

# What both DAGs share: no catchup, one run at a time, the task defaults above.
DAG_ARGS = {
    "start_date": datetime(2026, 1, 1, tzinfo=timezone.utc),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
    "tags": TAGS,
}


def timeout(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def final_try(ti) -> bool:
    """True on a task's last try in this run (no in-run retry left): then a failed plan gets its between-runs
    retry scheduled, or is dead-lettered. Clearing a task in the UI gives it a new try and a new retry."""
    return ti.try_number > ti.max_tries

