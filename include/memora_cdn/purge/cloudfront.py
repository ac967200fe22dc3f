"""CloudFront: ``CreateInvalidation`` with URL paths, at most 3,000 paths per call."""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Callable, Sequence
from urllib.parse import urlsplit


from memora_cdn.purge.base import (
    CLOUDFRONT_MAX_PATHS,
    PlanPurge,
    PurgeError,
    PurgeReport,
    PurgeTargets,
    _chunks,
    _key_path,
    _sample,
    plan_prefix,
    plan_targets,
)

log = logging.getLogger(__name__)


def cloudfront_paths(cdn_base_url: str, targets: PurgeTargets) -> tuple[list[str], list[str]]:
    """(file paths, wildcard paths). Paths are URL paths, prefixed with the cdn_base_url's own path."""
    base_path = urlsplit(cdn_base_url if "://" in cdn_base_url else f"https://{cdn_base_url}").path.rstrip("/")
    files = list(dict.fromkeys(f"{base_path}/{_key_path(k)}" for k in targets.keys))
    wildcards = list(dict.fromkeys(f"{base_path}/{_key_path(plan_prefix(p))}*" for p in targets.prefix_plans))
    return files, wildcards


class CloudFrontPurger:
    """``CreateInvalidation`` on one distribution; boto3 does its own throttling retries."""

    provider = "cloudfront"

    def __init__(self, client, distribution_id: str, *, clock: Callable[[], float] = time.time,
                 max_paths: int = CLOUDFRONT_MAX_PATHS):
        if not distribution_id:
            raise ValueError("CloudFront purge: distribution_id is empty")
        self.client = client
        self.distribution_id = distribution_id
        self._clock = clock
        self.max_paths = max_paths

    def _caller_reference(self, paths: Sequence[str]) -> str:
        # Deterministic in the paths, plus a time component: the same paths purged again later are a new
        # invalidation (CloudFront would otherwise return the earlier one for a reused CallerReference).
        digest = hashlib.sha256("\n".join(paths).encode("utf-8")).hexdigest()[:24]
        return f"memora-{digest}-{int(self._clock() * 1000)}"

    def purge(self, cdn_base_url: str, plans: list[PlanPurge], prefix_threshold: int) -> PurgeReport:
        targets = plan_targets(plans, prefix_threshold)
        files, wildcards = cloudfront_paths(cdn_base_url, targets)
        report = PurgeReport(self.provider, 0, 0, 0, 0, [])
        paths = files + wildcards
        if not paths:
            log.info("cloudfront purge: nothing to purge")
            return report
        log.info(
            "cloudfront purge: %d path(s) and %d wildcard path(s) on distribution %s",
            len(files), len(wildcards), self.distribution_id,
        )
        log.debug("cloudfront purge: paths %s", _sample(paths))
        batches = _chunks(paths, self.max_paths)
        wildcard_set = set(wildcards)
        for index, batch in enumerate(batches, 1):
            report.requests += 1
            try:
                resp = self.client.create_invalidation(
                    DistributionId=self.distribution_id,
                    InvalidationBatch={
                        "Paths": {"Quantity": len(batch), "Items": batch},
                        "CallerReference": self._caller_reference(batch),
                    },
                )
            except Exception as exc:  # botocore ClientError / EndpointConnectionError …
                err = getattr(exc, "response", None) or {}
                code = (err.get("Error") or {}).get("Code") or type(exc).__name__
                status = (err.get("ResponseMetadata") or {}).get("HTTPStatusCode")
                msg = (err.get("Error") or {}).get("Message") or ""
                report.failures.append(
                    f"batch {index}/{len(batches)} ({len(batch)} paths): cloudfront "
                    + (f"HTTP {status} " if status else "")
                    + f"{code}" + (f": {msg[:200]}" if msg else "")
                )
                continue
            inv = (resp or {}).get("Invalidation") or {}
            log.info(
                "cloudfront purge: invalidation %s (%s) for %d path(s)", inv.get("Id"), inv.get("Status"), len(batch)
            )
            n_wild = sum(1 for p in batch if p in wildcard_set)
            report.prefixes_purged += n_wild
            report.urls_purged += len(batch) - n_wild
        if report.failures:
            raise PurgeError(
                f"cloudfront purge failed for {len(report.failures)} of {len(batches)} invalidation(s): "
                + "; ".join(report.failures[:3]),
                report,
            )
        return report


# --------------------------------------------------------------------------------------------------------------
# none
# --------------------------------------------------------------------------------------------------------------
