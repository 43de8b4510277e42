"""/predict through the Flask client with the tiny real model: every config, every prompt kind, batch."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backend.converters.rle import ls_rle_to_mask, mask_to_ls_rle
from tests.integration.backend_media import HEIGHT, WIDTH
from tests.integration.conftest import config


def _predict(client, cfg: str, task: dict, context=None):
    return client.post("/predict", json={"tasks": [task], "label_config": config(cfg), "project": "3.1700000000",
                                         "params": {"login": None, "password": None, "context": context}})


def _click(x_pct, y_pct, positive=True, item_index=None, to_name="image", rid="k1", label="Object"):
    item = {"id": rid, "from_name": "click", "to_name": to_name, "type": "keypointlabels", "origin": "manual",
            "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0, "is_positive": positive,
            "value": {"x": x_pct, "y": y_pct, "width": 0.5, "keypointlabels": [label], "labels": [label]}}
    if item_index is not None:
        item["item_index"] = item_index
    return item


def _box(item_index=None, to_name="image", rid="b1", label="Object"):
    item = {"id": rid, "from_name": "box", "to_name": to_name, "type": "rectanglelabels",
            "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
            "value": {"x": 15, "y": 20, "width": 40, "height": 45, "rotation": 0, "rectanglelabels": [label]}}
    if item_index is not None:
        item["item_index"] = item_index
    return item


def _only(reply) -> dict:
    assert reply.status_code == 200, reply.json
    results = reply.json["results"]
    assert len(results) == 1 and isinstance(results[0], dict)  # LS reads results[0] as one dict
    return results[0]


def test_predict_image_click_returns_rle_mask_with_score(make_client, media_root):
    client = make_client()
    pred = _only(_predict(client, "image_segmentation", {"id": 1, "data": {"image": str(media_root / "square.png")}},
                          {"result": [_click(40, 45)]}))
    masks = [r for r in pred["result"] if r["type"] == "brushlabels"]
    assert len(masks) == 1
    region = masks[0]
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    assert region["value"]["brushlabels"] == ["Object"] and 0 <= region["score"] <= 1
    mask = ls_rle_to_mask(region["value"]["rle"], HEIGHT, WIDTH)
    assert mask.any() and mask_to_ls_rle(mask) == region["value"]["rle"]
    assert pred["model_version"].endswith("@base") and "score" in pred


def test_predict_on_media_stored_downscaled_answers_in_the_media_own_pixels(make_client, media_root):
    """UNIPIXEL_FRAME_MAX_SIDE stores larger frames smaller under TMPDIR; Label Studio still gets the mask at the
    image's own size, the click where it was made."""
    client = make_client(frame_max_side=WIDTH // 4)
    pred = _only(_predict(client, "image_segmentation", {"id": 1, "data": {"image": str(media_root / "square.png")}},
                          {"result": [_click(40, 45)]}))
    region = next(r for r in pred["result"] if r["type"] == "brushlabels")
    assert (region["original_width"], region["original_height"]) == (WIDTH, HEIGHT)
    assert ls_rle_to_mask(region["value"]["rle"], HEIGHT, WIDTH).shape == (HEIGHT, WIDTH)
    frames = client.engine.sessions.peek(1).session.frames
    assert frames.stored_hw == (HEIGHT // 4, WIDTH // 4) and frames.size_hw == (HEIGHT, WIDTH)


def test_predict_second_click_refines_without_llm_and_negative_click_changes_mask(make_client, media_root):
    client = make_client(describe_objects=False)
    task = {"id": 2, "data": {"image": str(media_root / "square.png")}}
    _only(_predict(client, "image_segmentation", task, {"result": [_click(40, 45)]}))
    ts = client.engine.sessions.peek(2)
    before_ids = set(ts.session.objects)
    logits_before = ts.session.objects[1].track.low_res_logits.clone()
    region_id = ts.clicks["k1"]
    llm_calls = []
    original = ts.session._llm
    ts.session._llm = lambda *a, **k: llm_calls.append(a) or original(*a, **k)  # spy: counts LLM passes
    _only(_predict(client, "image_segmentation", task,
                   {"result": [_click(40, 45), _click(20, 30, positive=False, rid="k2")]}))
    assert set(ts.session.objects) == before_ids  # refined in place, no new object
    assert client.engine.sessions.opened == 1 and llm_calls == []  # SAM 2 only: no LLM pass
    assert not ts.session.objects[1].track.low_res_logits.equal(logits_before)
    assert ts.clicks == {"k1": region_id, "k2": region_id}  # both clicks went to the one object


def test_predict_a_lone_negative_click_is_answered_empty_and_logged(make_client, media_root, caplog):
    # The editor sends an Alt-click alone after Auto-Accept; with nothing to correct it is not an error.
    reply = _predict(make_client(), "image_segmentation", {"id": 3, "data": {"image": str(media_root / "square.png")}},
                     {"result": [_click(40, 45, positive=False)]})
    assert reply.status_code == 200 and reply.json["results"][0]["result"] == []
    assert any("no object to correct" in r.getMessage() for r in caplog.records)


def test_predict_frames_box_gives_per_frame_masks_with_item_index(make_client, media_root):
    frames = [str(p) for p in sorted((media_root / "clip").glob("*.jpg"))]
    pred = _only(_predict(make_client(), "video_masks", {"id": 4, "data": {"frames": frames}},
                          {"result": [_box(item_index=3, to_name="frames")]}))
    masks = [r for r in pred["result"] if r["type"] == "brushlabels"]
    assert masks and all(r["to_name"] == "frames" and 0 <= r["item_index"] < len(frames) for r in masks)
    assert 3 in {r["item_index"] for r in masks}  # the prompt frame (0-based item_index) has a mask
    assert len({r["id"] for r in masks}) == len(masks)
    descriptions = [r for r in pred["result"] if r["type"] == "textarea"]
    assert len(descriptions) == 1 and descriptions[0]["id"] in {r["id"] for r in masks}


def test_predict_frames_brush_prompt_on_a_later_frame(make_client, media_root):
    frames = [str(p) for p in sorted((media_root / "clip").glob("*.jpg"))]
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[12:32, 12:32] = True
    brush = {"id": "m1", "from_name": "mask", "to_name": "frames", "type": "brushlabels", "item_index": 2,
             "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
             "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Person"]}}
    pred = _only(_predict(make_client(describe_objects=False), "video_masks", {"id": 5, "data": {"frames": frames}},
                          {"result": [brush]}))
    by_frame = {r["item_index"]: r for r in pred["result"]}
    assert 2 in by_frame and by_frame[2]["value"]["brushlabels"] == ["Person"]
    assert re.fullmatch(r"unipixel-5-[0-9a-f]{16}-f3", by_frame[2]["id"])  # fresh id, 1-based LS frame suffix


def test_predict_video_rectangle_on_frame_4_tracks_both_ways(make_client, media_root):
    box = {"id": "vr1", "from_name": "box", "to_name": "video", "type": "videorectangle",
           "value": {"framesCount": 12, "duration": 1.2, "labels": ["Person"], "sequence": [
               {"frame": 4, "enabled": True, "x": 25, "y": 25, "width": 35, "height": 40, "rotation": 0, "time": 0.3}]}}
    cfg = config("video_tracking").replace('framerate="25"', 'framerate="10"')
    reply = make_client().post("/predict", json={"tasks": [{"id": 6, "data": {"video": str(media_root / "clip.mp4")}}],
                                                 "label_config": cfg, "params": {"context": {"result": [box]}}})
    pred = _only(reply)
    region = next(r for r in pred["result"] if r["type"] == "videorectangle")
    assert region["id"] == "vr1" and region["value"]["labels"] == ["Person"]
    assert region["value"]["framesCount"] == 12
    frames = [k["frame"] for k in region["value"]["sequence"]]
    assert 4 in frames and frames == sorted(frames) and min(frames) >= 1 and max(frames) <= 12
    key = next(k for k in region["value"]["sequence"] if k["frame"] == 4)
    assert key["time"] == pytest.approx(0.3)


def test_predict_video_text_query_in_batch_uses_task_field(make_client, media_root):
    client = make_client(describe_objects=False)
    tasks = [{"id": 7, "data": {"video": str(media_root / "clip.mp4"), "query": "the yellow square"}},
             {"id": 8, "data": {"video": str(media_root / "clip.mp4")}}]
    reply = client.post("/predict", json={"tasks": tasks, "label_config": config("video_tracking"),
                                          "project": "3.1", "params": {"context": None}})
    assert reply.status_code == 200, reply.json
    results = reply.json["results"]
    assert len(results) == 2 and results[1] == []  # no query: no prediction at all, Label Studio stores none
    boxes = [r for r in results[0]["result"] if r["type"] == "videorectangle"]
    assert boxes and all(k["frame"] >= 1 for k in boxes[0]["value"]["sequence"])
    assert results[0]["model_version"] == reply.json["model_version"]


def test_predict_text_prompt_then_question_about_object_1(make_client, media_root):
    client = make_client()
    task = {"id": 9, "data": {"image": str(media_root / "square.png")}}
    text = {"id": "t1", "from_name": "prompt", "to_name": "image", "type": "textarea", "value": {"text": ["square"]}}
    first = _only(_predict(client, "referring_expressions", task, {"result": [text]}))
    assert any(r["type"] == "brushlabels" for r in first["result"])
    ts = client.engine.sessions.peek(9)
    assert 1 in ts.session.objects
    ask = {"id": "t2", "from_name": "prompt", "to_name": "image", "type": "textarea",
           "value": {"text": ["What is [1]?"]}}
    second = _only(_predict(client, "referring_expressions", task, {"result": [ask]}))
    descriptions = [r for r in second["result"] if r["type"] == "textarea"]
    assert descriptions, second  # the answer about [1] comes back as its description


def test_predict_several_objects_in_one_call(make_client, media_root):
    pred = _only(_predict(make_client(describe_objects=False), "image_segmentation",
                          {"id": 10, "data": {"image": str(media_root / "square.png")}},
                          {"result": [_box(rid="b1"), {**_box(rid="b2"), "value": {**_box()["value"], "x": 2}}]}))
    ids = {r["id"] for r in pred["result"]}
    assert len(ids) == 2 and all(re.fullmatch(r"unipixel-10-[0-9a-f]{16}", i) for i in ids)  # one fresh id each


def test_predict_empty_context_is_an_empty_prediction_without_a_session(make_client, media_root):
    # The editor posts {"result": []} after every Submit/Update: no session, no GPU lock.
    client = make_client()
    pred = _only(_predict(client, "image_segmentation",
                          {"id": 11, "data": {"image": str(media_root / "square.png")}}, {"result": []}))
    assert pred["result"] == [] and client.engine.sessions.peek(11) is None
