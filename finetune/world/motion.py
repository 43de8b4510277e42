"""How the synthetic world's objects move: per-frame centres in pixels that bounce off the borders, turn, enter or
leave the frame, or keep a shape against another one. Deterministic from the caller's generator: the draws happen in
the order :func:`finetune.world.scene.make_clip` has always made them, so a seed gives the same clip."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from finetune.world.geometry import inside, object_frame

if TYPE_CHECKING:
    from finetune.world.scene import ObjectInfo, WorldConfig


def path_px(rng: np.random.Generator, config: "WorldConfig", size: float, width: int, height: int) -> np.ndarray:
    """Centres [T, 2]: bouncing inside the frame, with an optional turn, entry or exit."""
    frames, side, half = config.num_frames, min(width, height), size / 2
    speed = float(rng.uniform(*config.speed_range)) * side
    heading = float(rng.uniform(0, 2 * math.pi))
    velocity = speed * np.array([math.cos(heading), math.sin(heading)])
    lo, hi = np.array([half, half]), np.array([width - half, height - half])
    hi = np.maximum(hi, lo + 1)
    position = rng.uniform(lo, hi)
    enter, leave = frames > 4 and rng.random() < config.p_enter, frames > 4 and rng.random() < config.p_leave
    if enter:  # start beyond a border, heading in: visible after a few frames
        position, velocity = _entry(rng, width, height, size, speed)
    turn_at = int(rng.integers(frames // 4, max(frames // 4 + 1, 3 * frames // 4))) if rng.random() < config.p_turn else -1
    leave_at = min(int(rng.integers(frames // 2, frames)), frames - 2) if leave else -1  # >= 1 step to go
    centres = np.empty((frames, 2))
    for t in range(frames):
        centres[t] = position
        if t == turn_at and not 0 <= leave_at < t:  # no turn once leaving: it would head back in
            velocity = _rotate(velocity, float(rng.uniform(math.pi / 3, math.pi)) * rng.choice([-1, 1]))
        if t == leave_at:  # head for the nearest border, fast enough to be gone by the last frame
            velocity = _exit_velocity(position, width, height, speed, size, frames - 1 - t)
        position = position + velocity
        inside = not enter or t > 8
        if inside and not (leave_at >= 0 and t >= leave_at):  # bounce off the borders
            for axis in (0, 1):
                if position[axis] < lo[axis] or position[axis] > hi[axis]:
                    velocity[axis] = -velocity[axis]
                    position[axis] = np.clip(position[axis], lo[axis], hi[axis])
    return centres


def _entry(rng: np.random.Generator, width: int, height: int, size: float, speed: float):
    border = int(rng.integers(4))
    speed = max(speed, size / 6)  # fully inside within ~8 frames
    if border in (0, 1):  # left / right
        x = -size / 2 if border == 0 else width + size / 2
        position = np.array([x, rng.uniform(size / 2, max(size / 2 + 1, height - size / 2))])
        velocity = np.array([speed if border == 0 else -speed, rng.uniform(-0.3, 0.3) * speed])
    else:  # top / bottom
        y = -size / 2 if border == 2 else height + size / 2
        position = np.array([rng.uniform(size / 2, max(size / 2 + 1, width - size / 2)), y])
        velocity = np.array([rng.uniform(-0.3, 0.3) * speed, speed if border == 2 else -speed])
    return position, velocity


def _exit_velocity(position: np.ndarray, width: int, height: int, speed: float, size: float,
                   steps: int) -> np.ndarray:
    """Towards the nearest border, at least fast enough that ``steps`` steps carry the whole shape
    (every pixel within :func:`~finetune.world.scene.shape_mask_px`'s reach of the centre) past it."""
    gaps = {(-1, 0): position[0], (1, 0): width - position[0], (0, -1): position[1], (0, 1): height - position[1]}
    direction = min(gaps, key=gaps.get)
    needed = (gaps[direction] + 0.75 * size + 1) / max(1, steps)
    return max(speed, needed) * np.array(direction, dtype=float)


def _rotate(vector: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * vector[0] - s * vector[1], s * vector[0] + c * vector[1]])


def against_px(other: "ObjectInfo", shape: str, size: float, angles_deg: np.ndarray, heading: float) -> np.ndarray:
    """Centres [T, 2] that keep a ``shape`` of ``size`` px (turned by ``angles_deg`` [T]) against ``other`` on every
    frame: moved from ``other``'s centre along ``heading`` (radians) to 1 px closer than the farthest point where the
    two still overlap, so that they touch without either hiding much of the other."""
    direction = np.array([math.cos(heading), math.sin(heading)])
    reach = 0.75 * (other.size_px + size) + 2  # both shapes lie within ``reach`` px of other's centre while they touch
    yy, xx = np.mgrid[-reach:reach:1.0, -reach:reach:1.0]  # a pixel grid around other's centre
    centres = np.empty_like(other.centres_px)
    for t in range(len(centres)):
        occupied = inside(other.shape, *object_frame(xx, yy, 0.0, 0.0, other.angles_deg[t]), other.size_px / 2)
        near, far = 0.0, reach  # overlapping at 0, apart at ``reach``
        while far - near > 0.5:
            mid = (near + far) / 2
            cx, cy = mid * direction
            overlapping = (occupied & inside(shape, *object_frame(xx, yy, cx, cy, angles_deg[t]), size / 2)).any()
            near, far = (mid, far) if overlapping else (near, mid)
        centres[t] = other.centres_px[t] + max(0.0, near - 1.0) * direction
    return centres
