#!/usr/bin/env bash
# `make airflow-celery`: a CeleryExecutor Airflow as separate processes on this machine, without Docker:
# PostgreSQL metadata DB, Redis as the Celery broker (its own database number), api-server, scheduler,
# dag-processor, triggerer and TWO Celery workers with distinct hostnames. It is configured with the same
# environment variable names as docker-compose.yaml's x-airflow-common (tests/test_compose.py checks that they
# agree, using `scripts/airflow_celery.sh env`).
#
#   scripts/airflow_celery.sh start    # start in the background, wait until healthy, print URL and login
#   scripts/airflow_celery.sh stop     # stop every process it started (TERM, then KILL after a grace period)
#   scripts/airflow_celery.sh status   # which of its processes run
#   scripts/airflow_celery.sh env      # the Airflow environment it runs with (NAME=value lines; secrets masked)
#
# State, logs and pid files live in MEMORA_CELERY_STATE (default .local/airflow-celery, gitignored).
# Everything below can be overridden from the environment (the e2e tests do: their own database, ports, broker
# database, Memora connections). The Memora connections and Variable come from scripts/airflow_env.sh.
#
# The two workers run in their own UTS namespaces (`unshare --uts`) with the hostnames memora-worker-1/-2, so
# that they are two hosts to Airflow and Celery as two containers are (the task instances' `hostname`,
# the Celery node names) although they share this machine.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

STATE="${MEMORA_CELERY_STATE:-$REPO/.local/airflow-celery}"
VENV="${MEMORA_VENV:-$REPO/.venv}"
AIRFLOW="$VENV/bin/airflow"
PY="$VENV/bin/python"
WORKERS=(memora-worker-1 memora-worker-2)
# start order; stop goes in reverse
COMPONENTS=(api-server scheduler dag-processor triggerer "${WORKERS[@]}")

mkdir -p "$STATE/pids" "$STATE/logs"

# ---------------------------------------------------------------------------------------------------------------
# The environment: Memora's connections and Variable from airflow_env.sh, then the cluster's settings under the
# names docker-compose.yaml uses.
# ---------------------------------------------------------------------------------------------------------------
export AIRFLOW_HOME="$STATE/home"
source "$REPO/scripts/airflow_env.sh"   # connections, Variable, DAGs/plugins folders, PYTHONPATH (demo package)
export PATH="$VENV/bin:$PATH"

secret() {  # a secret generated once per state folder (shared by every component, as compose shares its)
  local file="$STATE/secrets/$1"
  if [ ! -s "$file" ]; then
    mkdir -p "$STATE/secrets" && chmod 700 "$STATE/secrets"
    (umask 077; "$PY" -c "$2" > "$file")
  fi
  cat "$file"
}

PG_HOST="${MEMORA_PG_HOST:-127.0.0.1}"
PG_PORT="${MEMORA_PG_PORT:-5432}"
PG_USER="${MEMORA_PG_USER:-airflow}"
PG_PASSWORD="${MEMORA_PG_PASSWORD:-airflow}"
PG_DB="${MEMORA_CELERY_PG_DB:-memora_airflow}"
BROKER_PORT="${MEMORA_CELERY_REDIS_PORT:-6379}"
BROKER_DB="${MEMORA_CELERY_REDIS_DB:-1}"   # the change registry (memora_redis) uses database 0 by default
API_PORT="${AIRFLOW__API__PORT:-8090}"      # `make airflow` (standalone) has 8080

export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql+psycopg2://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$BROKER_PORT/$BROKER_DB"
export AIRFLOW__CORE__FERNET_KEY="${AIRFLOW__CORE__FERNET_KEY:-$(secret fernet_key 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=false
export AIRFLOW__CORE__LOAD_EXAMPLES=false
export AIRFLOW__API__PORT="$API_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
export AIRFLOW__API__SECRET_KEY="${AIRFLOW__API__SECRET_KEY:-$(secret api_secret_key 'import secrets; print(secrets.token_urlsafe(32))')}"
export AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW__API_AUTH__JWT_SECRET:-$(secret jwt_secret 'import secrets; print(secrets.token_urlsafe(32))')}"
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=true
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT="${AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT:-8974}"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-8794}"
# the dedicated build pool: the DAGs read its name from [memora_cdn] build_pool (default_pool without it)
export AIRFLOW__MEMORA_CDN__BUILD_POOL="${AIRFLOW__MEMORA_CDN__BUILD_POOL:-memora_cdn_builds}"
BUILD_POOL_SLOTS="${MEMORA_CDN_BUILD_POOL_SLOTS:-4}"
export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CELERY__WORKER_CONCURRENCY:-4}"
# Airflow's own simple auth manager (compose runs the FAB one, which needs the FAB provider in the image)
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-ops:admin}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$STATE/passwords.json"

# ---------------------------------------------------------------------------------------------------------------
pidfile() { echo "$STATE/pids/$1.pid"; }

running() {  # component -> 0 when its process group is alive
  local f; f="$(pidfile "$1")"
  [ -s "$f" ] && kill -0 -- "-$(cat "$f")" 2>/dev/null
}

launch() {  # component, command...  (own session = own process group; stdout+stderr to logs/<component>.log)
  local name="$1"; shift
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

unshare_uts() {  # a new UTS namespace (its own hostname); unprivileged users get it inside a user namespace
  if [ "$(id -u)" -eq 0 ]; then echo "unshare --uts"; else echo "unshare --user --map-root-user --uts"; fi
}

health() {  # prints what is not healthy yet; empty when everything is
  "$PY" - "$API_PORT" "${WORKERS[@]}" <<'PY'
import json, sys, urllib.request
port, workers = sys.argv[1], sys.argv[2:]
missing = []
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
        health = json.load(r)
    missing += [c for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                if health.get(c, {}).get("status") != "healthy"]
except Exception:
    missing.append("api-server")
if not missing:
    from airflow.providers.celery.executors.celery_executor import app
    replies = app.control.inspect(timeout=3).ping() or {}
    missing += [w for w in workers if f"celery@{w}" not in replies]
print("waiting-for:", " ".join(missing))  # Airflow may log to stdout too: only this line counts
PY
}

wait_for_postgres() {
  for _ in $(seq 1 60); do pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && return 0; sleep 0.5; done
  echo "PostgreSQL does not answer on $PG_HOST:$PG_PORT (run scripts/services.sh)" >&2; return 1
}

start() {
  local started=0 name
  for name in "${COMPONENTS[@]}"; do running "$name" && started=1; done
  if [ "$started" = 1 ]; then
    echo "the Celery cluster in $STATE is already running (scripts/airflow_celery.sh stop first)" >&2; status; return 1
  fi
  local t0=$SECONDS
  wait_for_postgres
  export PGPASSWORD="$PG_PASSWORD"
  if ! psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
  fi
  redis-cli -h 127.0.0.1 -p "$BROKER_PORT" ping >/dev/null || { echo "no Redis on 127.0.0.1:$BROKER_PORT (the broker)" >&2; return 1; }
  if [ ! -s "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" ]; then
    (umask 077; "$PY" -c "import json, secrets; print(json.dumps({'ops': secrets.token_urlsafe(12)}))" > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
  fi
  mkdir -p "$AIRFLOW_HOME"
  echo "migrating the metadata DB $PG_DB on $PG_HOST:$PG_PORT"
  "$AIRFLOW" db migrate >>"$STATE/logs/init.log" 2>&1 || { tail -30 "$STATE/logs/init.log" >&2; return 1; }
  "$AIRFLOW" pools set "$AIRFLOW__MEMORA_CDN__BUILD_POOL" "$BUILD_POOL_SLOTS" "Memora CDN plan builds (both DAGs)" \
    >>"$STATE/logs/init.log" 2>&1 || { tail -30 "$STATE/logs/init.log" >&2; return 1; }

  launch api-server "$AIRFLOW" api-server
  launch scheduler "$AIRFLOW" scheduler
  launch dag-processor "$AIRFLOW" dag-processor
  launch triggerer "$AIRFLOW" triggerer
  # Each worker: its own hostname; no log server (all components share $AIRFLOW_HOME/logs on this machine, the
  # API server reads the task logs from there).
  for name in "${WORKERS[@]}"; do
    launch "$name" $(unshare_uts) -- bash -c 'hostname "$0" && exec "$@"' "$name" \
      "$AIRFLOW" celery worker --skip-serve-logs
  done

  local deadline=$((SECONDS + ${MEMORA_CELERY_STARTUP_TIMEOUT:-300})) missing="" out=""
  while :; do
    for name in "${COMPONENTS[@]}"; do
      if ! running "$name"; then
        echo "$name exited during start; last lines of $STATE/logs/$name.log:" >&2
        tail -40 "$STATE/logs/$name.log" >&2; stop >&2; return 1
      fi
    done
    out="$(health 2>&1)" || true
    if grep -q '^waiting-for:' <<<"$out"; then
      missing="$(sed -n 's/^waiting-for: *//p' <<<"$out" | tail -1)"
    else
      missing="the health check ($(tail -1 <<<"$out"))"
    fi
    [ -z "$missing" ] && break
    if [ $SECONDS -ge $deadline ]; then
      echo "the Celery cluster did not become healthy (waiting for: $missing); logs in $STATE/logs" >&2
      stop >&2; return 1
    fi
    sleep 3
  done
  echo "Celery cluster up in $((SECONDS - t0)) s: api-server, scheduler, dag-processor, triggerer, ${WORKERS[*]}"
  echo "Airflow UI: http://127.0.0.1:$API_PORT/  user: ops  password: $("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['ops'])" "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")"
  echo "logs: $STATE/logs   stop: make airflow-celery-stop"
}

stop() {
  local name pids=() grace="${MEMORA_CELERY_STOP_GRACE:-60}"
  for name in $(printf '%s\n' "${COMPONENTS[@]}" | tac); do
    if running "$name"; then
      kill -TERM -- "-$(cat "$(pidfile "$name")")" 2>/dev/null || true
      pids+=("$name")
    fi
  done
  local deadline=$((SECONDS + grace))
  for name in "${pids[@]}"; do
    while running "$name" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    if running "$name"; then
      echo "$name did not stop within ${grace} s: killing it" >&2
      kill -KILL -- "-$(cat "$(pidfile "$name")")" 2>/dev/null || true
    fi
  done
  for name in "${COMPONENTS[@]}"; do rm -f "$(pidfile "$name")"; done
  [ ${#pids[@]} -eq 0 ] && echo "the Celery cluster in $STATE was not running" || echo "stopped: ${pids[*]}"
}

status() {
  local name
  for name in "${COMPONENTS[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$(pidfile "$name")"))"; else echo "$name: stopped"; fi
  done
}

print_env() {  # the Airflow environment of every component, secrets masked (tests/test_compose.py compares it)
  env | grep -E '^(AIRFLOW|_AIRFLOW)' | sort | sed -E \
    -e 's/^((AIRFLOW__API__SECRET_KEY|AIRFLOW__API_AUTH__JWT_SECRET|AIRFLOW__CORE__FERNET_KEY)=).*/\1***/'
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
