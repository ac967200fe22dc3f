"""Memora CDN operators' dashboard: an Airflow 3 plugin (FastAPI app on the API server + a nav entry).

Mounted by Airflow's API server at `/memora-cdn` (`fastapi_apps`), linked from the UI's navigation
(`external_views`). Every route, the page included, requires an Airflow user, through Airflow's own code
in `airflow.api_fastapi.core_api.security`: `get_user` resolves the user (JWT from `Authorization: Bearer`,
or the `_token` cookie the UI sets; signature, expiry and revocation checked by the auth manager), then
`requires_access_dag(...)` asks the configured auth manager whether that user may act on the
`memora_cdn_sync` DAG:

- read (page, status, sync log): GET on the DAG's runs               (Viewer and up with the simple auth manager)
- mark a plan / retry a dead letter: PUT on the DAG's task instances   (User and up; like clearing a task)
- `?trigger=true`: POST on the DAG's runs, as `POST /api/v2/dags/{dag_id}/dagRuns` requires

No token: 401. Invalid or expired token, or not allowed: 403 (401 for an expired one), as Airflow answers.
POSTs authenticated by the cookie alone must also carry `X-Requested-By` (a header no cross-site form can
set), on top of the cookie's SameSite=Lax.

Importing this module does no I/O and stays cheap: every Airflow process imports the plugins folder,
task runners included, so Airflow's security module (over a second to import), the engine (`include.*`),
Redis, MariaDB and S3 are reached only inside a request, through the same Airflow connections and
Variable as the DAGs (SPEC §10).
"""
from __future__ import annotations

import functools
import html
import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

log = logging.getLogger(__name__)

SYNC_DAG_ID = "memora_cdn_sync"
URL_PREFIX = "/memora-cdn"
CSRF_HEADER = "X-Requested-By"
PAGE_FILE = Path(__file__).with_name("memora_cdn_dashboard.html")

# -- authentication and authorization: Airflow's own functions, imported at the first request ------------------

_bearer = HTTPBearer(auto_error=False)  # what Airflow's `get_user` depends on (security.bearer_scheme)


async def airflow_user(request: Request,
                       bearer: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> "BaseUser":
    """The Airflow user of the request: `airflow.api_fastapi.core_api.security.get_user` (401/403 otherwise)."""
    from airflow.api_fastapi.core_api.security import get_user

    return await get_user(request, None, bearer)


def _requires_access(method: str, entity: DagAccessEntity) -> Callable[..., None]:
    """Airflow's `requires_access_dag(method, entity)` pinned to the sync DAG (DAG-level and team permissions)."""

    def check(request: Request, user: "BaseUser" = Depends(airflow_user)) -> None:
        from airflow.api_fastapi.core_api.security import requires_access_dag

        requires_access_dag(method, entity, param_dag_id=SYNC_DAG_ID)(request, user)

    check.__name__ = f"requires_{method.lower()}_{entity.value.lower()}_on_{SYNC_DAG_ID}"
    return check


can_read = _requires_access("GET", DagAccessEntity.RUN)
can_operate = _requires_access("PUT", DagAccessEntity.TASK_INSTANCE)


# -- errors: every failure is JSON with a `detail` that says what is wrong, never a secret ---------------------

_SERVICES = {  # exception module prefix -> what failed
    "redis": "Redis (connection memora_redis)",
    "MySQLdb": "the content database (connection memora_mysql)",
    "mysql": "the content database (connection memora_mysql)",
    "pymysql": "the content database (connection memora_mysql)",
    "botocore": "the bucket (connection memora_s3)",
    "boto3": "the bucket (connection memora_s3)",
}


def _error_response(exc: Exception) -> JSONResponse:
    from memora_cdn.ops.status import OperatorError, redact
    from memora_cdn.settings import SettingsError

    if isinstance(exc, OperatorError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)
    if isinstance(exc, SettingsError):
        return JSONResponse({"detail": str(exc)}, status_code=503)
    kind = type(exc)
    if kind.__name__ == "AirflowNotFoundException":  # a connection or the Variable is not configured
        return JSONResponse({"detail": f"not configured: {redact(str(exc))}"}, status_code=503)
    service = next((what for prefix, what in _SERVICES.items() if kind.__module__.split(".")[0] == prefix), None)
    if service:
        log.warning("memora-cdn dashboard: %s failed", service, exc_info=True)
        message = redact(str(exc))[:300]
        return JSONResponse({"detail": f"{service} is unavailable or refused the request: {kind.__name__}: {message}"},
                            status_code=503)
    log.exception("memora-cdn dashboard: unexpected error")
    return JSONResponse({"detail": f"internal error ({kind.__name__}); see the API server log"}, status_code=500)


class _Route(APIRoute):
    """Turns the engine's and the services' exceptions into JSON answers (FastAPI's own stay as they are)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (StarletteHTTPException, RequestValidationError):
                raise
            except Exception as exc:  # noqa: BLE001 - answered, logged
                return _error_response(exc)

        return guarded


app = FastAPI(
    title="Memora CDN",
    description="Operators' view of the Memora CDN export: pending plans, claims, dead letters, sync log.",
    docs_url=None, redoc_url=None, openapi_url=None,  # nothing is served without authentication
)
app.router.route_class = _Route


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": text or "invalid request", "errors": errors}, status_code=422)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    headers = getattr(exc, "headers", None)
    if exc.status_code in (401, 403) and _wants_html(request):
        root = html.escape(_airflow_root(request), quote=True)
        body = (f"<!doctype html><meta charset=utf-8><title>Memora CDN: sign in</title>"
                f"<p>{html.escape(str(exc.detail))}. <a href=\"{root}\">Sign in to Airflow</a>, then open this page again.</p>")
        return HTMLResponse(body, status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def _wants_html(request: Request) -> bool:
    return request.method == "GET" and request.url.path.rstrip("/") == request.scope.get("root_path", "").rstrip("/") \
        and "text/html" in request.headers.get("accept", "")


def _airflow_root(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return (root[: -len(URL_PREFIX)] if root.endswith(URL_PREFIX) else "") + "/"


def _same_origin_post(request: Request) -> None:
    """CSRF guard: a POST authenticated only by the cookie must carry `X-Requested-By`."""
    authorization = request.headers.get("authorization", "")
    if not authorization.lower().startswith("bearer ") and not request.headers.get(CSRF_HEADER):
        raise HTTPException(403, f"a request authenticated by the session cookie must send the {CSRF_HEADER} header")


# -- services: opened per request, through Airflow's connections and the memora_cdn_settings Variable ----------


class Services:
    """Lazily opened clients for one request; closed when the response is done."""

    def __init__(self) -> None:
        self._registry = None
        self._db = None
        self._s3 = None
        self._settings = None

    @property
    def settings(self):
        if self._settings is None:
            from memora_cdn.settings import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def registry(self):
        if self._registry is None:
            from memora_cdn.orchestration.connections import registry

            self._registry = registry()
        return self._registry

    @property
    def db(self):
        if self._db is None:
            from memora_cdn.orchestration.connections import mysql_connection

            self._db = mysql_connection()
        return self._db

    @property
    def s3(self):
        if self._s3 is None:
            from memora_cdn.orchestration.connections import s3_client

            self._s3 = s3_client(self.settings)
        return self._s3

    def close(self) -> None:
        for close in (lambda: self._db and self._db.close(),
                      lambda: self._registry and self._registry.redis.close()):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing a client failed", exc_info=True)


def services() -> Iterator[Services]:
    opened = Services()
    try:
        yield opened
    finally:
        opened.close()


# -- API ------------------------------------------------------------------------------------------------------


@app.get("/api/status", dependencies=[Depends(can_read)])
def api_status(svc: Services = Depends(services)) -> dict[str, Any]:
    """Pending count, live claims, dead letters, failures of the last 24 h, last success per plan."""
    from memora_cdn.ops import status as ops_status

    return ops_status.status(svc.registry, svc.db)


@app.get("/api/sync-log", dependencies=[Depends(can_read)])
def api_sync_log(
    plan_id: str | None = Query(None, description="only this plan"),
    status: str | None = Query(None, description="Queued, Processing, Success, Failed or Dead Letter"),
    limit: int = Query(50, description="1..500 rows, newest first"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    from memora_cdn.ops import status as ops_status

    rows = ops_status.sync_log(svc.db, plan_id=plan_id, status=status, limit=limit)
    return {"rows": rows, "count": len(rows), "plan_id": plan_id or None, "status": status or None, "limit": limit}


@app.post("/api/plans/{plan_id}/rebuild", dependencies=[Depends(can_operate), Depends(_same_origin_post)])
def api_rebuild(
    plan_id: str,
    user: "BaseUser" = Depends(airflow_user),
    trigger: bool = Query(False, description="also trigger a memora_cdn_sync run now"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Put the plan into the pending set; with `trigger=true`, also start a `memora_cdn_sync` run."""
    from memora_cdn.ops import status as ops_status

    s3 = bucket = None
    try:
        plans = ops_status.known_plans(svc.db, [plan_id])  # 422 / 404 before anything changes
    except ops_status.UnknownPlan:  # a deleted plan that still has files is accepted: its build removes them
        s3, bucket = svc.s3, svc.settings.bucket
        plans = ops_status.known_plans(svc.db, [plan_id], s3, bucket)
    if trigger:
        _require_trigger_permission(user)
    result = ops_status.mark(svc.registry, svc.db, plans, s3, bucket)
    result["dag_run"] = None
    if trigger:
        result.update(_trigger_sync(plans, user))
    return result


def _require_trigger_permission(user) -> None:
    """What `POST /api/v2/dags/{dag_id}/dagRuns` requires: POST on the DAG's runs (team-aware)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=SYNC_DAG_ID, team_name=DagModel.get_team_name(SYNC_DAG_ID))
    if not get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                details=details, user=user):
        raise HTTPException(403, f"you may not trigger {SYNC_DAG_ID}; nothing was marked")


def _trigger_sync(plans: list[str], user) -> dict[str, Any]:
    """Create a manual `memora_cdn_sync` run in-process, as Airflow's REST API does (its `trigger_dag`)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models.dag import DagModel
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(SYNC_DAG_ID, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user.get_name(),
                          conf={"plans": plans}, note=f"Memora CDN dashboard: rebuild {', '.join(plans)}")
    except DagNotFound:
        raise HTTPException(409, f"{SYNC_DAG_ID} is not in Airflow's metadata database (not parsed yet?); "
                                 "the plan is pending and the next sync run builds it")
    except DagRunAlreadyExists as exc:
        raise HTTPException(409, f"a {SYNC_DAG_ID} run with that id already exists ({exc}); the plan is pending")
    dag = DagModel.get_current(SYNC_DAG_ID)
    paused = bool(dag and dag.is_paused)
    return {
        "dag_run": {"dag_id": SYNC_DAG_ID, "run_id": run.run_id, "state": str(getattr(run.state, "value", run.state))},
        "dag_paused": paused,
        **({"warning": f"{SYNC_DAG_ID} is paused: the run waits until it is unpaused"} if paused else {}),
    }


@app.post("/api/dead-letter/{plan_id}/retry", dependencies=[Depends(can_operate), Depends(_same_origin_post)])
def api_retry_dead_letter(plan_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    """Move a dead-lettered plan back to the pending set (404 when it is not dead-lettered)."""
    from memora_cdn.ops import status as ops_status

    return ops_status.retry_dead_letter(svc.registry, plan_id)


# -- the page -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _page_template() -> str:
    return PAGE_FILE.read_text(encoding="utf-8")


@app.get("/", response_class=HTMLResponse, dependencies=[Depends(can_read)])
def page(request: Request) -> HTMLResponse:
    """Self-contained HTML (inline CSS and JS, no external assets) that reads the API every 30 s."""
    nonce = secrets.token_urlsafe(16)
    root = request.scope.get("root_path", "").rstrip("/")
    body = (_page_template()
            .replace("{{nonce}}", nonce)
            .replace("{{api}}", html.escape(root + "/api", quote=True))
            .replace("{{airflow}}", html.escape(_airflow_root(request), quote=True))
            .replace("{{sync_dag}}", html.escape(SYNC_DAG_ID, quote=True)))
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
    return HTMLResponse(body, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store",
                                       "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


class MemoraCdnDashboardPlugin(AirflowPlugin):
    name = "memora_cdn_dashboard"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Memora CDN"}]
    external_views = [{
        "name": "Memora CDN",
        "href": URL_PREFIX + "/",
        "destination": "nav",
        "url_route": "memora-cdn",
    }]
