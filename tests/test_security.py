"""Security: paid and private content stays private, secrets stay out of logs, SQL only ever gets parameters.

Against the real services (MariaDB, Redis db 11, the moto S3 server, the Cloudflare stand-in, `airflow dags test`).
"""
from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import redis as redis_lib
import requests

from memora_cdn_demo import content as demo
from memora_cdn.engine import keys
from memora_cdn.engine.build import build_plan
from memora_cdn.engine.media import private_media_key, s3_presigner
from memora_cdn.engine.publish import list_prefix
from memora_cdn.engine.read import list_plans
from tests.support import AWS_KEY, AWS_SECRET, PYTHONPATH, REDIS_PORT, REPO, mysql_airflow_conn

REDIS_DB = 11
INCLUDE = REPO / "include"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture
def demo_db(content_db, content_version, settings):
    name, conn = content_db
    demo.load(conn, demo.generate(demo.DemoScale(), media_bucket=settings.media_bucket, version=content_version))
    return SimpleNamespace(name=name, conn=conn)


def published(s3, bucket: str) -> dict[str, bytes]:
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in list_prefix(s3, bucket, "")}


# -- private media -----------------------------------------------------------------------------------------


def tricky_addresses(media_bucket: str) -> dict[str, str]:
    """Ways an editor can address the private media bucket; every one of them must be signed or dropped."""
    return {
        "s3": f"s3://{media_bucket}/videos/plain.mp4",
        "s3-upper": f"S3://{media_bucket}/videos/upper-scheme.mp4",
        "https-upper": f"HTTPS://s3.amazonaws.com/{media_bucket}/videos/upper-https.mp4",
        "path-style": f"https://s3.eu-west-1.amazonaws.com/{media_bucket}/videos/path.mp4",
        "virtual-host": f"https://{media_bucket}.s3.amazonaws.com/videos/virtual.mp4",
        "virtual-host-upper": f"https://{media_bucket.upper()}.s3.amazonaws.com/videos/virtual-upper.mp4",
        "spaces": f"  s3://{media_bucket}/videos/padded.mp4 ",
        "encoded": f"https://s3.amazonaws.com/{media_bucket}/videos/with%20space.mp4",
        "bucket-root": f"s3://{media_bucket}/",
        "http": f"http://s3.amazonaws.com/{media_bucket}/videos/http.mp4",
    }


def raw_private_addresses(text: str, media_bucket: str) -> list[str]:
    """Every address in `text` that names the private media bucket and carries no signature (case-insensitive)."""
    found = []
    pattern = re.compile(r"""(?i)(?:s3://|https?://)[^\s"'<>\\]*""" + re.escape(media_bucket) + r"""[^\s"'<>\\]*""")
    for match in pattern.finditer(text):
        if "X-Amz-Signature=" not in match.group(0):
            found.append(match.group(0))
    return found


def test_no_published_file_contains_a_raw_private_media_address(demo_db, s3, settings):
    """The whole demo (Video stages into the private bucket as s3:// and path-style https) plus every other way of
    writing such an address, nested in configs: every published file is scanned, byte by byte."""
    db = demo_db.conn
    cur = db.cursor()
    cur.execute("SELECT parent FROM `tabMemora Lesson Stage` WHERE type = 'Video' AND config LIKE %s LIMIT 1",
                (f"%{settings.media_bucket}%",))
    lesson = cur.fetchone()[0]
    addresses = tricky_addresses(settings.media_bucket)
    for i, (label, address) in enumerate(addresses.items()):
        config = {"video_url": address, "sources": [{"src": address}], "poster": {"url": address}}
        cur.execute("INSERT INTO `tabMemora Lesson Stage` (name, parent, parentfield, parenttype, idx, title, type, config) "
                    "VALUES (%s, %s, 'stages', 'Memora Lesson', %s, %s, 'Video', %s)",
                    (f"tricky-{label}", lesson, 100 + i, label, json.dumps(config)))
    db.commit()
    s3.put_object(Bucket=settings.media_bucket, Key="videos/with space.mp4", Body=b"video bytes")
    results = [build_plan(plan_id, db=db, s3=s3, settings=settings) for plan_id in list_plans(db)]
    files = published(s3, settings.bucket)
    assert len(files) > 100
    leaks = {key: raw_private_addresses(body.decode("utf-8"), settings.media_bucket) for key, body in files.items()
             if not key.startswith(keys.STATE_PREFIX)}
    assert {k: v for k, v in leaks.items() if v} == {}
    # the demo's own private videos and the tricky ones are there, signed
    signed = [m for body in files.values() for m in re.findall(r'"(http[^"]*X-Amz-Signature=[^"]*)"', body.decode())]
    assert len(signed) > 20
    lesson_docs = [json.loads(body) for key, body in files.items() if key.endswith(f"/lessons/{lesson}.json")]
    assert lesson_docs
    for doc in lesson_docs:
        stages = {s["title"]: s for s in doc["stages"]}
        for label in addresses:
            if label == "bucket-root":  # names no object: nothing to sign, dropped and reported
                assert "video_url" not in stages[label].get("config", {})
            else:
                assert "X-Amz-Signature=" in stages[label]["config"]["video_url"], label
    problems = [p for r in results for p in r.problems]
    assert any("names no object; value dropped" in p for p in problems)
    # the percent-encoded address is signed for the object it names
    encoded = next(doc for doc in lesson_docs)["stages"]
    url = next(s for s in encoded if s["title"] == "encoded")["config"]["video_url"]
    assert requests.get(url, timeout=10).content == b"video bytes"


def test_an_address_that_cannot_be_signed_is_dropped_and_reported(demo_db, s3, settings, monkeypatch):
    def broken(client, bucket):
        def presign(key, expires_in):
            raise RuntimeError("no credentials")
        return presign

    monkeypatch.setattr("memora_cdn.engine.build.s3_presigner", broken)
    result = build_plan("PLAN-2026-0001", db=demo_db.conn, s3=s3, settings=settings)
    assert any("could not be signed" in p for p in result.problems)
    for key, body in published(s3, settings.bucket).items():
        assert raw_private_addresses(body.decode(), settings.media_bucket) == [], key
        assert b"X-Amz-Signature" not in body or key.startswith(keys.STATE_PREFIX)


@pytest.mark.parametrize("value, key", [
    ("S3://media/x", "x"), (" s3://media/x\n", "x"), (" https://s3.amazonaws.com/media/x", "x"),
    ("HTTP://media.s3.amazonaws.com/x", "x"), ("https://MEDIA.s3.amazonaws.com/x", "x"),
    ("https://s3.amazonaws.com/%6Dedia/a%20b.mp4", "a b.mp4"), ("s3://media/", ""), ("https://media.s3.x.com/", ""),
    ("https://s3.amazonaws.com/mediax/x", None), ("text about s3://media/x", None), ("s3://other/x", None),
])
def test_every_spelling_of_a_private_address_is_recognised(value, key):
    assert private_media_key(value, "media") == key


# -- presigned URLs ----------------------------------------------------------------------------------------


def test_presigned_urls_expire_as_configured(demo_db, s3, settings):
    from dataclasses import replace
    from calendar import timegm

    settings = replace(settings, signed_url_expiry_hours=2)
    started = time.time()
    build_plan("PLAN-2026-0001", db=demo_db.conn, s3=s3, settings=settings)
    finished = time.time()
    checked = 0
    for key, body in published(s3, settings.bucket).items():
        if "/lessons/" not in key:
            continue
        doc = json.loads(body)
        urls = [s["config"]["video_url"] for s in doc["stages"] if "X-Amz-Signature" in s.get("config", {}).get("video_url", "")]
        if not urls:
            assert "signed_url_expiry" not in doc
            continue
        expiries = []
        for url in urls:
            query = dict(parse_qsl(urlsplit(url).query))
            assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
            assert query["X-Amz-Expires"] == "7200"  # signed_url_expiry_hours=2
            signed_at = timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
            assert started - 2 <= signed_at <= finished + 2
            assert "Credential" not in url.split("?")[0] and AWS_SECRET not in url
            expiries.append(signed_at + 7200)
        stated = timegm(time.strptime(doc["signed_url_expiry"], "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(stated - min(expiries)) <= 2, key  # the lesson states its earliest expiry
        checked += 1
    assert checked >= 5


def _sigv4_check(method: str, host: str, raw_path: str, query: list[tuple[str, str]], secret: str, now: float) -> str | None:
    """What S3 checks on a presigned GET (SigV4, query auth): None when valid, else the S3 error code."""
    params = dict(query)
    try:
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        expires = int(params["X-Amz-Expires"])
        _, date, region, service, _ = params["X-Amz-Credential"].split("/")
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError"
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                               for k, v in sorted(query) if k != "X-Amz-Signature")
    signed_headers = params["X-Amz-SignedHeaders"]
    assert signed_headers == "host"
    canonical = "\n".join([method, raw_path, canonical_query, f"host:{host}\n", signed_headers, "UNSIGNED-PAYLOAD"])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), params.get("X-Amz-Signature", "")):
        return "SignatureDoesNotMatch"
    if now > signed_at + expires:
        return "AccessDenied: Request has expired"
    return None


class PresignedGate:
    """What real S3 does with presigned GETs, in front of moto (which, in 5.2, ignores X-Amz-Expires): verify
    the SigV4 query signature and the expiry, refuse with 403, else forward to moto."""

    def __init__(self, upstream: str, secret: str) -> None:
        gate = self
        self.upstream, self.secret = upstream, secret

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                error = _sigv4_check("GET", self.headers["Host"], parts.path, parse_qsl(parts.query, keep_blank_values=True),
                                     gate.secret, time.time())
                if error:
                    body = f"<Error><Code>{error}</Code></Error>".encode()
                    self.send_response(403)
                else:
                    body = requests.get(f"{gate.upstream}{parts.path}?{parts.query}", timeout=10).content
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_presigned_url_is_refused_once_expired_and_cannot_be_extended(s3_server, s3, settings):
    """The exporter's own presigner (`memora_cdn.engine.media.s3_presigner`, the code path of every build) with
    ExpiresIn=1: the URL works at once, is refused 2 s later, and raising X-Amz-Expires breaks its signature."""
    import boto3
    from botocore.config import Config

    s3.put_object(Bucket=settings.media_bucket, Key="videos/v.mp4", Body=b"private video")
    gate = PresignedGate(s3_server.endpoint, AWS_SECRET)
    try:
        client = boto3.client("s3", endpoint_url=gate.endpoint, aws_access_key_id=AWS_KEY,
                              aws_secret_access_key=AWS_SECRET, region_name="us-east-1",
                              config=Config(signature_version="s3v4"))
        presign = s3_presigner(client, settings.media_bucket)
        url = presign("videos/v.mp4", 1)
        fresh = requests.get(url, timeout=10)
        assert fresh.status_code == 200 and fresh.content == b"private video"
        long_lived = presign("videos/v.mp4", 3600)
        time.sleep(2.1)
        expired = requests.get(url, timeout=10)
        assert expired.status_code == 403 and b"Request has expired" in expired.content
        assert requests.get(url.replace("X-Amz-Expires=1&", "X-Amz-Expires=3600&"), timeout=10).status_code == 403
        assert requests.get(long_lived, timeout=10).status_code == 200
    finally:
        gate.close()


# -- secrets in task logs -----------------------------------------------------------------------------------

def _airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MEMORA"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
                "PYTHONPATH": PYTHONPATH})
    return env


def test_the_cloudflare_token_and_the_s3_secret_never_reach_task_logs(tmp_path, demo_db, s3_server, s3, settings,
                                                                      cloudflare):
    """`airflow dags test memora_cdn_sync`, then `memora_cdn_full_rebuild`, with a Cloudflare purge connection: each
    publishes and purges an edit; neither secret appears in their output or in any file under AIRFLOW_HOME
    (`dags test` writes no task log files there in Airflow 3.3.2; any file it does write is checked).

    `dags test` runs tasks in-process and does not apply Airflow's secret masking to what it prints (a task that
    logs a connection password shows it in clear there), so this proves the engine never logs them at all;
    the next test proves the masks a deployed worker applies are registered."""
    from memora_cdn.tracking.registry import Registry

    token = f"cf-{uuid.uuid4().hex}"
    secret = f"s3-{uuid.uuid4().hex}"  # moto accepts any secret; this one is unique so a leak is unambiguous
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = _airflow_env(home)
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)

    cloudflare.token = token
    for plan_id in ("PLAN-2026-0001", "PLAN-2026-0002"):
        build_plan(plan_id, db=demo_db.conn, s3=s3, settings=settings)
    demo_db.conn.cursor().execute("UPDATE `tabMemora Academic Plan` SET title = 'Secret test' WHERE name = 'PLAN-2026-0002'")
    demo_db.conn.commit()
    redis = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    redis.flushdb()
    Registry(redis).mark(["PLAN-2026-0002"])
    env |= {
        "AIRFLOW_CONN_MEMORA_MYSQL": mysql_airflow_conn(demo_db.name),
        "AIRFLOW_CONN_MEMORA_S3": json.dumps(json.loads(s3_server.airflow_conn()) | {"password": secret}),
        "AIRFLOW_CONN_MEMORA_REDIS": json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": REDIS_PORT,
                                                 "extra": {"db": REDIS_DB}}),
        "AIRFLOW_CONN_MEMORA_CDN_PURGE": json.dumps({"conn_type": "http", "host": cloudflare.url, "password": token,
                                                     "extra": {"zone_id": "zone-abc"}}),
        "AIRFLOW_VAR_MEMORA_CDN_SETTINGS": json.dumps(settings.as_dict() | {"purge_provider": "cloudflare"}),
    }
    outputs = []
    try:
        done = subprocess.run([AIRFLOW, "dags", "test", "memora_cdn_sync"], env=env, capture_output=True, text=True,
                              timeout=300)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0 and "state=success" in outputs[-1], outputs[-1][-4000:]
        assert cloudflare.purged_files == [f"https://cdn.memora.test/{keys.manifest_key('PLAN-2026-0002')}"]

        # the nightly full rebuild purges too (and with the same connections, leaks nothing either)
        cloudflare.reset()
        demo_db.conn.cursor().execute("UPDATE `tabMemora Academic Plan` SET title = 'Rebuilt' WHERE name = 'PLAN-2026-0001'")
        demo_db.conn.commit()
        done = subprocess.run([AIRFLOW, "dags", "test", "memora_cdn_full_rebuild"], env=env, capture_output=True,
                              text=True, timeout=300)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0 and "state=success" in outputs[-1], outputs[-1][-4000:]
        assert cloudflare.purged_files == [f"https://cdn.memora.test/{keys.manifest_key('PLAN-2026-0001')}"]
    finally:
        redis.flushdb()
    for output in outputs:
        assert token not in output and secret not in output
    files = [p for p in home.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert token.encode() not in data and secret.encode() not in data, path


_MASK_PROBE = r"""
import json, os
from airflow.sdk._shared.secrets_masker import redact
from memora_cdn.orchestration.connections import s3_client
from memora_cdn.purge import purger_for
from memora_cdn.settings import parse_settings

token, secret = os.environ["PROBE_TOKEN"], os.environ["PROBE_SECRET"]
line = f"Authorization: Bearer {token}; aws_secret_access_key={secret}"
before = redact(line)
purger = purger_for("cloudflare")          # what the sync's purge task does
s3_client(parse_settings({}))              # what every build task does
print("PROBE " + json.dumps({"before": before, "after": redact(line), "repr": repr(purger)}))
"""


def test_airflow_masks_both_secrets_once_the_engine_has_fetched_its_connections(tmp_path):
    """In a deployed worker, task logs go through the supervisor's secrets masker. Once the engine has fetched its
    connections the way its tasks do (`purger_for`, `s3_client`), that masker knows the Cloudflare token and the
    S3 secret: any line holding them is redacted to `***`. The purger's repr never shows the token."""
    token, secret = f"cf-{uuid.uuid4().hex}", f"s3-{uuid.uuid4().hex}"
    env = _airflow_env(tmp_path) | {
        "AIRFLOW_CONN_MEMORA_CDN_PURGE": json.dumps({"conn_type": "http", "host": "api.cloudflare.test",
                                                     "password": token, "extra": {"zone_id": "z"}}),
        "AIRFLOW_CONN_MEMORA_S3": json.dumps({"conn_type": "aws", "login": "AKIDEXAMPLE", "password": secret,
                                              "extra": {"endpoint_url": "http://127.0.0.1:1"}}),
        "PROBE_TOKEN": token, "PROBE_SECRET": secret,
    }
    done = subprocess.run([sys.executable, "-c", _MASK_PROBE], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.split("PROBE ", 1)[1])
    assert token in probe["before"] and secret in probe["before"]  # nothing masked before the fetch
    assert probe["after"] == "Authorization: Bearer ***; aws_secret_access_key=***"
    assert token not in probe["repr"]
    assert token not in done.stdout.replace(probe["before"], "") + done.stderr


# -- ACLs and keys ------------------------------------------------------------------------------------------

# A key segment made from a name: `keys.encode_name` output (unreserved URL characters, `~XX` escapes, no leading dot).
_SEGMENT = r"(?!\.)(?:[A-Za-z0-9_.-]|~[0-9A-F]{2})+"
_SAFE_KEY = re.compile(
    rf"^(plans/{_SEGMENT}/(manifest|search_index|(subjects|units|lessons)/{_SEGMENT}"
    rf"|search/{_SEGMENT}(~p[0-9]+)?)\.json|_memora_cdn_state/{_SEGMENT}\.json)$")


def test_uploads_never_set_an_acl_and_hostile_names_become_encoded_keys(demo_db, s3, settings):
    from memora_cdn.engine.publish import list_published_plans

    db = demo_db.conn
    cur = db.cursor()
    # hostile names in the content: each is published under its encoded key, never as a path
    cur.execute("SELECT name FROM `tabMemora Topic` WHERE is_published = 1 ORDER BY name LIMIT 1")
    topic = cur.fetchone()[0]
    hostile = ("../../_memora_cdn_state/PLAN-2026-0001", "a/b", "..", "x y", "%2e%2e", "q'\"")
    for i, name in enumerate(hostile):
        cur.execute("INSERT INTO `tabMemora Lesson` (name, title, is_published, parent_topic, sort_order) "
                    "VALUES (%s, 'hostile', 1, %s, %s)", (name, topic, 500 + i))
    db.commit()
    calls: list[tuple[str, dict]] = []
    s3.meta.events.register("before-parameter-build.s3.*",
                            lambda params, model, **_: calls.append((model.name, dict(params))))
    for plan_id in list_plans(db):
        build_plan(plan_id, db=db, s3=s3, settings=settings)
    puts = [params for name, params in calls if name == "PutObject"]
    assert len(puts) > 100
    assert {name for name, _ in calls} <= {"PutObject", "ListObjectsV2", "GetObject", "HeadObject", "DeleteObjects"}
    for params in puts:
        assert not {k for k in params if k == "ACL" or k.startswith("Grant")}, params["Key"]
        assert _SAFE_KEY.match(params["Key"]), params["Key"]
        assert not {".", ".."} & set(params["Key"].split("/")), params["Key"]
        assert params["Bucket"] == settings.bucket
    lesson_names = {keys.decode_name(p["Key"].rsplit("/", 1)[1][:-len(".json")])
                    for p in puts if "/lessons/" in p["Key"]}
    assert set(hostile) <= lesson_names
    # the state objects are the plans' own, and no folder but the plans' appeared
    assert {p["Key"] for p in puts if p["Key"].startswith(keys.STATE_PREFIX)} == {keys.state_key(p) for p in list_plans(db)}
    assert list_published_plans(s3, settings.bucket) == set(list_plans(db))
    # moto: every object's ACL is the owner's alone
    for key in list_prefix(s3, settings.bucket, ""):
        acl = s3.get_object_acl(Bucket=settings.bucket, Key=key)
        grants = [(g["Grantee"].get("Type"), g["Grantee"].get("ID"), g["Grantee"].get("URI"), g["Permission"])
                  for g in acl["Grants"]]
        assert grants == [("CanonicalUser", acl["Owner"]["ID"], None, "FULL_CONTROL")], (key, grants)


@pytest.mark.parametrize("name", ["", "a" * 141, "a" * 10_000, "\ud800", "د" * 140 + "x", None, 7])
def test_every_key_function_refuses_what_is_no_name_or_cannot_fit_a_key(name):
    for make in (lambda n: keys.plan_prefix(n), lambda n: keys.manifest_key(n), lambda n: keys.state_key(n),
                 lambda n: keys.search_index_key(n), lambda n: keys.lesson_key("P1", n),
                 lambda n: keys.unit_key("P1", n), lambda n: keys.subject_key("P1", n),
                 lambda n: keys.search_shard_key("P1", n), lambda n: keys.lesson_key(n, "L1")):
        with pytest.raises(keys.UnsafeName):
            make(name)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "x y", 'q"', "q'", "a\x00b", ".hidden", "-dash", "é",
                                  "a" * 140, "%2e%2e", "?#&="])
def test_every_key_function_encodes_any_other_name_into_one_segment(name):
    segment = keys.encode_name(name)
    assert keys.decode_name(segment) == name and "/" not in segment and segment not in (".", "..")
    assert keys.lesson_key("P1", name) == f"plans/P1/lessons/{segment}.json"
    assert keys.plan_prefix(name) == f"plans/{segment}/" and keys.state_key(name) == f"_memora_cdn_state/{segment}.json"


def test_state_objects_live_outside_what_the_cdn_serves():
    """The README's bucket policy serves only `plans/*`; the exporter's bookkeeping must be outside it."""
    assert not keys.STATE_PREFIX.startswith(keys.PLANS_PREFIX)
    assert keys.state_key("P1") == "_memora_cdn_state/P1.json"


# -- SQL ----------------------------------------------------------------------------------------------------

# (file, function, source of an expression interpolated into SQL text) -> why it is safe. Anything else
# interpolated into SQL must be a module-level constant (or a same-file helper called only with constants).
# An entry no longer used fails the test, so the list stays honest.
SAFE_INTERPOLATIONS = {
    ("read.py", "existing_plans", "placeholders"): "', '.join(['%s'] * len(names)): placeholders; names in params",
    ("read.py", "plan_queries", "''.join((f', p.`{x}`' for x in plan_extra))"): "the optional plan columns of the constant ('is_published',) that the probe found",
    ("read.py", "plan_queries", "_cols('ps', c(dt.PLAN_SUBJECT))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('o', c(dt.PLAN_OVERRIDE))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('s', c(dt.SUBJECT))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('t2', c(dt.TRACK))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('u2', c(dt.UNIT))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('p2', c(dt.TOPIC))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('l2', c(dt.LESSON))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "plan_queries", "_cols('sg', c(dt.STAGE))"): 'column names from the module constant doctypes.COLUMNS; Schema.columns only leaves out the optional ones the probe did not find',
    ("read.py", "list_plans", "_PUBLISHED if schema.has(dt.PLAN, 'is_published') else ''"): 'the module constant _PUBLISHED or nothing',
    ("read.py", "existing_plans", 'published'): 'the constant fragment " AND `is_published` = 1" or nothing',
    ("read.py", "find_orphans", "doctype"): "from the loop over the module constant _PARENT_LINKS",
    ("read.py", "find_orphans", "link"): "from the loop over the module constant _PARENT_LINKS",
    ("read.py", "find_orphans", "parent_doctype"): "from the loop over the module constant _PARENT_LINKS",
    ("sync_log.py", "take_waiting", "', '.join(['%s'] * len(fallback))"): "placeholders; names in params",
    ("sync_log.py", "take_waiting", "', '.join(['%s'] * len(retries))"): "placeholders; names in params",
    ("sync_log.py", "backing_off", "', '.join(['%s'] * len(plan_ids))"): "placeholders; names in params",
    ("sync_log.py", "recent", "', '.join(COLUMNS)"): "the module constant column list",
    ("sync_log.py", "recent", "' AND '.join(where)"): "only the fixed fragments 'plan_id = %s' / 'status = %s'",
    ("plans.py", "affected_plans", "table"): "one of two table-name constants, chosen by doctype",
    ("plans.py", "affected_plans", "placeholders"): "', '.join(['%s'] * len(wanted)): placeholders; names in params",
    ("plans.py", "_plans_above", "placeholders"): "', '.join(['%s'] * count): placeholders; names in params",
    ("plans.py", "_plans_above", "alias"): "'n0'..'n4', from a counter",
    ("plans.py", "_plans_above", "level"): "an int counter",
    ("plans.py", "_plans_above", "link"): "a column from the module constant PARENT_LINKS",
    ("plans.py", "_plans_above", "above"): "a doctype from the module constant PARENT_LINKS",
    ("plans.py", "_plans_above", "doctype"): "the only caller passes a key of PARENT_LINKS / CONTENT_DOCTYPES",
    ("plans.py", "_plans_above", "subject"): "f'{alias}.`{link}`', both safe (above)",
    ("plans.py", "_plans_above", "' '.join(joins)"): "JOIN clauses built in the loop above from PARENT_LINKS",
}
# SQL that reaches execute() through a variable or argument whose every source is checked (rule 2 below).
SAFE_SQL_VARIABLES = {
    ("read.py", "_fetch", "sql"): "always plan_queries() output (read_plan passes *_with(parts[part]))",
    ("plans.py", "_query", "sql"): "every caller passes _plans_above() output or an f-string checked here",
}
_SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|REPLACE|JOIN|WHERE|FROM)\b")


class _SqlScan(ast.NodeVisitor):
    """Rule 1: the SQL text of every execute()/executemany() call is a constant, a module constant, an allow-listed
    variable or built by rule 2; a call whose SQL has %s placeholders gets params.
    Rule 2: every string built anywhere (f-string, .format, %, +) whose literal parts look like SQL interpolates
    only module constants, same-file helpers called with constants, or allow-listed expressions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.constants = {t.id for node in self.tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                          for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                          if isinstance(t, ast.Name)}
        self.helpers = {node.name for node in self.tree.body if isinstance(node, ast.FunctionDef)}
        self.function = "<module>"
        self.assigned: dict[str, list[ast.AST]] = {}
        self.findings: list[str] = []
        self.used: set[tuple[str, str, str]] = set()
        self.calls = 0
        self.sql_strings = 0

    def _allowed(self, table: dict, name: str) -> bool:
        key = (self.path.name, self.function, name)
        if key in table:
            self.used.add(key)
            return True
        return False

    def _where(self, node) -> str:
        return f"{self.path.name}:{node.lineno} ({self.function})"

    def visit_ClassDef(self, node) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    def visit_FunctionDef(self, node) -> None:
        outer, outer_assigned = self.function, self.assigned
        self.function = f"{outer}.{node.name}" if outer[:1].isalpha() and outer[:1].isupper() else node.name
        self.assigned = {}
        for sub in ast.walk(node):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(sub, ast.AugAssign) else []
            for t in targets:
                if isinstance(t, ast.Name):
                    self.assigned.setdefault(t.id, []).append(sub.value)
        self.generic_visit(node)
        self.function, self.assigned = outer, outer_assigned

    visit_AsyncFunctionDef = visit_FunctionDef

    # -- what may be interpolated --------------------------------------------------------------------------
    def _constant(self, expr) -> bool:
        if isinstance(expr, ast.Constant):
            return True
        if isinstance(expr, ast.Name) and expr.id in self.constants:
            return True
        if isinstance(expr, ast.Subscript) and self._constant(expr.value) and self._constant(expr.slice):
            return True
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in self.helpers \
                and all(self._constant(a) for a in expr.args) and not expr.keywords:
            return True  # a same-file helper called with constants only (e.g. _cols('ps', PLAN_SUBJECT_COLUMNS))
        return False

    def _interpolated(self, value) -> list[str]:
        if self._constant(value) or self._allowed(SAFE_INTERPOLATIONS, ast.unparse(value)):
            return []
        return [ast.unparse(value)]

    def _unsafe(self, expr, depth: int = 0) -> list[str]:
        """Unsafe parts of an expression used as SQL text."""
        if depth > 6:
            return [ast.unparse(expr)]
        if self._constant(expr) or (isinstance(expr, ast.Name) and self._allowed(SAFE_SQL_VARIABLES, expr.id)):
            return []
        if isinstance(expr, ast.Starred) and self._allowed(SAFE_SQL_VARIABLES, ast.unparse(expr)):
            return []
        if isinstance(expr, ast.Name) and expr.id in self.assigned:
            return [u for v in self.assigned[expr.id] for u in self._unsafe(v, depth + 1)]
        if isinstance(expr, ast.JoinedStr):
            return [u for part in expr.values if isinstance(part, ast.FormattedValue) for u in self._interpolated(part.value)]
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            return self._unsafe(expr.left, depth + 1) + self._unsafe(expr.right, depth + 1)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
            return [f"%-formatting {ast.unparse(expr)}"]
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) and expr.func.attr == "format":
            return self._unsafe(expr.func.value, depth + 1) + [u for a in expr.args for u in self._interpolated(a)]
        return self._interpolated(expr)

    # -- rule 2: SQL-looking strings, wherever they are built ----------------------------------------------
    def _looks_like_sql(self, node) -> bool:
        literal = " ".join(c.value for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str))
        return bool(_SQL_WORDS.search(literal))

    def visit_JoinedStr(self, node) -> None:
        if self._looks_like_sql(node):
            self.sql_strings += 1
            unsafe = [u for part in node.values if isinstance(part, ast.FormattedValue) for u in self._interpolated(part.value)]
            if unsafe:
                self.findings.append(f"{self._where(node)}: SQL f-string interpolates {unsafe}")
        self.generic_visit(node)

    def visit_BinOp(self, node) -> None:
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) \
                and _SQL_WORDS.search(node.left.value):
            self.findings.append(f"{self._where(node)}: SQL built with %-formatting")
        self.generic_visit(node)

    # -- rule 1: execute() calls ---------------------------------------------------------------------------
    def visit_Call(self, node) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "format" and isinstance(node.func.value, ast.Constant) \
                and isinstance(node.func.value.value, str) and _SQL_WORDS.search(node.func.value.value):
            unsafe = [u for a in node.args for u in self._interpolated(a)]
            if unsafe:
                self.findings.append(f"{self._where(node)}: SQL .format() interpolates {unsafe}")
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("execute", "executemany") and node.args:
            self.calls += 1
            sql = node.args[0]
            unsafe = self._unsafe(sql)
            if unsafe:
                self.findings.append(f"{self._where(node)}: SQL text built from {unsafe}")
            if "%s" in ast.unparse(sql) and len(node.args) < 2 and not node.keywords:
                self.findings.append(f"{self._where(node)}: %s placeholders but no params")
        self.generic_visit(node)


def scan_sql(paths) -> tuple[list[str], int, set]:
    findings, calls, used = [], 0, set()
    for path in paths:
        scan = _SqlScan(path)
        scan.visit(scan.tree)
        findings += scan.findings
        calls += scan.calls
        used |= scan.used
    return list(dict.fromkeys(findings)), calls, used


def test_every_sql_statement_in_the_engine_is_parameterised():
    """AST scan of every shipped module (include/memora_cdn, producer/; not the dev-only demo generator): the SQL text of every execute()/executemany() call is built only from string
    constants, module-level constants and the allow-listed interpolations above (each with its reason), never
    with %-formatting; a statement with placeholders always gets its params; no allow-list entry is stale."""
    findings, calls, used = scan_sql(sorted((INCLUDE / "memora_cdn").rglob("*.py")) + sorted((REPO / "producer").rglob("*.py")))
    assert calls >= 15
    assert findings == []
    stale = (set(SAFE_INTERPOLATIONS) | set(SAFE_SQL_VARIABLES)) - used
    assert stale == set(), f"allow-list entries no longer needed: {sorted(stale)}"


def test_the_sql_scan_catches_injection_patterns(tmp_path):
    """The scanner is not vacuous: each of these lines is flagged."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(cur, name, names):\n"
        "    cur.execute(f\"SELECT * FROM t WHERE name = '{name}'\")\n"  # line 2
        "    cur.execute(\"SELECT * FROM t WHERE name = '%s'\" % name)\n"
        "    cur.execute(\"SELECT * FROM t WHERE name = '\" + name + \"'\")\n"
        "    sql = 'SELECT * FROM t WHERE name = ' + repr(name)\n"
        "    cur.execute(sql)\n"  # line 6
        "    cur.execute('SELECT * FROM t WHERE name = %s')\n"
        "    cur.execute('SELECT * FROM t WHERE name = {}'.format(name))\n"
        "    cur.execute('SELECT 1 FROM t WHERE name IN (%s)' % ', '.join(names), names)\n"
        "    cur.execute('SELECT * FROM t WHERE name = %s', (name,))\n"  # line 10: fine
    )
    findings, calls, _ = scan_sql([bad])
    assert calls == 8
    assert {int(f.split(":")[1].split()[0]) for f in findings} == {2, 3, 4, 6, 7, 8, 9}, findings


class _Recording:
    """A DB-API connection that records every (sql, params) its cursors execute."""

    def __init__(self, conn) -> None:
        self._conn, self.statements = conn, []

    def cursor(self):
        real, statements = self._conn.cursor(), self.statements

        class Cursor:
            def __getattr__(self, name):
                return getattr(real, name)

            def execute(self, sql, params=None):
                statements.append((sql, params))
                return real.execute(sql, params)

        return Cursor()

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_hostile_values_reach_sql_only_as_parameters(demo_db, s3, settings):
    """Names an attacker controls (document names, plan names, run ids) travel through the producer, the sync
    log, the claim and a build: they never appear in any SQL text, only in the params, and they inject nothing."""
    from datetime import timedelta

    import memora_cdn_producer as producer
    from memora_cdn.tracking import sync_log
    from memora_cdn.engine.read import existing_plans
    from memora_cdn.tracking.registry import Registry
    from memora_cdn.tracking.run import run_plan
    from memora_cdn.tracking.sync import claim_batch

    hostile = "x' OR '1'='1'; DROP TABLE `tabMemora Lesson`; -- \\"
    db = _Recording(demo_db.conn)
    cur = demo_db.conn.cursor()
    cur.execute("SELECT name FROM `tabMemora Topic` WHERE is_published = 1 ORDER BY name LIMIT 1")
    topic = cur.fetchone()[0]
    cur.execute("INSERT INTO `tabMemora Lesson` (name, title, is_published, parent_topic) VALUES (%s, %s, 1, %s)",
                (hostile, hostile, topic))
    demo_db.conn.commit()
    redis = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, db=REDIS_DB)
    redis.flushdb()
    try:
        reg = Registry(redis)
        assert producer.affected_plans(db, "Memora Lesson", hostile) != set()
        assert producer.affected_plans(db, "Memora Lesson Stage", "st", parent=hostile,
                                       old_parent_links={"parent": hostile}) != set()
        assert producer.affected_plans(db, "Memora Plan Override", hostile) == set()
        producer.mark_changed("Memora Lesson", hostile, db=db, redis=None)  # fallback rows: plan names are params
        sync_log.write_fallback(db, "PLAN-2026-0001", reason=hostile)
        assert existing_plans(db, [hostile, "PLAN-2026-0001"]) == {"PLAN-2026-0001"}
        sync_log.recent(db, plan_id=hostile, status=hostile)
        reg.mark(["PLAN-2026-0001", hostile])
        batch = claim_batch(reg, db, s3, settings, hostile, "Scheduler")
        for plan in batch.plans:
            run_plan(plan["plan_id"], run_id=hostile, triggered_by=hostile, base_delay=timedelta(seconds=1),
                     registry=reg, db=db, s3=s3, settings=settings)
    finally:
        redis.flushdb()
    assert len(db.statements) > 20
    for sql, params in db.statements:
        assert hostile not in sql and "DROP TABLE" not in sql, sql
    assert any(params and hostile in [p for p in params if isinstance(p, str)] for _, params in db.statements)
    cur.execute("SELECT COUNT(*) FROM `tabMemora Lesson` WHERE name = %s", (hostile,))
    assert cur.fetchone()[0] == 1  # the table is still there, the row too


# -- bucket policy ------------------------------------------------------------------------------------------


def test_the_readme_documents_the_bucket_policy():
    """Nothing to test against a live policy here (moto does not enforce one): the README documents it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bucket policy", 1)[1].split("\n## ", 1)[0]
    for phrase in ("s3:GetObject", "plans/*", "s3:ListBucket", "_memora_cdn_state/", "never sets an ACL"):
        assert phrase in section, phrase
