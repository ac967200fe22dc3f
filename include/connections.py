"""The Airflow connections of SPEC §10, turned into clients. Imported only when a task runs."""
from __future__ import annotations

from include.settings import MYSQL_CONN_ID, S3_CONN_ID, Settings


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
