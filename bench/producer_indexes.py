"""The producer's per-save cost on a 1000-plan database, without and with the recommended index.

    PYTHONPATH=producer:include:. .venv/bin/python -m bench.producer_indexes [--saves 300] [--plans 1000]

Builds the Memora app's doctypes-008 tables as Frappe does (no index on `tabMemora Plan Subject.subject`), fills
them with a generated tree (1000 plans listing 5 of 300 subjects each; 300 x 2 tracks x 2 units x 3 topics x 5
lessons = 18 000 lessons, 36 000 stages), then, for each doctype whose save the producer hooks, times the
handler the way Frappe runs it: `doc.run_method("on_update")` on the stand-in `frappe` (tests/standins), whose
`frappe.db.sql` is a real MariaDB connection, with the hooks of docs/frappe.md. Measured per save:

- in the transaction: the handler (one SELECT resolving the plans) - what the editor's transaction waits on;
- rows read: InnoDB handler reads of that SELECT (`Handler_read_rnd_next` counts full-scan rows);
- after the commit: `frappe.db.commit()`, i.e. the COMMIT plus the after_commit callback (Redis MULTI with SADD
  and HSETNX on Redis db 12 of MEMORA_TEST_REDIS_PORT, default 6379; flushed before and after).

Then `ALTER TABLE ... ADD INDEX subject_index (subject)` (what `bench migrate` runs once the field has
`search_index: 1`) and the same saves again. Prints EXPLAIN of the Lesson query for both, and a Markdown table.
The database is dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

import redis as redis_lib

DOCTYPES = ("Memora Lesson", "Memora Topic", "Memora Unit", "Memora Track", "Memora Subject")


def _status(conn) -> dict[str, int]:
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
    out = {k: int(v) for k, v in cur.fetchall()}
    cur.close()
    return out


def _explain(conn, sql: str, params) -> list[dict]:
    cur = conn.cursor()
    cur.execute("EXPLAIN " + sql, params)
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    cur.close()
    return [{k: r[k] for k in ("table", "type", "key", "rows", "Extra")} for r in rows]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure(fr, conn, picks: dict[str, list[str]]) -> dict[str, dict]:
    out = {}
    for doctype, names in picks.items():
        in_tx, after, reads, scans = [], [], [], []
        for name in names:
            doc = fr.get_doc(doctype, name)  # Frappe has the document loaded before on_update runs
            before = _status(conn)
            start = time.perf_counter()
            doc.run_method("on_update")
            in_tx.append((time.perf_counter() - start) * 1000)
            delta = {k: v - before.get(k, 0) for k, v in _status(conn).items()}
            reads.append(sum(delta.values()))
            scans.append(delta.get("Handler_read_rnd_next", 0))
            start = time.perf_counter()
            fr.db.commit()
            after.append((time.perf_counter() - start) * 1000)
        out[doctype] = {"saves": len(names), "in_tx_median_ms": statistics.median(in_tx),
                        "in_tx_p95_ms": _pct(in_tx, 0.95), "after_commit_median_ms": statistics.median(after),
                        "rows_read_median": statistics.median(reads), "scan_rows_median": statistics.median(scans)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--subjects", type=int, default=300)
    parser.add_argument("--subjects-per-plan", type=int, default=5)
    parser.add_argument("--saves", type=int, default=300, help="saves measured per doctype and variant")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    from memora_cdn_producer import plans as plans_module
    from memora_cdn_producer import queue
    from tests.producer_support import frappe_database, generate_tree, insert_rows
    from tests.standins import frappe_standin
    from tests.test_producer_hooks import documented_hooks

    port = int(os.environ.get("MEMORA_TEST_REDIS_PORT", "6379"))
    redis = redis_lib.Redis(host="127.0.0.1", port=port, db=12)
    redis.flushdb()
    rows = generate_tree(plans=args.plans, subjects=args.subjects, subjects_per_plan=args.subjects_per_plan,
                         tracks=2, units=2, topics=3, lessons=5, stages=2, seed=args.seed, odd_names=True)
    counts = {dt: len(r) for dt, r in rows.items()}
    rng = random.Random(args.seed)
    picks = {dt: [rng.choice(rows[dt])["name"] for _ in range(args.saves)] for dt in DOCTYPES}
    results: dict = {"counts": counts, "saves_per_doctype": args.saves}
    try:
        with frappe_database("008", prefix="memora_bench_prod") as (_, conn):
            insert_rows(conn, rows)
            cur = conn.cursor()
            cur.execute("ANALYZE TABLE `tabMemora Plan Subject`, `tabMemora Lesson`, `tabMemora Topic`, "
                        "`tabMemora Unit`, `tabMemora Track`")
            cur.fetchall()
            cur.close()
            fr = frappe_standin.install(conn, version="008", doc_events=documented_hooks()["doc_events"],
                                        conf={"memora_cdn_redis_url": f"redis://127.0.0.1:{port}/12"})
            sys.modules["frappe"] = fr
            queue._clients.clear()
            lesson = picks["Memora Lesson"][0]
            sql = plans_module.plans_query("Memora Lesson", 1)
            for variant in ("without index", "with subject_index"):
                if variant != "without index":
                    cur = conn.cursor()
                    cur.execute("ALTER TABLE `tabMemora Plan Subject` ADD INDEX `subject_index` (`subject`)")
                    cur.close()
                results[variant] = {"explain_lesson": _explain(conn, sql, (lesson,)),
                                    "saves": measure(fr, conn, picks)}
                assert redis.scard("cdn_export:pending_plans") > 0
                redis.flushdb()
    finally:
        sys.modules.pop("frappe", None)
        redis.flushdb()

    print(f"rows: {json.dumps(counts)}\n")
    for variant in ("without index", "with subject_index"):
        print(f"EXPLAIN (Lesson query), {variant}:")
        for r in results[variant]["explain_lesson"]:
            print(f"  {r}")
    print("\n| doctype saved | variant | in transaction, median ms | p95 ms | rows read (median) | "
          "of which full-scan rows | after commit (COMMIT + Redis), median ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for doctype in DOCTYPES:
        for variant in ("without index", "with subject_index"):
            s = results[variant]["saves"][doctype]
            print(f"| {doctype} | {variant} | {s['in_tx_median_ms']:.3f} | {s['in_tx_p95_ms']:.3f} | "
                  f"{s['rows_read_median']:.0f} | {s['scan_rows_median']:.0f} | {s['after_commit_median_ms']:.3f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
