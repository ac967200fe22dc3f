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


def test_dockerfile_base_image_is_pinned_and_extends_the_official_image():
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) == 1, froms
    m = IMAGE_RE.match(froms[0])
    assert m and m.group("name") == "apache/airflow" and PINNED_TAG_RE.match(m.group("tag")), froms[0]
    # mysqlclient is built from source: its build dependencies are installed as root, then back to airflow
    for pkg in ("default-libmysqlclient-dev", "pkg-config", "build-essential"):
        assert re.search(rf"apt-get install[^\n]*(?:\\\n[^\n]*)*\b{re.escape(pkg)}\b", text), f"{pkg} not installed"
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[0] == "root" and users[-1] == "airflow", users
    assert re.search(r"^COPY\s+requirements\.txt\s", text, re.M)
    install = re.search(r"^RUN pip install[^\n]*", text, re.M)
    assert install and "--no-cache-dir" in install.group(0) and "-r /requirements.txt" in install.group(0)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install.group(0), "pip may move Airflow's version"


def test_airflow_version_matches_requirements(compose, services, airflow_pin):
    common = compose["x-airflow-common"]
    assert common.get("build") in (".", {"context": "."}), "the common anchor must build ./Dockerfile"
    tag = IMAGE_RE.match(common["image"]).group("tag")
    assert tag == airflow_pin or tag.startswith(f"{airflow_pin}-"), (common["image"], airflow_pin)
    base = re.search(r"^FROM\s+apache/airflow:(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M).group(1)
    assert base == airflow_pin or base.startswith(f"{airflow_pin}-python"), (base, airflow_pin)
    for name in AIRFLOW_SERVICES | {"memora-demo-content"}:
        assert services[name]["image"] == common["image"], f"{name} does not run the extended Airflow image"
        assert services[name].get("build") == common["build"], f"{name} does not build the extended image"


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
    assert backend.startswith("db+postgresql://") and host_of(backend) == "postgres"
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


def test_init_creates_the_build_pool():
    # the pool name the DAGs use (read from the source: importing memora_cdn.orchestration.defaults would load Airflow)
    pool = re.search(r'^DEDICATED_BUILD_POOL\s*=\s*"([^"]+)"', (REPO / "include" / "memora_cdn" / "orchestration" / "defaults.py").read_text(), re.M).group(1)
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


def test_bundle_is_mounted_and_importable(compose, common_env, services):
    mounts = _bind_mounts(compose["x-airflow-common"])
    for folder in ("dags", "plugins", "include"):
        assert f"/opt/airflow/{folder}" in mounts, f"./{folder} is not mounted at /opt/airflow/{folder}"
        assert (REPO / mounts[f"/opt/airflow/{folder}"]).resolve() == (REPO / folder).resolve(), folder
        assert (REPO / folder).is_dir()
    assert "/opt/airflow" in common_env["PYTHONPATH"].split(":"), "include.* must be importable"
    for name in AIRFLOW_SERVICES | {"memora-demo-content"}:
        assert _bind_mounts(services[name]) == mounts, f"{name} does not mount the bundle"


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
