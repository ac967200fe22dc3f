"""One measured piece of work in a fresh interpreter: `python -m bench.worker MODE 'JSON SPEC'`.

Prints one JSON line with the figures (and the process's own peak RSS, VmHWM: see common.peak_rss_mb for
why not ru_maxrss). Run by bench/run.py; each call is a new process, like an Airflow task.

Modes:
  build    one `build_plan` (P1 cold, P2 no change, P3 one edit, growth), optionally under pyinstrument
  floor    the same rows read in bulk + the same documents serialised + the same bodies uploaded
  nightly  P5: every plan rebuilt in one sequential loop, as memora_cdn.orchestration.tasks.build_plans does
  seed     build plans without measuring (initial state for P4 and P5)
  hour     P4: the simulated hour of edits, replayed as sync cycles (bench/hour.py)
"""
from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench import common


def mode_build(spec: dict[str, Any]) -> dict[str, Any]:
    from memora_cdn.engine.build import build_plan

    settings = common.settings_for(spec["bucket"])
    s3 = common.s3_client(spec["endpoint"], settings.upload_concurrency)
    calls = common.S3Calls(s3)
    db = common.mysql_connect(spec["db"])
    # Warm nothing that build_plan would do itself; just make sure the connections exist before timing.
    s3.head_bucket(Bucket=spec["bucket"])
    calls.reset()
    rss_before = common.rss_now_mb()
    peak_before = common.peak_rss_mb()
    reset = common.reset_peak_rss()
    profiler = None
    if spec.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
    before = common.com_select(db)
    if profiler:
        profiler.start()
    started = time.perf_counter()
    result = build_plan(spec["plan"], db=db, s3=s3, settings=settings)
    wall = time.perf_counter() - started
    if profiler:
        profiler.stop()
    selects = common.com_select(db) - before
    out = {
        "wall": wall,
        "build_seconds": result.seconds,
        "phases": result.phases,
        "status": result.status,
        "com_select": selects,
        "queries_reported": result.queries,
        "files": result.files,
        "lessons": result.lessons,
        "uploaded": len(result.uploaded),
        "uploaded_kinds": _kinds(result.uploaded),
        "bytes": result.bytes_uploaded,
        "deleted": len(result.deleted),
        "problems": len(result.problems),
        "s3_calls": dict(calls.counts),
        "puts": calls.get("PutObject"),
        "deletes": calls.deleted_keys,
        "rss_before_build_mb": rss_before,
        "peak_rss_before_build_mb": peak_before,
        "build_peak_rss_mb": common.window_peak_rss_mb() if reset else None,
        "peak_rss_mb": max(peak_before, common.peak_rss_mb()),
        "ru_maxrss_mb": common.ru_maxrss_mb(),
    }
    if profiler:
        with open(spec["profile"], "w") as f:
            f.write(profiler.output_text(unicode=False, color=False, show_all=False))
        out["profile"] = spec["profile"]
    db.close()
    return out


def _kinds(keys: list[str]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for key in keys:
        parts = key.split("/")
        kind = parts[2] if len(parts) > 3 else parts[-1].removesuffix(".json")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def mode_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The floor of a cold build: the same rows, the same documents, the same bodies, nothing else."""
    import orjson

    from memora_cdn.engine import keys
    from memora_cdn.engine import doctypes as dt
    from memora_cdn.engine.publish import CONTENT_TYPE

    settings = common.settings_for(spec["dest_bucket"])
    concurrency = settings.upload_concurrency
    s3 = common.s3_client(spec["endpoint"], concurrency)
    calls = common.S3Calls(s3)
    db = common.mysql_connect(spec["db"])

    # setup (not timed): fetch what the cold build published, as bodies, metadata and parsed documents
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=spec["source_bucket"], Prefix=keys.plan_prefix(spec["plan"])) for o in page.get("Contents", ())]

    def get(key: str) -> tuple[str, bytes, dict[str, str]]:
        obj = s3.get_object(Bucket=spec["source_bucket"], Key=key)
        return key, obj["Body"].read(), obj.get("Metadata", {})

    with ThreadPoolExecutor(concurrency) as pool:
        files = list(pool.map(get, listed))
    docs = [orjson.loads(body) for _, body, _ in files]
    calls.reset()

    plan = spec["plan"]
    schema = dt.probe(db)
    statements = [
        ("SELECT `name`, `title`, `season`, `stream`, `grade` FROM `tabMemora Academic Plan` WHERE `name` = %s", (plan,)),
        (f"SELECT {_plain(schema.columns(dt.PLAN_SUBJECT))} FROM `tabMemora Plan Subject` WHERE `parent` = %s", (plan,)),
        (f"SELECT {_plain(schema.columns(dt.PLAN_OVERRIDE))} FROM `tabMemora Plan Override` WHERE `parent` = %s", (plan,)),
        (f"SELECT {_plain(schema.columns(dt.SUBJECT))} FROM `tabMemora Subject`", ()),
        (f"SELECT {_plain(schema.columns(dt.TRACK))} FROM `tabMemora Track`", ()),
        (f"SELECT {_plain(schema.columns(dt.UNIT))} FROM `tabMemora Unit`", ()),
        (f"SELECT {_plain(schema.columns(dt.TOPIC))} FROM `tabMemora Topic`", ()),
        (f"SELECT {_plain(schema.columns(dt.LESSON))} FROM `tabMemora Lesson`", ()),
        (f"SELECT {_plain(schema.columns(dt.STAGE))} FROM `tabMemora Lesson Stage`", ()),
    ]
    rss_before = common.peak_rss_mb()

    t0 = time.perf_counter()
    cur = db.cursor()
    rows = 0
    for sql, params in statements:
        cur.execute(sql, params)
        rows += len(cur.fetchall())
    cur.close()
    t1 = time.perf_counter()
    serialised = sum(len(orjson.dumps(doc)) for doc in docs)
    t2 = time.perf_counter()

    def put(item: tuple[str, bytes, dict[str, str]]) -> None:
        key, body, meta = item
        s3.put_object(Bucket=spec["dest_bucket"], Key=key, Body=body, ContentType=CONTENT_TYPE,
                      CacheControl=settings.cache_control, Metadata=meta)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="floor-s3") as pool:
        list(pool.map(put, files))
    t3 = time.perf_counter()
    db.close()
    return {
        "wall": t3 - t0,
        "read_seconds": t1 - t0,
        "serialise_seconds": t2 - t1,
        "upload_seconds": t3 - t2,
        "rows": rows,
        "statements": len(statements),
        "documents": len(docs),
        "serialised_bytes": serialised,
        "bytes": sum(len(body) for _, body, _ in files),
        "puts": calls.get("PutObject"),
        "concurrency": concurrency,
        "rss_before_mb": rss_before,
        "peak_rss_mb": common.peak_rss_mb(),
    }


def _plain(columns: tuple[str, ...]) -> str:
    return ", ".join(f"`{c}`" for c in columns)


def mode_nightly(spec: dict[str, Any]) -> dict[str, Any]:
    """memora_cdn.orchestration.tasks.build_plans without Airflow: one DB connection, one S3 client, the plans in order,
    each through `build_plan_locked` (its Redis lock, renewal scheduled), summary kept (as the task does)."""
    from memora_cdn.engine.build import build_plan_locked
    from memora_cdn.tracking.registry import Registry

    settings = common.settings_for(spec["bucket"])
    s3 = common.s3_client(spec["endpoint"], settings.upload_concurrency)
    calls = common.S3Calls(s3)
    db = common.mysql_connect(spec["db"])
    registry = Registry(common.redis_client())
    s3.head_bucket(Bucket=spec["bucket"])
    calls.reset()
    rss_before = common.rss_now_mb()
    per_plan, summaries, rss_after_plan = [], [], []
    started = time.perf_counter()
    for plan_id in spec["plans"]:
        t = time.perf_counter()
        result = build_plan_locked(plan_id, registry=registry, db=db, s3=s3, settings=settings)
        summaries.append(result.purge_summary(settings.purge_prefix_threshold))
        per_plan.append(time.perf_counter() - t)
        rss_after_plan.append(common.rss_now_mb())
    wall = time.perf_counter() - started
    db.close()
    return {
        "wall": wall,
        "plans": len(spec["plans"]),
        "per_plan_seconds": per_plan,
        "rss_after_each_plan_mb": rss_after_plan,
        "uploaded": sum(s["files_uploaded"] for s in summaries),
        "deleted": sum(s["files_deleted"] for s in summaries),
        "files": sum(s["files"] for s in summaries),
        "lessons": sum(s["lessons"] for s in summaries),
        "s3_calls": dict(calls.counts),
        "puts": calls.get("PutObject"),
        "rss_before_mb": rss_before,
        "peak_rss_mb": common.peak_rss_mb(),
        "ru_maxrss_mb": common.ru_maxrss_mb(),
    }


def mode_seed(spec: dict[str, Any]) -> dict[str, Any]:
    """Publish plans as the starting state of P4 and P5. Setup only, never a figure: schema validation is
    switched off here to save time (it only checks documents, the files come out byte-identical), and
    every measured build afterwards validates every document as usual."""
    import memora_cdn.engine.render

    from memora_cdn.engine.build import build_plan

    memora_cdn.engine.render.validate = lambda kind, doc, key="": None

    settings = common.settings_for(spec["bucket"])
    s3 = common.s3_client(spec["endpoint"], settings.upload_concurrency)
    db = common.mysql_connect(spec["db"])
    started = time.perf_counter()
    files = 0
    for plan_id in spec["plans"]:
        files += len(build_plan(plan_id, db=db, s3=s3, settings=settings).uploaded)
    db.close()
    return {"wall": time.perf_counter() - started, "plans": len(spec["plans"]), "uploaded": files,
            "peak_rss_mb": common.peak_rss_mb()}


def mode_hour(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import hour

    return hour.simulate(spec)


MODES = {"build": mode_build, "floor": mode_floor, "nightly": mode_nightly, "seed": mode_seed, "hour": mode_hour}


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    mode, spec = argv[0], json.loads(argv[1])
    out = MODES[mode](spec)
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
