"""Render: turn a `ResolvedPlan` into the plan's JSON files (SPEC §3, §5), bottom-up.

Files come out children first (lessons, units, subjects, search, manifest) because a parent's
`url` carries its child's `?v={version}`. A file's `version` and `generated_at` come from the
previous build when its content is unchanged, so an unchanged plan renders byte-identical files.
Every file is validated against the project's schemas before it can be published.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import orjson

from memora_cdn.engine import keys
from memora_cdn.engine.media import MediaSigner, image_url
from memora_cdn.engine.resolve import Node, Problem, ResolvedPlan
from memora_cdn.settings import Settings
from memora_cdn.engine.validate import validate

SHARD_THRESHOLD = 500  # lessons; below it the search index is one file
SHARD_MAX_BYTES = 100_000  # SPEC §5: "no shard may exceed 100 KB"
LARGE_FILE_BYTES = 10_000_000

# Upload waves: every file of a wave is written before any file of the next, children before parents.
WAVES = ("lesson", "unit", "subject", "search_shard", "search_index", "manifest")


@dataclass(frozen=True)
class RenderedFile:
    key: str
    kind: str
    body: bytes
    sha256: str  # of the content without version/generated_at
    version: int
    generated_at: str

    @property
    def md5(self) -> str:
        return hashlib.md5(self.body).hexdigest()

    @property
    def url(self) -> str:
        return keys.versioned(self.key, self.version)


@dataclass
class Rendering:
    plan_id: str
    files: list[RenderedFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lesson_count: int = 0

    def by_wave(self) -> list[list[RenderedFile]]:
        waves: dict[str, list[RenderedFile]] = {kind: [] for kind in WAVES}
        for f in self.files:
            waves[f.kind].append(f)
        return [waves[kind] for kind in WAVES if waves[kind]]


class _Versions:
    """Gives each file its version: the previous one when the content is unchanged, else a new one."""

    def __init__(self, previous: dict[str, dict[str, Any]], now: datetime) -> None:
        self.previous = previous
        self.now_ts = int(now.timestamp())
        self.now_iso = now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def finish(self, key: str, kind: str, content: dict[str, Any]) -> RenderedFile:
        body = orjson.dumps(content)
        sha = hashlib.sha256(body).hexdigest()
        prev = self.previous.get(key)
        unchanged = bool(prev) and prev.get("sha256") == sha
        if unchanged:
            version, generated_at = int(prev["version"]), str(prev["generated_at"])
        else:
            version = max(self.now_ts, int(prev["version"]) + 1 if prev else 1)
            generated_at = self.now_iso
        # `version` and `generated_at` go last, spliced into the already serialised content.
        tail = orjson.dumps({"version": version, "generated_at": generated_at})
        full = body[:-1] + b"," + tail[1:] if len(body) > 2 else tail
        if not unchanged:
            # Content with the hash of a file this exporter already published passed this check then: only
            # new content is validated (validation is most of the cost of a rebuild without changes).
            validate(kind, {**content, "version": version, "generated_at": generated_at}, key)
        return RenderedFile(key, kind, full, sha, version, generated_at)


def _put(doc: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """Add the optional fields that have a value; published files never hold nulls."""
    for name, value in optional.items():
        if value is not None:
            doc[name] = value
    return doc


class _Renderer:
    def __init__(self, plan: ResolvedPlan, settings: Settings, signer: MediaSigner | None,
                 versions: _Versions) -> None:
        self.plan = plan
        self.settings = settings
        self.signer = signer
        self.versions = versions
        self.out = Rendering(plan_id=plan.plan_id, problems=list(plan.problems))
        self.urls: dict[str, str] = {}  # node id -> versioned url of its file

    def image(self, path: str | None) -> str | None:
        return image_url(self.settings.media_base_url, path)

    def emit(self, key: str, kind: str, content: dict[str, Any]) -> RenderedFile:
        f = self.versions.finish(key, kind, content)
        if len(f.body) > LARGE_FILE_BYTES:
            self.out.problems.append(Problem(self.plan.plan_id, kind, key, f"file is {len(f.body):,} bytes (over 10 MB)"))
        self.out.files.append(f)
        return f

    def render(self) -> Rendering:
        plan = self.plan
        for unit, lessons in plan.lessons_by_unit():
            for i, lesson in enumerate(lessons):
                prev_lesson = lessons[i - 1] if i > 0 else None
                next_lesson = lessons[i + 1] if i + 1 < len(lessons) else None
                self.urls[lesson.id] = self.emit(keys.lesson_key(plan.plan_id, lesson.id), "lesson",
                                                 self.lesson(lesson, prev_lesson, next_lesson)).url
            self.out.lesson_count += len(lessons)
        for unit in plan.walk("unit"):
            self.urls[unit.id] = self.emit(keys.unit_key(plan.plan_id, unit.id), "unit", self.unit(unit)).url
        for subject in plan.subjects:
            self.urls[subject.id] = self.emit(keys.subject_key(plan.plan_id, subject.id), "subject", self.subject(subject)).url
        search_url = self.search_index()
        self.emit(keys.manifest_key(plan.plan_id), "manifest", self.manifest(search_url))
        return self.out

    # -- documents -----------------------------------------------------------------------------

    def manifest(self, search_index_url: str) -> dict[str, Any]:
        plan = self.plan
        doc: dict[str, Any] = _put({"plan_id": plan.plan_id, "title": plan.title},
                                   season=plan.season, grade=plan.grade, stream=plan.stream)
        doc["subjects"] = [
            _put({"id": s.id, "title": s.title}, color_code=s.color_code, image=self.image(s.image))
            | _put({"sort_order": s.sort_order}, is_linear=s.is_linear)
            | {"url": self.urls[s.id], "access": s.access.as_json()}
            for s in plan.subjects
        ]
        doc["search_index_url"] = search_index_url
        return doc

    def subject(self, subject: Node) -> dict[str, Any]:
        doc = _put({"id": subject.id, "title": subject.title}, description=subject.description,
                   color_code=subject.color_code, image=self.image(subject.image), is_linear=subject.is_linear)
        doc["access"] = subject.access.as_json()
        doc["tracks"] = [
            _put({"id": t.id, "title": t.title}, description=t.description, image=self.image(t.image))
            | _put({"sort_order": t.sort_order}, is_linear=t.is_linear)
            | {"access": t.access.as_json(), "units": [self.unit_summary(u) for u in t.children]}
            for t in subject.children
        ]
        units = [u for t in subject.children for u in t.children]
        topics = [tp for u in units for tp in u.children]
        doc["stats"] = {
            "total_units": len(units),
            "total_topics": len(topics),
            "total_lessons": sum(len(tp.children) for tp in topics),
        }
        return doc

    def unit_summary(self, unit: Node) -> dict[str, Any]:
        doc = _put({"id": unit.id, "title": unit.title}, description=unit.description,
                   image=self.image(unit.image), badge_image=self.image(unit.badge_image))
        doc |= _put({"sort_order": unit.sort_order}, is_linear=unit.is_linear)
        doc |= {"url": self.urls[unit.id], "access": unit.access.as_json(),
                "topic_count": len(unit.children), "lesson_count": sum(len(tp.children) for tp in unit.children)}
        return doc

    def unit(self, unit: Node) -> dict[str, Any]:
        track = unit.parent
        subject = track.parent  # type: ignore[union-attr]
        doc = _put({"id": unit.id, "title": unit.title}, description=unit.description,
                   image=self.image(unit.image), badge_image=self.image(unit.badge_image))
        doc |= _put({"sort_order": unit.sort_order}, is_linear=unit.is_linear)
        doc |= {
            "access": unit.access.as_json(),
            "parent": {"track_id": track.id, "track_title": track.title,  # type: ignore[union-attr]
                       "subject_id": subject.id, "subject_title": subject.title},  # type: ignore[union-attr]
            "topics": [
                _put({"id": tp.id, "title": tp.title}, description=tp.description, image=self.image(tp.image))
                | _put({"sort_order": tp.sort_order}, is_linear=tp.is_linear)
                | {"access": tp.access.as_json(),
                   "lessons": [
                       _put({"id": ls.id, "title": ls.title}, description=ls.description, image=self.image(ls.image))
                       | _put({"sort_order": ls.sort_order}, bit_index=ls.bit_index)
                       | {"url": self.urls[ls.id], "access": ls.access.as_json(), "stage_count": len(ls.stages)}
                       for ls in tp.children
                   ]}
                for tp in unit.children
            ],
            "stats": {"total_topics": len(unit.children), "total_lessons": sum(len(tp.children) for tp in unit.children)},
        }
        return doc

    def lesson(self, lesson: Node, previous: Node | None, following: Node | None) -> dict[str, Any]:
        topic = lesson.parent
        unit = topic.parent  # type: ignore[union-attr]
        track = unit.parent  # type: ignore[union-attr]
        subject = track.parent  # type: ignore[union-attr]
        stages = []
        expiries: list[int] = []
        for stage in lesson.stages:
            entry: dict[str, Any] = {"idx": stage.idx, "title": stage.title, "type": stage.type}
            if stage.config is not None:
                config = stage.config
                if self.signer is not None:
                    config, expiry = self.signer.sign_config(config, self._reporter(lesson, stage.idx))
                    if expiry is not None:
                        expiries.append(expiry)
                entry["config"] = config
            stages.append(_put(entry, weight=stage.weight, target_time=stage.target_time, is_skippable=stage.is_skippable))
        doc = _put({"id": lesson.id, "title": lesson.title}, description=lesson.description, image=self.image(lesson.image))
        doc["sort_order"] = lesson.sort_order
        _put(doc, bit_index=lesson.bit_index)
        if expiries:
            doc["signed_url_expiry"] = datetime.fromtimestamp(min(expiries), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        doc["access"] = lesson.access.as_json()
        doc["parent"] = {
            "topic_id": topic.id, "topic_title": topic.title,  # type: ignore[union-attr]
            "unit_id": unit.id, "unit_title": unit.title,  # type: ignore[union-attr]
            "track_id": track.id, "track_title": track.title,  # type: ignore[union-attr]
            "subject_id": subject.id, "subject_title": subject.title,  # type: ignore[union-attr]
        }
        doc["stages"] = stages
        # Neighbours are linked without `?v=`: versioned links would make neighbours change each other forever.
        navigation: dict[str, Any] = {}
        for name, other in (("previous_lesson", previous), ("next_lesson", following)):
            if other is not None:
                navigation[name] = {"id": other.id, "title": other.title, "url": keys.lesson_key(self.plan.plan_id, other.id)}
        doc["navigation"] = navigation
        return doc

    def _reporter(self, lesson: Node, idx: int) -> Callable[[str], None]:
        def report(reason: str) -> None:
            self.out.problems.append(Problem(self.plan.plan_id, "Memora Lesson", lesson.id, f"stage {idx}: {reason}"))

        return report

    # -- search ----------------------------------------------------------------------------------

    def search_entries(self, subject: Node) -> list[dict[str, str]]:
        return [
            {"lesson_id": ls.id, "lesson_name": ls.title, "subject_id": subject.id, "subject_name": subject.title,
             "unit_id": u.id, "unit_name": u.title, "topic_id": tp.id, "topic_name": tp.title}
            for t in subject.children for u in t.children for tp in u.children for ls in tp.children
        ]

    def search_index(self) -> str:
        plan = self.plan
        per_subject = [(s, self.search_entries(s)) for s in plan.subjects]
        total = sum(len(entries) for _, entries in per_subject)
        doc: dict[str, Any] = {"plan_id": plan.plan_id, "total_lessons": total}
        if total < SHARD_THRESHOLD:
            doc |= {"is_sharded": False, "entries": [e for _, entries in per_subject for e in entries]}
        else:
            shards = []
            for subject, entries in per_subject:
                parts = split_entries(entries, SHARD_MAX_BYTES - _SHARD_OVERHEAD - len(subject.title.encode()) * 2)
                for n, part in enumerate(parts, start=1):
                    f = self.emit(keys.search_shard_key(plan.plan_id, subject.id, n), "search_shard", {
                        "plan_id": plan.plan_id, "subject_id": subject.id, "subject_name": subject.title,
                        "part": n, "parts": len(parts), "entries": part,
                    })
                    if len(f.body) > SHARD_MAX_BYTES:  # cannot happen unless one entry alone is too big
                        raise ValueError(f"search shard {f.key} is {len(f.body)} bytes, over {SHARD_MAX_BYTES}")
                    shards.append({"subject_id": subject.id, "subject_name": subject.title, "url": f.url,
                                   "lesson_count": len(part)})
            doc |= {"is_sharded": True, "shards": shards}
        return self.emit(keys.search_index_key(plan.plan_id), "search_index", doc).url


# Room for a shard's own fields (plan and subject ids, part numbers, version, generated_at).
_SHARD_OVERHEAD = 1_000


def split_entries(entries: list[dict[str, str]], max_bytes: int) -> list[list[dict[str, str]]]:
    """Split entries into consecutive parts whose serialised list stays within `max_bytes`."""
    parts: list[list[dict[str, str]]] = []
    current: list[dict[str, str]] = []
    size = 2  # "[]"
    for entry in entries:
        n = len(orjson.dumps(entry)) + 1  # the comma
        if current and size + n > max_bytes:
            parts.append(current)
            current, size = [], 2
        current.append(entry)
        size += n
    if current or not parts:
        parts.append(current)
    return parts


def render_plan(plan: ResolvedPlan, settings: Settings, *, previous: dict[str, dict[str, Any]],
                signer: MediaSigner | None, now: datetime | None = None) -> Rendering:
    """All files of an existing plan, children first. `previous` maps key -> {sha256, version, generated_at}."""
    versions = _Versions(previous, now or datetime.now(timezone.utc))
    return _Renderer(plan, settings, signer, versions).render()
