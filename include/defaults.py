"""Task defaults shared by both DAGs (imported at parse time: keep it free of I/O and heavy imports)."""
from __future__ import annotations

from datetime import timedelta

# Caps how many plan builds run at once across both DAGs (`make airflow` creates it).
BUILD_POOL = "memora_cdn_builds"

# Plan builds retry 3 times with exponential backoff; the first delay is Airflow's own
# `[core] default_task_retry_delay` (AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY), never hard-coded here.
DEFAULT_ARGS = {
    "owner": "memora-platform",
    "retries": 3,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
}

TAGS = ["memora", "cdn"]
