"""Media addresses in published files: absolute image URLs and presigned video URLs (SPEC §3, §6).

A stage config value that points into the private media bucket (`s3://{bucket}/{key}`, an http(s)
address whose path starts with `/{bucket}/`, or a virtual-hosted `{bucket}.…` host) is replaced by
a presigned GET URL. A raw private address is never published: when it cannot be signed, the value
is dropped and the problem reported.

Signatures are reused from the previous build while they have more than half of their lifetime
left, so a rebuild without changes produces the same bytes; past half-life they are renewed, well
before they expire. `renew_at` tells the sync DAG when a plan must be rebuilt for that.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote, unquote, urlsplit, urlunsplit


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What a published URL's host may be (the schemas' pattern): no spaces, userinfo, brackets or empty hosts.
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")


def _encode(part: str, safe: str) -> str:
    """Percent-encode spaces, non-ASCII and stray `%`, keeping existing %XX escapes."""
    return quote(_STRAY_PERCENT.sub("%25", part), safe=safe + "%")


def image_url(media_base_url: str, path: str | None) -> str | None:
    """`/files/x.png` -> `{media_base_url}/files/x.png`; absolute URLs are kept (encoded); missing or unusable
    (an absolute URL whose host cannot be published, e.g. `https://exa mple.com/x.png`) -> None."""
    if not path:
        return None
    if not path.startswith(("http://", "https://")):
        path = f"{media_base_url.rstrip('/')}/{path.lstrip('/')}"
    parts = urlsplit(path)
    try:
        host = parts.netloc.encode("idna").decode("ascii") if not parts.netloc.isascii() else parts.netloc
    except UnicodeError:
        return None
    if not _HOST.match(host):
        return None
    return urlunsplit((parts.scheme, host, _encode(parts.path, "/"), _encode(parts.query, "=&"), ""))


_PRIVATE_FILES = re.compile(r"(^|/)private/+files(/|$)", re.IGNORECASE)


def is_private_file(value: object) -> bool:
    """True when `value` is, or holds, a Frappe private attachment path (`/private/files/...`, in any case, as a
    relative path, inside an absolute URL or %-encoded). Frappe serves those only to logged-in desk users, so
    one is never published (SPEC §2)."""
    if not isinstance(value, str) or "private" not in value.lower() and "%" not in value:
        return False
    text = unquote(value.strip())
    return _PRIVATE_FILES.search(text) is not None


def private_media_key(value: str, media_bucket: str) -> str | None:
    """The object key when `value` addresses the private media bucket ("" when it names the bucket itself, no
    object), else None. Schemes and hosts match in any case, surrounding spaces are ignored and the path's
    %-escapes decoded, as S3 itself reads them: `S3://…`, `HTTPS://…`, ` s3://… ` are private addresses too."""
    if "://" not in value:  # every private spelling has a scheme; most config strings are text
        return None
    value = value.strip()
    if value[:5].lower() == "s3://" and value[5:].lower().startswith(f"{media_bucket}/"):
        return value[len(f"s3://{media_bucket}/"):]
    if not value[:8].lower().startswith(("https://", "http://")):
        return None
    parts = urlsplit(value)
    path = unquote(parts.path)
    if path.startswith(f"/{media_bucket}/"):
        return path[len(media_bucket) + 2:]
    if parts.hostname and parts.hostname.startswith(f"{media_bucket}."):
        return path.lstrip("/")
    return None


@dataclass
class MediaSigner:
    """Presigns private media for one plan build, reusing still-fresh signatures."""

    media_bucket: str
    expiry_hours: int
    presign: Callable[[str, int], str]  # (key, expires_in_seconds) -> URL
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw address -> {"url", "expires"}
    now: Callable[[], float] = time.time
    used: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def lifetime(self) -> int:
        return self.expiry_hours * 3600

    def sign(self, raw: str, key: str) -> tuple[str, int]:
        """(signed URL, expiry epoch seconds) for the private object `key` addressed as `raw`."""
        now = self.now()
        cached = self.used.get(raw) or self.previous.get(raw)
        if not cached or cached["expires"] - now <= self.lifetime / 2 or cached["expires"] > now + self.lifetime:
            expires = int(now) + self.lifetime
            cached = {"url": self.presign(key, self.lifetime), "expires": expires}
        self.used[raw] = cached
        return cached["url"], cached["expires"]

    @property
    def renew_at(self) -> int | None:
        """When the earliest signature used in this build passes half-life."""
        if not self.used:
            return None
        return min(entry["expires"] for entry in self.used.values()) - self.lifetime // 2

    def sign_config(self, config: Any, report: Callable[[str], None]) -> tuple[Any, int | None]:
        """A copy of `config` with every private address signed; and the earliest expiry in it."""
        earliest: list[int] = []

        def walk(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: v for k, v in ((k, walk(v)) for k, v in value.items()) if v is not _DROP}
            if isinstance(value, list):
                return [v for v in (walk(v) for v in value) if v is not _DROP]
            if isinstance(value, str):
                key = private_media_key(value, self.media_bucket)
                if key is None:
                    return value
                if not key:  # the bucket itself: a presigned GET of it would be a listing; never published raw
                    report("private media address names no object; value dropped")
                    return _DROP
                try:
                    url, expires = self.sign(value, key)
                except Exception as exc:  # never publish the raw address
                    report(f"private media address could not be signed ({type(exc).__name__}); value dropped")
                    return _DROP
                earliest.append(expires)
                return url
            return value

        return walk(config), (min(earliest) if earliest else None)


_DROP = object()


def s3_presigner(client, media_bucket: str) -> Callable[[str, int], str]:
    def presign(key: str, expires_in: int) -> str:
        return client.generate_presigned_url(
            "get_object", Params={"Bucket": media_bucket, "Key": key}, ExpiresIn=expires_in
        )

    return presign
