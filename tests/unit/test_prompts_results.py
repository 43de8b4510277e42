"""LS context -> prompts and tracks -> LS results, on golden Label Studio JSON (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.converters.prompts import MediaShape, context_to_prompts
from backend.converters.results import brush_result, description_result, prediction, video_rectangle_result
from backend.converters.rle import mask_to_ls_rle
from backend.converters.timeline import Timeline
from backend.errors import PromptError
from unipixel_model.types import BoxPrompt, MaskPrompt, PointPrompt

SHAPE = MediaShape(num_frames=10, height_px=200, width_px=400, fps=25.0)
# As LS 1.23.2 sends them (docs/label_studio_protocol.md §1.5, §5)
KEYPOINT = {"id": "fBWv1t0S2L", "from_name": "click", "to_name": "image", "type": "keypointlabels", "origin": "manual",
            "original_width": 400, "original_height": 200, "image_rotation": 0, "is_positive": True,
            "value": {"x": 49.5, "y": 60.0, "width": 0.32, "keypointlabels": ["Banana"], "labels": ["Banana"]}}
VIDEO_BOX = {"id": "a1b2", "from_name": "box", "to_name": "video", "type": "videorectangle", "origin": "manual",
             "value": {"framesCount": 10, "duration": 0.4, "labels": ["Player"], "sequence": [
                 {"frame": 3, "enabled": True, "rotation": 0, "x": 10, "y": 20, "width": 30, "height": 40, "time": 0.08},
                 {"frame": 7, "enabled": False, "rotation": 0, "x": 11, "y": 21, "width": 30, "height": 40, "time": 0.24}]}}


def test_prompts_keypoint_percent_to_pixels_and_label():
    out = context_to_prompts({"result": [KEYPOINT]}, SHAPE)
    (obj,) = out.objects
    assert obj.prompt == PointPrompt(198.0, 120.0, 0, True) and obj.label == "Banana"
    assert obj.key == "points:Banana:0"


def test_prompts_negative_click_joins_the_positive_group_on_its_frame():
    negative = {**KEYPOINT, "id": "n1", "is_positive": False, "item_index": 0, "value": {**KEYPOINT["value"], "x": 10}}
    other_frame = {**KEYPOINT, "id": "p2", "item_index": 4}
    out = context_to_prompts({"result": [KEYPOINT, negative, other_frame]}, SHAPE)
    groups = {o.key: o for o in out.objects}
    assert [c.positive for c in groups["points:Banana:0"].clicks] == [True, False]
    assert groups["points:Banana:4"].prompt.frame_idx == 4  # item_index is 0-based


def test_prompts_video_rectangle_ls_frame_3_is_frame_idx_2():
    (obj,) = context_to_prompts({"result": [VIDEO_BOX]}, SHAPE).objects
    assert obj.prompt == BoxPrompt(40.0, 40.0, 160.0, 120.0, 2) and obj.region_id == "a1b2" and obj.label == "Player"


def test_prompts_video_rectangle_other_framerate_goes_through_time():
    shape = MediaShape(num_frames=20, height_px=200, width_px=400, fps=50.0, ls_fps=25.0)
    (obj,) = context_to_prompts({"result": [VIDEO_BOX]}, shape).objects
    assert obj.prompt.frame_idx == 4  # LS frame 3 at 25 fps starts at 0.08 s = decoded frame 4 at 50 fps


def test_prompts_video_rectangle_past_the_end_says_check_framerate():
    late = {**VIDEO_BOX, "value": {**VIDEO_BOX["value"], "sequence": [{**VIDEO_BOX["value"]["sequence"][0], "frame": 11}]}}
    with pytest.raises(PromptError, match="framerate"):
        context_to_prompts({"result": [late]}, SHAPE)


def test_prompts_brush_rle_is_a_mask_prompt_and_text_is_read():
    mask = np.zeros((200, 400), bool)
    mask[50:60, 100:120] = True
    brush = {"id": "r1", "type": "brushlabels", "from_name": "mask", "to_name": "frames", "item_index": 9,
             "original_width": 400, "original_height": 200,
             "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Car"]}}
    text = {"from_name": "prompt", "type": "textarea", "value": {"text": ["red car"]}}
    out = context_to_prompts({"result": [brush, text]}, SHAPE)
    assert out.text == "red car"
    assert isinstance(out.objects[0].prompt, MaskPrompt) and out.objects[0].prompt.frame_idx == 9
    assert np.array_equal(out.objects[0].prompt.mask, mask)


@pytest.mark.parametrize("item, words", [
    ({**KEYPOINT, "item_index": 10}, "item_index 10 is out of range"),
    ({**KEYPOINT, "value": {"y": 3}}, "malformed"),
    ({"type": "brushlabels", "id": "e", "value": {"format": "rle", "rle": mask_to_ls_rle(np.zeros((200, 400), bool))},
      "original_width": 400, "original_height": 200}, "empty"),
    ("nope", "region object"),
])
def test_prompts_bad_regions_are_prompt_errors(item, words):
    with pytest.raises(PromptError, match=words):
        context_to_prompts({"result": [item]}, SHAPE)


def test_results_video_rectangle_keyframes_are_1_based_with_span_ends():
    boxes = {0: (40, 40, 160, 120), 1: (44, 40, 164, 120), 2: None, 3: (50, 40, 170, 120)}
    region = video_rectangle_result("box", "video", "r1", "Player", boxes, Timeline(4, 25.0, 25.0), (400, 200), 0.8)
    seq = region["value"]["sequence"]
    assert [k["frame"] for k in seq] == [1, 2, 4]
    assert [k["enabled"] for k in seq] == [True, False, True]
    assert seq[0] == {"frame": 1, "enabled": True, "rotation": 0, "time": 0.0, "x": 10.0, "y": 20.0,
                      "width": 30.0, "height": 40.0}
    assert seq[2]["time"] == pytest.approx(0.12)
    assert region["value"]["framesCount"] == 4 and region["value"]["labels"] == ["Player"] and region["score"] == 0.8


def test_results_video_rectangle_never_visible_is_none():
    assert video_rectangle_result("b", "v", "r", None, {0: None}, Timeline(1, 25, 25), (4, 4), 0.0) is None


def test_results_brush_and_description_share_id_and_item_index():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    brush = brush_result("mask", "frames", "r1-f3", "Object", mask, 0.91234, item_index=2)
    assert brush["value"]["rle"] == mask_to_ls_rle(mask) and brush["item_index"] == 2 and brush["score"] == 0.9123
    text = description_result("description", "frames", "r1-f3", "a dog", item_index=2)
    assert text["id"] == brush["id"] and text["value"] == {"text": ["a dog"]}
    pred = prediction([brush, text], "tiny@base")
    assert pred == {"result": [brush, text], "score": 0.9123, "model_version": "tiny@base"}
