"""Protocol routes, auth, errors, queueing and long-video budgets through the Flask client."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from tests.integration.conftest import config
from tests.integration.test_backend_predict import _click, _only, _predict


def test_health_is_instant_and_does_not_load_the_model(backend_settings):
    from backend.api import create_app

    client = create_app(backend_settings).test_client()
    started = time.monotonic()
    reply = client.get("/health")
    assert reply.status_code == 200 and reply.json["status"] == "UP"
    assert reply.json["model_loaded"] is False and time.monotonic() - started < 1.0
    setup = client.post("/setup", json={"project": "1.1", "schema": config("video_tracking"), "hostname": "x",
                                        "access_token": "t", "extra_params": {"a": 1}})
    assert setup.status_code == 200 and setup.json["model_version"].endswith("@base")
    assert client.get("/versions").json["versions"] == []
    assert client.application.config["engine"].loaded is False


@pytest.mark.parametrize("body, status, words", [
    (None, 400, "JSON object"),
    ({"tasks": [{"id": 1, "data": {}}], "label_config": "<View/>"}, 422, "unsupported labeling config"),
    ({"tasks": "nope", "label_config": "<View/>"}, 400, "non-empty list"),
    ({"tasks": [], "label_config": "x"}, 400, "non-empty list"),
    ({"tasks": [{"id": 1, "data": {}}], "label_config": "<View><Image name='i' value='$image'/>"}, 422, "not valid XML"),
    ({"tasks": [{"id": 1, "data": {"image": "x"}}], "label_config": "<View><Text name='t' value='$t'/>"
      "<Choices name='c' toName='t'><Choice value='a'/></Choices></View>"}, 422, "Image + BrushLabels"),
    ({"tasks": [{"id": 1}], "label_config": None}, 400, "non-empty list"),
])
def test_predict_malformed_bodies_get_clear_4xx(make_client, body, status, words):
    client = make_client()
    if body is not None and body.get("label_config") is None:
        body = {"tasks": [], "label_config": config("image_segmentation")}
    reply = client.post("/predict", json=body) if body is not None else client.post("/predict", data="{oops")
    assert reply.status_code == status, reply.json
    assert words in reply.json["error"] and "Traceback" not in reply.get_data(as_text=True)


@pytest.mark.parametrize("label_config", [None, "", "<View", "<View/>"])
def test_label_config_errors_name_the_field(make_client, label_config):
    """Found by the long fuzz run: a body without ``label_config`` got a 422 that named no field."""
    body = {"tasks": [{"id": 1, "data": {"image": "x.png"}}]}
    if label_config is not None:
        body["label_config"] = label_config
    reply = make_client().post("/predict", json=body)
    assert reply.status_code == 422 and reply.json["field"] == "label_config", reply.json


def test_media_errors_name_the_task_data_key(make_client):
    """Found by the long fuzz run: an empty frame list got a 422 that named no field."""
    reply = _predict(make_client(), "video_masks", {"id": 902, "data": {"frames": []}}, {"result": [_click(10, 10)]})
    assert reply.status_code == 422 and reply.json["field"] == "data.frames", reply.json


def test_predict_task_without_media_key_names_it(make_client):
    reply = _predict(make_client(), "image_segmentation", {"id": 1, "data": {"img": "x.png"}},
                     {"result": [_click(10, 10)]})
    assert reply.status_code == 400 and "'image'" in reply.json["error"]


@pytest.mark.parametrize("url, status, words", [
    ("http://example.invalid/a.png", 422, "UNIPIXEL_ALLOWED_HOSTS"),
    ("/etc/passwd", 422, "UNIPIXEL_LOCAL_ROOTS"),
    ("/data/upload/1/a.png", 422, "LABEL_STUDIO_URL"),
    ("ftp://host/a.png", 422, "unsupported URL scheme"),
])
def test_predict_disallowed_media_is_refused(make_client, url, status, words):
    reply = _predict(make_client(), "image_segmentation", {"id": 1, "data": {"image": url}},
                     {"result": [_click(10, 10)]})
    assert reply.status_code == status and words in reply.json["error"]


def test_predict_unreachable_label_studio_is_424(make_client):
    client = make_client(label_studio_url="http://127.0.0.1:9", label_studio_api_key="0" * 40)
    reply = _predict(client, "image_segmentation", {"id": 1, "data": {"image": "/data/upload/1/a.png"}},
                     {"result": [_click(10, 10)]})
    assert reply.status_code == 424 and "cannot download" in reply.json["error"]


def test_predict_undecodable_media_is_422(make_client, media_root):
    bad = media_root / "broken.mp4"
    bad.write_bytes(b"not a video")
    reply = _predict(make_client(), "video_tracking", {"id": 12, "data": {"video": str(bad)}},
                     {"result": [{"type": "textarea", "from_name": "prompt", "to_name": "video",
                                  "value": {"text": ["x"]}}]})
    assert reply.status_code == 422 and "broken.mp4" in reply.json["error"]


def test_predict_media_too_large_is_422(make_client, media_root):
    reply = _predict(make_client(max_media_bytes=100), "image_segmentation",
                     {"id": 1, "data": {"image": str(media_root / "square.png")}}, {"result": [_click(10, 10)]})
    assert reply.status_code == 422 and "UNIPIXEL_MAX_MEDIA_MB" in reply.json["error"]


def test_basic_auth_guards_everything_but_health(make_client, media_root):
    client = make_client(basic_auth_user="ls", basic_auth_pass="pw", webhook_secret="s3cret")
    assert client.get("/health").status_code == 200
    denied = client.post("/setup", json={"project": "1.1", "schema": config("image_segmentation")})
    assert denied.status_code == 401 and "WWW-Authenticate" in denied.headers
    token = base64.b64encode(b"ls:pw").decode()
    ok = client.post("/setup", json={"project": "1.1"}, headers={"Authorization": f"Basic {token}"})
    assert ok.status_code == 200
    assert client.get("/versions").status_code == 401
    hook = {"action": "PROJECT_UPDATED", "project": {"id": 1}}
    assert client.post("/webhook", json=hook).status_code == 401
    assert client.post("/webhook", json=hook, headers={"X-UniPixel-Secret": "s3cret"}).status_code == 200


def test_full_request_queue_answers_503_with_retry_after(make_client, media_root):
    client = make_client(max_queued_requests=1)
    engine = client.engine
    engine.gpu.acquire()  # the model is busy with a long call
    try:
        waiting = [threading.Thread(target=_predict, args=(client, "image_segmentation",
                                                          {"id": 20 + n, "data": {"image": str(media_root / "square.png")}},
                                                          {"result": [_click(40, 45)]})) for n in range(2)]
        for thread in waiting:
            thread.start()
        time.sleep(0.5)  # both admitted: one slot for the running call's successor, one waiting
        reply = _predict(client, "image_segmentation", {"id": 30, "data": {"image": str(media_root / "square.png")}},
                         {"result": [_click(40, 45)]})
        assert reply.status_code == 503 and int(reply.headers["Retry-After"]) > 0
        assert "retry" in reply.json["error"]
    finally:
        engine.gpu.release()
    for thread in waiting:
        thread.join(timeout=60)


def _video_box_body(video, task_id: int, region_id: str, frames: int) -> dict:
    """A /predict body: a ``video_tracking.xml`` task (framerate 10) of ``frames`` frames with one box drawn on its
    middle LS frame (1-based), as the editor sends it."""
    middle = frames // 2
    box = {"id": region_id, "from_name": "box", "to_name": "video", "type": "videorectangle",
           "value": {"framesCount": frames, "duration": frames / 10, "labels": ["Object"], "sequence": [
               {"frame": middle, "enabled": True, "x": 20, "y": 20, "width": 40, "height": 45,
                "time": (middle - 1) / 10}]}}
    return {"tasks": [{"id": task_id, "data": {"video": str(video)}}],
            "label_config": config("video_tracking").replace('framerate="25"', 'framerate="10"'),
            "params": {"context": {"result": [box]}}}


def test_long_video_answers_within_budget_and_finishes_in_background(make_client, media_root):
    from tests.integration.backend_media import write_video

    video = write_video(media_root / "long.mp4", count=60, fps=10)
    client = make_client(interactive_budget_s=0.01, describe_objects=False)
    body = _video_box_body(video, task_id=40, region_id="vr9", frames=60)
    first = _only(client.post("/predict", json=body))
    ts = client.engine.sessions.peek(40)
    tracked_now = len(ts.session.objects[1].track.frame_idx)
    assert tracked_now < 60  # cut by the budget: the rest continues in the background
    for future in list(client.engine.background_jobs):
        final = future.result(timeout=120)
    assert final is not None and len(ts.session.objects[1].track.frame_idx) == 60
    again = _only(client.post("/predict", json=body))  # served from the cached session, complete
    assert client.engine.sessions.opened == 1
    assert len(again["result"][0]["value"]["sequence"]) >= len(first["result"][0]["value"]["sequence"]) >= 1


def test_label_studio_down_during_the_background_post_drops_it_with_a_clear_log_line(make_client, media_root, caplog):
    import socket

    from tests.integration.backend_media import write_video

    with socket.socket() as sock:  # a port nothing listens on: Label Studio is down
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    video = write_video(media_root / "long-ls-down.mp4", count=40, fps=10)
    client = make_client(interactive_budget_s=0.01, describe_objects=False, label_studio_url=down,
                         label_studio_api_key="token-of-a-test")
    body = _video_box_body(video, task_id=41, region_id="vr8", frames=40)
    with caplog.at_level("WARNING"):
        _only(client.post("/predict", json=body))
        for future in list(client.engine.background_jobs):
            assert future.result(timeout=120) is not None  # the track was finished, only the post failed
    assert "task 41: the full track of vr8 was not stored in Label Studio and is dropped (cannot reach" in caplog.text
    assert "background job" not in caplog.text and "token-of-a-test" not in caplog.text
    assert client.get("/health").status_code == 200 and _only(client.post("/predict", json=body))["result"]


def test_media_change_reopens_the_session(make_client, media_root):
    client = make_client(describe_objects=False)
    task = {"id": 50, "data": {"image": str(media_root / "square.png")}}
    _only(_predict(client, "image_segmentation", task, {"result": [_click(40, 45)]}))
    copy = media_root / "square2.png"
    copy.write_bytes((media_root / "square.png").read_bytes())
    _only(_predict(client, "image_segmentation", {"id": 50, "data": {"image": str(copy)}},
                   {"result": [_click(40, 45)]}))
    assert client.engine.sessions.opened == 2


def test_broken_published_version_keeps_the_previous_one_serving(make_client, media_root, tmp_path):
    import json as _json

    from backend.versions import VersionStore

    broken = tmp_path / "models" / "p1-broken"
    (broken / "adapter").mkdir(parents=True)
    (broken / "adapter" / "adapter_config.json").write_text("{}")  # no weights: cannot load
    (broken / "version.json").write_text(_json.dumps({"version": "p1-broken"}))
    VersionStore(tmp_path / "models").set_latest("p1-broken")
    client = make_client(model_dir=tmp_path / "models", describe_objects=False)
    reply = _predict(client, "image_segmentation", {"id": 80, "data": {"image": str(media_root / "square.png")}},
                     {"result": [_click(40, 45)]})
    assert reply.status_code == 200 and reply.json["results"][0]["model_version"].endswith("@base")
    assert client.post("/setup", json={"project": "1.1"}).json["model_version"].endswith("@base")


def test_a_version_of_another_base_model_is_refused_with_one_clear_line(make_client, media_root, tmp_path, caplog):
    """MODEL_DIR shared by backends of two base models (or UNIPIXEL_MODEL changed): the latest version was trained on
    another base. The backend serves its base and says so in one ERROR line that names both models and what to do,
    without a traceback (the checkpoint error already says which files do not fit)."""
    import json as _json

    from backend.versions import VersionStore

    other = tmp_path / "models" / "p2-other"
    (other / "adapter").mkdir(parents=True)
    (other / "adapter" / "adapter_config.json").write_text("{}")
    (other / "version.json").write_text(_json.dumps({"version": "p2-other", "base_model": "toy"}))
    VersionStore(tmp_path / "models").set_latest("p2-other")
    client = make_client(model_dir=tmp_path / "models", describe_objects=False)
    with caplog.at_level("ERROR", logger="backend.engine"):
        reply = _predict(client, "image_segmentation", {"id": 82, "data": {"image": str(media_root / "square.png")}},
                         {"result": [_click(40, 45)]})
    assert reply.status_code == 200 and reply.json["results"][0]["model_version"].endswith("@base")
    (record,) = [r for r in caplog.records if "p2-other" in r.getMessage()]
    said = record.getMessage()
    assert said.startswith("cannot activate model version p2-other: ") and record.exc_info is None, said
    assert f"trained on 'toy', and this backend serves {client.engine.settings.model!r}" in said, said
    assert "a MODEL_DIR of its own" in said, said
    versions = client.get("/versions").json  # where an operator looks: the version, refused, with the same reason
    assert versions["current"].endswith("@base") and list(versions["refused"]) == ["p2-other"]
    assert "trained on 'toy'" in versions["refused"]["p2-other"] and versions["refused"]["p2-other"] in said


def test_oversized_video_is_refused_from_its_header(make_client, media_root):
    client = make_client(max_pixels=64 * 47)  # the clip is 64x48
    reply = _predict(client, "video_tracking", {"id": 81, "data": {"video": str(media_root / "clip.mp4")}},
                     {"result": [{"type": "textarea", "from_name": "prompt", "to_name": "video",
                                  "value": {"text": ["x"]}}]})
    assert reply.status_code == 422 and "64x48" in reply.json["error"] and "UNIPIXEL_MAX_PIXELS" in reply.json["error"]
    assert client.engine.sessions.opened == 0  # refused before any decoding
