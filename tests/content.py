"""A tiny in-memory plan builder for unit tests of resolve and render (no database)."""
from __future__ import annotations

import json
from typing import Any

from memora_cdn.engine.read import PlanContent


def node(name: str, title: str | None = None, *, published: int = 1, free: int = 0, sort: int = 0, **extra: Any) -> dict:
    return {"name": name, "title": title if title is not None else name.title(), "description": None, "image": None,
            "is_published": published, "is_free_preview": free, "sort_order": sort, **extra}


class PlanBuilder:
    def __init__(self, plan_id: str = "P1") -> None:
        self.c = PlanContent(plan_id=plan_id, plan={"name": plan_id, "title": f"Plan {plan_id}", "season": "2026",
                                                      "stream": "Scientific", "grade": "Grade 12"})

    def subject(self, name: str, sort: int = 0, listed: bool = True, **kw: Any) -> "PlanBuilder":
        kw.setdefault("color_code", None)
        kw.setdefault("is_public", 0)
        kw.setdefault("required_item", None)
        self.c.subjects.append(node(name, **kw))
        if listed:
            self.c.plan_subjects.append({"name": f"ps-{name}-{len(self.c.plan_subjects)}", "idx": len(self.c.plan_subjects) + 1,
                                         "subject": name, "sort_order": sort})
        return self

    def track(self, name: str, subject: str, **kw: Any) -> "PlanBuilder":
        kw.setdefault("is_sold_separately", 0)
        kw.setdefault("parent_item_required", 0)
        kw.setdefault("required_item", None)
        self.c.tracks.append(node(name, parent_subject=subject, **kw))
        return self

    def unit(self, name: str, track: str, **kw: Any) -> "PlanBuilder":
        kw.setdefault("badge_image", None)
        self.c.units.append(node(name, parent_track=track, **kw))
        return self

    def topic(self, name: str, unit: str, **kw: Any) -> "PlanBuilder":
        self.c.topics.append(node(name, parent_unit=unit, **kw))
        return self

    def lesson(self, name: str, topic: str, **kw: Any) -> "PlanBuilder":
        self.c.lessons.append(node(name, parent_topic=topic, **kw))
        return self

    def stage(self, lesson: str, type_: str = "Text", config: Any = None, title: str = "Stage", idx: int | None = None) -> "PlanBuilder":
        raw = config if isinstance(config, str) or config is None else json.dumps(config)
        n = len(self.c.stages)
        self.c.stages.append({"parent": lesson, "idx": idx if idx is not None else n + 1, "name": f"st{n}",
                              "title": title, "type": type_, "config": raw})
        return self

    def override(self, doctype: str, target: str, action: str, value: str | None = None) -> "PlanBuilder":
        n = len(self.c.overrides)
        self.c.overrides.append({"name": f"ov{n}", "idx": n + 1, "target_doctype": f"Memora {doctype}",
                                 "target_name": target, "action": action, "override_value": value})
        return self

    def chain(self, prefix: str = "", subject_id: str = "S", **levels: dict) -> "PlanBuilder":
        """One subject -> track -> unit -> topic -> lesson chain; `levels` gives per-level extra columns."""
        self.subject(subject_id, **levels.get("subject", {}))
        self.track(f"{prefix}T", subject_id, **levels.get("track", {}))
        self.unit(f"{prefix}U", f"{prefix}T", **levels.get("unit", {}))
        self.topic(f"{prefix}Tp", f"{prefix}U", **levels.get("topic", {}))
        self.lesson(f"{prefix}L", f"{prefix}Tp", **levels.get("lesson", {}))
        return self

    def build(self) -> PlanContent:
        return self.c
