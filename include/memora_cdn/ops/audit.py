"""Audit what the bucket holds for a plan, reading only the bucket: every file valid against its
schema, every `url` resolving to a file of that version, no raw private media address.

Used by the tests, the fault suite (sampled while builds run) and the operators' `verify` command.
"""
from __future__ import annotations

from typing import Any, Iterator

import orjson

from memora_cdn.engine import keys
from memora_cdn.engine.media import private_media_key
from memora_cdn.engine.validate import InvalidDocument, validate

_KIND_BY_FOLDER = {"subjects": "subject", "units": "unit", "lessons": "lesson", "search": "search_shard"}
_READ_ORDER = {kind: n for n, kind in enumerate(("manifest", "search_index", "search_shard", "subject", "unit", "lesson"))}


def kind_of_key(plan_id: str, key: str) -> str | None:
    rest = key[len(keys.plan_prefix(plan_id)):]
    if rest == "manifest.json":
        return "manifest"
    if rest == "search_index.json":
        return "search_index"
    folder = rest.split("/", 1)[0]
    return _KIND_BY_FOLDER.get(folder) if "/" in rest else None


def _urls(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for name, item in value.items():
            if name in ("url", "search_index_url") and isinstance(item, str):
                yield item
            else:
                yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def is_raw_private_address(value: str, media_bucket: str) -> bool:
    """An address into the private media bucket that carries no signature."""
    return private_media_key(value, media_bucket) is not None and "X-Amz-Signature=" not in value


def audit_plan(client, bucket: str, plan_id: str, media_bucket: str | None = None, settled: bool = True) -> list[str]:
    """Problems with the plan's published files; an empty list when the bucket is consistent.

    `settled=False` is for sampling while a build runs: a parent may then point to an older version of
    a child already rewritten (children go first), but never to a missing child or a newer version.
    """
    from memora_cdn.engine.publish import list_prefix

    listed = list_prefix(client, bucket, keys.plan_prefix(plan_id))
    problems: list[str] = []
    if not listed:
        return problems
    if keys.manifest_key(plan_id) not in listed:
        problems.append(f"{plan_id}: no manifest")
    docs: dict[str, dict[str, Any]] = {}
    # Parents before children (the reverse of the upload waves): a child read after its parent is at least
    # the version the parent names, so a sample taken while a build runs reports no false "newer version".
    for key in sorted(listed, key=lambda k: _READ_ORDER.get(kind_of_key(plan_id, k), len(_READ_ORDER))):
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:  # deleted since the listing: a build is running
            continue
        kind = kind_of_key(plan_id, key)
        if kind is None:
            problems.append(f"{key}: not a file the exporter publishes")
            continue
        try:
            doc = orjson.loads(body)
            validate(kind, doc, key)
        except (orjson.JSONDecodeError, InvalidDocument) as exc:
            problems.append(f"{key}: {exc}")
            continue
        if media_bucket and any(is_raw_private_address(s, media_bucket) for s in _strings(doc)):
            problems.append(f"{key}: holds a raw private media address")
        docs[key] = doc
    for key, doc in docs.items():
        for url in _urls(doc):
            target, _, version = url.partition("?v=")
            if target not in listed:
                problems.append(f"{key}: refers to missing {target}")
            elif version and target in docs:
                actual = int(docs[target].get("version", 0))
                if actual < int(version) or (settled and actual != int(version)):
                    problems.append(f"{key}: refers to {url} but the file is version {actual}")
    return problems
