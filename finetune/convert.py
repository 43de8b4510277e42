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

Regions are read by :func:`backend.converters.annotation.parse_result`, the parser the interactive path uses
too: a malformed annotation raises :class:`~backend.errors.PromptError` (the run skips that task and says
why), items with nothing in them are skipped. Pixels and 0-based frames only after this module.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from backend.converters.annotation import (BoxRegion, MaskRegion, MediaShape, TextRegion, VideoBoxRegion,
                                           parse_result)
from backend.converters.geometry import mask_to_box_px
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
    objects, text = task_objects(task, spec)
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


def task_objects(task: LabeledTask, spec: LabelSpec) -> tuple[dict[str, _Object], str | None]:
    """Group the annotation's regions into objects (per-frame brush regions by id stem).

    Raises:
        PromptError: the annotation is malformed (see :mod:`backend.converters.annotation`).
    """
    objects: dict[str, _Object] = defaultdict(lambda: _Object(None, {}))
    texts: dict[str, str] = {}
    prompt_text = None
    regions = {c.name for c in (spec.output, spec.boxes) if c is not None}  # tags of this config only
    for region in parse_result(task.result, task.shape, where=f"task {task.task_id} result").regions:
        if isinstance(region, TextRegion):
            if spec.description and region.from_name == spec.description.name:
                texts[region.base_id] = region.text
            elif spec.prompt and region.from_name == spec.prompt.name and region.text:
                prompt_text = region.text
        elif region.from_name in regions:
            _add(objects[region.base_id], region)
    for key, text in texts.items():
        if key in objects and text:
            objects[key].description = text
    return dict(objects), prompt_text


def _add(obj: _Object, region) -> None:
    """Fold one region into its object: brush masks per frame, the box prompt, or a box track."""
    if isinstance(region, MaskRegion):
        mask = region.mask_prompt()
        if mask is not None:
            obj.masks[mask.frame_idx] = obj.masks.get(mask.frame_idx, np.zeros_like(mask.mask)) | mask.mask
    elif isinstance(region, BoxRegion):
        obj.box = region.box
    elif isinstance(region, VideoBoxRegion):
        obj.track_boxes.update((k, v) for k, v in region.boxes_by_frame().items() if k not in obj.track_boxes)
        first = min(obj.track_boxes)
        obj.box = BoxPrompt(*obj.track_boxes[first], first)
    obj.label = obj.label or region.label
