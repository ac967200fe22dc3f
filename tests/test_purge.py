"""include/purge.py against the Cloudflare stand-in (real HTTP on 127.0.0.1) and CloudFront under moto."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from memora_cdn.purge import (
    CloudflarePurger,
    CloudFrontPurger,
    LogOnlyPurger,
    PlanPurge,
    PurgeError,
    PurgeReport,
    cloudflare_api_base,
    parse_retry_after,
    plan_targets,
    purger_for,
)
from tests.standins.cloudflare import TOO_MANY_ITEMS_CODE, CloudflareStandIn

pytestmark = pytest.mark.timeout(60)

CDN = "https://cdn.example.com"
TOKEN = "tok-SECRET-4f9c2a7d1e"


class Recorder:
    """Injectable sleep (records, does not wait) with a matching fake monotonic clock."""

    def __init__(self):
        self.sleeps: list[float] = []
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def cf():
    with CloudflareStandIn(token=TOKEN, zone_id="zone-1") as standin:
        yield standin


@pytest.fixture
def rec():
    return Recorder()


def make(cf: CloudflareStandIn, rec: Recorder, **kw) -> CloudflarePurger:
    kw.setdefault("token", TOKEN)
    kw.setdefault("zone_id", cf.zone_id)
    token = kw.pop("token")
    zone = kw.pop("zone_id")
    return CloudflarePurger(cf.url, token, zone, sleep=rec.sleep, clock=rec.clock, **kw)


def keys(plan: str, n: int, start: int = 0) -> tuple[str, ...]:
    return tuple(f"plans/{plan}/lessons/l{i:04d}.json" for i in range(start, start + n))


# ---------------------------------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------------------------------
def test_plan_targets_dedupes_merges_and_keeps_order():
    plans = [
        PlanPurge("P1", ("plans/P1/a.json", "plans/P1/b.json", "plans/P1/a.json")),
        PlanPurge("P2", ("plans/P2/x.json", "search/index.json")),
        PlanPurge("P1", ("plans/P1/c.json", "plans/P1/b.json")),
        PlanPurge("P3", ("search/index.json", "plans/P3/z.json")),
    ]
    t = plan_targets(plans, prefix_threshold=10)
    assert t.keys == (
        "plans/P1/a.json", "plans/P1/b.json", "plans/P1/c.json",
        "plans/P2/x.json", "search/index.json", "plans/P3/z.json",
    )
    assert t.prefix_plans == ()


def test_plan_targets_prefix_keeps_keys_outside_the_prefix():
    t = plan_targets([PlanPurge("P1", keys("P1", 4) + ("search/P1.json",))], prefix_threshold=3)
    assert t.prefix_plans == ("P1",)
    assert t.keys == ("search/P1.json",)


def test_parse_retry_after_seconds_and_http_date():
    now = datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2 ") == 2.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=12), usegmt=True), now=lambda: now) == 12.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=lambda: now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_api_base_from_connection_fields():
    assert cloudflare_api_base(None) == "https://api.cloudflare.com"
    assert cloudflare_api_base("") == "https://api.cloudflare.com"
    assert cloudflare_api_base("api.cloudflare.com") == "https://api.cloudflare.com"
    assert cloudflare_api_base("https://api.cloudflare.com/") == "https://api.cloudflare.com"
    assert cloudflare_api_base("https://api.cloudflare.com/client/v4") == "https://api.cloudflare.com"
    assert cloudflare_api_base("127.0.0.1", 1234, "http") == "http://127.0.0.1:1234"
    assert cloudflare_api_base("http://127.0.0.1:99", 1234) == "http://127.0.0.1:99"
    assert cloudflare_api_base("http://127.0.0.1", 1234) == "http://127.0.0.1:1234"


# ---------------------------------------------------------------------------------------------------------------
# Cloudflare over HTTP
# ---------------------------------------------------------------------------------------------------------------
def test_batches_of_30(cf, rec):
    plans = [PlanPurge("P1", keys("P1", 65))]
    report = make(cf, rec).purge(CDN, plans, prefix_threshold=1000)

    assert [len(r["files"]) for r in cf.requests] == [30, 30, 5]
    assert cf.purged_files == [f"{CDN}/{k}" for k in keys("P1", 65)]
    assert report == PurgeReport("cloudflare", 65, 0, 3, 0, [])
    assert rec.sleeps == []


def test_batches_at_configured_100():
    rec = Recorder()
    with CloudflareStandIn(token=TOKEN, zone_id="zone-1", max_files=100) as cf:
        purger = make(cf, rec, files_per_request=100)
        report = purger.purge(CDN + "/", [PlanPurge("P1", keys("P1", 120)), PlanPurge("P2", keys("P2", 130))], 1000)
        assert [len(r["files"]) for r in cf.requests] == [100, 100, 50]
        assert cf.purged_files[:2] == [f"{CDN}/plans/P1/lessons/l0000.json", f"{CDN}/plans/P1/lessons/l0001.json"]
        assert report.urls_purged == 250 and report.requests == 3


def test_standin_refuses_more_files_than_its_limit_and_purger_does_not_retry(cf, rec):
    with pytest.raises(PurgeError) as info:
        make(cf, rec, files_per_request=31).purge(CDN, [PlanPurge("P1", keys("P1", 31))], 1000)
    assert "HTTP 400" in str(info.value) and str(TOO_MANY_ITEMS_CODE) in str(info.value)
    assert len(cf.calls) == 1 and cf.calls[0]["status"] == 400
    assert cf.requests == [] and rec.sleeps == []


def test_dedupe_across_and_within_plans(cf, rec):
    plans = [
        PlanPurge("P1", ("plans/P1/a.json", "plans/P1/a.json", "plans/P1/b.json")),
        PlanPurge("P2", ("plans/P2/a.json", "shared/catalog.json")),
        PlanPurge("P3", ("shared/catalog.json",)),
    ]
    report = make(cf, rec).purge(CDN, plans, prefix_threshold=50)
    assert cf.purged_files == [
        f"{CDN}/plans/P1/a.json", f"{CDN}/plans/P1/b.json", f"{CDN}/plans/P2/a.json", f"{CDN}/shared/catalog.json",
    ]
    assert report.urls_purged == 4 and report.requests == 1


def test_prefix_purge_above_threshold(cf, rec):
    plans = [PlanPurge("P1", keys("P1", 6)), PlanPurge("P2", keys("P2", 2))]
    report = make(cf, rec).purge("https://cdn.example.com/static/", plans, prefix_threshold=5)

    assert cf.purged_prefixes == ["cdn.example.com/static/plans/P1/"]
    assert cf.purged_files == [f"https://cdn.example.com/static/{k}" for k in keys("P2", 2)]
    assert [list(r) for r in cf.requests] == [["files"], ["prefixes"]]  # never both kinds in one body
    assert (report.urls_purged, report.prefixes_purged, report.requests) == (2, 1, 2)


def test_threshold_is_strictly_greater(cf, rec):
    make(cf, rec).purge(CDN, [PlanPurge("P1", keys("P1", 5))], prefix_threshold=5)
    assert cf.purged_prefixes == [] and len(cf.purged_files) == 5


def test_whole_prefix(cf, rec):
    report = make(cf, rec).purge(CDN, [PlanPurge("P9", (), whole_prefix=True),
                                        PlanPurge("P8", ("plans/P8/x.json",), whole_prefix=True)], 100)
    assert cf.purged_prefixes == ["cdn.example.com/plans/P9/", "cdn.example.com/plans/P8/"]
    assert cf.purged_files == []
    assert report.prefixes_purged == 2 and report.urls_purged == 0


def test_prefixes_are_batched_too(cf, rec):
    plans = [PlanPurge(f"P{i}", (), whole_prefix=True) for i in range(35)]
    make(cf, rec).purge(CDN, plans, 100)
    assert [len(r["prefixes"]) for r in cf.requests] == [30, 5]


def test_nothing_to_purge_sends_nothing(cf, rec):
    report = make(cf, rec).purge(CDN, [PlanPurge("P1", ())], 10)
    assert report == PurgeReport("cloudflare", 0, 0, 0, 0, [])
    assert cf.calls == []


def test_429_retry_after_is_honoured(cf, rec):
    cf.fail_next(("429", 7))
    report = make(cf, rec).purge(CDN, [PlanPurge("P1", keys("P1", 3))], 100)
    assert rec.sleeps == [7]
    assert [c["status"] for c in cf.calls] == [429, 200]
    assert cf.purged_files == [f"{CDN}/{k}" for k in keys("P1", 3)]
    assert (report.requests, report.retries, report.failures) == (2, 1, [])


def test_429_wait_is_capped(cf, rec):
    cf.fail_next(("429", 45))
    make(cf, rec, max_retry_after=20).purge(CDN, [PlanPurge("P1", keys("P1", 1))], 100)
    assert rec.sleeps == [20]


def test_429_beyond_the_deadline_fails_without_waiting(cf, rec):
    cf.fail_next(("429", 40))
    with pytest.raises(PurgeError) as info:
        make(cf, rec, deadline_seconds=10, max_retry_after=60).purge(CDN, [PlanPurge("P1", keys("P1", 1))], 100)
    assert rec.sleeps == []
    assert "429" in str(info.value) and "deadline" in str(info.value)


def test_deadline_fails_the_rate_limited_batch_but_later_batches_still_go(cf, rec):
    cf.fail_next(("429", 4), ("429", 5))
    with pytest.raises(PurgeError) as info:
        make(cf, rec, deadline_seconds=9).purge(CDN, [PlanPurge("P1", keys("P1", 40))], 100)
    assert rec.sleeps == [4]  # the second wait (5 s) would reach the deadline: not taken
    report = info.value.report
    assert report.urls_purged == 10 and len(report.failures) == 1
    assert "batch 1/2" in report.failures[0] and "deadline" in report.failures[0]


def test_deadline_spans_the_whole_purge(cf):
    ticks = iter(range(0, 1000, 3))  # every clock reading is 3 s later
    purger = CloudflarePurger(cf.url, TOKEN, cf.zone_id, deadline_seconds=9, sleep=lambda s: None,
                              clock=lambda: next(ticks))
    with pytest.raises(PurgeError) as info:
        purger.purge(CDN, [PlanPurge("P1", keys("P1", 65))], 1000)
    report = info.value.report
    assert report.requests == 2 and report.urls_purged == 60  # the third batch is not sent
    assert "deadline" in report.failures[0] and len(cf.calls) == 2


def test_5xx_retried_with_exponential_backoff(cf, rec):
    cf.fail_next(("5xx", 503), ("5xx", 500), ("5xx", 502))
    report = make(cf, rec).purge(CDN, [PlanPurge("P1", keys("P1", 2))], 100)
    assert rec.sleeps == [0.5, 1.0, 2.0]
    assert [c["status"] for c in cf.calls] == [503, 500, 502, 200]
    assert report.retries == 3 and report.requests == 4 and report.urls_purged == 2


def test_backoff_is_capped(cf, rec):
    cf.fail_next(*[("5xx", 500)] * 5)
    make(cf, rec, backoff_cap=3.0, deadline_seconds=100).purge(CDN, [PlanPurge("P1", keys("P1", 1))], 100)
    assert rec.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_timeout_is_retried(cf, rec):
    cf.fail_next(("timeout", 1.0))
    report = make(cf, rec, timeout=0.3).purge(CDN, [PlanPurge("P1", keys("P1", 2))], 100)
    assert rec.sleeps == [0.5]
    assert report.retries == 1 and report.urls_purged == 2 and report.failures == []
    # the stand-in answered the timed-out call late, like a real API could; the retry made it certain
    assert cf.purged_files[-2:] == [f"{CDN}/{k}" for k in keys("P1", 2)]


def test_connection_refused_is_retried_then_fails(rec):
    with CloudflareStandIn() as gone:
        url = gone.url
    purger = CloudflarePurger(url, TOKEN, "z", sleep=rec.sleep, clock=rec.clock, max_attempts=3, timeout=0.5)
    with pytest.raises(PurgeError) as info:
        purger.purge(CDN, [PlanPurge("P1", keys("P1", 1))], 100)
    assert rec.sleeps == [0.5, 1.0]
    assert "connection error" in str(info.value)


def test_bad_token_fails_fast_and_never_leaks(cf, rec, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-9b1e77aa03"
    with pytest.raises(PurgeError) as info:
        make(cf, rec, token=wrong).purge(CDN, [PlanPurge("P1", keys("P1", 3))], 100)
    err = info.value
    assert "cloudflare" in str(err) and "403" in str(err) and "Authentication error" in str(err)
    assert rec.sleeps == [] and len(cf.calls) == 1
    assert err.report.retries == 0 and err.report.urls_purged == 0
    for text in (str(err), repr(err), caplog.text, json.dumps(err.report.as_dict()),
                 repr(make(cf, rec, token=wrong))):
        assert wrong not in text
        assert TOKEN not in text


def test_missing_auth_header_is_a_400(cf):
    import requests

    resp = requests.post(cf.endpoint, json={"files": [f"{CDN}/a"]}, timeout=5)
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["code"] == 6003
    assert resp.json()["success"] is False and resp.json()["result"] is None


def test_wrong_zone_is_not_retried(cf, rec):
    with pytest.raises(PurgeError) as info:
        make(cf, rec, zone_id="other-zone").purge(CDN, [PlanPurge("P1", keys("P1", 1))], 100)
    assert "7003" in str(info.value)
    assert len(cf.calls) == 1 and rec.sleeps == []


def test_standin_validates_body(cf):
    import requests

    h = {"Authorization": f"Bearer {TOKEN}"}
    both = requests.post(cf.endpoint, json={"files": [f"{CDN}/a"], "prefixes": ["cdn.example.com/a"]}, headers=h)
    none = requests.post(cf.endpoint, json={}, headers=h)
    bad = requests.post(cf.endpoint, data=b"{nope", headers=h)
    scheme = requests.post(cf.endpoint, json={"prefixes": ["https://cdn.example.com/a"]}, headers=h)
    ok = requests.post(cf.endpoint, json={"tags": ["t1"]}, headers=h)
    assert [r.status_code for r in (both, none, bad, scheme)] == [400, 400, 400, 400]
    assert both.json()["errors"][0]["code"] == 1012
    assert ok.status_code == 200 and ok.json()["success"] is True and len(ok.json()["result"]["id"]) == 32
    assert cf.requests == [{"tags": ["t1"]}]


def test_exhausted_retries_raise(cf, rec):
    cf.fail_next(("5xx", 503), ("5xx", 503), ("5xx", 503))
    with pytest.raises(PurgeError) as info:
        make(cf, rec, max_attempts=3).purge(CDN, [PlanPurge("P1", keys("P1", 2))], 100)
    assert "cloudflare" in str(info.value) and "503" in str(info.value) and "3 attempt" in str(info.value)
    assert rec.sleeps == [0.5, 1.0]
    assert len(cf.calls) == 3 and cf.requests == []


def test_every_batch_is_tried_before_raising(cf, rec):
    cf.fail_next(("5xx", 500))
    with pytest.raises(PurgeError) as info:
        make(cf, rec, max_attempts=1).purge(CDN, [PlanPurge("P1", keys("P1", 35))], 100)
    report = info.value.report
    assert report.urls_purged == 5 and report.requests == 2 and len(report.failures) == 1
    assert cf.purged_files == [f"{CDN}/{k}" for k in keys("P1", 35)[30:]]


class _FakeResponse:
    status_code = 200
    headers: dict = {}

    def json(self):
        return {"success": False, "errors": [{"code": 1234, "message": "nope"}], "messages": [], "result": None}


class _FakeSession:
    def __init__(self):
        self.calls = 0

    def post(self, *a, **kw):
        self.calls += 1
        return _FakeResponse()


def test_success_false_in_a_200_is_a_failure(rec):
    session = _FakeSession()
    purger = CloudflarePurger("http://unused", TOKEN, "z", session=session, sleep=rec.sleep, clock=rec.clock)
    with pytest.raises(PurgeError) as info:
        purger.purge(CDN, [PlanPurge("P1", keys("P1", 1))], 100)
    assert "success=false" in str(info.value) and "1234" in str(info.value)
    assert session.calls == 1


# ---------------------------------------------------------------------------------------------------------------
# none
# ---------------------------------------------------------------------------------------------------------------
def test_log_only_purger(caplog):
    caplog.set_level(logging.INFO, logger="memora_cdn.purge")
    report = LogOnlyPurger().purge(CDN, [PlanPurge("P1", keys("P1", 12)), PlanPurge("P2", (), True)], 100)
    assert report == PurgeReport("none", 12, 1, 0, 0, [])
    assert "would purge 12 URL(s) and 1 prefix(es)" in caplog.text
    assert f"{CDN}/plans/P1/lessons/l0000.json" in caplog.text
    assert "l0011.json" not in caplog.text  # only the first few
    assert f"{CDN}/plans/P2/" in caplog.text


# ---------------------------------------------------------------------------------------------------------------
# CloudFront (moto, in-process)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def cloudfront(monkeypatch):
    from moto import mock_aws

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("cloudfront", region_name="us-east-1")
        dist = client.create_distribution(DistributionConfig={
            "CallerReference": "memora-test",
            "Comment": "",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{
                "Id": "s3", "DomainName": "memora-cdn.s3.amazonaws.com",
                "S3OriginConfig": {"OriginAccessIdentity": ""},
            }]},
            "DefaultCacheBehavior": {
                "TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                "TrustedSigners": {"Enabled": False, "Quantity": 0},
            },
        })["Distribution"]
        yield client, dist["Id"]


def _invalidation_paths(client, dist_id) -> list[list[str]]:
    items = client.list_invalidations(DistributionId=dist_id)["InvalidationList"].get("Items", [])
    out = []
    for summary in items:
        inv = client.get_invalidation(DistributionId=dist_id, Id=summary["Id"])["Invalidation"]
        out.append(inv["InvalidationBatch"]["Paths"]["Items"])
    return out


def test_cloudfront_paths_and_prefix_wildcard(cloudfront):
    client, dist_id = cloudfront
    plans = [PlanPurge("P1", ("plans/P1/lessons/x.json", "plans/P1/plan.json", "plans/P1/plan.json")),
             PlanPurge("P2", keys("P2", 4)), PlanPurge("P3", (), whole_prefix=True)]
    report = CloudFrontPurger(client, dist_id).purge("https://d111.cloudfront.net/", plans, prefix_threshold=3)
    batches = _invalidation_paths(client, dist_id)
    assert len(batches) == 1
    assert batches[0] == ["/plans/P1/lessons/x.json", "/plans/P1/plan.json", "/plans/P2/*", "/plans/P3/*"]
    assert report == PurgeReport("cloudfront", 2, 2, 1, 0, [])


def test_cloudfront_base_path_is_prefixed(cloudfront):
    client, dist_id = cloudfront
    CloudFrontPurger(client, dist_id).purge(
        "https://cdn.example.com/static", [PlanPurge("P1", ("plans/P1/a.json",)), PlanPurge("P2", (), True)], 10)
    assert _invalidation_paths(client, dist_id) == [["/static/plans/P1/a.json", "/static/plans/P2/*"]]


def test_cloudfront_splits_above_3000_and_repeats_are_new_invalidations(cloudfront):
    client, dist_id = cloudfront
    ticks = iter([1.0, 2.0, 3.0, 4.0])
    purger = CloudFrontPurger(client, dist_id, clock=lambda: next(ticks))
    report = purger.purge(CDN, [PlanPurge("P1", keys("P1", 3500))], prefix_threshold=10_000)
    assert report.requests == 2 and report.urls_purged == 3500
    sizes = sorted(len(p) for p in _invalidation_paths(client, dist_id))
    assert sizes == [500, 3000]

    purger.purge(CDN, [PlanPurge("P1", keys("P1", 1))], 10)
    purger.purge(CDN, [PlanPurge("P1", keys("P1", 1))], 10)
    refs = [client.get_invalidation(DistributionId=dist_id, Id=s["Id"])["Invalidation"]["InvalidationBatch"]
            ["CallerReference"] for s in client.list_invalidations(DistributionId=dist_id)["InvalidationList"]["Items"]]
    assert len(refs) == 4 and len(set(refs)) == 4
    assert all(r.startswith("memora-") for r in refs)


def test_cloudfront_failure_raises_purge_error(cloudfront):
    client, _ = cloudfront
    with pytest.raises(PurgeError) as info:
        CloudFrontPurger(client, "EDOESNOTEXIST").purge(CDN, [PlanPurge("P1", keys("P1", 2))], 10)
    assert "cloudfront" in str(info.value) and "NoSuchDistribution" in str(info.value)
    assert info.value.report.urls_purged == 0


# ---------------------------------------------------------------------------------------------------------------
# purger_for (Airflow connections from the environment)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def airflow_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return monkeypatch


def _set_conn(monkeypatch, name: str, value: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(value))


def test_purger_for_cloudflare_from_env_connection(airflow_env, cf, rec):
    _set_conn(airflow_env, "memora_cdn_purge", {
        "conn_type": "http", "host": "127.0.0.1", "port": cf.port, "schema": "http",
        "password": TOKEN, "extra": {"zone_id": cf.zone_id},
    })
    purger = purger_for("cloudflare", files_per_request=20)
    assert isinstance(purger, CloudflarePurger)
    assert purger.api_base == cf.url and purger.zone_id == cf.zone_id and purger.files_per_request == 20
    report = purger.purge(CDN, [PlanPurge("P1", keys("P1", 25))], 100)
    assert report.urls_purged == 25 and [len(r["files"]) for r in cf.requests] == [20, 5]


def test_purger_for_cloudflare_host_with_scheme_and_default(airflow_env):
    _set_conn(airflow_env, "memora_cdn_purge", {
        "conn_type": "http", "host": "http://127.0.0.1", "port": 8788, "password": "t", "extra": {"zone_id": "z"}})
    assert purger_for("cloudflare").api_base == "http://127.0.0.1:8788"
    _set_conn(airflow_env, "memora_cdn_purge", {"conn_type": "http", "password": "t", "extra": {"zone_id": "z"}})
    assert purger_for("Cloudflare").api_base == "https://api.cloudflare.com"


def test_purger_for_missing_zone_id(airflow_env):
    _set_conn(airflow_env, "memora_cdn_purge", {"conn_type": "http", "host": "127.0.0.1", "password": "tok"})
    with pytest.raises(ValueError, match="zone_id"):
        purger_for("cloudflare")


def test_purger_for_missing_connection_and_bad_provider(airflow_env):
    airflow_env.delenv("AIRFLOW_CONN_MEMORA_CDN_PURGE", raising=False)
    with pytest.raises(ValueError, match="memora_cdn_purge_missing"):
        purger_for("cloudflare", conn_id="memora_cdn_purge_missing")
    with pytest.raises(ValueError, match="fastly"):
        purger_for("fastly")
    assert isinstance(purger_for("none"), LogOnlyPurger)


def test_purger_for_cloudfront(airflow_env, cloudfront):
    client, dist_id = cloudfront
    _set_conn(airflow_env, "memora_cdn_purge", {"conn_type": "http", "extra": {"distribution_id": dist_id}})
    _set_conn(airflow_env, "memora_s3", {"conn_type": "aws", "login": "testing", "password": "testing",
                                          "extra": {"region_name": "us-east-1"}})
    purger = purger_for("cloudfront")
    assert isinstance(purger, CloudFrontPurger) and purger.distribution_id == dist_id
    purger.purge(CDN, [PlanPurge("P1", ("plans/P1/a.json",))], 10)
    assert _invalidation_paths(client, dist_id) == [["/plans/P1/a.json"]]

    _set_conn(airflow_env, "memora_cdn_purge", {"conn_type": "http", "extra": {}})
    with pytest.raises(ValueError, match="distribution_id"):
        purger_for("cloudfront")
