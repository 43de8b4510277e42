"""Label Studio annotations -> UniPixel stage-3 samples, per labeling config.

What each config yields (``label_config/``):

| config | text query + masks | regions + descriptions | skipped |
|---|---|---|---|
| ``image_segmentation`` | ``seg`` (query -> ``<|seg|>`` mask) | — | regions without masks |
| ``referring_expressions`` | ``seg`` | ``seg`` (expression -> its mask), ``region`` (mask -> expression), ``mem`` (box -> ``[1] <|seg|>``), ``ref`` (box -> expression) | masks without description give only ``mem`` |
| ``video_masks`` (frames) | ``seg`` over up to 8 annotated frames | as above, on the region's frames | — |
| ``video_tracking`` | — | ``mem`` box-supervised (first keyframe box -> track, its loss on the boxes' projections, as BoxInst), ``ref`` (first keyframe box -> description) | — |

Box tracks are not masks: training SAM 2 on filled boxes would teach it boxes, so their ``mem`` samples carry
``box_supervised``: the predicted mask's projections on the two axes are compared with the box's. Boxes are read on
every frame Label Studio shows them: the keyframes and the frames it interpolates between them.

Pixels and 0-based frames only after this module; LS units are read through ``backend.converters``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from backend.converters.geometry import mask_to_box_px, rect_pct_to_box_px
from backend.converters.prompts import MediaShape
from backend.converters.region_ids import base_region_id
from backend.converters.rle import ls_rle_to_mask
from backend.converters.timeline import Timeline
from backend.label_config import LabelSpec
from finetune.sample import MAX_FRAMES, TrainSample
from unipixel_model import templates
from unipixel_model.prompts import BoxPrompt
from unipixel_model.templates import SEG_ANSWER, segmentation_question

DESCRIBE_QUESTION = templates.DESCRIBE_QUESTION.format(1)
REF_QUESTION = templates.REF_DESCRIBE_QUESTION.format(1)
MEM_QUESTION, MEM_ANSWER = templates.memory_question([1])


@dataclass
class LabeledTask:
    """One task with its accepted annotation, and where its media lies locally."""

    task_id: int
    data: dict
    result: list[dict]
    media: str              # local file or frame folder
    shape: MediaShape


@dataclass
class _Object:
    label: str | None
    masks: dict[int, np.ndarray]          # frame_idx -> bool [H, W]
    box: BoxPrompt | None = None
    description: str | None = None
    track_boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)  # frame_idx -> px


def task_to_samples(task: LabeledTask, spec: LabelSpec) -> list[TrainSample]:
    """Every sample one annotated task yields (see the module table)."""
    objects, text = _objects(task, spec)
    samples: list[TrainSample] = []
    with_masks = [o for o in objects.values() if o.masks]
    if text and with_masks:
        samples.append(_seg(task, text, with_masks))
    for obj in objects.values():
        samples += _object_samples(task, obj)
    return samples


def _object_samples(task: LabeledTask, obj: _Object) -> list[TrainSample]:
    out = []
    if obj.masks:
        frames = _frames(sorted(obj.masks))
        box = obj.box or _mask_box(obj.masks[frames[0]], frames[0])
        if box is not None:
            out.append(TrainSample("mem", task.media, frames, MEM_QUESTION, MEM_ANSWER, [box],
                                   _stack(task, [obj], frames), None, task.task_id))
        if obj.description:
            out.append(_seg(task, obj.description, [obj]))
            out.append(TrainSample("region", task.media, frames, DESCRIBE_QUESTION, obj.description, [], None,
                                   _stack(task, [obj], frames), task.task_id))
    elif obj.track_boxes and obj.box is not None:
        out.append(_box_track(task, obj))
    if obj.description and obj.box is not None:
        out.append(TrainSample("ref", task.media, [obj.box.frame_idx], REF_QUESTION, obj.description, [obj.box],
                               None, None, task.task_id))
    return out


def _box_track(task: LabeledTask, obj: _Object) -> TrainSample:
    """A box-only track: its first box prompts SAM 2, the filled boxes of up to 8 frames supervise it (BoxInst)."""
    frames = _frames(sorted(obj.track_boxes))
    targets = np.zeros((1, len(frames), task.shape.height_px, task.shape.width_px), bool)
    for n, frame_idx in enumerate(frames):
        x1, y1, x2, y2 = obj.track_boxes[frame_idx]
        targets[0, n, int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
    return TrainSample("mem", task.media, frames, MEM_QUESTION, MEM_ANSWER, [obj.box], targets, None, task.task_id,
                       box_supervised=True)


def _seg(task: LabeledTask, text: str, objects: list[_Object]) -> TrainSample:
    frames = _frames(sorted({f for o in objects for f in o.masks}))
    question = segmentation_question(text, task.shape.num_frames == 1)
    answer = " ".join([SEG_ANSWER] * len(objects)) if len(objects) > 1 else SEG_ANSWER
    return TrainSample("seg", task.media, frames, question, answer, [], _stack(task, objects, frames), None,
                       task.task_id)


def _frames(annotated: list[int]) -> list[int]:
    """At most 8 annotated frames, uniformly spread (the stage-3 ``sample_frames``)."""
    if len(annotated) <= MAX_FRAMES:
        return annotated
    picks = np.linspace(0, len(annotated) - 1, MAX_FRAMES).round().astype(int)
    return sorted({annotated[i] for i in picks})


def _stack(task: LabeledTask, objects: list[_Object], frames: list[int]) -> np.ndarray:
    empty = np.zeros((task.shape.height_px, task.shape.width_px), bool)
    return np.stack([np.stack([o.masks.get(f, empty) for f in frames]) for o in objects])


def _mask_box(mask: np.ndarray, frame_idx: int) -> BoxPrompt | None:
    box = mask_to_box_px(mask)
    return None if box is None else BoxPrompt(*map(float, box), frame_idx)


def _objects(task: LabeledTask, spec: LabelSpec) -> tuple[dict[str, _Object], str | None]:
    """Group the annotation's regions into objects (per-frame brush regions by id stem)."""
    objects: dict[str, _Object] = defaultdict(lambda: _Object(None, {}))
    texts: dict[str, str] = {}
    prompt_text = None
    readers: dict[str, Callable] = {"brushlabels": _brush, "rectanglelabels": _rect, "videorectangle": _video_rect}
    regions = {c.name for c in (spec.output, spec.boxes) if c is not None}  # tags of this config only
    for item in task.result:
        kind, value = item.get("type"), item.get("value") or {}
        if kind == "textarea":
            text = " ".join(t for t in value.get("text", []) if isinstance(t, str)).strip()
            if spec.description and item.get("from_name") == spec.description.name and item.get("id"):
                texts[base_region_id(str(item["id"]))] = text
            elif spec.prompt and item.get("from_name") == spec.prompt.name and text:
                prompt_text = text
        elif kind in readers and item.get("from_name") in regions:
            key = base_region_id(str(item.get("id") or len(objects)))
            readers[kind](objects[key], item, value, task.shape)
    for key, text in texts.items():
        if key in objects and text:
            objects[key].description = text
    return dict(objects), prompt_text


def _label(value: dict) -> str | None:
    for name in ("brushlabels", "rectanglelabels", "labels"):
        if value.get(name):
            return str(value[name][0])
    return None


def _brush(obj: _Object, item: dict, value: dict, shape: MediaShape) -> None:
    if value.get("format", "rle") != "rle" or "rle" not in value:
        return
    mask = ls_rle_to_mask(value["rle"], int(item.get("original_height") or shape.height_px),
                          int(item.get("original_width") or shape.width_px))
    frame_idx = int(item.get("item_index") or 0)
    if mask.shape == (shape.height_px, shape.width_px) and 0 <= frame_idx < shape.num_frames:
        obj.masks[frame_idx] = obj.masks.get(frame_idx, np.zeros_like(mask)) | mask
        obj.label = obj.label or _label(value)


def _rect(obj: _Object, item: dict, value: dict, shape: MediaShape) -> None:
    box = rect_pct_to_box_px(value["x"], value["y"], value["width"], value["height"], shape.width_px, shape.height_px)
    obj.box, obj.label = BoxPrompt(*box, int(item.get("item_index") or 0)), obj.label or _label(value)


def _video_rect(obj: _Object, item: dict, value: dict, shape: MediaShape) -> None:
    """Boxes on every frame LS shows: each enabled keyframe holds until the next keyframe, interpolated linearly
    (an ``enabled: false`` keyframe ends the span after its own frame)."""
    keys = sorted((k for k in value.get("sequence") or [] if isinstance(k, dict)), key=lambda k: int(k["frame"]))
    timeline = Timeline(shape.num_frames, shape.fps, shape.ls_fps or shape.fps)
    for n, key in enumerate(keys):
        box = rect_pct_to_box_px(key["x"], key["y"], key["width"], key["height"], shape.width_px, shape.height_px)
        following = keys[n + 1] if n + 1 < len(keys) and key.get("enabled", True) is not False else None
        last = int(following["frame"]) - 1 if following else int(key["frame"])
        end = rect_pct_to_box_px(following["x"], following["y"], following["width"], following["height"],
                                 shape.width_px, shape.height_px) if following else box
        for ls_frame in range(int(key["frame"]), last + 1):
            frame_idx = timeline.to_frame_idx(ls_frame)
            if frame_idx < shape.num_frames:
                share = (ls_frame - int(key["frame"])) / (int(following["frame"]) - int(key["frame"])) \
                    if following else 0.0
                obj.track_boxes.setdefault(frame_idx, tuple(a + share * (b - a) for a, b in zip(box, end)))
    if obj.track_boxes:
        first = min(obj.track_boxes)
        obj.box, obj.label = BoxPrompt(*obj.track_boxes[first], first), _label(value)
