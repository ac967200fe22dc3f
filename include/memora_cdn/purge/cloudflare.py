"""Cloudflare: ``POST {api}/client/v4/zones/{zone_id}/purge_cache`` with a bearer token, ``{"files": [...]}`` /
``{"prefixes": [...]}`` in batches, honouring 429 + ``Retry-After``, retrying 5xx and network errors with exponential
backoff inside an overall deadline. The API token never appears in a log line, a report or an exception message.
"""
from __future__ import annotations

import email.utils
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from memora_cdn.purge.base import (
    DEFAULT_CLOUDFLARE_API,
    PlanPurge,
    PurgeError,
    PurgeReport,
    _chunks,
    _key_path,
    _sample,
    key_urls,
    plan_prefix,
    plan_targets,
)

log = logging.getLogger(__name__)


def parse_retry_after(value: str | None, *, now: Callable[[], datetime] | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds ("30", also tolerates "1.5") or an HTTP date. None if absent
    or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now() if now is not None else datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def _envelope_errors(body: Any) -> str:
    """"[10000] Authentication error; [7003] ..." from a Cloudflare envelope, or ""."""
    if not isinstance(body, dict):
        return ""
    parts = []
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            code = err.get("code")
            msg = str(err.get("message", "")).strip()
            parts.append(f"[{code}] {msg}" if code is not None else msg)
        else:
            parts.append(str(err))
    return "; ".join(p for p in parts if p)[:300]


@dataclass
class _BatchOutcome:
    ok: bool
    requests: int
    retries: int
    reason: str = ""


class CloudflarePurger:
    """Purge by URL (``files``) and by prefix (``prefixes``) through Cloudflare's zone purge_cache API.

    ``sleep`` and ``clock`` are injectable so tests do not wait: every wait goes through ``sleep`` and the
    deadline is measured with ``clock`` (monotonic seconds).
    """

    provider = "cloudflare"

    def __init__(
        self,
        api_base: str,
        token: str,
        zone_id: str,
        *,
        files_per_request: int = 30,
        timeout: float = 10.0,
        deadline_seconds: float = 50.0,
        max_attempts: int = 6,
        session=None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 30.0,
    ):
        if not token:
            raise ValueError("Cloudflare purge: the API token (connection password) is empty")
        if not zone_id:
            raise ValueError("Cloudflare purge: zone_id is empty")
        if files_per_request < 1:
            raise ValueError(f"Cloudflare purge: files_per_request must be >= 1, got {files_per_request}")
        if max_attempts < 1:
            raise ValueError(f"Cloudflare purge: max_attempts must be >= 1, got {max_attempts}")
        self.api_base = (api_base or DEFAULT_CLOUDFLARE_API).rstrip("/")
        self._token = token
        self.zone_id = zone_id
        self.files_per_request = files_per_request
        self.timeout = timeout
        self.deadline_seconds = deadline_seconds
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock
        if session is None:
            import requests

            session = requests.Session()
        self.session = session

    def __repr__(self) -> str:  # never show the token
        return f"CloudflarePurger(api_base={self.api_base!r}, zone_id={self.zone_id!r}, token=***)"

    @property
    def endpoint(self) -> str:
        return f"{self.api_base}/client/v4/zones/{self.zone_id}/purge_cache"

    def _scrub(self, text: str) -> str:
        # Defence in depth: nothing we build contains the token, but a server could echo it back.
        return text.replace(self._token, "***") if len(self._token) >= 6 else text

    # -- public ----------------------------------------------------------------------------------------------
    def purge(self, cdn_base_url: str, plans: list[PlanPurge], prefix_threshold: int) -> PurgeReport:
        targets = plan_targets(plans, prefix_threshold)
        files = key_urls(cdn_base_url, targets.keys)
        prefixes = cloudflare_prefixes(cdn_base_url, targets.prefix_plans)
        report = PurgeReport(self.provider, 0, 0, 0, 0, [])
        if not files and not prefixes:
            log.info("cloudflare purge: nothing to purge")
            return report
        log.info(
            "cloudflare purge: %d URL(s) and %d prefix(es) for %d plan(s), zone %s",
            len(files), len(prefixes), len({p.plan_id for p in plans}), self.zone_id,
        )
        if files:
            log.debug("cloudflare purge: URLs %s", _sample(files))
        if prefixes:
            log.debug("cloudflare purge: prefixes %s", _sample(prefixes))

        start = self._clock()
        batches = [("files", b) for b in _chunks(files, self.files_per_request)]
        batches += [("prefixes", b) for b in _chunks(prefixes, self.files_per_request)]
        for index, (kind, items) in enumerate(batches, 1):
            outcome = self._send(kind, items, start)
            report.requests += outcome.requests
            report.retries += outcome.retries
            if outcome.ok:
                if kind == "files":
                    report.urls_purged += len(items)
                else:
                    report.prefixes_purged += len(items)
            else:
                report.failures.append(
                    self._scrub(f"batch {index}/{len(batches)} ({len(items)} {kind}): {outcome.reason}")
                )

        log.info(
            "cloudflare purge: %d URL(s), %d prefix(es) purged in %d request(s), %d retry(ies), %d failed batch(es)",
            report.urls_purged, report.prefixes_purged, report.requests, report.retries, len(report.failures),
        )
        if report.failures:
            shown = "; ".join(report.failures[:3])
            more = f" (+{len(report.failures) - 3} more)" if len(report.failures) > 3 else ""
            raise PurgeError(
                self._scrub(
                    f"cloudflare purge failed for {len(report.failures)} of {len(batches)} batch(es): {shown}{more}"
                ),
                report,
            )
        return report

    # -- one batch with retries --------------------------------------------------------------------------------
    def _backoff(self, retry_number: int) -> float:
        return min(self.backoff_cap, self.backoff_base * (2 ** (retry_number - 1)))

    def _send(self, kind: str, items: list[str], start: float) -> _BatchOutcome:
        import requests

        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        body = json.dumps({kind: items})
        requests_made = 0
        retries = 0
        attempt = 0
        while True:
            remaining = self.deadline_seconds - (self._clock() - start)
            if remaining <= 0:
                return _BatchOutcome(False, requests_made, retries, self._deadline_reason(attempt, "before sending"))
            attempt += 1
            requests_made += 1
            wait: float | None = None
            try:
                resp = self.session.post(
                    self.endpoint, data=body, headers=headers, timeout=max(0.1, min(self.timeout, remaining))
                )
            except requests.Timeout:
                reason = f"cloudflare request timed out after {min(self.timeout, remaining):g}s"
            except requests.RequestException as exc:  # connection refused/reset, DNS, …
                reason = f"cloudflare connection error ({type(exc).__name__})"
            else:
                status = resp.status_code
                try:
                    payload = resp.json()
                except ValueError:
                    payload = None
                detail = _envelope_errors(payload)
                reason = f"cloudflare HTTP {status}" + (f": {detail}" if detail else "")
                if 200 <= status < 300:
                    if isinstance(payload, dict) and payload.get("success") is True:
                        return _BatchOutcome(True, requests_made, retries)
                    # success:false (or no envelope) in a 2xx body: the purge was not accepted. Not retried.
                    return _BatchOutcome(
                        False, requests_made, retries,
                        f"cloudflare HTTP {status} with success=false" + (f": {detail}" if detail else ""),
                    )
                if status == 429:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    wait = min(retry_after, self.max_retry_after) if retry_after is not None else None
                    reason = "cloudflare HTTP 429 (rate limited" + (
                        f", Retry-After {resp.headers.get('Retry-After')})" if retry_after is not None else ")"
                    ) + (f": {detail}" if detail else "")
                elif status < 500:
                    # 400 bad request, 401/403 bad token, 404 zone: retrying will not help.
                    return _BatchOutcome(False, requests_made, retries, reason)
                # 5xx: fall through to retry

            if attempt >= self.max_attempts:
                return _BatchOutcome(False, requests_made, retries, f"{reason}; gave up after {attempt} attempt(s)")
            if wait is None:
                wait = self._backoff(attempt)
            remaining = self.deadline_seconds - (self._clock() - start)
            if wait >= remaining:
                return _BatchOutcome(
                    False, requests_made, retries,
                    f"{reason}; next retry in {wait:g}s would pass the {self.deadline_seconds:g}s deadline",
                )
            log.warning(
                "cloudflare purge: %s; retry %d/%d in %.2fs",
                self._scrub(reason), attempt, self.max_attempts - 1, wait,
            )
            self._sleep(wait)
            retries += 1

    def _deadline_reason(self, attempt: int, when: str) -> str:
        return f"cloudflare purge deadline of {self.deadline_seconds:g}s reached {when} (after {attempt} attempt(s))"


def cloudflare_prefixes(cdn_base_url: str, plan_ids: Iterable[str]) -> list[str]:
    """Cloudflare prefixes carry no scheme: "cdn.example.com[/base]/plans/{plan_id}/"."""
    parts = urlsplit(cdn_base_url if "://" in cdn_base_url else f"https://{cdn_base_url}")
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    base = f"{host}{parts.path.rstrip('/')}"
    return list(dict.fromkeys(f"{base}/{_key_path(plan_prefix(p))}" for p in plan_ids))


# --------------------------------------------------------------------------------------------------------------
# CloudFront
# --------------------------------------------------------------------------------------------------------------
