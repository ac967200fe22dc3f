"""Unit tests of rendering: documents, urls, versions, navigation, search sharding and signing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from memora_cdn.engine.media import MediaSigner, image_url, private_media_key
from memora_cdn.engine.render import SHARD_MAX_BYTES, render_plan, split_entries
from memora_cdn.engine.resolve import resolve_plan
from memora_cdn.settings import parse_settings
from tests.content import PlanBuilder

SETTINGS = parse_settings({"media_bucket": "memora-media", "media_base_url": "https://media.memora.test"})
NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc)


def render(content, previous=None, signer=None, now=NOW):
    return render_plan(resolve_plan(content), SETTINGS, previous=previous or {}, signer=signer, now=now)


def docs(rendering):
    return {f.key: orjson.loads(f.body) for f in rendering.files}


def as_previous(rendering):
    return {f.key: {"sha256": f.sha256, "version": f.version, "generated_at": f.generated_at} for f in rendering.files}


def plan_with_lessons(n_lessons: int, subjects: int = 1, title_size: int = 10):
    b = PlanBuilder()
    per = n_lessons // subjects
    for s in range(subjects):
        b.subject(f"S{s}", sort=s).track(f"T{s}", f"S{s}").unit(f"U{s}", f"T{s}").topic(f"Tp{s}", f"U{s}")
        for i in range(per + (1 if s < n_lessons % subjects else 0)):
            b.lesson(f"L{s}x{i:05d}", f"Tp{s}", title="د" * title_size, sort=i)
    return b.build()


def test_files_keys_and_bottom_up_order():
    b = PlanBuilder().chain().lesson("L2", "Tp", sort=1).stage("L", "Text", {"body": "x"})
    r = render(b.build())
    assert [f.kind for f in r.files] == ["lesson", "lesson", "unit", "subject", "search_index", "manifest"]
    assert {f.key for f in r.files} == {"plans/P1/lessons/L.json", "plans/P1/lessons/L2.json", "plans/P1/units/U.json",
                                        "plans/P1/subjects/S.json", "plans/P1/search_index.json", "plans/P1/manifest.json"}


def test_urls_carry_the_child_version_and_resolve():
    r = render(PlanBuilder().chain().build())
    d = docs(r)
    version = {f.key: f.version for f in r.files}
    manifest = d["plans/P1/manifest.json"]
    url = manifest["subjects"][0]["url"]
    key, v = url.split("?v=")
    assert key == "plans/P1/subjects/S.json" and int(v) == version[key]
    unit_url = d[key]["tracks"][0]["units"][0]["url"]
    assert unit_url == f"plans/P1/units/U.json?v={version['plans/P1/units/U.json']}"
    lesson_url = d["plans/P1/units/U.json"]["topics"][0]["lessons"][0]["url"]
    assert lesson_url == f"plans/P1/lessons/L.json?v={version['plans/P1/lessons/L.json']}"
    assert manifest["search_index_url"] == f"plans/P1/search_index.json?v={version['plans/P1/search_index.json']}"


def test_unchanged_content_renders_byte_identical_files():
    content = PlanBuilder().chain().stage("L", "Video", {"video_url": "https://videos.example.com/a.mp4"}).build()
    first = render(content)
    second = render(content, previous=as_previous(first), now=NOW + timedelta(hours=3))
    assert [f.body for f in first.files] == [f.body for f in second.files]


def test_a_change_bumps_the_file_and_its_ancestors_only():
    b = PlanBuilder().chain()
    b.subject("S2", sort=1).track("T2", "S2").unit("U2", "T2").topic("Tp2", "U2").lesson("L2", "Tp2")
    first = render(b.build())
    b.c.lessons[0]["title"] = "New title"
    second = render(b.build(), previous=as_previous(first), now=NOW + timedelta(seconds=5))
    changed = {f.key for f, g in zip(first.files, second.files) if f.body != g.body}
    assert changed == {"plans/P1/lessons/L.json", "plans/P1/units/U.json", "plans/P1/subjects/S.json",
                       "plans/P1/search_index.json", "plans/P1/manifest.json"}
    new = {f.key: f for f in second.files}
    old = {f.key: f for f in first.files}
    assert new["plans/P1/lessons/L.json"].version > old["plans/P1/lessons/L.json"].version
    assert new["plans/P1/lessons/L.json"].generated_at == "2026-11-29T10:00:05Z"
    assert new["plans/P1/units/U2.json"].generated_at == old["plans/P1/units/U2.json"].generated_at


def test_version_never_goes_backwards():
    content = PlanBuilder().chain().build()
    first = render(content)
    prev = as_previous(first)
    prev["plans/P1/lessons/L.json"] = {"sha256": "stale", "version": 9_999_999_999, "generated_at": "x"}
    second = render(content, previous=prev)
    assert next(f for f in second.files if f.kind == "lesson").version == 10_000_000_000


def test_navigation_links_neighbours_across_topics_without_versions():
    b = PlanBuilder().subject("S").track("T", "S").unit("U", "T").topic("A", "U", sort=0).topic("B", "U", sort=1)
    b.lesson("a1", "A", sort=0).lesson("a2", "A", sort=1).lesson("b1", "B").lesson("hidden", "B", sort=5, published=0)
    d = docs(render(b.build()))
    nav = {k.rsplit("/", 1)[1]: v["navigation"] for k, v in d.items() if "/lessons/" in k}
    assert nav["a1.json"] == {"next_lesson": {"id": "a2", "title": "A2", "url": "plans/P1/lessons/a2.json"}}
    assert nav["a2.json"]["previous_lesson"]["id"] == "a1" and nav["a2.json"]["next_lesson"]["id"] == "b1"
    assert nav["b1.json"] == {"previous_lesson": {"id": "a2", "title": "A2", "url": "plans/P1/lessons/a2.json"}}


def test_lesson_document_fields():
    b = PlanBuilder().chain(lesson={"image": "/files/l one.png", "description": "وصف"})
    b.stage("L", "Question", {"question": "?"}, title="Q", idx=7).stage("L", "Text", None, title="T", idx=9)
    d = docs(render(b.build()))["plans/P1/lessons/L.json"]
    assert d["image"] == "https://media.memora.test/files/l%20one.png"
    assert d["stages"] == [{"idx": 1, "title": "Q", "type": "Question", "config": {"question": "?"}},
                           {"idx": 2, "title": "T", "type": "Text"}]
    assert d["parent"] == {"topic_id": "Tp", "topic_title": "Tp", "unit_id": "U", "unit_title": "U",
                           "track_id": "T", "track_title": "T", "subject_id": "S", "subject_title": "S"}
    assert "signed_url_expiry" not in d and d["description"] == "وصف"


def test_rename_applies_everywhere_including_search():
    content = PlanBuilder().chain().override("Lesson", "L", "Rename", "اسم جديد").override("Subject", "S", "Rename", "Maths").build()
    d = docs(render(content))
    assert d["plans/P1/lessons/L.json"]["title"] == "اسم جديد"
    assert d["plans/P1/units/U.json"]["topics"][0]["lessons"][0]["title"] == "اسم جديد"
    entry = d["plans/P1/search_index.json"]["entries"][0]
    assert entry["lesson_name"] == "اسم جديد" and entry["subject_name"] == "Maths"
    assert d["plans/P1/manifest.json"]["subjects"][0]["title"] == "Maths"


# -- search ---------------------------------------------------------------------------------------

def test_499_lessons_is_one_unsharded_index():
    d = docs(render(plan_with_lessons(499, subjects=3)))
    index = d["plans/P1/search_index.json"]
    assert index["is_sharded"] is False and index["total_lessons"] == 499 and len(index["entries"]) == 499
    assert not any("/search/" in k for k in d)


def test_500_lessons_is_sharded_per_subject():
    d = docs(render(plan_with_lessons(500, subjects=3)))
    index = d["plans/P1/search_index.json"]
    assert index["is_sharded"] is True and index["total_lessons"] == 500 and "entries" not in index
    assert [s["subject_id"] for s in index["shards"]] == ["S0", "S1", "S2"]
    assert sum(s["lesson_count"] for s in index["shards"]) == 500
    for shard in index["shards"]:
        key = shard["url"].split("?v=")[0]
        assert key == f"plans/P1/search/{shard['subject_id']}.json"
        assert len(d[key]["entries"]) == shard["lesson_count"]


def test_a_subject_too_big_for_one_shard_is_split_under_100kb():
    r = render(plan_with_lessons(1200, subjects=1, title_size=60))
    shards = [f for f in r.files if f.kind == "search_shard"]
    assert len(shards) >= 2
    assert all(len(f.body) <= SHARD_MAX_BYTES for f in shards)
    assert [f.key for f in shards][:2] == ["plans/P1/search/S0.json", "plans/P1/search/S0~p2.json"]
    index = orjson.loads(next(f for f in r.files if f.kind == "search_index").body)
    assert len(index["shards"]) == len(shards) and sum(s["lesson_count"] for s in index["shards"]) == 1200
    lessons = [e["lesson_id"] for f in shards for e in orjson.loads(f.body)["entries"]]
    assert len(lessons) == len(set(lessons)) == 1200


def test_split_entries_respects_the_limit_exactly():
    entries = [{"lesson_id": str(i), "x": "y" * 50} for i in range(100)]
    parts = split_entries(entries, 1000)
    assert sum(len(p) for p in parts) == 100
    assert all(len(orjson.dumps(p)) <= 1000 for p in parts)


# -- media ----------------------------------------------------------------------------------------

def test_image_urls():
    assert image_url("https://m.test/", "/files/a.png") == "https://m.test/files/a.png"
    assert image_url("https://m.test", "https://elsewhere/x.png") == "https://elsewhere/x.png"
    assert image_url("https://m.test", None) is None
    assert image_url("https://m.test", "/files/صورة 1.png") == "https://m.test/files/%D8%B5%D9%88%D8%B1%D8%A9%201.png"
    assert image_url("https://m.test", "https://x.test/a b%zz%20.png?s=1 2") == "https://x.test/a%20b%25zz%20.png?s=1%202"


@pytest.mark.parametrize("value,key", [
    ("s3://memora-media/videos/a.mp4", "videos/a.mp4"),
    ("https://media.memora.test/memora-media/videos/a.mp4", "videos/a.mp4"),
    ("https://memora-media.s3.amazonaws.com/videos/a.mp4", "videos/a.mp4"),
    ("https://videos.example.com/memora-mediax/a.mp4", None),
    ("s3://other-bucket/a.mp4", None),
    ("just text mentioning memora-media", None),
])
def test_private_media_addresses(value, key):
    assert private_media_key(value, "memora-media") == key


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def signer_at(clock, previous=None):
    calls = []

    def presign(key, expires_in):
        calls.append((key, expires_in))
        return f"https://signed.test/{key}?X-Amz-Expires={expires_in}&X-Amz-Date={int(clock())}"

    return MediaSigner("memora-media", 4, presign, previous=previous or {}, now=clock), calls


def test_private_videos_are_signed_and_reused_until_half_life():
    b = PlanBuilder().chain()
    b.stage("L", "Video", {"video_url": "s3://memora-media/v/a.mp4", "poster": {"src": "https://media.memora.test/memora-media/p.png"}})
    b.stage("L", "Video", {"video_url": "https://videos.example.com/public.mp4"})
    clock = FakeClock(NOW.timestamp())
    signer, calls = signer_at(clock)
    r1 = render(b.build(), signer=signer)
    lesson = docs(r1)["plans/P1/lessons/L.json"]
    assert lesson["stages"][0]["config"]["video_url"].startswith("https://signed.test/v/a.mp4?X-Amz-Expires=14400")
    assert lesson["stages"][0]["config"]["poster"]["src"].startswith("https://signed.test/p.png")
    assert lesson["stages"][1]["config"]["video_url"] == "https://videos.example.com/public.mp4"
    assert lesson["signed_url_expiry"] == "2026-11-29T14:00:00Z"
    assert b"memora-media/" not in next(f.body for f in r1.files if f.kind == "lesson")
    assert signer.renew_at == int(NOW.timestamp()) + 2 * 3600

    # 1 hour later: signatures reused, bytes identical, no new presign calls
    clock.t += 3600
    signer2, calls2 = signer_at(clock, previous=signer.used)
    r2 = render(b.build(), previous=as_previous(r1), signer=signer2, now=NOW + timedelta(hours=1))
    assert [f.body for f in r1.files] == [f.body for f in r2.files] and calls2 == []

    # past half-life: re-signed, the lesson (and its parents) change
    clock.t += 3600 + 1
    signer3, calls3 = signer_at(clock, previous=signer2.used)
    r3 = render(b.build(), previous=as_previous(r2), signer=signer3, now=NOW + timedelta(hours=2, seconds=1))
    assert len(calls3) == 2
    changed = {f.kind for f, g in zip(r2.files, r3.files) if f.body != g.body}
    assert changed == {"lesson", "unit", "subject", "search_index", "manifest"} - {"search_index"}


def test_unsignable_private_address_is_dropped_not_published():
    def broken(key, expires_in):
        raise RuntimeError("no credentials")

    b = PlanBuilder().chain().stage("L", "Video", {"video_url": "s3://memora-media/v/a.mp4", "duration": 3})
    signer = MediaSigner("memora-media", 4, broken)
    r = render(b.build(), signer=signer)
    f = next(f for f in r.files if f.kind == "lesson")
    assert b"memora-media" not in f.body
    assert orjson.loads(f.body)["stages"][0]["config"] == {"duration": 3}
    assert any("could not be signed" in str(p) for p in r.problems)


def test_only_new_content_is_validated(monkeypatch):
    content = PlanBuilder().chain().build()
    first = render(content)
    calls = []
    monkeypatch.setattr("memora_cdn.engine.render.validate", lambda kind, doc, key="": calls.append(key))
    render(content, previous=as_previous(first))
    assert calls == []
    content.lessons[0]["title"] = "changed"
    render(content, previous=as_previous(first))
    assert "plans/P1/lessons/L.json" in calls and "plans/P1/manifest.json" in calls


# -- the app's 008 fields, any Frappe name --------------------------------------------------------------------

def test_008_fields_are_published_where_the_columns_exist_and_absent_otherwise():
    b = PlanBuilder().chain(subject={"is_linear": 1}, track={"is_linear": 0}, unit={"is_linear": 1},
                            topic={"is_linear": 0}, lesson={"bit_index": 3})
    b.override("Unit", "U", "Set Linear", "0")
    b.stage("L", "Video", {"video_url": "https://videos.example.com/v.mp4"})
    b.c.stages[-1].update(weight="1.500000000", target_time=240, is_skippable=0)
    d = docs(render(b.build()))  # validated against the project's schemas while rendering
    manifest, subject = d["plans/P1/manifest.json"], d["plans/P1/subjects/S.json"]
    unit, lesson = d["plans/P1/units/U.json"], d["plans/P1/lessons/L.json"]
    assert manifest["subjects"][0]["is_linear"] is True and subject["is_linear"] is True
    assert subject["tracks"][0]["is_linear"] is False
    assert subject["tracks"][0]["units"][0]["is_linear"] is False and unit["is_linear"] is False  # Set Linear
    assert unit["topics"][0]["is_linear"] is False
    assert unit["topics"][0]["lessons"][0]["bit_index"] == 3 and lesson["bit_index"] == 3
    assert {k: lesson["stages"][0][k] for k in ("weight", "target_time", "is_skippable")} == \
        {"weight": 1.5, "target_time": 240, "is_skippable": False}

    old = docs(render(PlanBuilder().chain().stage("L", "Text", {"body": "x"}).build()))  # 002: none of the columns
    text = b"".join(orjson.dumps(doc) for doc in old.values())
    for name in (b"is_linear", b"bit_index", b"weight", b"target_time", b"is_skippable"):
        assert name not in text


NAMES = {  # names Frappe allows (up to 140 characters): `/`, `..`, spaces, Arabic, emoji, %, ?, #
    "slash": "Unit 3/Part 1", "dots": "..", "dotdot-path": "../../_memora_cdn_state/P1", "space": "a lesson",
    "arabic": "الدرس الأول: الكسور", "emoji": "Fractions 🍕 & more", "percent": "100% done?", "hash": "#1 ?x=y",
    "long": "L" * 139 + "/", "long-arabic": "د" * 140,
}


def test_any_frappe_name_is_published_under_a_reversible_url_safe_key():
    from memora_cdn.engine import keys

    b = PlanBuilder("Plan 2026/27 ✓").chain()
    for i, name in enumerate(NAMES.values()):
        b.lesson(name, "Tp", sort=i + 1)
    r = render(b.build())
    assert not r.problems
    d = docs(r)
    prefix = keys.plan_prefix("Plan 2026/27 ✓")
    assert prefix == "plans/Plan~202026~2F27~20~E2~9C~93/"
    lessons = {doc["id"]: key for key, doc in d.items() if key.startswith(prefix + "lessons/")}
    assert set(lessons) == {"L", *NAMES.values()}
    for name, key in lessons.items():
        segment = key[len(prefix + "lessons/"):-len(".json")]
        assert keys.decode_name(segment) == name and keys.encode_name(name) == segment
        assert len(key.encode()) <= keys.MAX_KEY_BYTES
        # URL-safe as it stands: unreserved characters only, no `.`/`..` segment, nothing a URL would re-encode
        assert all(c.isascii() and (c.isalnum() or c in "/_.-~") for c in key), key
        assert not {".", ".."} & set(key.split("/"))
    unit = d[f"{prefix}units/U.json"]
    for entry in unit["topics"][0]["lessons"]:
        assert entry["url"].split("?v=")[0] == lessons[entry["id"]]
    assert keys.plan_of_key(prefix + "manifest.json") == "Plan 2026/27 ✓"


def test_key_encoding_maps_hash_names_to_themselves_and_refuses_what_frappe_cannot_name():
    from memora_cdn.engine import keys

    for name in ("a1b2c3d4e5", "PLAN-2026-0001", "x_y.z-1", "L" * 140):
        assert keys.encode_name(name) == name and keys.decode_name(name) == name
    assert keys.lesson_key("PLAN-2026-0001", "0f3a9c2b1d") == "plans/PLAN-2026-0001/lessons/0f3a9c2b1d.json"
    assert keys.encode_name(".") == "~2E" and keys.encode_name("..") == "~2E." and keys.encode_name("~") == "~7E"
    assert keys.search_shard_key("P", "S", 2) == "plans/P/search/S~p2.json"
    assert keys.search_shard_key("P", "S~p2") == "plans/P/search/S~7Ep2.json"  # never another subject's part
    for bad in ("", None, 7, "a" * 141, "\ud800"):
        assert not keys.is_safe_name(bad)
        with pytest.raises(keys.UnsafeName):
            keys.lesson_key("P1", bad)
    for segment in ("a b", "a%20b", "~2e", "~61", ".x", "~2E.~2F", "~FF"):  # not what encode_name writes
        assert keys.decode_name(segment) is None or segment == keys.encode_name(keys.decode_name(segment))
    assert keys.decode_name("a~20b") == "a b" and keys.decode_name("a%20b") is None and keys.decode_name("~61") is None
    with pytest.raises(keys.UnsafeName, match="over S3's 1024"):
        keys.lesson_key("د" * 140, "د" * 140)
