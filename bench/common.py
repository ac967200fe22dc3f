"""Shared helpers of the benchmarks: the machine, the services, buckets, counters, statistics.

Everything here runs against the machine's real MariaDB and Redis and a moto S3 server of the bench's
own (so other people's traffic on the shared local S3 never enters the figures).
"""
from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[1]

DB_PREFIX = "memora_bench_"
REDIS_DB = 12
MEDIA_BUCKET = "memora-bench-media"
CDN_BASE_URL = "https://cdn.memora.test"
MEDIA_BASE_URL = "https://media.memora.test"
CF_TOKEN = "cf-bench-token-123"
CF_ZONE = "zone-bench"


# -- the machine ---------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        nproc = os.cpu_count()
    return {
        "nproc": nproc,
        "memory_mb": mem_mb,
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mariadb": _mariadb_version(),
        "git": _git_describe(),
        "packages": _versions("orjson", "jsonschema", "jsonschema_rs", "boto3", "moto", "mysqlclient", "redis", "matplotlib", "pyinstrument"),
    }


def _mariadb_version() -> str:
    try:
        conn = mysql_connect()
        cur = conn.cursor()
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
        conn.close()
        return version
    except Exception as exc:  # reported, never fatal here
        return f"unknown ({type(exc).__name__})"


def _git_describe() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "include"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return head + (" (include/ has uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def _versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


# -- MariaDB -------------------------------------------------------------------------------------

def mysql_connect(database: str | None = None):
    from tests.support import mysql_connect as connect

    return connect(database)


def create_database(purpose: str) -> str:
    """A new `memora_bench_{purpose}_{random}` database with the Frappe schema."""
    from memora_cdn_demo.content import create_schema

    name = f"{DB_PREFIX}{purpose}_{uuid.uuid4().hex[:8]}"
    admin = mysql_connect()
    try:
        admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        admin.close()
    conn = mysql_connect(name)
    try:
        create_schema(conn)
    finally:
        conn.close()
    return name


def drop_database(name: str) -> None:
    if not name.startswith(DB_PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a bench database")
    admin = mysql_connect()
    try:
        cur = admin.cursor()
        # never wait forever behind a connection that still has the database open: fail and report instead
        cur.execute("SET SESSION lock_wait_timeout = 60")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()


def leftover_databases() -> list[str]:
    admin = mysql_connect()
    try:
        cur = admin.cursor()
        cur.execute("SHOW DATABASES LIKE %s", (DB_PREFIX.replace("_", "\\_") + "%",))
        return [row[0] for row in cur.fetchall()]
    finally:
        admin.close()


def load_content(database: str, scale) -> dict[str, int]:
    """Generate `scale` with memora_cdn_demo.content and bulk-load it; rows per table."""
    from memora_cdn_demo import content as demo

    conn = mysql_connect(database)
    try:
        return demo.load(conn, demo.generate(scale, media_bucket=MEDIA_BUCKET))
    finally:
        conn.close()


def com_select(conn) -> int:
    """This session's count of SELECT statements the server executed (SHOW STATUS itself is not one)."""
    cur = conn.cursor()
    try:
        cur.execute("SHOW SESSION STATUS LIKE 'Com_select'")
        return int(cur.fetchone()[1])
    finally:
        cur.close()


# -- Redis -----------------------------------------------------------------------------------------

def redis_client():
    import redis

    from tests.support import REDIS_PORT  # the machine's Redis, or MEMORA_TEST_REDIS_PORT's

    return redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)


def flush_redis() -> None:
    client = redis_client()
    try:
        client.flushdb()  # db 12 only: the bench's own
    finally:
        client.close()


# -- S3 --------------------------------------------------------------------------------------------

def s3_client(endpoint: str, concurrency: int = 16):
    """A boto3 client configured like memora_cdn.orchestration.connections.s3_client (pool = concurrency + 4, SigV4, retries)."""
    import boto3
    from botocore.config import Config

    from tests.support import AWS_KEY, AWS_SECRET

    config = Config(max_pool_connections=concurrency + 4, retries={"mode": "standard", "max_attempts": 5},
                    signature_version="s3v4")
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AWS_KEY, aws_secret_access_key=AWS_SECRET,
                        region_name="us-east-1", config=config)


def settings_for(bucket: str, **extra: Any):
    from memora_cdn.settings import parse_settings

    return parse_settings({"bucket": bucket, "media_bucket": MEDIA_BUCKET, "cdn_base_url": CDN_BASE_URL,
                           "media_base_url": MEDIA_BASE_URL, **extra})


def new_bucket(s3, label: str) -> str:
    name = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def empty_and_delete_bucket(s3, bucket: str) -> None:
    """Delete every object, then the bucket (keeps the moto server's memory flat between runs)."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", ())]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


class S3Calls:
    """Counts the HTTP requests a client really sends to S3 (botocore's before-send, so retries count and
    presigned URLs, which send nothing, do not), by operation; and the keys sent in DeleteObjects."""

    def __init__(self, client) -> None:
        self.counts: dict[str, int] = {}
        self.deleted_keys = 0
        client.meta.events.register("before-send.s3.*", self._sent)
        client.meta.events.register("provide-client-params.s3.DeleteObjects", self._deleting)

    def _sent(self, event_name: str, **_: Any) -> None:
        name = event_name.rsplit(".", 1)[-1]
        self.counts[name] = self.counts.get(name, 0) + 1

    def _deleting(self, params, **_: Any) -> None:
        self.deleted_keys += len(params.get("Delete", {}).get("Objects", ()))

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)

    def reset(self) -> None:
        self.counts.clear()
        self.deleted_keys = 0


# -- processes ---------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's own peak resident set size since it started: VmHWM, the high-water mark of its
    address space (reset by `reset_peak_rss`).

    Not ru_maxrss: for a process started by fork+exec, Linux carries the parent's high-water mark into
    the child's ru_maxrss at exec (signal->maxrss is set from the old mm), so a worker started by a
    bench that holds 300 MB of generated content would report 300 MB whatever it did itself.
    """
    return window_peak_rss_mb()


def ru_maxrss_mb() -> float:
    """getrusage's ru_maxrss (KiB on Linux), kept for reference only: see `peak_rss_mb`."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _status_mb(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


def rss_now_mb() -> float:
    return _status_mb("VmRSS")


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (VmHWM), so that `window_peak_rss_mb`
    is the peak of what follows alone (imports and client set-up excluded)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def window_peak_rss_mb() -> float:
    return _status_mb("VmHWM")


def run_worker(mode: str, spec: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run `python -m bench.worker MODE SPEC` in a fresh interpreter and return its JSON result."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "include")]) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    proc = subprocess.run([sys.executable, "-m", "bench.worker", mode, json.dumps(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker {mode} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"bench worker {mode} printed no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


# -- statistics ----------------------------------------------------------------------------------------

def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values: Iterable[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = a + b·x, with R²."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"intercept": a, "slope": b, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


def power_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares of log y = log c + k·log x: y = c·x^k, with R² in log space."""
    fit = linear_fit([math.log(x) for x in xs], [math.log(y) for y in ys])
    return {"coefficient": math.exp(fit["intercept"]), "exponent": fit["slope"], "r2_log": fit["r2"]}


def timer() -> float:
    return time.perf_counter()
