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


# -- the app's 008 fields and actions ----------------------------------------------------------------------

def test_is_linear_and_bit_index_come_from_their_columns_and_are_absent_without_them():
    content = PlanBuilder().chain(subject={"is_linear": 1}, track={"is_linear": 0}, unit={"is_linear": 1},
                                  topic={"is_linear": 0}, lesson={"bit_index": 7}).build()
    nodes = {n.id: n for n in resolve_plan(content).walk()}
    assert [nodes[n].is_linear for n in ("S", "T", "U", "Tp")] == [True, False, True, False]
    assert nodes["L"].bit_index == 7
    old = {n.id: n for n in resolve_plan(PlanBuilder().chain().build()).walk()}  # 002: no such columns
    assert {n.is_linear for n in old.values()} == {None} and old["L"].bit_index is None
    unassigned = PlanBuilder().chain(lesson={"bit_index": -1}).build()  # Frappe's default: no bit yet
    assert next(resolve_plan(unassigned).walk("lesson")).bit_index is None


def test_set_linear_applies_per_plan_and_bad_values_are_reported():
    b = PlanBuilder().chain(unit={"is_linear": 1}, topic={"is_linear": 0})
    b.override("Unit", "U", "Set Linear", "0").override("Topic", "Tp", "Set Linear", "1")
    b.override("Subject", "S", "Set Linear", "yes")
    plan = resolve_plan(b.build())
    nodes = {n.id: n for n in plan.walk()}
    assert nodes["U"].is_linear is False and nodes["Tp"].is_linear is True and nodes["S"].is_linear is None
    assert any("Set Linear with override_value 'yes', not 0 or 1; ignored" in str(p) for p in plan.problems)


@pytest.mark.parametrize("level", ["public", "authenticated", "free_preview"])
def test_set_access_level_fixes_the_level_ahead_of_the_rules_and_descendants_inherit(level):
    # the subject is paid (rule 3) and the topic free preview (rule 2): the override still decides the unit
    b = PlanBuilder().chain(subject={"required_item": "ITEM-S"}, topic={})
    b.override("Unit", "U", "Set Access Level", level)
    content = b.build()
    assert access_of(content, "T").level == "paid"
    assert access_of(content, "U").level == level and access_of(content, "U").required_item is None
    expected_below = level if level != "authenticated" else "authenticated"
    assert access_of(content, "Tp").level == expected_below and access_of(content, "L").level == expected_below


def test_set_access_level_paid_takes_own_item_else_nearest_paid_ancestor_else_is_ignored():
    own = PlanBuilder().chain(unit={"required_item": "ITEM-U"}).override("Unit", "U", "Set Access Level", "paid")
    assert access_of(own.build(), "U") == access_of(own.build(), "U").__class__("paid", "ITEM-U")
    assert access_of(own.build(), "L").required_item == "ITEM-U"
    # nearest paid ancestor: the subject, past a free-preview track
    up = PlanBuilder().chain(subject={"required_item": "ITEM-S"}, track={"is_free_preview": 1})
    up.override("Topic", "Tp", "Set Access Level", "paid")
    assert access_of(up.build(), "U").level == "free_preview"
    assert (access_of(up.build(), "Tp").level, access_of(up.build(), "Tp").required_item) == ("paid", "ITEM-S")
    assert access_of(up.build(), "L").required_item == "ITEM-S"
    none = PlanBuilder().chain(subject={"is_public": 1}).override("Topic", "Tp", "Set Access Level", "paid")
    plan = resolve_plan(none.build())
    assert access_of(none.build(), "Tp").level == "public"  # ignored: the six rules decide
    assert any("Set Access Level paid on Memora Topic 'Tp'" in str(p) and "ignored" in str(p) for p in plan.problems)


def test_set_access_level_with_an_unknown_level_is_reported_and_ignored():
    b = PlanBuilder().chain().override("Lesson", "L", "Set Access Level", "vip")
    plan = resolve_plan(b.build())
    assert access_of(b.build(), "L").level == "authenticated"
    assert any("Set Access Level with override_value 'vip'" in str(p) for p in plan.problems)


def test_stage_progress_fields_where_the_columns_exist():
    b = PlanBuilder().chain()
    b.stage("L", "Text", {"body": "x"})
    b.c.stages[-1].update(weight="2.500000000", target_time=90, is_skippable=1)
    b.stage("L", "Text", {"body": "y"})  # no columns (002)
    first, second = next(resolve_plan(b.build()).walk("lesson")).stages
    assert (first.weight, first.target_time, first.is_skippable) == (2.5, 90, True)
    assert (second.weight, second.target_time, second.is_skippable) == (None, None, None)


# -- Frappe private files ----------------------------------------------------------------------------------

def test_private_files_are_never_published_and_each_is_reported_with_its_record_and_field():
    b = PlanBuilder().chain(subject={"image": "/private/files/s.png"}, unit={"badge_image": "/private/files/b.png",
                                                                               "image": "/files/public.png"})
    b.stage("L", "Interactive", {"widget": "w", "image": "/private/files/w.png", "params": {
        "pictures": ["/files/ok.png", "https://erp.example.com/private/files/p.png"], "note": "keep"}})
    plan = resolve_plan(b.build())
    nodes = {n.id: n for n in plan.walk()}
    assert nodes["S"].image is None and nodes["U"].badge_image is None and nodes["U"].image == "/files/public.png"
    config = nodes["L"].stages[0].config
    assert config == {"widget": "w", "params": {"pictures": ["/files/ok.png"], "note": "keep"}}
    found = [str(p) for p in plan.problems]
    assert any(p.startswith("plan P1: Memora Subject 'S': image '/private/files/s.png' is a Frappe private file")
               for p in found)
    assert any(p.startswith("plan P1: Memora Unit 'U': badge_image '/private/files/b.png'") for p in found)
    assert any("Memora Lesson Stage 'st0': config.image '/private/files/w.png'" in p and "lesson 'L'" in p for p in found)
    assert any("config.params.pictures[1] 'https://erp.example.com/private/files/p.png'" in p for p in found)
