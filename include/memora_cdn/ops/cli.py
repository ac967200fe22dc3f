"""Operators' command line for the Memora CDN export: `python -m memora_cdn COMMAND` (or `python -m memora_cdn`).

The figures are the dashboard's (`memora_cdn.ops.status`); builds are the DAGs' (`memora_cdn.engine.build.build_plan`).
See `python -m memora_cdn --help` for the commands and where connections come from.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import unicodedata
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

EXIT_OK, EXIT_DIFFERENCES, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

DESCRIPTION = """\
Operators' tools for the Memora CDN export: what is pending, claimed and dead-lettered, the sync log,
and rebuilding or verifying plans by hand.

Connections, per service, first found wins:
  MariaDB   --mysql-url / $MEMORA_MYSQL_URL     mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE
            else Airflow connection memora_mysql   ($AIRFLOW_CONN_MEMORA_MYSQL, or Airflow's metadata DB / secrets)
  Redis     --redis-url / $MEMORA_REDIS_URL     redis://[:PASSWORD@]HOST[:PORT]/DB
            else Airflow connection memora_redis   ($AIRFLOW_CONN_MEMORA_REDIS, ...)
  S3        --s3-endpoint / $MEMORA_S3_ENDPOINT  an S3-compatible endpoint URL; credentials and region from
            the usual AWS variables ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_DEFAULT_REGION)
            else Airflow connection memora_s3      ($AIRFLOW_CONN_MEMORA_S3, ...)
  settings  --settings / $MEMORA_CDN_SETTINGS    the memora_cdn_settings JSON (or @FILE)
            else Airflow Variable memora_cdn_settings ($AIRFLOW_VAR_MEMORA_CDN_SETTINGS, ...)
The Airflow fallbacks import Airflow (a second or two), and read the same connections as the DAGs.
Secrets are never printed.

Exit status: 0 done / consistent; 1 verify found differences, or a build or purge failed;
2 bad usage or unknown plan; 3 a service or the configuration is unavailable."""

EPILOG = """\
examples:
  python -m memora_cdn status
  python -m memora_cdn --mysql-url mysql://root@127.0.0.1/memora --redis-url redis://127.0.0.1:6379/0 status --json
  python -m memora_cdn mark PLAN-2026-0001 PLAN-2026-0002
  python -m memora_cdn rebuild PLAN-2026-0001          # build now, under the plan's lock, then purge
  python -m memora_cdn verify --all                    # exit 1 when the bucket differs from the database
  python -m memora_cdn dead-letter list
  python -m memora_cdn dead-letter retry PLAN-2026-0001
  python -m memora_cdn sync-log --plan PLAN-2026-0001 --status Failed --limit 20
  python -m memora_cdn remove-plans --all              # dry run: what the removal guard holds back, and why
  python -m memora_cdn remove-plans --confirm PLAN-2026-0007
  python -m memora_cdn trash                           # removed plans kept for a restore
  python -m memora_cdn restore PLAN-2026-0007 [--at 20260514T020304Z]"""


class Unavailable(RuntimeError):
    """A service or the configuration cannot be used (exit 3)."""


# -- connections ---------------------------------------------------------------------------------------------


def _describe_url(url: str) -> str:
    """host:port/path of a URL, without user or password (for messages)."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}{':' + str(parts.port) if parts.port else ''}{parts.path or ''}"


def mysql_from_url(url: str):
    """A MySQLdb connection from `mysql://user:password@host:port/database` (utf8mb4, autocommit off)."""
    import MySQLdb

    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+mysqldb"):
        raise Unavailable(f"--mysql-url must start with mysql://, got {parts.scheme or 'no scheme'}://")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise Unavailable("--mysql-url names no database (mysql://USER@HOST/DATABASE)")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = dict(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                                  user=unquote(parts.username or "root"), passwd=unquote(parts.password or ""),
                                  db=database, charset=options.get("charset", "utf8mb4"), autocommit=False)
    if options.get("unix_socket"):
        kwargs["unix_socket"] = options["unix_socket"]
    from memora_cdn.orchestration.connections import mysql_timeouts

    try:  # ?connect_timeout=&read_timeout=&write_timeout= override the defaults, as the connection extras do
        kwargs.update(mysql_timeouts(options))
    except ValueError as exc:
        raise Unavailable(str(exc).replace("Airflow connection 'memora_mysql': extra", "--mysql-url option")) from None
    try:
        return MySQLdb.connect(**kwargs)
    except MySQLdb.Error as exc:
        raise Unavailable(f"cannot connect to MariaDB at {_describe_url(url)}: {_safe(exc)}") from None


def _safe(exc: BaseException) -> str:
    from memora_cdn.ops.status import redact

    return f"{type(exc).__name__}: {redact(str(exc))}"


class Context:
    """Clients for one command, opened on first use, from flags/env or else Airflow's connections."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.mysql_url = args.mysql_url or os.environ.get("MEMORA_MYSQL_URL") or None
        self.redis_url = args.redis_url or os.environ.get("MEMORA_REDIS_URL") or None
        self.s3_endpoint = args.s3_endpoint or os.environ.get("MEMORA_S3_ENDPOINT") or None
        self.settings_text = args.settings or os.environ.get("MEMORA_CDN_SETTINGS") or None
        self._db = self._registry = self._s3 = self._settings = None
        self._registry_checked = False

    @property
    def settings(self):
        if self._settings is None:
            from memora_cdn.settings import SettingsError, load_settings, parse_settings

            try:
                if self.settings_text:
                    text = self.settings_text
                    if text.startswith("@"):
                        with open(text[1:], encoding="utf-8") as handle:
                            text = handle.read()
                    self._settings = parse_settings(text)
                else:
                    self._settings = load_settings()
            except (SettingsError, OSError) as exc:
                raise Unavailable(str(exc)) from None
        return self._settings

    @property
    def db(self):
        if self._db is None:
            if self.mysql_url:
                self._db = mysql_from_url(self.mysql_url)
            else:
                from memora_cdn.orchestration import connections

                self._db = self._airflow("memora_mysql", connections.mysql_connection)
        return self._db

    def reopen_db(self):
        """A new database connection, made as the first one was (a failed build may have lost the first)."""
        if self.mysql_url:
            return mysql_from_url(self.mysql_url)
        from memora_cdn.orchestration import connections

        return self._airflow("memora_mysql", connections.mysql_connection)

    def check_db(self) -> None:
        """Drop the database connection when a failed build took it down; the next use opens a new one."""
        if self._db is None:
            return
        try:
            self._db.ping()
        except Exception:  # noqa: BLE001
            try:
                self._db.close()
            except Exception:  # noqa: BLE001
                pass
            self._db = None

    def _redis_from_url(self):
        import redis

        from memora_cdn.orchestration.connections import REDIS_TIMEOUTS

        return redis.Redis.from_url(self.redis_url, **REDIS_TIMEOUTS)

    @property
    def registry(self):
        """The Redis registry; `Unavailable` when it is not configured or does not answer."""
        registry = self.optional_registry()
        if registry is None:
            raise Unavailable("Redis is not configured: pass --redis-url, set $MEMORA_REDIS_URL, "
                              "or define the Airflow connection memora_redis")
        return registry

    def optional_registry(self):
        """The registry, or None when Redis is not configured at all; `Unavailable` when configured but down."""
        if not self._registry_checked:
            from memora_cdn.tracking.registry import Registry

            self._registry_checked = True
            if self.redis_url:
                self._registry = Registry(self._redis_from_url())
                where = _describe_url(self.redis_url)
            else:
                from memora_cdn.orchestration import connections

                self._registry = self._airflow("memora_redis", lambda: connections.registry(required=False))
                where = "connection memora_redis"
            if self._registry is not None:
                try:
                    self._registry.redis.ping()
                except Exception as exc:  # noqa: BLE001 - reported as unavailable
                    self._registry = None
                    raise Unavailable(f"Redis ({where}) does not answer: {_safe(exc)}") from None
        return self._registry

    @property
    def s3(self):
        if self._s3 is None:
            if self.s3_endpoint:
                import boto3

                from memora_cdn.orchestration.connections import s3_client_config

                self._s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, config=s3_client_config(self.settings),
                                        region_name=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1")
            else:
                from memora_cdn.orchestration import connections

                self._s3 = self._airflow("memora_s3", lambda: connections.s3_client(self.settings))
        return self._s3

    @staticmethod
    def _airflow(conn_id: str, open_client: Callable[[], Any]):
        try:
            return open_client()
        except Unavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a missing connection or a service that is down
            if type(exc).__name__ == "AirflowNotFoundException":
                raise Unavailable(f"the Airflow connection {conn_id} is not defined (or pass the matching flag; see --help)") from None
            raise Unavailable(f"cannot use the Airflow connection {conn_id}: {_safe(exc)}") from None

    def close(self) -> None:
        for client in (self._db, self._registry.redis if self._registry is not None else None):
            try:
                if client is not None:
                    client.close()
            except Exception:  # noqa: BLE001
                pass


# -- output --------------------------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(text: Any, limit: int) -> str:
    text = " ".join(str(text if text is not None else "").split())
    return text if _width(text) <= limit else text[: max(limit - 1, 1)] + "…"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out=None) -> None:
    out = out or sys.stdout
    cells = [[str(c) if c is not None else "" for c in row] for row in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers)] + cells:
        out.write("  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths)).rstrip() + "\n")


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, one line per step otherwise)."""

    def __init__(self, total: int, label: str, stream=None, width: int = 24) -> None:
        self.total, self.label, self.width = total, label, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.started = time.monotonic()
        self.enabled = total > 1

    def _line(self, current: str) -> str:
        filled = int(self.width * self.done / self.total) if self.total else self.width
        elapsed = time.monotonic() - self.started
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.1f}s {current}")

    def start(self, item: str) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r\x1b[2K" + self._line(item))
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def step(self, item: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\x1b[2K" + self._line(item))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(self._line(item) + "\n")
        self.stream.flush()


def _json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")


# -- commands ------------------------------------------------------------------------------------------------


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    from memora_cdn.ops import status as ops_status

    figures = ops_status.status(ctx.registry, ctx.db)
    if args.json:
        _json(figures)
        return EXIT_OK
    out = sys.stdout
    building = sum(len(c["plans"]) for c in figures["claimed"])
    out.write(f"Pending plans:        {figures['pending_plans']}\n")
    out.write(f"Being built now:      {building} plan(s) in {len(figures['claimed'])} claim(s)\n")
    out.write(f"Dead letters:         {len(figures['dead_letter'])}\n")
    out.write(f"Failures (last 24 h): {len(figures['recent_failures'])}\n")
    out.write(f"Overdue/never built:  {figures['overdue_plans']} of {len(figures['last_success'])} plan(s)\n")
    lat = figures["latency"]
    shown = (lambda v: "-" if v is None else f"{v:.0f} s")
    out.write(f"Edit to CDN:          median {shown(lat['median_seconds_last_hour'])}, worst "
              f"{shown(lat['max_seconds_last_hour'])} over {lat['builds_last_hour']} build(s) in the last hour; "
              f"oldest pending change {shown(lat['oldest_pending_seconds'])}\n")
    for refusal in figures["removal_refused"]:
        run = "memora_cdn_full_rebuild" if refusal.get("source") == "nightly" else "memora_cdn_sync"
        out.write(f"\nREMOVAL REFUSED by {run} at {refusal.get('refused_at')}: {refusal.get('count')} plan(s): "
                  f"{_cut(', '.join(refusal.get('plans') or []), 200)}\n  why not: {refusal.get('reason')}\n")
    if figures["removals_held"]:
        out.write(f"\nHeld by sync runs (kept, not removed): {_cut(', '.join(figures['removals_held']), 200)}\n")
    if figures["removal_refused"] or figures["removals_held"]:
        out.write("  confirm: python -m memora_cdn remove-plans --confirm PLAN... (or --all), or trigger "
                  "memora_cdn_full_rebuild with confirm_removals=true\n")
    if figures["claimed"]:
        out.write("\nClaimed now\n")
        table([(c["run"], c["since"] or "", _cut(", ".join(c["plans"]), 80)) for c in figures["claimed"]],
              ("RUN", "SINCE", "PLANS"))
    if figures["dead_letter"]:
        out.write("\nDead letters (retry: dead-letter retry PLAN)\n")
        table([(d["plan_id"], d["failed_at"] or "", _cut(d["error"], 90)) for d in figures["dead_letter"]],
              ("PLAN", "FAILED AT", "ERROR"))
    if figures["recent_failures"]:
        out.write("\nFailures in the last 24 h\n")
        table([(r["plan_id"], r["status"], r["started_at"] or r["creation"] or "", r["retry_count"] + 1,
                _cut(r["error_message"], 70)) for r in figures["recent_failures"]],
              ("PLAN", "STATUS", "STARTED", "TRY", "ERROR"))
    if figures["last_success"]:
        out.write("\nLast successful build per plan\n")
        table([(p["plan_id"], _cut(p["title"], 40), p["last_success"] or "never",
                "NEVER BUILT" if p["last_success"] is None else "OVERDUE" if p["overdue"] else "ok")
               for p in figures["last_success"]], ("PLAN", "TITLE", "LAST SUCCESS", "STATE"))
    return EXIT_OK


def cmd_sync_log(ctx: Context, args: argparse.Namespace) -> int:
    from memora_cdn.ops import status as ops_status

    rows = ops_status.sync_log(ctx.db, plan_id=args.plan, status=args.status, limit=args.limit)
    if args.json:
        _json(rows)
        return EXIT_OK
    if not rows:
        print("no sync log rows match")
        return EXIT_OK
    table([(r["plan_id"], r["status"], r["triggered_by"] or "", r["started_at"] or r["creation"] or "",
            "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.1f}s", r["files_uploaded"],
            r["files_deleted"], r["retry_count"] + 1, _cut(r["error_message"], 60)) for r in rows],
          ("PLAN", "STATUS", "TRIGGER", "STARTED", "DURATION", "UP", "DEL", "TRY", "ERROR"))
    return EXIT_OK


def _deleted_plan_s3(ctx: Context, plans: list[str]):
    """(s3, bucket) when some names are not in the database (a deleted plan's files make it acceptable)."""
    from memora_cdn.engine import keys
    from memora_cdn.engine.read import existing_plans

    safe = [p for p in plans if keys.is_safe_name(p)]
    if safe and len(existing_plans(ctx.db, safe)) < len(set(safe)):
        return ctx.s3, ctx.settings.bucket
    return None, None


def cmd_mark(ctx: Context, args: argparse.Namespace) -> int:
    from memora_cdn.ops import status as ops_status

    s3, bucket = _deleted_plan_s3(ctx, args.plans)
    result = ops_status.mark(ctx.registry, ctx.db, args.plans, s3, bucket)
    print(f"marked {len(result['marked'])} plan(s) ({result['newly_pending']} newly pending); "
          f"{result['pending_plans']} pending in all; the next memora_cdn_sync run rebuilds them")
    return EXIT_OK


def _plans_arg(ctx: Context, args: argparse.Namespace) -> list[str]:
    from memora_cdn.ops.status import InvalidRequest
    from memora_cdn.engine.read import list_plans

    if args.all and args.plans:
        raise InvalidRequest("give plan names or --all, not both")
    if args.all:
        return list_plans(ctx.db)
    if not args.plans:
        raise InvalidRequest("give at least one plan name, or --all")
    return list(dict.fromkeys(args.plans))


def cmd_rebuild(ctx: Context, args: argparse.Namespace) -> int:
    """Build now, in this process, through the same `run_plan` as the DAGs: under the plan's lock, logged
    (triggered_by Manual), dead letter cleared, retry scheduled on failure, each plan purged after its upload."""
    from memora_cdn.ops import status as ops_status
    from memora_cdn.tracking.run import run_plan

    plans = _plans_arg(ctx, args)
    if not args.all:
        s3, bucket = _deleted_plan_s3(ctx, plans)
        plans = ops_status.known_plans(ctx.db, plans, s3, bucket)
    settings, s3 = ctx.settings, ctx.s3
    if args.no_lock:
        registry = None
        print("warning: --no-lock: building without the per-plan lock; make sure no sync run builds these plans",
              file=sys.stderr)
    else:
        try:
            registry = ctx.optional_registry()
        except Unavailable as exc:
            raise Unavailable(f"{exc}; --no-lock builds without the plan lock (only when no sync run can build "
                              "these plans)") from None
        if registry is None:
            print("warning: Redis is not configured: building without the per-plan lock", file=sys.stderr)
    purger = None
    if not args.no_purge:
        if settings.purge_provider == "none":
            print("purge_provider is none: no CDN purge")
        else:
            from memora_cdn.orchestration.tasks import cdn_purger

            purger = cdn_purger(settings)
    run_id = f"cli__{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}__{os.getpid()}"
    progress = Progress(len(plans), "rebuild")
    failures = queued = 0
    unpurged: list[str] = []
    for plan_id in plans:
        progress.start(plan_id)
        try:
            summary = run_plan(plan_id, run_id=run_id, triggered_by="Manual", registry=registry, db=ctx.db, s3=s3,
                               settings=settings, purger=purger, reconnect=ctx.reopen_db)
        except Exception as exc:  # noqa: BLE001 - recorded by run_plan (retry scheduled), reported, next plan
            failures += 1
            line = f"{plan_id}: FAILED {ops_status.redact(f'{type(exc).__name__}: {exc}')}"
            ctx.check_db()
        else:
            if summary["status"] == "requeued":
                queued += 1
                line = f"{plan_id}: locked (being built elsewhere); marked pending for the sync DAG"
            else:
                line = (f"{plan_id}: {summary['status']}, {summary.get('files', 0)} file(s), "
                        f"{summary['files_uploaded']} uploaded, {summary['files_deleted']} deleted, "
                        f"{summary.get('problem_count', 0)} problem(s), {summary.get('seconds', 0):.2f}s")
                if purger is not None and summary.get("purged") is False:
                    unpurged.append(plan_id)
        progress.clear()
        print(line, flush=True)
        progress.step(plan_id)
    if unpurged:
        print(f"CDN purge failed for {', '.join(unpurged)} (the files are uploaded; the CDN serves them once its "
              "cache expires; rebuild them again to retry the purge)", file=sys.stderr)
    print(f"{len(plans) - failures - queued} built, {queued} queued, {failures} failed")
    return EXIT_DIFFERENCES if failures or unpurged else EXIT_OK


def _purge(settings, summaries: list[dict[str, Any]]) -> bool:
    """Purge the CDN for what `remove-plans` and `restore` changed, as the sync DAG does; False when it failed."""
    from memora_cdn.tracking.sync import purge, purge_requests

    requests = purge_requests(summaries)
    if not requests:
        return True
    if settings.purge_provider == "none":
        print("purge_provider is none: no CDN purge")
        return True
    try:
        from memora_cdn.orchestration.tasks import cdn_purger

        report = purge(cdn_purger(settings)(), settings, requests)
    except Exception as exc:  # noqa: BLE001 - never rolls back an upload; reported
        print(f"CDN purge failed (the files are in the bucket; the CDN serves them once its cache expires): "
              f"{_safe(exc)}", file=sys.stderr)
        return False
    print(f"purged {report.urls_purged} URL(s), {report.prefixes_purged} prefix(es)")
    return True


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    from memora_cdn.ops import status as ops_status
    from memora_cdn.engine.publish import list_published_plans

    plans = _plans_arg(ctx, args)
    settings, db, s3 = ctx.settings, ctx.db, ctx.s3
    if not args.all:  # unknown names are refused before anything is read (a deleted plan's files count as known)
        plans = ops_status.known_plans(db, plans, s3, settings.bucket)
    progress = Progress(len(plans), "verify")
    differing = consistent = 0
    for plan_id in plans:
        progress.start(plan_id)
        found = ops_status.verify(db, s3, settings, plan_id, audit=not args.no_audit)
        progress.clear()
        if found:
            differing += 1
            shown = found if args.verbose or len(found) <= args.max_lines else found[: args.max_lines]
            print(f"{plan_id}: {len(found)} difference(s)")
            for line in shown:
                print(f"  {line}")
            if len(shown) < len(found):
                print(f"  … {len(found) - len(shown)} more (--verbose shows all)")
        else:
            consistent += 1
            print(f"{plan_id}: ok")
        progress.step(plan_id)
    if args.all:
        from memora_cdn.engine import keys
        from memora_cdn.engine.read import list_plans

        strays = sorted(list_published_plans(s3, settings.bucket) - set(list_plans(db)))
        for plan_id in strays:
            differing += 1
            print(f"{plan_id}: not in the database (or unpublished) but its folder {keys.plan_prefix(plan_id)} is in "
                  "the bucket (the nightly full rebuild removes it, within the removal guard; see remove-plans)")
    print(f"{consistent} consistent, {differing} with differences")
    return EXIT_DIFFERENCES if differing else EXIT_OK


def cmd_remove_plans(ctx: Context, args: argparse.Namespace) -> int:
    """Remove plan folders that the database does not list, as an operator's confirmation of the removal guard."""
    from memora_cdn.engine import keys
    from memora_cdn.engine.publish import list_prefix, list_published_plans
    from memora_cdn.engine.read import existing_plans, list_plans
    from memora_cdn.engine.removal import judge, remove_plans
    from memora_cdn.ops import status as ops_status
    from memora_cdn.tracking import removals as removal_record

    settings, db, s3 = ctx.settings, ctx.db, ctx.s3
    if args.all and args.plans:
        raise ops_status.InvalidRequest("give plan names or --all, not both")
    listed = list_plans(db)
    on_cdn = list_published_plans(s3, settings.bucket)
    if args.all:
        plans = sorted(p for p in on_cdn - set(listed) if keys.is_safe_name(p))
    elif args.plans:
        plans = ops_status._check_plan_names(args.plans)
        still = sorted(existing_plans(db, plans))
        if still:
            raise ops_status.InvalidRequest(f"the database lists {', '.join(still[:10])}: a build would publish it "
                                            "again (delete or unpublish the plan first)")
        missing = [p for p in plans if not list_prefix(s3, settings.bucket, keys.plan_prefix(p))]
        if missing:
            raise ops_status.UnknownPlan(f"no files under plans/{{plan}}/ for: {', '.join(missing[:10])}")
    else:
        raise ops_status.InvalidRequest("give at least one plan name, or --all")
    if not plans:
        print("nothing to remove: every plan folder on the CDN is listed by the database")
        return EXIT_OK
    guard = judge(db, s3, settings, plans, listed_plans=len(listed), published=len(on_cdn))
    if not args.confirm:
        print(f"would remove {len(plans)} plan(s): {_cut(', '.join(plans), 400)}")
        print("the removal guard would refuse this in a run: " + guard.why() if guard.refused
              else "the removal guard would allow this in a run")
        print("dry run: nothing removed; add --confirm to remove them (they stay restorable for "
              f"{settings.trash_retention_days} days: restore PLAN)")
        return EXIT_OK
    decision = judge(db, s3, settings, plans, confirmed=True, listed_plans=len(listed), published=len(on_cdn))
    removed = remove_plans(s3, settings, decision, reason="removed by an operator (remove-plans --confirm)")
    for plan_id, files in sorted(removed.items()):
        print(f"{plan_id}: moved {len(files)} file(s) to {keys.trash_prefix(plan_id)} (restore {plan_id})")
    registry = _registry_or_warn(ctx)
    if registry is not None:
        removal_record.release_held(registry, list(removed))
        if args.all:
            removal_record.clear_refusal(registry, "nightly")
    purge_failed = False
    if not args.no_purge:
        purge_failed = not _purge(settings, [{"plan_id": p, "purge_keys": [], "purge_prefix": True} for p in removed])
    print(f"{len(removed)} plan(s) removed")
    return EXIT_DIFFERENCES if purge_failed else EXIT_OK


def _registry_or_warn(ctx: Context):
    try:
        registry = ctx.optional_registry()
    except Unavailable as exc:
        print(f"warning: {exc}", file=sys.stderr)
        return None
    if registry is None:
        print("warning: Redis is not configured: the dashboard's removal records are not updated", file=sys.stderr)
    return registry


def cmd_restore(ctx: Context, args: argparse.Namespace) -> int:
    """Copy a removed plan back from the trash byte for byte, then purge the CDN for its URLs."""
    from memora_cdn.engine.read import existing_plans
    from memora_cdn.engine.trash import TrashError, restore_plan
    from memora_cdn.ops import status as ops_status

    settings, s3 = ctx.settings, ctx.s3
    plan_id = ops_status.check_plan_name(args.plan)
    try:
        copy, files = restore_plan(s3, settings.bucket, plan_id, at=args.at, concurrency=settings.upload_concurrency)
    except TrashError as exc:
        raise ops_status.UnknownPlan(str(exc)) from None
    print(f"{plan_id}: restored {len(files)} file(s) from the copy trashed at {copy.stamp}"
          + (f" ({copy.reason})" if copy.reason else ""))
    if plan_id in existing_plans(ctx.db, [plan_id]):
        registry = _registry_or_warn(ctx)
        if registry is not None:
            registry.mark([plan_id])  # its next build renews signed media URLs that expired meanwhile
            print(f"{plan_id}: marked pending: the next sync run brings it up to date with the database")
    else:
        print(f"warning: the database does not list {plan_id}: the next nightly run counts it as a removal again "
              "(within the removal guard)", file=sys.stderr)
    purge_failed = False
    if not args.no_purge:
        purge_failed = not _purge(settings, [{"plan_id": plan_id, "purge_keys": [] if len(files) > settings.purge_prefix_threshold else files,
                                              "purge_prefix": len(files) > settings.purge_prefix_threshold}])
    return EXIT_DIFFERENCES if purge_failed else EXIT_OK


def cmd_trash(ctx: Context, args: argparse.Namespace) -> int:
    """Removed plans kept for a restore: plan, stamp, files, why, when it expires."""
    from datetime import timedelta

    from memora_cdn.engine.trash import trashed_copies, trashed_plans
    from memora_cdn.ops import status as ops_status

    settings, s3 = ctx.settings, ctx.s3
    plans = [ops_status.check_plan_name(args.plan)] if args.plan else trashed_plans(s3, settings.bucket)
    copies = [c.as_dict() | {"expires": (c.trashed_at + timedelta(days=settings.trash_retention_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
                             if c.trashed_at else None}
              for plan_id in plans for c in trashed_copies(s3, settings.bucket, plan_id)]
    if args.json:
        _json(copies)
    elif not copies:
        print("the trash is empty" if not args.plan else f"no trashed copy of {args.plan}")
    else:
        table([(c["plan_id"], c["stamp"], c["files"] if c["complete"] else "incomplete", c["expires"] or "",
                _cut(c["reason"] or "", 60)) for c in copies], ("PLAN", "STAMP (--at)", "FILES", "EXPIRES", "REASON"))
    return EXIT_OK


def cmd_dead_letter(ctx: Context, args: argparse.Namespace) -> int:
    from memora_cdn.ops import status as ops_status

    if args.action == "list":
        entries = ops_status.dead_letters(ctx.registry)
        if args.json:
            _json(entries)
        elif not entries:
            print("no dead letters")
        else:
            table([(e["plan_id"], e["failed_at"] or "", _cut(e["error"], 100)) for e in entries],
                  ("PLAN", "FAILED AT", "ERROR"))
        return EXIT_OK
    if not args.plans:
        raise ops_status.InvalidRequest("dead-letter retry: give at least one plan name")
    status = EXIT_OK
    for plan_id in args.plans:
        try:
            ops_status.retry_dead_letter(ctx.registry, plan_id)
            print(f"{plan_id}: moved back to the pending set; the next sync run rebuilds it")
        except ops_status.OperatorError as exc:
            print(f"{plan_id}: {exc}", file=sys.stderr)
            status = EXIT_USAGE
    return status


# -- parser and main -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m memora_cdn", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mysql-url", metavar="URL", help="content database, mysql://USER[:PASSWORD]@HOST[:PORT]/DB "
                        "(env MEMORA_MYSQL_URL; default: Airflow connection memora_mysql)")
    parser.add_argument("--redis-url", metavar="URL", help="change registry, redis://HOST[:PORT]/DB "
                        "(env MEMORA_REDIS_URL; default: Airflow connection memora_redis)")
    parser.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint; AWS_* variables give the "
                        "credentials (env MEMORA_S3_ENDPOINT; default: Airflow connection memora_s3)")
    parser.add_argument("--settings", metavar="JSON", help="memora_cdn_settings as JSON, or @FILE "
                        "(env MEMORA_CDN_SETTINGS; default: Airflow Variable memora_cdn_settings)")
    parser.add_argument("--debug", action="store_true", help="log what the engine does (to stderr)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("status", help="pending count, claims, dead letters, failures, last success per plan")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (the API's /api/status)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("sync-log", help="recent tabCDN Sync Log rows, newest first")
    p.add_argument("--plan", metavar="PLAN", help="only this plan")
    p.add_argument("--status", help="Queued, Processing, Success, Failed or 'Dead Letter'")
    p.add_argument("--limit", type=int, default=50, help="rows, 1..500 (default 50)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sync_log)

    p = sub.add_parser("mark", help="add plans to the pending set; the next sync run rebuilds them")
    p.add_argument("plans", nargs="+", metavar="PLAN")
    p.set_defaults(func=cmd_mark)

    p = sub.add_parser("rebuild", help="build plans now in this process (no scheduler), under each plan's lock")
    p.add_argument("plans", nargs="*", metavar="PLAN")
    p.add_argument("--all", action="store_true", help="every plan in the database")
    p.add_argument("--no-lock", action="store_true", help="build even though Redis (and so the plan lock) is unavailable")
    p.add_argument("--no-purge", action="store_true", help="do not purge the CDN afterwards")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("verify", help="compare the bucket with what the database says it should hold (read-only)")
    p.add_argument("plans", nargs="*", metavar="PLAN")
    p.add_argument("--all", action="store_true", help="every plan in the database, and stray plan folders")
    p.add_argument("--no-audit", action="store_true", help="skip the schema/reference audit of the published files")
    p.add_argument("--max-lines", type=int, default=20, help="differences shown per plan (default 20)")
    p.add_argument("--verbose", action="store_true", help="show every difference")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("remove-plans", help="remove plan folders the database does not list (confirms the removal "
                       "guard); a dry run without --confirm")
    p.add_argument("plans", nargs="*", metavar="PLAN")
    p.add_argument("--all", action="store_true", help="every plan folder on the CDN that the database does not list")
    p.add_argument("--confirm", action="store_true", help="really remove them (to the trash, restorable)")
    p.add_argument("--no-purge", action="store_true", help="do not purge the CDN afterwards")
    p.set_defaults(func=cmd_remove_plans)

    p = sub.add_parser("restore", help="copy a removed plan back from the trash, byte for byte, and purge its URLs")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--at", metavar="STAMP", help="which trashed copy (a stamp from `trash`, or its start); default "
                   "the newest")
    p.add_argument("--no-purge", action="store_true", help="do not purge the CDN afterwards")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("trash", help="removed plans kept for a restore, and when they expire")
    p.add_argument("plan", nargs="?", metavar="PLAN")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trash)

    p = sub.add_parser("dead-letter", help="plans that failed all retries: list, or retry PLAN...")
    p.add_argument("action", choices=("list", "retry"))
    p.add_argument("plans", nargs="*", metavar="PLAN")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dead_letter)
    return parser


_SERVICE_MODULES = {"redis": "Redis", "MySQLdb": "MariaDB", "mysql": "MariaDB", "pymysql": "MariaDB",
                    "botocore": "S3", "boto3": "S3"}


def main(argv: Iterable[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.debug:  # Airflow (imported for its connections) logs at INFO to stderr by default
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.debug:
        for noisy in ("memora_cdn", "airflow", "botocore", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)

    from memora_cdn.ops.status import OperatorError

    ctx = Context(args)
    try:
        return args.func(ctx, args)
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a service that fails mid-command: a message, not a traceback
        if type(exc).__module__.split(".")[0] not in _SERVICE_MODULES:
            raise
        print(f"error: {_SERVICE_MODULES[type(exc).__module__.split('.')[0]]} failed: {_safe(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        ctx.close()


if __name__ == "__main__":
    raise SystemExit(main())
