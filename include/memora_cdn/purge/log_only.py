"""``purge_provider: none``: log what would be purged, purge nothing."""
from __future__ import annotations

import logging


from memora_cdn.purge.base import PlanPurge, PurgeReport, _sample, key_urls, plan_prefix, plan_targets

log = logging.getLogger(__name__)


class LogOnlyPurger:
    """``purge_provider: none``. Logs the count and the first few URLs; the report counts what *would* have
    been purged (requests = 0)."""

    provider = "none"

    def __init__(self, logger: logging.Logger | None = None):
        self.log = logger or log

    def purge(self, cdn_base_url: str, plans: list[PlanPurge], prefix_threshold: int) -> PurgeReport:
        targets = plan_targets(plans, prefix_threshold)
        urls = key_urls(cdn_base_url, targets.keys)
        base = cdn_base_url.rstrip("/")
        prefixes = list(dict.fromkeys(f"{base}/{plan_prefix(p)}" for p in targets.prefix_plans))
        self.log.info(
            "purge_provider none: would purge %d URL(s) and %d prefix(es)%s%s",
            len(urls), len(prefixes),
            f"; URLs: {_sample(urls)}" if urls else "",
            f"; prefixes: {_sample(prefixes)}" if prefixes else "",
        )
        return PurgeReport(self.provider, len(urls), len(prefixes), 0, 0, [])


# --------------------------------------------------------------------------------------------------------------
# From Airflow connections (SPEC §10)
