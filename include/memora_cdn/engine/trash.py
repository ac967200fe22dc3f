"""Recoverable removals: a removed plan's files move to a private prefix, and can be copied back byte for byte.

Layout (outside `plans/`, so the CDN never serves it; see docs/removals.md for the bucket policy):

    _memora_cdn_trash/{plan}/{stamp}/plans/{plan}/...            the plan's files, under their own keys
    _memora_cdn_trash/{plan}/{stamp}/_memora_cdn_state/{plan}.json  its state object (versions continue)
    _memora_cdn_trash/{plan}/{stamp}/_trashed.json                the record, written once every copy is made

`stamp` is the UTC time of the removal (`20260514T020304Z`). Order: copy everything (server-side
CopyObject with the metadata directive COPY, so body, Content-Type, Cache-Control and user metadata stay
exactly as published), write the record, and only then delete the originals. A copy that died before its
record is never restored and expires like the others. `purge_expired` deletes copies older than
`trash_retention_days` (the nightly run's own step, bounded per run).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import orjson

from memora_cdn.engine import keys
from memora_cdn.engine.publish import CONTENT_TYPE, delete_keys, list_prefix

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
RECORD = "_trashed.json"
PURGE_BATCH_OBJECTS = 100_000  # at most this many trashed objects deleted per nightly run; the rest next night


class TrashError(RuntimeError):
    """A restore that cannot be done; the message says why."""


@dataclass(frozen=True)
class TrashedCopy:
    plan_id: str
    stamp: str
    complete: bool  # its record exists: every file was copied before the originals were deleted
    files: int | None = None
    reason: str | None = None

    @property
    def trashed_at(self) -> datetime | None:
        return parse_stamp(self.stamp)

    def as_dict(self) -> dict[str, Any]:
        at = self.trashed_at
        return {"plan_id": self.plan_id, "stamp": self.stamp, "complete": self.complete, "files": self.files,
                "reason": self.reason, "trashed_at": at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else None}


def parse_stamp(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp.split("-", 1)[0], STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _pool(concurrency: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="memora-trash")


def _copy_all(client, bucket: str, pairs: list[tuple[str, str]], concurrency: int) -> None:
    """Server-side copies source -> target, keeping body, headers and metadata exactly (directive COPY)."""
    def copy(pair: tuple[str, str]) -> None:
        source, target = pair
        client.copy_object(Bucket=bucket, Key=target, CopySource={"Bucket": bucket, "Key": source},
                           MetadataDirective="COPY")

    with _pool(concurrency) as pool:
        list(pool.map(copy, pairs))  # re-raises the first failure


def _free_stamp(client, bucket: str, plan_id: str, now: datetime) -> str:
    stamp = now.astimezone(timezone.utc).strftime(STAMP_FORMAT)
    candidate, n = stamp, 1
    while client.list_objects_v2(Bucket=bucket, Prefix=keys.trash_prefix(plan_id, candidate), MaxKeys=1).get("KeyCount"):
        n += 1  # two removals of one plan within a second: "...Z-2" sorts after "...Z"
        candidate = f"{stamp}-{n}"
    return candidate


def trash_plan(client, bucket: str, plan_id: str, *, listed: Iterable[str] | None = None, reason: str,
               now: datetime | None = None, concurrency: int = 16) -> list[str]:
    """Move plan `plan_id`'s `plans/{plan}/` files and its state object into the trash (copy, record, delete).

    Returns the removed `plans/...` keys. Only `engine.removal.remove_plans` calls this: removals are guarded.
    """
    files = sorted(listed if listed is not None else list_prefix(client, bucket, keys.plan_prefix(plan_id)))
    state = keys.state_key(plan_id)
    has_state = bool(list_prefix(client, bucket, state).get(state))
    if not files and not has_state:
        return []
    stamp = _free_stamp(client, bucket, plan_id, now or datetime.now(timezone.utc))
    prefix = keys.trash_prefix(plan_id, stamp)
    originals = files + ([state] if has_state else [])
    _copy_all(client, bucket, [(key, prefix + key) for key in originals], concurrency)
    record = {"plan_id": plan_id, "stamp": stamp, "reason": reason, "files": len(files), "state": has_state}
    client.put_object(Bucket=bucket, Key=prefix + RECORD, Body=orjson.dumps(record), ContentType=CONTENT_TYPE,
                      CacheControl="no-store")
    delete_keys(client, bucket, files)
    if has_state:
        client.delete_object(Bucket=bucket, Key=state)
    return files


def _subfolders(client, bucket: str, prefix: str) -> list[str]:
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        found += [c["Prefix"][len(prefix):].rstrip("/") for c in page.get("CommonPrefixes", ())]
    return found


def trashed_plans(client, bucket: str) -> list[str]:
    """The plans with trashed copies (folder names decoded; a folder this exporter did not write is left alone)."""
    return sorted(p for p in (keys.decode_name(f) for f in _subfolders(client, bucket, keys.TRASH_PREFIX)) if p)


def trashed_copies(client, bucket: str, plan_id: str) -> list[TrashedCopy]:
    """Plan `plan_id`'s trashed copies, oldest first, each with its record when it has one."""
    out = []
    for stamp in sorted(_subfolders(client, bucket, keys.trash_prefix(plan_id))):
        if not keys.is_safe_name(stamp):
            continue
        try:
            body = client.get_object(Bucket=bucket, Key=keys.trash_prefix(plan_id, stamp) + RECORD)["Body"].read()
            record = orjson.loads(body)
        except client.exceptions.NoSuchKey:
            out.append(TrashedCopy(plan_id, stamp, complete=False))
            continue
        out.append(TrashedCopy(plan_id, stamp, complete=True, files=record.get("files"), reason=record.get("reason")))
    return out


def restore_plan(client, bucket: str, plan_id: str, *, at: str | None = None, concurrency: int = 16) -> tuple[TrashedCopy, list[str]]:
    """Copy a trashed copy of `plan_id` back to its own keys, byte for byte (body, headers, metadata).

    `at`: a stamp, or the start of one (`20260514T02`); default the newest complete copy. Refused when the
    plan has files under `plans/{plan}/` now (a restore would mix two versions). Returns (the copy, the
    restored `plans/...` keys); the trashed copy stays until it expires.
    """
    keys.check_name(plan_id, "plan")
    copies = [c for c in trashed_copies(client, bucket, plan_id) if c.complete]
    if not copies:
        raise TrashError(f"plan {plan_id} has no restorable copy under {keys.trash_prefix(plan_id)}")
    if at:
        matching = [c for c in copies if c.stamp.startswith(at)]
        if not matching:
            raise TrashError(f"plan {plan_id} has no trashed copy at {at!r}; copies: {', '.join(c.stamp for c in copies)}")
        if len(matching) > 1 and at not in {c.stamp for c in matching}:
            raise TrashError(f"{at!r} matches {len(matching)} copies of plan {plan_id} "
                             f"({', '.join(c.stamp for c in matching)}); give the whole stamp")
        chosen = next((c for c in matching if c.stamp == at), matching[-1])
    else:
        chosen = copies[-1]
    if list_prefix(client, bucket, keys.plan_prefix(plan_id)):
        raise TrashError(f"plan {plan_id} has files under {keys.plan_prefix(plan_id)} now; restoring would mix "
                         "two versions (remove it first, or rebuild it instead)")
    prefix = keys.trash_prefix(plan_id, chosen.stamp)
    stored = [k for k in list_prefix(client, bucket, prefix) if k != prefix + RECORD]
    originals = [k[len(prefix):] for k in stored]
    files = sorted(k for k in originals if k.startswith(keys.plan_prefix(plan_id)))
    unexpected = [k for k in originals if k not in files and k != keys.state_key(plan_id)]
    if unexpected:
        raise TrashError(f"trashed copy {prefix} holds keys that are not plan {plan_id}'s: {unexpected[:5]}")
    if chosen.files is not None and len(files) != chosen.files:
        raise TrashError(f"trashed copy {prefix} holds {len(files)} file(s) but its record says {chosen.files}; "
                         "not restored (choose another with --at)")
    # files first, the state object last: a restore that dies midway is seen by the next build as drift
    manifest = keys.manifest_key(plan_id)
    _copy_all(client, bucket, [(prefix + k, k) for k in files if k != manifest], concurrency)
    if manifest in files:  # the entry point last, as a build writes it: nothing it references is missing
        _copy_all(client, bucket, [(prefix + manifest, manifest)], 1)
    if keys.state_key(plan_id) in originals:
        _copy_all(client, bucket, [(prefix + keys.state_key(plan_id), keys.state_key(plan_id))], 1)
    return chosen, files


def purge_expired(client, bucket: str, retention_days: int, *, now: datetime | None = None,
                  max_objects: int = PURGE_BATCH_OBJECTS) -> dict[str, Any]:
    """Delete trashed copies older than `retention_days` (by their stamp), at most about `max_objects` objects
    per call; what is left is deleted by the next call. A stamp that cannot be read is left alone."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
    deleted_copies: list[str] = []
    objects = 0
    left = 0
    for plan_id in trashed_plans(client, bucket):
        for stamp in sorted(_subfolders(client, bucket, keys.trash_prefix(plan_id))):
            when = parse_stamp(stamp) if keys.is_safe_name(stamp) else None
            if when is None or when >= cutoff:
                continue
            if objects >= max_objects:
                left += 1
                continue
            doomed = list_prefix(client, bucket, keys.trash_prefix(plan_id, stamp))
            delete_keys(client, bucket, doomed)
            objects += len(doomed)
            deleted_copies.append(f"{plan_id}/{stamp}")
    if deleted_copies:
        log.info("deleted %d expired trashed cop(ies), %d object(s), older than %d days: %s", len(deleted_copies),
                 objects, retention_days, ", ".join(deleted_copies[:20]) + (" …" if len(deleted_copies) > 20 else ""))
    if left:
        log.warning("%d more expired trashed cop(ies) are left for the next run (at most %d objects per run)",
                    left, max_objects)
    return {"deleted": deleted_copies, "objects": objects, "left": left}
