"""Which object a new click is for, decided by where it lands.

The editor cannot say: with Auto-Accept off it sends every click of a label together, meant for one
object or several, and after ✓ or with Auto-Accept on each click arrives alone. So, on the click's
frame, in this order (objects still pending in the editor first, then the newest):

1. inside an object's mask: a negative click removes that part from the object. A positive click on a
   frame the object has no click on yet (a frame list's page k, where only its track is) anchors the
   object there with a conditioning click: clicking the object again on another page corrects it, never
   makes a second one. A positive click on a frame the object was clicked on starts a new object there
   (the mask already holds the spot, so the annotator means something the mask swallowed: they Alt-click
   the leak off the first object);
2. inside an object's box grown by ``MARGIN`` (outside its mask) -> that object (a positive click
   adds the missed part, a negative one trims an edge);
3. the object is not tracked or not visible on that frame, and the click is inside its grown box on
   the nearest frame where it is visible -> that object (the track is fixed there);
4. a negative click goes to the object whose box is nearest; a positive one starts a new object.
"""

from __future__ import annotations

import math

import numpy as np

from backend.converters.geometry import mask_to_box_px
from backend.sessions import TaskSession, TrackedObject
from unipixel_model.types import MaskTrack, PointPrompt

MARGIN = 0.15   # a box grows by this fraction of its longer side on every edge...
MARGIN_PX = 3   # ...plus this many pixels


def target_object(ts: TaskSession, point: PointPrompt, prefer: set[str] = frozenset()) -> TrackedObject | None:
    """The object ``point`` corrects, or None (a positive click then starts a new object)."""
    live = ts.live()
    order = [o for o in reversed(live) if o.region_id in prefer] + \
        [o for o in reversed(live) if o.region_id not in prefer]
    tracks = {o.region_id: ts.session.track(o.obj_id) for o in order}
    frame = point.frame_idx
    masks = {o.region_id: _mask(tracks[o.region_id], frame) for o in order}
    for obj in order:
        mask = masks[obj.region_id]
        if mask is not None and covers(mask, point):
            swallowed = point.positive and frame in tracks[obj.region_id].prompt_frames
            return None if swallowed else obj
    for obj in order:
        mask = masks[obj.region_id]
        if mask is not None and _inside(point, mask_to_box_px(mask)):
            return obj
    for obj in order:
        if masks[obj.region_id] is None:
            near = _nearest_visible(tracks[obj.region_id], frame)
            footprint = _mask(tracks[obj.region_id], near) if near is not None else None
            if footprint is not None and _inside(point, mask_to_box_px(footprint)):
                return obj
    if point.positive or not order:
        return None
    return min(order, key=lambda o: _distance(point, masks[o.region_id], tracks[o.region_id]))


def covers(mask: np.ndarray, point: PointPrompt) -> bool:
    """Whether bool [H, W] ``mask`` (pixels of the point's frame) holds the pixel under ``point`` (``x_px``, ``y_px``
    in pixels of that frame; a point on the far edge reads the last pixel)."""
    return bool(mask[_clip(point.y_px, mask.shape[0]), _clip(point.x_px, mask.shape[1])])


def _mask(track: MaskTrack, frame_idx: int) -> np.ndarray | None:
    """bool [H, W] of a tracked, visible frame with some pixels on; None otherwise."""
    if frame_idx not in track.frame_idx or not track.visible(frame_idx):
        return None
    mask = track.mask(frame_idx)
    return mask if mask.any() else None


def _nearest_visible(track: MaskTrack, frame_idx: int) -> int | None:
    frames = [f for f in track.frame_idx if track.visible(f)]
    return min(frames, key=lambda f: abs(f - frame_idx)) if frames else None


def _clip(value_px: float, size_px: int) -> int:
    return min(max(int(value_px), 0), size_px - 1)


def _inside(point: PointPrompt, box: tuple[int, int, int, int] | None) -> bool:
    if box is None:
        return False
    x1, y1, x2, y2 = box
    grow = MARGIN * max(x2 - x1, y2 - y1) + MARGIN_PX
    return x1 - grow <= point.x_px <= x2 + grow and y1 - grow <= point.y_px <= y2 + grow


def _distance(point: PointPrompt, mask: np.ndarray | None, track: MaskTrack) -> float:
    """Pixels from ``point`` to the object's box on its frame (or the nearest visible frame)."""
    if mask is None:
        near = _nearest_visible(track, point.frame_idx)
        mask = _mask(track, near) if near is not None else None
    box = mask_to_box_px(mask) if mask is not None else None
    if box is None:
        return math.inf
    x1, y1, x2, y2 = box
    dx = max(x1 - point.x_px, 0.0, point.x_px - x2)
    dy = max(y1 - point.y_px, 0.0, point.y_px - y2)
    return math.hypot(dx, dy)
