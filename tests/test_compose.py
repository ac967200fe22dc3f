"""docker-compose.yaml and Dockerfile, checked structurally (no Docker engine needed, no containers run).

The file is read with yaml.safe_load (which resolves the `<<` merge keys of the x-airflow-common anchor)
and Compose's `${VAR:-default}` interpolation is applied with the defaults, i.e. what a laptop with no
.env gets. When the `docker compose` CLI is available, the last test also lets Compose itself parse it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from memora_cdn.settings import SettingsError, parse_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
REQUIREMENTS = REPO / "requirements.txt"

AIRFLOW_SERVICES = {
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    "airflow-init",
}
MEMORA_SERVICES = {"mariadb", "memora-demo-content", "memora-redis", "minio", "minio-init"}
REQUIRED_SERVICES = AIRFLOW_SERVICES | MEMORA_SERVICES | {"postgres", "redis"}
# Services that run to completion instead of staying up: no healthcheck, never restarted.
ONE_SHOT = {"airflow-init", "airflow-cli", "memora-demo-content", "minio-init"}
SPEC_ENV = ("AIRFLOW_CONN_MEMORA_MYSQL", "AIRFLOW_CONN_MEMORA_REDIS", "AIRFLOW_CONN_MEMORA_S3",
            "AIRFLOW_VAR_MEMORA_CDN_SETTINGS")
SETTINGS_EXPECTED = {"purge_provider": "none", "batch_size": 50, "batch_threshold": 50, "signed_url_expiry_hours": 4}

# name[:port]/path:tag — the tag is required (no implicit `latest`) and must not float: at least
# major.minor (7.2.5, 16.9, 10.11.18, 3.3.2) or a MinIO RELEASE.<timestamp> tag.
IMAGE_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/-]*(?::\d+)?(?:/[a-z0-9._-]+)*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)$")
PINNED_TAG_RE = re.compile(r"^(?:v?\d+\.\d+(?:\.\d+)*(?:[-_.][A-Za-z0-9.]+)*|RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z(?:-[a-z0-9]+)?)$")

_VAR_RE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def interpolate(value):
    """Compose interpolation with the defaults only: ${VAR:-d} / ${VAR-d} -> d, ${VAR} -> '', $$ -> $."""
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if not isinstance(value, str):
        return value
    parts = value.split("$$")  # an escaped dollar is never the start of a variable
    return "$".join(_VAR_RE.sub(lambda m: m.group("default") or "", p) for p in parts)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def common_env(compose) -> dict:
    return compose["x-airflow-common"]["environment"]


@pytest.fixture(scope="module")
def airflow_pin() -> str:
    pins = re.findall(r"^apache-airflow==([^\s;#]+)", REQUIREMENTS.read_text(encoding="utf-8"), re.M)
    assert len(pins) == 1, f"requirements.txt must pin apache-airflow exactly once, found {pins}"
    return pins[0]


def conn(common_env, name) -> dict:
    return json.loads(common_env[name])


def host_of(url: str) -> str:
    return urlsplit(url).hostname


# ------------------------------------------------------------------------------------------------
# services and images
# ------------------------------------------------------------------------------------------------


def test_compose_file_parses_and_has_the_services(raw, services):
    assert isinstance(raw, dict) and "x-airflow-common" in raw
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"


def test_every_image_is_pinned(services):
    images = {name: svc["image"] for name, svc in services.items() if "image" in svc}
    assert set(images) == set(services), f"services without an image: {sorted(set(services) - set(images))}"
    for name, image in images.items():
        m = IMAGE_RE.match(image)
        assert m, f"{name}: image {image!r} has no explicit tag"
        tag = m.group("tag")
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: image {image!r} is not pinned"
        assert PINNED_TAG_RE.match(tag), f"{name}: image {image!r} uses a floating tag (pin major.minor[.patch])"


def dockerfile_stages() -> dict[str, dict]:
    """name -> {"from": base, "body": instructions} of each stage; an unnamed stage is keyed by its index."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text.split("\nFROM", 1)[0], re.M))
    stages, current = {}, None
    for line in re.sub(r"\\\n", " ", text).splitlines():
        m = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            base = re.sub(r"\$\{(\w+)\}", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
            current = m.group(2) or str(len(stages))
            stages[current] = {"from": base, "body": []}
        elif current and line.strip() and not line.lstrip().startswith("#"):
            stages[current]["body"].append(line.strip())
    return stages


APT_BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "pkg-config", "default-libmysqlclient-dev", "libmariadb-dev")


def apt_installed(body: list[str]) -> list[str]:
    pkgs = []
    for line in body:
        for m in re.finditer(r"apt-get install ([^&;]*)", line):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def test_dockerfile_is_multi_stage_from_the_pinned_official_image():
    stages = dockerfile_stages()
    assert list(stages) == ["build", "runtime", "dev", "production"], list(stages)
    for name in ("build", "runtime"):
        m = IMAGE_RE.match(stages[name]["from"])
        assert m and m.group("name") == "apache/airflow" and PINNED_TAG_RE.match(m.group("tag")), stages[name]
    assert stages["build"]["from"] == stages["runtime"]["from"], "both stages must use one Airflow image"
    # the default target (the last stage) is the runtime stage as it is: nothing added on top
    assert stages["production"] == {"from": "runtime", "body": []}
    assert stages["dev"]["from"] == "runtime"


def test_build_stage_builds_wheels_from_constraints():
    build = dockerfile_stages()["build"]["body"]
    for pkg in ("build-essential", "default-libmysqlclient-dev", "pkg-config"):  # mysqlclient is compiled here
        assert pkg in apt_installed(build), f"{pkg} not installed in the build stage"
    wheel = [line for line in build if "pip wheel" in line]
    assert wheel, "the build stage must build wheels"
    deps = next(line for line in wheel if "-r requirements.txt" in line)
    assert "-c constraints.txt" in deps and '"apache-airflow==${AIRFLOW_VERSION}"' in deps, deps
    assert any(re.search(r"pip wheel .*--no-deps .*\s\.(\s|$)", line) for line in wheel), "the memora-cdn package"
    copied = " ".join(line for line in build if line.startswith("COPY"))
    for needed in ("requirements.txt", "constraints.txt", "pyproject.toml", "include/memora_cdn"):
        assert needed in copied, f"the build stage does not copy {needed}"
    assert "memora_cdn_demo" not in copied, "the demo generator is development-only"


def test_runtime_stage_has_no_compilers_and_installs_only_the_wheels():
    runtime = dockerfile_stages()["runtime"]["body"]
    apt = apt_installed(runtime)
    assert apt == ["libmariadb3"], apt  # mysqlclient's runtime library, nothing to build with
    assert not [tool for tool in APT_BUILD_TOOLS if tool in apt]
    install = [line for line in runtime if "pip install" in line]
    assert len(install) == 1, install
    line = install[0]
    assert "--no-index" in line and "--find-links /tmp/wheels" in line, "only the wheels the build stage made"
    assert "-c /tmp/pins/constraints.txt" in line and '"apache-airflow==${AIRFLOW_VERSION}"' in line, line
    assert "memora-cdn" in line.split(), "the package is baked in"
    assert any(line.startswith("COPY --from=build /home/airflow/wheels") for line in runtime)
    copied = " ".join(line for line in runtime if line.startswith("COPY"))
    assert " dags" not in copied and "include/" not in copied, "DAG files come from the bundle, the package as a wheel"
    assert "plugins/" in copied, "the dashboard plugin is part of the image"
    users = [line.split()[1] for line in runtime if line.startswith("USER")]
    assert users and users[-1] == "airflow", users
    assert not any("PYTHONPATH" in line for line in runtime), "the package is installed, not put on a path"


def test_dev_stage_adds_only_the_demo_generator():
    dev = dockerfile_stages()["dev"]["body"]
    assert [line for line in dev if line.startswith("COPY")] == [
        "COPY --chown=airflow:0 include/memora_cdn_demo /opt/airflow/dev/memora_cdn_demo"]
    assert "ENV PYTHONPATH=/opt/airflow/dev" in dev
    assert not apt_installed(dev)


def test_airflow_version_matches_requirements(compose, services, airflow_pin):
    common = compose["x-airflow-common"]
    assert common.get("build") == {"context": ".", "target": "production"}, "the common anchor builds the production stage"
    tag = IMAGE_RE.match(common["image"]).group("tag")
    assert tag == airflow_pin or tag.startswith(f"{airflow_pin}-"), (common["image"], airflow_pin)
    base = dockerfile_stages()["runtime"]["from"].split(":", 1)[1]
    assert base == airflow_pin or base.startswith(f"{airflow_pin}-python"), (base, airflow_pin)
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == common["image"], f"{name} does not run the production image"
        assert services[name].get("build") == common["build"], f"{name} does not build the production image"
    demo = services["memora-demo-content"]
    assert demo["image"] == common["image"] + "-dev" and demo["build"] == {"context": ".", "target": "dev"}


# ------------------------------------------------------------------------------------------------
# SPEC §10: connections and the settings Variable
# ------------------------------------------------------------------------------------------------


def test_common_environment_carries_the_spec_names(common_env, services):
    for name in SPEC_ENV:
        assert common_env.get(name), f"{name} missing from x-airflow-common.environment"
    for svc in AIRFLOW_SERVICES | {"memora-demo-content"}:
        env = services[svc]["environment"]
        for name in SPEC_ENV:
            assert env.get(name) == common_env[name], f"{svc}: {name} differs from the common environment"


def test_connections_are_json_with_the_right_conn_type(common_env, services):
    mysql = conn(common_env, "AIRFLOW_CONN_MEMORA_MYSQL")
    redis = conn(common_env, "AIRFLOW_CONN_MEMORA_REDIS")
    s3 = conn(common_env, "AIRFLOW_CONN_MEMORA_S3")
    assert mysql["conn_type"] == "mysql" and redis["conn_type"] == "redis" and s3["conn_type"] == "aws"

    assert mysql["host"] == "mariadb" and mysql["port"] == 3306
    maria = services["mariadb"]["environment"]
    assert (mysql["schema"], mysql["login"], mysql["password"]) == (
        maria["MARIADB_DATABASE"], maria["MARIADB_USER"], maria["MARIADB_PASSWORD"]
    ), "memora_mysql must match the account the mariadb service creates"

    assert redis["host"] == "memora-redis" and redis["port"] == 6379 and isinstance(redis["extra"]["db"], int)

    assert s3["extra"]["endpoint_url"] == "http://minio:9000"
    assert host_of(s3["extra"]["endpoint_url"]) in services
    minio = services["minio"]["environment"]
    assert (s3["login"], s3["password"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8, "MinIO refuses root passwords shorter than 8 characters"


def test_settings_variable_is_accepted_by_parse_settings(common_env, services):
    raw_settings = json.loads(common_env["AIRFLOW_VAR_MEMORA_CDN_SETTINGS"])
    for key in ("bucket", "cdn_base_url", "media_base_url", "media_bucket", "purge_provider", "batch_size",
                "batch_threshold", "signed_url_expiry_hours"):
        assert key in raw_settings, f"memora_cdn_settings lacks {key}"
    assert {k: raw_settings[k] for k in SETTINGS_EXPECTED} == SETTINGS_EXPECTED
    settings = parse_settings(common_env["AIRFLOW_VAR_MEMORA_CDN_SETTINGS"])  # raises SettingsError on a bad key
    assert settings.bucket == raw_settings["bucket"] and settings.media_bucket == raw_settings["media_bucket"]
    # the check has teeth: a typo in a key is refused
    with pytest.raises(SettingsError):
        parse_settings({**raw_settings, "bucket_name": "x"})
    # minio-init creates exactly the buckets the settings name
    mc = services["minio-init"]["environment"]
    assert (mc["MEMORA_CDN_BUCKET"], mc["MEMORA_MEDIA_BUCKET"]) == (settings.bucket, settings.media_bucket)
    script = services["minio-init"]["command"][-1]
    assert script.count("mc mb --ignore-existing") == 2


# ------------------------------------------------------------------------------------------------
# executor, broker, registry
# ------------------------------------------------------------------------------------------------


def test_celery_executor_with_its_own_broker_and_backend(common_env, services):
    assert common_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    broker = common_env["AIRFLOW__CELERY__BROKER_URL"]
    backend = common_env["AIRFLOW__CELERY__RESULT_BACKEND"]
    metadata = common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert broker.startswith("redis://") and host_of(broker) == "redis"
    assert services["redis"]["image"].startswith("redis:")
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; the image has psycopg2 (requirements.txt)
    assert backend.startswith("db+postgresql+psycopg2://") and host_of(backend) == "postgres"
    assert metadata.startswith("postgresql") and host_of(metadata) == "postgres"
    assert services["postgres"]["image"].startswith("postgres:")

    registry_host = conn(common_env, "AIRFLOW_CONN_MEMORA_REDIS")["host"]
    assert registry_host != host_of(broker), "the change registry must not share the Celery broker's Redis"
    assert services[registry_host]["image"].startswith("redis:")


def test_airflow_settings(common_env, services):
    assert common_env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert common_env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "false"
    api = common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert host_of(api) == "airflow-apiserver" and urlsplit(api).path == "/execution/"
    assert "8080:8080" in services["airflow-apiserver"]["ports"]
    assert common_env.get("AIRFLOW__API_AUTH__JWT_SECRET"), "components must share one JWT secret"
    assert common_env.get("AIRFLOW__API__SECRET_KEY"), "components must share one API secret key"
    for name in AIRFLOW_SERVICES:  # no service overrides them with a value of its own
        env = services[name]["environment"]
        for secret in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert env.get(secret) == common_env[secret], (name, secret)


def test_init_creates_the_build_pool_the_dags_are_told_to_use(common_env):
    pool = common_env["AIRFLOW__MEMORA_CDN__BUILD_POOL"]  # [memora_cdn] build_pool, read by both DAGs
    assert pool == "memora_cdn_builds"
    raw_service = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["airflow-init"]
    script = interpolate(raw_service["command"][-1])
    assert f'airflow pools set {pool} 8 "Memora CDN plan builds"' in script
    env = raw_service["environment"]
    assert env["_AIRFLOW_DB_MIGRATE"] == "true" and env["_AIRFLOW_WWW_USER_CREATE"] == "true"


# ------------------------------------------------------------------------------------------------
# mounts, demo content
# ------------------------------------------------------------------------------------------------


def _bind_mounts(svc) -> dict[str, str]:
    """container path -> host path of a service's bind mounts (short syntax)."""
    mounts = {}
    for vol in svc.get("volumes", []):
        source, target = vol.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def test_only_the_dag_files_are_mounted(compose, common_env, services):
    mounts = _bind_mounts(compose["x-airflow-common"])
    assert (REPO / mounts["/opt/airflow/dags"]).resolve() == (REPO / "dags").resolve(), "the DAG bundle"
    assert not [t for t in mounts if t.startswith(("/opt/airflow/include", "/opt/airflow/plugins"))], mounts
    assert "PYTHONPATH" not in common_env, "memora_cdn is installed in the image"
    for name in AIRFLOW_SERVICES | {"memora-demo-content"}:
        assert _bind_mounts(services[name]) == mounts, f"{name} mounts something else"


def test_mariadb_is_initialised_with_the_ddl(services):
    mounts = _bind_mounts(services["mariadb"])
    ddl = [host for target, host in mounts.items() if target.startswith("/docker-entrypoint-initdb.d/")]
    assert ddl and (REPO / ddl[0]).resolve() == (REPO / "include" / "memora_cdn_demo" / "sql" / "frappe_schema_008.sql").resolve()
    assert (REPO / "include" / "memora_cdn_demo" / "sql" / "frappe_schema_008.sql").is_file()
    assert re.fullmatch(r"mariadb:10\.11\.\d+", services["mariadb"]["image"])


def test_demo_content_waits_for_mariadb_and_runs_the_generator(services, common_env):
    demo = services["memora-demo-content"]
    assert demo["depends_on"] == {"mariadb": {"condition": "service_healthy"}}
    script = " ".join(demo["command"])
    assert "python -m memora_cdn_demo" in script and "--host mariadb" in script
    mysql = conn(common_env, "AIRFLOW_CONN_MEMORA_MYSQL")
    env = demo["environment"]
    assert (env["MEMORA_DB"], env["MEMORA_DB_USER"], env["MEMORA_DB_PASSWORD"]) == (
        mysql["schema"], mysql["login"], mysql["password"])


# ------------------------------------------------------------------------------------------------
# dependencies and health
# ------------------------------------------------------------------------------------------------


def test_depends_on_references_existing_services(services):
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep!r}"
            assert dep != name
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, it has no healthcheck"
            elif condition == "service_completed_successfully":
                assert dep in ONE_SHOT, f"{name} waits for {dep} to complete, but {dep} is long-running"
            else:
                assert condition == "service_started", f"{name} -> {dep}: unknown condition {condition!r}"


def test_long_running_services_have_healthchecks(services):
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc.get("restart", "no") == "no", f"one-shot {name} must not be restarted"
            continue
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"long-running {name} has no healthcheck"
        assert svc.get("restart") == "always", f"long-running {name} should restart"


def test_task_runners_wait_for_the_memora_services(services):
    for name in ("airflow-worker", "airflow-triggerer"):
        deps = services[name]["depends_on"]
        for dep, condition in (("mariadb", "service_healthy"), ("memora-redis", "service_healthy"),
                               ("minio", "service_healthy"), ("minio-init", "service_completed_successfully"),
                               ("airflow-init", "service_completed_successfully")):
            assert deps.get(dep, {}).get("condition") == condition, f"{name} -> {dep}"


# ------------------------------------------------------------------------------------------------
# the same environment as `make airflow-celery` (scripts/airflow_celery.sh), the cluster run without Docker
# ------------------------------------------------------------------------------------------------

# set only by the local script: paths and ports of processes sharing one machine, Airflow's own simple auth manager,
# a short retry delay for local runs, and the worker slots (compose sets those on the worker service)
LOCAL_ONLY = {
    "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__API__PORT",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY", "AIRFLOW__CELERY__WORKER_CONCURRENCY",
}
# set only by compose: the image's config file, its pip escape hatch, and the FAB auth manager (in the image)
COMPOSE_ONLY = {"AIRFLOW_CONFIG", "_PIP_ADDITIONAL_REQUIREMENTS", "AIRFLOW__CORE__AUTH_MANAGER"}


@pytest.fixture(scope="module")
def local_env(tmp_path_factory) -> dict:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA", "_AIRFLOW"))}
    env.update(MEMORA_CELERY_STATE=str(tmp_path_factory.mktemp("celery_env")), MEMORA_VENV=sys.prefix)
    out = subprocess.run(["bash", str(REPO / "scripts" / "airflow_celery.sh"), "env"], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_local_celery_cluster_sets_the_names_compose_sets(common_env, services, local_env):
    assert set(common_env) - COMPOSE_ONLY == set(local_env) - LOCAL_ONLY, (
        "only in compose:", sorted(set(common_env) - COMPOSE_ONLY - set(local_env)),
        "only in scripts/airflow_celery.sh:", sorted(set(local_env) - LOCAL_ONLY - set(common_env)))
    assert "AIRFLOW__CELERY__WORKER_CONCURRENCY" in services["airflow-worker"]["environment"]


def test_local_celery_cluster_agrees_with_compose_on_the_values(common_env, local_env):
    for name in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
                 "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "AIRFLOW__MEMORA_CDN__BUILD_POOL"):
        assert local_env[name].lower() == str(common_env[name]).lower(), name
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL"):
        assert urlsplit(local_env[name]).scheme == urlsplit(common_env[name]).scheme, name  # same drivers
    broker, registry = urlsplit(local_env["AIRFLOW__CELERY__BROKER_URL"]), json.loads(local_env["AIRFLOW_CONN_MEMORA_REDIS"])
    assert (broker.port, broker.path) != (registry["port"], f"/{registry['extra']['db']}"), "broker and registry share a database"
    assert urlsplit(local_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).path == "/execution/"
    assert urlsplit(local_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]).port == int(local_env["AIRFLOW__API__PORT"])
    for secret in ("AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
        assert local_env[secret] == "***", f"{secret} must be set and masked"
    for name in SPEC_ENV[:3]:
        local, compose_conn = json.loads(local_env[name]), json.loads(common_env[name])
        assert local["conn_type"] == compose_conn["conn_type"] and set(local["extra"]) == set(compose_conn["extra"]), name
    parse_settings(local_env["AIRFLOW_VAR_MEMORA_CDN_SETTINGS"])
