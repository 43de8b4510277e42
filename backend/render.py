"""Tracked objects -> Label Studio result dicts for the config's mode (video, frames, image)."""

from __future__ import annotations

import torch.nn.functional as F

from backend.converters.geometry import mask_to_box_px
from backend.converters.results import brush_result, description_result, video_rectangle_result
from backend.label_config import LabelSpec
from backend.sessions import TaskSession, TrackedObject

CHUNK = 8  # frames upsampled at once (a 1080p float chunk of 8 is ~66 MB)


def render_objects(ts: TaskSession, spec: LabelSpec, objects: list[TrackedObject]) -> list[dict]:
    """LS results for ``objects`` of one task: boxes per frame (video), masks per frame (frames),
    or one mask (image), plus per-region descriptions when the config has a description box."""
    results: list[dict] = []
    for obj in objects:
        base_id = obj.region_id or f"unipixel-{ts.task_id}-{obj.obj_id}"
        label = obj.label or spec.default_label
        if spec.mode == "video":
            results += _video(ts, spec, obj, base_id, label)
        else:
            results += _brush(ts, spec, obj, base_id, label)
    return results


def visible_masks(ts: TaskSession, obj_id: int):
    """Yield (frame_idx, bool [H, W]) for every tracked frame where the object is visible."""
    track = ts.session.objects[obj_id].track
    frames = [f for f in track.frame_idx if track.visible(f)]
    for start in range(0, len(frames), CHUNK):
        batch = frames[start:start + CHUNK]
        logits = track.low_res_logits[batch][:, None].float()
        masks = F.interpolate(logits, size=track.frame_size_hw, mode="bilinear", align_corners=False)[:, 0] > 0
        for frame_idx, mask in zip(batch, masks.numpy()):
            if mask.any():
                yield frame_idx, mask


def _video(ts: TaskSession, spec: LabelSpec, obj: TrackedObject, region_id: str, label: str | None) -> list[dict]:
    track = ts.session.objects[obj.obj_id].track
    boxes: dict[int, tuple | None] = {f: None for f in track.frame_idx}
    for frame_idx, mask in visible_masks(ts, obj.obj_id):
        boxes[frame_idx] = mask_to_box_px(mask)
    height, width = track.frame_size_hw
    region = video_rectangle_result(spec.output.name, spec.obj.name, region_id, label, boxes,
                                    ts.shape.timeline, (width, height), track.score())
    if region is None:
        return []
    out = [region]
    if spec.description and obj.description:
        out.append(description_result(spec.description.name, spec.obj.name, region_id, obj.description))
    return out


def _brush(ts: TaskSession, spec: LabelSpec, obj: TrackedObject, base_id: str, label: str | None) -> list[dict]:
    track = ts.session.objects[obj.obj_id].track
    frames_mode = spec.mode == "frames"
    out: list[dict] = []
    described = not (spec.description and obj.description)
    for frame_idx, mask in visible_masks(ts, obj.obj_id):
        # one region per frame for frame lists; LS shows the region whose item_index is on screen
        region_id = f"{base_id}-f{frame_idx + 1}" if frames_mode else base_id
        item_index = frame_idx if frames_mode else None
        out.append(brush_result(spec.output.name, spec.obj.name, region_id, label, mask,
                                track.score(frame_idx), item_index))
        if not described:  # the description goes on the object's first visible region
            out.append(description_result(spec.description.name, spec.obj.name, region_id, obj.description,
                                          item_index))
            described = True
    return out

