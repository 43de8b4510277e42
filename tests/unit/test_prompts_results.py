"""LS context -> prompts and tracks -> LS results, on golden Label Studio JSON (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.converters.annotation import MediaShape
from backend.converters.prompts import PromptControls, context_to_prompts, wants_model
from backend.converters.results import brush_result, description_result, prediction, video_rectangle_result
from backend.converters.rle import mask_to_ls_rle
from backend.converters.timeline import Timeline
from backend.errors import PromptError
from unipixel_model.prompts import BoxPrompt, MaskPrompt, PointPrompt

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
    (click,) = out.clicks
    assert click.point == PointPrompt(198.0, 120.0, 0, True) and click.label == "Banana"
    assert click.click_id == "fBWv1t0S2L" and not out.regions


def test_prompts_every_click_is_its_own_item_with_its_frame():
    # The editor sends every dynamic click of a label, on every page: which object each is for is
    # the backend's decision (backend/targeting.py), so the converter keeps them apart, in order.
    negative = {**KEYPOINT, "id": "n1", "is_positive": False, "item_index": 0, "value": {**KEYPOINT["value"], "x": 10}}
    other_frame = {**KEYPOINT, "id": "p2", "item_index": 4}
    out = context_to_prompts({"result": [KEYPOINT, negative, other_frame]}, SHAPE)
    assert [(c.click_id, c.point.positive, c.point.frame_idx) for c in out.clicks] == \
        [("fBWv1t0S2L", True, 0), ("n1", False, 0), ("p2", True, 4)]  # item_index is 0-based


def test_prompts_video_rectangle_ls_frame_3_is_frame_idx_2():
    (region,) = context_to_prompts({"result": [VIDEO_BOX]}, SHAPE).regions
    assert region.prompt == BoxPrompt(40.0, 40.0, 160.0, 120.0, 2) and region.region_id == "a1b2"
    assert region.label == "Player" and region.keyframe == VIDEO_BOX["value"]["sequence"][0]


def test_prompts_video_rectangle_other_framerate_goes_through_time():
    shape = MediaShape(num_frames=20, height_px=200, width_px=400, fps=50.0, ls_fps=25.0)
    (region,) = context_to_prompts({"result": [VIDEO_BOX]}, shape).regions
    assert region.prompt.frame_idx == 4  # LS frame 3 at 25 fps starts at 0.08 s = decoded frame 4 at 50 fps


def test_prompts_video_rectangle_past_the_end_is_skipped_with_the_framerate_hint():
    late = {**VIDEO_BOX, "value": {**VIDEO_BOX["value"], "sequence": [{**VIDEO_BOX["value"]["sequence"][0], "frame": 11}]}}
    out = context_to_prompts({"result": [late, KEYPOINT]}, SHAPE)
    assert not out.regions and len(out.clicks) == 1  # the rest of the call is still served
    assert len(out.skipped) == 1 and "framerate" in out.skipped[0]


def test_prompts_brush_rle_is_a_mask_prompt_and_only_the_prompt_control_is_a_query():
    mask = np.zeros((200, 400), bool)
    mask[50:60, 100:120] = True
    brush = {"id": "r1", "type": "brushlabels", "from_name": "mask", "to_name": "frames", "item_index": 9,
             "original_width": 400, "original_height": 200,
             "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Car"]}}
    text = {"from_name": "prompt", "type": "textarea", "value": {"text": ["red car"]}}
    described = {"id": "unipixel-3-ab12-f2", "from_name": "description", "type": "textarea",
                 "value": {"text": ["my words"]}}
    controls = PromptControls(prompt="prompt", description="description")
    out = context_to_prompts({"result": [brush, described, text]}, SHAPE, controls)
    assert out.text == "red car" and out.descriptions == {"unipixel-3-ab12": "my words"}
    assert isinstance(out.regions[0].prompt, MaskPrompt) and out.regions[0].prompt.frame_idx == 9
    assert np.array_equal(out.regions[0].prompt.mask, mask)


def test_prompts_backend_regions_coming_back_are_never_prompts():
    ours = {**KEYPOINT, "id": "unipixel-4-00ff00ff00ff00ff",  # "Keep label selected" relabels our mask
            "value": {"format": "rle", "rle": [1, 2], "keypointlabels": ["Banana"]}}
    out = context_to_prompts({"result": [ours, {**VIDEO_BOX, "id": "unipixel-4-aa-f3"}]}, SHAPE)
    assert not out.clicks and not out.regions and out.own == ["unipixel-4-00ff00ff00ff00ff", "unipixel-4-aa"]
    assert not wants_model({"result": [ours]}) and not wants_model({"result": []})
    assert wants_model({"result": [KEYPOINT]}) and wants_model({"result": [{"type": "textarea", "value": {}}]})


def test_prompts_rotated_rectangle_is_the_box_around_its_corners():
    # The 3-point tool: a 100x50 px box at (100, 50) px rotated 90 degrees clockwise about its top-left
    # corner covers x 50..100, y 50..150 (screen y points down).
    rect = {"id": "r", "type": "rectanglelabels", "from_name": "box", "to_name": "image",
            "value": {"x": 25, "y": 25, "width": 25, "height": 25, "rotation": 90, "rectanglelabels": ["Car"]}}
    (region,) = context_to_prompts({"result": [rect]}, SHAPE).regions
    assert np.allclose([region.prompt.x1_px, region.prompt.y1_px, region.prompt.x2_px, region.prompt.y2_px],
                       [50, 50, 100, 150])


@pytest.mark.parametrize("item, words", [
    ({**KEYPOINT, "item_index": 10}, "item_index 10 is out of range"),
    ({**KEYPOINT, "value": {"y": 3}}, "malformed"),
    ({**KEYPOINT, "value": {"x": float("inf"), "y": 3}}, "finite"),
    ({**VIDEO_BOX, "value": {"sequence": ["frame 3"]}}, "keyframe objects"),
    ("nope", "region object"),
])
def test_prompts_bad_regions_are_prompt_errors(item, words):
    with pytest.raises(PromptError, match=words):
        context_to_prompts({"result": [item]}, SHAPE)


def test_prompts_an_empty_brush_stroke_is_skipped_not_an_error():
    empty = {"type": "brushlabels", "id": "e", "original_width": 400, "original_height": 200,
             "value": {"format": "rle", "rle": mask_to_ls_rle(np.zeros((200, 400), bool))}}
    out = context_to_prompts({"result": [empty]}, SHAPE)
    assert not out.regions and "empty" in out.skipped[0]


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


def test_a_point_and_a_box_in_frame_pixels_become_ref_prompts_in_sam2_input_pixels():
    """One rule for the session and the trainer: x scales by side / W, y by side / H (a 200 x 100 frame, side 128)."""
    import torch

    from unipixel_model.prompt_encoder import ref_prompt_px

    point = ref_prompt_px(PointPrompt(50, 25, frame_idx=7), 2, (100, 200), 128)
    assert point.coords_sam.tolist() == [[32.0, 32.0]] and point.labels.tolist() == [1] and point.frame_idx == 2
    assert point.coords_sam.dtype == torch.float32
    box = ref_prompt_px(BoxPrompt(0, 0, 200, 100, frame_idx=7), 0, (100, 200), 128)
    assert box.coords_sam.tolist() == [[0.0, 0.0], [128.0, 128.0]] and box.labels.tolist() == [2, 3]
