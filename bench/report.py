"""Turn bench/run.py's raw results into RESULTS.md (figures, targets) and growth.png."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.common import linear_fit, median, power_fit, spread

# The targets, as checked here.
P1_FLOOR_MAX = 1.5
P2_SHARE_MAX = 0.10
P3_FILES_MAX = 10
P4_CYCLE_MAX = 60.0
RSS_MAX_MB = 300.0
LINEAR_EXPONENT_MAX = 1.10  # "cost grows linearly": power-law exponent of the fit at most this
LINEAR_R2_MIN = 0.99  # ... and a straight line explains the points


def _f(x: float, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def _ok(passed: bool) -> str:
    return "**PASS**" if passed else "**FAIL**"


def _med(runs: list[dict], *path: str) -> float:
    values = []
    for run in runs:
        v: Any = run
        for p in path:
            v = v[p]
        values.append(v)
    return median(values)


def _rng(runs: list[dict], *path: str) -> str:
    values = []
    for run in runs:
        v: Any = run
        for p in path:
            v = v[p]
        values.append(v)
    lo, hi = spread(values)
    return f"{_f(lo)}–{_f(hi)}"


def _rng_of(values: list[float]) -> str:
    lo, hi = spread(values)
    return f"{_f(lo)}–{_f(hi)}"


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """The headline figures and the target verdicts (also stored in results.json)."""
    res = data["results"]
    out: dict[str, Any] = {"targets": []}
    core = res.get("core")
    if core:
        runs = core["runs"]
        p1 = _med(runs, "p1", "wall")
        floor = _med(runs, "floor", "wall")
        p2 = _med(runs, "p2", "wall")
        # Verdicts use the paired figure: the median of the per-run ratios (P1 and its floor, P2 and P1 were
        # measured back to back in each run, so a burst of load on the shared machine hits both sides).
        pair_ratios = [r["p1"]["wall"] / r["floor"]["wall"] for r in runs]
        ratio = median(pair_ratios)
        p2_share = median(r["p2"]["wall"] / r["p1"]["wall"] for r in runs)
        p2_puts = max(r["p2"]["puts"] for r in runs)
        p2_deleted = max(r["p2"]["deletes"] for r in runs)
        p3_files = max(r["p3"]["uploaded"] for r in runs)
        rss = _med(runs, "p1", "build_peak_rss_mb")
        out.update(p1=p1, floor=floor, p1_floor=ratio, p1_floor_of_medians=p1 / floor, p2=p2, p2_share=p2_share,
                   p2_puts=p2_puts, p2_deleted=p2_deleted, p3_files=p3_files, p1_rss=rss)
        out["targets"] += [
            ("P1/floor ≤ 1.5", f"{_f(ratio)} (median of the per-run ratios, {_rng_of(pair_ratios)}; ratio of the "
                               f"medians {_f(p1)} s / {_f(floor)} s = {_f(p1 / floor)})", ratio <= P1_FLOOR_MAX),
            ("P2: 0 PUTs, 0 deletions", f"{p2_puts} PUT requests, {p2_deleted} deletions (worst run)",
             p2_puts == 0 and p2_deleted == 0),
            ("P2 wall ≤ 10% of P1", f"{_f(100 * p2_share, 1)}% (median of the per-run ratios; medians {_f(p2)} s "
                                    f"of {_f(p1)} s)", p2_share <= P2_SHARE_MAX),
            ("P3 ≤ 10 files", f"{p3_files} files (worst run)", p3_files <= P3_FILES_MAX),
            (f"peak RSS ≤ 300 MB building a {core['generated_lessons']}-lesson plan",
             f"{_f(rss, 1)} MB during the build (median of P1 runs; whole process since start incl. imports: "
             f"{_f(_med(runs, 'p1', 'peak_rss_mb'), 1)} MB)", max(rss, _med(runs, "p1", "peak_rss_mb")) <= RSS_MAX_MB),
        ]
    p4 = res.get("p4")
    if p4:
        cycles = [c for rep in p4["replays"] for c in rep["cycles"]]
        worst = max(c["wall"] for c in cycles)
        backlog = max(c["backlog"] for c in cycles)
        failures = sum(len(c["failures"]) for c in cycles)
        out.update(p4_worst=worst, p4_backlog=backlog, p4_failures=failures,
                   p4_median=median(c["wall"] for c in cycles))
        out["targets"] += [
            ("P4: every cycle ≤ 60 s", f"slowest cycle {_f(worst, 1)} s (median {_f(out['p4_median'], 1)} s)",
             worst <= P4_CYCLE_MAX),
            ("P4: no backlog at any cycle end", f"largest backlog {backlog}, {failures} failed build(s)",
             backlog == 0 and failures == 0),
        ]
    p5 = res.get("p5")
    if p5:
        out.update(p5_wall=_med(p5["runs"], "wall"), p5_rss=_med(p5["runs"], "peak_rss_mb"),
                   p5_puts=max(r["puts"] for r in p5["runs"]))
        out["targets"].append((f"peak RSS ≤ 300 MB, P5 sequential loop over {p5['plans']} plans",
                               f"{_f(out['p5_rss'], 1)} MB", out["p5_rss"] <= RSS_MAX_MB))
    for sc in (res.get("p6") or {}).get("scenarios", []):
        lat = sc["latency_seconds"]
        executor = sc.get("executor", "standalone")
        if sc["scenario"] == "low":
            out["targets"].append((f"P6 {executor}, low load: median edit-to-CDN ≤ 60 s",
                                   f"median {lat['median']} s (p95 {lat['p95']} s, max {lat['max']} s), "
                                   f"{sc['not_done']} of {sc['healthy_edits']} edits not done",
                                   lat["median"] is not None and lat["median"] <= 60 and sc["not_done"] == 0))
        else:
            label = f"P6 {executor}, 1000 edits/h" + (" with one plan failing" if sc["failing_plan"] else "")
            out["targets"].append((f"{label}: p95 ≤ 180 s, no backlog",
                                   f"p95 {lat['p95']} s (median {lat['median']} s, max {lat['max']} s), "
                                   f"{sc['not_done']} of {sc['healthy_edits']} edits not done",
                                   lat["p95"] is not None and lat["p95"] <= 180 and sc["not_done"] == 0))
    growth = res.get("growth")
    if growth:
        sizes = growth["sizes"]
        times = [_med(growth["points"][str(n)], "wall") for n in sizes]
        rss = [_med(growth["points"][str(n)], "build_peak_rss_mb") for n in sizes]
        base = [_med(growth["points"][str(n)], "rss_before_build_mb") for n in sizes]
        lessons = [_med(growth["points"][str(n)], "lessons") for n in sizes]
        fits = {
            "time": {"linear": linear_fit(lessons, times), "power": power_fit(lessons, times)},
            "rss": {"linear": linear_fit(lessons, rss), "power": power_fit(lessons, rss)},
            "rss_growth": {"linear": linear_fit(lessons, [r - b for r, b in zip(rss, base)]),
                           "power": power_fit(lessons, [max(0.1, r - b) for r, b in zip(rss, base)])},
        }
        out.update(growth_sizes=sizes, growth_lessons=lessons, growth_times=times, growth_rss=rss,
                   growth_base=base, growth_fits=fits)
        t = fits["time"]
        m = fits["rss_growth"]
        out["targets"].append((
            "cost grows linearly (time)",
            f"power-law exponent {_f(t['power']['exponent'], 3)}, linear R² {_f(t['linear']['r2'], 4)} "
            f"(pass: exponent ≤ {LINEAR_EXPONENT_MAX} and R² ≥ {LINEAR_R2_MIN})",
            t["power"]["exponent"] <= LINEAR_EXPONENT_MAX and t["linear"]["r2"] >= LINEAR_R2_MIN))
        out["targets"].append((
            "cost grows linearly (memory above the process baseline)",
            f"power-law exponent {_f(m['power']['exponent'], 3)}, linear R² {_f(m['linear']['r2'], 4)}",
            m["power"]["exponent"] <= LINEAR_EXPONENT_MAX and m["linear"]["r2"] >= LINEAR_R2_MIN))
    return out


def plot(summary: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = summary["growth_lessons"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, ys, label, key, unit in ((ax1, summary["growth_times"], "cold build wall time", "time", "s"),
                                     (ax2, summary["growth_rss"], "peak RSS during the build", "rss", "MB")):
        fit = summary["growth_fits"][key]
        lo, hi = min(xs), max(xs)
        grid = [lo + (hi - lo) * i / 50 for i in range(51)]
        ax.plot(xs, ys, "o", color="tab:blue", label="median of runs")
        lin = fit["linear"]
        ax.plot(grid, [lin["intercept"] + lin["slope"] * x for x in grid], "-", color="tab:orange",
                label=f"linear: {lin['slope'] * 1000:.3g} {unit}/1000 lessons, R²={lin['r2']:.4f}")
        pw = fit["power"]
        ax.plot(grid, [pw["coefficient"] * x ** pw["exponent"] for x in grid], "--", color="tab:green",
                label=f"power law: exponent {pw['exponent']:.3f}")
        ax.set_xlabel("visible lessons in the plan")
        ax.set_ylabel(unit)
        ax.set_title(label)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if "growth_base" in summary:
        ax2.plot(xs, summary["growth_base"], "x", color="grey", label="RSS just before the build (imports, clients)")
        ax2.legend(fontsize=8, loc="upper left")
    fig.suptitle("P1 cold build against plan size (40 lessons per subject, 8 stages per lesson)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _profile_head(path: Path, lines: int = 45) -> str:
    try:
        text = path.read_text().splitlines()
    except OSError:
        return "(profile not found)"
    body = [line for line in text if line.strip()]
    return "\n".join(body[:lines])


def write(data: dict[str, Any], out: Path) -> None:
    meta, res = data["meta"], data["results"]
    s = summarise(data)
    data["summary"] = {k: v for k, v in s.items() if k != "targets"}
    data["summary"]["targets"] = [{"target": t, "measured": m, "pass": p} for t, m, p in s["targets"]]
    m = meta["machine"]
    cfg = meta["config"]
    L: list[str] = []
    add = L.append
    add(f"# Benchmark results ({cfg['name']} run)")
    add("")
    add(f"- **command:** `{meta['command']}`" + (" (what `make bench` runs)" if cfg["name"] == "full" else ""))
    add(f"- **date:** {meta['started_at']} → {meta['finished_at']} ({meta['total_seconds'] / 60:.1f} min)")
    add(f"- **machine:** {m['nproc']} cores (nproc), {m['memory_mb']:,} MB memory, CPU `{m['cpu_model']}`, "
        f"Linux {m['kernel']}, Python {m['python']}, MariaDB {m['mariadb']}")
    add(f"- **code:** git {m['git']}; packages " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()))
    add("- **services:** MariaDB and Redis (db 12) of the machine; S3 is a moto server started by the bench "
        "(in-process Python, sharing the 2 cores with the builder); the Cloudflare purge API is the local stand-in")
    add("- **noise:** the machine is shared; every figure is the median of several runs, and compared figures "
        "(P1 and its floor, P2 and P1) were measured in the same run, interleaved. Load average before/after each "
        "scenario: " + ", ".join(f"{k} {v['_loadavg'][0]:.1f}/{v['_loadavg'][1]:.1f}" for k, v in res.items()
                                  if isinstance(v, dict) and "_loadavg" in v))
    add("")
    if s["targets"]:
        add("## Targets")
        add("")
        add("| target | measured | verdict |")
        add("|---|---|---|")
        for target, measured, passed in s["targets"]:
            add(f"| {target} | {measured} | {_ok(passed)} |")
        add("")

    core = res.get("core")
    if core:
        runs = core["runs"]
        n = len(runs)
        add("## P1 cold build, its floor, P2 no-change rebuild, P3 one lesson title edited")
        add("")
        add(f"One plan: {core['generated_lessons']} lessons generated ({core['visible_lessons']} visible after "
            f"unpublished ones and overrides), {core['subjects']} subjects, {core['stages_per_lesson']} stages per lesson "
            f"({core['stages']} stages), {core['files']} files, {core['database_rows_read']} rows read. "
            f"Each build runs in a fresh process (`python -m bench.worker build`), wall time around `build_plan` only "
            f"(interpreter start and imports excluded). {n} runs, each: P1 and floor (order alternating), then P2 on "
            f"P1's bucket, then P3 after editing the title of lesson `{core['edited_lesson']}` (middle of its unit: "
            f"both neighbours show its title), then the title is restored and the bucket dropped. "
            f"Median (min–max) over the {n} runs.")
        add("")
        add("| figure | P1 cold | floor | P2 no change | P3 one title |")
        add("|---|---|---|---|---|")
        add(f"| wall time, s | {_f(_med(runs, 'p1', 'wall'))} ({_rng(runs, 'p1', 'wall')}) "
            f"| {_f(_med(runs, 'floor', 'wall'))} ({_rng(runs, 'floor', 'wall')}) "
            f"| {_f(_med(runs, 'p2', 'wall'))} ({_rng(runs, 'p2', 'wall')}) "
            f"| {_f(_med(runs, 'p3', 'wall'))} ({_rng(runs, 'p3', 'wall')}) |")
        add(f"| SQL statements (Com_select delta) | {_f(_med(runs, 'p1', 'com_select'), 0)} "
            f"| {_f(_med(runs, 'floor', 'statements'), 0)} | {_f(_med(runs, 'p2', 'com_select'), 0)} "
            f"| {_f(_med(runs, 'p3', 'com_select'), 0)} |")
        add(f"| files uploaded | {_f(_med(runs, 'p1', 'uploaded'), 0)} | {_f(_med(runs, 'floor', 'documents'), 0)} "
            f"| {_f(_med(runs, 'p2', 'uploaded'), 0)} | {_f(_med(runs, 'p3', 'uploaded'), 0)} |")
        add(f"| PutObject requests (incl. state object) | {_f(_med(runs, 'p1', 'puts'), 0)} "
            f"| {_f(_med(runs, 'floor', 'puts'), 0)} | {_f(_med(runs, 'p2', 'puts'), 0)} "
            f"| {_f(_med(runs, 'p3', 'puts'), 0)} |")
        add(f"| bytes uploaded (plan files) | {_mb(_med(runs, 'p1', 'bytes'))} | {_mb(_med(runs, 'floor', 'bytes'))} "
            f"| {_f(_med(runs, 'p2', 'bytes'), 0)} B | {_f(_med(runs, 'p3', 'bytes'), 0)} B |")
        add(f"| deletions | {_f(_med(runs, 'p1', 'deletes'), 0)} | – | {_f(_med(runs, 'p2', 'deletes'), 0)} "
            f"| {_f(_med(runs, 'p3', 'deletes'), 0)} |")
        add(f"| peak RSS during the build (VmHWM reset at its start), MB | {_f(_med(runs, 'p1', 'build_peak_rss_mb'), 1)} "
            f"| – | {_f(_med(runs, 'p2', 'build_peak_rss_mb'), 1)} | {_f(_med(runs, 'p3', 'build_peak_rss_mb'), 1)} |")
        add(f"| peak RSS of the process since its start (VmHWM), MB | {_f(_med(runs, 'p1', 'peak_rss_mb'), 1)} "
            f"| {_f(_med(runs, 'floor', 'peak_rss_mb'), 1)} | {_f(_med(runs, 'p2', 'peak_rss_mb'), 1)} "
            f"| {_f(_med(runs, 'p3', 'peak_rss_mb'), 1)} |")
        add(f"| RSS just before the build (imports, clients), MB | {_f(_med(runs, 'p1', 'rss_before_build_mb'), 1)} "
            f"| – | {_f(_med(runs, 'p2', 'rss_before_build_mb'), 1)} "
            f"| {_f(_med(runs, 'p3', 'rss_before_build_mb'), 1)} |")
        add("")
        add(f"Floor parts (median): bulk read {_f(_med(runs, 'floor', 'read_seconds'), 3)} s "
            f"({_f(_med(runs, 'floor', 'rows'), 0)} rows in {_f(_med(runs, 'floor', 'statements'), 0)} plain SELECTs), "
            f"serialise {_f(_med(runs, 'floor', 'serialise_seconds'), 3)} s (orjson.dumps of the "
            f"{_f(_med(runs, 'floor', 'documents'), 0)} published documents), upload "
            f"{_f(_med(runs, 'floor', 'upload_seconds'), 3)} s (put_object of the same bodies and metadata, "
            f"thread pool of {runs[0]['floor']['concurrency']}, no waves). P1 also writes the state object and "
            f"reads the (empty) listing and state; the floor does neither.")
        phases = [ph for ph in ("list", "read", "read_state", "resolve", "render", "reconcile", "render_again", "publish")
                  if any(ph in (r[c].get("phases") or {}) for r in runs for c in ("p1", "p2", "p3"))]
        if phases:
            add("")
            add("Where a build's time goes: median seconds per step of `build_plan` (`BuildResult.phases`). The "
                "listing of the plan's folder runs in a background thread while the database is read, the state "
                "object read and the plan resolved and rendered, so `list` overlaps those steps; `reconcile` "
                "waits for the listing.")
            add("")
            add("| step | P1 cold | P2 no change | P3 one title |")
            add("|---|---|---|---|")
            for ph in phases:
                cells = []
                for c in ("p1", "p2", "p3"):
                    values = [r[c]["phases"][ph] for r in runs if ph in (r[c].get("phases") or {})]
                    cells.append(_f(median(values), 3) if values else "–")
                add(f"| {ph} | " + " | ".join(cells) + " |")
        p3_kinds: dict[str, int] = {}
        for r in runs:
            for k, v in r["p3"]["uploaded_kinds"].items():
                p3_kinds[k] = max(p3_kinds.get(k, 0), v)
        add("")
        add("P3 files uploaded by kind (worst run): " + ", ".join(f"{k} {v}" for k, v in sorted(p3_kinds.items())) + ".")
        add("")

    growth = res.get("growth")
    if growth:
        fits = s["growth_fits"]
        add("## Growth: P1 against plan size")
        add("")
        add(f"Cold build of one plan at {', '.join(str(n) for n in growth['sizes'])} generated lessons "
            f"({growth['lessons_per_subject']} lessons per subject, so subjects, units and shards grow with it), "
            f"fresh process and bucket each time, sizes interleaved (order reversed every other round), "
            f"median of {len(growth['points'][str(growth['sizes'][0])])} runs. Plot: `growth.png`.")
        add("")
        add("| generated lessons | visible lessons | files | bytes | wall, s (min–max) | peak RSS during build, MB | RSS just before, MB |")
        add("|---|---|---|---|---|---|---|")
        for n, vis, t, r, b in zip(growth["sizes"], s["growth_lessons"], s["growth_times"], s["growth_rss"], s["growth_base"]):
            pts = growth["points"][str(n)]
            add(f"| {n} | {vis:.0f} | {_f(_med(pts, 'files'), 0)} | {_mb(_med(pts, 'bytes'))} | {_f(t)} ({_rng(pts, 'wall')}) "
                f"| {_f(r, 1)} | {_f(b, 1)} |")
        add("")
        add("Least-squares fits against visible lessons:")
        add("")
        add("| quantity | linear slope | linear intercept | linear R² | power-law exponent (y = c·n^k) |")
        add("|---|---|---|---|---|")
        for key, label, unit in (("time", "wall time", "s"), ("rss", "peak RSS during the build", "MB"),
                                 ("rss_growth", "peak RSS during the build minus RSS just before it", "MB")):
            f = fits[key]
            add(f"| {label} | {f['linear']['slope'] * 1000:.4g} {unit} per 1000 lessons | {_f(f['linear']['intercept'], 2)} {unit} "
                f"| {_f(f['linear']['r2'], 4)} | {_f(f['power']['exponent'], 3)} |")
        add("")

    p4 = res.get("p4")
    if p4:
        add("## P4: one simulated hour")
        add("")
        add(f"{p4['plans']} plans of {p4['lessons_per_plan']} lessons ({p4['subjects_per_plan']} subjects per plan, one "
            f"of them shared by every plan), {p4['edits']} random edits spread over the plans and over "
            f"{p4['windows']} windows of {p4['window_seconds']} s; each window's edits are committed and marked through "
            f"`memora_cdn_producer.mark_changed`, then one cycle runs the real sync path (`claim_batch`, "
            f"`build_claimed_plan` then `purge_built_plan` per claimed plan, sequentially in one process, then "
            f"`purge_requests` + `purge` for what is left, with `CloudflarePurger` against the stand-in, 30 URLs per "
            f"request). Backlog = pending + queued fallback rows + "
            f"due retries + plans still claimed + dead letters, read after the cycle. "
            f"{len(p4['replays'])} replay(s); every cycle is its own measurement.")
        add("")
        after = [c["max_purge_after_upload_seconds"] for rep in p4["replays"] for c in rep["cycles"]
                 if "max_purge_after_upload_seconds" in c]
        if after:
            by_build = sum(c.get("plans_purged_by_build", 0) for rep in p4["replays"] for c in rep["cycles"])
            built = sum(c["plans_built"] for rep in p4["replays"] for c in rep["cycles"])
            add("")
            add(f"Each plan's changes were purged by its own build right after its upload ({by_build} of {built} "
                f"plan builds; the cycle's purge step takes the rest): the CDN had the purge at most "
                f"{_f(max(after), 3)} s after a plan's last upload (SPEC §8: within 60 s).")
        if len(p4["replays"]) > 1:
            add("")
            add("Median cycle wall time, s, per cycle position over the replays (min–max): " + ", ".join(
                f"{i + 1}: {_f(median(walls), 1)} ({_rng_of(walls)})" for i, walls in enumerate(
                    zip(*([c["wall"] for c in rep["cycles"]] for rep in p4["replays"])))) + ".")
        add("")
        add("| replay (seed) | cycle | edits | plans marked | plans built | wall, s | slowest plan, s | files up | "
            "files deleted | URLs purged | purge requests | backlog |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, rep in enumerate(p4["replays"], 1):
            for c in rep["cycles"]:
                add(f"| {n} ({rep['seed']}) | {c['cycle']} | {c['edits']} | {c['plans_marked']} | {c['plans_built']} | {_f(c['wall'], 1)} "
                    f"| {_f(c['max_plan_seconds'], 2)} | {c['uploaded']} | {c['deleted']} | {c['purged_urls']} "
                    f"| {c['purge_requests']} | {c['backlog']} |")
        kinds: dict[str, int] = {}
        for rep in p4["replays"]:
            for c in rep["cycles"]:
                for k, v in c["edit_kinds"].items():
                    kinds[k] = kinds.get(k, 0) + v
        add("")
        add("Edits made: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ".")
        fails = [f for rep in p4["replays"] for c in rep["cycles"] for f in c["failures"]]
        if fails:
            add("")
            add("Failed builds: " + "; ".join(fails[:10]))
        add("")

    p5 = res.get("p5")
    if p5:
        runs = p5["runs"]
        add("## P5: nightly full rebuild with no change")
        add("")
        add(f"{p5['plans']} plans × {p5['lessons_per_plan']} lessons ({p5['subjects_per_plan']} subjects per plan), "
            f"already published. Rebuilt in **one process, sequentially** (the loop of `memora_cdn.orchestration.tasks.build_plans`: "
            f"one MariaDB connection, one S3 client, `build_plan_locked` per plan: its Redis lock, renewal "
            f"scheduled; summary kept). "
            f"Median (min–max) of {len(runs)} runs, each a fresh process.")
        add("")
        add("| figure | value |")
        add("|---|---|")
        add(f"| wall time, s | {_f(_med(runs, 'wall'), 1)} ({_rng(runs, 'wall')}) |")
        add(f"| per plan, s (median of all plans) | {_f(median(x for r in runs for x in r['per_plan_seconds']))} |")
        add(f"| peak RSS of the process (VmHWM), MB | {_f(_med(runs, 'peak_rss_mb'), 1)} ({_rng(runs, 'peak_rss_mb')}) |")
        add(f"| RSS before the loop, MB | {_f(_med(runs, 'rss_before_mb'), 1)} |")
        add(f"| RSS after the first / last plan, MB | {_f(median(r['rss_after_each_plan_mb'][0] for r in runs), 1)} / "
            f"{_f(median(r['rss_after_each_plan_mb'][-1] for r in runs), 1)} |")
        add(f"| files checked | {_f(_med(runs, 'files'), 0)} |")
        add(f"| PutObject requests / deletions | {max(r['puts'] for r in runs)} / {max(r['deleted'] for r in runs)} |")
        add("")

    p6 = res.get("p6")
    if p6:
        add("## P6: edit-to-CDN latency under a running Airflow")
        add("")
        add("`bench/latency.py`: a real `airflow standalone` (LocalExecutor, Airflow's default settings, the debounce "
            "trigger in the triggerer), then the CeleryExecutor cluster of `make airflow-celery` (PostgreSQL metadata "
            "database, Redis broker, two workers), on this machine. An editor thread changes a visible lesson's title "
            "in MariaDB, commits and calls the real producer (`memora_cdn_producer.mark_changed`); an edit is done "
            "when the Cloudflare stand-in received the purge of its lesson URL and the bucket holds the new title. "
            "Latency = done − the producer's mark. Low load: one edit a minute (gaps of 48–72 s); 1000 edits/h: "
            "Poisson arrivals over the 20 plans.")
        add("")
        add("| executor | scenario | edits | median s | p95 s | max s | not done | sync runs/h |")
        add("|---|---|---|---|---|---|---|---|")
        for sc in p6["scenarios"]:
            lat = sc["latency_seconds"]
            name = sc["scenario"] + (f" (plan {sc['failing_plan']} failing: {sc['failing_plan_edits']} edits)"
                                     if sc["failing_plan"] else "")
            add(f"| {sc.get('executor', 'standalone')} | {name}, {sc['edits_per_hour']:g}/h for {sc['minutes']:g} min "
                f"| {sc['healthy_edits']} | {lat['median']} | {lat['p95']} | {lat['max']} | {sc['not_done']} | "
                f"{sc['runs_per_hour']} |")
        add("")
        heads = " | ".join(f"{sc.get('executor', 'standalone')} {sc['scenario']}" for sc in p6["scenarios"])
        parts = [sc.get("edit_steps", {}).get("median_seconds", {}) for sc in p6["scenarios"]]
        if any(parts):
            add("Where an edit's time goes (median seconds over the done edits; the run that took an edit is the first "
                "whose claim task ended after the mark):")
            add("")
            add(f"| part | {heads} |")
            add("|---|" + "---|" * len(p6["scenarios"]))
            for name in next(p for p in parts if p):
                add(f"| {name} | " + " | ".join(str(pt.get(name)) for pt in parts) + " |")
            add("")
        add("Where a sync run's time goes (median seconds over the runs that built something, from the REST API):")
        add("")
        steps = [sc["steps"]["median_seconds"] for sc in p6["scenarios"]]
        names = list(steps[0]) if steps else []
        add(f"| step | {heads} |")
        add("|---|" + "---|" * len(p6["scenarios"]))
        for name in names:
            add(f"| {name} | " + " | ".join(str(st.get(name)) for st in steps) + " |")
        add("")

    add("RSS figures are the kernel's high-water mark of the measured process (`VmHWM` in /proc/self/status). "
        "`ru_maxrss` is recorded in results.json but not used: a process started by fork+exec inherits its "
        "parent's high-water mark in ru_maxrss (Linux sets it from the parent's address space at exec), so a worker "
        "started by this bench, which holds the generated content in memory, would report the bench's own size.")
    add("")

    prof = res.get("profile")
    if prof:
        add("## Profiles (pyinstrument, 1 ms interval)")
        add("")
        add("One profiled P1 cold build and one P2 no-change build of the same plan as above, separate from the "
            "measured runs (profiling slows them down). Full text in `profiles/`; the top frames:")
        for label in ("p1_cold", "p2_no_change"):
            if label in prof:
                add("")
                add(f"### {label} ({_f(prof[label]['wall'])} s under the profiler)")
                add("")
                add("```")
                add(_profile_head(_repo() / prof[label]["path"]))
                add("```")
        add("")

    if growth and not plot(s, out / "growth.png"):
        add("(growth.png not written: matplotlib is not installed)")
    (out / "RESULTS.md").write_text("\n".join(L) + "\n")
    import json

    (out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")


def _repo() -> Path:
    from bench.common import REPO

    return REPO
