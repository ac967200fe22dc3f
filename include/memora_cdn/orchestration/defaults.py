"""Task defaults shared by both DAGs (imported at parse time: keep it free of I/O and heavy imports)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.configuration import conf

# Caps how many plan builds run at once across both DAGs (`make airflow` creates it).
BUILD_POOL = "memora_cdn_builds"

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
