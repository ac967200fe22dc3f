"""Tell the CDN which published URLs changed (SPEC §8).

Three purgers share one planning step (:func:`plan_targets`):

* :class:`CloudflarePurger` — ``POST {api}/client/v4/zones/{zone_id}/purge_cache`` with a bearer token,
  ``{"files": [...]}`` / ``{"prefixes": [...]}`` in batches, honouring 429 + ``Retry-After``, retrying 5xx
  and network errors with exponential backoff inside an overall deadline.
* :class:`CloudFrontPurger` — ``CreateInvalidation`` with URL paths, at most 3,000 paths per call.
* :class:`LogOnlyPurger` — ``purge_provider: none``; logs what would be purged.

A purge that still fails after its retries raises :class:`PurgeError` *after* every batch was tried; the
caller reports it and lets Airflow retry the task. Uploads are never rolled back.

The API token never appears in a log line, a report or an exception message.

Plain Python: no scheduler needed. Only :func:`purger_for` touches Airflow (connections, AwsBaseHook).
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from memora_cdn.purge.base import (  # noqa: F401  (the purge API in one import)
    DEFAULT_CLOUDFLARE_API,
    PlanPurge,
    PurgeError,
    PurgeReport,
    PurgeTargets,
    key_urls,
    plan_prefix,
    plan_targets,
)
from memora_cdn.purge.cloudflare import CloudflarePurger, cloudflare_prefixes, parse_retry_after  # noqa: F401
from memora_cdn.purge.cloudfront import CloudFrontPurger, cloudfront_paths  # noqa: F401
from memora_cdn.purge.log_only import LogOnlyPurger


# --------------------------------------------------------------------------------------------------------------
def _get_connection(conn_id: str):
    """The Airflow connection, or ValueError naming it. The Task SDK's ``Connection.get`` (what ``BaseHook``
    uses in Airflow 3): inside a task, and outside one from environment variables and secrets backends."""
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except Exception as exc:
        if type(exc).__name__ == "AirflowNotFoundException":
            raise ValueError(f"Airflow connection {conn_id!r} is not defined") from None
        raise ValueError(f"Airflow connection {conn_id!r} could not be read ({type(exc).__name__})") from None


def _extra(conn) -> dict:
    extra = getattr(conn, "extra_dejson", None)
    if isinstance(extra, dict):
        return extra
    raw = getattr(conn, "extra", None)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def cloudflare_api_base(host: str | None, port: int | None = None, schema: str | None = None) -> str:
    """API base from an http connection: host with or without scheme, optional port; default Cloudflare.
    ``schema`` (the http provider keeps the scheme there) is used when host has none; otherwise https.
    A trailing "/client/v4" on the host is tolerated and dropped (the purger appends it)."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_CLOUDFLARE_API
    if "://" not in host:
        scheme = (schema or "").strip().lower()
        scheme = scheme if scheme in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{int(port)}"
    path = parts.path.rstrip("/")
    if path.endswith("/client/v4"):
        path = path[: -len("/client/v4")]
    return f"{parts.scheme}://{netloc}{path}"


def purger_for(
    provider: str,
    *,
    conn_id: str = "memora_cdn_purge",
    aws_conn_id: str = "memora_s3",
    files_per_request: int = 30,
):
    """Build the purger from Airflow connections (SPEC §10).

    * ``cloudflare``: http connection ``conn_id``; host = API base (default https://api.cloudflare.com, with or
      without scheme, port honoured), password = API token, extra ``zone_id``.
    * ``cloudfront``: extra ``distribution_id`` on ``conn_id``; boto3 client from ``aws_conn_id`` through
      AwsBaseHook(client_type="cloudfront").
    * ``none``: :class:`LogOnlyPurger`.

    A missing connection, token, ``zone_id`` or ``distribution_id`` is a ValueError that names it.
    """
    name = (provider or "none").strip().lower()
    if name == "none":
        return LogOnlyPurger()
    if name == "cloudflare":
        conn = _get_connection(conn_id)
        extra = _extra(conn)
        zone_id = str(extra.get("zone_id") or "").strip()
        if not zone_id:
            raise ValueError(
                f"Airflow connection {conn_id!r}: extra 'zone_id' is missing (needed for Cloudflare purge)"
            )
        token = conn.password or ""
        if not token:
            raise ValueError(f"Airflow connection {conn_id!r}: password (the Cloudflare API token) is empty")
        try:  # keep the token out of task logs even if someone prints it
            from airflow.sdk.log import mask_secret

            mask_secret(token)
        except Exception:  # pragma: no cover
            pass
        api_base = cloudflare_api_base(conn.host, conn.port, getattr(conn, "schema", None))
        kwargs: dict[str, Any] = {}
        for key, cast in (("timeout", float), ("deadline_seconds", float), ("max_attempts", int)):
            if extra.get(key) is not None:
                try:
                    kwargs[key] = cast(extra[key])
                except (TypeError, ValueError):
                    raise ValueError(f"Airflow connection {conn_id!r}: extra {key!r} is not a number") from None
        return CloudflarePurger(api_base, token, zone_id, files_per_request=files_per_request, **kwargs)
    if name == "cloudfront":
        conn = _get_connection(conn_id)
        distribution_id = str(_extra(conn).get("distribution_id") or "").strip()
        if not distribution_id:
            raise ValueError(
                f"Airflow connection {conn_id!r}: extra 'distribution_id' is missing (needed for CloudFront purge)"
            )
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from botocore.config import Config

        from memora_cdn import limits

        config = Config(connect_timeout=limits.CDN_CONNECT_TIMEOUT, read_timeout=limits.CDN_READ_TIMEOUT,
                        retries={"mode": "standard", "max_attempts": 3})
        client = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="cloudfront", config=config).get_conn()
        return CloudFrontPurger(client, distribution_id)
    raise ValueError(f"purge_provider {provider!r} is not one of cloudflare, cloudfront, none")
