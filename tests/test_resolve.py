"""Unit tests of visibility, overrides and access resolution (SPEC §3-4)."""
from __future__ import annotations

import pytest

from memora_cdn.engine.resolve import resolve_plan
from tests.content import PlanBuilder


def access_of(content, name):
    plan = resolve_plan(content)
    for node in plan.walk():
        if node.id == name:
            return node.access
    raise AssertionError(f"{name} is not visible")


def visible(content) -> set[str]:
    return {n.id for n in resolve_plan(content).walk()}


# -- access rules, one at a time and in their order ---------------------------------------------

def test_default_is_authenticated_all_the_way_down():
    content = PlanBuilder().chain().build()
    for name in ("S", "T", "U", "Tp", "L"):
        assert access_of(content, name).level == "authenticated"


def test_rule1_set_free_override_beats_everything():
    content = PlanBuilder().chain(subject={"required_item": "ITEM-S"}, lesson={"free": 0}).override("Lesson", "L", "Set Free").build()
    a = access_of(content, "L")
    assert a.level == "free_preview" and a.required_item is None
    assert access_of(content, "Tp").level == "paid"


def test_rule2_free_preview_beats_own_required_item_and_paid_parent():
    content = PlanBuilder().chain(subject={"required_item": "ITEM-S"}, track={"required_item": "ITEM-T", "free": 1}).build()
    assert access_of(content, "T").level == "free_preview"
    # rule 6: children of a free_preview node inherit it
    assert access_of(content, "U").level == "free_preview"
    assert access_of(content, "L").level == "free_preview"


def test_rule3_own_item_makes_paid_even_under_public_parent():
    content = PlanBuilder().chain(subject={"is_public": 1}, track={"required_item": "ITEM-T"}).build()
    assert access_of(content, "S").level == "public"
    t = access_of(content, "T")
    assert (t.level, t.required_item) == ("paid", "ITEM-T")


def test_rule3_sold_separately_override_with_item_makes_paid_and_sets_flag():
    content = PlanBuilder().chain().override("Unit", "U", "Set Sold Separately", "ITEM-DLC").build()
    u = access_of(content, "U")
    assert (u.level, u.required_item, u.is_sold_separately) == ("paid", "ITEM-DLC", True)
    lesson = access_of(content, "L")
    assert (lesson.level, lesson.required_item) == ("paid", "ITEM-DLC")


def test_sold_separately_override_without_item_only_sets_the_flag():
    content = PlanBuilder().chain().override("Lesson", "L", "Set Sold Separately").build()
    a = access_of(content, "L")
    assert a.level == "authenticated" and a.is_sold_separately is True
    assert a.as_json() == {"is_published": True, "access_level": "authenticated", "is_sold_separately": True}


def test_override_item_wins_over_own_item():
    content = PlanBuilder().chain(track={"required_item": "ITEM-T"}).override("Track", "T", "Set Sold Separately", "ITEM-PLAN").build()
    assert access_of(content, "T").required_item == "ITEM-PLAN"


def test_rule4_paid_inherits_through_all_levels():
    content = PlanBuilder().chain(subject={"required_item": "ITEM-S"}).build()
    for name in ("S", "T", "U", "Tp", "L"):
        a = access_of(content, name)
        assert (a.level, a.required_item) == ("paid", "ITEM-S"), name


def test_rule4_paid_parent_beats_public_child():
    # is_public only exists on subjects; a paid subject's track cannot become public
    content = PlanBuilder().chain(subject={"required_item": "ITEM-S", "is_public": 1}).build()
    assert access_of(content, "S").level == "paid"
    assert access_of(content, "L").level == "paid"


def test_rule5_public_subject_and_rule6_inheritance():
    content = PlanBuilder().chain(subject={"is_public": 1}).build()
    for name in ("S", "T", "U", "Tp", "L"):
        assert access_of(content, name).level == "public"


def test_rule6_free_preview_inherits_but_child_item_still_paid():
    content = PlanBuilder().chain(unit={"free": 1}, lesson={}).build()
    assert access_of(content, "L").level == "free_preview"
    content = PlanBuilder().chain(subject={"free": 1}, track={"required_item": "ITEM-T"}).build()
    assert access_of(content, "L").level == "paid"


def test_required_item_present_exactly_when_paid():
    content = PlanBuilder().chain(subject={"is_public": 1}, track={"required_item": "X"}).build()
    plan = resolve_plan(content)
    for node in plan.walk():
        j = node.access.as_json()
        assert ("required_item" in j) == (j["access_level"] == "paid")


def test_track_flags_always_present_on_tracks():
    content = PlanBuilder().chain(track={"is_sold_separately": 1, "parent_item_required": 1, "required_item": "DLC"}).build()
    t = access_of(content, "T").as_json()
    assert t == {"is_published": True, "access_level": "paid", "required_item": "DLC",
                 "is_sold_separately": True, "parent_item_required": True}
    content = PlanBuilder().chain().build()
    assert access_of(content, "T").as_json()["is_sold_separately"] is False
    assert "is_sold_separately" not in access_of(content, "U").as_json()


# -- visibility and overrides ------------------------------------------------------------------

@pytest.mark.parametrize("level", ["subject", "track", "unit", "topic", "lesson"])
def test_unpublished_hides_node_and_everything_below(level):
    content = PlanBuilder().chain(**{level: {"published": 0}}).build()
    order = ["S", "T", "U", "Tp", "L"]
    cut = ["subject", "track", "unit", "topic", "lesson"].index(level)
    assert visible(content) == set(order[:cut])


@pytest.mark.parametrize("doctype,name", [("Subject", "S"), ("Track", "T"), ("Unit", "U"), ("Topic", "Tp"), ("Lesson", "L")])
def test_hide_override_hides_subtree(doctype, name):
    content = PlanBuilder().chain().override(doctype, name, "Hide").build()
    order = ["S", "T", "U", "Tp", "L"]
    assert visible(content) == set(order[:order.index(name)])


def test_rename_changes_title():
    content = PlanBuilder().chain().override("Unit", "U", "Rename", "الوحدة الأولى").build()
    plan = resolve_plan(content)
    assert next(plan.walk("unit")).title == "الوحدة الأولى"


def test_subject_not_listed_in_plan_is_not_visible():
    b = PlanBuilder().chain()
    b.subject("OTHER", listed=False)
    assert "OTHER" not in visible(b.build())


def test_ordering_by_sort_order_then_name():
    b = PlanBuilder().subject("S").track("T", "S").unit("U", "T").topic("Tp", "U")
    for name, sort in (("b", 1), ("a", 1), ("z", 0), ("c", 2)):
        b.lesson(name, "Tp", sort=sort)
    b.subject("S2", sort=-1)
    plan = resolve_plan(b.build())
    assert [n.id for n in plan.walk("lesson")] == ["z", "a", "b", "c"]
    assert [s.id for s in plan.subjects] == ["S2", "S"]


# -- bad input: reported, never fatal -------------------------------------------------------------

def problems(content):
    return [str(p) for p in resolve_plan(content).problems]


def test_bad_stage_records_are_reported_and_the_rest_published():
    b = PlanBuilder().chain()
    b.stage("L", "Text", {"body": "ok"}).stage("L", "Hologram", {"x": 1}).stage("L", "Video", "{not json").stage("L", "Question", "[1, 2]")
    plan = resolve_plan(b.build())
    lesson = next(plan.walk("lesson"))
    assert [(s.idx, s.type, s.config) for s in lesson.stages] == [(1, "Text", {"body": "ok"}), (2, "Video", None), (3, "Question", None)]
    text = "\n".join(str(p) for p in plan.problems)
    assert "unknown stage type 'Hologram'" in text and "not valid JSON" in text and "not an object" in text


def test_bad_overrides_and_missing_subjects_are_reported():
    b = PlanBuilder().chain().override("Lesson", "NOPE", "Hide").override("Lesson", "L", "Explode").override("Planet", "L", "Hide")
    b.c.plan_subjects.append({"name": "ps-x", "idx": 9, "subject": "GHOST", "sort_order": 0})
    b.c.plan_subjects.append({"name": "ps-dup", "idx": 10, "subject": "S", "sort_order": 5})
    found = "\n".join(problems(b.build()))
    for expected in ("target Memora Lesson 'NOPE' is not in this plan", "unknown action 'Explode'",
                     "unknown target_doctype 'Memora Planet'", "subject 'GHOST' does not exist", "listed twice"):
        assert expected in found
    assert visible(b.build()) == {"S", "T", "U", "Tp", "L"}


def test_empty_titles_and_names_too_long_for_a_key_are_skipped_and_reported():
    too_long = "🎓" * 140  # a valid Frappe name, but 1680 bytes once encoded: over S3's 1024-byte key limit
    b = PlanBuilder().chain()
    b.lesson("L2", "Tp", title="").lesson(too_long, "Tp").lesson("L3", "Tp", title="ok\x00 title\u200f 🎓")
    b.lesson("../evil", "Tp")  # any name Frappe allows is published (encoded into its key)
    plan = resolve_plan(b.build())
    assert {n.id for n in plan.walk("lesson")} == {"L", "L3", "../evil"}
    assert next(n for n in plan.walk("lesson") if n.id == "L3").title == "ok title\u200f 🎓"
    text = "\n".join(str(p) for p in plan.problems)
    assert "'L2': empty title" in text and "cannot be used in a bucket key" in text and "at most 1024 bytes" in text


def test_missing_plan_resolves_to_not_existing():
    from memora_cdn.engine.read import PlanContent

    assert resolve_plan(PlanContent(plan_id="GONE", plan=None)).exists is False
