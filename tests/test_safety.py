"""Safe in real operation (issue 11): timeouts on MySQL, S3 and the CDN API fail a build in bounded time and the plan
is retried by a later run (nothing lost); a hung build's lock expires; the nightly rebuild keeps the same records as
the sync; failures reach the notifier, and only when it is configured.

Real MariaDB, Redis and moto S3; the clients are made by `memora_cdn.orchestration.connections` from Airflow
connections in the environment (`AIRFLOW_CONN_*`), exactly as in a task."""
from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from datetime import timedelta

import pytest

from memora_cdn import limits
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.publish import list_prefix
from memora_cdn.ops import status as ops_status
from memora_cdn.orchestration import connections, tasks
from memora_cdn.tracking import sync_log
from memora_cdn.tracking.registry import LockLost
from memora_cdn.tracking.run import PlanDeadLettered, run_plan
from memora_cdn.tracking.sync import claim_batch, purge, purge_requests, waiting
from memora_cdn_demo import content as demo
from tests.support import AWS_KEY, AWS_SECRET, REDIS_PORT, mysql_airflow_conn, mysql_connect

P1, P2 = "PLAN-2026-0001", "PLAN-2026-0002"


@pytest.fixture
def demo_db(content_db):
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale()))
    return name, conn


class Blackhole:
    """A TCP server that accepts connections and never answers (a hung S3 endpoint or CDN API)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
                self.accepted.append(conn)  # kept open, never read, never answered
            except OSError:
                continue

    def __enter__(self) -> "Blackhole":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(2)
        for conn in self.accepted:
            conn.close()
        self.listener.close()


def airflow_env(monkeypatch, db_name: str, s3_endpoint: str, settings, mysql_extra=None) -> None:
    conn = json.loads(mysql_airflow_conn(db_name))
    conn["extra"].update(mysql_extra or {})
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_MYSQL", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_REDIS", json.dumps({"conn_type": "redis", "host": "127.0.0.1",
                                                                "port": REDIS_PORT, "extra": {"db": 15}}))
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_S3", json.dumps({"conn_type": "aws", "login": AWS_KEY, "password": AWS_SECRET,
                                                             "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}}))
    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS", json.dumps(settings.as_dict()))


def latest_row(db, plan_id):
    db.commit()  # a fresh snapshot: the build wrote through its own connection
    return sync_log.recent(db, plan_id=plan_id)[0]


def assert_retry_scheduled(db, plan_id, run_id):
    row = latest_row(db, plan_id)
    assert row["name"] == sync_log.row_name(run_id, plan_id)
    assert row["status"] == "Failed" and row["next_retry_at"] is not None, row
    return row


# -- timeouts ---------------------------------------------------------------------------------------------


def test_a_mysql_query_that_hangs_fails_the_build_within_its_read_timeout_and_the_plan_is_retried(
        demo_db, registry, s3_server, s3, settings, monkeypatch):
    """Another session holds a write lock on the plan table, so the build's read waits on the server forever: the
    read_timeout of the `memora_mysql` connection (extra, 2 s here; 60 s by default) fails it, the failure is
    recorded through a new connection, and the next run after the backoff publishes the plan."""
    db_name, db = demo_db
    build_plan(P1, db=db, s3=s3, settings=settings)
    airflow_env(monkeypatch, db_name, s3_server.endpoint, settings, mysql_extra={"read_timeout": 2})
    assert connections.mysql_timeouts({"read_timeout": 2}) == {"connect_timeout": 10, "read_timeout": 2, "write_timeout": 60}
    registry.mark([P1])
    plan = claim_batch(registry, db, s3, settings, "run-1", "Scheduler").plans[0]
    db.commit()  # this session's open transaction would hold a metadata lock on the plan table
    locker = mysql_connect(db_name)
    locker.cursor().execute("LOCK TABLES `tabMemora Academic Plan` WRITE")
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="Lost connection"):
            tasks.sync_build(plan, run_id="run-1", final_try=True)
        elapsed = time.monotonic() - started
    finally:
        locker.cursor().execute("UNLOCK TABLES")
        locker.close()
    assert elapsed < 10, elapsed
    assert_retry_scheduled(db, P1, "run-1")
    assert registry.claimed() == {} and not registry.is_locked(P1)
    # the retry is due (base delay shortened here), the next run takes it
    sync_log_row = sync_log.row_name("run-1", P1)
    db.cursor().execute("UPDATE `tabCDN Sync Log` SET next_retry_at = NOW() - INTERVAL 1 SECOND WHERE name = %s",
                        (sync_log_row,))
    db.commit()
    assert waiting(registry, db).due_retries == 1
    plan = claim_batch(registry, db, s3, settings, "run-2", "Scheduler").plans[0]
    assert tasks.sync_build(plan, run_id="run-2", final_try=True)["status"] in ("published", "unchanged")
    assert latest_row(db, P1)["status"] == "Success"


def test_an_s3_endpoint_that_never_answers_fails_the_build_in_bounded_time(
        demo_db, registry, s3_server, s3, settings, monkeypatch):
    db_name, db = demo_db
    monkeypatch.setattr(limits, "S3_READ_TIMEOUT", 1)
    monkeypatch.setattr(limits, "S3_CONNECT_TIMEOUT", 1)
    with Blackhole() as hole:
        airflow_env(monkeypatch, db_name, hole.url, settings)
        hung = connections.s3_client(settings)
        assert hung.meta.config.read_timeout == 1 and hung.meta.config.connect_timeout == 1
        assert hung.meta.config.retries["mode"] == "standard"
        registry.mark([P1])
        claim_batch(registry, db, s3, settings, "run-1", "Scheduler")
        started = time.monotonic()
        with pytest.raises(Exception, match="timeout|Read timed out"):
            run_plan(P1, run_id="run-1", triggered_by="Scheduler", registry=registry, db=db, s3=hung, settings=settings,
                     base_delay=timedelta(0))
        elapsed = time.monotonic() - started
        assert hole.accepted
    assert elapsed < 15, elapsed  # 3 attempts of a 1 s read timeout, with backoff
    assert_retry_scheduled(db, P1, "run-1")
    assert registry.claimed() == {} and not registry.is_locked(P1)
    plan = claim_batch(registry, db, s3, settings, "run-2", "Scheduler").plans  # the retry is due at once
    assert [p["plan_id"] for p in plan] == [P1]
    assert run_plan(P1, run_id="run-2", triggered_by="Scheduler", registry=registry, db=db, s3=s3,
                    settings=settings)["status"] == "published"
    assert list_prefix(s3, settings.bucket, keys.plan_prefix(P1))


def test_a_cdn_api_that_never_answers_does_not_hold_the_build_and_the_purge_is_done_later(
        demo_db, registry, s3, settings, cloudflare, monkeypatch):
    """The build publishes, its own purge gives up after the purger's deadline, and the run's purge task (or a
    later one) purges the same URLs once the API answers: the upload is never rolled back, no URL is lost."""
    from memora_cdn.purge import CloudflarePurger

    _, db = demo_db
    with Blackhole() as hole:
        hung = CloudflarePurger(hole.url, "cf-test-token-123", "zone-abc", timeout=1, deadline_seconds=3)
        registry.mark([P1])
        claim_batch(registry, db, s3, settings, "run-1", "Scheduler")
        started = time.monotonic()
        summary = run_plan(P1, run_id="run-1", triggered_by="Scheduler", registry=registry, db=db, s3=s3,
                           settings=settings, purger=lambda: hung)
        elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    assert summary["status"] == "published" and summary["purged"] is False
    assert sync_log.recent(db, plan_id=P1)[0]["status"] == "Success"
    report = purge(CloudflarePurger(cloudflare.url, "cf-test-token-123", "zone-abc", files_per_request=30),
                   settings, purge_requests([summary]))
    assert report.urls_purged + report.prefixes_purged > 0
    assert sorted(cloudflare.purged_files) == sorted(f"{settings.cdn_base_url}/{k}" for k in summary["purge_keys"])


def test_the_cloudflare_purger_made_from_the_connection_has_timeouts(monkeypatch):
    from memora_cdn.purge import purger_for

    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_CDN_PURGE", json.dumps({
        "conn_type": "http", "host": "https://api.cloudflare.com", "password": "t0ken", "extra": {"zone_id": "z"}}))
    purger = purger_for("cloudflare")
    assert 0 < purger.timeout <= 30 and 0 < purger.deadline_seconds <= 60


def test_a_hung_builds_lock_expires_after_its_budget(registry):
    """The renewal stops once the build has run past its budget: another run can build the plan while the hung
    build still runs, and the hung build, if it ever ends, fails with LockLost (its plan is rebuilt later)."""
    with pytest.raises(LockLost):
        with registry.lock(P1, ttl_seconds=2, max_hold_seconds=1):
            deadline = time.monotonic() + 10
            while registry.is_locked(P1) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not registry.is_locked(P1)  # expired within budget + TTL
            with registry.lock(P1, ttl_seconds=2):
                pass  # another build takes it
    # without a budget a long build keeps its lock
    with registry.lock(P2, ttl_seconds=1):
        time.sleep(2.5)
        assert registry.is_locked(P2)


def test_an_airflow_task_timeout_is_recorded_as_a_failure_with_its_retry(demo_db, registry, s3, settings, monkeypatch):
    """execution_timeout raises AirflowTaskTimeout (a BaseException) inside the build: it is a failure like any other."""
    from airflow.sdk.exceptions import AirflowTaskTimeout

    _, db = demo_db

    def hang(*args, **kwargs):
        raise AirflowTaskTimeout("Timeout, PID: 1")

    monkeypatch.setattr("memora_cdn.tracking.run.build_plan", hang)
    registry.mark([P1])
    claim_batch(registry, db, s3, settings, "run-1", "Scheduler")
    with pytest.raises(AirflowTaskTimeout):
        run_plan(P1, run_id="run-1", triggered_by="Scheduler", registry=registry, db=db, s3=s3, settings=settings,
                 base_delay=timedelta(seconds=300))
    row = assert_retry_scheduled(db, P1, "run-1")
    assert "AirflowTaskTimeout" in row["error_message"]
    assert 299 <= (row["next_retry_at"] - row["completed_at"]).total_seconds() <= 301
    assert registry.claimed() == {} and not registry.is_locked(P1)


def test_every_task_has_a_timeout_and_the_sync_run_is_bounded():
    import runpy

    sync = runpy.run_path("dags/memora_cdn_sync.py")["memora_cdn_sync"]()
    nightly = runpy.run_path("dags/memora_cdn_full_rebuild.py")["memora_cdn_full_rebuild"]()
    for dag in (sync, nightly):
        for t in dag.tasks:
            assert t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=1), (dag.dag_id, t.task_id)
            assert t.retries <= 1 and t.retry_delay <= timedelta(seconds=30), (dag.dag_id, t.task_id)
    assert sync.dagrun_timeout == timedelta(seconds=limits.SYNC_DAGRUN_TIMEOUT) <= timedelta(minutes=30)
    assert sync.get_task("build").execution_timeout == timedelta(seconds=limits.BUILD_TIMEOUT)
    assert not sync.deadline  # Airflow 3.3.2's deadline alerts break clearing a task and `dags test` (docs/operations.md)


# -- one build path: the nightly run keeps the sync's records -----------------------------------------------


def test_the_nightly_run_keeps_the_same_records_as_the_sync(demo_db, registry, s3_server, s3, settings, monkeypatch):
    db_name, db = demo_db
    monkeypatch.setattr(tasks, "load_settings", lambda: settings)
    monkeypatch.setattr(tasks, "s3_client", lambda _settings: s3)
    monkeypatch.setattr(tasks, "registry", lambda required=True: registry)
    monkeypatch.setattr(tasks, "mysql_connection", lambda: mysql_connect(db_name))
    for plan_id in (P1, P2):  # both dead-lettered after earlier failures
        row = sync_log.start(db, f"old-{plan_id}", plan_id, "Scheduler", retry_count=3)
        sync_log.finish(db, row, "Dead Letter", error="AccessDenied")
        registry.dead_letter(plan_id, "AccessDenied")
    # P1 repaired by the sync (an operator's retry), P2 by the nightly run
    registry.retry_dead_letter(P1)
    plan = claim_batch(registry, db, s3, settings, "sync-1", "Scheduler").plans[0]
    synced = tasks.sync_build(plan, run_id="sync-1", final_try=True)
    nightly = tasks.build_plans([P2], run_id="scheduled__nightly")
    by_plan = {P1: synced, P2: nightly[0]}
    records = {}
    for plan_id, run_id in ((P1, "sync-1"), (P2, "scheduled__nightly")):
        row = latest_row(db, plan_id)
        assert row["name"] == sync_log.row_name(run_id, plan_id)
        assert row["files_uploaded"] == by_plan[plan_id]["files_uploaded"] > 0
        records[plan_id] = {k: row[k] for k in ("status", "retry_count", "next_retry_at", "is_fallback", "error_message")}
    assert records[P1] == records[P2] == {"status": "Success", "retry_count": 0, "next_retry_at": None,
                                          "is_fallback": 0, "error_message": None}
    assert sync_log.recent(db, plan_id=P2)[0]["triggered_by"] == "Nightly"
    assert registry.dead_letters() == {}
    assert registry.redis.zscore("cdn_export:renewals", P2) is not None or by_plan[P2].get("renew_at") is None
    figures = {p["plan_id"]: p for p in ops_status.status(registry, db)["last_success"]}
    assert figures[P1]["last_success"] and figures[P2]["last_success"]
    assert figures[P1]["overdue"] is figures[P2]["overdue"] is False
    assert ops_status.status(registry, db)["dead_letter"] == []


def test_a_nightly_failure_schedules_the_sync_retry_and_its_last_one_dead_letters(
        demo_db, registry, s3, settings, monkeypatch):
    from dataclasses import replace

    db_name, db = demo_db
    broken = replace(settings, bucket="memora-no-such-bucket")
    monkeypatch.setattr(tasks, "load_settings", lambda: broken)
    monkeypatch.setattr(tasks, "s3_client", lambda _settings: s3)
    monkeypatch.setattr(tasks, "registry", lambda required=True: registry)
    monkeypatch.setattr(tasks, "mysql_connection", lambda: mysql_connect(db_name))
    monkeypatch.setattr("memora_cdn.tracking.run.retry_delay", lambda: timedelta(0))
    for attempt in range(4):
        with pytest.raises(tasks.PlanBuildsFailed) as failed:
            tasks.build_plans([P1], run_id=f"nightly-{attempt}")
        assert failed.value.dead_lettered == ([P1] if attempt == 3 else [])
    db.commit()
    rows = sync_log.recent(db, plan_id=P1)
    assert [r["status"] for r in rows][:2] == ["Dead Letter", "Failed"] and rows[0]["retry_count"] == 3
    assert P1 in registry.dead_letters()


# -- alerts -------------------------------------------------------------------------------------------------


class SmtpStandIn:
    """A minimal SMTP server that records the messages it is given."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 memora-test ESMTP\r\n")
                message = {"to": [], "data": ""}
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode().strip()
                    upper = cmd.upper()
                    if upper.startswith(("EHLO", "HELO")):
                        self.wfile.write(b"250 memora-test\r\n")
                    elif upper.startswith("RCPT TO"):
                        message["to"].append(cmd.split(":", 1)[1].strip(" <>"))
                        self.wfile.write(b"250 OK\r\n")
                    elif upper == "DATA":
                        self.wfile.write(b"354 go ahead\r\n")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk.decode("utf-8", "replace"))
                        message["data"] = outer.text("".join(data))
                        outer.messages.append(message)
                        message = {"to": [], "data": ""}
                        self.wfile.write(b"250 queued\r\n")
                    elif upper == "QUIT":
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 OK\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def text(raw: str) -> str:
        """Subject and decoded body parts of a MIME message."""
        import email

        msg = email.message_from_string(raw)
        parts = [str(msg["Subject"])]
        for part in msg.walk():
            if not part.is_multipart():
                parts.append(part.get_payload(decode=True).decode("utf-8", "replace"))
        return "\n".join(parts)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def smtp(monkeypatch):
    standin = SmtpStandIn()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": standin.port, "login": "", "password": "",
        "extra": {"from_email": "airflow@memora.test", "disable_ssl": True, "disable_tls": True}}))
    yield standin
    standin.close()


def test_a_dead_letter_and_a_failed_nightly_run_send_an_alert_when_configured(smtp, monkeypatch, settings):
    from dataclasses import replace

    from memora_cdn.orchestration import alerts

    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS",
                       json.dumps(replace(settings, alert_emails=("ops@memora.test",)).as_dict()))
    dead = PlanDeadLettered(P1, 4, "AccessDenied: https://key:hunter2@s3.example/x")
    assert alerts.build_failed({"exception": dead, "run_id": "scheduled__x", "dag_id": "memora_cdn_sync"}) is True
    assert alerts.build_failed({"exception": RuntimeError("a first failure, retried later")}) is False
    assert alerts.nightly_failed({"run_id": "scheduled__n", "dag_id": "memora_cdn_full_rebuild",
                                  "reason": "task_failure", "exception": RuntimeError("refused to remove 12 plans")})
    assert len(smtp.messages) == 2
    first, second = smtp.messages
    assert first["to"] == ["ops@memora.test"] and P1 in first["data"] and "hunter2" not in first["data"]
    assert "dead-lettered" in first["data"] and "nightly run scheduled__n failed" in second["data"]
    assert "refused to remove 12 plans" in second["data"]


def test_alerts_are_off_without_alert_emails(smtp, monkeypatch, settings, caplog):
    from memora_cdn.orchestration import alerts

    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS", json.dumps(settings.as_dict()))
    assert alerts.build_failed({"exception": PlanDeadLettered(P1, 4, "x")}) is False
    assert alerts.nightly_failed({"run_id": "r"}) is False
    assert smtp.messages == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING") and "alert" in r.getMessage()]
