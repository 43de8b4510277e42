"""The one Label Studio region parser (``backend.converters.annotation``): its rules, and both readers obeying them.

The interactive context (``converters.prompts``) and the saved annotations the fine-tune trains on
(``finetune.convert``) used to have a parser each, and their rules disagreed (disabled keyframes, ``item_index``
range, label keys, rotation, raise vs skip). Each test below gives the same regions to both readers.
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.converters.annotation import (BoxRegion, KeypointRegion, MaskRegion, MediaShape, Region, TextRegion,
                                           VideoBoxRegion, parse_result)
from backend.converters.prompts import context_to_prompts
from backend.converters.rle import mask_to_ls_rle
from backend.errors import PromptError
from backend.label_config import parse_label_config
from finetune.convert import LabeledTask, task_objects
from tests.unit.test_finetune_convert import CONFIGS

H, W = 40, 80
STILL = MediaShape(1, H, W, 0.0)
VIDEO = MediaShape(10, H, W, 10.0, 10.0)


def _brush(mask: np.ndarray, rid: str = "m1", **extra) -> dict:
    return {"id": rid, "from_name": "mask", "to_name": "image", "type": "brushlabels", "original_width": W,
            "original_height": H, "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "labels": ["Cat"]}, **extra}


def _rect(rotation: float = 0, rid: str = "b1", **extra) -> dict:
    return {"id": rid, "from_name": "box", "to_name": "image", "type": "rectanglelabels", "original_width": W,
            "original_height": H, "value": {"x": 25, "y": 25, "width": 50, "height": 50, "rotation": rotation,
                                            "labels": ["Cat"]}, **extra}


def _track(*keys: tuple[int, bool, float]) -> dict:
    sequence = [{"frame": f, "enabled": on, "x": x, "y": 25, "width": 25, "height": 50, "rotation": 0} for f, on, x in keys]
    return {"id": "vr1", "from_name": "box", "to_name": "video", "type": "videorectangle",
            "value": {"framesCount": 10, "sequence": sequence, "labels": ["Cat"]}}


def _both(result: list[dict], config: str, shape: MediaShape):
    """(interactive prompts, fine-tune objects) for the same regions."""
    spec = parse_label_config((CONFIGS / f"{config}.xml").read_text())
    return (context_to_prompts({"result": result}, shape),
            task_objects(LabeledTask(7, {}, result, "/m", shape), spec)[0])


def test_parse_result_types_each_region_in_pixels_and_0_based_frames():
    mask = np.zeros((H, W), bool)
    mask[5:10, 20:30] = True
    keypoint = {"id": "k", "type": "keypointlabels", "from_name": "click", "value": {"x": 50, "y": 50, "labels": ["A"]}}
    text = {"id": "m1", "type": "textarea", "from_name": "description", "value": {"text": [" a cat ", "", "sitting"]}}
    parsed = parse_result([keypoint, _rect(), _brush(mask), _track((3, True, 10)), text,
                           {"id": "c", "type": "choices", "value": {"choices": ["x"]}}], VIDEO)
    point, box, brush, track, words = parsed.regions  # choices: ignored
    assert isinstance(point, KeypointRegion) and (point.point.x_px, point.point.y_px, point.label) == (40, 20, "A")
    assert isinstance(box, BoxRegion) and (box.box.x1_px, box.box.y2_px, box.label) == (20, 30, "Cat")
    assert isinstance(brush, MaskRegion) and np.array_equal(brush.mask_prompt().mask, mask)
    assert isinstance(track, VideoBoxRegion) and track.prompt().frame_idx == 2 and track.prompt().ls_frame == 3
    assert isinstance(words, TextRegion) and words.text == "a cat sitting" and words.base_id == "m1"


def test_a_bad_region_id_is_named_with_the_caller_s_path():
    with pytest.raises(PromptError) as err:
        context_to_prompts({"result": [{"id": ["x"], "type": "keypointlabels", "value": {}}]}, STILL)
    assert err.value.field == "context.result[0].id"


def test_parse_result_known_regions_are_read_by_id_only():
    relabeled = {"id": "ours-f2", "type": "keypointlabels", "value": {"format": "rle", "rle": [1, 2]}}
    (region,) = parse_result([relabeled], STILL, known=lambda rid: rid.startswith("ours")).regions
    assert type(region) is Region and region.base_id == "ours"


@pytest.mark.parametrize("items, words, field", [
    ("nope", "must be a list of regions", "result"),
    ([{"type": "keypointlabels"}], "region object with a 'value'", "result[0]"),
    ([{"type": "keypointlabels", "value": {"y": 1}}], "is malformed: 'x'", "result[0]"),
    ([{"id": ["x"], "type": "keypointlabels", "value": {}}], "id must be a string", "result[0].id"),
])
def test_parse_result_malformed_items_raise_with_the_field(items, words, field):
    with pytest.raises(PromptError, match=words) as err:
        parse_result(items, STILL)
    assert err.value.field == field


@pytest.mark.parametrize("item, words", [
    (_brush(np.ones((H, W), bool), item_index=4), "item_index 4 is out of range"),
    ({**_brush(np.ones((H, W), bool)), "original_width": 30000, "original_height": 30000}, "30000x30000 px"),
    (_rect(item_index=1.5), "item_index 1.5 is out of range"),
    ({**_rect(), "value": {"x": "NaN", "y": 1, "width": 1, "height": 1}}, "finite"),
])
def test_both_readers_refuse_the_same_malformed_region(item, words):
    with pytest.raises(PromptError, match=words):
        context_to_prompts({"result": [item]}, STILL)
    with pytest.raises(PromptError, match=words):
        task_objects(LabeledTask(7, {}, [item], "/m", STILL),
                     parse_label_config((CONFIGS / "referring_expressions.xml").read_text()))


def test_both_readers_skip_an_empty_stroke_and_a_box_with_no_area():
    flat = {**_rect(rid="b2"), "value": {"x": 10, "y": 10, "width": 0, "height": 10, "labels": ["Cat"]}}
    prompts, objects = _both([_brush(np.zeros((H, W), bool)), flat], "referring_expressions", STILL)
    assert not prompts.regions and len(prompts.skipped) == 2
    assert any("m1 is empty" in why for why in prompts.skipped) and any("no area" in why for why in prompts.skipped)
    assert all(not o.masks and o.box is None for o in objects.values())


def test_both_readers_take_the_box_around_a_rotated_rectangle():
    prompts, objects = _both([_rect(rotation=90)], "referring_expressions", STILL)
    drawn = prompts.regions[0].prompt
    # 40 x 20 px at (20, 10) turned 90 degrees about its top-left corner, clipped to the 80 x 40 frame
    assert (drawn.x1_px, drawn.y1_px, drawn.x2_px, drawn.y2_px) == pytest.approx((0.0, 10.0, 20.0, 40.0))
    assert objects["b1"].box == drawn


def test_both_readers_take_the_label_from_the_region_type_or_labels():
    item = {**_rect(), "value": {**_rect()["value"], "rectanglelabels": ["Dog"]}}
    prompts, objects = _both([item], "referring_expressions", STILL)
    assert prompts.regions[0].label == objects["b1"].label == "Dog"
    prompts, objects = _both([_rect()], "referring_expressions", STILL)
    assert prompts.regions[0].label == objects["b1"].label == "Cat"


def test_both_readers_start_a_track_on_its_first_keyframe_even_a_disabled_one():
    prompts, objects = _both([_track((2, False, 0), (6, True, 50))], "video_tracking", VIDEO)
    start = prompts.regions[0].prompt
    assert start.frame_idx == 1 == objects["vr1"].box.frame_idx and objects["vr1"].box == start
    assert sorted(objects["vr1"].track_boxes) == [1, 5]  # a disabled keyframe ends its span: nothing on 2..4


def test_video_box_interpolates_between_enabled_keyframes_and_drops_frames_past_the_end():
    track = parse_result([_track((2, True, 0), (4, True, 50), (40, True, 0))], VIDEO).regions[0]
    boxes = track.boxes_by_frame()
    assert sorted(boxes) == [1, 2, 3] and boxes[2][0] == pytest.approx(20.0)  # halfway from 0 to 40 px
    (skipped,) = parse_result([_track((40, True, 0))], VIDEO).skipped
    assert "LS frame 40 but the video has 10 frames" in skipped
