"""The server's media cache stays under ``UNIPIXEL_MEDIA_CACHE_MB``: least recently used first, recent files and
foreign names kept, cut downloads of a killed process swept (``backend/media_cache.py``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from backend.media_cache import MediaCache, shared_cache
from backend.settings import Settings, SettingsError
from finetune.settings import FinetuneSettings

NOW = 1_000_000.0
HOUR = 3600.0


def _cached(folder: Path, n: int, size: int, used_ago_s: float, suffix: str = ".mp4") -> Path:
    path = folder / (f"{n:032x}" + suffix)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - used_ago_s, NOW - used_ago_s))
    return path


def test_the_files_used_longest_ago_go_first_until_the_cache_fits(tmp_path):
    old, older, oldest = (_cached(tmp_path, n, 400, ago) for n, ago in ((1, HOUR), (2, 2 * HOUR), (3, 3 * HOUR)))
    result = MediaCache(tmp_path, max_bytes=900).prune(now=NOW)
    assert not oldest.exists() and older.exists() and old.exists()
    assert (result.removed, result.removed_bytes, result.kept_bytes) == (1, 400, 800)
    result = MediaCache(tmp_path, max_bytes=400).prune(now=NOW)
    assert not older.exists() and old.exists() and result.kept_bytes == 400


def test_a_cache_hit_makes_a_file_the_last_to_go(tmp_path):
    first, second = _cached(tmp_path, 1, 400, 2 * HOUR), _cached(tmp_path, 2, 400, HOUR)
    cache = MediaCache(tmp_path, max_bytes=500)
    cache.used(first)  # now: the most recent
    cache.prune()
    assert first.exists() and not second.exists()
    cache.used(second)  # gone meanwhile: no error, the fetcher downloads it again


def test_files_in_use_stay_over_the_cap_and_that_is_said(tmp_path, caplog):
    """A request between its download and its decoding must find its file: what was used in the last 10 minutes
    is never removed, and a cache over its cap for that reason logs what to do."""
    recent = [_cached(tmp_path, n, 400, 60) for n in range(3)]
    caplog.set_level(logging.INFO, "backend.media_cache")
    result = MediaCache(tmp_path, max_bytes=500).prune(now=NOW)
    assert all(p.exists() for p in recent) and result.removed == 0 and result.kept_bytes == 1200
    assert "over UNIPIXEL_MEDIA_CACHE_MB" in caplog.text and "raise UNIPIXEL_MEDIA_CACHE_MB" in caplog.text


def test_a_cap_of_zero_keeps_every_file(tmp_path):
    files = [_cached(tmp_path, n, 400, 10 * HOUR) for n in range(3)]
    assert MediaCache(tmp_path, max_bytes=0).prune(now=NOW).removed == 0
    assert all(p.exists() for p in files)


def test_cut_downloads_of_a_stopped_process_are_swept_and_live_ones_kept(tmp_path, caplog):
    stale, live = tmp_path / ".part-abc", tmp_path / ".part-def"
    for path, ago in ((stale, 2 * HOUR), (live, 5)):
        path.write_bytes(b"x" * 10)
        os.utime(path, (NOW - ago, NOW - ago))
    caplog.set_level(logging.INFO, "backend.media_cache")
    assert MediaCache(tmp_path, max_bytes=0).prune(now=NOW).stale_parts == 1
    assert not stale.exists() and live.exists() and "cut download" in caplog.text


def test_only_names_the_fetcher_writes_are_touched(tmp_path):
    """The cache folder may be shared with other files (a mounted volume): those, folders and links stay."""
    (tmp_path / "notes.txt").write_bytes(b"x" * 1000)
    (tmp_path / f"{1:032x}").mkdir()
    (tmp_path / f"{2:031x}.mp4").write_bytes(b"x" * 1000)  # one hex digit short
    (tmp_path / f"{3:032x}.png").symlink_to(tmp_path / "notes.txt")
    for path in tmp_path.iterdir():
        os.utime(path, (NOW - 10 * HOUR, NOW - 10 * HOUR), follow_symlinks=False)
    result = MediaCache(tmp_path, max_bytes=1).prune(now=NOW)
    assert result.removed == 0 and len(list(tmp_path.iterdir())) == 4


def test_a_missing_cache_folder_is_an_empty_cache(tmp_path):
    assert MediaCache(tmp_path / "none", max_bytes=1).prune().kept_bytes == 0


def test_downloads_prune_once_a_hundredth_of_the_cap_came_in(tmp_path):
    """Pruning scans the folder: a frame list of 300 images must not scan it 300 times."""
    _cached(tmp_path, 1, 1000, HOUR)
    cache = MediaCache(tmp_path, max_bytes=10_000)
    assert cache.downloaded(99) is None  # under 100 bytes since the last prune: no scan
    assert cache.downloaded(1) is not None


def test_fetchers_built_per_request_count_downloads_in_one_cache_per_folder(tmp_path):
    """The backend builds a fetcher per request: a count kept per fetcher never reached 1 % of a 20 GiB cap, so
    the cap was never enforced. One cache per folder and cap in the process; made once, it sweeps cut downloads."""
    part = tmp_path / ".part-old"
    part.write_bytes(b"x")
    os.utime(part, (NOW - 2 * HOUR, NOW - 2 * HOUR))
    first = shared_cache(tmp_path, 1000)
    assert not part.exists() and shared_cache(tmp_path, 1000) is first
    assert first.downloaded(6) is None and shared_cache(tmp_path, 1000).downloaded(4) is not None
    assert shared_cache(tmp_path, 2000) is not first


def test_the_fine_tunes_cache_removes_files_no_run_used_for_its_days(tmp_path, caplog):
    """The worker's cache has no cap (a run's samples refer to its files by path), so it grew with every task ever
    trained on; files no run has used for ``UNIPIXEL_TRAIN_MEDIA_DAYS`` go (a run touches the files it uses)."""
    stale, fresh = _cached(tmp_path, 1, 400, 8 * 24 * HOUR), _cached(tmp_path, 2, 400, 6 * 24 * HOUR)
    caplog.set_level(logging.INFO, "backend.media_cache")
    result = MediaCache(tmp_path, max_bytes=0, max_age_s=7 * 24 * HOUR).prune(now=NOW)
    assert not stale.exists() and fresh.exists() and (result.expired, result.removed) == (1, 0)
    assert "not used for 7 days (UNIPIXEL_TRAIN_MEDIA_DAYS)" in caplog.text


def test_frame_list_folders_whose_frames_all_expired_go_with_them(tmp_path):
    """A frame-list task is trained on through ``frames-<key>/``, a folder of links to its cached frames. Once every
    frame has expired the folder only holds dangling links, so it goes too; one frame still cached keeps it (the
    next run downloads the rest again under the same names, and the links work again)."""
    from backend.task_data import frame_dir

    gone = [_cached(tmp_path, n, 10, 8 * 24 * HOUR, ".png") for n in (1, 2)]
    mixed = [_cached(tmp_path, 3, 10, 8 * 24 * HOUR, ".png"), _cached(tmp_path, 4, 10, HOUR, ".png")]
    dead, alive = frame_dir(gone, tmp_path / f"frames-{'a' * 24}"), frame_dir(mixed, tmp_path / f"frames-{'b' * 24}")
    foreign = frame_dir(gone, tmp_path / "frames-mine")  # not a name the fetcher writes
    filling = frame_dir([], tmp_path / f"frames-{'c' * 24}")  # another worker's run is linking its frames
    for folder in (dead, alive, foreign):
        os.utime(folder, (NOW - HOUR, NOW - HOUR))
    MediaCache(tmp_path, max_bytes=0, max_age_s=7 * 24 * HOUR).prune(now=NOW)
    assert not dead.exists() and alive.is_dir() and len(list(alive.iterdir())) == 2 and foreign.is_dir()
    assert filling.is_dir()
    assert [p.exists() for p in (*gone, *mixed)] == [False, False, False, True]


def test_the_fine_tunes_media_age_is_read_and_checked():
    policy = Settings.from_env({}).media_policy(Path("data/finetune/media"))
    assert (policy.cache_max_bytes, policy.cache_max_age_s) == (0, 7 * 86400)
    assert Settings.from_env({}).media_policy().cache_max_age_s == 0  # the server's cache: the cap alone
    assert FinetuneSettings.from_env({"UNIPIXEL_TRAIN_MEDIA_DAYS": "0"}).media_policy().cache_max_age_s == 0
    with pytest.raises(SettingsError, match=r"longer than a run may take \(UNIPIXEL_TRAIN_TIMEOUT_S=21600 s"):
        FinetuneSettings.from_env({"UNIPIXEL_TRAIN_MEDIA_DAYS": "0.2"})  # 4.8 h: a 6 h run's files could go


def test_the_cap_is_read_from_the_environment_and_checked():
    assert Settings.from_env({}).media_cache_bytes == 20 << 30
    assert Settings.from_env({"UNIPIXEL_MEDIA_CACHE_MB": "512"}).media_policy().cache_max_bytes == 512 << 20
    assert Settings.from_env({"UNIPIXEL_MEDIA_CACHE_MB": "0"}).media_policy().cache_max_bytes == 0
    # the fine-tune's own cache has no cap: its training samples refer to the files by path
    assert Settings.from_env({}).media_policy(Path("data/finetune/media")).cache_max_bytes == 0
    with pytest.raises(SettingsError, match="UNIPIXEL_MEDIA_CACHE_MB must be >= 0"):
        Settings.from_env({"UNIPIXEL_MEDIA_CACHE_MB": "-1"})
