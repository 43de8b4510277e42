"""Referring expressions and descriptions of a clip's objects, unambiguous by construction.

Each object gets every expression that names it and no other object of its clip:

* ``category``: colour + shape ("the red circle");
* ``colour`` / ``shape``: one attribute when it alone is unique ("the red object", "the circle");
* ``position``: among objects of the same category, the one clearly left/right/above/below the others
  ("the red circle on the left");
* ``motion``: the dominant direction of travel when no other object of its category shares it
  ("the red circle moving up"), or of the whole clip ("the object moving up").

Positions use the centres averaged over the frames where the object is visible; motion uses the
displacement over those frames. Still images get no motion expressions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finetune.world.scene import Clip

KINDS = ("category", "colour", "shape", "position", "motion")
_SIDES = {"left": (0, -1), "right": (0, 1), "top": (1, -1), "bottom": (1, 1)}
_SIDE_TEXT = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}


@dataclass(frozen=True)
class Expression:
    """A phrase that names exactly one object: ``obj`` is its index in ``clip.objects``."""

    obj: int
    kind: str
    text: str


def describe(clip: Clip, obj: int) -> str:
    """The object's description, as the toy model is taught to give it: "a red circle"."""
    info = clip.objects[obj]
    article = "an" if info.colour[0] in "aeiou" else "a"
    return f"{article} {info.colour} {info.shape}"


def expressions(clip: Clip) -> list[Expression]:
    """Every unambiguous expression of every object that is visible somewhere in the clip."""
    out: list[Expression] = []
    present = [n for n in range(len(clip.objects)) if clip.visible_frames(n, min_pixels=16)]
    for n in present:
        info = clip.objects[n]
        same_cat = [m for m in present if m != n and clip.objects[m].category == info.category]
        if not same_cat:
            out.append(Expression(n, "category", f"the {info.category}"))
        if not any(clip.objects[m].colour == info.colour for m in present if m != n):
            out.append(Expression(n, "colour", f"the {info.colour} object"))
        if not any(clip.objects[m].shape == info.shape for m in present if m != n):
            out.append(Expression(n, "shape", f"the {info.shape}"))
        if same_cat:
            side = _unique_side(clip, n, same_cat)
            if side:
                out.append(Expression(n, "position", f"the {info.category} {_SIDE_TEXT[side]}"))
        out += _motion(clip, n, present)
    return out


def _centre(clip: Clip, obj: int) -> np.ndarray:
    frames = clip.visible_frames(obj, min_pixels=16)
    return clip.objects[obj].centres_px[frames].mean(axis=0)


def _unique_side(clip: Clip, obj: int, others: list[int]) -> str | None:
    """The side on which ``obj`` lies beyond all ``others`` by at least one object size."""
    mine = _centre(clip, obj)
    margin = clip.objects[obj].size_px
    for side, (axis, sign) in _SIDES.items():
        if all(sign * (mine[axis] - _centre(clip, m)[axis]) > margin for m in others):
            return side
    return None


def motion_direction(clip: Clip, obj: int) -> str | None:
    """'up', 'down', 'left' or 'right' when the object clearly travels that way, else None."""
    frames = clip.visible_frames(obj, min_pixels=16)
    if clip.num_frames < 2 or len(frames) < 2:
        return None
    centres = clip.objects[obj].centres_px
    dx, dy = centres[frames[-1]] - centres[frames[0]]
    travel = 0.15 * min(clip.size_hw)
    if abs(dx) > max(2 * abs(dy), travel):
        return "right" if dx > 0 else "left"
    if abs(dy) > max(2 * abs(dx), travel):
        return "down" if dy > 0 else "up"
    return None


def _motion(clip: Clip, obj: int, present: list[int]) -> list[Expression]:
    direction = motion_direction(clip, obj)
    if direction is None:
        return []
    others = [m for m in present if m != obj]
    info = clip.objects[obj]
    if not any(motion_direction(clip, m) == direction for m in others):
        return [Expression(obj, "motion", f"the object moving {direction}")]
    same_cat = [m for m in others if clip.objects[m].category == info.category]
    if same_cat and not any(motion_direction(clip, m) == direction for m in same_cat):
        return [Expression(obj, "motion", f"the {info.category} moving {direction}")]
    return []
