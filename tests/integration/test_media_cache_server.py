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


def _age_the_cache(folder, hours: float) -> None:
    """Every cached file last used ``hours`` ago (yesterday's tasks)."""
    for path in folder.iterdir():
        past = time.time() - hours * 3600
        os.utime(path, (past, past))


def test_new_tasks_remove_the_media_used_longest_ago_and_a_reopened_task_downloads_again(make_client, media_root,
                                                                                          tmp_path):
    png = (media_root / "square.png").read_bytes()
    cache = tmp_path / "media-cache"
    with StubServer({f"/{n}.png": (200, {"Content-Type": PNG}, png) for n in (1, 2, 3)}) as host:
        client = make_client(allowed_hosts=("127.0.0.1",), describe_objects=False, media_cache_dir=cache,
                             media_cache_bytes=2 * len(png) + 10)  # room for two images
        for task_id in (1, 2):
            assert _predict(client, "image_segmentation", _task(host, task_id), {"result": [_click(40, 45)]}).status_code == 200
            _age_the_cache(cache, 3 - task_id)  # task 1 used 2 hours ago, task 2 an hour ago
        assert len(list(cache.iterdir())) == 2
        assert _predict(client, "image_segmentation", _task(host, 3), {"result": [_click(40, 45)]}).status_code == 200
        assert len(list(cache.iterdir())) == 2  # task 1's image went: used longest ago
        fetched = [path for _, path, _ in host.requests]
        assert fetched == ["/1.png", "/2.png", "/3.png"]
        client.engine.sessions.clear()  # reopened after its session expired (UNIPIXEL_SESSION_TTL_S)
        reply = _predict(client, "image_segmentation", _task(host, 1), {"result": [_click(40, 45)]})
        assert reply.status_code == 200 and reply.json["results"][0]["result"]
        assert [path for _, path, _ in host.requests] == [*fetched, "/1.png"]  # downloaded again
