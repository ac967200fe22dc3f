"""The "plan published" asset event of a build summary (what `BuildResult.purge_summary` returns)."""
from __future__ import annotations

from airflow.sdk import Asset

from memora_cdn.orchestration.assets import MAX_EVENT_KEYS, announce, event_extra, plan_asset


def summary(status="published", keys=("plans/P1/manifest.json",), uploaded=1, deleted=0, prefix=False):
    return {"plan_id": "P1", "status": status, "files_uploaded": uploaded, "files_deleted": deleted,
            "purge_keys": [] if prefix else list(keys), "purge_prefix": prefix}


class Recorder:
    def __init__(self):
        self.events = []

    def add(self, asset, extra=None):
        self.events.append((asset, extra))


def test_a_changed_plan_gets_one_event_on_its_folder():
    published = Recorder()
    assert announce(published, "memora-cdn", summary(keys=["plans/P1/manifest.json", "plans/P1/units/U.json"],
                                                     uploaded=1, deleted=1))
    (asset, extra), = published.events
    assert asset == plan_asset("memora-cdn", "P1") == Asset(name="s3://memora-cdn/plans/P1", uri="s3://memora-cdn/plans/P1")
    assert extra == {"plan_id": "P1", "bucket": "memora-cdn", "status": "published", "files_uploaded": 1,
                     "files_deleted": 1, "changed_keys": ["plans/P1/manifest.json", "plans/P1/units/U.json"],
                     "changed_keys_complete": True}


def test_nothing_changed_or_requeued_means_no_event():
    published = Recorder()
    assert not announce(published, "b", summary(status="unchanged", keys=(), uploaded=0))
    assert not announce(published, "b", {"plan_id": "P1", "status": "requeued", "purge_keys": [], "purge_prefix": False})
    assert published.events == []
    assert not announce(None, "b", summary())  # outside a task: nothing to add to


def test_long_key_lists_are_capped_and_say_so():
    keys = [f"plans/P1/lessons/L{i}.json" for i in range(MAX_EVENT_KEYS + 5)]
    extra = event_extra("b", summary(keys=keys, uploaded=len(keys)))
    assert extra["changed_keys"] == keys[:MAX_EVENT_KEYS] and extra["changed_keys_complete"] is False
    # above the purge-prefix threshold the summary lists no keys: the whole folder changed
    extra = event_extra("b", summary(prefix=True, uploaded=900, status="removed", deleted=0))
    assert extra["status"] == "removed" and extra["changed_keys"] == [] and extra["changed_keys_complete"] is False
