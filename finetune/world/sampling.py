"""Clicks, boxes and masks sampled from the ground truth, as an annotator would give them.

All coordinates are pixels of the original frame; frames are 0-based. A click lands well inside the
object (where the distance to its border is at least half the largest such distance), a box is the
mask's bounding box with a few percent of jitter, and a correction click lands inside the error region
it fixes (positive in a missed part, negative in a leak).
"""

from __future__ import annotations

import cv2
import numpy as np

from finetune.world.scene import Clip
from unipixel_model.types import BoxPrompt, MaskPrompt, PointPrompt


def prompt_frame(clip: Clip, obj: int, rng: np.random.Generator, visible_share: float = 0.6) -> int:
    """A frame where at least ``visible_share`` of the object's largest visible area shows.

    Raises:
        ValueError: when the object is never visible.
    """
    areas = clip.masks[obj].reshape(clip.num_frames, -1).sum(1)
    if areas.max() == 0:
        raise ValueError(f"object {obj} of clip {clip.seed} is never visible")
    good = np.nonzero(areas >= visible_share * areas.max())[0]
    return int(rng.choice(good))


def click_in(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(x_px, y_px) of a pixel centre deep inside ``mask`` (bool [H, W], not empty)."""
    if not mask.any():
        raise ValueError("cannot click inside an empty mask")
    depth = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    ys, xs = np.nonzero(depth >= 0.5 * depth.max())
    k = int(rng.integers(len(xs)))
    return float(xs[k]) + 0.5, float(ys[k]) + 0.5


def click(clip: Clip, obj: int, frame_idx: int, rng: np.random.Generator) -> PointPrompt:
    """A positive click on ``obj`` at ``frame_idx``."""
    x, y = click_in(clip.masks[obj, frame_idx], rng)
    return PointPrompt(x, y, frame_idx)


def box(clip: Clip, obj: int, frame_idx: int, rng: np.random.Generator, jitter: float = 0.05) -> BoxPrompt:
    """The object's bounding box at ``frame_idx``, each side moved by up to ``jitter`` of its size."""
    ys, xs = np.nonzero(clip.masks[obj, frame_idx])
    if not len(xs):
        raise ValueError(f"object {obj} is not visible on frame {frame_idx}")
    height, width = clip.size_hw
    x1, x2, y1, y2 = float(xs.min()), float(xs.max() + 1), float(ys.min()), float(ys.max() + 1)
    w, h = x2 - x1, y2 - y1
    dx1, dx2, dy1, dy2 = rng.uniform(-jitter, jitter, 4) * [w, w, h, h]
    x1, x2 = np.clip([x1 + dx1, x2 + dx2], 0, width)
    y1, y2 = np.clip([y1 + dy1, y2 + dy2], 0, height)
    if x2 - x1 < 1 or y2 - y1 < 1:
        x1, x2, y1, y2 = float(xs.min()), float(xs.max() + 1), float(ys.min()), float(ys.max() + 1)
    return BoxPrompt(float(x1), float(y1), float(x2), float(y2), frame_idx)


def mask(clip: Clip, obj: int, frame_idx: int) -> MaskPrompt:
    """The exact mask of ``obj`` at ``frame_idx``."""
    return MaskPrompt(clip.masks[obj, frame_idx].copy(), frame_idx)


def correction_click(truth: np.ndarray, predicted: np.ndarray, rng: np.random.Generator) -> PointPrompt | None:
    """A click that fixes the larger error of ``predicted`` against ``truth`` (both bool [H, W]).

    Returns a negative click inside the largest leak when leaks outweigh misses, else a positive one
    inside the largest missed part; frame_idx is 0 (set it yourself); None when there is no error.
    """
    leak, miss = predicted & ~truth, truth & ~predicted
    region = leak if leak.sum() >= miss.sum() else miss
    if not region.any():
        return None
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y = click_in(labels == largest, rng)
    return PointPrompt(x, y, 0, positive=region is miss)
