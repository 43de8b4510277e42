"""Published versions are kept to the newest ``UNIPIXEL_KEEP_VERSIONS`` (a 3B adapter is about 0.5-1 GB, and a team
that fine-tunes every few hours filled ``MODEL_DIR`` within weeks); the served one is never removed."""

from __future__ import annotations

import json
import logging

import pytest
from backend.versions import VersionStore
from finetune.publish import publish, remove_old_versions
from finetune.settings import FinetuneSettings, SettingsError


def _publish(model_dir, name: str, created: float, keep: int = 0):
    def write_adapter(dest):
        dest.mkdir()
        (dest / "adapter_config.json").write_text("{}")

    path = publish(model_dir, name, write_adapter, {}, [1.0], keep=keep)
    info = json.loads((path / "version.json").read_text())
    (path / "version.json").write_text(json.dumps({**info, "created": created}))  # as if published that long ago
    return path


def test_publishing_removes_the_oldest_versions_beyond_the_newest_kept(tmp_path, caplog):
    caplog.set_level(logging.INFO, "finetune.publish")
    for n in range(3):
        _publish(tmp_path, f"p1-{n}", created=1000.0 + n, keep=3)
    assert [v["version"] for v in VersionStore(tmp_path).list()] == ["p1-0", "p1-1", "p1-2"]  # 3: all kept
    _publish(tmp_path, "p1-3", created=1003.0, keep=2)
    store = VersionStore(tmp_path)
    assert [v["version"] for v in store.list()] == ["p1-2", "p1-3"] and store.latest() == "p1-3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "p1-2", "p1-3"]  # nothing half-removed
    assert "removed 2 old version(s): p1-0, p1-1" in caplog.text and "keeping the newest 2 (UNIPIXEL_KEEP_VERSIONS)" in caplog.text


def test_the_served_version_is_kept_even_when_it_is_old(tmp_path):
    """An operator who rolled back by pointing ``latest`` at an older version keeps serving it."""
    for n in range(4):
        _publish(tmp_path, f"p1-{n}", created=1000.0 + n)
    VersionStore(tmp_path).set_latest("p1-0")
    assert remove_old_versions(tmp_path, keep=2) == ["p1-1"]
    assert [v["version"] for v in VersionStore(tmp_path).list()] == ["p1-0", "p1-2", "p1-3"]


def test_keep_zero_keeps_every_version(tmp_path):
    for n in range(3):
        _publish(tmp_path, f"p1-{n}", created=1000.0 + n, keep=0)
    assert remove_old_versions(tmp_path, keep=0) == [] and len(VersionStore(tmp_path).list()) == 3


def test_the_setting_is_read_and_checked():
    assert FinetuneSettings.from_env({}).keep_versions == 10
    assert FinetuneSettings.from_env({"UNIPIXEL_KEEP_VERSIONS": "0"}).keep_versions == 0
    with pytest.raises(SettingsError, match="UNIPIXEL_KEEP_VERSIONS must be 0 .* or at least 2"):
        FinetuneSettings.from_env({"UNIPIXEL_KEEP_VERSIONS": "1"})


def test_versions_are_ordered_by_when_they_were_published_as_numbers(tmp_path):
    """``created`` was compared as text: 999.0 came after 1000.0."""
    _publish(tmp_path, "p1-a", created=1000.0)
    _publish(tmp_path, "p1-b", created=999.0)
    _publish(tmp_path, "p1-c", created=1001.0)
    assert [v["version"] for v in VersionStore(tmp_path).list()] == ["p1-b", "p1-a", "p1-c"]


def test_a_version_that_cannot_be_removed_is_logged_and_the_publish_stands(tmp_path, caplog):
    """A copied version whose ``version.json`` names another folder: the publish is not failed by the clean-up."""
    _publish(tmp_path, "p1-0", created=1000.0)
    (tmp_path / "p1-0").rename(tmp_path / "copy")
    (tmp_path / "latest").write_text("copy\n")
    _publish(tmp_path, "p1-1", created=1001.0)
    caplog.set_level(logging.INFO, "finetune.publish")
    path = _publish(tmp_path, "p1-2", created=1002.0, keep=2)
    assert path.name == "p1-2" and VersionStore(tmp_path).latest() == "p1-2"
    assert "could not remove old version p1-0" in caplog.text


def test_a_publish_leaves_another_workers_publish_under_way_alone(tmp_path):
    """Two projects can train at once on two workers: one publish removed every ``.tmp-*`` folder, so it removed
    the other's version while it was being written. Only folders untouched for an hour (a killed run's) go."""
    import os
    import time

    tmp_path.mkdir(exist_ok=True)
    under_way, killed = tmp_path / ".tmp-p2-now", tmp_path / ".tmp-p3-yesterday"
    for folder in (under_way, killed):
        (folder / "adapter").mkdir(parents=True)
    day_ago = time.time() - 86400
    os.utime(killed, (day_ago, day_ago))
    _publish(tmp_path, "p1-0", created=1000.0)
    assert under_way.is_dir() and not killed.exists()
