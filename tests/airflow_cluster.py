"""A real Airflow for end-to-end tests, driven only through its REST API v2 as the UI is.

`standalone(home, env)` starts `airflow standalone` (api-server, scheduler, dag-processor, triggerer, LocalExecutor)
in its own process group with a fresh SQLite metadata DB in `home`. `celery_cluster(home, env)` starts the
CeleryExecutor cluster of `make airflow-celery` (scripts/airflow_celery.sh: a fresh PostgreSQL database, Redis broker
database, api-server, scheduler, dag-processor, triggerer, two Celery workers `memora-worker-1`/`-2`). Both wait
until every component is healthy and both Memora DAGs are parsed, let the runs Airflow starts by itself (the
nightly rebuild when the DAG appears) finish, yield an `Airflow` REST client logged in as `ops`, and stop
everything afterwards. `memora_env` builds the connection and Variable environment of the Memora stack (the same
names as SPEC §10 and docker-compose.yaml).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import requests

from tests.support import PYTHONPATH, REDIS_PORT, REPO, free_port, mysql_airflow_conn

VENV_BIN = Path(sys.executable).parent
MEMORA_DAGS = ("memora_cdn_sync", "memora_cdn_full_rebuild")
CELERY_SCRIPT = REPO / "scripts" / "airflow_celery.sh"
CELERY_WORKERS = ("memora-worker-1", "memora-worker-2")
# PostgreSQL as scripts/services.sh sets it up (the role the cluster logs in with; it may create databases)
PG = dict(host=os.environ.get("MEMORA_PG_HOST", "127.0.0.1"), port=int(os.environ.get("MEMORA_PG_PORT", "5432")),
          user=os.environ.get("MEMORA_PG_USER", "airflow"), password=os.environ.get("MEMORA_PG_PASSWORD", "airflow"))


class Airflow:
    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.password = password
        self.session = requests.Session()

    def login(self) -> None:
        r = requests.post(f"{self.base}/auth/token", json={"username": "ops", "password": self.password}, timeout=30)
        r.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, **params):
        r = self.session.get(f"{self.base}/api/v2{path}", params=params, timeout=30)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict):
        r = self.session.post(f"{self.base}/api/v2{path}", json=body, timeout=30)
        assert r.status_code < 300, r.text
        return r.json()

    def patch(self, path: str, body: dict):
        r = self.session.patch(f"{self.base}/api/v2{path}", json=body, timeout=30)
        assert r.status_code < 300, r.text
        return r.json()

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", order_by="-run_after", limit=50)["dag_runs"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        raise AssertionError(f"{dag_id} {run_id} did not finish within {timeout} s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=200)["task_instances"]



def memora_env(*, db_name: str, redis_db: int, s3_endpoint: str, settings) -> dict[str, str]:
    """Connections and the settings Variable for a Memora stack on this machine (SPEC §10)."""
    return {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(db_name),
        "AIRFLOW_CONN_MEMORA_REDIS": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT,
                                                 "extra": {"db": redis_db}}),
        "AIRFLOW_CONN_MEMORA_S3": json.dumps({"conn_type": "aws", "login": "memora-test-key",
                                              "password": "memora-test-secret",
                                              "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict()),
    }


@contextmanager
def standalone(home: Path, env_extra: Mapping[str, str], *, pools: Mapping[str, int] | None = None,
               dags_folder: Path | None = None, expect_dags: tuple[str, ...] = MEMORA_DAGS,
               startup_timeout: float = 240) -> Iterator[Airflow]:
    """`airflow standalone` with Airflow's defaults except what `env_extra` sets (and ports, auth, paths).

    Nothing in the environment of the test process that starts with AIRFLOW or MEMORA leaks into it. `pools`
    are created before start (none by default: the DAGs must run on `default_pool` then)."""
    password = "e2e-" + os.urandom(6).hex()
    (home / "passwords.json").write_text(json.dumps({"ops": password}))
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA"))}
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        "PYTHONPATH": PYTHONPATH,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
    })
    env.update(env_extra)
    airflow = str(VENV_BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    for pool, slots in (pools or {}).items():
        subprocess.run([airflow, "pools", "set", pool, str(slots), "created by the test"], env=env, check=True,
                       capture_output=True, timeout=120)
    log_path = home / "standalone.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([airflow, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = Airflow(f"http://127.0.0.1:{api_port}", password)
    try:
        _settle(api, expect_dags, time.monotonic() + startup_timeout,
                lambda: proc.poll() is None, lambda: log_path.read_text()[-5000:])
        yield api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _settle(api: Airflow, expect_dags: tuple[str, ...], deadline: float, alive, logs) -> None:
    """Wait until scheduler, triggerer and dag-processor are healthy and `expect_dags` are parsed (unpaused), then
    for the runs the scheduler starts by itself (the nightly rebuild's latest interval) to finish."""
    while True:
        try:
            health = requests.get(f"{api.base}/api/v2/monitor/health", timeout=5).json()
            if all(health.get(c, {}).get("status") == "healthy" for c in ("scheduler", "triggerer", "dag_processor")):
                api.login()
                dags = {d["dag_id"]: d for d in api.get("/dags", limit=100)["dags"]}
                if set(expect_dags) <= set(dags):
                    break
        except (requests.RequestException, ValueError, KeyError):
            pass
        assert alive(), logs()
        assert time.monotonic() < deadline, "Airflow did not come up: " + logs()
        time.sleep(3)
    for dag_id in expect_dags:
        assert not dags[dag_id]["is_paused"], dag_id
    time.sleep(10)  # let the scheduler create the runs it starts by itself, then wait for them
    if "memora_cdn_full_rebuild" in expect_dags:
        for earlier in api.runs("memora_cdn_full_rebuild"):  # the nightly run Airflow starts when the DAG appears
            api.wait_run("memora_cdn_full_rebuild", earlier["dag_run_id"], timeout=600)


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


@contextmanager
def celery_cluster(home: Path, env_extra: Mapping[str, str], *, build_pool_slots: int = 4,
                   worker_concurrency: int = 4, broker_db: int = 11, expect_dags: tuple[str, ...] = MEMORA_DAGS,
                   startup_timeout: float = 420) -> Iterator[Airflow]:
    """The CeleryExecutor cluster of `make airflow-celery`, started with scripts/airflow_celery.sh itself (state in
    `home`), on a fresh PostgreSQL database and the broker database `broker_db` of the test Redis. The script
    creates the build pool (`[memora_cdn] build_pool`, `build_pool_slots`). Nothing in the environment of the test
    process that starts with AIRFLOW or MEMORA leaks into it; `env_extra` comes last."""
    import redis

    pg_db = "memora_af_" + os.urandom(5).hex()
    broker = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=broker_db)
    broker.flushdb()  # no Celery message of an earlier cluster may reach these workers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA"))}
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        "PYTHONPATH": PYTHONPATH,
        "MEMORA_VENV": str(VENV_BIN.parent),
        "MEMORA_CELERY_STATE": str(home),
        "MEMORA_CELERY_PG_DB": pg_db,
        "MEMORA_CELERY_REDIS_PORT": str(REDIS_PORT),
        "MEMORA_CELERY_REDIS_DB": str(broker_db),
        "MEMORA_CELERY_STARTUP_TIMEOUT": str(int(startup_timeout)),
        "MEMORA_CDN_BUILD_POOL_SLOTS": str(build_pool_slots),
        "MEMORA_PG_HOST": PG["host"], "MEMORA_PG_PORT": str(PG["port"]),
        "MEMORA_PG_USER": PG["user"], "MEMORA_PG_PASSWORD": PG["password"],
        "AIRFLOW__API__PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
    })
    env.update(env_extra)
    script = ["bash", str(CELERY_SCRIPT)]
    logs = lambda: "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((home / "logs").glob("*.log")))
    try:
        started = subprocess.run(script + ["start"], env=env, capture_output=True, text=True,
                                 timeout=startup_timeout + 120)
        assert started.returncode == 0, f"scripts/airflow_celery.sh start failed:\n{started.stdout}\n{started.stderr}"
        password = json.loads((home / "passwords.json").read_text())["ops"]
        api = Airflow(f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}", password)
        status = lambda: "stopped" not in subprocess.run(script + ["status"], env=env, capture_output=True,
                                                         text=True, timeout=60).stdout
        _settle(api, expect_dags, time.monotonic() + startup_timeout, status, logs)
        yield api
    finally:
        subprocess.run(script + ["stop"], env=env, capture_output=True, timeout=300)
        broker.flushdb()
        _pg_admin(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')
