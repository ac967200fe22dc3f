"""The Airflow connections of SPEC §10 (`memora_mysql`, `memora_s3`, `memora_redis`), turned into clients.
Imported only when a task runs (or by the CLI and the dashboard).

Every client has connect and read timeouts (sizes in `memora_cdn.limits`, explained in docs/operations.md), so a
hung database, Redis, S3 or CDN call fails its build instead of holding a run: MySQL through the connection
extras `connect_timeout`, `read_timeout`, `write_timeout` (defaults below when the extra is not set), Redis through
`socket_connect_timeout` / `socket_timeout`, S3 through botocore's `connect_timeout` / `read_timeout` and a bounded
number of attempts.
"""
from __future__ import annotations

from typing import Any

from memora_cdn import limits
from memora_cdn.settings import MYSQL_CONN_ID, S3_CONN_ID, Settings

MYSQL_TIMEOUT_DEFAULTS = {
    "connect_timeout": limits.MYSQL_CONNECT_TIMEOUT,
    "read_timeout": limits.MYSQL_READ_TIMEOUT,
    "write_timeout": limits.MYSQL_WRITE_TIMEOUT,
}


def mysql_timeouts(extra: dict[str, Any]) -> dict[str, int]:
    """The timeouts a MySQLdb connection gets: the connection extra's, else the defaults (whole seconds > 0)."""
    out = {}
    for key, default in MYSQL_TIMEOUT_DEFAULTS.items():
        value = extra.get(key, default)
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"Airflow connection {MYSQL_CONN_ID!r}: extra {key!r} must be a whole number of "
                             f"seconds, got {value!r}") from None
        if value < 1:
            raise ValueError(f"Airflow connection {MYSQL_CONN_ID!r}: extra {key!r} must be at least 1 s, got {value}")
        out[key] = value
    return out


def mysql_connection():
    """A DB-API connection to the Frappe database (`memora_mysql`), with connect/read/write timeouts."""
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    class TimedMySqlHook(MySqlHook):
        # MySqlHook passes no timeout to the client: add them to the config it builds from the connection.
        def _get_conn_config_mysql_client(self, conn):
            config = super()._get_conn_config_mysql_client(conn)
            config.update(mysql_timeouts(conn.extra_dejson))
            return config

        def _get_conn_config_mysql_connector_python(self, conn):
            config = super()._get_conn_config_mysql_connector_python(conn)
            timeouts = mysql_timeouts(conn.extra_dejson)
            config["connection_timeout"] = timeouts["connect_timeout"]
            config["read_timeout"] = timeouts["read_timeout"]
            config["write_timeout"] = timeouts["write_timeout"]
            return config

    return TimedMySqlHook(mysql_conn_id=MYSQL_CONN_ID).get_conn()


# boto3 >= 1.36 computes a CRC32 checksum for every upload (a header, or an aws-chunked trailer when streaming) and
# validates response checksums. Several S3-compatible stores (Cloudflare R2, older MinIO, Ceph RGW) reject or lack
# them, so checksums are computed and validated only when the operation requires them. The `memora_s3`
# connection's `config_kwargs` extra overrides any of these (e.g. "when_supported" against AWS S3).
def s3_client_defaults() -> dict:
    """The S3 client's defaults (read at call time: the limits are module constants tests may tune)."""
    return {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        # a hung S3 call fails the build instead of holding the run (sizes in memora_cdn.limits)
        "connect_timeout": limits.S3_CONNECT_TIMEOUT,
        "read_timeout": limits.S3_READ_TIMEOUT,
        "retries": {"mode": "standard", "max_attempts": limits.S3_MAX_ATTEMPTS},
        "signature_version": "s3v4",  # presigned media URLs: SigV4 (X-Amz-Expires up to 7 days)
    }


def s3_client_config(settings: Settings, configured=None):
    """The botocore `Config` of the S3 client: `s3_client_defaults()`, a connection pool sized for parallel uploads,
    then what `configured` (the connection's `config_kwargs`, a botocore `Config`) sets, which wins."""
    from botocore.config import Config

    config = Config(max_pool_connections=settings.upload_concurrency + 4, **s3_client_defaults())
    return config.merge(configured) if configured is not None else config


def s3_client(settings: Settings):
    """A boto3 S3 client from `memora_s3` (`endpoint_url` extra for S3-compatible stores; `config_kwargs` extra
    over `s3_client_config`'s defaults). The media presigner signs with this client too."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    # A hook given a `config` ignores the connection's `config_kwargs`: read them first, then merge them in.
    configured = S3Hook(aws_conn_id=S3_CONN_ID).conn_config.botocore_config
    return S3Hook(aws_conn_id=S3_CONN_ID, config=s3_client_config(settings, configured)).get_conn()


REDIS_TIMEOUTS = {"socket_connect_timeout": limits.REDIS_CONNECT_TIMEOUT,
                  "socket_timeout": limits.REDIS_SOCKET_TIMEOUT}


def redis_client():
    """The change registry's Redis (`memora_redis`); bytes in, bytes out (no decode_responses); with timeouts.

    RedisHook passes no socket timeouts to the client: they are set on its connection pool before the first
    connection is made (the extras `socket_connect_timeout` / `socket_timeout` override the defaults)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    from memora_cdn.settings import REDIS_CONN_ID

    hook = RedisHook(redis_conn_id=REDIS_CONN_ID)
    client = hook.get_conn()
    extra = hook.get_connection(REDIS_CONN_ID).extra_dejson
    timeouts = {key: float(extra.get(key, default)) for key, default in REDIS_TIMEOUTS.items()}
    pool = getattr(client, "connection_pool", None)
    if pool is not None:  # a cluster client has one pool per node and its own timeouts
        pool.connection_kwargs.update(timeouts)
    return client


def registry(required: bool = True):
    """A `Registry` on `memora_redis`; None when the connection is not configured and not `required`
    (a laptop's `airflow dags test memora_cdn_full_rebuild` needs only MySQL and S3)."""
    from memora_cdn.tracking.registry import Registry
    from memora_cdn.settings import REDIS_CONN_ID

    if not required:
        from airflow.sdk import Connection

        try:
            Connection.get(REDIS_CONN_ID)
        except Exception:
            return None
    return Registry(redis_client())
