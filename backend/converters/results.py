"""Masks and boxes (pixels, 0-based frames) -> Label Studio result dicts.

Shapes follow what Label Studio 1.23 renders (``docs/label_studio_protocol.md`` appendix): a
``videorectangle`` with one keyframe per visible frame, ``brushlabels`` with LS RLE (and
``item_index`` for frame lists), and ``textarea`` descriptions sharing their region's ``id``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from backend.converters.geometry import box_px_to_pct
from backend.converters.rle import mask_to_ls_rle
from backend.converters.timeline import Timeline

Box = tuple[float, float, float, float]


def video_rectangle_result(from_name: str, to_name: str, region_id: str, label: str | None,
                           boxes_px: Mapping[int, Box | None], timeline: Timeline, size_wh: tuple[int, int],
                           score: float) -> dict | None:
    """One ``videorectangle`` region: a keyframe for every LS frame where the object is visible.

    Args:
        boxes_px: 0-based decoded frame -> (x1, y1, x2, y2) pixels, or None where the object is
            not visible. Frames missing from the mapping are untracked (skipped).
        timeline: decoded frames vs LS frames (the config's framerate).
        size_wh: frame (width, height) in pixels.
    Returns:
        The result dict, or None when the object is never visible.
    """
    width, height = size_wh
    sequence: list[dict] = []
    previous_visible = False
    for ls_frame in range(1, timeline.ls_frames_count + 1):
        box = boxes_px.get(timeline.to_frame_idx(ls_frame))
        if box is None:
            if previous_visible:  # LS: enabled=false on a keyframe ends the visible span there
                sequence[-1]["enabled"] = False
            previous_visible = False
            continue
        sequence.append({"frame": ls_frame, "enabled": True, "rotation": 0,
                         "time": round(timeline.ls_time_s(ls_frame), 6), **box_px_to_pct(box, width, height)})
        previous_visible = True
    if not sequence:
        return None
    value = {"framesCount": timeline.ls_frames_count, "duration": round(timeline.duration_s, 6), "sequence": sequence}
    if label:
        value["labels"] = [label]
    return {"id": region_id, "from_name": from_name, "to_name": to_name, "type": "videorectangle",
            "origin": "prediction", "score": round(float(score), 4), "value": value}


def with_keyframe(region: dict, keyframe: dict) -> dict:
    """``region`` (a ``videorectangle``) with the annotator's ``keyframe`` in place of ours on its
    LS frame, as they drew it (their box prompt is kept, not replaced by the model's box)."""
    ls_frame = keyframe.get("frame")
    sequence = [k for k in region["value"]["sequence"] if k["frame"] != ls_frame]
    sequence = sorted(sequence + [dict(keyframe, enabled=True)], key=lambda k: k["frame"])
    return {**region, "value": {**region["value"], "sequence": sequence}}


def brush_result(from_name: str, to_name: str, region_id: str, label: str | None, mask: np.ndarray,
                 score: float, item_index: int | None = None) -> dict:
    """One ``brushlabels`` region from ``mask`` bool [H, W] (original resolution)."""
    height, width = mask.shape
    value = {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": [label] if label else []}
    result = {"id": region_id, "from_name": from_name, "to_name": to_name, "type": "brushlabels",
              "origin": "prediction", "original_width": int(width), "original_height": int(height),
              "image_rotation": 0, "score": round(float(score), 4), "value": value}
    if item_index is not None:
        result["item_index"] = int(item_index)
    return result


def description_result(from_name: str, to_name: str, region_id: str, text: str,
                       item_index: int | None = None) -> dict:
    """A per-region ``textarea`` result: LS attaches it to the region with the same ``id``."""
    result = {"id": region_id, "from_name": from_name, "to_name": to_name, "type": "textarea",
              "origin": "prediction", "value": {"text": [text]}}
    if item_index is not None:
        result["item_index"] = int(item_index)
    return result


def prediction(result: list[dict], model_version: str) -> dict:
    """A prediction for one task; its score is the mean of its regions' scores (0 when empty)."""
    scores = [r["score"] for r in result if "score" in r]
    score = float(np.mean(scores)) if scores else 0.0
    return {"result": result, "score": round(score, 4), "model_version": model_version}

