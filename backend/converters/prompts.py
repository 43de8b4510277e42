"""Label Studio interactive context -> prompts in pixels and 0-based frames.

LS sends the regions just drawn (plus the other smart regions of the same type and label) as
``context["result"]``. We group them into objects:

- every rectangle, video rectangle and brush region is one object (keyed by its region id);
- keypoints of one label on one frame are one object: the first positive click creates it and the
  others (Alt-click = ``is_positive: false``) refine it;
- a submitted ``TextArea`` is a text query.

Frames: ``item_index`` (0-based image of a ``valueList``) for frame lists, the 1-based ``frame``
of a ``VideoRectangle`` keyframe for videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.converters.geometry import pct_to_px, rect_pct_to_box_px
from backend.converters.rle import ls_rle_to_mask
from backend.converters.timeline import Timeline
from backend.errors import PromptError
from unipixel_model.types import BoxPrompt, MaskPrompt, PointPrompt


@dataclass
class MediaShape:
    """What the converters need to know of the media: frames and their size in pixels."""

    num_frames: int
    height_px: int
    width_px: int
    fps: float              # decoded frames per second (0 for a still image)
    ls_fps: float | None = None  # the config's framerate for <Video> (None: same as fps)

    @property
    def timeline(self) -> Timeline:
        return Timeline(self.num_frames, self.fps, self.ls_fps or self.fps)


@dataclass
class ObjectPrompt:
    """One object asked for in the context.

    Attributes:
        key: stable identity across calls (a region id, or ``points:<label>:<frame_idx>``).
        label: the LS label of the region(s) (None when the region carries none).
        prompt: the prompt that creates the object.
        clicks: every click of a point group in order (the first is ``prompt``), for refinement.
        region_id: LS region id to reuse in results (None for point groups).
    """

    key: str
    label: str | None
    prompt: PointPrompt | BoxPrompt | MaskPrompt
    clicks: list[PointPrompt] = field(default_factory=list)
    region_id: str | None = None


@dataclass
class ContextPrompts:
    """Everything an interactive call asks for: objects and/or a text query."""

    objects: list[ObjectPrompt] = field(default_factory=list)
    text: str | None = None


def context_to_prompts(context: dict | None, shape: MediaShape) -> ContextPrompts:
    """Convert ``params.context`` of ``/predict``.

    Raises:
        PromptError: a region is malformed (says which and why).
    """
    if not context:
        return ContextPrompts()
    items = context.get("result") if isinstance(context, dict) else None
    if not isinstance(items, list):
        raise PromptError("context must be {\"result\": [regions...]}; got " + type(context).__name__)
    out = ContextPrompts()
    groups: dict[str, list[PointPrompt]] = {}
    labels: dict[str, str | None] = {}
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise PromptError(f"context.result[{n}] must be a region object with a 'value'")
        kind = item.get("type", "")
        try:
            if kind == "textarea":
                texts = [t for t in item["value"].get("text", []) if isinstance(t, str) and t.strip()]
                out.text = texts[-1].strip() if texts else out.text
            elif kind == "keypointlabels":
                point, label = _point(item, shape)
                key = f"points:{label}:{point.frame_idx}"
                groups.setdefault(key, []).append(point)
                labels[key] = label
            elif kind in ("rectanglelabels", "brushlabels", "videorectangle"):
                out.objects.append(_region(kind, item, shape, n))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, PromptError):
                raise
            raise PromptError(f"context.result[{n}] ({kind}) is malformed: {err}") from None
    for key, clicks in groups.items():
        first = next((c for c in clicks if c.positive), None)
        if first is None:
            raise PromptError(f"the clicks for label {labels[key]!r} on frame {clicks[0].frame_idx} are all negative; "
                              "start an object with a positive click (plain click), then Alt-click to remove parts")
        out.objects.append(ObjectPrompt(key, labels[key], first, clicks))
    return out


def _label(item: dict) -> str | None:
    value = item["value"]
    for key in (item.get("type", ""), "labels", "keypointlabels", "rectanglelabels", "brushlabels"):
        labels = value.get(key)
        if isinstance(labels, list) and labels:
            return str(labels[0])
    return None


def _frame(item: dict, shape: MediaShape) -> int:
    frame_idx = int(item.get("item_index") or 0)
    if not 0 <= frame_idx < shape.num_frames:
        raise PromptError(f"item_index {frame_idx} is out of range: the task has {shape.num_frames} images")
    return frame_idx


def _point(item: dict, shape: MediaShape) -> tuple[PointPrompt, str | None]:
    value = item["value"]
    x_px = pct_to_px(float(value["x"]), shape.width_px)
    y_px = pct_to_px(float(value["y"]), shape.height_px)
    positive = item.get("is_positive", True) is not False
    return PointPrompt(x_px, y_px, _frame(item, shape), positive), _label(item)


def _region(kind: str, item: dict, shape: MediaShape, n: int) -> ObjectPrompt:
    region_id = str(item.get("id") or f"region{n}")
    value = item["value"]
    if kind == "rectanglelabels":
        x1, y1, x2, y2 = rect_pct_to_box_px(float(value["x"]), float(value["y"]), float(value["width"]),
                                            float(value["height"]), shape.width_px, shape.height_px)
        prompt = BoxPrompt(x1, y1, x2, y2, _frame(item, shape))
    elif kind == "brushlabels":
        if value.get("format", "rle") != "rle" or "rle" not in value:
            raise PromptError(f"brush region {region_id} has no RLE; only format 'rle' masks are supported")
        height = int(item.get("original_height") or shape.height_px)
        width = int(item.get("original_width") or shape.width_px)
        mask = ls_rle_to_mask(value["rle"], height, width)
        if (height, width) != (shape.height_px, shape.width_px):
            raise PromptError(f"brush region {region_id} is {width}x{height} px but the media is "
                              f"{shape.width_px}x{shape.height_px}")
        if not mask.any():
            raise PromptError(f"brush region {region_id} is empty; paint over the object")
        prompt = MaskPrompt(np.asarray(mask, dtype=bool), _frame(item, shape))
    else:
        prompt = _video_box(value, shape, region_id)
    return ObjectPrompt(f"region:{region_id}", _label(item), prompt, [], region_id)


def _video_box(value: dict, shape: MediaShape, region_id: str) -> BoxPrompt:
    """The first enabled keyframe of a VideoRectangle (LS frames are 1-based)."""
    keyframes = [k for k in value.get("sequence") or [] if k.get("enabled", True) is not False] or \
        list(value.get("sequence") or [])
    if not keyframes:
        raise PromptError(f"video rectangle {region_id} has an empty sequence; draw the box on a frame")
    key = min(keyframes, key=lambda k: int(k["frame"]))
    frame_idx = shape.timeline.to_frame_idx(int(key["frame"]))
    if frame_idx >= shape.num_frames:
        raise PromptError(f"video rectangle {region_id} is on LS frame {key['frame']} but the video has "
                          f"{shape.num_frames} frames; check the config's framerate against the video's fps")
    x1, y1, x2, y2 = rect_pct_to_box_px(float(key["x"]), float(key["y"]), float(key["width"]),
                                        float(key["height"]), shape.width_px, shape.height_px)
    return BoxPrompt(x1, y1, x2, y2, frame_idx)
