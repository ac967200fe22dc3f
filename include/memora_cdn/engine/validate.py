"""Validation of every published document against the project's own JSON Schemas (draft-07).

The schemas in `schemas/` beside this module are stricter than the upstream contracts (`tests/fixtures/contracts/`):
anything they accept, the contracts accept too (tests/test_schemas.py checks it). They encode
SPEC §3-6: access objects consistent with their level, versioned relative `url`s (unversioned
for lesson navigation), absolute image URLs, UTC timestamps, no unknown fields, no nulls.

Usage::

    from memora_cdn.engine.validate import validate, InvalidDocument
    validate("lesson", doc, key="plans/P1/lessons/L1.json")   # raises InvalidDocument

Two validators per kind, each built once per process: `fast_validator` (jsonschema-rs, compiled)
decides; `validator` (the reference `jsonschema` package) only explains. A valid document is walked
once, by the fast one (about 50 times faster on a 2000-lesson plan: `python -m bench.validators`). A document it
rejects is walked again by `jsonschema` to name the most relevant error (its `best_match`); where that
finds none (jsonschema-rs also checks `format: uri`, which `jsonschema` skips without rfc3987), the
message is jsonschema-rs's own. tests/test_schemas.py holds the two to the same verdicts.
"""
from __future__ import annotations

import functools
import heapq
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError, relevance

from memora_cdn.engine import keys

KINDS = ("manifest", "subject", "unit", "lesson", "search_index", "search_shard")

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

_MAX_REASON = 160


class InvalidDocument(ValueError):
    """A document that must not be published: `"<kind> <key-or-id>: <json path>: <reason>"`."""

    def __init__(self, kind: str, label: str, path: str, reason: str) -> None:
        self.kind = kind
        self.label = label
        self.path = path
        self.reason = reason
        super().__init__(f"{kind} {label}: {path}: {reason}")


def schema_path(kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown document kind {kind!r} (expected one of {', '.join(KINDS)})")
    return SCHEMA_DIR / f"{kind}.schema.json"


@functools.cache
def schema(kind: str) -> dict[str, Any]:
    """The parsed schema of `kind` (shared, do not mutate)."""
    return json.loads(schema_path(kind).read_text(encoding="utf-8"))


@functools.cache
def validator(kind: str) -> Draft7Validator:
    """The cached draft-07 validator of `kind`, with format checking (date-time, ...)."""
    return Draft7Validator(schema(kind), format_checker=FormatChecker())


@functools.cache
def fast_validator(kind: str) -> jsonschema_rs.Draft7Validator:
    """The cached compiled draft-07 validator of `kind`, with format checking."""
    return jsonschema_rs.Draft7Validator(schema(kind), validate_formats=True)


def validate(kind: str, doc: dict[str, Any], key: str = "") -> None:
    """Raise InvalidDocument unless `doc` is a publishable document of `kind`.

    `key` (the bucket key) names the document in the message; without it the document's id is used.
    """
    if not fast_validator(kind).is_valid(doc):
        error = _best_match(validator(kind).iter_errors(doc))
        if error is not None:
            raise InvalidDocument(kind, _label(kind, doc, key), error.json_path, _reason(error))
        fast_error = next(iter(fast_validator(kind).iter_errors(doc)), None)
        where = _json_path(fast_error.instance_path) if fast_error else "$"
        raise InvalidDocument(kind, _label(kind, doc, key), where,
                              _clip(fast_error.message) if fast_error else "rejected by the schema")
    problem = _cross_check(kind, doc)
    if problem is not None:
        raise InvalidDocument(kind, _label(kind, doc, key), *problem)


def is_valid(kind: str, doc: Any) -> bool:
    try:
        validate(kind, doc)
    except InvalidDocument:
        return False
    return True


# --------------------------------------------------------------------------- helpers

def _label(kind: str, doc: Any, key: str) -> str:
    if key:
        return key
    if not isinstance(doc, dict):
        return "?"
    if kind == "search_shard":
        part = doc.get("part")
        return f"{doc.get('plan_id', '?')}/{doc.get('subject_id', '?')}" + (
            f"~{part}" if isinstance(part, int) and part > 1 else "")
    ident = doc.get("id") if kind in ("subject", "unit", "lesson") else doc.get("plan_id")
    return str(ident) if isinstance(ident, (str, int)) and ident != "" else "?"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _best_match(errors) -> ValidationError | None:
    """jsonschema's `best_match`, except that inside a `oneOf` whose branches are told apart by a
    `const` property (search_index's `is_sharded`) it reports the branch the document claims."""
    best = max(errors, key=relevance, default=None)
    while best is not None and best.context:
        context = _claimed_branch(best) or best.context
        first, *second = heapq.nsmallest(2, context, key=relevance)
        if second and relevance(first) == relevance(second[0]):
            break
        best = first
    return best


def _claimed_branch(error: ValidationError) -> list[ValidationError] | None:
    if error.validator != "oneOf" or not isinstance(error.instance, dict):
        return None
    for i, branch in enumerate(error.validator_value):
        for name, sub in (branch.get("properties") or {}).items():
            if (isinstance(sub, dict) and "const" in sub and name in error.instance
                    and type(error.instance[name]) is type(sub["const"])
                    and error.instance[name] == sub["const"]):
                return [e for e in error.context if e.relative_schema_path[0] == i] or None
    return None


def _reason(error: ValidationError) -> str:
    """A one-line reason that never dumps a whole sub-document."""
    kw = error.validator
    described = error.schema.get("description") if isinstance(error.schema, dict) else None
    if kw in ("required", "additionalProperties", "const", "enum", "minLength", "minimum",
              "maximum", "minItems", "maxItems"):
        reason = error.message
    elif kw in ("pattern", "format") and described:
        reason = f"expected {described}, got {_short(error.instance)}"
    elif kw == "pattern":
        reason = f"{_short(error.instance)} does not match {error.validator_value!r}"
    elif kw == "format":
        reason = f"{_short(error.instance)} is not a valid {error.validator_value}"
    elif kw == "type":
        reason = f"{_short(error.instance)} is not of type {error.validator_value!r}"
    elif kw == "not" and error.validator_value == {}:
        # a property forbidden by {"not": {}} (the schemas' way to say "absent here")
        name = error.path[-1] if error.path else "value"
        reason = f"{name!r} is not allowed here"
        if name == "required_item":
            reason += " (only when access_level is 'paid')"
        elif name in ("entries", "shards"):
            reason += " ('entries' when is_sharded is false, 'shards' when it is true, never both)"
    elif kw in ("oneOf", "anyOf"):
        reason = f"matches none of the allowed shapes ({kw})"
    else:
        reason = error.message
    return _clip(reason)


def _clip(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


def _json_path(parts) -> str:
    """jsonschema-rs's instance path as jsonschema's `json_path` spells it: `$.a[0].b`."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _cross_check(kind: str, doc: dict[str, Any]) -> tuple[str, str] | None:
    """Invariants between fields that JSON Schema cannot express (SPEC §3, §5)."""
    if kind in ("manifest", "search_index"):
        try:
            prefix = keys.plan_prefix(doc["plan_id"])
        except keys.UnsafeName as exc:
            return "$.plan_id", str(exc)
    if kind == "manifest":
        if not doc["search_index_url"].startswith(prefix):
            return "$.search_index_url", f"not under {prefix}"
        for i, s in enumerate(doc["subjects"]):
            if not s["url"].startswith(prefix):
                return f"$.subjects[{i}].url", f"not under {prefix}"
    elif kind == "search_index":
        if doc["is_sharded"]:
            for i, s in enumerate(doc["shards"]):
                if not s["url"].startswith(prefix):
                    return f"$.shards[{i}].url", f"not under {prefix}"
        elif doc["total_lessons"] != len(doc["entries"]):
            return "$.total_lessons", (
                f"{doc['total_lessons']} but the index has {len(doc['entries'])} entries")
    elif kind == "search_shard":
        if doc["part"] > doc["parts"]:
            return "$.part", f"part {doc['part']} of {doc['parts']}"
        for i, e in enumerate(doc["entries"]):
            if e["subject_id"] != doc["subject_id"]:
                return f"$.entries[{i}].subject_id", (
                    f"{_short(e['subject_id'])} in the shard of subject {_short(doc['subject_id'])}")
    return None
