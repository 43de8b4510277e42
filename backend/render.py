"""Typed session results -> Label Studio result dicts for the config's mode (video, frames, image).

Consumes :class:`backend.annotate.ObjectUpdate` (the object and its returned ``MaskTrack``); masks at
full size come from the track's own chunked iterator, so nothing here touches the session.
"""

from __future__ import annotations

from backend.annotate import ObjectUpdate
from backend.converters.geometry import mask_to_box_px
from backend.converters.annotation import MediaShape
from backend.converters.region_ids import frame_region_id
from backend.converters.results import brush_result, description_result, video_rectangle_result, with_keyframe
from backend.label_config import LabelSpec


def render_updates(shape: MediaShape, spec: LabelSpec, updates: list[ObjectUpdate]) -> list[dict]:
    """LS results for ``updates``: one ``videorectangle`` per object (video), one mask region per
    reported frame (frame lists: ``<id>-f<k>``), or one mask (image), plus descriptions."""
    render = _RENDERERS[spec.strategy.name]
    return [region for update in updates for region in render(shape, spec, update)]


def _video(shape: MediaShape, spec: LabelSpec, update: ObjectUpdate) -> list[dict]:
    obj, track = update.tracked, update.track
    boxes: dict[int, tuple | None] = {f: None for f in track.frame_idx}
    for frame_idx, mask in track.visible_masks():
        boxes[frame_idx] = mask_to_box_px(mask)
    height, width = track.frame_size_hw
    label = obj.label or spec.default_label
    region = video_rectangle_result(spec.output.name, spec.obj.name, obj.region_id, label, boxes,
                                    shape.timeline, (width, height), track.score())
    if region is None:
        return []
    if obj.keyframe is not None:  # the annotator's own keyframe stays exactly as drawn
        region = with_keyframe(region, obj.keyframe)
    out = [region]
    if spec.description and obj.description:
        out.append(description_result(spec.description.name, spec.obj.name, obj.region_id, obj.description))
    return out


def _brush(shape: MediaShape, spec: LabelSpec, update: ObjectUpdate) -> list[dict]:
    obj, track = update.tracked, update.track
    frames_mode = spec.strategy.frame_list
    label = obj.label or spec.default_label
    out: list[dict] = []
    described = not (spec.description and obj.description)
    for frame_idx, mask in track.visible_masks(update.frames):
        # one region per frame for frame lists; LS shows the region whose item_index is on screen
        region_id = frame_region_id(obj.region_id, frame_idx) if frames_mode else obj.region_id
        item_index = frame_idx if frames_mode else None
        out.append(brush_result(spec.output.name, spec.obj.name, region_id, label, mask,
                                track.score(frame_idx), item_index))
        if not described:  # the description goes on the object's first reported region
            out.append(description_result(spec.description.name, spec.obj.name, region_id, obj.description,
                                          item_index))
            described = True
    return out


_RENDERERS = {"video": _video, "frames": _brush, "image": _brush}
