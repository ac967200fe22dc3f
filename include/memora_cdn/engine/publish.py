"""Publish: make the bucket hold exactly a plan's rendered files, writing only what changed.

What the bucket already holds is read from the bucket itself: a listing of the plan's prefix (its
ETags are the MD5 of each body, since every file is a single-part upload) and the plan's state
object (`_memora_cdn_state/{plan_id}.json`, outside `plans/`), which remembers each file's content
hash, version and generated_at. A state entry counts only while its MD5 matches the listed ETag;
for any other listed key the object's own metadata is read (HEAD), so manual edits, lost files and
an interrupted build are all noticed.

Order, so that a client never follows a reference to a missing file: each wave (lessons, units,
subjects, search shards, search index, manifest) is fully written before the next starts; files
that should no longer exist are deleted only after the manifest is written; the state goes last.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from memora_cdn.engine import keys
from memora_cdn.engine.render import Rendering, RenderedFile

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json; charset=utf-8"
DELETE_BATCH = 1000  # S3 DeleteObjects limit


@dataclass
class BucketState:
    plan_id: str
    listed: dict[str, str] = field(default_factory=dict)  # key -> ETag (MD5) as listed
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {sha256, version, generated_at}
    signatures: dict[str, dict[str, Any]] = field(default_factory=dict)
    heads: int = 0  # objects whose metadata had to be read one by one
    # Listed files the state does not record (written by an interrupted build, or by hand): uploaded again, so
    # that they are purged too; and files the state records that are gone (a build died while deleting them).
    unrecorded: set[str] = field(default_factory=set)
    vanished: set[str] = field(default_factory=set)


@dataclass
class PublishResult:
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


def _pool(concurrency: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="memora-s3")


def list_prefix(client, bucket: str, prefix: str) -> dict[str, str]:
    listed: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            listed[obj["Key"]] = obj["ETag"].strip('"')
    return listed


def list_published_plans(client, bucket: str) -> set[str]:
    """Names of the plans whose folders are under `plans/` (decoded from their keys, see `keys.encode_name`).

    A folder this exporter would not have written (its name is no encoding of a plan name) is reported and
    left out, so nothing acts on it."""
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=keys.PLANS_PREFIX, Delimiter="/"):
        for common in page.get("CommonPrefixes", ()):
            plan_id = keys.plan_of_key(common["Prefix"])
            if plan_id:
                found.add(plan_id)
            else:
                log.warning("bucket folder %s is not a plan folder this exporter writes; left alone", common["Prefix"][:200])
    return found


def read_state(client, bucket: str, plan_id: str) -> dict[str, Any]:
    """The plan's state object as written by the last build that finished ({} when there is none)."""
    try:
        obj = client.get_object(Bucket=bucket, Key=keys.state_key(plan_id))
    except client.exceptions.NoSuchKey:
        return {}
    try:
        state = orjson.loads(obj["Body"].read())
    except orjson.JSONDecodeError:
        log.warning("plan %s: state object is not valid JSON; reading object metadata instead", plan_id)
        return {}
    return state if isinstance(state, dict) else {}


def recorded_files(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the state object says was published: key -> {sha256, version, generated_at, md5}."""
    files = state.get("files")
    return files if isinstance(files, dict) else {}


def load_bucket_state(client, bucket: str, plan_id: str, concurrency: int = 16) -> BucketState:
    return reconcile(client, bucket, plan_id, list_prefix(client, bucket, keys.plan_prefix(plan_id)),
                     read_state(client, bucket, plan_id), concurrency)


def reconcile(client, bucket: str, plan_id: str, listed: dict[str, str], state: dict[str, Any],
              concurrency: int = 16) -> BucketState:
    """What the bucket holds: the listing, with the state object's entries where their MD5 matches it.

    Every state entry ends up in `previous` unless a listed object contradicts it, so `previous` equals
    `recorded_files(state)` exactly when the bucket holds what the state says."""
    files = recorded_files(state)
    result = BucketState(plan_id=plan_id, listed=listed, signatures=state.get("signatures") or {})
    unknown = []
    for key, etag in listed.items():
        entry = files.get(key)
        if entry and entry.get("md5") == etag:
            result.previous[key] = entry
        else:
            unknown.append(key)
    for key, entry in files.items():  # lost from the bucket: same content keeps the same version
        if key not in listed:
            result.previous[key] = entry
            result.vanished.add(key)
    result.unrecorded = set(unknown)

    def head(key: str) -> tuple[str, dict[str, str]]:
        return key, client.head_object(Bucket=bucket, Key=key).get("Metadata", {})

    if unknown:
        with _pool(concurrency) as pool:
            for key, meta in pool.map(head, unknown):
                if meta.get("sha256") and meta.get("version", "").isdigit():
                    result.previous[key] = {"sha256": meta["sha256"], "version": int(meta["version"]),
                                            "generated_at": meta.get("generated-at", "")}
                elif key in files:  # replaced by hand: put back what the state says was published
                    result.previous[key] = files[key]
        result.heads = len(unknown)
    return result


def _upload(client, bucket: str, f: RenderedFile, cache_control: str) -> None:
    client.put_object(
        Bucket=bucket,
        Key=f.key,
        Body=f.body,
        ContentType=CONTENT_TYPE,
        CacheControl=cache_control,
        Metadata={"sha256": f.sha256, "version": str(f.version), "generated-at": f.generated_at},
    )


def delete_keys(client, bucket: str, doomed: Iterable[str]) -> list[str]:
    doomed = sorted(doomed)
    for start in range(0, len(doomed), DELETE_BATCH):
        batch = doomed[start:start + DELETE_BATCH]
        response = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise RuntimeError(f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}")
    return doomed


def publish(client, bucket: str, rendering: Rendering, state: BucketState, *, cache_control: str,
            concurrency: int = 16, renew_at: int | None = None,
            signatures: dict[str, dict[str, Any]] | None = None) -> PublishResult:
    """Upload changed files wave by wave, delete what is no longer published, then save the state."""
    result = PublishResult()
    with _pool(concurrency) as pool:
        for wave in rendering.by_wave():
            changed = [f for f in wave if state.listed.get(f.key) != f.md5 or f.key in state.unrecorded]
            # list() waits for the whole wave and re-raises the first failure before the next wave starts.
            list(pool.map(lambda f: _upload(client, bucket, f, cache_control), changed))
            result.uploaded += [f.key for f in changed]
            result.bytes_uploaded += sum(len(f.body) for f in changed)
    wanted = {f.key for f in rendering.files}
    result.deleted = delete_keys(client, bucket, (set(state.listed) | state.vanished) - wanted)
    new_state = {
        "plan_id": rendering.plan_id,
        "files": {f.key: {"sha256": f.sha256, "version": f.version, "generated_at": f.generated_at, "md5": f.md5}
                  for f in rendering.files},
        "signatures": signatures or {},
        "renew_at": renew_at,
    }
    body = orjson.dumps(new_state, option=orjson.OPT_SORT_KEYS)
    if result.uploaded or result.deleted or _state_changed(state, new_state):
        client.put_object(Bucket=bucket, Key=keys.state_key(rendering.plan_id), Body=body, ContentType=CONTENT_TYPE,
                          CacheControl="no-store")
    return result


def _state_changed(state: BucketState, new_state: dict[str, Any]) -> bool:
    if state.heads or set(state.previous) != set(new_state["files"]):
        return True
    return state.signatures != new_state["signatures"]

