from __future__ import annotations

import uuid

import pytest

from memora_cdn.settings import parse_settings
from tests.support import LATEST_SCHEMA, REDIS_PORT, S3Server, rows_version, scratch_database


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def settings(s3):
    """Settings with a fresh bucket (and media bucket) of this test's own."""
    suffix = uuid.uuid4().hex[:8]
    bucket, media = f"memora-cdn-{suffix}", f"memora-media-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=media)
    return parse_settings({"bucket": bucket, "media_bucket": media, "cdn_base_url": "https://cdn.memora.test",
                           "media_base_url": "https://media.memora.test", "upload_concurrency": 8})


@pytest.fixture
def schema_version(request):
    """The Memora app schema of `content_db`: 008 unless a test parametrizes it (indirect) over
    `tests.support.SCHEMA_VERSIONS` ("002", "008", "002to008")."""
    return getattr(request, "param", LATEST_SCHEMA)


@pytest.fixture
def content_version(schema_version):
    """The app version of the rows to load into `content_db` (`demo.generate(..., version=content_version)`)."""
    return rows_version(schema_version)


@pytest.fixture
def content_db(schema_version):
    """(database name, connection) of an empty database with the Frappe schema of `schema_version`."""
    with scratch_database(version=schema_version) as db:
        yield db


@pytest.fixture
def redis_db():
    """A real Redis connection on database 15, emptied before and after the test."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=REDIS_PORT, db=15)
    client.ping()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def registry(redis_db):
    from memora_cdn.tracking.registry import Registry

    return Registry(redis_db)


@pytest.fixture
def cloudflare():
    from tests.standins.cloudflare import CloudflareStandIn

    with CloudflareStandIn(token="cf-test-token-123", zone_id="zone-abc") as standin:
        yield standin
