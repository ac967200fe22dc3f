"""memora-cdn-producer: the Frappe side of Memora's CDN export (SPEC §7).

Installed into a Frappe bench and called from the Memora app's hooks.py (docs/frappe.md has the lines):
an edit marks the plans it affects as pending, for the exporter (an Airflow DAG bundle, installed elsewhere)
to rebuild. Imports nothing from Airflow or from the exporter package; only the standard library and `redis`.

Modules:
- `contract`: the Redis keys and the sync-log fallback row both sides agree on;
- `plans`:    which plans a change affects (`affected_plans`, one SELECT at most);
- `queue`:    Redis (SADD + ZADD NX pending_since) or the fallback rows (`queue_plans`, `mark_changed`);
- `hooks`:    the Frappe `doc_events` handlers (`on_change`, `on_rename`); imports `frappe`, so it is not
              imported here.
"""
from memora_cdn_producer.contract import PENDING, PENDING_SINCE, REDIS_URL_KEY
from memora_cdn_producer.plans import DOCTYPES, affected_plans
from memora_cdn_producer.queue import mark_changed, queue_plans

__all__ = ["DOCTYPES", "PENDING", "PENDING_SINCE", "REDIS_URL_KEY", "affected_plans", "mark_changed", "queue_plans"]
__version__ = "0.5.0"
