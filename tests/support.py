"""Real local services for the tests: MariaDB databases, a moto S3 server, connection env vars.

Nothing here is mocked: MariaDB and Redis are the machine's servers, S3 is moto's standalone
server in its own process. A missing service fails the test that needs it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import boto3
import MySQLdb

REPO = Path(__file__).resolve().parents[1]
# for subprocesses (Airflow, the CLI): this checkout's package first, then the development-only demo package
PYTHONPATH = os.pathsep.join([str(REPO / "include"), str(REPO)])
MYSQL = dict(host=os.environ.get("MEMORA_TEST_MYSQL_HOST", "127.0.0.1"),
             port=int(os.environ.get("MEMORA_TEST_MYSQL_PORT", "3306")),
             user=os.environ.get("MEMORA_TEST_MYSQL_USER", "root"),
             passwd=os.environ.get("MEMORA_TEST_MYSQL_PASSWORD", ""))
# the machine's Redis; another port (MEMORA_TEST_REDIS_PORT) lets two checkouts run their suites side by side
REDIS_PORT = int(os.environ.get("MEMORA_TEST_REDIS_PORT", "6379"))
AWS_KEY = "memora-test-key"
AWS_SECRET = "memora-test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mysql_connect(database: str | None = None):
    kwargs = dict(MYSQL, charset="utf8mb4", autocommit=False)
    if database:
        kwargs["db"] = database
    return MySQLdb.connect(**kwargs)


# The Memora app's schemas the tests run on: its 002 and 008 tables as Frappe builds them from the DocType JSON,
# and a 002 database migrated to 008 (columns added, none dropped: `Memora Subject.is_public` stays).
SCHEMA_VERSIONS = ("002", "008", "002to008")
LATEST_SCHEMA = "008"


def rows_version(schema_version: str) -> str:
    """The app version whose rows a database of `schema_version` holds (a migrated one: the old version's)."""
    return schema_version.split("to")[0]


@contextmanager
def scratch_database(prefix: str = "memora_t", version: str = LATEST_SCHEMA):
    """A new, empty database with the Frappe schema of `version` (see SCHEMA_VERSIONS); dropped afterwards."""
    from memora_cdn_demo.content import create_schema, migrate_schema

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = mysql_connect()
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn = mysql_connect(name)
    try:
        old, _, new = version.partition("to")
        create_schema(conn, old)
        if new:
            migrate_schema(conn, old, new)
        conn.commit()
        yield name, conn
    finally:
        conn.close()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


class S3Server:
    """moto's S3-compatible server in its own process (so it can be stopped and restarted)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"moto S3 server exited with {self.proc.returncode}")
                time.sleep(0.1)
        raise RuntimeError("moto S3 server did not start within 30 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def client(self):
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=AWS_KEY,
                            aws_secret_access_key=AWS_SECRET, region_name="us-east-1",
                            config=Config(signature_version="s3v4", max_pool_connections=32))

    def airflow_conn(self) -> str:
        return json.dumps({"conn_type": "aws", "login": AWS_KEY, "password": AWS_SECRET,
                           "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}})


def mysql_airflow_conn(database: str) -> str:
    return json.dumps({"conn_type": "mysql", "host": MYSQL["host"], "port": MYSQL["port"], "login": MYSQL["user"],
                       "password": MYSQL["passwd"], "schema": database, "extra": {"charset": "utf8mb4"}})
