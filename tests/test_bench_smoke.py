"""`make bench` keeps working: its scenarios at small scale, run as `make bench` runs them.

The benchmarks call the engine and the change tracking directly, so a refactoring can break them without any other
test noticing (the one build path once removed a function P4 used, and `make bench` failed an hour in). This runs
`bench.run --quick` on every scenario but P6 (P6 drives the same Airflow clusters as tests/test_e2e_airflow.py and
takes 20 minutes even at small scale) and checks that every target was measured. Figures are not asserted: timing
belongs to `make bench`, not to tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import PYTHONPATH, REPO


def test_bench_quick_runs_every_scenario_but_p6(tmp_path):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--only", "core,growth,p4,p5,profile",
                           "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) >= {"core", "growth", "p4", "p5", "profile"}
    cycles = [c for replay in results["p4"]["replays"] for c in replay["cycles"]]
    assert cycles and sum(c["plans_built"] for c in cycles) > 0
    assert [c["failures"] for c in cycles if c["failures"]] == []
    text = (tmp_path / "RESULTS.md").read_text()
    for target in ("P1/floor", "P2: 0 PUTs", "P3 ≤ 10 files", "P4: every cycle", "P4: no backlog", "P5 sequential"):
        assert target in text, target
