"""Deterministic demo content for the Memora CDN export (SPEC §2-5).

Generates a realistic Frappe content tree (plans, subjects, tracks, units, topics, lessons,
stages, plan overrides) at a chosen scale and loads it into MariaDB with bulk INSERTs.
The demo, the tests and the benchmarks all use it, so everything is derived from a seeded
``random.Random``: the same ``DemoScale`` always yields the same rows.

    python -m memora_cdn_demo --plans 2 --subjects 3 --lessons 60 --stages 4 --seed 7 --database memora

The default scale always contains every feature the exporter's tests rely on (placed by
position, not by chance, so it holds for any seed):

* subjects of each access kind (paid / public / free preview / plain), a subject shared by
  every plan, DLC tracks (sold separately, with and without ``parent_item_required``);
* free-preview nodes at every level, unpublished tracks, units (one holding published
  lessons), topics and lessons;
* the four override actions, split between the plans (``Hide`` lesson + ``Rename`` unit +
  ``Set Free`` topic on even plans; ``Hide`` unit + ``Set Free`` lesson + ``Set Sold
  Separately`` with and without an item + ``Rename`` lesson on odd plans);
* an orphan lesson (missing topic) and an orphan unit (missing track, with a topic and a
  lesson below it), which belong to no plan;
* stages of the four types, Video stages pointing at the private media bucket (``s3://`` and
  path-style https) and at a public host.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator

from memora_cdn_demo import frappe_tables
from memora_cdn_demo.frappe_tables import LATEST, VERSIONS

T_SEASON = "tabMemora Season"
T_STREAM = "tabMemora Stream"
T_GRADE = "tabMemora Grade"
T_PLAN = "tabMemora Academic Plan"
T_PLAN_SUBJECT = "tabMemora Plan Subject"
T_PLAN_OVERRIDE = "tabMemora Plan Override"
T_SUBJECT = "tabMemora Subject"
T_TRACK = "tabMemora Track"
T_UNIT = "tabMemora Unit"
T_TOPIC = "tabMemora Topic"
T_LESSON = "tabMemora Lesson"
T_STAGE = "tabMemora Lesson Stage"

#: Tables ``generate`` fills, in load order (parents before children).
CONTENT_TABLES = (
    T_SEASON, T_STREAM, T_GRADE, T_PLAN, T_PLAN_SUBJECT, T_PLAN_OVERRIDE,
    T_SUBJECT, T_TRACK, T_UNIT, T_TOPIC, T_LESSON, T_STAGE,
)

STAGE_TYPES = ("Video", "Question", "Text", "Interactive")
OVERRIDE_ACTIONS = ("Hide", "Rename", "Set Free", "Set Sold Separately")
NEW_OVERRIDE_ACTIONS = ("Set Access Level", "Set Linear")  # the app's 008 added these
# Stage fields of 008, by type: (weight, target_time in seconds, is_skippable)
STAGE_PROGRESS = {"Video": (1.0, None, 0), "Question": (2.0, 90, 0), "Text": (0.5, 120, 1), "Interactive": (1.5, 300, 1)}
ADMIN = "Administrator"

DEFAULT_CHUNK = 5000

_to_json = json.JSONEncoder(ensure_ascii=False).encode  # stage configs (faster than json.dumps per call)

# --------------------------------------------------------------------------------------------
# schema helpers
# --------------------------------------------------------------------------------------------


def split_sql(text: str) -> list[str]:
    """Split an SQL script into statements on ``;`` outside quotes, dropping comments."""
    statements: list[str] = []
    buf: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and quote != "`" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                if i + 1 < n and text[i + 1] == quote:  # doubled quote escape
                    buf.append(text[i + 1])
                    i += 2
                    continue
                quote = None
            i += 1
            continue
        if ch in ("'", '"', "`"):
            quote = ch
            buf.append(ch)
        elif ch == "-" and text.startswith("--", i) and (i + 2 >= n or text[i + 2] in " \t\r\n"):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            buf.append(" ")
            continue
        elif ch == ";":
            stmt = "".join(buf).strip()
            if stmt:
                statements.append(stmt)
            buf = []
        else:
            buf.append(ch)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        statements.append(stmt)
    return statements


_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`([^`]+)`", re.IGNORECASE)


def schema_tables(version: str = LATEST) -> list[str]:
    """Table names of the Memora app's schema (``frappe_tables``), in file order."""
    return frappe_tables.table_names(version)


def create_schema(conn, version: str = LATEST) -> None:
    """Create the tables of one Memora app version (``frappe_tables.schema_sql``) on a DB-API connection."""
    cur = conn.cursor()
    try:
        for stmt in split_sql(frappe_tables.schema_sql(version)):
            cur.execute(stmt)
    finally:
        cur.close()
    conn.commit()


def migrate_schema(conn, old: str, new: str) -> None:
    """What ``bench migrate`` does to a database of version ``old`` to make it ``new``: add columns, drop none."""
    cur = conn.cursor()
    try:
        for stmt in frappe_tables.migrate_sql(old, new):
            cur.execute(stmt)
    finally:
        cur.close()
    conn.commit()


def reset_content(conn) -> None:
    """DELETE every row of every table of the schema (keep the tables)."""
    cur = conn.cursor()
    try:
        for table in reversed(schema_tables()):
            cur.execute(f"DELETE FROM {_quote_ident(table)}")
    finally:
        cur.close()
    conn.commit()


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# --------------------------------------------------------------------------------------------
# scale and word banks
# --------------------------------------------------------------------------------------------


@dataclass
class DemoScale:
    plans: int = 2
    subjects_per_plan: int = 3
    lessons_per_plan: int = 60        # visible+invisible lessons generated per plan, spread over its subjects
    stages_per_lesson: int = 4
    shared_subjects: int = 1          # how many subjects every plan also lists (content shared between plans)
    seed: int = 7


# (Arabic title, English title, item code stem)
SUBJECTS = (
    ("الرياضيات", "Mathematics", "MATH"),
    ("الفيزياء", "Physics", "PHYS"),
    ("الكيمياء", "Chemistry", "CHEM"),
    ("الأحياء", "Biology", "BIO"),
    ("اللغة العربية", "Arabic Language", "ARAB"),
    ("اللغة الإنجليزية", "English Language", "ENG"),
    ("التاريخ", "History", "HIST"),
    ("الجغرافيا", "Geography", "GEO"),
    ("علوم الحاسوب", "Computer Science", "CS"),
    ("التربية الإسلامية", "Islamic Education", "ISL"),
    ("الفلسفة", "Philosophy", "PHIL"),
    ("الاقتصاد", "Economics", "ECON"),
    ("علم النفس", "Psychology", "PSY"),
    ("الفنون", "Fine Arts", "ART"),
    ("علوم الأرض", "Earth Science", "EARTH"),
)

# (Arabic, English) concepts used for unit / topic / lesson titles.
CONCEPTS = (
    ("الكسور", "Fractions"),
    ("المعادلات الخطية", "Linear equations"),
    ("الهندسة المستوية", "Plane geometry"),
    ("الاحتمالات", "Probability"),
    ("الإحصاء", "Statistics"),
    ("المتجهات", "Vectors"),
    ("القوى", "Forces"),
    ("الطاقة", "Energy"),
    ("الحركة", "Motion"),
    ("الخلية", "The cell"),
    ("الوراثة", "Genetics"),
    ("التفاعلات الكيميائية", "Chemical reactions"),
    ("الجدول الدوري", "The periodic table"),
    ("القواعد", "Grammar"),
    ("البلاغة", "Rhetoric"),
    ("الخرائط", "Maps"),
    ("المناخ", "Climate"),
    ("الخوارزميات", "Algorithms"),
    ("قواعد البيانات", "Databases"),
    ("الدوال", "Functions"),
    ("المصفوفات", "Matrices"),
    ("التكامل", "Integration"),
    ("الاشتقاق", "Differentiation"),
    ("الموجات", "Waves"),
    ("الكهرباء", "Electricity"),
    ("المغناطيسية", "Magnetism"),
    ("الضوء", "Light"),
    ("الأحماض والقواعد", "Acids and bases"),
    ("النظام البيئي", "Ecosystems"),
    ("الحضارات القديمة", "Ancient civilisations"),
    ("اللوغاريتمات", "Logarithms"),
    ("المتتاليات", "Sequences"),
)

TRACKS = (
    ("المسار الأساسي", "Core track"),
    ("المسار المتقدم", "Advanced track"),
    ("مسار المراجعة", "Revision track"),
)
DLC_PREFIX = ("حزمة إضافية: ", "Add-on pack: ")

DESCRIPTIONS = {
    "ar": (
        "شرح مبسط مع أمثلة محلولة وتمارين تفاعلية.",
        "يغطي هذا الجزء أهم المفاهيم المقررة في المنهج.",
        "محتوى مراجعة مكثف استعدادًا للامتحانات النهائية.",
        "دروس قصيرة تناسب التعلم الذاتي في أي وقت.",
    ),
    "en": (
        "A gentle introduction with worked examples and practice.",
        "Covers the key ideas of the national curriculum.",
        "Intensive revision material ahead of the final exams.",
        "Short lessons designed for self-paced study.",
    ),
}

TEXT_BODIES = {
    "ar": (
        "في هذا الدرس نتعرف على {c} ونطبق المفهوم على أمثلة من الحياة اليومية.",
        "تذكّر أن فهم {c} يعتمد على الخطوات السابقة، فراجعها قبل المتابعة.",
        "ملخص: {c} من أهم موضوعات الوحدة، ويكثر السؤال عنه في الامتحانات.",
    ),
    "en": (
        "In this lesson we explore {c} and apply it to everyday examples.",
        "Remember that {c} builds on the previous steps, so review them first.",
        "Summary: {c} is one of the key topics of this unit and often appears in exams.",
    ),
}

STAGE_TITLES = {
    "Video": ("فيديو: {c}", "Video: {c}"),
    "Question": ("اختبر نفسك", "Check your understanding"),
    "Text": ("ملخص الدرس", "Lesson summary"),
    "Interactive": ("نشاط تفاعلي", "Interactive activity"),
}

WIDGETS = ("fraction_slider", "graph_plotter", "drag_and_drop", "flashcards", "simulation")

SEASON = ("2026-2027", 2026)
STREAMS = ("Scientific", "Literary", "General")
STREAMS_AR = {"Scientific": "علمي", "Literary": "أدبي", "General": "عام"}
GRADES = (12, 11, 10)
GRADES_AR = {12: "الصف الثاني عشر", 11: "الصف الحادي عشر", 10: "الصف العاشر"}

#: Access kinds of the plan-own subjects, rotated per plan so the default scale has all four.
SUBJECT_KINDS = ("public", "free_preview", "paid", "plain")


# --------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("doctype", "row", "parent", "children", "info")

    def __init__(self, doctype: str, row: dict, parent: "_Node | None", info: dict | None = None):
        self.doctype = doctype
        self.row = row
        self.parent = parent
        self.children: list[_Node] = []
        self.info = info or {}
        if parent is not None:
            parent.children.append(self)

    @property
    def name(self) -> str:
        return self.row["name"]

    def ancestors(self) -> Iterator["_Node"]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def walk(self) -> Iterator["_Node"]:
        yield self
        for child in self.children:
            yield from child.walk()

    def published_chain(self) -> bool:
        if not self.row["is_published"]:
            return False
        return all(a.row["is_published"] for a in self.ancestors())

    def base_access(self) -> str:
        """SPEC §4 without overrides (rules 2-6)."""
        parent_level = self.parent.base_access() if self.parent is not None else None
        r = self.row
        if r["is_free_preview"]:
            return "free_preview"
        if r.get("required_item"):
            return "paid"
        if parent_level == "paid":
            return "paid"
        if r.get("is_public"):
            return "public"
        if parent_level in ("public", "free_preview"):
            return parent_level
        return "authenticated"


class _Generator:
    def __init__(self, scale: DemoScale, media_bucket: str, version: str = LATEST):
        if version not in VERSIONS:
            raise ValueError(f"unknown Memora app version {version!r}; known: {', '.join(VERSIONS)}")
        self.scale = scale
        self.version = version
        self.next_bit: dict[str, int] = {}  # subject name -> its next lesson bit (008's progress engine)
        self.bucket = media_bucket
        self.rng = random.Random(scale.seed)
        self.used_names: set[str] = set()
        self.tick = 0
        seed = scale.seed
        self.base_time = datetime(2026, 1, 5, 7, 30) + timedelta(
            days=seed % 60, minutes=(seed * 37) % 1440
        )
        self.rows: dict[str, list[dict]] = {t: [] for t in CONTENT_TABLES}
        self.items: set[str] = set()
        self.counters: dict[str, int] = {}
        self.stage_rot = 0
        self.video_rot = 0

    # -- primitives -------------------------------------------------------------------------

    def hash_name(self) -> str:
        rng, used = self.rng, self.used_names
        while True:
            name = "%010x" % rng.getrandbits(40)
            if name not in used:
                used.add(name)
                return name

    def stamps(self) -> tuple[datetime, datetime]:
        self.tick += 1
        t = self.tick
        creation = self.base_time + timedelta(seconds=2 * t, microseconds=(t * 7919) % 1_000_000)
        modified = creation + timedelta(seconds=self.rng.randrange(0, 45 * 86400))
        return creation, modified

    @staticmethod
    def std(name: str, creation: datetime, modified: datetime, idx: int = 0) -> dict:
        return {
            "name": name, "creation": creation, "modified": modified,
            "modified_by": ADMIN, "owner": ADMIN, "docstatus": 0, "idx": idx,
        }

    def child(self, parent_row: dict, parenttype: str, parentfield: str, idx: int) -> dict:
        # Frappe gives child rows the parent's creation/modified on save.
        row = self.std(self.hash_name(), parent_row["creation"], parent_row["modified"], idx)
        row["parent"] = parent_row["name"]
        row["parentfield"] = parentfield
        row["parenttype"] = parenttype
        return row

    def unique_item(self, code: str) -> str:
        item, n = code, 1
        while item in self.items:
            n += 1
            item = f"{code}-{n}"
        self.items.add(item)
        return item

    def sort_orders(self, n: int, tie_first: bool = False) -> list[int]:
        out, cur = [], 0
        for i in range(n):
            if i == 0 or self.rng.random() >= 0.12:
                cur += 10
            out.append(cur)
        if tie_first and n >= 2:
            out[1] = out[0]
        return out

    def flag(self, level: str, p: float) -> bool:
        """True with probability p, except: the first node of a level always, the second never."""
        k = self.counters.get(level, 0)
        self.counters[level] = k + 1
        if k == 0:
            return True
        if k == 1:
            return False
        return self.rng.random() < p

    def split(self, n: int, k: int) -> list[int]:
        """n into k positive parts, about even, with a little jitter."""
        k = max(1, min(k, n))
        parts = [n // k + (1 if i < n % k else 0) for i in range(k)]
        for i in range(k - 1):
            d = self.rng.randint(-1, 1)
            if parts[i] + d >= 1 and parts[i + 1] - d >= 1:
                parts[i] += d
                parts[i + 1] -= d
        return parts

    def content_row(self, level: str, title: str, lang: str, sort_order: int, image_stem: str) -> dict:
        creation, modified = self.stamps()
        row = self.std(self.hash_name(), creation, modified)
        row["title"] = title
        row["description"] = self.rng.choice(DESCRIPTIONS[lang]) if self.flag(level + ":desc", 0.4) else None
        row["image"] = (
            f"/files/{image_stem}-{self.rng.getrandbits(24):06x}.png" if self.flag(level + ":img", 0.5) else None
        )
        row["is_published"] = 1
        row["is_free_preview"] = 0
        row["sort_order"] = sort_order
        if level != "lesson":
            row["is_linear"] = _linear(row["name"])
        return row

    # -- the tree ---------------------------------------------------------------------------

    def build(self) -> dict[str, list[dict]]:
        s = self.scale
        n_plans = max(1, s.plans)
        per_plan = max(1, s.subjects_per_plan)
        n_shared = max(0, min(s.shared_subjects, per_plan))
        own_per_plan = per_plan - n_shared
        lessons_per_plan = max(per_plan, s.lessons_per_plan)
        base_l, rem_l = divmod(lessons_per_plan, per_plan)

        # lookup doctypes: readable names (Frappe autoname by title)
        season_name, year = SEASON
        for name in (season_name,):
            c, m = self.stamps()
            self.rows[T_SEASON].append({**self.std(name, c, m), "title": name})
        for name in STREAMS:
            c, m = self.stamps()
            self.rows[T_STREAM].append({**self.std(name, c, m), "title": name})
        for g in GRADES:
            c, m = self.stamps()
            self.rows[T_GRADE].append({**self.std(f"Grade {g}", c, m), "title": f"Grade {g}"})

        # plans
        plans: list[dict] = []
        for p in range(n_plans):
            grade = GRADES[p % len(GRADES)]
            stream = STREAMS[(p // len(GRADES)) % len(STREAMS)]
            group = p // (len(GRADES) * len(STREAMS))
            title = f"{GRADES_AR[grade]} - {STREAMS_AR[stream]} {season_name}"
            if group:
                title += f" (مجموعة {group + 1})"
            c, m = self.stamps()
            row = self.std(f"PLAN-{year}-{p + 1:04d}", c, m)
            row.update(title=title, season=season_name, stream=stream, grade=f"Grade {grade}", is_published=1)
            self.rows[T_PLAN].append(row)
            plans.append({"row": row, "grade": grade, "subjects": [], "own": []})

        # subjects: shared first, then each plan's own
        g = 0
        shared: list[_Node] = []
        for j in range(n_shared):
            cat = SUBJECTS[j % len(SUBJECTS)]
            node = self.make_subject(g, cat, j // len(SUBJECTS), "ar", "paid", plans[0]["grade"],
                                     base_l + (1 if j < rem_l else 0), n_tracks_min=3, shared=True)
            shared.append(node)
            g += 1
        own_catalog = SUBJECTS[n_shared % len(SUBJECTS):] or SUBJECTS
        for p, plan in enumerate(plans):
            plan["subjects"].extend(shared)
            for k in range(own_per_plan):
                j = n_shared + k
                cat = own_catalog[k % len(own_catalog)]
                kind = SUBJECT_KINDS[(k + 2 * p) % len(SUBJECT_KINDS)]
                lang = "ar" if g % 2 == 0 else "en"
                node = self.make_subject(g, cat, k // len(own_catalog), lang, kind, plan["grade"],
                                         base_l + (1 if j < rem_l else 0), n_tracks_min=2 if k == 0 else 1)
                plan["subjects"].append(node)
                plan["own"].append(node)
                g += 1

        # plan subjects child table
        for plan in plans:
            orders = self.sort_orders(len(plan["subjects"]))
            for idx, (node, so) in enumerate(zip(plan["subjects"], orders), start=1):
                row = self.child(plan["row"], "Memora Academic Plan", "subjects", idx)
                row["subject"] = node.name
                row["sort_order"] = so
                self.rows[T_PLAN_SUBJECT].append(row)

        all_subjects = shared + [n for plan in plans for n in plan["own"]]
        self.unpublish_features(shared, plans, all_subjects)
        self.free_preview_track(plans)
        used_everywhere: set[str] = set()
        for p, plan in enumerate(plans):
            patterns = ("A", "B") if n_plans == 1 else (("A",) if p % 2 == 0 else ("B",))
            used_everywhere |= self.overrides(plan, shared, patterns)
        self.free_preview_features(all_subjects, plans, used_everywhere)
        self.orphans()
        return self.only_columns_of_version()

    def only_columns_of_version(self) -> dict[str, list[dict]]:
        """Drop the columns the chosen app version does not have (002: no is_linear, bit_index, ...;
        008: no Subject.is_public), as a database of that version would hold the rows."""
        columns = frappe_tables.columns(self.version)
        for table, rows in self.rows.items():
            keep = set(columns[table])
            for row in rows:
                for column in [c for c in row if c not in keep]:
                    del row[column]
        return self.rows

    def make_subject(self, g: int, cat: tuple, cycle: int, lang: str, kind: str, grade: int,
                     n_lessons: int, n_tracks_min: int, shared: bool = False) -> _Node:
        rng = self.rng
        ar, en, code = cat
        title = ar if lang == "ar" else en
        if cycle:
            title = f"{title} {cycle + 1}"
        item_base = f"ITEM-{code}-{grade}"
        creation, modified = self.stamps()
        row = self.std(self.hash_name(), creation, modified)
        row.update(
            title=title,
            description=rng.choice(DESCRIPTIONS[lang]) if self.flag("subject:desc", 0.6) else None,
            image=f"/files/subject-{code.lower()}-{g + 1}.png" if self.flag("subject:img", 0.6) else None,
            is_published=1,
            is_free_preview=1 if kind == "free_preview" else 0,
            sort_order=(g + 1) * 10,
            color_code="#%06X" % rng.getrandbits(24),
            is_public=1 if kind == "public" else 0,
            required_item=self.unique_item(item_base) if kind == "paid" else None,
        )
        row["is_linear"] = _linear(row["name"])
        self.next_bit[row["name"]] = 0
        self.rows[T_SUBJECT].append(row)
        subject = _Node("Memora Subject", row, None, {"kind": kind, "item_base": item_base})

        n_tracks = max(n_tracks_min, rng.randint(1, 3))
        n_tracks = max(1, min(n_tracks, 3, n_lessons))
        track_sizes = self.split(n_lessons, n_tracks)
        unit_no = topic_no = lesson_no = 0
        first_tie_done = False
        li = 0 if lang == "ar" else 1
        track_orders = self.sort_orders(len(track_sizes))
        for t, (n_t, t_so) in enumerate(zip(track_sizes, track_orders)):
            base_title = TRACKS[t % len(TRACKS)][li]
            dlc = pir = False
            if shared and t in (1, 2):  # the shared (paid) subject: two DLC tracks
                dlc, pir = True, t == 1
            elif t >= 2 and rng.random() < 0.4:  # the first two tracks of other subjects stay plain
                dlc, pir = True, rng.random() < 0.5
            ttitle = DLC_PREFIX[li] + base_title if dlc else base_title
            trow = self.content_row("track", ttitle, lang, t_so, f"track-{code.lower()}")
            trow.update(
                parent_subject=row["name"],
                is_sold_separately=1 if dlc else 0,
                parent_item_required=1 if pir else 0,
                required_item=self.unique_item(f"{item_base}-DLC{t}") if dlc else None,
            )
            self.rows[T_TRACK].append(trow)
            track = _Node("Memora Track", trow, subject)

            n_units = round(n_t / rng.uniform(4.0, 7.0))
            n_units = max(2 if n_t >= 4 else 1, min(n_units, n_t))
            unit_sizes = self.split(n_t, n_units)
            for n_u, u_so in zip(unit_sizes, self.sort_orders(len(unit_sizes))):
                unit_no += 1
                concept = rng.choice(CONCEPTS)
                utitle = (f"الوحدة {unit_no}: {concept[0]}" if lang == "ar" else f"Unit {unit_no}: {concept[1]}")
                urow = self.content_row("unit", utitle, lang, u_so, f"unit-{code.lower()}")
                urow["is_free_preview"] = 1 if rng.random() < 0.02 else 0
                urow["parent_track"] = trow["name"]
                urow["badge_image"] = (
                    f"/files/badge-{rng.getrandbits(24):06x}.png" if self.flag("unit:badge", 0.3) else None
                )
                self.rows[T_UNIT].append(urow)
                unit = _Node("Memora Unit", urow, track)

                n_topics = round(n_u / rng.uniform(2.0, 4.0))
                n_topics = max(2 if n_u >= 4 else 1, min(n_topics, n_u))
                topic_sizes = self.split(n_u, n_topics)
                for n_p, p_so in zip(topic_sizes, self.sort_orders(len(topic_sizes))):
                    topic_no += 1
                    concept = rng.choice(CONCEPTS)
                    ptitle = (f"الموضوع {topic_no}: {concept[0]}" if lang == "ar"
                              else f"Topic {topic_no}: {concept[1]}")
                    prow = self.content_row("topic", ptitle, lang, p_so, f"topic-{code.lower()}")
                    prow["is_free_preview"] = 1 if rng.random() < 0.02 else 0
                    prow["parent_unit"] = urow["name"]
                    self.rows[T_TOPIC].append(prow)
                    topic = _Node("Memora Topic", prow, unit)

                    tie = not first_tie_done and n_p >= 2
                    first_tie_done = first_tie_done or tie
                    for l_so in self.sort_orders(n_p, tie_first=tie):
                        lesson_no += 1
                        self.make_lesson(topic, prow["name"], lesson_no, lang, l_so, code)
        row["next_bit_index"] = self.next_bit[row["name"]]
        return subject

    def make_lesson(self, topic: _Node | None, parent_topic: str, number: int, lang: str,
                    sort_order: int, code: str, title: str | None = None) -> dict:
        rng = self.rng
        concept = rng.choice(CONCEPTS)
        if title is None:
            title = f"الدرس {number}: {concept[0]}" if lang == "ar" else f"Lesson {number}: {concept[1]}"
        lrow = self.content_row("lesson", title, lang, sort_order, f"lesson-{code.lower()}")
        lrow["is_published"] = 0 if rng.random() < 0.04 else 1
        lrow["is_free_preview"] = 1 if rng.random() < 0.04 else 0
        lrow["parent_topic"] = parent_topic
        lrow["bit_index"] = -1  # Frappe's default: no bit (an orphan's subject is unknown)
        self.rows[T_LESSON].append(lrow)
        if topic is not None:
            node = _Node("Memora Lesson", lrow, topic)
            subject = [a for a in node.ancestors() if a.doctype == "Memora Subject"][0].name
            lrow["bit_index"] = self.next_bit[subject]
            self.next_bit[subject] += 1
        self.make_stages(lrow, lang, concept)
        return lrow

    def make_stages(self, lrow: dict, lang: str, concept: tuple) -> None:
        rng = self.rng
        li = 0 if lang == "ar" else 1
        c = concept[li]
        stages = self.rows[T_STAGE]
        rot = self.stage_rot
        self.stage_rot += 1
        for i in range(self.scale.stages_per_lesson):
            stype = STAGE_TYPES[(rot + i) % 4]
            row = self.child(lrow, "Memora Lesson", "stages", i + 1)
            row["title"] = STAGE_TITLES[stype][li].format(c=c)
            row["type"] = stype
            if stype == "Video":
                vid = "%010x" % rng.getrandbits(40)
                kind = self.video_rot % 3
                self.video_rot += 1
                if kind == 0:
                    url = f"s3://{self.bucket}/videos/{vid}.mp4"
                elif kind == 1:
                    url = f"https://media.memora.test/{self.bucket}/videos/{vid}.mp4"
                else:
                    url = f"https://videos.example.com/watch/{vid}.mp4"
                config: dict[str, Any] = {"video_url": url, "duration_seconds": rng.randint(60, 1800)}
            elif stype == "Question":
                a, b = rng.randint(2, 60), rng.randint(2, 60)
                answer = a + b
                choices = {answer}
                while len(choices) < 4:
                    choices.add(rng.randint(max(1, answer - 9), answer + 9))
                choices_list = sorted(choices)
                rng.shuffle(choices_list)
                q = f"ما ناتج {a} + {b}؟" if lang == "ar" else f"What is {a} + {b}?"
                config = {"question": q, "choices": [str(x) for x in choices_list],
                          "answer_index": choices_list.index(answer)}
            elif stype == "Text":
                config = {"body": rng.choice(TEXT_BODIES[lang]).format(c=c)}
            else:
                widget = rng.choice(WIDGETS)
                if widget == "fraction_slider":
                    params: dict[str, Any] = {"min": 0, "max": rng.randint(5, 20), "step": 1}
                elif widget == "graph_plotter":
                    params = {"function": rng.choice(["x^2", "2*x+1", "sin(x)"]), "x_range": [-5, 5]}
                elif widget == "drag_and_drop":
                    params = {"items": rng.randint(3, 8), "shuffle": True}
                elif widget == "flashcards":
                    params = {"cards": rng.randint(5, 15)}
                else:
                    params = {"scene": rng.choice(["pendulum", "circuit", "projectile"]),
                              "duration": rng.randint(10, 60)}
                config = {"widget": widget, "params": params}
            row["config"] = _to_json(config)
            weight, target, skippable = STAGE_PROGRESS[stype]
            row["weight"] = weight
            row["target_time"] = config["duration_seconds"] if target is None else target
            row["is_skippable"] = skippable
            stages.append(row)

    # -- deliberate features ----------------------------------------------------------------

    @staticmethod
    def _nodes(subjects: Iterable[_Node], doctype: str) -> list[_Node]:
        return [n for s in subjects for n in s.walk() if n.doctype == doctype]

    def unpublish_features(self, shared: list[_Node], plans: list[dict], all_subjects: list[_Node]) -> None:
        first = shared[:1] or all_subjects[:1]
        # an unpublished unit (not the first of its track) whose topics and lessons are published
        units = [u for u in self._nodes(first, "Memora Unit") if u.parent.children.index(u) > 0] \
            or [u for u in self._nodes(all_subjects, "Memora Unit") if u.parent.children.index(u) > 0]
        if units:
            unit = units[0]
            unit.row["is_published"] = 0
            for n in unit.walk():
                if n is not unit:
                    n.row["is_published"] = 1
        # an unpublished topic (not the first of its unit) in a published unit
        topics = [t for t in self._nodes(first, "Memora Topic")
                  if t.parent.children.index(t) > 0 and t.published_chain()]
        if topics:
            topics[0].row["is_published"] = 0
        # an unpublished track: the last one of the first plan-own subject with two or more
        own = [s for plan in plans for s in plan["own"]]
        for subj in own or all_subjects[1:]:
            if len(subj.children) >= 2:
                subj.children[-1].row["is_published"] = 0
                break
        # an unpublished lesson (besides the random ones): second lesson of a visible topic
        for subj in own or all_subjects:
            cands = [l for l in self._nodes([subj], "Memora Lesson")
                     if l.parent.children.index(l) > 0 and l.published_chain()]
            if cands:
                cands[0].row["is_published"] = 0
                break

    def overrides(self, plan: dict, shared: list[_Node], patterns: tuple[str, ...]) -> set[str]:
        rng = self.rng
        prow = plan["row"]
        subjects = plan["subjects"]
        own_paid = [s for s in plan["own"] if s.info["kind"] == "paid"]
        own_free = [s for s in plan["own"] if s.info["kind"] != "paid"]
        paid_all = [s for s in subjects if s.row["required_item"]]
        touched: set[str] = set()        # this plan's targets, their ancestors (below the subject) and descendants
        out: list[tuple[str, str, str, str | None]] = []

        def ok(n: _Node) -> bool:
            return n.published_chain() and n.name not in touched

        def pick(groups: list[list[_Node]], doctype: str, cond=lambda n: True, prefer=lambda n: True):
            for group in groups:
                cands = [n for n in self._nodes(group, doctype) if ok(n) and cond(n)]
                if cands:
                    best = [n for n in cands if prefer(n)] or cands
                    return rng.choice(best)
            return None

        def add(node: _Node | None, action: str, value: str | None = None) -> None:
            if node is None:
                return
            out.append((node.doctype, node.name, action, value))
            touched.update(n.name for n in node.walk())
            touched.update(a.name for a in node.ancestors() if a.doctype != "Memora Subject")

        def is_paid(n: _Node) -> bool:
            return n.base_access() == "paid"

        def visible_siblings(n: _Node) -> int:
            return sum(1 for x in n.parent.children if x.row["is_published"])

        if "A" in patterns:
            home = shared[:1] or paid_all[:1] or subjects[:1]
            add(pick([home, subjects], "Memora Lesson", prefer=lambda n: visible_siblings(n) >= 2), "Hide")
            unit = pick([home, subjects], "Memora Unit")
            if unit is not None:
                add(unit, "Rename", f"وحدة مراجعة: {rng.choice(CONCEPTS)[0]}")
            add(pick([home, paid_all, subjects], "Memora Topic",
                     cond=lambda n: is_paid(n) and not n.row["is_free_preview"]), "Set Free")
        if "B" in patterns:
            add(pick([own_paid, plan["own"], subjects], "Memora Unit",
                     prefer=lambda n: visible_siblings(n) >= 2), "Hide")
            add(pick([own_paid, paid_all], "Memora Lesson",
                     cond=lambda n: is_paid(n) and not n.row["is_free_preview"]), "Set Free")
            track = pick([own_free, plan["own"], subjects], "Memora Track",
                         cond=lambda n: not n.row["is_sold_separately"])
            if track is not None:
                item_base = track.parent.info["item_base"]
                add(track, "Set Sold Separately", self.unique_item(f"{item_base}-PACK"))
            add(pick([shared, subjects], "Memora Unit"), "Set Sold Separately", None)
            lesson = pick([shared, subjects], "Memora Lesson")
            if lesson is not None:
                add(lesson, "Rename", f"درس مراجعة: {rng.choice(CONCEPTS)[0]}")

        if self.version != "002":  # 008's actions: every plan has both
            # 008 dropped Subject.is_public: a plan makes a subject public with `Set Access Level`
            for subject in plan["own"]:
                if subject.info["kind"] == "public":
                    out.append((subject.doctype, subject.name, "Set Access Level", "public"))
            unit = pick([subjects], "Memora Unit")
            if unit is not None:
                add(unit, "Set Linear", "1" if not unit.row["is_linear"] else "0")

        for idx, (doctype, target, action, value) in enumerate(out, start=1):
            row = self.child(prow, "Memora Academic Plan", "overrides", idx)
            row.update(target_doctype=doctype, target_name=target, action=action, override_value=value)
            self.rows[T_PLAN_OVERRIDE].append(row)
        return touched

    def free_preview_track(self, plans: list[dict]) -> None:
        """A free-preview track inside paid content: the last plain track of the first plan-own paid
        subject that has two or more (so the first track stays paid)."""
        for plan in plans:
            for subj in plan["own"]:
                if not subj.row["required_item"] or len(subj.children) < 2:
                    continue
                for track in reversed(subj.children[1:]):
                    if track.published_chain() and not track.row["is_sold_separately"]:
                        track.row["is_free_preview"] = 1
                        return

    def free_preview_features(self, all_subjects: list[_Node], plans: list[dict], blocked: set[str]) -> None:
        """One free-preview node per level (lesson, topic, unit, track), inside paid content where
        possible, and away from every override target (its ancestors and descendants included)."""
        blocked = set(blocked)
        paid = [s for s in all_subjects if s.row["required_item"]]
        own_paid = [s for plan in plans for s in plan["own"] if s.row["required_item"]]
        for doctype in ("Memora Lesson", "Memora Topic", "Memora Unit", "Memora Track"):
            if doctype == "Memora Track" and any(
                    t.row["is_free_preview"] for s in all_subjects for t in s.children):
                continue
            for group in (own_paid, paid, all_subjects):
                cands = [n for n in self._nodes(group, doctype)
                         if n.name not in blocked and n.published_chain() and not n.row["is_free_preview"]
                         and not (doctype == "Memora Track" and n.row["is_sold_separately"])]
                if cands:
                    paid_cands = [n for n in cands if n.base_access() == "paid"]
                    node = self.rng.choice(paid_cands or cands)
                    node.row["is_free_preview"] = 1
                    blocked.update(n.name for n in node.walk())
                    blocked.update(a.name for a in node.ancestors() if a.doctype != "Memora Subject")
                    break

    def orphans(self) -> None:
        """An orphan lesson (its topic does not exist) and an orphan unit (its track does not exist),
        the unit with a topic and a lesson below it. They belong to no plan."""
        missing_topic = self.hash_name()   # reserved, never inserted
        missing_track = self.hash_name()
        lesson = self.make_lesson(None, missing_topic, 1, "ar", 10, "orphan", title="درس يتيم: موضوعه محذوف")
        lesson["is_published"] = 1
        urow = self.content_row("unit", "Orphaned unit: its track was deleted", "en", 10, "unit-orphan")
        urow["parent_track"] = missing_track
        urow["badge_image"] = None
        self.rows[T_UNIT].append(urow)
        prow = self.content_row("topic", "Orphaned topic", "en", 10, "topic-orphan")
        prow["parent_unit"] = urow["name"]
        self.rows[T_TOPIC].append(prow)
        lesson = self.make_lesson(None, prow["name"], 1, "en", 10, "orphan",
                                  title="Lesson 1: Under an orphaned unit")
        lesson["is_published"] = 1


def _linear(name: str) -> int:
    """`is_linear` of a generated node: 1 (the app's default) except for about one node in five."""
    return 0 if int(name, 16) % 5 == 0 else 1


def generate(scale: DemoScale, media_bucket: str = "memora-media", version: str = LATEST) -> dict[str, list[dict]]:
    """Rows per table name (e.g. "tabMemora Lesson" -> [ {column: value}, ...]), deterministic for a seed,
    with the columns of the Memora app `version` ("002" or "008")."""
    return _Generator(scale, media_bucket, version).build()


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def load(conn, rows: dict[str, list[dict]], chunk_size: int = DEFAULT_CHUNK) -> dict[str, int]:
    """Insert the rows with executemany in chunks (multi-row INSERTs), commit, return counts per table."""
    counts: dict[str, int] = {}
    cur = conn.cursor()
    if hasattr(cur, "max_stmt_length"):
        # mysqlclient packs executemany into multi-row INSERTs of at most this many bytes
        # (64 KiB by default); 1 MiB stays far below the server's max_allowed_packet.
        cur.max_stmt_length = 1 << 20
    try:
        for table, table_rows in rows.items():
            counts[table] = 0
            if not table_rows:
                continue
            cols = list(table_rows[0])
            ncols = len(cols)
            # datetimes go over as ISO text: MariaDB parses it, and mysqlclient's own datetime
            # quoting is pure Python (a sixth of the client time at the large scale)
            dt_cols = [i for i, c in enumerate(cols) if isinstance(table_rows[0][c], datetime)]
            sql = "INSERT INTO {} ({}) VALUES ({})".format(
                _quote_ident(table), ", ".join(_quote_ident(c) for c in cols), ", ".join(["%s"] * ncols)
            )
            for start in range(0, len(table_rows), chunk_size):
                chunk = table_rows[start:start + chunk_size]
                args = []
                for r in chunk:
                    if len(r) != ncols:
                        raise ValueError(f"{table}: row {r.get('name')!r} has columns {sorted(r)}, expected {cols}")
                    vals = [r[c] for c in cols]
                    for i in dt_cols:
                        v = vals[i]
                        if isinstance(v, datetime) and v.tzinfo is None:
                            vals[i] = v.isoformat(" ", "microseconds")
                    args.append(tuple(vals))
                cur.executemany(sql, args)
                n = cur.rowcount
                counts[table] += n if isinstance(n, int) and n >= 0 else len(chunk)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        cur.close()
    return counts


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    d = DemoScale()
    ap = argparse.ArgumentParser(prog="python -m memora_cdn_demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--plans", type=int, default=d.plans)
    ap.add_argument("--subjects", type=int, default=d.subjects_per_plan, help="subjects per plan")
    ap.add_argument("--lessons", type=int, default=d.lessons_per_plan, help="lessons per plan")
    ap.add_argument("--stages", type=int, default=d.stages_per_lesson, help="stages per lesson")
    ap.add_argument("--shared-subjects", type=int, default=d.shared_subjects,
                    help="subjects every plan lists")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--database", default="memora")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3306)
    ap.add_argument("--user", default="root")
    ap.add_argument("--password", default="")
    ap.add_argument("--reset", action="store_true", help="delete every row of the schema's tables first")
    ap.add_argument("--media-bucket", default="memora-media")
    return ap


def main(argv=None) -> int:
    """python -m memora_cdn_demo --plans 2 --subjects 3 --lessons 60 --stages 4 --seed 7 --database memora
       [--host 127.0.0.1 --port 3306 --user root --password ''] [--reset] [--media-bucket memora-media]
       Creates the database if missing, creates the schema, optionally resets, loads, prints counts per table."""
    import time

    import MySQLdb

    args = _parser().parse_args(argv)
    if not args.database or "`" in args.database:
        print(f"invalid --database {args.database!r}", file=sys.stderr)
        return 2
    scale = DemoScale(plans=args.plans, subjects_per_plan=args.subjects, lessons_per_plan=args.lessons,
                      stages_per_lesson=args.stages, shared_subjects=args.shared_subjects, seed=args.seed)
    conn = MySQLdb.connect(host=args.host, port=args.port, user=args.user, passwd=args.password,
                           charset="utf8mb4", autocommit=False)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {_quote_ident(args.database)} "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.close()
        conn.select_db(args.database)
        create_schema(conn)
        if args.reset:
            reset_content(conn)
        t0 = time.perf_counter()
        rows = generate(scale, media_bucket=args.media_bucket)
        t1 = time.perf_counter()
        try:
            counts = load(conn, rows)
        except MySQLdb.IntegrityError as exc:
            print(f"load failed ({exc}); the database already holds rows with these names: "
                  "run again with --reset", file=sys.stderr)
            return 1
        t2 = time.perf_counter()
    finally:
        conn.close()
    width = max(len(t) for t in counts)
    for table, n in counts.items():
        print(f"{table:<{width}}  {n:>8}")
    print(f"{'total':<{width}}  {sum(counts.values()):>8}")
    print(f"generated in {t1 - t0:.2f}s, loaded in {t2 - t1:.2f}s into {args.database!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
