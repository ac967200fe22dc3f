"""Bucket keys. Every key is derived here, and only from names that passed `is_safe_name`.

Layout (SPEC §3): everything a plan publishes lives under `plans/{plan_id}/`. The exporter's own
bookkeeping (`_memora_cdn_state/{plan_id}.json`) and the removed plans kept for a restore
(`_memora_cdn_trash/{plan_id}/{stamp}/...`) live outside `plans/`, so the CDN never serves them.
"""
from __future__ import annotations

import re

PLANS_PREFIX = "plans/"
STATE_PREFIX = "_memora_cdn_state/"
TRASH_PREFIX = "_memora_cdn_trash/"
MAX_NAME_LENGTH = 140  # Frappe's varchar(140) primary key

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class UnsafeName(ValueError):
    """A document name that cannot become part of a bucket key."""


def is_safe_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and ".." not in name
        and _SAFE_NAME.match(name) is not None
    )


def check_name(name: object, what: str = "name") -> str:
    if not is_safe_name(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 60 else repr(name[:60]) + "…"
        raise UnsafeName(
            f"{what} {shown} cannot be used in a bucket key "
            f"(1-{MAX_NAME_LENGTH} characters of A-Z a-z 0-9 _ . -, no '..')"
        )
    return name


def plan_prefix(plan_id: str) -> str:
    return f"{PLANS_PREFIX}{check_name(plan_id, 'plan')}/"


def manifest_key(plan_id: str) -> str:
    return plan_prefix(plan_id) + "manifest.json"


def subject_key(plan_id: str, subject_id: str) -> str:
    return f"{plan_prefix(plan_id)}subjects/{check_name(subject_id, 'subject')}.json"


def unit_key(plan_id: str, unit_id: str) -> str:
    return f"{plan_prefix(plan_id)}units/{check_name(unit_id, 'unit')}.json"


def lesson_key(plan_id: str, lesson_id: str) -> str:
    return f"{plan_prefix(plan_id)}lessons/{check_name(lesson_id, 'lesson')}.json"


def search_index_key(plan_id: str) -> str:
    return plan_prefix(plan_id) + "search_index.json"


def search_shard_key(plan_id: str, subject_id: str, part: int = 1) -> str:
    # `~` cannot occur in a safe name, so a split subject's parts never collide with another subject.
    suffix = "" if part == 1 else f"~{part}"
    return f"{plan_prefix(plan_id)}search/{check_name(subject_id, 'subject')}{suffix}.json"


def state_key(plan_id: str) -> str:
    return f"{STATE_PREFIX}{check_name(plan_id, 'plan')}.json"


def trash_prefix(plan_id: str, stamp: str | None = None) -> str:
    """`_memora_cdn_trash/{plan}/` or, with a stamp (`20260514T020000Z`), one trashed copy's prefix."""
    prefix = f"{TRASH_PREFIX}{check_name(plan_id, 'plan')}/"
    return prefix if stamp is None else f"{prefix}{check_name(stamp, 'trash stamp')}/"


def plan_of_key(key: str) -> str | None:
    """`plans/P1/lessons/x.json` -> `P1`; None for keys outside `plans/`."""
    if not key.startswith(PLANS_PREFIX):
        return None
    plan_id = key[len(PLANS_PREFIX):].split("/", 1)[0]
    return plan_id or None


def versioned(key: str, version: int) -> str:
    return f"{key}?v={version}"
