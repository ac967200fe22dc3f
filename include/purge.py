"""Tell the CDN which published URLs changed (SPEC §8).

Three purgers share one planning step (:func:`plan_targets`):

* :class:`CloudflarePurger` — ``POST {api}/client/v4/zones/{zone_id}/purge_cache`` with a bearer token,
  ``{"files": [...]}`` / ``{"prefixes": [...]}`` in batches, honouring 429 + ``Retry-After``, retrying 5xx
  and network errors with exponential backoff inside an overall deadline.
* :class:`CloudFrontPurger` — ``CreateInvalidation`` with URL paths, at most 3,000 paths per call.
* :class:`LogOnlyPurger` — ``purge_provider: none``; logs what would be purged.

A purge that still fails after its retries raises :class:`PurgeError` *after* every batch was tried; the
caller reports it and lets Airflow retry the task. Uploads are never rolled back.

The API token never appears in a log line, a report or an exception message.

Plain Python: no scheduler needed. Only :func:`purger_for` touches Airflow (connections, AwsBaseHook).
"""
from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import quote, urlsplit

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
    return f"plans/{plan_id}/"


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
# Cloudflare
# --------------------------------------------------------------------------------------------------------------
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
                    reason = f"cloudflare HTTP 429 (rate limited" + (
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
# --------------------------------------------------------------------------------------------------------------
def _get_connection(conn_id: str):
    """The Airflow connection, or ValueError naming it. Uses the Task SDK's ``Connection.get`` (works outside a
    running task in 3.3: environment variables and configured secrets backends), falling back to BaseHook."""
    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover - Airflow 2 style environment
        Connection = None
    if Connection is not None:
        try:
            return Connection.get(conn_id)
        except Exception as exc:
            if type(exc).__name__ == "AirflowNotFoundException":
                raise ValueError(f"Airflow connection {conn_id!r} is not defined") from None
            log.debug("Connection.get(%r) failed (%s); trying BaseHook", conn_id, type(exc).__name__)
    try:  # pragma: no cover - only when the SDK path is unavailable
        from airflow.hooks.base import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # pragma: no cover
        raise ValueError(f"Airflow connection {conn_id!r} is not defined ({type(exc).__name__})") from None


def _extra(conn) -> dict:
    extra = getattr(conn, "extra_dejson", None)
    if isinstance(extra, dict):
        return extra
    raw = getattr(conn, "extra", None)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def cloudflare_api_base(host: str | None, port: int | None = None, schema: str | None = None) -> str:
    """API base from an http connection: host with or without scheme, optional port; default Cloudflare.
    ``schema`` (the http provider keeps the scheme there) is used when host has none; otherwise https.
    A trailing "/client/v4" on the host is tolerated and dropped (the purger appends it)."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_CLOUDFLARE_API
    if "://" not in host:
        scheme = (schema or "").strip().lower()
        scheme = scheme if scheme in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{int(port)}"
    path = parts.path.rstrip("/")
    if path.endswith("/client/v4"):
        path = path[: -len("/client/v4")]
    return f"{parts.scheme}://{netloc}{path}"


def purger_for(
    provider: str,
    *,
    conn_id: str = "memora_cdn_purge",
    aws_conn_id: str = "memora_s3",
    files_per_request: int = 30,
):
    """Build the purger from Airflow connections (SPEC §10).

    * ``cloudflare``: http connection ``conn_id``; host = API base (default https://api.cloudflare.com, with or
      without scheme, port honoured), password = API token, extra ``zone_id``.
    * ``cloudfront``: extra ``distribution_id`` on ``conn_id``; boto3 client from ``aws_conn_id`` through
      AwsBaseHook(client_type="cloudfront").
    * ``none``: :class:`LogOnlyPurger`.

    A missing connection, token, ``zone_id`` or ``distribution_id`` is a ValueError that names it.
    """
    name = (provider or "none").strip().lower()
    if name == "none":
        return LogOnlyPurger()
    if name == "cloudflare":
        conn = _get_connection(conn_id)
        extra = _extra(conn)
        zone_id = str(extra.get("zone_id") or "").strip()
        if not zone_id:
            raise ValueError(
                f"Airflow connection {conn_id!r}: extra 'zone_id' is missing (needed for Cloudflare purge)"
            )
        token = conn.password or ""
        if not token:
            raise ValueError(f"Airflow connection {conn_id!r}: password (the Cloudflare API token) is empty")
        try:  # keep the token out of task logs even if someone prints it
            from airflow.sdk.log import mask_secret

            mask_secret(token)
        except Exception:  # pragma: no cover
            pass
        api_base = cloudflare_api_base(conn.host, conn.port, getattr(conn, "schema", None))
        kwargs: dict[str, Any] = {}
        for key, cast in (("timeout", float), ("deadline_seconds", float), ("max_attempts", int)):
            if extra.get(key) is not None:
                try:
                    kwargs[key] = cast(extra[key])
                except (TypeError, ValueError):
                    raise ValueError(f"Airflow connection {conn_id!r}: extra {key!r} is not a number") from None
        return CloudflarePurger(api_base, token, zone_id, files_per_request=files_per_request, **kwargs)
    if name == "cloudfront":
        conn = _get_connection(conn_id)
        distribution_id = str(_extra(conn).get("distribution_id") or "").strip()
        if not distribution_id:
            raise ValueError(
                f"Airflow connection {conn_id!r}: extra 'distribution_id' is missing (needed for CloudFront purge)"
            )
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        client = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="cloudfront").get_conn()
        return CloudFrontPurger(client, distribution_id)
    raise ValueError(f"purge_provider {provider!r} is not one of cloudflare, cloudfront, none")
