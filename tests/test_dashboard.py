"""The Memora CDN dashboard plugin, mounted by Airflow's own API server app, against real services.

Airflow side: a temporary AIRFLOW_HOME with a migrated SQLite metadata DB, the simple auth manager with
two users (admin `ops`, viewer `viewer`), tokens from `POST /auth/token` (Airflow's JWT signer), and
`create_app()` loading `plugins/` as the API server does. Engine side: MariaDB (scratch database with
the demo content), Redis db 15 and the moto S3 server, reached by the plugin through the same
`AIRFLOW_CONN_*` / `AIRFLOW_VAR_*` settings as the DAGs. The page is driven in Debian's headless
Chromium (selenium + chromedriver) against the app served by uvicorn.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from memora_cdn_demo import content as demo
from memora_cdn.tracking import sync_log
from memora_cdn.tracking.registry import DEAD_LETTER, PENDING
from tests.support import PYTHONPATH, REDIS_PORT, REPO, free_port, mysql_airflow_conn

P1, P2 = "PLAN-2026-0001", "PLAN-2026-0002"
PASSWORDS = {"ops": "ops-password-for-tests", "viewer": "viewer-password-for-tests"}
CSRF = {"X-Requested-By": "memora-cdn-dashboard"}
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@dataclass
class Airflow:
    app: object
    client: object
    admin: str  # bearer tokens from POST /auth/token
    viewer: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """Airflow's API server app (`create_app`) with the plugins folder, a metadata DB and the sync DAG in it."""
    home = tmp_path_factory.mktemp("airflow_dashboard")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "ops:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "memora-dashboard-tests-jwt-secret-" + "0123456789abcdef" * 4,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    try:
        from airflow import settings as airflow_settings

        airflow_settings.PLUGINS_FOLDER = env["AIRFLOW__CORE__PLUGINS_FOLDER"]
        if airflow_settings.SQL_ALCHEMY_CONN != env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:  # Airflow imported earlier
            airflow_settings.configure_vars()
            airflow_settings.reconfigure_orm()
        from airflow.utils.db import initdb

        initdb()  # what `airflow db migrate` does for a new database, without a second Airflow start-up
        _register_sync_dag()

        from airflow.api_fastapi.app import create_app, purge_cached_app
        from fastapi.testclient import TestClient

        app = create_app(apps="core")  # the API server's public API, auth and plugins (no task execution API)
        assert any(getattr(r, "path", None) == "/memora-cdn" for r in app.routes), "the plugin's app is not mounted"
        client = TestClient(app)
        tokens = {}
        for user, password in PASSWORDS.items():
            answer = client.post("/auth/token", json={"username": user, "password": password})
            assert answer.status_code == 201, answer.text
            tokens[user] = answer.json()["access_token"]
        yield Airflow(app, client, tokens["ops"], tokens["viewer"])
        purge_cached_app()
    finally:
        patch.undo()


def _register_sync_dag() -> None:
    """What the DAG processor does for `memora_cdn_sync`, so that it can be triggered."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(REPO / "dags" / "memora_cdn_sync.py"), bundle_path=REPO / "dags", bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.fixture
def stack(airflow, content_db, registry, s3_server, settings, monkeypatch):
    """Demo content in a scratch database; the plugin reaches it, Redis db 15 and S3 through AIRFLOW_CONN_*."""
    name, db = content_db
    demo.load(db, demo.generate(demo.DemoScale(), media_bucket=settings.media_bucket))
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_MYSQL", mysql_airflow_conn(name))
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_REDIS", json.dumps(
        {"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT, "extra": {"db": 15}}))
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_S3", s3_server.airflow_conn())
    monkeypatch.setenv("AIRFLOW_VAR_MEMORA_CDN_SETTINGS", json.dumps(settings.as_dict()))
    return db


def _log_row(db, run_id: str, plan_id: str, status: str, *, minutes_ago: float = 5, seconds: float = 2.5,
             uploaded: int = 0, deleted: int = 0, error: str | None = None, tries: int = 1) -> str:
    """A sync log row as a sync run writes it (engine functions), then moved back in time."""
    name = sync_log.start(db, run_id, plan_id, "Scheduler", retry_count=tries - 1)
    sync_log.finish(db, name, status, uploaded=uploaded, deleted=deleted, error=error)
    end = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=minutes_ago)
    db.cursor().execute("UPDATE `tabCDN Sync Log` SET started_at = %s, completed_at = %s, creation = %s WHERE name = %s",
                        (end - timedelta(seconds=seconds), end, end - timedelta(seconds=seconds), name))
    db.commit()
    return name


# -- authentication ------------------------------------------------------------------------------------------

ROUTES = [("GET", "/memora-cdn/"), ("GET", "/memora-cdn/api/status"), ("GET", "/memora-cdn/api/sync-log"),
          ("POST", f"/memora-cdn/api/plans/{P1}/rebuild"), ("POST", f"/memora-cdn/api/dead-letter/{P1}/retry")]


def test_every_route_refuses_requests_without_a_valid_airflow_token(airflow, stack, registry):
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    expired = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="ops", role="admin"),
                                              expiration_time_in_seconds=-3600)
    forged = airflow.admin[:-6] + ("AAAAAA" if not airflow.admin.endswith("AAAAAA") else "BBBBBB")
    for method, path in ROUTES:
        assert airflow.client.request(method, path).status_code == 401, path
        assert airflow.client.request(method, path, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403, path
        assert airflow.client.request(method, path, headers=airflow.auth(forged)).status_code == 403, path
        assert airflow.client.request(method, path, headers=airflow.auth(expired)).status_code == 401, path
    assert registry.pending_count() == 0  # nothing was marked by the refused POSTs

    # a browser without a session gets a small page that points to Airflow's login, still a 401
    page = airflow.client.get("/memora-cdn/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "Sign in to Airflow" in page.text

    # the real token, from Airflow's /auth/token: every read works, for the viewer too
    for token in (airflow.admin, airflow.viewer):
        for method, path in ROUTES[:3]:
            assert airflow.client.get(path, headers=airflow.auth(token)).status_code == 200, path
    # the viewer may look but not act (Airflow's DAG permissions on memora_cdn_sync)
    refused = airflow.client.post(f"/memora-cdn/api/plans/{P1}/rebuild", headers=airflow.auth(airflow.viewer))
    assert refused.status_code == 403 and refused.json() == {"detail": "Forbidden"}
    assert registry.pending_count() == 0


def test_the_ui_session_cookie_works_and_cookie_posts_need_the_csrf_header(airflow, stack, registry):
    from fastapi.testclient import TestClient

    browser = TestClient(airflow.app, cookies={"_token": airflow.admin})
    assert browser.get("/memora-cdn/api/status").status_code == 200
    refused = browser.post(f"/memora-cdn/api/plans/{P1}/rebuild")
    assert refused.status_code == 403 and "X-Requested-By" in refused.json()["detail"]
    assert registry.pending_count() == 0
    assert browser.post(f"/memora-cdn/api/plans/{P1}/rebuild", headers=CSRF).status_code == 200
    assert registry.pending() == {P1}


# -- the API -------------------------------------------------------------------------------------------------


def test_status_shows_pending_claims_dead_letters_failures_and_last_success(airflow, stack, registry):
    db = stack
    registry.mark([P1, P2])
    claim = registry.claim("scheduled__2026-11-29T10:05:00+00:00", batch_size=1)
    registry.dead_letter(P2, "ClientError: NoSuchBucket while uploading (https://user:hunter2@s3.example/x)")
    _log_row(db, "run-a", P1, "Success", minutes_ago=30, uploaded=12, deleted=1)
    _log_row(db, "run-b", P2, "Failed", minutes_ago=20, error="OperationalError: lost connection")
    _log_row(db, "run-c", P2, "Dead Letter", minutes_ago=10, error="NoSuchBucket", tries=4)
    _log_row(db, "run-old", P2, "Failed", minutes_ago=60 * 30, error="too old to count")
    _log_row(db, "run-d", P2, "Success", minutes_ago=60 * 26)  # more than 24 h ago: overdue

    answer = airflow.client.get("/memora-cdn/api/status", headers=airflow.auth())
    assert answer.status_code == 200, answer.text
    status = answer.json()
    assert status["pending_plans"] == 1
    assert status["claimed"] == [{"run": "scheduled__2026-11-29T10:05:00+00:00", "claim": claim.key,
                                  "since": status["claimed"][0]["since"], "plans": claim.plans}]
    assert status["claimed"][0]["since"].endswith("Z")
    [dead] = status["dead_letter"]
    assert dead["plan_id"] == P2 and "NoSuchBucket" in dead["error"] and dead["failed_at"].endswith("Z")
    assert "hunter2" not in answer.text  # secrets never shown
    assert [(r["plan_id"], r["status"]) for r in status["recent_failures"]] == [(P2, "Dead Letter"), (P2, "Failed")]
    by_plan = {p["plan_id"]: p for p in status["last_success"]}
    assert by_plan[P1]["overdue"] is False and by_plan[P1]["last_success"].endswith("Z")
    assert by_plan[P2]["overdue"] is True and by_plan[P2]["last_success"]
    assert "علمي" in by_plan[P1]["title"]  # Arabic titles arrive intact
    assert status["overdue_plans"] == 1


def test_sync_log_filters_and_refuses_bad_parameters_with_a_clear_message(airflow, stack):
    db = stack
    _log_row(db, "run-a", P1, "Success", uploaded=7, deleted=2, seconds=3.25)
    _log_row(db, "run-b", P2, "Failed", error="boom")
    get = lambda query: airflow.client.get(f"/memora-cdn/api/sync-log{query}", headers=airflow.auth())  # noqa: E731

    everything = get("").json()
    assert everything["count"] == 2 and everything["limit"] == 50
    [row] = get(f"?plan_id={P1}").json()["rows"]
    assert (row["status"], row["files_uploaded"], row["files_deleted"], row["duration_seconds"]) == ("Success", 7, 2, 3.25)
    assert row["triggered_by"] == "Scheduler" and row["started_at"].endswith("Z")
    assert [r["plan_id"] for r in get("?status=Failed").json()["rows"]] == [P2]
    assert get(f"?plan_id={P2}&status=Success").json()["rows"] == []
    assert get("?limit=1").json()["count"] == 1

    for query, words in [("?limit=501", "from 1 to 500"), ("?limit=0", "from 1 to 500"), ("?limit=many", "integer"),
                         ("?status=Exploded", "status must be one of"), ("?plan_id=" + "x" * 141, "cannot be used")]:
        answer = get(query)
        assert answer.status_code == 422 and words in answer.json()["detail"], (query, answer.text)


def test_rebuild_marks_the_plan_and_can_trigger_the_sync_dag(airflow, stack, registry, s3, settings):
    post = lambda path, token=None: airflow.client.post(path, headers=airflow.auth(token))  # noqa: E731

    answer = post(f"/memora-cdn/api/plans/{P1}/rebuild")
    assert answer.status_code == 200, answer.text
    assert answer.json()["marked"] == [P1] and answer.json()["dag_run"] is None and registry.pending() == {P1}

    unknown = post("/memora-cdn/api/plans/PLAN-1999-0000/rebuild")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "unknown plan: PLAN-1999-0000"
    # any name Frappe allows is a plan name (keys encode it); one longer than Frappe's 140 characters is not
    malformed = post("/memora-cdn/api/plans/" + "x" * 141 + "/rebuild")
    assert malformed.status_code == 422 and "not plan names: 'xxxx" in malformed.json()["detail"]
    assert post("/memora-cdn/api/plans/has%20space/rebuild").status_code == 404  # a valid name, no such plan
    assert registry.pending() == {P1}

    # trigger=true: a manual memora_cdn_sync run, created in-process through Airflow's trigger_dag
    triggered = post(f"/memora-cdn/api/plans/{P2}/rebuild?trigger=true")
    assert triggered.status_code == 200, triggered.text
    run = triggered.json()["dag_run"]
    assert run["dag_id"] == "memora_cdn_sync" and run["state"] == "queued"
    assert registry.pending() == {P1, P2}
    runs = airflow.client.get("/api/v2/dags/memora_cdn_sync/dagRuns", headers=airflow.auth()).json()["dag_runs"]
    mine = [r for r in runs if r["dag_run_id"] == run["run_id"]]
    assert mine and mine[0]["conf"] == {"plans": [P2]} and mine[0]["run_type"] == "manual"
    assert mine[0]["triggering_user_name"] == "ops"

    # a plan deleted from the database whose files are still in the bucket may be rebuilt (that removes them)
    from memora_cdn.engine.build import build_plan

    build_plan(P2, db=stack, s3=s3, settings=settings)
    stack.cursor().execute("DELETE FROM `tabMemora Academic Plan` WHERE name = %s", (P2,))
    stack.commit()
    assert post(f"/memora-cdn/api/plans/{P2}/rebuild").status_code == 200


def test_retry_moves_a_dead_letter_back_to_pending(airflow, stack, registry):
    registry.dead_letter(P1, "boom")
    answer = airflow.client.post(f"/memora-cdn/api/dead-letter/{P1}/retry", headers=airflow.auth())
    assert answer.status_code == 200 and answer.json() == {"retried": P1, "pending_plans": 1}
    assert registry.dead_letters() == {} and registry.pending() == {P1}

    again = airflow.client.post(f"/memora-cdn/api/dead-letter/{P1}/retry", headers=airflow.auth())
    assert again.status_code == 404 and again.json()["detail"] == f"plan {P1} is not in the dead letter"
    registry.redis.delete(PENDING)
    assert airflow.client.post(f"/memora-cdn/api/dead-letter/{P2}/retry", headers=airflow.auth()).status_code == 404
    assert registry.pending_count() == 0  # a refused retry adds nothing
    bad = airflow.client.post("/memora-cdn/api/dead-letter/" + "x" * 141 + "/retry", headers=airflow.auth())
    assert bad.status_code == 422 and "cannot be used in a bucket key" in bad.json()["detail"]


def test_a_service_that_is_down_is_a_503_that_names_it_without_secrets(airflow, stack, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_MYSQL", json.dumps(
        {"conn_type": "mysql", "host": "127.0.0.1", "port": free_port(), "login": "root", "password": "hunter2-db",
         "schema": "memora"}))
    answer = airflow.client.get("/memora-cdn/api/sync-log", headers=airflow.auth())
    assert answer.status_code == 503 and "content database" in answer.json()["detail"], answer.text
    assert "hunter2" not in answer.text
    monkeypatch.delenv("AIRFLOW_CONN_MEMORA_REDIS")
    answer = airflow.client.get("/memora-cdn/api/status", headers=airflow.auth())
    assert answer.status_code == 503 and "memora_redis" in answer.json()["detail"], answer.text


def test_the_page_is_self_contained_and_locked_down(airflow, stack):
    page = airflow.client.get("/memora-cdn/", headers=airflow.auth())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'nonce-" in csp and "unsafe-inline" not in csp
    assert "{{" not in page.text and 'data-api="/memora-cdn/api"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN assets
    assert 'dir: "auto"' in page.text and "Noto Sans Arabic" in page.text


_IMPORT_PROBE = """
import socket, sys, time
import airflow.plugins_manager  # what every Airflow process has before it loads plugins
def refuse(*args, **kwargs):
    raise AssertionError("network I/O while importing the plugin")
socket.socket.connect = refuse
socket.create_connection = refuse
import importlib.util
spec = importlib.util.spec_from_file_location("memora_cdn_dashboard", "plugins/memora_cdn_dashboard.py")
plugin = importlib.util.module_from_spec(spec)
started = time.monotonic()
spec.loader.exec_module(plugin)
seconds = time.monotonic() - started
heavy = [m for m in sys.modules if m.startswith(("memora_cdn", "redis", "MySQLdb", "boto3", "botocore"))
         or m == "airflow.api_fastapi.core_api.security"]
assert not heavy, heavy
assert plugin.MemoraCdnDashboardPlugin.fastapi_apps[0]["app"] is plugin.app
print("PROBE", round(seconds, 2))
"""


def test_importing_the_plugin_does_no_io_and_loads_nothing_heavy():
    """Every Airflow process, task runners included, imports the plugins folder: no I/O, no engine, no
    Airflow security module (over a second) at import; those come with the first request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(PYTHONPATH=PYTHONPATH, AIRFLOW_HOME=tempfile.mkdtemp(), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW_CONN_MEMORA_REDIS="redis://127.0.0.1:1/0")
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "PROBE" in done.stdout, done.stderr[-3000:]
    plugin = __import__("memora_cdn_dashboard")  # loaded by create_app from the plugins folder
    assert plugin.MemoraCdnDashboardPlugin.external_views == [
        {"name": "Memora CDN", "href": "/memora-cdn/", "destination": "nav", "url_route": "memora-cdn"}]


# -- the page in a browser -----------------------------------------------------------------------------------


@pytest.fixture
def served(airflow):
    """The Airflow API server app on 127.0.0.1:<free port> (uvicorn in a thread)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(airflow.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1360,1500", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_dashboard_in_chromium_shows_a_dead_letter_and_retry_clears_it(airflow, stack, registry, served, chromium,
                                                                             tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    db = stack
    _log_row(db, "scheduled__2026-11-29T09:00:00+00:00", P1, "Success", minutes_ago=42, uploaded=63, seconds=4.2)
    _log_row(db, "scheduled__2026-11-29T10:00:00+00:00", P1, "Success", minutes_ago=12, uploaded=3, deleted=1, seconds=1.3)
    _log_row(db, "scheduled__2026-11-29T10:10:00+00:00", P2, "Failed", minutes_ago=8, seconds=0.8,
             error="ClientError: An error occurred (SlowDown) when calling the PutObject operation")
    _log_row(db, "scheduled__2026-11-29T10:20:00+00:00", P2, "Dead Letter", minutes_ago=3, seconds=0.9, tries=4,
             error="ClientError: An error occurred (NoSuchBucket) when calling the PutObject operation")
    _log_row(db, "scheduled__2026-11-28T08:00:00+00:00", P2, "Success", minutes_ago=60 * 27, uploaded=64, seconds=4.9)
    registry.dead_letter(P2, "ClientError: An error occurred (NoSuchBucket) when calling the PutObject operation")
    registry.mark([P1])
    registry.claim("scheduled__2026-11-29T10:25:00+00:00", batch_size=5)
    registry.mark([P2])

    chromium.get(served + "/memora-cdn/no-such-page")  # same origin, so the session cookie can be set
    chromium.add_cookie({"name": "_token", "value": airflow.admin, "path": "/"})
    chromium.get(served + "/memora-cdn/")
    wait = WebDriverWait(chromium, 15)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#dead tr[data-plan="{P2}"]'))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#log tbody tr")) == 5)

    row = chromium.find_element(By.CSS_SELECTOR, f'#dead tr[data-plan="{P2}"]')
    assert "NoSuchBucket" in row.text and "الصف الحادي عشر" in row.text
    assert chromium.find_element(By.ID, "pending").text == "1"
    assert chromium.find_element(By.ID, "dead-count").text == "1"
    assert P1 in chromium.find_element(By.ID, "claimed").text
    assert "Overdue" in chromium.find_element(By.CSS_SELECTOR, f'#plans tr[data-plan="{P2}"]').text
    assert "OK" in chromium.find_element(By.CSS_SELECTOR, f'#plans tr[data-plan="{P1}"]').text
    title_cell = chromium.find_element(By.CSS_SELECTOR, f'#plans tr[data-plan="{P2}"] td.title')
    assert title_cell.get_attribute("dir") == "auto" and "الصف" in title_cell.text
    # the screenshot in the docs is refreshed only on request (MEMORA_SCREENSHOT=1), so tests leave the tree clean
    shot = REPO / "docs" / "dashboard.png" if os.environ.get("MEMORA_SCREENSHOT") == "1" else tmp_path / "dashboard.png"
    assert chromium.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # markup in a title or an error is shown as text, never run
    db.cursor().execute("UPDATE `tabMemora Academic Plan` SET title = %s WHERE name = %s", ("عنوان " + XSS, P1))
    db.commit()
    registry.dead_letter(P1, "boom " + XSS)
    chromium.find_element(By.ID, "refresh").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#dead tr[data-plan="{P1}"]'))
    assert "<img" in chromium.find_element(By.CSS_SELECTOR, f'#dead tr[data-plan="{P1}"]').text
    assert chromium.execute_script("return window.__xss === undefined && "
                                   "document.querySelectorAll('table img, table script').length === 0")

    row = chromium.find_element(By.CSS_SELECTOR, f'#dead tr[data-plan="{P2}"]')
    row.find_element(By.CSS_SELECTOR, "button[data-action=retry]").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#dead tr[data-plan="{P2}"]'))
    assert "moved back to the pending set" in chromium.find_element(By.ID, "alert").text
    assert not registry.redis.hexists(DEAD_LETTER, P2)
    assert P2 in registry.pending()
    assert chromium.find_element(By.ID, "dead-count").text == "1"  # P1's is still there


def test_a_refused_removal_shows_on_the_dashboard(airflow, stack, registry, served, chromium):
    """What the removal guard refused (engine.removal), as the API and the page show it, until it is cleared."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from memora_cdn.engine.removal import decide_removals
    from memora_cdn.tracking import removals as removal_record

    decision = decide_removals([P1, P2, "PLAN-2026-0099"], listed_plans=0, published=3,
                               max_plan_removals=None)
    removal_record.record_refusal(registry, "nightly", decision)
    removal_record.hold(registry, [P2])
    status = airflow.client.get("/memora-cdn/api/status", headers=airflow.auth()).json()
    [refused] = status["removal_refused"]
    assert refused["source"] == "nightly" and refused["count"] == 3 and P1 in refused["plans"]
    assert "the database lists no plans at all" in refused["reason"] and status["removals_held"] == [P2]

    chromium.get(served + "/memora-cdn/no-such-page")
    chromium.add_cookie({"name": "_token", "value": airflow.admin, "path": "/"})
    chromium.get(served + "/memora-cdn/")
    wait = WebDriverWait(chromium, 15)
    wait.until(lambda d: d.find_element(By.ID, "removals").is_displayed())
    section = chromium.find_element(By.ID, "removals").text
    assert "memora_cdn_full_rebuild" in section and P1 in section and "the database lists no plans at all" in section
    assert "confirm_removals" in section and f"held by sync runs (kept, not removed): {P2}" in section

    removal_record.clear_refusal(registry, "nightly")
    removal_record.release_held(registry, [P2])
    chromium.find_element(By.ID, "refresh").click()
    wait.until(lambda d: not d.find_element(By.ID, "removals").is_displayed())
