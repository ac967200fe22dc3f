"""Someone hears about failures: the DAGs' failure callbacks.

They send an e-mail through Airflow's `SmtpNotifier` (apache-airflow-providers-smtp) to the addresses in the
`alert_emails` setting of `memora_cdn_settings`, over the SMTP connection `alert_smtp_conn_id` (default: Airflow's
`[email] email_conn_id`, i.e. `smtp_default`). Without `alert_emails` they only log: no error, no noise.

What is reported:
- `build_failed`   (on_failure_callback of both DAGs' build tasks): only a plan that failed its last retry and was
                   dead-lettered; earlier failures are retried by later runs and show on the dashboard.
- `nightly_failed` (on_failure_callback of the nightly DAG): a failed nightly run, whatever failed in it (a plan
                   build, a refused removal, a timeout).
A callback never raises: a notification that cannot be sent is logged, and the run's own state stands.
"""
from __future__ import annotations

import html
import logging
from typing import Any

log = logging.getLogger(__name__)


def _get(context: Any, key: str, default: Any = None) -> Any:
    try:
        return context.get(key, default) if context is not None else default
    except Exception:  # noqa: BLE001
        return default


def _describe_run(context: Any) -> tuple[str, str]:
    dag_run = _get(context, "dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or _get(context, "dag_id") or getattr(_get(context, "dag"), "dag_id", "?")
    run_id = getattr(dag_run, "run_id", None) or _get(context, "run_id") or "?"
    return str(dag_id), str(run_id)


def send(subject: str, lines: list[str], context: Any = None) -> bool:
    """Send one alert to `alert_emails` through SmtpNotifier; False (and a log line) when off or not sent."""
    try:
        from memora_cdn.settings import load_settings

        settings = load_settings()
    except Exception as exc:  # noqa: BLE001 - a bad Variable fails the tasks themselves, with its own message
        log.warning("alert not sent (memora_cdn_settings unreadable: %s): %s", exc, subject)
        return False
    if not settings.alert_emails:
        log.info("alert_emails is not set in memora_cdn_settings: not sending %r", subject)
        return False
    try:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        from memora_cdn.ops.status import redact

        body = "".join(f"<p>{html.escape(redact(line) or '')}</p>" for line in lines)
        notifier = SmtpNotifier(to=list(settings.alert_emails), subject=redact(subject),
                                html_content=body, smtp_conn_id=settings.alert_smtp_conn_id)
        # notify() directly: the texts are final (an error message may contain "{{", which must not be rendered).
        notifier.notify(dict(context or {}))
    except Exception as exc:  # noqa: BLE001 - never fail the callback; the failure is on the dashboard anyway
        log.error("could not send the alert %r to %s: %s: %s", subject, ", ".join(settings.alert_emails),
                  type(exc).__name__, exc)
        return False
    log.info("alert sent to %s: %s", ", ".join(settings.alert_emails), subject)
    return True


def build_failed(context: Any) -> bool:
    """on_failure_callback of the build tasks: alert when the failure dead-lettered a plan."""
    exc = _get(context, "exception")
    dead = list(getattr(exc, "dead_lettered", None) or [])
    if not dead:
        return False
    dag_id, run_id = _describe_run(context)
    return send(f"Memora CDN: dead-lettered {', '.join(dead)}", [
        f"{len(dead)} plan(s) failed their last retry and are in the dead letter: {', '.join(dead)}.",
        f"DAG {dag_id}, run {run_id}.",
        f"Error: {exc}",
        "Fix the cause, then clear the failed build task in the Airflow UI, use the dashboard's Retry button, or "
        "run `python -m memora_cdn dead-letter retry PLAN`.",
    ], context)


def nightly_failed(context: Any) -> bool:
    """on_failure_callback of memora_cdn_full_rebuild (DAG level): the nightly run failed."""
    dag_id, run_id = _describe_run(context)
    reason = _get(context, "reason") or ""
    exc = _get(context, "exception")
    failed = []
    dag_run = _get(context, "dag_run")
    try:
        failed = sorted({ti.task_id for ti in dag_run.get_task_instances(state=["failed", "upstream_failed"])})
    except Exception:  # noqa: BLE001 - not every context carries a run that can list its tasks
        pass
    lines = [f"The nightly full rebuild {dag_id} run {run_id} failed."]
    if failed:
        lines.append(f"Failed tasks: {', '.join(failed)}.")
    if reason:
        lines.append(f"Reason: {reason}")
    if exc:
        lines.append(f"Error: {exc}")
    lines.append("See the run's task logs; a refused removal says what it would have removed and how to confirm it.")
    return send(f"Memora CDN: nightly run {run_id} failed", lines, context)
