"""What operators look at and do (SPEC §7, §9): the data layer of the dashboard plugin and of `memora_cdn.ops.cli`.

Plain functions over a `Registry` (Redis), a DB-API connection to the Frappe database and, for
`verify`, an S3 client: no web framework and no command-line parsing here, so the API
(`plugins/memora_cdn_dashboard.py`) and the CLI (`include/cli.py`) return the same figures.

Bad input raises an `OperatorError` (a `ValueError`) whose `status_code` says how an API answers it
(422 malformed, 404 unknown) and whose message says what is wrong. Error texts that came from a
build (dead letters, sync log rows) pass through `redact()` before they leave this module, so a
credential that slipped into an exception message is never shown.
"""
from __future__ import annotations

import hashlib
import re
import statistics
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from memora_cdn.engine import keys
from memora_cdn.tracking import sync_log as _sync_log
from memora_cdn.tracking.registry import CLAIMS, PREFIX, Registry

OVERDUE_AFTER = timedelta(hours=24)
FAILURE_WINDOW = timedelta(hours=24)
MAX_LIMIT = 500
FAILURE_STATUSES = ("Failed", "Dead Letter")


# -- errors ----------------------------------------------------------------------------------------


class OperatorError(ValueError):
    """A request an operator made that cannot be carried out; the message says why."""

    status_code = 400


class InvalidRequest(OperatorError):
    """Malformed input: a name that cannot be a plan, an unknown status, a limit out of range."""

    status_code = 422


class UnknownPlan(OperatorError):
    """A well-formed name that is not a plan (or not in the dead letter hash, for a retry)."""

    status_code = 404


# -- small helpers ---------------------------------------------------------------------------------

_SECRET_PATTERNS = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"(?P<pre>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.I), r"\g<pre>***"),
    # presigned URL signatures and credentials
    (re.compile(r"(?P<pre>X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+", re.I), r"\g<pre>***"),
    (re.compile(r"(?P<pre>\b(?:Signature|AWSAccessKeyId|x-amz-security-token)=)[^&\s\"']+"), r"\g<pre>***"),
    # bearer tokens and password/secret/token assignments
    (re.compile(r"(?P<pre>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\g<pre>***"),
    (re.compile(r"(?P<pre>\b(?:password|passwd|pwd|secret|token|api_key|apikey|aws_secret_access_key)"
                r"[\"']?\s*[=:]\s*[\"']?)[^\s\"',;&}]+", re.I), r"\g<pre>***"),
)


def redact(text: str | None) -> str | None:
    """`text` with anything that looks like a credential replaced by `***`."""
    if not text:
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def iso(value: Any) -> str | None:
    """A database datetime (naive UTC, as the sync log stores it) or epoch seconds as ISO 8601 UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _utc_naive(now: datetime | None) -> datetime:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now


def check_plan_name(plan_id: Any) -> str:
    """The name, or `InvalidRequest` when it cannot be a plan name (the same rule as bucket keys)."""
    try:
        return keys.check_name(plan_id, "plan")
    except keys.UnsafeName as exc:
        raise InvalidRequest(str(exc)) from None


def _check_plan_names(plans: Iterable[Any]) -> list[str]:
    plans = list(plans)
    if not plans:
        raise InvalidRequest("no plan given")
    bad = [p for p in plans if not keys.is_safe_name(p)]
    if bad:
        shown = ", ".join(repr(p if not isinstance(p, str) or len(p) <= 60 else p[:60] + "…") for p in bad[:10])
        raise InvalidRequest(f"not plan names: {shown} (plan names are {keys.NAME_RULE})")
    return list(dict.fromkeys(plans))


def plan_titles(db) -> dict[str, str]:
    """Every plan in the database -> its title, sorted by name."""
    cursor = db.cursor()
    try:
        cursor.execute("SELECT `name`, `title` FROM `tabMemora Academic Plan` ORDER BY `name`")
        return {name: title or "" for name, title in cursor.fetchall()}
    finally:
        cursor.close()


def _has_files(s3, bucket: str, plan_id: str) -> bool:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=keys.plan_prefix(plan_id), MaxKeys=1)
    return bool(page.get("KeyCount"))


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """A sync log row for JSON: ISO times, the build's duration, a redacted error."""
    out = dict(row)
    started, completed = row.get("started_at"), row.get("completed_at")
    out["duration_seconds"] = (
        round((completed - started).total_seconds(), 3)
        if isinstance(started, datetime) and isinstance(completed, datetime) and completed >= started else None
    )
    for name in ("started_at", "completed_at", "next_retry_at", "creation"):
        out[name] = iso(row.get(name))
    out["error_message"] = redact(row.get("error_message"))
    out["is_fallback"] = bool(row.get("is_fallback"))
    return out


def _latest(row: dict[str, Any]) -> datetime | None:
    stamps = [row.get(k) for k in ("completed_at", "started_at", "creation") if isinstance(row.get(k), datetime)]
    return max(stamps) if stamps else None


# -- reading ---------------------------------------------------------------------------------------


def dead_letters(registry: Registry) -> list[dict[str, Any]]:
    """Plans that failed all retries, newest first: {plan_id, error, failed_at}."""
    entries = [{"plan_id": plan, "error": redact(str(entry.get("error") or "")), "failed_at": entry.get("failed_at") or None}
               for plan, entry in registry.dead_letters().items()]
    entries.sort(key=lambda e: (e["failed_at"] or "", e["plan_id"]), reverse=True)
    return entries


def claimed(registry: Registry) -> list[dict[str, Any]]:
    """What sync runs are building now: [{run, claim, since, plans}], oldest claim first."""
    claims = registry.claimed()
    since = dict(zip(claims, registry.redis.hmget(CLAIMS, list(claims)))) if claims else {}
    out = []
    for key, plans in claims.items():
        raw = since.get(key)
        try:
            started = int(raw) if raw is not None else None
        except ValueError:
            started = None
        out.append({"run": key[len(PREFIX + "claim:"):] if key.startswith(PREFIX + "claim:") else key,
                    "claim": key, "since": iso(started), "plans": plans})
    out.sort(key=lambda c: (c["since"] or "", c["run"]))
    return out


def recent_failures(db, now: datetime | None = None, window: timedelta = FAILURE_WINDOW,
                    limit: int = MAX_LIMIT) -> list[dict[str, Any]]:
    """Sync log rows with status Failed or Dead Letter from the last `window`, newest first."""
    cutoff = _utc_naive(now) - window
    rows = []
    for status in FAILURE_STATUSES:
        rows += [r for r in _sync_log.recent(db, status=status, limit=limit) if (_latest(r) or cutoff) >= cutoff]
    rows.sort(key=lambda r: (_latest(r) or datetime.min, r["name"]), reverse=True)
    return [_row(r) for r in rows[:limit]]


def last_successes(db, now: datetime | None = None, overdue_after: timedelta = OVERDUE_AFTER) -> list[dict[str, Any]]:
    """Per plan in the database: {plan_id, title, last_success, overdue} (overdue: none within 24 h, or never)."""
    cutoff = _utc_naive(now) - overdue_after
    successes = _sync_log.last_success(db)
    out = []
    for plan_id, title in plan_titles(db).items():
        when = successes.get(plan_id)
        out.append({"plan_id": plan_id, "title": title, "last_success": iso(when),
                    "overdue": when is None or when < cutoff})
    return out


def status(registry: Registry, db, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard's first screen and `cli status` show."""
    from memora_cdn.tracking import removals as removal_record

    plans = last_successes(db, now)
    return {
        "generated_at": iso(_utc_naive(now)),
        "pending_plans": registry.pending_count(),
        "claimed": claimed(registry),
        "dead_letter": dead_letters(registry),
        # refused removals (engine.removal): what a run would have removed, why not, and how to confirm
        "removal_refused": removal_record.refusals(registry),
        "removals_held": removal_record.held(registry),
        "recent_failures": recent_failures(db, now),
        "last_success": plans,
        "overdue_plans": sum(1 for p in plans if p["overdue"]),
        "latency": latency(registry),
    }


def latency(registry: Registry) -> dict[str, Any]:
    """Edit-to-CDN time (SPEC §9): the median and worst of the plans finished in the last hour, and how long the
    oldest change still waiting has waited."""
    samples = sorted(registry.latencies())
    oldest = registry.oldest_pending_age()
    return {
        "median_seconds_last_hour": round(statistics.median(samples), 1) if samples else None,
        "max_seconds_last_hour": round(samples[-1], 1) if samples else None,
        "builds_last_hour": len(samples),
        "oldest_pending_seconds": round(oldest, 1) if oldest is not None else None,
    }


def sync_log(db, plan_id: str | None = None, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Recent sync log rows, newest first, optionally for one plan and/or one status."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    if status in ("", None):
        status = None
    elif status not in _sync_log.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(_sync_log.STATUSES)}, got {status!r}")
    if plan_id in ("", None):
        plan_id = None
    else:
        check_plan_name(plan_id)
    return [_row(r) for r in _sync_log.recent(db, plan_id=plan_id, status=status, limit=limit)]


# -- acting ----------------------------------------------------------------------------------------


def known_plans(db, plans: Iterable[Any], s3=None, bucket: str | None = None) -> list[str]:
    """Validate names: malformed -> `InvalidRequest`; not in the database -> `UnknownPlan`, unless
    `s3` shows the plan still has files (a deleted plan: its next build removes its folder)."""
    from memora_cdn.engine.read import existing_plans

    plans = _check_plan_names(plans)
    found = existing_plans(db, plans)
    unknown = [p for p in plans if p not in found]
    if unknown and s3 is not None and bucket:
        unknown = [p for p in unknown if not _has_files(s3, bucket, p)]
    if unknown:
        raise UnknownPlan(f"unknown plan: {', '.join(unknown[:10])}" + (f" (+{len(unknown) - 10} more)" if len(unknown) > 10 else ""))
    return plans


def mark(registry: Registry, db, plans: Iterable[Any], s3=None, bucket: str | None = None) -> dict[str, Any]:
    """Add plans to the pending set (the next sync run rebuilds them). Nothing is marked unless all are valid."""
    plans = known_plans(db, plans, s3, bucket)
    added = registry.mark(plans)
    return {"marked": plans, "newly_pending": int(added), "pending_plans": registry.pending_count()}


def retry_dead_letter(registry: Registry, plan_id: Any) -> dict[str, Any]:
    """Move a dead-lettered plan back to pending; `UnknownPlan` (404) when it is not dead-lettered."""
    plan_id = check_plan_name(plan_id)
    if plan_id not in registry.dead_letters():  # checked first: the registry's retry also SADDs when absent
        raise UnknownPlan(f"plan {plan_id} is not in the dead letter")
    if not registry.retry_dead_letter(plan_id):
        raise UnknownPlan(f"plan {plan_id} is not in the dead letter (retried by someone else meanwhile)")
    return {"retried": plan_id, "pending_plans": registry.pending_count()}


# -- verify ----------------------------------------------------------------------------------------


def _make_verify_signer(settings, presign, previous: dict[str, dict[str, Any]], now: float, expired: list[str]):
    """A `MediaSigner` that reproduces what the bucket should hold right now, without writing anything.

    A build re-signs a media address whose previous signature is past half-life; the bucket holds the
    previous one until that build runs, and the sync DAG schedules it (`renewals`). So verify reuses
    every previous signature that has not expired (a due re-sign is not drift), and reports the ones
    that have (SPEC §6: a published file never holds an expired signature). An address with no
    previous signature is signed in memory (presigning is local computation, no request), so a file
    that should hold a video the bucket does not have shows up as different bytes. Rendering with no
    signer at all is not an option: the renderer would then keep raw private addresses, and every
    lesson with private media would look different from the bucket.
    """
    from memora_cdn.engine.media import MediaSigner

    class VerifySigner(MediaSigner):
        def sign(self, raw: str, key: str) -> tuple[str, int]:
            cached = self.used.get(raw) or self.previous.get(raw)
            if cached and cached.get("url") and cached.get("expires"):
                if cached["expires"] <= now and raw not in self.used:
                    expired.append(raw)
                self.used[raw] = cached
                return cached["url"], cached["expires"]
            return super().sign(raw, key)

    return VerifySigner(media_bucket=settings.media_bucket, expiry_hours=settings.signed_url_expiry_hours,
                        presign=presign, previous=previous, now=lambda: now)


def _etag_md5(s3, bucket: str, key: str, etag: str) -> str:
    """The body's MD5: the listed ETag for single-part uploads, else the body read and hashed."""
    if re.fullmatch(r"[0-9a-f]{32}", etag or ""):
        return etag
    return hashlib.md5(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def verify(db, s3, settings, plan_id: Any, now: datetime | None = None, audit: bool = True) -> list[str]:
    """Differences between the bucket and what the database says plan `plan_id` should publish; [] when consistent.

    Read-only: read -> resolve -> render in memory with the bucket's previous versions (as a build
    would, so unchanged files render byte-identical), then compare with the bucket listing: files
    missing, extra, or with other bytes (MD5 vs the listed ETag). With `audit`, the plan's files are
    also checked by `audit_plan` (schemas, references, no raw private media address).
    """
    from memora_cdn.ops.audit import audit_plan
    from memora_cdn.engine.media import s3_presigner
    from memora_cdn.engine.publish import list_prefix, load_bucket_state
    from memora_cdn.engine.read import read_plan
    from memora_cdn.engine.render import render_plan
    from memora_cdn.engine.resolve import resolve_plan

    plan_id = check_plan_name(plan_id)
    moment = now or datetime.now(timezone.utc)
    content = read_plan(db, plan_id)
    if not content.exists:
        listed = list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id))
        if not listed:
            raise UnknownPlan(f"unknown plan: {plan_id} (not in the database and no files in the bucket)")
        return [f"{plan_id}: the plan is not in the database but {len(listed)} file(s) remain under "
                f"{keys.plan_prefix(plan_id)} (its next build removes them)"]

    resolved = resolve_plan(content)
    state = load_bucket_state(s3, settings.bucket, plan_id, settings.upload_concurrency)
    expired: list[str] = []
    signer = _make_verify_signer(settings, s3_presigner(s3, settings.media_bucket), state.signatures,
                                 moment.timestamp(), expired)
    rendering = render_plan(resolved, settings, previous=state.previous, signer=signer, now=moment)

    expected = {f.key: f for f in rendering.files}
    differences: list[str] = []
    for key in sorted(set(expected) - set(state.listed)):
        differences.append(f"missing: {key}")
    for key in sorted(set(state.listed) - set(expected)):
        differences.append(f"extra: {key}")
    for key in sorted(set(expected) & set(state.listed)):
        if _etag_md5(s3, settings.bucket, key, state.listed[key]) != expected[key].md5:
            differences.append(f"different: {key} (bucket MD5 {state.listed[key]}, expected {expected[key].md5})")
    if expired:
        differences.append(f"{plan_id}: {len(expired)} signed media URL(s) in the bucket have expired")
    if audit:
        differences += [f"audit: {problem}" for problem in audit_plan(s3, settings.bucket, plan_id, settings.media_bucket)]
    return differences
