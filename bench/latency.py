"""P6: edit-to-CDN latency under a running Airflow (issue 14).

A real `airflow standalone` (LocalExecutor, Airflow's default settings: the default retry delay, the real
scheduler, the debounce trigger in the triggerer) runs both DAGs against MariaDB, the bench's Redis, a moto S3
server behind the fault proxy and the Cloudflare stand-in. An editor thread makes edits the way an editor does:
it changes a visible lesson's title to a unique token in MariaDB, commits, and calls the real producer
(`memora_cdn_producer.mark_changed`). An observer watches the stand-in's purge calls; an edit is *done* when the
CDN was told to purge its lesson's URL and the object in the bucket holds the token (the new bytes uploaded and
the purge sent). Latency = done - the producer's mark.

The same scenarios run under each executor asked for: `airflow standalone` (LocalExecutor), then the CeleryExecutor
cluster of `make airflow-celery` (scripts/airflow_celery.sh: PostgreSQL metadata, Redis broker, two workers).

Scenarios (one after the other on the same running Airflow):
- low: one edit a minute (each gap 48-72 s), spread over the plans;
- busy: 1000 edits per hour over 20 plans (Poisson arrivals);
- failing: as busy, while one plan's S3 writes are refused (its edits are reported apart; they cannot finish).

Reported per scenario: median, p95 and max latency, edits not done, sync runs per hour, and where the time goes:
per edit, mark -> its run queued (debounce, trigger poll, run creation), run queued -> claimed (run start, check,
claim), claimed -> purge sent (build task start-up on the executor, the build, the upload, the purge); per sync run
(from the REST API), run queued -> running, check, claim, claim end -> first build start, build task, run total.

    PYTHONPATH=include:. python -m bench.latency --minutes 10 --executors standalone,celery --out bench/p6.json
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import common

PLANS = 20
SYNC = "memora_cdn_sync"


@dataclass
class Edit:
    plan_id: str
    lesson_id: str
    token: str
    marked: float
    done: float | None = None


@dataclass
class Scenario:
    name: str
    edits_per_hour: float
    minutes: float
    failing_plan: str | None = None
    regular: bool = False  # evenly spaced edits (each gap 0.8-1.2 x the mean) instead of Poisson arrivals
    edits: list[Edit] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(q * (len(values) - 1)))))
    return values[k]


def _iso(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class Observer(threading.Thread):
    """Marks edits done when their lesson URL was purged after the mark and the bucket holds the token."""

    def __init__(self, cf, s3, bucket: str, cdn_base: str, edits: list[Edit], lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.cf, self.s3, self.bucket, self.cdn_base = cf, s3, bucket, cdn_base.rstrip("/")
        self.edits, self.lock = edits, lock
        self.seen = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from memora_cdn.engine import keys

        while not self.stop.wait(0.5):
            calls = self.cf.calls
            new, self.seen = calls[self.seen:], len(calls)
            purged: dict[str, float] = {}
            for call in new:
                body = call.get("body") or {}
                if call.get("status") == 200 and isinstance(body, dict):
                    for url in body.get("files") or []:
                        purged[url if isinstance(url, str) else url.get("url", "")] = call["at"]
                    for prefix in body.get("prefixes") or []:
                        purged["prefix:" + prefix] = call["at"]
            with self.lock:
                waiting = [e for e in self.edits if e.done is None]
            for edit in waiting:
                key = keys.lesson_key(edit.plan_id, edit.lesson_id)
                at = purged.get(f"{self.cdn_base}/{key}")
                if at is None:
                    host_path = f"{self.cdn_base.split('://', 1)[-1]}/{keys.plan_prefix(edit.plan_id)}"
                    at = purged.get("prefix:" + host_path.rstrip("/")) or purged.get("prefix:" + host_path)
                if at is None or at < edit.marked:
                    continue
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8")
                if edit.token in body:
                    edit.done = at


class Editor(threading.Thread):
    def __init__(self, database: str, redis, lessons: dict[str, list[str]], scenario: Scenario,
                 lock: threading.Lock, seed: int) -> None:
        super().__init__(daemon=True)
        self.database, self.redis, self.lessons, self.scenario, self.lock = database, redis, lessons, scenario, lock
        self.rng = random.Random(seed)

    def run(self) -> None:
        from memora_cdn_producer import mark_changed

        db = common.mysql_connect(self.database)
        interval = 3600.0 / self.scenario.edits_per_hour
        deadline = time.time() + self.scenario.minutes * 60
        next_at = time.time() + self.rng.uniform(0, interval)
        plans = sorted(self.lessons)
        while next_at < deadline:
            time.sleep(max(0.0, next_at - time.time()))
            plan_id = self.rng.choice(plans)
            lesson_id = self.rng.choice(self.lessons[plan_id])
            token = "edit-" + uuid.uuid4().hex[:12]
            cur = db.cursor()
            cur.execute("UPDATE `tabMemora Lesson` SET title = %s, modified = NOW(6) WHERE name = %s",
                        (f"Lesson {token}", lesson_id))
            db.commit()
            cur.close()
            marked = time.time()
            mark_changed("Memora Lesson", lesson_id, db=db, redis=self.redis)
            with self.lock:
                self.scenario.edits.append(Edit(plan_id, lesson_id, token, marked))
            next_at += (interval * self.rng.uniform(0.8, 1.2) if self.scenario.regular
                        else self.rng.expovariate(1.0 / interval))  # Poisson arrivals at the scenario's rate
        db.close()


def run_breakdown(api, runs: list[dict[str, Any]]) -> tuple[dict[str, Any], list[tuple[float, float]]]:
    """Median seconds per step over the sync runs that built something, and each run's (queued, claim ended)."""
    steps: dict[str, list[float]] = {"run queued -> running": [], "check": [], "claim": [],
                                     "claim end -> first build start": [], "build (task)": [], "run total": []}
    built = 0
    claims: list[tuple[float, float]] = []  # (run queued, claim task ended) of every run, for the per-edit steps
    for run in runs:
        tis = api.task_instances(SYNC, run["dag_run_id"])
        by = {}
        for ti in tis:
            by.setdefault(ti["task_id"], []).append(ti)
        queued, started, ended = _iso(run.get("queued_at")), _iso(run.get("start_date")), _iso(run.get("end_date"))
        claim_end = max((_iso(ti["end_date"]) for ti in by.get("claim", []) if ti.get("end_date")), default=None)
        if queued and claim_end:
            claims.append((queued, claim_end))
        builds = [ti for ti in by.get("build", []) if ti.get("start_date")]
        if not builds:
            continue
        built += 1
        if queued and started:
            steps["run queued -> running"].append(started - queued)
        for name in ("check", "claim"):
            for ti in by.get(name, []):
                if ti.get("start_date") and ti.get("end_date"):
                    steps[name].append(_iso(ti["end_date"]) - _iso(ti["start_date"]))
        if claim_end:
            steps["claim end -> first build start"].append(min(_iso(ti["start_date"]) for ti in builds) - claim_end)
        for ti in builds:
            if ti.get("end_date"):
                steps["build (task)"].append(_iso(ti["end_date"]) - _iso(ti["start_date"]))
        if started and ended:
            steps["run total"].append(ended - started)
    summary = {"runs_that_built": built,
               "median_seconds": {k: round(statistics.median(v), 2) if v else None for k, v in steps.items()}}
    return summary, sorted(claims, key=lambda c: c[1])


def edit_breakdown(edits: list[Edit], claims: list[tuple[float, float]]) -> dict[str, Any]:
    """Where each done edit's latency went, split at its run's queue time and claim: the run that took an edit is
    taken to be the first whose claim task ended after the mark (the claim itself is an instant inside that task).
    The three parts add up to the edit's latency."""
    parts: dict[str, list[float]] = {"mark -> run queued (debounce, trigger, run creation)": [],
                                     "run queued -> claimed (run start, check, claim)": [],
                                     "claimed -> purge sent (task start-up, build, upload, purge)": []}
    for edit in edits:
        if edit.done is None:
            continue
        run = next(((q, c) for q, c in claims if c >= edit.marked and c <= edit.done), None)
        if run is None:
            continue
        queued, claimed = run
        parts["mark -> run queued (debounce, trigger, run creation)"].append(max(0.0, queued - edit.marked))
        parts["run queued -> claimed (run start, check, claim)"].append(claimed - max(queued, edit.marked))
        parts["claimed -> purge sent (task start-up, build, upload, purge)"].append(edit.done - claimed)
    return {"edits": len(next(iter(parts.values()))),
            "median_seconds": {k: round(statistics.median(v), 2) if v else None for k, v in parts.items()}}


def measure(scenario: Scenario, *, stack: dict[str, Any], seed: int) -> dict[str, Any]:
    api, s3, settings, cf = stack["api"], stack["s3"], stack["settings"], stack["cf"]
    lock = threading.Lock()
    lessons = {p: ls for p, ls in stack["lessons"].items()}
    if scenario.failing_plan:
        stack["proxy"].deny_prefix(f"plans/{scenario.failing_plan}/")
    started = time.time()
    observer = Observer(cf, s3, settings.bucket, settings.cdn_base_url, scenario.edits, lock)
    observer.start()
    editor = Editor(stack["database"], stack["redis"], lessons, scenario, lock, seed)
    editor.start()
    editor.join()
    settle_until = time.time() + 240  # let the last edits finish (at most four minutes)
    while time.time() < settle_until:
        with lock:
            if all(e.done or e.plan_id == scenario.failing_plan for e in scenario.edits):
                break
        time.sleep(1)
    observer.stop.set()
    observer.join(10)
    ended = time.time()
    if scenario.failing_plan:
        stack["proxy"].denied.clear()
    runs = [r for r in api.get(f"/dags/{SYNC}/dagRuns", order_by="-run_after", limit=500)["dag_runs"]
            if (_iso(r.get("queued_at")) or 0) >= started]
    healthy = [e for e in scenario.edits if e.plan_id != scenario.failing_plan]
    latencies = [e.done - e.marked for e in healthy if e.done is not None]
    sample_hours = scenario.minutes / 60.0
    steps, claims = run_breakdown(api, runs)
    by_type: dict[str, int] = {}
    for r in runs:
        by_type[r.get("run_type", "?")] = by_type.get(r.get("run_type", "?"), 0) + 1
    return {
        "executor": stack["executor"], "scenario": scenario.name, "edits_per_hour": scenario.edits_per_hour,
        "minutes": scenario.minutes,
        "failing_plan": scenario.failing_plan, "edits": len(scenario.edits), "healthy_edits": len(healthy),
        "not_done": sum(1 for e in healthy if e.done is None),
        "failing_plan_edits": len(scenario.edits) - len(healthy),
        "latency_seconds": {"median": _round(statistics.median(latencies)) if latencies else None,
                            "p95": _round(pct(latencies, 0.95)), "max": _round(max(latencies) if latencies else None)},
        "sync_runs": len(runs), "runs_by_type": by_type,
        "runs_per_hour": round(len(runs) / ((ended - started) / 3600.0), 1),
        "sample_hours": sample_hours,
        "steps": steps,
        "edit_steps": edit_breakdown(healthy, claims),
        "edit_log": [asdict(e) for e in scenario.edits],
    }


def _round(v: float | None) -> float | None:
    return round(v, 1) if v is not None else None


def visible_lessons(s3, bucket: str, plans: list[str]) -> dict[str, list[str]]:
    from memora_cdn.engine import keys
    from memora_cdn.engine.publish import list_prefix

    out = {}
    for plan_id in plans:
        prefix = keys.plan_prefix(plan_id) + "lessons/"
        out[plan_id] = sorted(k[len(prefix):-len(".json")] for k in list_prefix(s3, bucket, prefix))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each scenario's sample")
    parser.add_argument("--lessons", type=int, default=300, help="lessons per plan")
    parser.add_argument("--only", default="low,busy,failing")
    parser.add_argument("--executors", default="standalone,celery",
                        help="standalone (LocalExecutor) and/or celery (the cluster of make airflow-celery)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--out", type=Path, default=common.REPO / "bench" / "p6.json")
    args = parser.parse_args(argv)

    from memora_cdn.engine.build import build_plan
    from memora_cdn.settings import parse_settings
    from memora_cdn_demo.content import DemoScale
    from tests.airflow_cluster import celery_cluster, memora_env, standalone
    from tests.standins.cloudflare import CloudflareStandIn
    from tests.standins.s3_proxy import S3FaultProxy
    from tests.support import REDIS_PORT, S3Server

    results: dict[str, Any] = {"machine": common.machine(), "started": common.now_utc(), "scenarios": []}
    database = common.create_database("p6")
    server = S3Server().start()
    try:
        scale = DemoScale(plans=PLANS, subjects_per_plan=2, lessons_per_plan=args.lessons, stages_per_lesson=4,
                          shared_subjects=0, seed=args.seed)
        common.load_content(database, scale)
        s3 = common.s3_client(server.endpoint)
        bucket = common.new_bucket(s3, "p6")
        s3.create_bucket(Bucket=common.MEDIA_BUCKET)
        settings = parse_settings({"bucket": bucket, "media_bucket": common.MEDIA_BUCKET,
                                   "cdn_base_url": common.CDN_BASE_URL, "media_base_url": common.MEDIA_BASE_URL,
                                   "purge_provider": "cloudflare", "purge_files_per_request": 100})
        db = common.mysql_connect(database)
        cur = db.cursor()
        cur.execute("SELECT name FROM `tabMemora Academic Plan` ORDER BY name")
        plans = [r[0] for r in cur.fetchall()]
        t = time.perf_counter()
        for plan_id in plans:
            build_plan(plan_id, db=db, s3=s3, settings=settings)
        print(f"published {len(plans)} plans in {time.perf_counter() - t:.0f} s", flush=True)
        lessons = visible_lessons(s3, bucket, plans)
        # an edit must show: leave out lessons a plan overrides (a Rename keeps the plan's title whatever the edit)
        cur.execute("SELECT DISTINCT target_name FROM `tabMemora Plan Override`")
        overridden = {r[0] for r in cur.fetchall()}
        lessons = {p: [ls for ls in names if ls not in overridden] for p, names in lessons.items()}
        redis = common.redis_client()
        redis.flushdb()
        import tempfile

        with CloudflareStandIn(token=common.CF_TOKEN, zone_id=common.CF_ZONE, max_files=100) as cf, \
                S3FaultProxy(server.endpoint) as proxy:
            env = memora_env(db_name=database, redis_db=common.REDIS_DB, s3_endpoint=proxy.endpoint,
                             settings=settings)
            env["AIRFLOW_CONN_MEMORA_REDIS"] = json.dumps({"conn_type": "redis", "host": "127.0.0.1",
                                                           "port": REDIS_PORT,
                                                           "extra": {"db": common.REDIS_DB}})
            env["AIRFLOW_CONN_MEMORA_CDN_PURGE"] = json.dumps({"conn_type": "http", "host": cf.url,
                                                               "password": common.CF_TOKEN,
                                                               "extra": {"zone_id": common.CF_ZONE}})
            env["AIRFLOW__MEMORA_CDN__BUILD_POOL"] = "memora_cdn_builds"
            for executor in args.executors.split(","):
                redis.flushdb()  # each executor starts from an empty registry
                home = Path(tempfile.mkdtemp(prefix=f"memora-p6-{executor}-"))
                t = time.perf_counter()
                if executor == "standalone":
                    cluster = standalone(home, env, pools={"memora_cdn_builds": 4})
                elif executor == "celery":
                    cluster = celery_cluster(home, env, build_pool_slots=4)
                else:
                    raise SystemExit(f"unknown executor {executor!r}: standalone or celery")
                with cluster as api:
                    print(f"P6 {executor}: Airflow up and settled in {time.perf_counter() - t:.0f} s", flush=True)
                    stack = {"api": api, "s3": s3, "settings": settings, "cf": cf, "proxy": proxy, "redis": redis,
                             "database": database, "lessons": lessons, "executor": executor}
                    wanted = args.only.split(",")
                    scenarios = [Scenario("low", 60, args.minutes, regular=True), Scenario("busy", 1000, args.minutes),
                                 Scenario("failing", 1000, args.minutes, failing_plan=plans[-1])]
                    for i, scenario in enumerate(s for s in scenarios if s.name in wanted):
                        print(f"P6 {executor} {scenario.name}: {scenario.edits_per_hour:g} edits/h for "
                              f"{scenario.minutes:g} min", flush=True)
                        result = measure(scenario, stack=stack, seed=args.seed + i)
                        summary = {k: v for k, v in result.items() if k != "edit_log"}
                        print(json.dumps(summary, indent=1), flush=True)
                        results["scenarios"].append(result)
                        args.out.write_text(json.dumps(results, indent=1))
        db.close()
    finally:
        server.stop()
        common.drop_database(database)
    results["finished"] = common.now_utc()
    args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
