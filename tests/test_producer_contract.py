"""The producer (installed in the Frappe bench) and the exporter (installed in Airflow) are separate packages:
the producer imports neither Airflow nor `memora_cdn`, and the key names and fallback row it writes are what
the exporter reads. Checked here against the exporter's own constants and functions, on real MariaDB and Redis.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import redis as redis_lib

from memora_cdn.tracking import registry, sync_log
from memora_cdn_producer import contract, queue_plans
from tests.producer_support import frappe_database
from tests.support import REDIS_PORT, REPO

REDIS_DB = 13


def test_the_producer_imports_neither_airflow_nor_the_exporter_nor_frappe():
    """A fresh interpreter whose import system refuses `airflow*`, `memora_cdn`/`memora_cdn.*` and `frappe*`
    imports the package and every module but hooks (which needs Frappe by design)."""
    code = textwrap.dedent("""
        import importlib.abc, sys

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.split(".")[0]
                if top in ("airflow", "memora_cdn", "frappe") or top.startswith("airflow"):
                    raise ImportError(f"refused import of {name}")
                return None

        sys.meta_path.insert(0, Refuse())
        import memora_cdn_producer
        import memora_cdn_producer.contract, memora_cdn_producer.plans, memora_cdn_producer.queue
        assert memora_cdn_producer.__file__.startswith(sys.argv[1]), memora_cdn_producer.__file__
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("airflow", "memora_cdn", "frappe"))
        assert not bad, bad
        try:
            import memora_cdn_producer.hooks
        except ImportError as exc:
            assert "frappe" in str(exc), exc
        else:
            raise AssertionError("hooks imported without frappe")
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "producer")}
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "producer")], cwd="/", env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_refusing_import_hook_is_not_vacuous():
    code = ("import importlib.abc, sys\n"
            "class R(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'memora_cdn': raise ImportError('refused ' + name)\n"
            "sys.meta_path.insert(0, R())\n"
            "import memora_cdn.tracking.registry\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    done = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "refused memora_cdn" in done.stderr


def test_the_redis_keys_are_the_exporters():
    assert contract.PREFIX == registry.PREFIX
    assert contract.PENDING == registry.PENDING
    assert contract.PENDING_SINCE == registry.PENDING_SINCE  # the debounce's times (issue 14)


def test_the_fallback_row_is_the_exporters():
    assert contract.SYNC_LOG_TABLE == sync_log.TABLE
    assert contract.FALLBACK_STATUS in sync_log.STATUSES and contract.FALLBACK_STATUS == "Queued"
    assert contract.FALLBACK_TRIGGER in sync_log.TRIGGERS and contract.FALLBACK_TRIGGER == "Fallback Recovery"


@pytest.mark.parametrize("version", ("002", "008"))
def test_the_exporter_drains_the_rows_and_reads_the_keys_the_producer_writes(version):
    """What queue_plans writes, the exporter's own code counts, takes and claims."""
    client = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    try:
        with frappe_database(version) as (_, conn):
            assert queue_plans(["Plan A", "خطة"], db=conn, redis=None, reason="test") == "fallback"
            assert sync_log.count_waiting(conn)[0] == 2
            fallback, retries = sync_log.take_waiting(conn)
            conn.commit()
            assert fallback == sorted(["Plan A", "خطة"]) and retries == []
            assert sync_log.count_waiting(conn)[0] == 0

        with frappe_database(version) as (_, conn):
            assert queue_plans(["Plan A", "P/2"], db=conn, redis=client, now=1767600000.5) == "redis"
        reg = registry.Registry(client)
        assert reg.pending() == {"Plan A", "P/2"}
        assert client.zrange(contract.PENDING_SINCE, 0, -1, withscores=True) == [(b"P/2", 1767600000.5),
                                                                                  (b"Plan A", 1767600000.5)]
        claim = reg.claim("run-1", 10)
        assert sorted(claim.plans) == ["P/2", "Plan A"]
        assert claim.pending_since == {"P/2": 1767600000.5, "Plan A": 1767600000.5}
        assert client.zcard(contract.PENDING_SINCE) == 0  # the claim took the times with the plans
    finally:
        client.flushdb()
        client.close()
