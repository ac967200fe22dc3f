#!/usr/bin/env bash
# Make sure what the bundle needs locally is installed and running: the MySQL client headers (to build
# mysqlclient), MariaDB, Redis and PostgreSQL (the metadata DB of `make airflow-celery`), started from the
# system packages when they are not running.
set -euo pipefail

need_apt=()
dpkg -s default-libmysqlclient-dev >/dev/null 2>&1 || need_apt+=(default-libmysqlclient-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
# the dashboard's browser test: Debian's Chromium and its driver (never a downloaded browser)
if [ "${MEMORA_WITH_BROWSER:-0}" = "1" ]; then  # make test sets it
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

wait_for() {  # name, command
  for _ in $(seq 1 60); do eval "$2" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "$1 did not come up" >&2; return 1
}

if ! mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
  echo "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for MariaDB "mysqladmin -h 127.0.0.1 -u root ping"
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/memora.log
  wait_for Redis "redis-cli -h 127.0.0.1 -p 6379 ping"
fi
# PostgreSQL: Debian's cluster (the newest installed version), and the `airflow` role the Celery cluster
# (scripts/airflow_celery.sh) and its tests log in with. The role is made through the local socket as the
# `postgres` system user, so this works with Debian's default pg_hba.conf (password auth on TCP).
PG_PORT="${MEMORA_PG_PORT:-5432}"
if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
  echo "starting PostgreSQL"
  pg_version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$pg_version main"; then
    $SUDO pg_createcluster "$pg_version" main -p "$PG_PORT" >/dev/null
  fi
  $SUDO pg_ctlcluster "$pg_version" main start
  wait_for PostgreSQL "pg_isready -q -h 127.0.0.1 -p $PG_PORT"
fi
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
if ! PGPASSWORD=airflow psql -h 127.0.0.1 -p "$PG_PORT" -U airflow -d postgres -Atqc "SELECT 1" >/dev/null 2>&1; then
  echo "creating the PostgreSQL role airflow (CREATEDB) for the Airflow metadata DB"
  as_postgres psql -p "$PG_PORT" -qAt -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'airflow') THEN
    CREATE ROLE airflow LOGIN CREATEDB PASSWORD 'airflow';
  ELSE
    ALTER ROLE airflow LOGIN CREATEDB PASSWORD 'airflow';
  END IF;
END $$;
SQL
fi
echo "MariaDB, Redis and PostgreSQL are up"
