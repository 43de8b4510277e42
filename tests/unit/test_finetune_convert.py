"""Label Studio annotations (as LS 1.23 stores them) -> stage-3 samples, for every config in label_config/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.converters.annotation import MediaShape
from backend.converters.rle import mask_to_ls_rle
from backend.label_config import parse_label_config
from finetune.convert import LabeledTask, task_to_samples

CONFIGS = Path(__file__).parents[2] / "label_config"
H, W = 48, 64


def _spec(name: str):
    return parse_label_config((CONFIGS / f"{name}.xml").read_text())


def _mask(x0: int, frame: int = 0) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[10:30, x0 + 2 * frame:x0 + 2 * frame + 16] = True
    return mask


def _brush(rid: str, mask: np.ndarray, to_name: str, item_index: int | None = None, label="Object") -> dict:
    item = {"id": rid, "from_name": "mask", "to_name": to_name, "type": "brushlabels", "origin": "manual",
            "original_width": W, "original_height": H, "image_rotation": 0,
            "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": [label]}}
    if item_index is not None:
        item["item_index"] = item_index
    return item


def _text(name: str, to_name: str, text: str, rid: str | None = None, item_index: int | None = None) -> dict:
    item = {"from_name": name, "to_name": to_name, "type": "textarea", "value": {"text": [text]}}
    if rid:
        item["id"] = rid
    if item_index is not None:
        item["item_index"] = item_index
    return item


def _task(result: list[dict], frames: int = 1, fps: float = 0.0, ls_fps=None) -> LabeledTask:
    return LabeledTask(11, {}, result, "/media/x", MediaShape(frames, H, W, fps, ls_fps))


def test_convert_image_segmentation_text_and_mask_gives_one_seg_sample():
    result = [_text("prompt", "image", "the yellow square"), _brush("r1", _mask(5), "image")]
    samples = task_to_samples(_task(result), _spec("image_segmentation"))
    seg = [s for s in samples if s.kind == "seg"]
    assert len(seg) == 1
    assert seg[0].question == "Please segment the yellow square in this image."
    assert seg[0].answer.count("<|seg|>") == 1 and seg[0].frame_idx == [0] and seg[0].task_id == 11
    assert seg[0].target_masks.shape == (1, 1, H, W) and np.array_equal(seg[0].target_masks[0, 0], _mask(5))
    assert {s.kind for s in samples} == {"seg", "mem"}  # no description -> no region/ref samples


def test_convert_image_segmentation_without_text_gives_no_seg_sample():
    samples = task_to_samples(_task([_brush("r1", _mask(5), "image")]), _spec("image_segmentation"))
    assert [s.kind for s in samples] == ["mem"]


def test_convert_referring_expressions_region_descriptions_give_all_families():
    result = [_brush("r1", _mask(5), "image", label="Region"), _text("description", "image", "the left box", "r1"),
              _brush("r2", _mask(40), "image", label="Region")]
    samples = task_to_samples(_task(result), _spec("referring_expressions"))
    kinds = sorted(s.kind for s in samples)
    assert kinds == ["mem", "mem", "region", "seg"]
    region = next(s for s in samples if s.kind == "region")
    assert region.answer == "the left box" and np.array_equal(region.region_masks[0, 0], _mask(5))
    seg = next(s for s in samples if s.kind == "seg")
    assert seg.question == "Please segment the left box in this image."
    mem = [s for s in samples if s.kind == "mem"]
    assert all(s.answer == "[1] <|seg|>" and s.question.startswith("[1] <|ref|>.") for s in mem)
    box = mem[0].prompts[0]
    assert (box.x1_px, box.y1_px, box.x2_px, box.y2_px) == (5.0, 10.0, 21.0, 30.0)


def test_convert_video_masks_groups_per_frame_regions_and_samples_8_frames():
    result = [_brush(f"obj-f{f + 1}", _mask(2, f), "frames", item_index=f) for f in range(12)]
    result.append(_text("prompt", "frames", "the moving square"))
    samples = task_to_samples(_task(result, frames=12), _spec("video_masks"))
    seg = next(s for s in samples if s.kind == "seg")
    assert len(seg.frame_idx) == 8 and seg.frame_idx[0] == 0 and seg.frame_idx[-1] == 11
    assert seg.question == "Please segment the moving square in this video."
    for t, frame in enumerate(seg.frame_idx):
        assert np.array_equal(seg.target_masks[0, t], _mask(2, frame))  # item_index is the 0-based frame


def test_convert_video_masks_absent_frames_are_empty_targets():
    result = [_brush("a-f1", _mask(2), "frames", item_index=0), _brush("b-f3", _mask(30, 2), "frames", item_index=2),
              _text("prompt", "frames", "both squares")]
    seg = next(s for s in task_to_samples(_task(result, frames=4), _spec("video_masks")) if s.kind == "seg")
    assert seg.frame_idx == [0, 2] and seg.target_masks.shape == (2, 2, H, W)
    assert not seg.target_masks[0, 1].any() and not seg.target_masks[1, 0].any()
    assert seg.answer.count("<|seg|>") == 2


def test_convert_video_tracking_box_only_track_gives_box_supervised_track_and_ref_samples():
    track = {"id": "vr1", "from_name": "box", "to_name": "video", "type": "videorectangle",
             "value": {"framesCount": 20, "duration": 2.0, "labels": ["Person"], "sequence": [
                 {"frame": 5, "enabled": True, "x": 25, "y": 25, "width": 50, "height": 50, "time": 0.4},
                 {"frame": 9, "enabled": False, "x": 30, "y": 25, "width": 50, "height": 50, "time": 0.8}]}}
    result = [track, _text("description", "video", "a person walking", "vr1")]
    samples = task_to_samples(_task(result, frames=20, fps=10.0, ls_fps=10.0), _spec("video_tracking"))
    assert [s.kind for s in samples] == ["mem", "ref"]
    mem, ref = samples
    # LS frames 5..9 (keyframes 5 and 9, LS interpolates between them) -> frame_idx 4..8
    assert mem.box_supervised and mem.frame_idx == [4, 5, 6, 7, 8] and mem.prompts[0].frame_idx == 4
    assert mem.question.count("<|ref|>") == 1 and mem.answer.count("<|seg|>") == 1
    cols = [np.nonzero(mem.target_masks[0, n].any(0))[0] for n in range(5)]
    assert [(c[0], c[-1] + 1) for c in cols] == [(16, 48), (16, 49), (17, 50), (18, 51), (19, 52)]  # x 16 -> 19.2 px
    assert all(mem.target_masks[0, n].any(1).sum() == 24 for n in range(5))  # filled boxes: 12..36 px high
    assert ref.frame_idx == [4] and ref.prompts[0].frame_idx == 4  # LS frame 5 -> frame_idx 4
    assert ref.answer == "a person walking" and ref.question.count("<|ref|>") == 1
    assert (ref.prompts[0].x1_px, ref.prompts[0].x2_px) == (16.0, 48.0)


def test_convert_video_tracking_disabled_keyframe_ends_the_span():
    keys = [{"frame": 2, "enabled": False, "x": 0, "y": 0, "width": 50, "height": 50},
            {"frame": 6, "enabled": True, "x": 50, "y": 50, "width": 25, "height": 25}]
    track = {"id": "vr1", "from_name": "box", "to_name": "video", "type": "videorectangle",
             "value": {"framesCount": 8, "labels": ["Person"], "sequence": keys}}
    (mem,) = task_to_samples(_task([track], frames=8, fps=10.0, ls_fps=10.0), _spec("video_tracking"))
    assert mem.frame_idx == [1, 5] and mem.prompts[0].frame_idx == 1  # nothing shown on LS frames 3..5


@pytest.mark.parametrize("name", ["video_tracking", "video_masks", "image_segmentation", "referring_expressions"])
def test_convert_every_config_round_trips_samples_through_json(name):
    to_name = parse_label_config((CONFIGS / f"{name}.xml").read_text()).obj.name
    frames = 3 if name != "image_segmentation" else 1
    result = [_brush("r1", _mask(5), to_name, item_index=0 if name == "video_masks" else None),
              _text("description", to_name, "a square", "r1"), _text("prompt", to_name, "square")]
    from finetune.sample import TrainSample

    samples = task_to_samples(_task(result, frames=frames, fps=10.0 if name == "video_tracking" else 0.0,
                                    ls_fps=10.0 if name == "video_tracking" else None), _spec(name))
    if name == "video_tracking":
        assert samples == []  # brush regions do not belong to this config: nothing to learn
        return
    assert samples
    for sample in samples:
        again = TrainSample.from_json(sample.to_json())
        assert again.kind == sample.kind and again.question == sample.question and again.answer == sample.answer
