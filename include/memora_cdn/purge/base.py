"""What every purger shares (SPEC §8): the plan's changed keys, the URLs and prefixes they become, the report.

One planning step (:func:`plan_targets`) decides, per plan, between purging its URLs and purging its prefix;
each provider module (``cloudflare``, ``cloudfront``, ``log_only``) only sends what it is given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import quote

from memora_cdn.engine import keys as _keys

log = logging.getLogger(__name__)

DEFAULT_CLOUDFLARE_API = "https://api.cloudflare.com"
CLOUDFRONT_MAX_PATHS = 3000  # CreateInvalidation: file paths per distribution in progress / per call
_LOG_SAMPLE = 5
# Characters left as-is when a bucket key becomes a URL path (RFC 3986 pchar minus "*", which CloudFront
# reads as a wildcard). Ordinary keys ("plans/P1/lessons/abc.json") are unchanged.
_PATH_SAFE = "/-_.~!$&'()+,;=:@"


# --------------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanPurge:
    plan_id: str
    keys: tuple[str, ...]  # bucket keys that changed or were deleted, e.g. "plans/P1/lessons/abc.json"
    whole_prefix: bool = False  # True -> purge the plan's prefix "plans/{plan_id}/" instead of the keys


@dataclass
class PurgeReport:
    provider: str
    urls_purged: int
    prefixes_purged: int
    requests: int
    retries: int
    failures: list[str] = field(default_factory=list)  # human-readable; never contains the token

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "urls_purged": self.urls_purged,
            "prefixes_purged": self.prefixes_purged,
            "requests": self.requests,
            "retries": self.retries,
            "failures": list(self.failures),
        }


class PurgeError(Exception):
    """Raised once every batch was tried and at least one still failed.

    The message names the provider and the HTTP status (or network error); never the token.
    ``report`` carries the full :class:`PurgeReport` (what did get purged, requests, retries, failures).
    """

    def __init__(self, message: str, report: PurgeReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class PurgeTargets:
    """What to purge, independent of the provider."""

    keys: tuple[str, ...]  # individual keys, deduplicated, in first-seen order
    prefix_plans: tuple[str, ...]  # plan ids purged by prefix "plans/{plan_id}/"


def plan_prefix(plan_id: str) -> str:
    """The plan's folder as the bucket (and so the CDN) names it: the plan name encoded as in every key."""
    return _keys.plan_prefix(plan_id)


def plan_targets(plans: Iterable[PlanPurge], prefix_threshold: int) -> PurgeTargets:
    """Merge plans by id, then decide per plan: individual keys, or the plan's prefix.

    A plan is purged by prefix when ``whole_prefix`` is set or it has more than ``prefix_threshold`` distinct
    keys. Keys of such a plan that lie outside its prefix (if any) are still purged one by one.
    Order is stable (first appearance) and nothing is listed twice.
    """
    merged: dict[str, tuple[list[str], bool]] = {}
    for plan in plans:
        keys, whole = merged.setdefault(plan.plan_id, ([], False))
        keys.extend(plan.keys)
        merged[plan.plan_id] = (keys, whole or plan.whole_prefix)

    keys_out: dict[str, None] = {}
    prefix_plans: list[str] = []
    for plan_id, (keys, whole) in merged.items():
        distinct = list(dict.fromkeys(k.lstrip("/") for k in keys if k and k.strip("/")))
        if whole or len(distinct) > prefix_threshold:
            prefix_plans.append(plan_id)
            prefix = plan_prefix(plan_id)
            distinct = [k for k in distinct if not k.startswith(prefix)]
        for key in distinct:
            keys_out.setdefault(key, None)
    return PurgeTargets(keys=tuple(keys_out), prefix_plans=tuple(prefix_plans))


def _key_path(key: str) -> str:
    return quote(key.lstrip("/"), safe=_PATH_SAFE)


def key_urls(cdn_base_url: str, keys: Iterable[str]) -> list[str]:
    """URL = cdn_base_url.rstrip("/") + "/" + key, deduplicated, order kept."""
    base = cdn_base_url.rstrip("/")
    return list(dict.fromkeys(f"{base}/{_key_path(k)}" for k in keys))


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _sample(items: Sequence[str]) -> str:
    head = ", ".join(items[:_LOG_SAMPLE])
    return head + (f", … (+{len(items) - _LOG_SAMPLE} more)" if len(items) > _LOG_SAMPLE else "")


# --------------------------------------------------------------------------------------------------------------
