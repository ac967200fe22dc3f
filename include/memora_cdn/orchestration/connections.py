"""The Airflow connections of SPEC §10, turned into clients. Imported only when a task runs."""
from __future__ import annotations

from memora_cdn.settings import MYSQL_CONN_ID, S3_CONN_ID, Settings


def mysql_connection():
    """A DB-API connection to the Frappe database (`memora_mysql`)."""
    from airflow.providers.mysql.hooks.mysql import MySqlHook

    return MySqlHook(mysql_conn_id=MYSQL_CONN_ID).get_conn()


def s3_client(settings: Settings):
    """A boto3 S3 client from `memora_s3` (`endpoint_url` extra for S3-compatible stores), sized for parallel uploads."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    config = Config(
        max_pool_connections=settings.upload_concurrency + 4,
        retries={"mode": "standard", "max_attempts": 5},
        signature_version="s3v4",  # presigned media URLs: SigV4 (X-Amz-Expires up to 7 days)
    )
    return S3Hook(aws_conn_id=S3_CONN_ID, config=config).get_conn()


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
