"""Label Studio tasks and annotations of synthetic clips, for every config in ``label_config/``.

What an annotator would save in each config (LS units come from ``backend.converters`` only):

* ``video_tracking``: a ``videorectangle`` track per object (a keyframe on every frame where it is
  visible, ``enabled: false`` where it disappears) and its description (``textarea`` sharing its id);
* ``video_masks``: per object, a ``brushlabels`` mask with ``item_index`` on every frame where it is
  visible (ids ``<object>-f<ls frame>``), the description on its first region;
* ``image_segmentation``: one object's mask and the text query that names it (the prompt box);
* ``referring_expressions``: every object's mask with a referring expression as its description.

Still images use frame 0 of the clip, named by expressions that hold on that frame alone (no motion).
Region ids are ``w<seed>-<object>``; the fine-tune path groups a frame list's per-frame regions by that
stem.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backend.converters.geometry import mask_to_box_px
from backend.converters.results import brush_result, description_result, video_rectangle_result
from backend.converters.timeline import Timeline
from backend.label_config import LabelSpec
from finetune.world.expressions import Expression, describe, expressions
from finetune.world.scene import Clip

CONFIGS = ("video_tracking", "video_masks", "image_segmentation", "referring_expressions")


def task_data(spec: LabelSpec, media: str | list[str], fps: float | None = None) -> dict:
    """The task's ``data``: the media URL (or frame URLs) under the config's value key."""
    data: dict = {spec.obj.value_key: media}
    if spec.obj.framerate_key and fps:
        data[spec.obj.framerate_key] = fps
    return data


def annotation_result(clip: Clip, spec: LabelSpec, rng: np.random.Generator) -> list[dict]:
    """The ``result`` list an annotator would save for ``clip`` in the config ``spec``."""
    if spec.mode == "image" and clip.num_frames > 1:  # the task shows frame 0 alone: name objects on it
        clip = _first_frame(clip)
    present = [n for n in range(len(clip.objects)) if clip.visible_frames(n, min_pixels=16)]
    if spec.mode == "video":
        return _video_tracks(clip, spec, present)
    if spec.mode == "frames":
        return _frame_masks(clip, spec, present)
    if spec.description is not None:  # referring expressions: every object, named
        return _named_masks(clip, spec, present, rng)
    return _queried_mask(clip, spec, rng)


def _first_frame(clip: Clip) -> Clip:
    """Frame 0 of a video clip as a still: expressions of a still use no motion, positions on that frame."""
    objects = [dataclasses.replace(o, centres_px=o.centres_px[:1], angles_deg=o.angles_deg[:1]) for o in clip.objects]
    return Clip(clip.seed, clip.frames[:1], clip.masks[:, :1], objects, clip.fps, clip.background)


def _region_id(clip: Clip, obj: int) -> str:
    return f"w{clip.seed}-{obj + 1}"


def _manual(result: dict) -> dict:
    """A prediction-shaped result as an annotator's own: no score, origin manual."""
    result.pop("score", None)
    result["origin"] = "manual"
    return result


def _video_tracks(clip: Clip, spec: LabelSpec, present: list[int]) -> list[dict]:
    timeline = Timeline(clip.num_frames, clip.fps, spec.obj.framerate or clip.fps)
    height, width = clip.size_hw
    out = []
    for obj in present:
        boxes = {t: mask_to_box_px(clip.masks[obj, t]) for t in range(clip.num_frames)}
        region = video_rectangle_result(spec.output.name, spec.obj.name, _region_id(clip, obj), spec.default_label,
                                        boxes, timeline, (width, height), 1.0)
        if region is None:
            continue
        out.append(_manual(region))
        if spec.description is not None:
            out.append(_manual(description_result(spec.description.name, spec.obj.name, _region_id(clip, obj),
                                                  describe(clip, obj))))
    return out


def _frame_masks(clip: Clip, spec: LabelSpec, present: list[int]) -> list[dict]:
    out = []
    for obj in present:
        described = spec.description is None
        for t in clip.visible_frames(obj):
            region_id = f"{_region_id(clip, obj)}-f{t + 1}"
            out.append(_manual(brush_result(spec.output.name, spec.obj.name, region_id, spec.default_label,
                                            clip.masks[obj, t], 1.0, item_index=t)))
            if not described:
                out.append(_manual(description_result(spec.description.name, spec.obj.name, region_id,
                                                      describe(clip, obj), item_index=t)))
                described = True
    return out


def _pick(exprs: list[Expression], rng: np.random.Generator) -> Expression:
    preferred = [e for e in exprs if e.kind == "category"] or exprs
    return preferred[int(rng.integers(len(preferred)))]


def _named_masks(clip: Clip, spec: LabelSpec, present: list[int], rng: np.random.Generator) -> list[dict]:
    by_obj: dict[int, list[Expression]] = {}
    for expr in expressions(clip):
        by_obj.setdefault(expr.obj, []).append(expr)
    out = []
    for obj in present:
        if not clip.masks[obj, 0].any():
            continue
        region_id = _region_id(clip, obj)
        out.append(_manual(brush_result(spec.output.name, spec.obj.name, region_id, spec.default_label,
                                        clip.masks[obj, 0], 1.0)))
        text = _pick(by_obj[obj], rng).text if obj in by_obj else describe(clip, obj)
        out.append(_manual(description_result(spec.description.name, spec.obj.name, region_id, text)))
    return out


def _queried_mask(clip: Clip, spec: LabelSpec, rng: np.random.Generator) -> list[dict]:
    exprs = [e for e in expressions(clip) if clip.masks[e.obj, 0].any()]
    if not exprs:
        return []
    expr = _pick(exprs, rng)
    out = [_manual(brush_result(spec.output.name, spec.obj.name, _region_id(clip, expr.obj), spec.default_label,
                                clip.masks[expr.obj, 0], 1.0))]
    if spec.prompt is not None:
        out.append({"id": f"w{clip.seed}-query", "from_name": spec.prompt.name, "to_name": spec.obj.name,
                    "type": "textarea", "origin": "manual", "value": {"text": [expr.text]}})
    return out
