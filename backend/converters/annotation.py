"""The one parser of Label Studio regions: a ``result`` list -> typed regions in pixels and 0-based frames.

Both readers of Label Studio regions go through here: the interactive context of ``/predict``
(:mod:`backend.converters.prompts`) and the saved annotations the fine-tune trains on
(:mod:`finetune.convert`). So they agree on every rule:

=============================================  ==========================================================
what                                           rule
=============================================  ==========================================================
``result`` not a list, an item or its          raise :class:`PromptError` (malformed: the request or the
``value`` not an object, a non-string id       stored annotation is not what Label Studio writes)
a number that is not a finite number,          raise (``x``, ``y``, ``width``, ``height``, ``rotation``,
``item_index`` outside the task's images,      ``frame`` of a keyframe: they name the field)
a keyframe ``frame`` that is not a whole >= 1
a brush that is not ``format: rle``, or whose  raise, before a single byte is decoded (the declared size
declared size is not the media's               could claim gigabytes)
a rectangle with no area, an empty brush       skipped, the reason in ``skipped`` (the editor can send
stroke, a video box with no keyframe or only   these; the rest of the call is still answered)
keyframes past the end of the video
region types this backend does not read        ignored (``choices``, ``labels``, ...)
(choices, labels, ...)
=============================================  ==========================================================

The label of a region is the first entry of ``value[<its type>]``, else of ``value.labels``. Text areas are
returned as they are (joined, stripped); which text area is a query and which a description is the caller's
business (it knows the config's controls). Brush masks are decoded when asked for (:meth:`MaskRegion.mask_prompt`),
so regions the interactive path only needs by id cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backend.converters.geometry import pct_to_px, rotated_rect_pct_to_box_px
from backend.converters.region_ids import base_region_id
from backend.converters.rle import RLEError, ls_rle_to_mask
from backend.converters.timeline import Timeline
from backend.errors import PromptError
from unipixel_model.prompts import BoxPrompt, MaskPrompt, PointPrompt

LABEL_KEYS = ("labels", "keypointlabels", "rectanglelabels", "brushlabels")


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
class Region:
    """What every region has: its LS id (``region_id``; ``base_id`` without a ``-f<k>`` frame suffix), the
    control that made it (``from_name``) and its label."""

    region_id: str
    from_name: str | None
    label: str | None

    @property
    def base_id(self) -> str:
        return base_region_id(self.region_id)


@dataclass(frozen=True)
class KeypointRegion(Region):
    point: PointPrompt


@dataclass(frozen=True)
class BoxRegion(Region):
    box: BoxPrompt


@dataclass(frozen=True)
class MaskRegion(Region):
    """A brush region; its size was checked against the media, its RLE is decoded by :meth:`mask_prompt`."""

    rle: tuple[int, ...]
    shape: MediaShape
    frame_idx: int

    def mask_prompt(self) -> MaskPrompt | None:
        """The decoded ``bool[H, W]`` mask on ``frame_idx``; None when the stroke is empty.

        Raises:
            PromptError: the RLE is corrupt (says how).
        """
        try:
            mask = ls_rle_to_mask(list(self.rle), self.shape.height_px, self.shape.width_px)
        except RLEError as err:
            raise PromptError(f"brush region {self.region_id}: {err}") from None
        return MaskPrompt(np.asarray(mask, dtype=bool), self.frame_idx) if mask.any() else None


@dataclass(frozen=True)
class VideoKeyframe:
    """One keyframe of a video box: 0-based ``frame_idx`` (and the 1-based ``ls_frame`` it came from), the box
    ``(x1, y1, x2, y2)`` in pixels of the media, and the LS keyframe as it was sent (percent units)."""

    frame_idx: int
    ls_frame: int
    box_px: tuple[float, float, float, float]
    enabled: bool
    raw: dict


@dataclass(frozen=True)
class VideoBoxRegion(Region):
    """A ``videorectangle``: keyframes on the video's frames, sorted, those past its end dropped."""

    keyframes: tuple[VideoKeyframe, ...]

    def prompt(self) -> VideoKeyframe:
        """The keyframe a track starts from: the first one. LS shows a box on its keyframe's frame whether or
        not the keyframe is ``enabled`` (``enabled: false`` only ends the span after it), so that is where the
        annotator drew the object first."""
        return self.keyframes[0]

    def boxes_by_frame(self) -> dict[int, tuple[float, float, float, float]]:
        """The box on every frame Label Studio shows it: an enabled keyframe holds until the next keyframe,
        interpolated linearly; a disabled one ends the span after its own frame. ``frame_idx`` -> pixels."""
        out: dict[int, tuple[float, float, float, float]] = {}
        for key, following in zip(self.keyframes, [*self.keyframes[1:], None]):
            if following is None or not key.enabled:
                out.setdefault(key.frame_idx, key.box_px)
                continue
            span = following.frame_idx - key.frame_idx
            for step in range(max(span, 1)):
                share = step / span if span else 0.0
                out.setdefault(key.frame_idx + step,
                               tuple(a + share * (b - a) for a, b in zip(key.box_px, following.box_px)))
        return out


@dataclass(frozen=True)
class TextRegion(Region):
    text: str           # the value's strings, stripped and joined by spaces


@dataclass
class ParsedResult:
    """The typed regions of one ``result`` list, in its order, and why items were skipped."""

    regions: list[Region]
    skipped: list[str]


def parse_result(items: object, shape: MediaShape, where: str = "result",
                 known: Callable[[str], bool] | None = None) -> ParsedResult:
    """Parse a Label Studio ``result`` list (an interactive context's or a saved annotation's).

    ``known(region_id)`` marks regions the caller needs by id only (the backend's own regions sent back
    by the editor, which may come relabeled with another type): they are returned as a plain
    :class:`Region` and their value is not read.

    Raises:
        PromptError: ``items`` or one of its regions is malformed (says which, as ``where[n]``, and why).
    """
    if not isinstance(items, list):
        raise PromptError(f"{where} must be a list of regions; got {type(items).__name__}", field=where)
    out = ParsedResult([], [])
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise PromptError(f"{where}[{n}] must be a region object with a 'value'", field=f"{where}[{n}]")
        try:
            region = _region(item, n, f"{where}[{n}]", shape, known)
        except _Unservable as why:
            out.skipped.append(str(why))
            continue
        except PromptError:
            raise
        except (KeyError, TypeError, ValueError) as err:
            raise PromptError(f"{where}[{n}] ({item.get('type')}) is malformed: {err}", field=f"{where}[{n}]") \
                from None
        if region is not None:
            out.regions.append(region)
    return out


class _Unservable(Exception):
    """An item the editor can send that has nothing in it (the message says why)."""


def _region(item: dict, n: int, path: str, shape: MediaShape, known: Callable[[str], bool] | None) -> Region | None:
    kind, value = item.get("type", ""), item["value"]
    raw_id = item.get("id")
    if raw_id is not None and not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        raise PromptError(f"region id must be a string, got {type(raw_id).__name__}", field=f"{path}.id")
    common = (str(raw_id) if raw_id is not None else f"region{n}", _name(item.get("from_name")), _label(kind, value))
    if kind != "textarea" and known is not None and known(common[0]):
        return Region(*common)
    if kind == "textarea":
        return TextRegion(*common, _text(value, common[0]))
    if kind == "keypointlabels":
        return KeypointRegion(*common, _point(item, shape))
    if kind == "rectanglelabels":
        return BoxRegion(*common, BoxPrompt(*_box(value, shape, common[0]), _frame(item, shape)))
    if kind == "brushlabels":
        return MaskRegion(*common, *_brush(item, shape, common[0]))
    if kind == "videorectangle":
        return VideoBoxRegion(*common, _keyframes(value, shape, common[0]))
    return None


def _name(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _label(kind: str, value: dict) -> str | None:
    for key in (kind, *LABEL_KEYS):
        labels = value.get(key)
        if isinstance(labels, list) and labels:
            return str(labels[0])
    return None


def _text(value: dict, region_id: str) -> str:
    texts = value.get("text", [])
    if not isinstance(texts, list):
        raise PromptError(f"textarea {region_id}: value.text must be a list of strings")
    return " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())


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
    return PointPrompt(x_px, y_px, _frame(item, shape), item.get("is_positive", True) is not False)


def _box(geom: dict, shape: MediaShape, region_id: str) -> tuple[float, float, float, float]:
    numbers = [_number(geom[k], f"value.{k}") for k in ("x", "y", "width", "height")]
    rotation = _number(geom.get("rotation") or 0, "value.rotation")
    try:
        return rotated_rect_pct_to_box_px(*numbers, rotation, shape.width_px, shape.height_px)
    except ValueError as err:
        raise _Unservable(f"rectangle {region_id}: {err}") from None


def _brush(item: dict, shape: MediaShape, region_id: str) -> tuple[tuple[int, ...], MediaShape, int]:
    value = item["value"]
    if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
        raise PromptError(f"brush region {region_id} has no RLE list; only format 'rle' masks are supported")
    height = int(_number(item.get("original_height") or shape.height_px, "original_height"))
    width = int(_number(item.get("original_width") or shape.width_px, "original_width"))
    if (height, width) != (shape.height_px, shape.width_px):  # checked before decoding a single byte
        raise PromptError(f"brush region {region_id} is {width}x{height} px but the media is "
                          f"{shape.width_px}x{shape.height_px}")
    if not value["rle"]:
        raise _Unservable(f"brush region {region_id} is empty; paint over the object")
    return tuple(value["rle"]), shape, _frame(item, shape)


def _keyframes(value: dict, shape: MediaShape, region_id: str) -> tuple[VideoKeyframe, ...]:
    sequence = value.get("sequence") or []
    if not isinstance(sequence, list) or not all(isinstance(k, dict) for k in sequence):
        raise PromptError(f"video rectangle {region_id}: value.sequence must be a list of keyframe objects")
    if not sequence:
        raise _Unservable(f"video rectangle {region_id} has an empty sequence; draw the box on a frame")
    keys = []
    for key in sequence:
        ls_frame = _number(key["frame"], "sequence[].frame")
        if ls_frame != int(ls_frame) or ls_frame < 1:
            raise PromptError(f"video rectangle {region_id}: keyframe frame {key['frame']!r} must be a whole "
                              "number >= 1")
        frame_idx = shape.timeline.to_frame_idx(int(ls_frame))
        box = _box(key, shape, region_id)
        if frame_idx < shape.num_frames:
            keys.append(VideoKeyframe(frame_idx, int(ls_frame), box, key.get("enabled", True) is not False, key))
    if not keys:
        first = min(int(_number(k["frame"], "sequence[].frame")) for k in sequence)
        raise _Unservable(f"video rectangle {region_id} is on LS frame {first} but the video has "
                          f"{shape.num_frames} frames; check the config's framerate against the video's fps")
    return tuple(sorted(keys, key=lambda k: k.ls_frame))
