"""Task defaults shared by both DAGs (imported at parse time: keep it free of I/O and heavy imports)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.configuration import conf

# The pool of the plan builds of both DAGs: Airflow config `[memora_cdn] build_pool`
# (AIRFLOW__MEMORA_CDN__BUILD_POOL), read from the configuration Airflow has already loaded (no I/O here).
# Unset, builds run in `default_pool`, so an Airflow nobody prepared (Astro, MWAA, an existing cluster)
# runs them; a pool named here must exist, or the scheduler never schedules the builds.
DEFAULT_POOL = "default_pool"
# The dedicated pool `make airflow`, the Celery cluster and docker-compose create and configure; it caps how
# many plan builds run at once across both DAGs.
DEDICATED_BUILD_POOL = "memora_cdn_builds"
BUILD_POOL = (conf.get("memora_cdn", "build_pool", fallback="") or "").strip() or DEFAULT_POOL

# Plan builds retry 3 times with exponential backoff, starting from Airflow's own
# `[core] default_task_retry_delay` (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY). It is passed explicitly
# because Airflow 3.3.2 loses it for mapped tasks: a serialized mapped operator falls back to a
# hard-coded 300 s instead of the configured default.
DEFAULT_ARGS = {
    "owner": "memora-platform",
    "retries": 3,
    "retry_delay": timedelta(seconds=conf.getfloat("core", "default_task_retry_delay", fallback=300)),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
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
