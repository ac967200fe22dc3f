"""The project's schemas (include/memora_cdn/engine/schemas) against the upstream contracts (tests/fixtures/contracts).

Ours must accept a subset of what the contracts accept: every sample here passes both, every
mutation that ours still accepts must pass the contract too, and the product rules of SPEC §3-6
(access consistency, versioned urls, no unknown fields, no nulls...) are rejected by ours.
"""
from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from jsonschema import Draft7Validator, FormatChecker

from memora_cdn.engine.validate import KINDS, InvalidDocument, fast_validator, validate, validator

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = Path(__file__).resolve().parent / "fixtures" / "contracts"  # vendored: see its README.md
CONTRACT_KINDS = ("manifest", "subject", "unit", "lesson", "search_index")

TS = "2026-11-29T10:21:02Z"
MEDIA = "https://media.memora.app/files"


# --------------------------------------------------------------------------- samples

def acc(level: str = "authenticated", item: str | None = None, **flags: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"is_published": True, "access_level": level}
    if item is not None:
        out["required_item"] = item
    out.update(flags)
    return out


def manifest_doc() -> dict[str, Any]:
    return {
        "plan_id": "PLAN-2026-SCI-12",
        "title": "الصف الثاني عشر - علمي 2026",
        "season": "2026/2027",
        "grade": "الثاني عشر",
        "stream": "علمي",
        "version": 1764411662,
        "generated_at": TS,
        "subjects": [
            {"id": "3f9a1c2b7d", "title": "الرياضيات", "color_code": "#1E88E5",
             "image": f"{MEDIA}/math%20cover.png", "sort_order": 1,
             "url": "plans/PLAN-2026-SCI-12/subjects/3f9a1c2b7d.json?v=1764411600",
             "access": acc("public")},
            {"id": "8b21e0aa41", "title": "Physics", "sort_order": 2,
             "url": "plans/PLAN-2026-SCI-12/subjects/8b21e0aa41.json?v=3",
             "access": acc("paid", "ITEM-PHYS-12")},
        ],
        "search_index_url": "plans/PLAN-2026-SCI-12/search_index.json?v=7",
    }


def subject_doc() -> dict[str, Any]:
    return {
        "id": "3f9a1c2b7d",
        "title": "الرياضيات",
        "description": "منهج الرياضيات للصف الثاني عشر",
        "color_code": "#1e88e5",
        "image": f"{MEDIA}/%D8%B1%D9%8A%D8%A7%D8%B6%D9%8A%D8%A7%D8%AA.png",
        "version": 1764411600,
        "generated_at": "2026-11-29T10:20:00.123456Z",
        "access": acc("public"),
        "tracks": [
            {"id": "trk01a", "title": "المسار الأساسي", "sort_order": 0,
             "access": acc("public", is_sold_separately=False, parent_item_required=False),
             "units": [
                 {"id": "u7c3", "title": "التفاضل", "description": "", "image": f"{MEDIA}/u.png",
                  "badge_image": "http://media.memora.app:8080/files/badge.svg?size=64",
                  "sort_order": 1, "url": "plans/PLAN-2026-SCI-12/units/u7c3.json?v=12",
                  "access": acc("free_preview"), "topic_count": 3, "lesson_count": 14},
                 {"id": "u8d4", "title": "التكامل", "sort_order": 2,
                  "url": "plans/PLAN-2026-SCI-12/units/u8d4.json?v=1",
                  "access": acc("public"), "topic_count": 0, "lesson_count": 0},
             ]},
            {"id": "trk02b", "title": "Olympiad track", "description": "Extra problems",
             "image": f"{MEDIA}/olympiad.jpg", "sort_order": 1,
             "access": acc("paid", "ITEM-OLY", is_sold_separately=True, parent_item_required=False),
             "units": [
                 {"id": "u9e5", "title": "Number theory", "sort_order": 0,
                  "url": "plans/PLAN-2026-SCI-12/units/u9e5.json?v=4",
                  "access": acc("paid", "ITEM-OLY"), "topic_count": 1, "lesson_count": 2},
             ]},
        ],
        "stats": {"total_units": 3, "total_topics": 4, "total_lessons": 16},
    }


def unit_doc() -> dict[str, Any]:
    return {
        "id": "u7c3",
        "title": "التفاضل",
        "description": "مقدمة في التفاضل",
        "image": f"{MEDIA}/u.png",
        "badge_image": f"{MEDIA}/badge.svg",
        "sort_order": 1,
        "version": 12,
        "generated_at": TS,
        "access": acc("free_preview"),
        "parent": {"track_id": "trk01a", "track_title": "المسار الأساسي",
                   "subject_id": "3f9a1c2b7d", "subject_title": "الرياضيات"},
        "topics": [
            {"id": "tp1", "title": "النهايات", "sort_order": 0, "access": acc("free_preview"),
             "lessons": [
                 {"id": "ls1", "title": "ما هي النهاية؟", "description": "درس تمهيدي",
                  "image": f"{MEDIA}/l1.webp", "sort_order": 0,
                  "url": "plans/PLAN-2026-SCI-12/lessons/ls1.json?v=2",
                  "access": acc("free_preview"), "stage_count": 4},
                 {"id": "ls2", "title": "Limits at infinity", "sort_order": 1,
                  "url": "plans/PLAN-2026-SCI-12/lessons/ls2.json?v=5",
                  "access": acc("paid", "ITEM-MATH-12", is_sold_separately=True), "stage_count": 0},
             ]},
            {"id": "tp2", "title": "Derivatives", "description": "Rules", "image": f"{MEDIA}/t.png",
             "sort_order": 1, "access": acc("authenticated"), "lessons": []},
        ],
        "stats": {"total_topics": 2, "total_lessons": 2},
    }


def lesson_doc(n: int = 1) -> dict[str, Any]:
    return {
        "id": f"ls{n}",
        "title": "ما هي النهاية؟",
        "description": "درس تمهيدي عن النهايات",
        "image": f"{MEDIA}/l1.webp",
        "sort_order": n,
        "version": 1764411500 + n,
        "generated_at": TS,
        "signed_url_expiry": "2026-11-29T14:21:02Z",
        "access": acc("free_preview"),
        "parent": {"topic_id": "tp1", "topic_title": "النهايات", "unit_id": "u7c3",
                   "unit_title": "التفاضل", "track_id": "trk01a", "track_title": "المسار الأساسي",
                   "subject_id": "3f9a1c2b7d", "subject_title": "الرياضيات"},
        "stages": [
            {"idx": 1, "title": "فيديو الشرح", "type": "Video",
             "config": {"video_url": "https://private-media.s3.amazonaws.com/v/ls1.mp4"
                                     "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=14400"
                                     "&X-Amz-Signature=0f3c",
                        "duration": 312, "subtitles": ["ar", "en"]}},
            {"idx": 2, "title": "Key ideas", "type": "Text",
             "config": {"body": "<p>النهاية هي ...</p>", "nested": {"x": None}}},
            {"idx": 3, "title": "", "type": "Question",
             "config": {"question": "كم تساوي النهاية؟", "options": ["0", "1", "∞"], "answer": 1}},
            {"idx": 4, "title": "Graph explorer", "type": "Interactive"},
        ],
        "navigation": {
            "previous_lesson": {"id": "ls0", "title": "تمهيد",
                                "url": "plans/PLAN-2026-SCI-12/lessons/ls0.json"},
            "next_lesson": {"id": "ls2", "title": "Limits at infinity",
                            "url": "plans/PLAN-2026-SCI-12/lessons/ls2.json"},
        },
    }


def entry(i: int, subject: str = "3f9a1c2b7d") -> dict[str, Any]:
    return {"lesson_id": f"ls{i}", "lesson_name": f"الدرس {i}", "subject_id": subject,
            "subject_name": "الرياضيات", "unit_id": "u7c3", "unit_name": "التفاضل",
            "topic_id": "tp1", "topic_name": "النهايات"}


def search_index_doc() -> dict[str, Any]:
    return {"plan_id": "PLAN-2026-SCI-12", "version": 7, "generated_at": TS,
            "total_lessons": 3, "is_sharded": False, "entries": [entry(1), entry(2), entry(3)]}


def sharded_index_doc() -> dict[str, Any]:
    return {"plan_id": "PLAN-2026-SCI-12", "version": 8, "generated_at": TS,
            "total_lessons": 1240, "is_sharded": True,
            "shards": [
                {"subject_id": "3f9a1c2b7d", "subject_name": "الرياضيات",
                 "url": "plans/PLAN-2026-SCI-12/search/3f9a1c2b7d.json?v=3", "lesson_count": 700},
                {"subject_id": "3f9a1c2b7d", "subject_name": "الرياضيات",
                 "url": "plans/PLAN-2026-SCI-12/search/3f9a1c2b7d~2.json?v=1", "lesson_count": 300},
                {"subject_id": "8b21e0aa41", "subject_name": "Physics",
                 "url": "plans/PLAN-2026-SCI-12/search/8b21e0aa41.json?v=2", "lesson_count": 240},
            ]}


def search_shard_doc() -> dict[str, Any]:
    return {"plan_id": "PLAN-2026-SCI-12", "subject_id": "3f9a1c2b7d", "subject_name": "الرياضيات",
            "version": 1, "generated_at": TS, "part": 2, "parts": 2,
            "entries": [entry(i) for i in range(1, 6)]}


SAMPLES: dict[str, Callable[[], dict[str, Any]]] = {
    "manifest": manifest_doc,
    "subject": subject_doc,
    "unit": unit_doc,
    "lesson": lesson_doc,
    "search_index": search_index_doc,
    "search_shard": search_shard_doc,
}

BUILDERS = {**SAMPLES, "search_index/sharded": sharded_index_doc}

# extra valid shapes: (kind, builder)
VARIANTS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    *SAMPLES.items(),
    ("search_index", sharded_index_doc),
    ("manifest", lambda: {k: val for k, val in manifest_doc().items()
                          if k not in ("season", "grade", "stream")} | {"subjects": []}),
    ("lesson", lambda: lesson_doc() | {"navigation": {}, "stages": []}),
    ("lesson", lambda: {k: val for k, val in lesson_doc().items()
                        if k not in ("description", "image", "signed_url_expiry")}),
    ("search_index", lambda: search_index_doc() | {"entries": [], "total_lessons": 0}),
    ("search_shard", lambda: search_shard_doc() | {"part": 1, "parts": 1, "entries": []}),
]


# --------------------------------------------------------------------------- contracts

def _load_contracts() -> dict[str, Draft7Validator]:
    if not CONTRACTS.is_dir():
        pytest.fail(f"contracts not found at {CONTRACTS}")
    out = {}
    for kind in CONTRACT_KINDS:
        path = CONTRACTS / f"{kind}.schema.json"
        if not path.is_file():
            pytest.fail(f"contract missing: {path}")
        out[kind] = Draft7Validator(json.loads(path.read_text(encoding="utf-8")),
                                    format_checker=FormatChecker())
    return out


@pytest.fixture(scope="module")
def contracts() -> dict[str, Draft7Validator]:
    return _load_contracts()


@pytest.fixture(scope="module")
def contract_entry(contracts) -> Draft7Validator:
    """The contract's searchEntry, for search_shard entries (a shard has no contract of its own)."""
    schema = contracts["search_index"].schema
    return Draft7Validator({"$ref": "#/definitions/searchEntry", "definitions": schema["definitions"]},
                           format_checker=FormatChecker())


def ours_ok(kind: str, doc: Any) -> bool:
    """Our verdict; every call also holds the deciding validator (jsonschema-rs) to the reference one."""
    reference = validator(kind).is_valid(doc)
    fast = fast_validator(kind).is_valid(doc)
    assert fast == reference, f"{kind}: jsonschema-rs says valid={fast}, jsonschema says valid={reference}"
    return reference


def contract_ok(contracts, contract_entry, kind: str, doc: Any) -> bool:
    if kind == "search_shard":
        # ours is the only schema; at least its entries must be contract search entries
        return isinstance(doc, dict) and all(
            contract_entry.is_valid(e) for e in doc.get("entries", []))
    return contracts[kind].is_valid(doc)


def test_contracts_present():
    assert CONTRACTS.is_dir(), f"missing {CONTRACTS}"
    assert {p.name for p in CONTRACTS.glob("*.schema.json")} >= {
        f"{k}.schema.json" for k in CONTRACT_KINDS}


# --------------------------------------------------------------------------- schema files

def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for k, val in node.items():
            yield from _walk(val, f"{path}/{k}")
    elif isinstance(node, list):
        for i, val in enumerate(node):
            yield from _walk(val, f"{path}/{i}")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft7(kind):
    path = REPO / "include" / "memora_cdn" / "engine" / "schemas" / f"{kind}.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(schema)
    for where, node in _walk(schema):
        if isinstance(node.get("pattern"), str):
            re.compile(node["pattern"])
        # every object whose fields we know is closed; only stage `config` stays free
        if node.get("type") == "object":
            if where.endswith("/config"):
                assert "additionalProperties" not in node, where
            else:
                assert node.get("additionalProperties") is False, f"{kind} {where} is open"


def test_validator_is_cached_and_kinds_checked():
    assert validator("lesson") is validator("lesson")
    assert validator("lesson").format_checker is not None
    with pytest.raises(ValueError, match="unknown document kind"):
        validator("course")


# --------------------------------------------------------------------------- valid samples

@pytest.mark.parametrize("kind,build", VARIANTS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VARIANTS)])
def test_samples_pass_ours_and_contract(kind, build, contracts, contract_entry):
    doc = build()
    validate(kind, doc, key=f"sample/{kind}")          # raises with a readable message
    assert contract_ok(contracts, contract_entry, kind, doc)


# --------------------------------------------------------------------------- rejections

def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DROP:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return doc


_DROP = object()

REJECTED: list[tuple[str, str, str, Any, str]] = [
    # (name, kind, dotted path, new value or _DROP, expected json path in the message)
    ("paid without required_item", "manifest", "subjects.1.access.required_item", _DROP,
     "$.subjects[1].access"),
    ("paid without required_item (lesson)", "lesson", "access", acc("paid"), "$.access"),
    ("required_item on public", "subject", "access.required_item", "ITEM-X",
     "$.access.required_item"),
    ("required_item on free_preview summary", "unit", "topics.0.lessons.0.access.required_item",
     "ITEM-X", "$.topics[0].lessons[0].access.required_item"),
    ("empty required_item", "subject", "tracks.1.access.required_item", "",
     "$.tracks[1].access.required_item"),
    ("is_published false", "lesson", "access.is_published", False, "$.access.is_published"),
    ("is_published 1", "unit", "access.is_published", 1, "$.access.is_published"),
    ("unknown access level", "unit", "access.access_level", "premium", "$.access.access_level"),
    ("track access without is_sold_separately", "subject",
     "tracks.0.access.is_sold_separately", _DROP, "$.tracks[0].access"),
    ("track access without parent_item_required", "subject",
     "tracks.1.access.parent_item_required", _DROP, "$.tracks[1].access"),
    ("unversioned subject url", "manifest", "subjects.0.url",
     "plans/PLAN-2026-SCI-12/subjects/3f9a1c2b7d.json", "$.subjects[0].url"),
    ("unversioned unit url", "subject", "tracks.0.units.0.url",
     "plans/PLAN-2026-SCI-12/units/u7c3.json", "$.tracks[0].units[0].url"),
    ("unversioned lesson url", "unit", "topics.0.lessons.1.url",
     "plans/PLAN-2026-SCI-12/lessons/ls2.json", "$.topics[0].lessons[1].url"),
    ("absolute subject url", "manifest", "subjects.0.url",
     "https://cdn.memora.app/plans/P/subjects/s.json?v=1", "$.subjects[0].url"),
    ("unit url in lesson slot", "unit", "topics.0.lessons.0.url",
     "plans/PLAN-2026-SCI-12/units/ls1.json?v=2", "$.topics[0].lessons[0].url"),
    ("root-level unit url (seed layout)", "subject", "tracks.0.units.0.url",
     "units/u7c3.json?v=12", "$.tracks[0].units[0].url"),
    ("version 0 in url", "unit", "topics.0.lessons.0.url",
     "plans/PLAN-2026-SCI-12/lessons/ls1.json?v=0", "$.topics[0].lessons[0].url"),
    ("trailing newline in url", "unit", "topics.0.lessons.0.url",
     "plans/PLAN-2026-SCI-12/lessons/ls1.json?v=2\n", "$.topics[0].lessons[0].url"),
    ("unversioned search index url", "manifest", "search_index_url",
     "plans/PLAN-2026-SCI-12/search_index.json", "$.search_index_url"),
    ("unversioned shard url", "search_index/sharded", "shards.0.url",
     "plans/PLAN-2026-SCI-12/search/3f9a1c2b7d.json", "$.shards[0].url"),
    ("versioned next_lesson url", "lesson", "navigation.next_lesson.url",
     "plans/PLAN-2026-SCI-12/lessons/ls2.json?v=5", "$.navigation.next_lesson.url"),
    ("versioned previous_lesson url", "lesson", "navigation.previous_lesson.url",
     "plans/PLAN-2026-SCI-12/lessons/ls0.json?v=1", "$.navigation.previous_lesson.url"),
    ("navigation entry without title", "lesson", "navigation.next_lesson.title", _DROP,
     "$.navigation.next_lesson"),
    ("unknown navigation key", "lesson", "navigation.up", {"id": "u7c3"}, "$.navigation"),
    ("unknown top-level field", "lesson", "video_url", "https://x.example/v.mp4", "$"),
    ("unknown field in summary", "subject", "tracks.0.units.0.is_new", True, "$.tracks[0].units[0]"),
    ("unknown field in access", "manifest", "subjects.0.access.price", 10, "$.subjects[0].access"),
    ("unknown field in parent", "unit", "parent.plan_id", "P", "$.parent"),
    ("unknown field in search entry", "search_index", "entries.0.score", 1, "$.entries[0]"),
    ("unknown field in stage", "lesson", "stages.0.video_url", "https://x/v.mp4", "$.stages[0]"),
    ("relative image", "subject", "image", "/files/math.png", "$.image"),
    ("relative badge image", "unit", "badge_image", "files/badge.svg", "$.badge_image"),
    ("non-http image", "manifest", "subjects.0.image", "s3://private-media/cover.png",
     "$.subjects[0].image"),
    ("unencoded space in image", "lesson", "image", f"{MEDIA}/my image.png", "$.image"),
    ("unencoded Arabic in image", "unit", "image", f"{MEDIA}/صورة.png", "$.image"),
    ("null optional description", "subject", "description", None, "$.description"),
    ("null optional image", "unit", "topics.1.image", None, "$.topics[1].image"),
    ("null optional color", "manifest", "subjects.0.color_code", None, "$.subjects[0].color_code"),
    ("null stage config", "lesson", "stages.1.config", None, "$.stages[1].config"),
    ("null season", "manifest", "season", None, "$.season"),
    ("bad color", "subject", "color_code", "#12345", "$.color_code"),
    ("named color", "manifest", "subjects.0.color_code", "blue", "$.subjects[0].color_code"),
    ("missing search entry field", "search_index", "entries.1.topic_name", _DROP, "$.entries[1]"),
    ("missing shard entry field", "search_shard", "entries.0.unit_name", _DROP, "$.entries[0]"),
    ("sharded index with entries", "search_index", "is_sharded", True, "$.entries"),
    ("unsharded index with shards", "search_index/sharded", "is_sharded", False, "$.shards"),
    ("sharded index without shards", "search_index/sharded", "shards", _DROP, "$"),
    ("sharded index under 500", "search_index/sharded", "total_lessons", 499, "$.total_lessons"),
    ("empty title", "unit", "title", "", "$.title"),
    ("empty id", "lesson", "navigation.previous_lesson.id", "", "$.navigation.previous_lesson.id"),
    ("version 0", "lesson", "version", 0, "$.version"),
    ("version as string", "subject", "version", "12", "$.version"),
    ("generated_at with offset", "unit", "generated_at", "2026-11-29T12:21:02+02:00",
     "$.generated_at"),
    ("generated_at date only", "manifest", "generated_at", "2026-11-29", "$.generated_at"),
    ("generated_at month 13", "lesson", "generated_at", "2026-13-29T10:21:02Z", "$.generated_at"),
    ("generated_at Arabic-Indic digits", "lesson", "generated_at", "٢٠٢٦-11-29T10:21:02Z",
     "$.generated_at"),
    ("signed_url_expiry as epoch", "lesson", "signed_url_expiry", 1764426062,
     "$.signed_url_expiry"),
    ("stage idx 0", "lesson", "stages.0.idx", 0, "$.stages[0].idx"),
    ("stage type unknown", "lesson", "stages.1.type", "Audio", "$.stages[1].type"),
    ("stage config string", "lesson", "stages.0.config", '{"video_url": "x"}', "$.stages[0].config"),
    ("negative lesson_count", "subject", "tracks.0.units.0.lesson_count", -1,
     "$.tracks[0].units[0].lesson_count"),
    ("float stage_count", "unit", "topics.0.lessons.0.stage_count", 4.5,
     "$.topics[0].lessons[0].stage_count"),
    ("sort_order as string", "manifest", "subjects.0.sort_order", "1", "$.subjects[0].sort_order"),
    ("missing stats", "subject", "stats", _DROP, "$"),
    ("missing stats field", "unit", "stats.total_lessons", _DROP, "$.stats"),
    ("missing parent", "lesson", "parent", _DROP, "$"),
    ("missing parent field", "lesson", "parent.track_title", _DROP, "$.parent"),
    ("missing navigation", "lesson", "navigation", _DROP, "$"),
    ("missing sort_order", "unit", "sort_order", _DROP, "$"),
    ("missing summary access", "manifest", "subjects.1.access", _DROP, "$.subjects[1]"),
    ("missing topic_count", "subject", "tracks.0.units.1.topic_count", _DROP,
     "$.tracks[0].units[1]"),
    ("missing search_index_url", "manifest", "search_index_url", _DROP, "$"),
    ("missing is_sharded", "search_index", "is_sharded", _DROP, "$"),
    ("missing total_lessons", "search_index", "total_lessons", _DROP, "$"),
    ("unsharded index over 499", "search_index", "total_lessons", 500, "$.total_lessons"),
    ("shard part 0", "search_shard", "part", 0, "$.part"),
    ("shard without parts", "search_shard", "parts", _DROP, "$"),
]


@pytest.mark.parametrize("name,kind,path,value,where", REJECTED, ids=[r[0] for r in REJECTED])
def test_ours_rejects(name, kind, path, value, where):
    doc = _set(BUILDERS[kind](), path, value if value is _DROP else copy.deepcopy(value))
    kind = kind.split("/")[0]
    with pytest.raises(InvalidDocument) as exc:
        validate(kind, doc, key=f"plans/P/{kind}.json")
    err = exc.value
    assert str(err).startswith(f"{kind} plans/P/{kind}.json: ")
    assert err.path == where, str(err)
    assert len(str(err)) < 300, str(err)


def test_sharded_index_with_entries_and_unsharded_with_shards():
    doc = sharded_index_doc() | {"entries": [entry(1)]}
    with pytest.raises(InvalidDocument, match="'entries' is not allowed"):
        validate("search_index", doc)
    doc = search_index_doc() | {"shards": sharded_index_doc()["shards"]}
    with pytest.raises(InvalidDocument):
        validate("search_index", doc)
    # a sharded index needs shards, an unsharded one entries
    with pytest.raises(InvalidDocument):
        validate("search_index", {k: x for k, x in sharded_index_doc().items() if k != "shards"})
    with pytest.raises(InvalidDocument):
        validate("search_index", sharded_index_doc() | {"total_lessons": 499})


def test_message_names_document_and_is_short():
    doc = lesson_doc()
    doc["access"] = acc("paid")
    with pytest.raises(InvalidDocument) as exc:
        validate("lesson", doc)
    assert str(exc.value) == "lesson ls1: $.access: 'required_item' is a required property"
    assert (exc.value.kind, exc.value.label, exc.value.path) == ("lesson", "ls1", "$.access")
    assert isinstance(exc.value, ValueError)

    doc = search_index_doc()
    doc["entries"][0]["lesson_name"] = "x" * 5000
    doc["entries"][0]["extra"] = "y" * 5000
    with pytest.raises(InvalidDocument) as exc:
        validate("search_index", doc)
    assert str(exc.value).startswith("search_index PLAN-2026-SCI-12: $.entries[0]: ")
    assert len(str(exc.value)) < 250

    with pytest.raises(InvalidDocument, match=r"^search_shard PLAN-2026-SCI-12/3f9a1c2b7d~2: "):
        validate("search_shard", search_shard_doc() | {"parts": 0})
    with pytest.raises(InvalidDocument, match=r"^manifest \?: \$: "):
        validate("manifest", [])


def test_cross_field_checks():
    with pytest.raises(InvalidDocument, match=r"\$\.total_lessons: 4 but the index has 3 entries"):
        validate("search_index", search_index_doc() | {"total_lessons": 4})
    with pytest.raises(InvalidDocument, match=r"\$\.part: part 3 of 2"):
        validate("search_shard", search_shard_doc() | {"part": 3})
    doc = search_shard_doc()
    doc["entries"][2]["subject_id"] = "8b21e0aa41"
    with pytest.raises(InvalidDocument, match=r"\$\.entries\[2\]\.subject_id"):
        validate("search_shard", doc)
    doc = manifest_doc()
    doc["subjects"][1]["url"] = "plans/OTHER-PLAN/subjects/8b21e0aa41.json?v=3"
    with pytest.raises(InvalidDocument, match=r"\$\.subjects\[1\]\.url: not under plans/PLAN-2026-SCI-12/"):
        validate("manifest", doc)
    with pytest.raises(InvalidDocument, match=r"\$\.search_index_url"):
        validate("manifest", manifest_doc() | {"search_index_url": "plans/X/search_index.json?v=1"})
    doc = sharded_index_doc()
    doc["shards"][2]["url"] = "plans/X/search/8b21e0aa41.json?v=2"
    with pytest.raises(InvalidDocument, match=r"\$\.shards\[2\]\.url"):
        validate("search_index", doc)


# --------------------------------------------------------------------------- subset property

_REPLACEMENTS: tuple[Any, ...] = (None, "", "x", "plans/p/lessons/l.json", "https://x.example/a.png",
                                  "2026-11-29T10:21:02Z", 0, -1, 7, 1.5, True, False, [], {},
                                  {"is_published": True, "access_level": "paid"})

_ADDITIONS: dict[str, Any] = {"extra": "x", "url": "plans/p/lessons/l.json", "required_item": "ITEM-1",
                              "entries": [], "shards": [], "config": {}, "is_sharded": False}


def _mutations(doc: Any, replace: bool = True, max_depth: int = 99) -> Iterator[tuple[str, Any]]:
    """Single-step mutants of `doc`: drop a key, add a key, replace a value, empty/extend a list."""
    def walk(node: Any, path: tuple) -> Iterator[tuple]:
        yield path, node
        if len(path) >= max_depth:
            return
        if isinstance(node, dict):
            for k, val in node.items():
                yield from walk(val, path + (k,))
        elif isinstance(node, list):
            for i, val in enumerate(node[:2]):      # two items are enough to reach every shape
                yield from walk(val, path + (i,))

    def at(root: Any, path: tuple) -> Any:
        for p in path:
            root = root[p]
        return root

    def mutant(path: tuple, change: Callable[[Any], None]) -> Any:
        d = copy.deepcopy(doc)
        change(at(d, path))
        return d

    for path, node in list(walk(doc, ())):
        name = "/".join(map(str, path)) or "$"
        if isinstance(node, dict):
            for k in list(node):
                yield f"drop {name}/{k}", mutant(path, lambda n, k=k: n.pop(k))
            for extra, value in _ADDITIONS.items():
                if extra not in node:
                    yield (f"add {name}/{extra}",
                           mutant(path, lambda n, e=extra, x=value: n.__setitem__(e, copy.deepcopy(x))))
            for k in list(node) if replace else ():
                for rep in _REPLACEMENTS:
                    yield (f"set {name}/{k}={rep!r}",
                           mutant(path, lambda n, k=k, r=rep: n.__setitem__(k, copy.deepcopy(r))))
        elif isinstance(node, list):
            yield f"empty {name}", mutant(path, lambda n: n.clear())
            if node:
                yield f"dup {name}", mutant(path, lambda n: n.append(copy.deepcopy(n[0])))
            yield f"append-null {name}", mutant(path, lambda n: n.append(None))


@pytest.mark.parametrize("kind,build", VARIANTS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(VARIANTS)])
def test_whatever_ours_accepts_the_contract_accepts(kind, build, contracts, contract_entry):
    accepted = rejected = 0
    for what, doc in _mutations(build()):
        if ours_ok(kind, doc):
            accepted += 1
            assert contract_ok(contracts, contract_entry, kind, doc), (
                f"{kind}: ours accepts but the contract rejects after {what}")
        else:
            rejected += 1
    assert accepted > 0 and rejected > accepted, (accepted, rejected)


def test_whatever_ours_accepts_the_contract_accepts_two_steps(contracts, contract_entry):
    """Pairs of mutations: every top-level pair on the search index (where the oneOf lives), and
    every mutation of lessons that one accepted drop/add already changed (navigation, optionals)."""
    checked = 0
    small_index = search_index_doc() | {"entries": [entry(1)], "total_lessons": 1}
    small_sharded = sharded_index_doc()
    del small_sharded["shards"][1:]
    small_lesson = lesson_doc()
    del small_lesson["stages"][2:]
    for kind, doc0, firsts in (
        ("search_index", small_index, _mutations(small_index, max_depth=0)),
        ("search_index", small_sharded, _mutations(small_sharded, max_depth=0)),
        ("lesson", small_lesson, (m for m in _mutations(small_lesson, replace=False)
                                  if m[0].startswith("drop") and "config/" not in m[0]
                                  and ours_ok("lesson", m[1]))),
    ):
        for first_what, first in firsts:
            seconds = _mutations(first, max_depth=0) if kind == "search_index" else _mutations(first)
            for what, doc in seconds:
                if ours_ok(kind, doc):
                    checked += 1
                    assert contract_ok(contracts, contract_entry, kind, doc), (
                        f"{kind}: ours accepts but the contract rejects after {first_what}, {what}")
    assert checked > 500


# --------------------------------------------------------------------------- speed

def test_validation_speed():
    """Thousands of documents per build: validating 2000 lessons must stay well under a second or
    so (the bound is loose for slow CI machines; the measured time is printed with -s)."""
    docs = [lesson_doc(i) for i in range(2000)]
    validate("lesson", docs[0])                          # build the cached validator first
    start = time.perf_counter()
    for d in docs:
        validate("lesson", d)
    elapsed = time.perf_counter() - start
    print(f"\nvalidated 2000 lessons in {elapsed:.3f}s ({elapsed / 2000 * 1e6:.0f} us each)")
    assert elapsed < 10


def test_a_rejection_only_jsonschema_rs_sees_is_still_refused_and_named(monkeypatch):
    """jsonschema-rs decides; when the reference validator finds nothing to report (a format it does not
    check), the document is refused all the same, with jsonschema-rs's own message and path."""
    import memora_cdn.engine.validate as validate_module

    monkeypatch.setattr(validate_module, "validator", lambda kind: Draft7Validator({}))
    doc = lesson_doc()
    doc["title"] = 7
    with pytest.raises(InvalidDocument) as exc:
        validate("lesson", doc, key="plans/P/lessons/L.json")
    assert exc.value.path == "$.title"
    assert "7 is not of type" in exc.value.reason
