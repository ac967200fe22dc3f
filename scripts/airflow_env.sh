# Sourced by the Makefile's recipes: a local Airflow home (SQLite metadata DB) wired to this repository and to the
# local stack. Everything can be overridden from the environment.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# memora_cdn itself is installed in the venv (pip install -e .); include/ is on the path only for the demo content
# generator (memora_cdn_demo), which is development-only and not part of the package.
export PYTHONPATH="$REPO/include${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO/.local/airflow}"
# (the JSON defaults below are not written as "${VAR:-{...}}": bash ends that expansion at the JSON's first "}"
# and appends the rest to a value given from the environment)
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY="${AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY:-5}"
export MEMORA_DB="${MEMORA_DB:-memora_demo}"
export MEMORA_S3_PORT="${MEMORA_S3_PORT:-5055}"
[ -n "${AIRFLOW_CONN_MEMORA_MYSQL:-}" ] || export AIRFLOW_CONN_MEMORA_MYSQL="{\"conn_type\": \"mysql\", \"host\": \"127.0.0.1\", \"port\": 3306, \"login\": \"root\", \"password\": \"\", \"schema\": \"$MEMORA_DB\", \"extra\": {\"charset\": \"utf8mb4\"}}"
[ -n "${AIRFLOW_CONN_MEMORA_REDIS:-}" ] || export AIRFLOW_CONN_MEMORA_REDIS="{\"conn_type\": \"redis\", \"host\": \"127.0.0.1\", \"port\": 6379, \"extra\": {\"db\": 0}}"
[ -n "${AIRFLOW_CONN_MEMORA_S3:-}" ] || export AIRFLOW_CONN_MEMORA_S3="{\"conn_type\": \"aws\", \"login\": \"memora-local\", \"password\": \"memora-local-secret\", \"extra\": {\"endpoint_url\": \"http://127.0.0.1:$MEMORA_S3_PORT\", \"region_name\": \"us-east-1\"}}"
[ -n "${AIRFLOW_VAR_MEMORA_CDN_SETTINGS:-}" ] || export AIRFLOW_VAR_MEMORA_CDN_SETTINGS="{\"bucket\": \"memora-cdn\", \"media_bucket\": \"memora-media\", \"cdn_base_url\": \"http://127.0.0.1:$MEMORA_S3_PORT/memora-cdn\", \"media_base_url\": \"https://media.memora.test\", \"purge_provider\": \"none\"}"
