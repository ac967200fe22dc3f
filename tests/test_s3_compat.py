"""S3-compatible stores: the `memora_s3` client sends and checks flexible checksums only when an operation requires
them (newer boto3 adds CRC32 to every upload, which several S3-compatible stores refuse), unless the connection's
`config_kwargs` extra says otherwise. Against moto behind a proxy that refuses checksummed uploads."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from botocore.exceptions import ClientError

from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.publish import list_prefix
from memora_cdn.orchestration.connections import s3_client
from memora_cdn_demo import content as demo
from tests.standins.s3_proxy import S3FaultProxy
from tests.support import AWS_KEY, AWS_SECRET


@pytest.fixture
def strict_store(s3_server):
    """moto behind a proxy that answers checksummed uploads with 501 NotImplemented."""
    with S3FaultProxy(s3_server.endpoint) as proxy:
        proxy.reject_checksums = True
        yield proxy


def use_connection(monkeypatch, endpoint: str, **extra) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MEMORA_S3", json.dumps({
        "conn_type": "aws", "login": AWS_KEY, "password": AWS_SECRET,
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1", **extra},
    }))


def test_by_default_a_plan_publishes_to_a_store_that_refuses_checksums(monkeypatch, strict_store, settings, content_db):
    use_connection(monkeypatch, strict_store.endpoint)
    client = s3_client(settings)
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"
    assert client.meta.config.signature_version == "s3v4"
    assert client.meta.config.max_pool_connections == settings.upload_concurrency + 4

    _, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(plans=1)))
    result = build_plan("PLAN-2026-0001", db=conn, s3=client, settings=settings)
    assert result.status == "published" and result.uploaded
    assert strict_store.checksum_uploads == 0
    assert keys.manifest_key("PLAN-2026-0001") in list_prefix(client, settings.bucket, keys.plan_prefix("PLAN-2026-0001"))

    # responses are read without asking the store for checksums, and presigned media URLs carry none
    body = client.get_object(Bucket=settings.bucket, Key=keys.manifest_key("PLAN-2026-0001"))["Body"].read()
    assert json.loads(body)
    client.put_object(Bucket=settings.media_bucket, Key="media/a.png", Body=b"png")
    url = client.generate_presigned_url("get_object", Params={"Bucket": settings.media_bucket, "Key": "media/a.png"},
                                        ExpiresIn=600)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and not any("checksum" in k.lower() for k in query)
    assert requests.get(url, timeout=10).content == b"png"
    assert strict_store.checksum_uploads == 0


def test_the_connection_config_kwargs_override_the_defaults(monkeypatch, strict_store, settings):
    use_connection(monkeypatch, strict_store.endpoint, config_kwargs={
        "request_checksum_calculation": "when_supported", "response_checksum_validation": "when_supported",
        "connect_timeout": 7,
    })
    client = s3_client(settings)
    assert client.meta.config.request_checksum_calculation == "when_supported"
    assert client.meta.config.response_checksum_validation == "when_supported"
    assert client.meta.config.connect_timeout == 7
    # what the connection does not set keeps its default
    assert client.meta.config.signature_version == "s3v4"
    assert client.meta.config.max_pool_connections == settings.upload_concurrency + 4
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=settings.bucket, Key="plans/P/x.json", Body=b"{}")
    assert refused.value.response["Error"]["Code"] == "NotImplemented"
    assert strict_store.checksum_uploads == 1

    strict_store.reject_checksums = False  # a store with checksum support (AWS S3) takes it
    client.put_object(Bucket=settings.bucket, Key="plans/P/x.json", Body=b"{}")
    assert strict_store.checksum_uploads == 2
