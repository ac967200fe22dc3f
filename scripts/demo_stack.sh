#!/usr/bin/env bash
# The demo side of a local Airflow (`make airflow`, `make airflow-celery`): the demo content in MEMORA_DB (loaded
# once) and the buckets the settings Variable names on the local S3. Expects scripts/airflow_env.sh to be sourced.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${MEMORA_VENV:-$PWD/.venv}/bin/python"
if ! mysql -h 127.0.0.1 -u root -e "SELECT 1 FROM \`$MEMORA_DB\`.\`tabMemora Academic Plan\` LIMIT 1" >/dev/null 2>&1; then
  "$PY" -m memora_cdn_demo.content --database "$MEMORA_DB"
fi
"$PY" - <<'PY'
import json, os, boto3
conn = json.loads(os.environ["AIRFLOW_CONN_MEMORA_S3"]); settings = json.loads(os.environ["AIRFLOW_VAR_MEMORA_CDN_SETTINGS"])
s3 = boto3.client("s3", endpoint_url=conn["extra"]["endpoint_url"], aws_access_key_id=conn["login"],
                  aws_secret_access_key=conn["password"], region_name="us-east-1")
for bucket in (settings.get("bucket", "memora-cdn"), settings.get("media_bucket", "memora-media")):
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
PY
