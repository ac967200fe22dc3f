"""What the producer writes and the exporter reads: Redis key names and the fallback row of `tabCDN Sync Log`.

These values are a contract between two separately installed packages (this one inside the Frappe bench,
`memora_cdn` inside Airflow), so they are spelled out here rather than imported from the exporter;
`tests/test_producer_contract.py` checks that both sides agree.

Redis (SPEC §7):

- ``cdn_export:pending_plans`` (set): plan names waiting for a rebuild. The producer ``SADD``s here.
- ``cdn_export:pending_since`` (sorted set): plan name -> score, the Unix time in seconds when the plan was
  first marked since the exporter last took it. Written with ``ZADD NX`` in the same ``MULTI``/``EXEC`` as the
  ``SADD``, so a plan already waiting keeps its first time; the exporter removes the member when it claims the
  plan, and its debounce reads the oldest score (``ZRANGE 0 0``) without scanning the set.

Fallback (Redis not configured or not reachable): one ``tabCDN Sync Log`` row per plan with
``status='Queued'``, ``is_fallback=1``, ``triggered_by='Fallback Recovery'``; the exporter's next sync run
moves those plans into the pending set. The row's ``creation`` is the time the plan was marked.
"""
from __future__ import annotations

PREFIX = "cdn_export:"
PENDING = PREFIX + "pending_plans"
PENDING_SINCE = PREFIX + "pending_since"

SYNC_LOG_TABLE = "`tabCDN Sync Log`"
FALLBACK_STATUS = "Queued"
FALLBACK_TRIGGER = "Fallback Recovery"
FALLBACK_OWNER = "Administrator"
#: the longest reason text stored in the row's `error_message`
FALLBACK_REASON_MAX = 1000

#: site config key (site_config.json or common_site_config.json) holding the exporter's Redis URL
REDIS_URL_KEY = "memora_cdn_redis_url"
