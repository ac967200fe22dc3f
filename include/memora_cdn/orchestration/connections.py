"""The Airflow connections (`memora_mysql`, `memora_s3`, `memora_redis`), turned into clients. Imported only when a
task runs (or by the CLI and the dashboard)."""
from __future__ import annotations

from memora_cdn.settings import MYSQL_CONN_ID, S3_CONN_ID, Settings


def mysql_connection():
    """A DB-API connection to the Frappe database (`memora_mysql`)."""
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    return MySqlHook(mysql_conn_id=MYSQL_CONN_ID).get_conn()


# boto3 >= 1.36 computes a CRC32 checksum for every upload (a header, or an aws-chunked trailer when streaming) and
# validates response checksums. Several S3-compatible stores (Cloudflare R2, older MinIO, Ceph RGW) reject or lack
# them, so checksums are computed and validated only when the operation requires them. The `memora_s3`
# connection's `config_kwargs` extra overrides any of these (e.g. "when_supported" against AWS S3).
S3_CLIENT_DEFAULTS = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
    "retries": {"mode": "standard", "max_attempts": 5},
    "signature_version": "s3v4",  # presigned media URLs: SigV4 (X-Amz-Expires up to 7 days)
}


def s3_client_config(settings: Settings, configured=None):
    """The botocore `Config` of the S3 client: `S3_CLIENT_DEFAULTS`, a connection pool sized for parallel uploads,
    then what `configured` (the connection's `config_kwargs`, a botocore `Config`) sets, which wins."""
    from botocore.config import Config

    config = Config(max_pool_connections=settings.upload_concurrency + 4, **S3_CLIENT_DEFAULTS)
    return config.merge(configured) if configured is not None else config


def s3_client(settings: Settings):
    """A boto3 S3 client from `memora_s3` (`endpoint_url` extra for S3-compatible stores; `config_kwargs` extra
    over `s3_client_config`'s defaults). The media presigner signs with this client too."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    # A hook given a `config` ignores the connection's `config_kwargs`: read them first, then merge them in.
    configured = S3Hook(aws_conn_id=S3_CONN_ID).conn_config.botocore_config
    return S3Hook(aws_conn_id=S3_CONN_ID, config=s3_client_config(settings, configured)).get_conn()


def redis_client():
    """The change registry's Redis (`memora_redis`); bytes in, bytes out (no decode_responses)."""
    from airflow.providers.redis.hooks.redis import RedisHook

    from memora_cdn.settings import REDIS_CONN_ID

    return RedisHook(redis_conn_id=REDIS_CONN_ID).get_conn()


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
