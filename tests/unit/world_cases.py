"""Shared cases of the synthetic-world unit tests (``test_world*.py``): small clips, built once per seed and config,
mask helpers, and an independent reading of the referring expressions (:func:`named`). Clips are tiny (a few
frames, 96x48 or smaller) so every file runs in a few seconds. Frames are deliberately not square (width 96,
height 48): a swapped x/y indexes out of range or lands elsewhere.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from backend.label_config import parse_label_config
from finetune.world.expressions import motion_direction
from finetune.world.scene import Clip, WorldConfig, make_clip

LABEL_CONFIGS = Path(__file__).parents[2] / "label_config"
W, H = 96, 48  # not square on purpose
SMALL = WorldConfig(num_frames=8, resolutions_wh=((W, H),))
# Few shapes and colours, every new object a distractor: same-category twins, occlusions, every expression kind.
CROWDED = WorldConfig(num_frames=12, resolutions_wh=((128, 64),), objects=(3, 4), shapes=("circle", "square"),
                      colours=("red", "blue"), p_distractor=1.0, size_range=(0.15, 0.3), speed_range=(0.02, 0.05))
SEEDS = range(12)


@lru_cache(maxsize=None)
def clip_of(seed: int, config: WorldConfig = SMALL) -> Clip:
    return make_clip(seed, config)


def present_objects(clip: Clip) -> list[int]:
    """Objects showing at least 16 pixels on some frame (what expressions and annotations consider)."""
    return [n for n in range(len(clip.objects)) if clip.visible_frames(n, min_pixels=16)]


def first_frame(clip: Clip) -> Clip:
    """Frame 0 of ``clip`` as a one-frame clip: what ``images/<name>.png`` shows."""
    objects = [dataclasses.replace(o, centres_px=o.centres_px[:1], angles_deg=o.angles_deg[:1]) for o in clip.objects]
    return Clip(clip.seed, clip.frames[:1], clip.masks[:, :1], objects, clip.fps, clip.background)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def masks_touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether masks ``a`` and ``b`` (bool [H, W]) overlap or have pixels side by side (8-neighbours)."""
    import cv2

    return bool((cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & b).any())


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


def label_config_spec(name: str):
    """The parsed ``label_config/<name>.xml``."""
    return parse_label_config((LABEL_CONFIGS / f"{name}.xml").read_text())


def owner(clip: Clip, masks: np.ndarray, frames: list[int]) -> int:
    """The object whose masks over ``frames`` are exactly ``masks`` [T, H, W]."""
    owners = [n for n in range(len(clip.objects)) if np.array_equal(clip.masks[n][frames], masks)]
    assert len(owners) == 1, owners
    return owners[0]


SIDES = {"on the left": (0, -1), "on the right": (0, 1), "at the top": (1, -1), "at the bottom": (1, 1)}
MOVES = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}


def mean_centroid(clip: Clip, n: int) -> np.ndarray:
    return np.mean([centroid(clip.masks[n, t]) for t in clip.visible_frames(n, min_pixels=16)], axis=0)


def named(clip: Clip, text: str) -> list[int]:
    """Objects of ``clip`` (showing >= 16 pixels somewhere) that ``text`` fits, read independently of the module."""
    present = present_objects(clip)
    objs = clip.objects
    if m := re.fullmatch(r"the object moving (\w+)", text):
        return [n for n in present if motion_direction(clip, n) == m[1]]
    if m := re.fullmatch(r"the (\w+) (\w+) moving (\w+)", text):
        return [n for n in present if objs[n].category == f"{m[1]} {m[2]}" and motion_direction(clip, n) == m[3]]
    if m := re.fullmatch(r"the (\w+) (\w+) (on the left|on the right|at the top|at the bottom)", text):
        same = [n for n in present if objs[n].category == f"{m[1]} {m[2]}"]
        axis, sign = SIDES[m[3]]
        pos = {n: sign * mean_centroid(clip, n)[axis] for n in same}  # where its pixels are, not its path
        return [n for n in same if all(pos[n] > pos[k] for k in same if k != n)]
    if m := re.fullmatch(r"the (\w+) object", text):
        return [n for n in present if objs[n].colour == m[1]]
    if m := re.fullmatch(r"the (\w+) (\w+)", text):
        return [n for n in present if objs[n].category == f"{m[1]} {m[2]}"]
    if m := re.fullmatch(r"the (\w+)", text):
        return [n for n in present if objs[n].shape == m[1]]
    raise AssertionError(f"unexpected expression {text!r}")
