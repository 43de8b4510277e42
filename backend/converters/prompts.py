"""Label Studio interactive context -> typed prompts in pixels and 0-based frames.

What the Label Studio 1.23 editor really sends (``tests/e2e/EDITOR_NOTES.md``): the region just
drawn plus every other *dynamic* region of the same type and label, on every page of a frame list.
So a context is read item by item, not as one object:

- every smart keypoint is a :class:`Click` keyed by its own region id; which object it belongs to is
  decided by the backend, which remembers the clicks it has applied;
- a rectangle, video rectangle or brush region drawn by the annotator is a :class:`RegionPrompt`;
- regions the backend wrote (``unipixel-...`` ids, see :mod:`region_ids`) come back when the
  annotator selects them or keeps a label selected; they are listed in ``own`` and never re-prompted;
- only the prompt control's ``TextArea`` is a query; a per-region description ``TextArea`` is the
  annotator's text for that region and is kept, never taken as a query.

Malformed items (wrong types, impossible numbers) raise :class:`PromptError`; things an annotator
can do in the editor that cannot be served (an empty brush stroke, a box past the end of the video)
are skipped with the reason in ``skipped``, so the rest of the call is still answered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backend.converters.geometry import pct_to_px, rotated_rect_pct_to_box_px
from backend.converters.region_ids import base_region_id, is_backend_region
from backend.converters.rle import ls_rle_to_mask
from backend.converters.timeline import Timeline
from backend.errors import PromptError
from unipixel_model.prompts import BoxPrompt, MaskPrompt, PointPrompt

REGION_TYPES = ("rectanglelabels", "brushlabels", "videorectangle")


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


@dataclass(frozen=True)
class PromptControls:
    """Names of the config's controls that the context is read against (None: not in the config)."""

    prompt: str | None = None       # whole-object TextArea: text queries
    description: str | None = None  # per-region TextArea: descriptions


@dataclass(frozen=True)
class Click:
    """One smart keypoint: ``click_id`` is its LS region id (stable while the click exists)."""

    click_id: str
    label: str | None
    point: PointPrompt


@dataclass
class RegionPrompt:
    """A box or mask the annotator drew; ``keyframe`` is the LS keyframe of a video box prompt."""

    region_id: str
    label: str | None
    prompt: BoxPrompt | MaskPrompt
    keyframe: dict | None = None


@dataclass
class ContextPrompts:
    """Everything one interactive call carries."""

    clicks: list[Click] = field(default_factory=list)
    regions: list[RegionPrompt] = field(default_factory=list)
    own: list[str] = field(default_factory=list)                # base ids of backend regions sent back
    descriptions: dict[str, str] = field(default_factory=dict)  # base region id -> annotator's text
    text: str | None = None
    skipped: list[str] = field(default_factory=list)            # why items were not served

    @property
    def asks_model(self) -> bool:
        """True when the call needs the model (a click, a drawn region or a query)."""
        return bool(self.clicks or self.regions or self.text)


def wants_model(context: object, controls: PromptControls = PromptControls()) -> bool:
    """True when ``context`` may need the model: a click or region not written by the backend, or a
    query in the prompt control. Cheap and shape-free, so an empty context (``{"result": []}``, sent
    after every Submit/Update) is answered without opening a session or taking the GPU lock."""
    items = context.get("result") if isinstance(context, dict) else None
    if not isinstance(items, list):
        return context is not None and context != {}  # malformed: let the parser say why
    for item in items:
        if not isinstance(item, dict):
            return True
        if item.get("type") == "textarea":
            if item.get("from_name") != controls.description or controls.description is None:
                return True
        elif not is_backend_region(str(item.get("id"))):
            return True
    return False


def context_to_prompts(context: dict | None, shape: MediaShape,
                       controls: PromptControls = PromptControls()) -> ContextPrompts:
    """Convert ``params.context`` of ``/predict``.

    Raises:
        PromptError: the context or a region is malformed (says which and why).
    """
    out = ContextPrompts()
    if not context:
        return out
    items = context.get("result") if isinstance(context, dict) else None
    if not isinstance(items, list):
        raise PromptError("context must be {\"result\": [regions...]}; got " + type(context).__name__)
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise PromptError(f"context.result[{n}] must be a region object with a 'value'")
        try:
            _read_item(out, item, n, shape, controls)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, PromptError):
                raise
            raise PromptError(f"context.result[{n}] ({item.get('type')}) is malformed: {err}") from None
    return out


def _read_item(out: ContextPrompts, item: dict, n: int, shape: MediaShape, controls: PromptControls) -> None:
    kind, region_id = item.get("type", ""), item.get("id")
    if region_id is not None and not isinstance(region_id, (str, int)):
        raise PromptError(f"context.result[{n}].id must be a string, got {type(region_id).__name__}")
    region_id = str(region_id) if region_id is not None else f"region{n}"
    if kind == "textarea":
        _read_text(out, item, region_id, controls)
    elif is_backend_region(region_id):
        if base_region_id(region_id) not in out.own:
            out.own.append(base_region_id(region_id))
    elif kind == "keypointlabels":
        out.clicks.append(Click(region_id, _label(item), _point(item, shape)))
    elif kind in REGION_TYPES:
        try:
            out.regions.append(_region(kind, item, shape, region_id))
        except _Unservable as why:
            out.skipped.append(str(why))


def _read_text(out: ContextPrompts, item: dict, region_id: str, controls: PromptControls) -> None:
    texts = item["value"].get("text", [])
    if not isinstance(texts, list):
        raise PromptError(f"textarea {region_id}: value.text must be a list of strings")
    text = " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())
    source = item.get("from_name")
    if controls.description is not None and source == controls.description:
        if text:  # the annotator's description of that region: kept, never a query
            out.descriptions[base_region_id(region_id)] = text
    elif text and (controls.prompt is None or source == controls.prompt):
        out.text = text


class _Unservable(Exception):
    """An item the editor can send that has nothing to segment (the message says why)."""


def _label(item: dict) -> str | None:
    value = item["value"]
    for key in (item.get("type", ""), "labels", "keypointlabels", "rectanglelabels", "brushlabels"):
        labels = value.get(key)
        if isinstance(labels, list) and labels:
            return str(labels[0])
    return None


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise PromptError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise PromptError(f"{name} must be a finite number, got {value!r}")
    return number


def _frame(item: dict, shape: MediaShape) -> int:
    raw = item.get("item_index") or 0
    frame_idx = _number(raw, "item_index")
    if frame_idx != int(frame_idx) or not 0 <= frame_idx < shape.num_frames:
        raise PromptError(f"item_index {raw!r} is out of range: the task has {shape.num_frames} images (0-based)")
    return int(frame_idx)


def _point(item: dict, shape: MediaShape) -> PointPrompt:
    value = item["value"]
    x_px = pct_to_px(_number(value["x"], "value.x"), shape.width_px)
    y_px = pct_to_px(_number(value["y"], "value.y"), shape.height_px)
    if not (-shape.width_px <= x_px <= 2 * shape.width_px and -shape.height_px <= y_px <= 2 * shape.height_px):
        raise PromptError(f"keypoint at x={value['x']}%, y={value['y']}% is far outside the image")
    positive = item.get("is_positive", True) is not False
    return PointPrompt(x_px, y_px, _frame(item, shape), positive)


def _box(geom: dict, shape: MediaShape, region_id: str) -> tuple[float, float, float, float]:
    numbers = [_number(geom[k], f"value.{k}") for k in ("x", "y", "width", "height")]
    rotation = _number(geom.get("rotation") or 0, "value.rotation")
    try:
        return rotated_rect_pct_to_box_px(*numbers, rotation, shape.width_px, shape.height_px)
    except ValueError as err:
        raise _Unservable(f"rectangle {region_id}: {err}") from None


def _region(kind: str, item: dict, shape: MediaShape, region_id: str) -> RegionPrompt:
    value = item["value"]
    if kind == "rectanglelabels":
        prompt: BoxPrompt | MaskPrompt = BoxPrompt(*_box(value, shape, region_id), _frame(item, shape))
        return RegionPrompt(region_id, _label(item), prompt)
    if kind == "brushlabels":
        return RegionPrompt(region_id, _label(item), _brush(item, shape, region_id))
    prompt, keyframe = _video_box(value, shape, region_id)
    return RegionPrompt(region_id, _label(item), prompt, keyframe)


def _brush(item: dict, shape: MediaShape, region_id: str) -> MaskPrompt:
    value = item["value"]
    if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
        raise PromptError(f"brush region {region_id} has no RLE list; only format 'rle' masks are supported")
    height = int(_number(item.get("original_height") or shape.height_px, "original_height"))
    width = int(_number(item.get("original_width") or shape.width_px, "original_width"))
    if (height, width) != (shape.height_px, shape.width_px):  # checked before decoding a single byte
        raise PromptError(f"brush region {region_id} is {width}x{height} px but the media is "
                          f"{shape.width_px}x{shape.height_px}")
    mask = ls_rle_to_mask(value["rle"], height, width)
    if not mask.any():
        raise _Unservable(f"brush region {region_id} is empty; paint over the object")
    return MaskPrompt(np.asarray(mask, dtype=bool), _frame(item, shape))


def _video_box(value: dict, shape: MediaShape, region_id: str) -> tuple[BoxPrompt, dict]:
    """The first enabled keyframe of a VideoRectangle (LS frames are 1-based)."""
    sequence = value.get("sequence") or []
    if not isinstance(sequence, list) or not all(isinstance(k, dict) for k in sequence):
        raise PromptError(f"video rectangle {region_id}: value.sequence must be a list of keyframe objects")
    keyframes = [k for k in sequence if k.get("enabled", True) is not False] or sequence
    if not keyframes:
        raise _Unservable(f"video rectangle {region_id} has an empty sequence; draw the box on a frame")
    key = min(keyframes, key=lambda k: _number(k["frame"], "sequence[].frame"))
    ls_frame = _number(key["frame"], "sequence[].frame")
    if ls_frame != int(ls_frame) or ls_frame < 1:
        raise PromptError(f"video rectangle {region_id}: keyframe frame {key['frame']!r} must be a whole number >= 1")
    frame_idx = shape.timeline.to_frame_idx(int(ls_frame))
    if frame_idx >= shape.num_frames:
        raise _Unservable(f"video rectangle {region_id} is on LS frame {key['frame']} but the video has "
                          f"{shape.num_frames} frames; check the config's framerate against the video's fps")
    return BoxPrompt(*_box(key, shape, region_id), frame_idx), key
