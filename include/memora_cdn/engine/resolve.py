"""Resolve: decide what one plan publishes, under which title, and with which access (SPEC §3-4).

Input is `read.PlanContent` (raw rows); output is a `ResolvedPlan`: the tree of visible nodes in
publication order, each with its final title and `Access`, plus the problems found on the way.
A bad record is skipped (or published without its broken part) and reported; it never aborts
the plan.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from memora_cdn.engine import keys
from memora_cdn.engine.media import image_url, is_private_file
from memora_cdn.engine.read import PlanContent

STAGE_TYPES = ("Video", "Question", "Text", "Interactive")
OVERRIDE_ACTIONS = ("Hide", "Rename", "Set Free", "Set Sold Separately", "Set Access Level", "Set Linear")
KINDS = ("subject", "track", "unit", "topic", "lesson")
DOCTYPE_OF = {kind: f"Memora {kind.title()}" for kind in KINDS}
KIND_OF = {doctype: kind for kind, doctype in DOCTYPE_OF.items()}

PUBLIC, AUTHENTICATED, PAID, FREE_PREVIEW = "public", "authenticated", "paid", "free_preview"
ACCESS_LEVELS = (PUBLIC, AUTHENTICATED, PAID, FREE_PREVIEW)
PRIVATE_FILE = "is a Frappe private file (served only to desk users); omitted"

# C0/C1 control characters other than tab and newline never belong in a title (NUL bytes included).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Problem:
    """A record that could not be exported as it is, and why."""

    plan_id: str
    doctype: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"plan {self.plan_id}: {self.doctype} {self.name!r}: {self.reason}"


@dataclass(frozen=True)
class Access:
    level: str
    required_item: str | None = None
    is_sold_separately: bool | None = None
    parent_item_required: bool | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"is_published": True, "access_level": self.level}
        if self.level == PAID:
            out["required_item"] = self.required_item
        if self.is_sold_separately is not None:
            out["is_sold_separately"] = self.is_sold_separately
        if self.parent_item_required is not None:
            out["parent_item_required"] = self.parent_item_required
        return out


# The plan is a subject's parent: neither paid nor public.
PLAN_ACCESS = Access(AUTHENTICATED)


@dataclass
class Stage:
    idx: int
    title: str
    type: str
    config: dict[str, Any] | None
    weight: float | None = None  # the 008 columns; None where the database has none
    target_time: int | None = None
    is_skippable: bool | None = None


@dataclass
class Node:
    kind: str
    id: str
    title: str
    sort_order: int
    access: Access
    description: str | None = None
    image: str | None = None
    color_code: str | None = None
    badge_image: str | None = None
    is_linear: bool | None = None  # subject, track, unit, topic (008); None where the column is missing
    bit_index: int | None = None  # lesson (008); None where the column is missing or no bit is assigned
    parent: "Node | None" = None
    children: list["Node"] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)

    def ancestor(self, kind: str) -> "Node":
        node = self
        while node.kind != kind:
            node = node.parent  # type: ignore[assignment]
        return node


@dataclass
class ResolvedPlan:
    plan_id: str
    exists: bool
    title: str = ""
    season: str | None = None
    stream: str | None = None
    grade: str | None = None
    subjects: list[Node] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def walk(self, kind: str | None = None) -> Iterable[Node]:
        stack = list(reversed(self.subjects))
        while stack:
            node = stack.pop()
            if kind is None or node.kind == kind:
                yield node
            stack.extend(reversed(node.children))

    def lessons_by_unit(self) -> Iterable[tuple[Node, list[Node]]]:
        for unit in self.walk("unit"):
            yield unit, [lesson for topic in unit.children for lesson in topic.children]


@dataclass
class _Overrides:
    hidden: set[tuple[str, str]] = field(default_factory=set)
    renamed: dict[tuple[str, str], str] = field(default_factory=dict)
    free: set[tuple[str, str]] = field(default_factory=set)
    sold_separately: dict[tuple[str, str], str | None] = field(default_factory=dict)
    level: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # target -> (level, override name)
    linear: dict[tuple[str, str], bool] = field(default_factory=dict)

    def targets(self) -> set[tuple[str, str]]:
        return self.hidden | set(self.renamed) | self.free | set(self.sold_separately) | set(self.level) | set(self.linear)


def clean_text(value: Any) -> str:
    return _CONTROL.sub("", value).strip() if isinstance(value, str) else ""


def _flag(value: Any) -> bool:
    return bool(value) and str(value) not in ("0", "")


def _item(value: Any) -> str | None:
    text = clean_text(value)
    return text or None


def _bit(value: Any) -> int | None:
    """A lesson's bit in the progress engine; None for none (-1, Frappe's default, or no column)."""
    try:
        bit = int(value)
    except (TypeError, ValueError):
        return None
    return bit if bit >= 0 else None


def _number(value: Any) -> float:
    """A Float column (MariaDB returns a Decimal) as a finite, non-negative JSON number."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        return 0.0
    return number if number >= 0 and number != float("inf") else 0.0


def _nearest_paid_item(node: "Node | None") -> str | None:
    while node is not None:
        if node.access.level == PAID:
            return node.access.required_item
        node = node.parent
    return None


def _sort_key(row: dict[str, Any]) -> tuple[int, str]:
    return (int(row.get("sort_order") or 0), str(row.get("name") or ""))


class _Resolver:
    def __init__(self, content: PlanContent) -> None:
        self.content = content
        self.plan_id = content.plan_id
        self.problems: list[Problem] = []
        self.overrides = _Overrides()
        self.children: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.stages: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def report(self, doctype: str, name: Any, reason: str) -> None:
        self.problems.append(Problem(self.plan_id, doctype, str(name), reason))

    def resolve(self) -> ResolvedPlan:
        content = self.content
        if content.plan is None:
            return ResolvedPlan(plan_id=self.plan_id, exists=False)
        plan = content.plan
        resolved = ResolvedPlan(
            plan_id=self.plan_id,
            exists=True,
            title=clean_text(plan.get("title")) or self.plan_id,
            season=clean_text(plan.get("season")) or None,
            stream=clean_text(plan.get("stream")) or None,
            grade=clean_text(plan.get("grade")) or None,
        )
        self._index_overrides()
        for kind, rows, link in (
            ("track", content.tracks, "parent_subject"),
            ("unit", content.units, "parent_track"),
            ("topic", content.topics, "parent_unit"),
            ("lesson", content.lessons, "parent_topic"),
        ):
            by_parent: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                by_parent[row[link]].append(row)
            for siblings in by_parent.values():
                siblings.sort(key=_sort_key)
            self.children[kind] = by_parent
        for stage in content.stages:
            self.stages[stage["parent"]].append(stage)

        subjects = {row["name"]: row for row in content.subjects}
        listed: set[str] = set()
        entries = sorted(content.plan_subjects, key=lambda r: (int(r.get("sort_order") or 0), str(r["subject"] or "")))
        for entry in entries:
            subject_id = entry["subject"]
            if subject_id in listed:
                self.report("Memora Plan Subject", entry["name"], f"subject {subject_id!r} is listed twice; the first entry is used")
                continue
            listed.add(subject_id)
            row = subjects.get(subject_id)
            if row is None:
                self.report("Memora Plan Subject", entry["name"], f"subject {subject_id!r} does not exist")
                continue
            node = self._node("subject", row, None, PLAN_ACCESS, sort_order=int(entry.get("sort_order") or 0))
            if node is not None:
                resolved.subjects.append(node)
        in_plan = {
            (DOCTYPE_OF[kind], row["name"])
            for kind, rows in zip(KINDS, (content.subjects, content.tracks, content.units, content.topics, content.lessons))
            for row in rows
        }
        for doctype, name in sorted(self.overrides.targets() - in_plan):
            self.report("Memora Plan Override", name, f"target {doctype} {name!r} is not in this plan")
        resolved.problems = self.problems
        return resolved

    def _index_overrides(self) -> None:
        o = self.overrides
        for row in self.content.overrides:
            target = (row.get("target_doctype") or "", row.get("target_name") or "")
            action = row.get("action")
            if target[0] not in KIND_OF:
                self.report("Memora Plan Override", row["name"], f"unknown target_doctype {target[0]!r}")
            elif action == "Hide":
                o.hidden.add(target)
            elif action == "Rename":
                title = clean_text(row.get("override_value"))
                if title:
                    o.renamed[target] = title
                else:
                    self.report("Memora Plan Override", row["name"], "Rename without a new title in override_value")
            elif action == "Set Free":
                o.free.add(target)
            elif action == "Set Sold Separately":
                o.sold_separately[target] = _item(row.get("override_value"))
            elif action == "Set Access Level":
                level = clean_text(row.get("override_value")).lower()
                if level in ACCESS_LEVELS:
                    o.level[target] = (level, str(row["name"]))
                else:
                    self.report("Memora Plan Override", row["name"], f"Set Access Level with override_value "
                                f"{row.get('override_value')!r}, not one of {', '.join(ACCESS_LEVELS)}; ignored")
            elif action == "Set Linear":
                value = clean_text(row.get("override_value"))
                if value in ("0", "1"):
                    o.linear[target] = value == "1"
                else:
                    self.report("Memora Plan Override", row["name"],
                                f"Set Linear with override_value {row.get('override_value')!r}, not 0 or 1; ignored")
            else:
                self.report("Memora Plan Override", row["name"], f"unknown action {action!r}")

    def _access(self, kind: str, row: dict[str, Any], key: tuple[str, str], parent: Node | None,
                parent_access: Access) -> Access:
        o = self.overrides
        sold_override = key in o.sold_separately
        if kind == "track":
            sold: bool | None = _flag(row.get("is_sold_separately")) or sold_override
            parent_item_required: bool | None = _flag(row.get("parent_item_required"))
        else:
            sold = True if sold_override else None
            parent_item_required = None
        # The plan's own item wins over the node's column: the override is the plan-specific decision.
        item = o.sold_separately.get(key) or _item(row.get("required_item"))

        if key in o.level:  # `Set Access Level` fixes the level ahead of the six rules
            forced, override = o.level[key]
            if forced != PAID:
                return Access(forced, None, sold, parent_item_required)
            paid_item = item or _nearest_paid_item(parent)
            if paid_item:
                return Access(PAID, paid_item, sold, parent_item_required)
            self.report("Memora Plan Override", override, f"Set Access Level paid on {key[0]} {key[1]!r}, which has "
                        "no required_item and no paid ancestor; ignored")
        if key in o.free or _flag(row.get("is_free_preview")):  # rules 1 and 2
            level, item = FREE_PREVIEW, None
        elif item:  # rule 3
            level = PAID
        elif parent_access.level == PAID:  # rule 4
            level, item = PAID, parent_access.required_item
        elif _flag(row.get("is_public")):  # rule 5 (only where the column exists: the app's 008 dropped it)
            level, item = PUBLIC, None
        elif parent_access.level in (PUBLIC, FREE_PREVIEW):  # rule 6
            level, item = parent_access.level, None
        else:
            level, item = AUTHENTICATED, None
        return Access(level, item, sold, parent_item_required)

    def _node(self, kind: str, row: dict[str, Any], parent: Node | None, parent_access: Access,
              sort_order: int | None = None) -> Node | None:
        doctype = DOCTYPE_OF[kind]
        name = row.get("name")
        key = (doctype, name)
        if not _flag(row.get("is_published")) or key in self.overrides.hidden:
            return None
        try:
            keys.check_node(self.plan_id, kind, name)
        except keys.UnsafeName as exc:
            self.report(doctype, name, f"{exc}; skipped with everything under it")
            return None
        title = self.overrides.renamed.get(key) or clean_text(row.get("title"))
        if not title:
            self.report(doctype, name, "empty title; skipped with everything under it")
            return None
        node = Node(
            kind=kind,
            id=name,
            title=title,
            sort_order=int(row.get("sort_order") or 0) if sort_order is None else sort_order,
            access=self._access(kind, row, key, parent, parent_access),
            description=clean_text(row.get("description")) or None,
            image=clean_text(row.get("image")) or None,
            color_code=clean_text(row.get("color_code")) or None,
            badge_image=clean_text(row.get("badge_image")) or None,
            is_linear=self.overrides.linear.get(key, _flag(row["is_linear"]) if "is_linear" in row else None),
            bit_index=_bit(row.get("bit_index")),
            parent=parent,
        )
        if node.color_code and not re.fullmatch(r"#[0-9A-Fa-f]{6}", node.color_code):
            self.report(doctype, name, f"color_code {node.color_code!r} is not #RRGGBB; omitted")
            node.color_code = None
        for attr in ("image", "badge_image"):
            value = getattr(node, attr)
            if value and is_private_file(value):
                self.report(doctype, name, f"{attr} {value[:200]!r} {PRIVATE_FILE}")
                setattr(node, attr, None)
            elif value and image_url("https://media.invalid", value) is None:
                self.report(doctype, name, f"{attr} {value[:200]!r} is not a usable URL; omitted")
                setattr(node, attr, None)
        child_kind = KINDS[KINDS.index(kind) + 1] if kind != "lesson" else None
        if child_kind:
            for child_row in self.children[child_kind].get(name, ()):
                child = self._node(child_kind, child_row, node, node.access)
                if child is not None:
                    node.children.append(child)
        else:
            node.stages = self._stages(name)
        return node

    def _stages(self, lesson_id: str) -> list[Stage]:
        stages: list[Stage] = []
        for row in sorted(self.stages.get(lesson_id, ()), key=lambda r: int(r.get("idx") or 0)):
            if row.get("type") not in STAGE_TYPES:
                self.report("Memora Lesson Stage", row["name"], f"unknown stage type {row.get('type')!r} in lesson {lesson_id!r}; stage skipped")
                continue
            config = None
            raw = row.get("config")
            if raw not in (None, ""):
                try:
                    # orjson, like the serialiser that publishes it: NaN, Infinity and integers over 64 bits
                    # are not JSON it can write, so they are refused here, where the stage is named.
                    config = orjson.loads(raw)
                except (TypeError, ValueError) as exc:
                    self.report("Memora Lesson Stage", row["name"], f"config is not valid JSON ({exc}); published without config")
                else:
                    if not isinstance(config, dict):
                        self.report("Memora Lesson Stage", row["name"], f"config is a JSON {type(config).__name__}, not an object; published without config")
                        config = None
            if config is not None:
                config = self._without_private_files(config, "config", row["name"], lesson_id)
            stages.append(Stage(
                idx=len(stages) + 1, title=clean_text(row.get("title")), type=row["type"], config=config,
                weight=_number(row.get("weight")) if "weight" in row else None,
                target_time=max(0, int(row.get("target_time") or 0)) if "target_time" in row else None,
                is_skippable=_flag(row.get("is_skippable")) if "is_skippable" in row else None,
            ))
        return stages

    def _without_private_files(self, value: Any, path: str, stage: str, lesson_id: str) -> Any:
        """`value` with every string that is (or holds) a Frappe private file path left out, each one reported."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if isinstance(v, str) and is_private_file(v):
                    self.report("Memora Lesson Stage", stage, f"{path}.{k} {v[:200]!r} {PRIVATE_FILE} (lesson {lesson_id!r})")
                else:
                    out[k] = self._without_private_files(v, f"{path}.{k}", stage, lesson_id)
            return out
        if isinstance(value, list):
            items = []
            for i, v in enumerate(value):
                if isinstance(v, str) and is_private_file(v):
                    self.report("Memora Lesson Stage", stage, f"{path}[{i}] {v[:200]!r} {PRIVATE_FILE} (lesson {lesson_id!r})")
                else:
                    items.append(self._without_private_files(v, f"{path}[{i}]", stage, lesson_id))
            return items
        return value


def resolve_plan(content: PlanContent) -> ResolvedPlan:
    return _Resolver(content).resolve()
