"""The two JSON Schema validators on the documents of a real 2000-lesson plan: `python -m bench.validators`.

Renders the P1 plan (the same generator, scale and seed as bench/run.py) with validation switched off,
then times validating every document with the reference `jsonschema` (memora_cdn.engine.validate.validator) and
with jsonschema-rs (memora_cdn.engine.validate.fast_validator), interleaved, median of 5. Both must accept every
document. Prints one JSON line.
"""
from __future__ import annotations

import json
import time

from bench import common
from bench.run import FULL


def main() -> None:
    from memora_cdn.engine import render
    from memora_cdn_demo.content import DemoScale
    from memora_cdn.engine.media import MediaSigner
    from memora_cdn.engine.read import read_plan
    from memora_cdn.engine.resolve import resolve_plan
    from memora_cdn.engine.validate import fast_validator, validator

    scale = DemoScale(plans=1, subjects_per_plan=FULL.core_subjects, lessons_per_plan=FULL.core_lessons,
                      stages_per_lesson=FULL.stages, shared_subjects=1, seed=FULL.seed)
    database = common.create_database("validators")
    try:
        common.load_content(database, scale)
        conn = common.mysql_connect(database)
        resolved = resolve_plan(read_plan(conn, "PLAN-2026-0001"))
        conn.close()
    finally:
        common.drop_database(database)
    documents: list[tuple[str, dict]] = []
    settings = common.settings_for("bench-validators")
    signer = MediaSigner(settings.media_bucket, settings.signed_url_expiry_hours,
                         presign=lambda key, expires: f"https://media.invalid/{key}?X-Amz-Expires={expires}")
    checked = render.validate
    render.validate = lambda kind, doc, key="": documents.append((kind, doc))
    try:
        render.render_plan(resolved, settings, previous={}, signer=signer)
    finally:
        render.validate = checked
    for kind in {k for k, _ in documents}:  # build (and cache) both validators before timing
        validator(kind), fast_validator(kind)
    times: dict[str, list[float]] = {"jsonschema": [], "jsonschema_rs": []}
    for _ in range(5):
        t = time.perf_counter()
        assert all(not any(True for _ in validator(k).iter_errors(d)) for k, d in documents)
        times["jsonschema"].append(time.perf_counter() - t)
        t = time.perf_counter()
        assert all(fast_validator(k).is_valid(d) for k, d in documents)
        times["jsonschema_rs"].append(time.perf_counter() - t)
    ref, fast = common.median(times["jsonschema"]), common.median(times["jsonschema_rs"])
    print(json.dumps({"documents": len(documents), "jsonschema_s": round(ref, 3), "jsonschema_rs_s": round(fast, 4),
                      "ratio": round(ref / fast, 1), "runs": times}))


if __name__ == "__main__":
    main()
