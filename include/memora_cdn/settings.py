"""The `memora_cdn_settings` Variable (SPEC §10): parsed, defaulted and validated in one place.

Every key is optional. A bad value, a wrong type or an unknown key (usually a typo) is refused with
a `SettingsError` that names the key, before anything is read or published.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping

VARIABLE_KEY = "memora_cdn_settings"

MYSQL_CONN_ID = "memora_mysql"
REDIS_CONN_ID = "memora_redis"
S3_CONN_ID = "memora_s3"
PURGE_CONN_ID = "memora_cdn_purge"

PURGE_PROVIDERS = ("cloudflare", "cloudfront", "none")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SettingsError(ValueError):
    """A value in `memora_cdn_settings` that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Settings:
    bucket: str = "memora-cdn"
    cdn_base_url: str = "https://cdn.memora.app"
    media_base_url: str = "https://memora.app"
    media_bucket: str = "memora-media"
    purge_provider: str = "none"
    batch_size: int = 50
    batch_threshold: int = 50
    debounce_seconds: int = 15
    signed_url_expiry_hours: int = 4
    upload_concurrency: int = 16
    purge_files_per_request: int = 30
    purge_prefix_threshold: int = 500
    lock_ttl_seconds: int = 300
    cache_control: str = "public, max-age=60, stale-while-revalidate=30"
    # Removal guard (docs/removals.md): most plans one run may remove without an operator's confirmation;
    # None = 10% of the plans on the CDN, at least 5 (`engine.removal.removal_limit`). 0 = confirm every removal.
    max_plan_removals: int | None = None
    trash_retention_days: int = 30  # removed plans stay restorable under _memora_cdn_trash/ this long
    # Failure alerts (memora_cdn.orchestration.alerts): addresses, and the SMTP connection (None: Airflow's
    # [email] email_conn_id). No addresses: alerts are off.
    alert_emails: tuple[str, ...] = ()
    alert_smtp_conn_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# key -> (type, minimum, maximum) for the integer settings
_INT_RANGES = {
    "batch_size": (1, 1000),
    "batch_threshold": (1, 100_000),
    "debounce_seconds": (1, 3600),
    "signed_url_expiry_hours": (1, 24),
    "upload_concurrency": (1, 64),
    "purge_files_per_request": (1, 500),
    "purge_prefix_threshold": (1, 100_000),
    "lock_ttl_seconds": (30, 300),
    "max_plan_removals": (0, 100_000),
    "trash_retention_days": (1, 3650),
}
# integer settings that may also be null (meaning: the documented default rule)


def _url(key: str, value: str) -> str:
    if not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", value):
        raise SettingsError(f"memora_cdn_settings.{key}: expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


_EMAIL_RE = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def _emails(value: Any) -> tuple[str, ...]:
    """`alert_emails`: a list of addresses, or one string of addresses separated by commas; empty turns alerts off."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise SettingsError(f"memora_cdn_settings.alert_emails: expected a list of e-mail addresses, got {value!r}")
    items = [v for v in items if v]
    bad = [v for v in items if not _EMAIL_RE.match(v)]
    if bad:
        raise SettingsError(f"memora_cdn_settings.alert_emails: not an e-mail address: {bad[0]!r}")
    return tuple(dict.fromkeys(items))


def parse_settings(raw: str | Mapping[str, Any] | None) -> Settings:
    """Turn the Variable's JSON (text or already decoded) into `Settings`, or raise `SettingsError`."""
    if raw is None or raw == "":
        data: Mapping[str, Any] = {}
    elif isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"memora_cdn_settings is not valid JSON: {exc}") from None
    else:
        data = raw
    if not isinstance(data, Mapping):
        raise SettingsError(f"memora_cdn_settings must be a JSON object, got {type(data).__name__}")

    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SettingsError(f"memora_cdn_settings: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")

    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "alert_emails":
            values[key] = _emails(value)
            continue
        if value is None and known[key].default is None:  # optional, unset (as `as_dict` writes it)
            continue
        if key in _INT_RANGES:
            lo, hi = _INT_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(f"memora_cdn_settings.{key}: expected an integer, got {value!r}")
            if not lo <= value <= hi:
                raise SettingsError(f"memora_cdn_settings.{key}: {value} is out of range {lo}..{hi}")
        elif not isinstance(value, str) or not value.strip():
            raise SettingsError(f"memora_cdn_settings.{key}: expected a non-empty string, got {value!r}")
        values[key] = value

    for key in ("bucket", "media_bucket"):
        if key in values and not _BUCKET_RE.match(values[key]):
            raise SettingsError(f"memora_cdn_settings.{key}: {values[key]!r} is not a valid bucket name")
    for key in ("cdn_base_url", "media_base_url"):
        if key in values:
            values[key] = _url(key, values[key])
    if values.get("purge_provider", "none") not in PURGE_PROVIDERS:
        raise SettingsError(
            f"memora_cdn_settings.purge_provider: {values['purge_provider']!r} is not one of {', '.join(PURGE_PROVIDERS)}"
        )
    return Settings(**values)


def load_settings() -> Settings:
    """Read the Variable through Airflow (env `AIRFLOW_VAR_MEMORA_CDN_SETTINGS` works too)."""
    from airflow.sdk import Variable

    return parse_settings(Variable.get(VARIABLE_KEY, default=None))
