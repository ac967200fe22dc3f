"""Bucket keys. Every key is derived here, from names encoded by `encode_name`.

Layout (SPEC §3): everything a plan publishes lives under `plans/{plan_id}/`. The exporter's own
bookkeeping (`_memora_cdn_state/{plan_id}.json`) and the removed plans kept for a restore
(`_memora_cdn_trash/{plan_id}/{stamp}/...`) live outside `plans/`, so the CDN never serves them.

Names. Frappe allows almost any name (spaces, Unicode, punctuation, `/`, up to 140 characters), and a
rename can give a hash-named document any of them. A name becomes one key segment by a reversible
encoding whose output is URL-safe as it stands (RFC 3986 unreserved characters only), so a key is also
its own URL path: no second round of escaping in `url` fields, purge URLs or invalidation paths.

- every UTF-8 byte outside `A-Z a-z 0-9 _ . -` becomes `~XX` (two upper-case hex digits): `a b` -> `a~20b`,
  `a/b` -> `a~2Fb`, `~` -> `~7E`, `%` -> `~25`;
- a leading `.` becomes `~2E`, so no segment is `.` or `..` (nor a dot-file);
- every other name maps to itself: Frappe's hash names (and every name this exporter accepted before)
  keep their keys.

`decode_name` reverses it and refuses anything `encode_name` would not have written. A key may not
exceed S3's 1024 bytes: a name whose key would is refused with `UnsafeName` (the resolver reports the
node and skips it).
"""
from __future__ import annotations

import re

PLANS_PREFIX = "plans/"
STATE_PREFIX = "_memora_cdn_state/"
TRASH_PREFIX = "_memora_cdn_trash/"
_TRASH_STAMP = re.compile(r"\d{8}T\d{6}Z(-[0-9A-Za-z]{1,16})?")  # a copy's UTC time (and a suffix)
MAX_NAME_LENGTH = 140  # Frappe's varchar(140) primary key
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8 bytes)
NAME_RULE = f"1-{MAX_NAME_LENGTH} characters of text, at most {MAX_KEY_BYTES} bytes once encoded into a key"

_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_ENCODED = re.compile(r"(?:[A-Za-z0-9_.-]|~[0-9A-F]{2})+")
# The longest key made from a plan name alone (`plans/{plan}/search_index.json`) minus the name.
_PLAN_KEY_OVERHEAD = max(len(PLANS_PREFIX) + len("/search_index.json"), len(STATE_PREFIX) + len(".json"))
_MAX_SHARD_PART = 9999


class UnsafeName(ValueError):
    """A document name that cannot become part of a bucket key."""


def _shown(name: object) -> str:
    return repr(name) if not isinstance(name, str) or len(name) <= 60 else repr(name[:60]) + "…"


def _utf8(name: str) -> bytes | None:
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not text MariaDB can hold
        return None


def is_valid_name(name: object) -> bool:
    """A name Frappe could have given a document: 1-140 characters of text."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and _utf8(name) is not None


def encode_name(name: str) -> str:
    """One key segment for a document name (see the module doc). Raises `UnsafeName` for a non-name."""
    if not is_valid_name(name):
        raise UnsafeName(f"{_shown(name)} is not a document name (1-{MAX_NAME_LENGTH} characters of text)")
    if name.isascii() and not name.startswith(".") and all(ord(c) in _KEEP for c in name):
        return name  # the common case: hash names map to themselves
    out = "".join(chr(b) if b in _KEEP else f"~{b:02X}" for b in _utf8(name))  # type: ignore[union-attr]
    return "~2E" + out[1:] if out.startswith(".") else out


def decode_name(segment: str) -> str | None:
    """The name `encode_name` turned into `segment`, or None when `segment` is not such an encoding."""
    if not isinstance(segment, str) or not _ENCODED.fullmatch(segment):
        return None
    raw, i = bytearray(), 0
    while i < len(segment):  # the pattern above guarantees two hex digits after every `~`
        if segment[i] == "~":
            raw.append(int(segment[i + 1:i + 3], 16))
            i += 3
        else:
            raw.append(ord(segment[i]))
            i += 1
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return decoded if encode_name(decoded) == segment else None
    except UnsafeName:
        return None


def is_safe_name(name: object) -> bool:
    """True when `name` can be published: a document name whose plan-level keys fit S3's key limit.

    (A node's own keys also depend on its plan's name; `check_node` checks those.)"""
    if not is_valid_name(name):
        return False
    return len(encode_name(name)) + _PLAN_KEY_OVERHEAD <= MAX_KEY_BYTES  # type: ignore[arg-type]


def check_name(name: object, what: str = "name") -> str:
    if not is_safe_name(name):
        raise UnsafeName(f"{what} {_shown(name)} cannot be used in a bucket key ({NAME_RULE})")
    return name  # type: ignore[return-value]


def _key(key: str, what: str, name: str) -> str:
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise UnsafeName(f"{what} {_shown(name)}: its bucket key would be {size} bytes, over S3's {MAX_KEY_BYTES}")
    return key


def plan_prefix(plan_id: str) -> str:
    return f"{PLANS_PREFIX}{encode_name(check_name(plan_id, 'plan'))}/"


def manifest_key(plan_id: str) -> str:
    return plan_prefix(plan_id) + "manifest.json"


def subject_key(plan_id: str, subject_id: str) -> str:
    return _key(f"{plan_prefix(plan_id)}subjects/{encode_name(check_name(subject_id, 'subject'))}.json",
                "subject", subject_id)


def unit_key(plan_id: str, unit_id: str) -> str:
    return _key(f"{plan_prefix(plan_id)}units/{encode_name(check_name(unit_id, 'unit'))}.json", "unit", unit_id)


def lesson_key(plan_id: str, lesson_id: str) -> str:
    return _key(f"{plan_prefix(plan_id)}lessons/{encode_name(check_name(lesson_id, 'lesson'))}.json",
                "lesson", lesson_id)


def search_index_key(plan_id: str) -> str:
    return plan_prefix(plan_id) + "search_index.json"


def search_shard_key(plan_id: str, subject_id: str, part: int = 1) -> str:
    # `~p` never occurs in an encoded name (`~` is always followed by two hex digits there), so a split
    # subject's parts never collide with another subject's shard.
    if not 1 <= part <= _MAX_SHARD_PART:
        raise ValueError(f"search shard part {part} is not 1-{_MAX_SHARD_PART}")
    suffix = "" if part == 1 else f"~p{part}"
    return _key(f"{plan_prefix(plan_id)}search/{encode_name(check_name(subject_id, 'subject'))}{suffix}.json",
                "subject", subject_id)


def check_node(plan_id: str, kind: str, name: object) -> str:
    """`name`, or `UnsafeName` when a node of `kind` with that name cannot have its keys in this plan."""
    check_name(name, kind)
    if kind == "subject":
        subject_key(plan_id, name)  # type: ignore[arg-type]
        search_shard_key(plan_id, name, _MAX_SHARD_PART)  # type: ignore[arg-type]
    elif kind == "unit":
        unit_key(plan_id, name)  # type: ignore[arg-type]
    elif kind == "lesson":
        lesson_key(plan_id, name)  # type: ignore[arg-type]
    return name  # type: ignore[return-value]


def state_key(plan_id: str) -> str:
    return f"{STATE_PREFIX}{encode_name(check_name(plan_id, 'plan'))}.json"


def trash_prefix(plan_id: str, stamp: str | None = None) -> str:
    """`_memora_cdn_trash/{plan}/` or, with a stamp (`20260514T020000Z`), one trashed copy's prefix."""
    prefix = f"{TRASH_PREFIX}{encode_name(check_name(plan_id, 'plan'))}/"
    if stamp is None:
        return prefix
    if not isinstance(stamp, str) or not _TRASH_STAMP.fullmatch(stamp):
        raise UnsafeName(f"trash stamp {_shown(stamp)} is not a UTC time stamp such as 20260514T020000Z")
    return f"{prefix}{stamp}/"


def plan_of_key(key: str) -> str | None:
    """`plans/P1/lessons/x.json` -> `P1` (decoded); None for keys outside `plans/` or not written by `plan_prefix`."""
    if not key.startswith(PLANS_PREFIX):
        return None
    segment = key[len(PLANS_PREFIX):].split("/", 1)[0]
    return decode_name(segment) if segment else None


def versioned(key: str, version: int) -> str:
    return f"{key}?v={version}"
