"""Every time limit of the export in one place (docs/operations.md explains each size).

No imports: the DAG files read these at parse time, the build path and the connections at run time.

Sizes come from the benchmark (bench/RESULTS.md): a cold build of the largest benchmark plan (2000 lessons,
2,353 files) takes 12 s (P1, median; 13.1 s worst run), a 4000-lesson plan 25.5 s, a no-change rebuild 1.1 s
(P2/P5), and a whole nightly run of 20 such plans 22.4 s. A bound is that figure times a safety factor large
enough for a loaded worker and a slower store, and small enough that a hung call is noticed within minutes.
"""
from __future__ import annotations

# -- Airflow tasks (execution_timeout) and runs (dagrun_timeout), in seconds ------------------------------

# One plan's build: 15x the cold build of the 2000-lesson plan (12 s), 7x the 4000-lesson one (25.5 s). The build
# lock stops being renewed at this age too, so a hung build's lock expires within lock_ttl_seconds after it.
BUILD_TIMEOUT = 180
# The short in-run retry of a build (a transient blip: a dropped connection, a 503): one retry, fixed delay.
BUILD_IN_RUN_RETRIES = 1
BUILD_IN_RUN_RETRY_DELAY = 15
# check (one SCARD, one ZCOUNT, one small query) and claim (a Lua script, a few small queries): milliseconds;
# two minutes cover a slow database answering within its read timeout.
CHECK_TIMEOUT = 120
CLAIM_TIMEOUT = 120
# The run's purge: the CDN client's own deadline is 50 s per purge (Cloudflare, honouring Retry-After up to 30 s).
PURGE_TIMEOUT = 300
# The nightly run's plan list and removal of deleted plans (one listing of plans/ plus deletes).
NIGHTLY_LIST_TIMEOUT = 300
NIGHTLY_REMOVE_TIMEOUT = 1800
# A nightly build task builds one plan, or a group of plans when there are more than [core] max_map_length: an
# hour is 20 budgets, i.e. 20 cold builds of the largest plan at the worst-case budget, or ~300 cold builds at
# the measured 12 s.
NIGHTLY_BUILD_TIMEOUT = 3600
# A sync run: check + claim + builds (a batch of 50 cold 2000-lesson plans through a pool of 4 slots takes
# ~2.5 min; one plan at its full budget with its in-run retry ~6.5 min) + purge. 20 minutes is twice the
# service level: a run is never left holding the only allowed slot for longer.
SYNC_DAGRUN_TIMEOUT = 1200
NIGHTLY_DAGRUN_TIMEOUT = 6 * 3600

# -- retries between runs (SPEC §7) -------------------------------------------------------------------------

# A plan that failed a run is retried by later runs: after [core] default_task_retry_delay (300 s unless
# configured), then twice that, then four times; a failure of the last retry dead-letters it.
PLAN_RETRIES = 3
DEFAULT_RETRY_DELAY = 300.0

# -- clients, in seconds ----------------------------------------------------------------------------------

# MariaDB (mysqlclient): the largest plan reads 19,336 rows in 9 queries in 0.03 s. A query that hangs fails after
# read_timeout with MariaDB Connector/C (measured: 2.0 s for 2 s); Oracle's libmysqlclient retries the read, up to
# 3x read_timeout.
MYSQL_CONNECT_TIMEOUT = 10
MYSQL_READ_TIMEOUT = 60
MYSQL_WRITE_TIMEOUT = 60
# Redis: every command is O(batch) on a local network.
REDIS_CONNECT_TIMEOUT = 5.0
REDIS_SOCKET_TIMEOUT = 15.0
# S3: one object is at most a few hundred KB (search shards < 100 KB); botocore's default 60 s read timeout and
# legacy retries would let one hung request take minutes. Standard mode, 3 attempts, with backoff.
S3_CONNECT_TIMEOUT = 10
S3_READ_TIMEOUT = 30
S3_MAX_ATTEMPTS = 3
# CDN APIs: Cloudflare has its own (10 s per request, 50 s per purge, in memora_cdn.purge.cloudflare);
# CloudFront's boto3 client gets these.
CDN_CONNECT_TIMEOUT = 10
CDN_READ_TIMEOUT = 30
