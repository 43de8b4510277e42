"""The server's media cache under ``UNIPIXEL_MEDIA_CACHE_MB``, through ``/predict``: opening new tasks all day
removes the media used longest ago instead of filling the disk, and a task whose media was removed still answers
(its media is downloaded again)."""

from __future__ import annotations

import os
import time

from tests.integration.http_stub import StubServer
from tests.integration.test_backend_predict import _click, _predict

PNG = "image/png"


def _task(host: StubServer, task_id: int) -> dict:
    return {"id": task_id, "data": {"image": f"{host.url}/{task_id}.png"}}


def _used_hours_ago(paths, hours: float) -> None:
    """These cached files last used ``hours`` ago (yesterday's tasks)."""
    past = time.time() - hours * 3600
    for path in paths:
        os.utime(path, (past, past))


def test_new_tasks_remove_the_media_used_longest_ago_and_a_reopened_task_downloads_again(make_client, media_root,
                                                                                          tmp_path):
    png = (media_root / "square.png").read_bytes()
    cache = tmp_path / "media-cache"
    with StubServer({f"/{n}.png": (200, {"Content-Type": PNG}, png) for n in (1, 2, 3)}) as host:
        client = make_client(allowed_hosts=("127.0.0.1",), describe_objects=False, media_cache_dir=cache,
                             media_cache_bytes=2 * len(png) + 10)  # room for two images
        seen: set = set()
        for task_id in (1, 2):  # task 1's image used 2 hours ago, task 2's an hour ago
            assert _predict(client, "image_segmentation", _task(host, task_id),
                            {"result": [_click(40, 45)]}).status_code == 200
            _used_hours_ago(set(cache.iterdir()) - seen, 3 - task_id)
            seen = set(cache.iterdir())
        assert len(seen) == 2
        assert _predict(client, "image_segmentation", _task(host, 3), {"result": [_click(40, 45)]}).status_code == 200
        assert len(list(cache.iterdir())) == 2  # task 1's image went: used longest ago
        fetched = [path for _, path, _ in host.requests]
        assert fetched == ["/1.png", "/2.png", "/3.png"]
        client.engine.sessions.clear()  # reopened after its session expired (UNIPIXEL_SESSION_TTL_S)
        reply = _predict(client, "image_segmentation", _task(host, 1), {"result": [_click(40, 45)]})
        assert reply.status_code == 200 and reply.json["results"][0]["result"]
        assert [path for _, path, _ in host.requests] == [*fetched, "/1.png"]  # downloaded again
        _used_hours_ago(cache.iterdir(), 5)
        client.engine.sessions.clear()
        assert _predict(client, "image_segmentation", _task(host, 3), {"result": [_click(40, 45)]}).status_code == 200
        used_now = [p for p in cache.iterdir() if time.time() - p.stat().st_mtime < 600]
        assert len(used_now) == 1 and len(host.requests) == 4  # a cache hit: marked as used, not downloaded


def test_a_starting_backend_prunes_its_cache_before_the_first_request(make_client, tmp_path):
    """A cap lowered since the last start, or cut downloads of a killed backend, are dealt with when the server
    starts: the first annotator's click does not pay for a scan of the whole cache (0.3 s per 20,000 files)."""
    cache = tmp_path / "media-cache"
    cache.mkdir()
    files = [cache / f"{n:032x}.mp4" for n in range(3)]
    for n, path in enumerate(files):
        path.write_bytes(b"x" * 1000)
        _used_hours_ago([path], 3 - n)
    make_client(media_cache_dir=cache, media_cache_bytes=1500)  # no request at all
    assert sorted(p.name for p in cache.iterdir()) == [files[2].name]
