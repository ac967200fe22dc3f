#!/usr/bin/env bash
# `make airflow`: the whole Airflow (api-server, scheduler, dag-processor, triggerer) on this machine, wired to the
# local stack, with the demo content, the build pool and the DAGs unpaused. Log in as `ops` with the password printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh
export PATH="$PWD/.venv/bin:$PATH"  # standalone starts its components as `airflow ...`
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
# The plan builds' pool ([memora_cdn] build_pool; the DAGs fall back to default_pool without it), created below.
export AIRFLOW__MEMORA_CDN__BUILD_POOL="${AIRFLOW__MEMORA_CDN__BUILD_POOL:-memora_cdn_builds}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW__API__PORT}/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-ops:admin}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/passwords.json"
mkdir -p "$AIRFLOW_HOME"
if [ ! -s "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ]; then
  python3 -c "import json, secrets; print(json.dumps({'ops': secrets.token_urlsafe(12)}))" > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
fi
bash scripts/demo_stack.sh
PY=.venv/bin/python
.venv/bin/airflow db migrate >/dev/null
.venv/bin/airflow dags reserialize >/dev/null 2>&1 || true
for dag in memora_cdn_sync memora_cdn_full_rebuild; do .venv/bin/airflow dags unpause "$dag" >/dev/null 2>&1 || true; done
.venv/bin/airflow pools set "$AIRFLOW__MEMORA_CDN__BUILD_POOL" "${MEMORA_BUILD_POOL_SLOTS:-4}" "Memora CDN plan builds (both DAGs)" >/dev/null
echo "Airflow UI: http://127.0.0.1:${AIRFLOW__API__PORT}/  user: ops  password: $($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['ops'])" "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")"
echo "Memora CDN dashboard: http://127.0.0.1:${AIRFLOW__API__PORT}/memora-cdn/"
exec .venv/bin/airflow standalone
