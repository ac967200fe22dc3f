"""`make demo`: load the demo content, run `memora_cdn_full_rebuild` through `airflow dags test`, and show
what it published. Expects scripts/airflow_env.sh to be sourced (the Makefile does it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import boto3
import MySQLdb

from memora_cdn.engine import keys
from memora_cdn.engine.publish import list_prefix
from memora_cdn.ops.audit import audit_plan, kind_of_key
from memora_cdn.settings import parse_settings
from memora_cdn_demo import content as demo

REPO = Path(__file__).resolve().parents[1]


def s3_client():
    conn = json.loads(os.environ["AIRFLOW_CONN_MEMORA_S3"])
    return boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"], aws_access_key_id=conn["login"],
                        aws_secret_access_key=conn["password"], region_name=conn["extra"].get("region_name", "us-east-1"))


def load_content(database: str) -> None:
    conn = MySQLdb.connect(host="127.0.0.1", user="root", passwd="", charset="utf8mb4")
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
    conn.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.select_db(database)
    demo.create_schema(conn)
    counts = demo.load(conn, demo.generate(demo.DemoScale()))
    conn.close()
    print(f"demo content loaded into MariaDB database {database!r}: "
          + ", ".join(f"{n} {t.removeprefix('tabMemora ').lower()}" for t, n in counts.items() if n))


def prepare_buckets(settings) -> None:
    s3 = s3_client()
    for bucket in (settings.bucket, settings.media_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass


def run_full_rebuild() -> None:
    airflow = str(Path(sys.executable).with_name("airflow"))
    log = REPO / ".local" / "demo-airflow.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        subprocess.run([airflow, "db", "migrate"], stdout=out, stderr=subprocess.STDOUT, check=True)
        print("running: airflow dags test memora_cdn_full_rebuild   (log: .local/demo-airflow.log)")
        done = subprocess.run([airflow, "dags", "test", "memora_cdn_full_rebuild"], stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text()
    if done.returncode != 0 or "state=success, run_type=manual" not in text:
        print(text[-4000:])
        sys.exit("memora_cdn_full_rebuild did not succeed; see .local/demo-airflow.log")
    for line in text.splitlines():
        if "orphan " in line and "is in no plan" in line:
            print("  reported:", line.split("[warning  ]")[-1].split("[include")[0].strip())


def report(settings, database: str) -> None:
    s3 = s3_client()
    conn = MySQLdb.connect(host="127.0.0.1", user="root", passwd="", db=database, charset="utf8mb4")
    cur = conn.cursor()
    cur.execute("SELECT name FROM `tabMemora Academic Plan` ORDER BY name")
    plans = [r[0] for r in cur.fetchall()]
    print(f"\npublished to s3://{settings.bucket}/ (served at {settings.cdn_base_url}/):")
    print(f"  {'plan':<16} {'files':>5} {'subjects':>8} {'units':>5} {'lessons':>7} {'search':>6} {'bytes':>8}  consistent")
    for plan_id in plans:
        listed = list_prefix(s3, settings.bucket, keys.plan_prefix(plan_id))
        kinds = Counter(kind_of_key(plan_id, k) for k in listed)
        size = sum(o["Size"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket, Prefix=keys.plan_prefix(plan_id)) for o in p.get("Contents", ()))
        problems = audit_plan(s3, settings.bucket, plan_id, settings.media_bucket)
        print(f"  {plan_id:<16} {len(listed):>5} {kinds['subject']:>8} {kinds['unit']:>5} {kinds['lesson']:>7} "
              f"{kinds['search_index'] + kinds['search_shard']:>6} {size:>8}  {'yes' if not problems else problems[:3]}")
    manifest_key = keys.manifest_key(plans[0])
    manifest = json.loads(s3.get_object(Bucket=settings.bucket, Key=manifest_key)["Body"].read())
    print(f"\n{settings.cdn_base_url}/{manifest_key}:")
    print(json.dumps(manifest, indent=2, ensure_ascii=False))


def main() -> None:
    settings = parse_settings(os.environ["AIRFLOW_VAR_MEMORA_CDN_SETTINGS"])
    database = os.environ.get("MEMORA_DB", "memora_demo")
    load_content(database)
    prepare_buckets(settings)
    run_full_rebuild()
    report(settings, database)


if __name__ == "__main__":
    main()
