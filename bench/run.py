"""Benchmarks of the Memora CDN export: P1-P6 and growth, written to bench/RESULTS.md.

    .venv/bin/python bench/run.py            # full (what `make bench` runs); ~80 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # small scales, a smoke check (~20 minutes, P6 included); writes bench/quick/
    .venv/bin/python bench/run.py --only core,growth --runs 3

Needs MariaDB (127.0.0.1:3306, root), Redis (127.0.0.1:6379, or MEMORA_TEST_REDIS_PORT) and, for P6,
PostgreSQL (the Celery cluster's metadata database); starts its own moto S3 server and its
own Cloudflare stand-in. Uses only MariaDB databases named memora_bench_* (dropped at the end; leftovers
of an interrupted run are listed, and dropped with --drop-leftovers) and Redis db 12 (flushed before and after).
See bench/README.md for how to read the results.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import common, report

SCENARIOS = ("core", "growth", "p4", "p5", "profile", "p6")


@dataclass
class Config:
    name: str
    runs: int  # measured repetitions of core (P1, floor, P2, P3) and of P5
    core_lessons: int
    core_subjects: int
    stages: int
    growth_sizes: list[int]
    growth_runs: int
    lessons_per_subject: int  # growth keeps P1's density: subjects = lessons / this
    p4_plans: int
    p4_lessons: int
    p4_subjects: int
    p4_edits: int
    p4_windows: int
    p4_runs: int
    p5_plans: int
    p5_lessons: int
    p5_subjects: int
    p5_runs: int
    p6_minutes: float = 10.0  # each P6 scenario's sample under a running Airflow
    p6_lessons: int = 300
    window_seconds: int = 300
    seed: int = 7
    out: str = "bench"
    extra: dict[str, Any] = field(default_factory=dict)


FULL = Config(name="full", runs=5, core_lessons=2000, core_subjects=50, stages=8,
              growth_sizes=[250, 500, 1000, 2000, 4000], growth_runs=3, lessons_per_subject=40,
              p4_plans=20, p4_lessons=500, p4_subjects=12, p4_edits=1000, p4_windows=12, p4_runs=3,
              p5_plans=20, p5_lessons=2000, p5_subjects=50, p5_runs=3, out="bench")
QUICK = Config(name="quick", runs=2, core_lessons=300, core_subjects=8, stages=8,
               growth_sizes=[100, 200, 400, 800], growth_runs=2, lessons_per_subject=40,
               p4_plans=4, p4_lessons=120, p4_subjects=4, p4_edits=60, p4_windows=3, p4_runs=1,
               p5_plans=3, p5_lessons=300, p5_subjects=8, p5_runs=2, p6_minutes=2, p6_lessons=40,
               out="bench/quick")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, cfg: Config, scenarios: list[str], drop_leftovers: bool = False) -> None:
        self.cfg = cfg
        self.drop_leftovers = drop_leftovers
        self.scenarios = scenarios
        self.out = common.REPO / cfg.out
        self.databases: list[str] = []
        self.server = None
        self.s3 = None
        self.endpoint = ""

    # -- plumbing ----------------------------------------------------------------------------------

    def database(self, purpose: str, scale) -> str:
        name = common.create_database(purpose)
        self.databases.append(name)
        t = time.perf_counter()
        counts = common.load_content(name, scale)
        log(f"loaded {name}: {counts.get('tabMemora Lesson', 0)} lessons, {counts.get('tabMemora Lesson Stage', 0)} "
            f"stages in {time.perf_counter() - t:.1f}s")
        return name

    def scale(self, plans: int, subjects: int, lessons: int):
        from memora_cdn_demo.content import DemoScale

        return DemoScale(plans=plans, subjects_per_plan=subjects, lessons_per_plan=lessons,
                         stages_per_lesson=self.cfg.stages, shared_subjects=1, seed=self.cfg.seed)

    def worker(self, mode: str, **spec: Any) -> dict[str, Any]:
        return common.run_worker(mode, {"endpoint": self.endpoint, **spec})

    def bucket(self, label: str) -> str:
        return common.new_bucket(self.s3, label)

    def drop_bucket(self, bucket: str) -> None:
        common.empty_and_delete_bucket(self.s3, bucket)

    def start(self) -> None:
        from tests.support import S3Server

        leftovers = common.leftover_databases()
        if leftovers and self.drop_leftovers:
            for name in leftovers:
                log(f"dropping leftover bench database {name}")
                common.drop_database(name)
        elif leftovers:
            log(f"note: {len(leftovers)} memora_bench_* database(s) exist (another bench running, or an interrupted "
                f"one): {', '.join(leftovers)}; left alone (--drop-leftovers drops them)")
        common.flush_redis()
        self.server = S3Server().start()
        self.endpoint = self.server.endpoint
        self.s3 = common.s3_client(self.endpoint)
        self.s3.create_bucket(Bucket=common.MEDIA_BUCKET)
        log(f"moto S3 server on {self.endpoint}")

    def stop(self) -> None:
        for name in self.databases:
            try:
                common.drop_database(name)
            except Exception as exc:  # keep cleaning up
                log(f"could not drop {name}: {exc}")
        try:
            common.flush_redis()
        except Exception as exc:
            log(f"could not flush Redis db {common.REDIS_DB}: {exc}")
        proc = self.server.proc if self.server else None
        if proc is not None and proc.poll() is None:
            # moto can take a while to exit holding a few hundred MB of objects: wait, then kill it (ours, by pid)
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                log(f"moto S3 server (pid {proc.pid}) did not exit; killing it")
                proc.kill()
                proc.wait(10)

    # -- scenarios ---------------------------------------------------------------------------------

    def core(self) -> dict[str, Any]:
        """P1 (cold), its floor, P2 (no change) and P3 (one lesson title) on one plan, interleaved per run."""
        from memora_cdn.engine.read import read_plan
        from memora_cdn.engine.resolve import resolve_plan

        cfg = self.cfg
        db = self.database("core", self.scale(1, cfg.core_subjects, cfg.core_lessons))
        plan = "PLAN-2026-0001"
        conn = common.mysql_connect(db)
        content = read_plan(conn, plan)
        rows = sum(len(getattr(content, part)) for part in
                   ("plan_subjects", "overrides", "subjects", "tracks", "units", "topics", "lessons", "stages")) + 1
        resolved = resolve_plan(content)
        units = [(u, ls) for u, ls in resolved.lessons_by_unit() if len(ls) >= 3]
        unit, lessons = units[len(units) // 2]
        lesson = lessons[len(lessons) // 2]
        cur = conn.cursor()
        cur.execute("SELECT title FROM `tabMemora Lesson` WHERE name = %s", (lesson.id,))
        original_title = cur.fetchone()[0]
        conn.commit()
        try:
            return self._core(db, plan, conn, cur, lesson, unit, original_title, content, rows)
        finally:
            conn.close()  # an open connection would block the DROP DATABASE at the end

    def _core(self, db, plan, conn, cur, lesson, unit, original_title, content, rows) -> dict[str, Any]:
        cfg = self.cfg

        # warm-up (not measured): MariaDB's buffer pool, the page cache, moto; its files feed the floor
        reference = self.bucket("reference")
        warm = self.worker("build", db=db, bucket=reference, plan=plan)
        log(f"warm-up cold build: {warm['wall']:.2f}s, {warm['files']} files")
        runs = []
        for i in range(cfg.runs):
            run: dict[str, Any] = {}
            bucket, dest = self.bucket("p1"), self.bucket("floor")
            # alternate which of P1 and the floor goes first, so drift in machine load hits both alike
            order = ("p1", "floor") if i % 2 == 0 else ("floor", "p1")
            for what in order:
                if what == "p1":
                    run["p1"] = self.worker("build", db=db, bucket=bucket, plan=plan)
                else:
                    run["floor"] = self.worker("floor", db=db, plan=plan, source_bucket=reference, dest_bucket=dest)
            self.drop_bucket(dest)
            run["p2"] = self.worker("build", db=db, bucket=bucket, plan=plan)
            cur.execute("UPDATE `tabMemora Lesson` SET title = %s, modified = NOW(6) WHERE name = %s",
                        (f"{original_title} (edited {i + 1})", lesson.id))
            conn.commit()
            try:
                run["p3"] = self.worker("build", db=db, bucket=bucket, plan=plan)
            finally:
                cur.execute("UPDATE `tabMemora Lesson` SET title = %s WHERE name = %s", (original_title, lesson.id))
                conn.commit()
            self.drop_bucket(bucket)
            runs.append(run)
            log(f"core run {i + 1}/{cfg.runs}: P1 {run['p1']['wall']:.2f}s, floor {run['floor']['wall']:.2f}s, "
                f"P2 {run['p2']['wall']:.2f}s ({run['p2']['puts']} PUTs), P3 {run['p3']['wall']:.2f}s "
                f"({run['p3']['uploaded']} files), peak RSS {run['p1']['peak_rss_mb']} MB")
        self.drop_bucket(reference)
        return {
            "plan": plan, "database_rows_read": rows, "generated_lessons": len(content.lessons),
            "visible_lessons": warm["lessons"], "subjects": cfg.core_subjects, "stages_per_lesson": cfg.stages,
            "stages": len(content.stages), "files": warm["files"],
            "edited_lesson": lesson.id, "edited_unit": unit.id, "edited_lesson_neighbours": 2,
            "runs": runs,
        }

    def growth(self) -> dict[str, Any]:
        cfg = self.cfg
        dbs = {n: self.database(f"growth{n}", self.scale(1, max(1, n // cfg.lessons_per_subject), n))
               for n in cfg.growth_sizes}
        points: dict[int, list[dict[str, Any]]] = {n: [] for n in cfg.growth_sizes}
        for r in range(cfg.growth_runs):
            order = cfg.growth_sizes if r % 2 == 0 else list(reversed(cfg.growth_sizes))
            for n in order:
                bucket = self.bucket(f"g{n}")
                points[n].append(self.worker("build", db=dbs[n], bucket=bucket, plan="PLAN-2026-0001"))
                self.drop_bucket(bucket)
            log(f"growth round {r + 1}/{cfg.growth_runs}: " + ", ".join(
                f"{n}: {points[n][-1]['wall']:.2f}s/{points[n][-1]['peak_rss_mb']}MB" for n in cfg.growth_sizes))
        return {"sizes": cfg.growth_sizes, "lessons_per_subject": cfg.lessons_per_subject,
                "points": {str(n): v for n, v in points.items()}}

    def seed(self, db: str, bucket: str, plans: list[str]) -> float:
        """Initial cold build of `plans` in two processes (two cores); not a measured figure."""
        halves = [plans[0::2], plans[1::2]]
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda part: self.worker("seed", db=db, bucket=bucket, plans=part), [h for h in halves if h]))
        return time.perf_counter() - t

    def p4(self) -> dict[str, Any]:
        cfg = self.cfg
        replays = []
        for r in range(cfg.p4_runs):
            db = self.database("hour", self.scale(cfg.p4_plans, cfg.p4_subjects, cfg.p4_lessons))
            plans = [f"PLAN-2026-{p + 1:04d}" for p in range(cfg.p4_plans)]
            bucket = self.bucket("hour")
            seeded = self.seed(db, bucket, plans)
            log(f"P4 replay {r + 1}: initial build of {len(plans)} plans in {seeded:.0f}s")
            common.flush_redis()
            result = self.worker("hour", db=db, bucket=bucket, plans=plans, edits=cfg.p4_edits,
                                 windows=cfg.p4_windows, window_seconds=cfg.window_seconds, seed=cfg.seed + 4 + r)
            for c in result["cycles"]:
                log(f"  cycle {c['cycle']:2d}: {c['edits']} edits -> {c['plans_built']} plans, {c['wall']:.1f}s, "
                    f"{c['uploaded']} up / {c['deleted']} del, {c['purged_urls']} URLs purged, backlog {c['backlog']}")
            replays.append({"seed": cfg.seed + 4 + r, "initial_build_seconds": seeded, **result})
            self.drop_bucket(bucket)
            common.drop_database(db)
            self.databases.remove(db)
            common.flush_redis()
        return {"plans": cfg.p4_plans, "lessons_per_plan": cfg.p4_lessons, "subjects_per_plan": cfg.p4_subjects,
                "edits": cfg.p4_edits, "windows": cfg.p4_windows, "window_seconds": cfg.window_seconds,
                "replays": replays}

    def p5(self) -> dict[str, Any]:
        cfg = self.cfg
        db = self.database("nightly", self.scale(cfg.p5_plans, cfg.p5_subjects, cfg.p5_lessons))
        plans = [f"PLAN-2026-{p + 1:04d}" for p in range(cfg.p5_plans)]
        bucket = self.bucket("nightly")
        seeded = self.seed(db, bucket, plans)
        log(f"P5: initial build of {len(plans)} plans in {seeded:.0f}s")
        runs = []
        for r in range(cfg.p5_runs):
            common.flush_redis()
            runs.append(self.worker("nightly", db=db, bucket=bucket, plans=plans))
            log(f"P5 run {r + 1}/{cfg.p5_runs}: {runs[-1]['wall']:.1f}s, {runs[-1]['puts']} PUTs, "
                f"peak RSS {runs[-1]['peak_rss_mb']} MB")
        self.drop_bucket(bucket)
        common.drop_database(db)
        self.databases.remove(db)
        return {"plans": cfg.p5_plans, "lessons_per_plan": cfg.p5_lessons, "subjects_per_plan": cfg.p5_subjects,
                "initial_build_seconds": seeded, "runs": runs}

    def profile(self) -> dict[str, Any]:
        """pyinstrument of one P1 cold build and one P2 no-change build (separate from the measured runs)."""
        cfg = self.cfg
        db = self.database("profile", self.scale(1, cfg.core_subjects, cfg.core_lessons))
        folder = self.out / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        bucket = self.bucket("profile")
        out = {}
        for label in ("p1_cold", "p2_no_change"):
            path = folder / f"{label}.txt"
            result = self.worker("build", db=db, bucket=bucket, plan="PLAN-2026-0001", profile=str(path))
            shown = path.relative_to(common.REPO) if path.is_relative_to(common.REPO) else path
            out[label] = {"path": str(shown), "wall": result["wall"]}
        self.drop_bucket(bucket)
        return out

    def p6(self) -> dict[str, Any]:
        """P6: edit-to-CDN latency under a real `airflow standalone`, then under the Celery cluster of
        `make airflow-celery` (bench/latency.py, its own process)."""
        out = Path(self.out) / "p6.json"
        cmd = [sys.executable, "-m", "bench.latency", "--minutes", str(self.cfg.p6_minutes),
               "--lessons", str(self.cfg.p6_lessons), "--out", str(out)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(common.REPO / "include"), str(common.REPO)]))
        subprocess.run(cmd, cwd=common.REPO, env=env, check=True, timeout=3 * 3600)
        data = json.loads(out.read_text())
        for scenario in data["scenarios"]:
            scenario.pop("edit_log", None)  # kept in p6.json, not in results.json
        return data

    def run(self, meta: dict[str, Any]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name in self.scenarios:
            t = time.perf_counter()
            load_before = common.loadavg()
            log(f"--- {name}")
            results[name] = getattr(self, name)()
            results[name]["_seconds"] = time.perf_counter() - t
            results[name]["_loadavg"] = [load_before, common.loadavg()]
            # saved after every scenario, so that an interrupted run keeps what it measured
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "results.partial.json").write_text(
                json.dumps({"meta": meta, "results": results}, indent=1, default=str) + "\n")
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scales (smoke check); writes bench/quick/")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    parser.add_argument("--runs", type=int, help="override the number of measured runs of core, growth and P5")
    parser.add_argument("--out", help="write RESULTS.md, results.json, growth.png and profiles/ here instead "
                                      "(default bench/, or bench/quick/ with --quick)")
    parser.add_argument("--drop-leftovers", action="store_true",
                        help="first drop memora_bench_* databases left by an interrupted run")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.runs:
        cfg.runs = cfg.p5_runs = cfg.growth_runs = args.runs
    if args.out:
        cfg.out = str(Path(args.out).resolve())
    scenarios = [s for s in args.only.split(",") if s]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    exe = Path(sys.executable)
    exe_shown = str(exe.relative_to(common.REPO)) if exe.is_relative_to(common.REPO) else str(exe)
    command = " ".join(shlex.quote(a) for a in [exe_shown, "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])])
    started_at, t0 = common.now_utc(), time.perf_counter()
    meta = {"started_at": started_at, "command": command, "config": asdict(cfg), "machine": common.machine(),
            "scenarios": scenarios}
    log(f"{cfg.name} run: {', '.join(scenarios)}; machine {meta['machine']['nproc']} cores, "
        f"{meta['machine']['memory_mb']} MB, {meta['machine']['cpu_model']}")
    bench = Bench(cfg, scenarios, drop_leftovers=args.drop_leftovers)
    bench.start()
    try:
        results = bench.run(meta)
        meta["finished_at"] = common.now_utc()
        meta["total_seconds"] = time.perf_counter() - t0
        data = {"meta": meta, "results": results}
        report.write(data, bench.out)  # RESULTS.md, results.json, growth.png
        (bench.out / "results.partial.json").unlink(missing_ok=True)
    finally:
        bench.stop()
    log(f"done in {meta['total_seconds'] / 60:.1f} min: {bench.out}/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
