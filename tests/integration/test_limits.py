"""Limits checked before any work (issue 13, part 2), through the Flask client and loopback HTTP stubs.

Each test fails with its limit removed: the body would be read, the model locked, the RLE decoded, the
redirect followed or the Label Studio token sent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.converters.rle import mask_to_ls_rle
from tests.integration.backend_media import HEIGHT, WIDTH
from tests.integration.conftest import config
from tests.integration.http_stub import StubServer
from tests.integration.test_backend_predict import _click, _predict

PNG = "image/png"


def _image_task(media_root, task_id: int = 1, url: str | None = None) -> dict:
    return {"id": task_id, "data": {"image": url or str(media_root / "square.png")}}


def _no_work_done(client) -> None:
    assert client.engine.sessions.opened == 0  # refused before the media was opened or the model locked


def test_body_over_the_cap_is_413_before_reading(make_client, media_root):
    client = make_client(max_request_bytes=4096)
    body = {"tasks": [_image_task(media_root)], "label_config": config("image_segmentation"),
            "params": {"context": {"result": [_click(40, 45)] * 30}}}
    reply = client.post("/predict", json=body)
    assert reply.status_code == 413 and reply.json["field"] == "body"
    assert "4096" in reply.json["error"] and "UNIPIXEL_MAX_REQUEST_MB" in reply.json["error"]
    _no_work_done(client)


def test_default_body_cap_is_8_mib(make_client):
    client = make_client()
    reply = client.post("/setup", data=b'{"project": "' + b"a" * (8 << 20) + b'"}', content_type="application/json")
    assert reply.status_code == 413 and "UNIPIXEL_MAX_REQUEST_MB" in reply.json["error"]


@pytest.mark.parametrize("kind, setting", [("clicks", "UNIPIXEL_MAX_CLICKS"), ("regions", "UNIPIXEL_MAX_REGIONS")])
def test_too_many_clicks_or_regions_are_refused_before_the_model(make_client, media_root, kind, setting):
    client = make_client(max_clicks=5, max_regions=3)
    if kind == "clicks":
        items = [_click(40 + n % 10, 45, rid=f"k{n}") for n in range(6)]
    else:
        items = [{"id": f"t{n}", "type": "textarea", "from_name": "prompt", "to_name": "image",
                  "value": {"text": ["x"]}} for n in range(4)]
    reply = _predict(client, "image_segmentation", _image_task(media_root), {"result": items})
    assert reply.status_code == 400 and setting in reply.json["error"]
    assert reply.json["field"] == "params.context.result"
    _no_work_done(client)


@pytest.mark.parametrize("raw, field", [
    (b'{"tasks": [{"id": Infinity, "data": {}}]}', "tasks[0].id"),
    (b'{"tasks": [{"id": 1e400, "data": {}}]}', "tasks[0].id"),
    (b'{"tasks": [{"id": 99999999999999999999999, "data": {}}]}', "tasks[0].id"),
    (b'{"tasks": [{"id": 1, "data": {}}], "params": {"context": {"result": [{"type": "keypointlabels", '
     b'"value": {"x": NaN, "y": 3}}]}}}', "params.context.result[0].value.x"),
    # a lone surrogate is valid JSON; the tokenizer raised TypeError on it (HTTP 500) before this check
    (b'{"tasks": [{"id": 1, "data": {"query": "a\\ud800"}}]}', "tasks[0].data.query"),
    (b'{"tasks": [{"id": 1, "data": {}}], "params": {"context": {"result": [{"type": "textarea", '
     b'"value": {"text": ["\\udfffx"]}}]}}}', "params.context.result[0].value.text[0]"),
])
def test_non_finite_and_huge_numbers_are_400_naming_the_field(make_client, raw, field):
    client = make_client()
    reply = client.post("/predict", data=raw, content_type="application/json")
    assert reply.status_code == 400 and reply.json["field"] == field, reply.json
    _no_work_done(client)


@pytest.mark.parametrize("region, field", [
    ({"type": "keypointlabels", "value": {"x": 1e6, "y": 3}}, "params.context.result[0].value.x"),
    ({"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": -5000, "height": 3}},
     "params.context.result[0].value.width"),
    ({"type": "videorectangle", "value": {"sequence": [{"frame": 0, "x": 1, "y": 1, "width": 3, "height": 3}]}},
     "params.context.result[0].value.sequence[0].frame"),
    ({"type": "keypointlabels", "item_index": -1, "value": {"x": 1, "y": 1}}, "params.context.result[0].item_index"),
    ({"type": "textarea", "value": {"text": ["a" * 2001]}}, "params.context.result[0].value.text"),
    # found by the fuzzer: typed control tokens reached the model, which refused the call (422, no field)
    ({"type": "textarea", "value": {"text": ["<|seg|><|ref|><|mem|>"]}}, "params.context.result[0].value.text"),
])
def test_out_of_range_region_numbers_are_400_naming_the_field(make_client, media_root, region, field):
    client = make_client()
    reply = _predict(client, "image_segmentation", _image_task(media_root), {"result": [region]})
    assert reply.status_code == 400 and reply.json["field"] == field, reply.json
    _no_work_done(client)


def test_deep_json_is_refused(make_client):
    client = make_client(max_json_depth=10)
    nested = "[" * 11 + "]" * 11
    reply = client.post("/webhook", data=f'{{"action": "X", "a": {nested}}}', content_type="application/json")
    assert reply.status_code == 400 and "UNIPIXEL_MAX_JSON_DEPTH" in reply.json["error"]
    assert reply.json["field"].startswith("a[0]")
    very_deep = client.post("/setup", data=b"[" * 200_000 + b"]" * 200_000, content_type="application/json")
    assert very_deep.status_code == 400 and "UNIPIXEL_MAX_JSON_DEPTH" in very_deep.json["error"]


def test_brush_mask_size_is_checked_before_decoding(make_client, media_root, monkeypatch):
    import backend.converters.rle as rle

    decoded = []
    monkeypatch.setattr(rle, "_decoded_runs", lambda *a: decoded.append(a) or (_ for _ in ()).throw(AssertionError))
    client = make_client(max_pixels=WIDTH * HEIGHT)
    claim = list((30000 * 30000 * 4).to_bytes(4, "big")) + mask_to_ls_rle(np.ones((2, 2), bool))[4:]
    region = {"id": "m1", "type": "brushlabels", "from_name": "mask", "to_name": "image", "original_width": 30000,
              "original_height": 30000, "value": {"format": "rle", "rle": claim, "brushlabels": ["Object"]}}
    reply = _predict(client, "image_segmentation", _image_task(media_root), {"result": [region]})
    assert reply.status_code == 400 and "UNIPIXEL_MAX_PIXELS" in reply.json["error"]
    assert reply.json["field"] == "params.context.result[0].original_width" and decoded == []
    # within UNIPIXEL_MAX_PIXELS but not the media's size: refused by the prompt reader, still undecoded
    region.update(original_width=WIDTH - 1, original_height=HEIGHT)
    reply = _predict(client, "image_segmentation", _image_task(media_root), {"result": [region]})
    assert reply.status_code == 422 and f"{WIDTH}x{HEIGHT}" in reply.json["error"] and decoded == []


def test_bad_framerate_in_config_is_422_not_500(make_client, media_root):
    client = make_client()
    body = {"tasks": [{"id": 5, "data": {"video": str(media_root / "clip.mp4")}}],
            "label_config": config("video_tracking").replace('framerate="25"', 'framerate="fast"'),
            "params": {"context": {"result": [{"type": "textarea", "from_name": "prompt", "to_name": "video",
                                               "value": {"text": ["x"]}}]}}}
    reply = client.post("/predict", json=body)
    assert reply.status_code == 422 and "framerate" in reply.json["error"]


# ---- media: redirects, Label Studio paths, presigned URLs ---------------------------------------------------
def test_redirect_from_an_allowed_host_to_another_host_is_refused(make_client, media_root):
    png = (media_root / "square.png").read_bytes()
    with StubServer({"/a.png": (200, {"Content-Type": PNG}, png)}) as elsewhere, StubServer() as allowed:
        allowed.routes["/x.png"] = (302, {"Location": f"http://localhost:{elsewhere.port}/a.png"}, b"")
        allowed.routes["/ok.png"] = (302, {"Location": "/direct.png"}, b"")
        allowed.routes["/direct.png"] = (200, {"Content-Type": PNG}, png)
        client = make_client(allowed_hosts=("127.0.0.1",), describe_objects=False)
        reply = _predict(client, "image_segmentation", _image_task(media_root, 60, f"{allowed.url}/x.png"),
                         {"result": [_click(40, 45)]})
        assert reply.status_code == 422 and "'localhost'" in reply.json["error"]
        assert "UNIPIXEL_ALLOWED_HOSTS" in reply.json["error"] and elsewhere.requests == []
        ok = _predict(client, "image_segmentation", _image_task(media_root, 61, f"{allowed.url}/ok.png"),
                      {"result": [_click(40, 45)]})
        assert ok.status_code == 200  # a redirect within an allowed host is followed
        allowed.routes["/bad.png"] = (302, {"Location": "http://[::1/x.png", "Content-Length": "junk"}, b"")
        bad = _predict(client, "image_segmentation", _image_task(media_root, 59, f"{allowed.url}/bad.png"),
                       {"result": [_click(40, 45)]})
        assert bad.status_code == 424 and "invalid URL" in bad.json["error"]


@pytest.mark.parametrize("path", ["/data/upload/../../../api/users/", "/data/upload/%2e%2e/%2E%2E/api/users/",
                                  "/data/upload/1/%252e%252e/x.png", "/tasks/1/../../api/users",
                                  "/data/local-files/../../api/projects/?d=x.png", "/storage-data/"])
def test_label_studio_paths_leaving_the_media_prefixes_are_refused_before_the_token_is_sent(make_client, media_root,
                                                                                             path):
    with StubServer() as ls:
        client = make_client(label_studio_url=ls.url, label_studio_api_key="1" * 40)
        reply = _predict(client, "image_segmentation", _image_task(media_root, 62, path), {"result": [_click(40, 45)]})
        assert reply.status_code == 422 and "media paths" in reply.json["error"]
        assert ls.requests == []  # nothing reached Label Studio, so no token either
        absolute = _predict(client, "image_segmentation", _image_task(media_root, 63, ls.url + path),
                            {"result": [_click(40, 45)]})
        assert absolute.status_code == 422 and ls.requests == []


def test_label_studio_media_paths_are_normalised_and_sent_with_the_token(make_client, media_root):
    png = (media_root / "square.png").read_bytes()
    with StubServer({"/data/upload/2/a.png": (200, {"Content-Type": PNG}, png)}) as ls:
        client = make_client(label_studio_url=ls.url, label_studio_api_key="1" * 40, describe_objects=False)
        reply = _predict(client, "image_segmentation", _image_task(media_root, 64, "/data/upload/1/../2/./a.png"),
                         {"result": [_click(40, 45)]})
        assert reply.status_code == 200, reply.json
        assert [(path, headers.get("Authorization")) for _, path, headers in ls.requests] == \
            [("/data/upload/2/a.png", "Token " + "1" * 40)]


def test_cloud_urls_are_presigned_by_label_studio_only(make_client, media_root):
    png = (media_root / "square.png").read_bytes()
    with StubServer({"/bucket/a.png": (200, {"Content-Type": PNG}, png)}) as cloud, StubServer() as ls:
        signed = f"http://localhost:{cloud.port}/bucket/a.png?X-Amz-Signature=abc"
        ls.routes["/tasks/65/presign/"] = (303, {"Location": signed}, b"")
        ls.routes["/data/upload/1/a.png"] = (302, {"Location": signed}, b"")
        client = make_client(label_studio_url=ls.url, label_studio_api_key="1" * 40, describe_objects=False)
        reply = _predict(client, "image_segmentation", _image_task(media_root, 65, "s3://bucket/a.png"),
                         {"result": [_click(40, 45)]})
        assert reply.status_code == 200, reply.json
        assert cloud.requests and "Authorization" not in cloud.requests[0][2]  # the token stays with LS
        # the same redirect from a media path (not the presign endpoint) is not followed
        moved = _predict(client, "image_segmentation", _image_task(media_root, 66, "/data/upload/1/a.png"),
                         {"result": [_click(40, 45)]})
        assert moved.status_code == 422 and "'localhost'" in moved.json["error"] and len(cloud.requests) == 1
        # a presign-looking URL on another host is just a host that is not allowed
        direct = _predict(client, "image_segmentation",
                          _image_task(media_root, 67, f"http://localhost:{cloud.port}/tasks/1/presign/?fileuri=x"),
                          {"result": [_click(40, 45)]})
        assert direct.status_code == 422 and "UNIPIXEL_ALLOWED_HOSTS" in direct.json["error"]
        assert "X-Amz-Signature" not in json.dumps([moved.json, direct.json])
