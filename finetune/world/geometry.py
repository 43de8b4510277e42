"""The shapes of the synthetic world in their own frame: pixel coordinates turned into an object's (u, v), and
which of them lie inside a shape. Pure numpy; :mod:`finetune.world.scene` draws with it, and
:mod:`finetune.world.motion` keeps touching shapes apart with it."""

from __future__ import annotations

import math

import numpy as np

SHAPES = ("circle", "square", "triangle", "ring", "bar")
# Shapes the toy model never trains on: the "new category" of the active-learning check.
HELD_OUT_SHAPES = ("cross",)
ALL_SHAPES = SHAPES + HELD_OUT_SHAPES


def object_frame(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float,
                 angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) -> (u, v) in the frame of an object centred at (cx, cy) and turned by angle_deg."""
    angle = math.radians(float(angle_deg))
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    return u, v


def inside(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """bool, shaped as ``u`` and ``v`` (:func:`object_frame`): inside a ``shape`` whose size is ``2 * r`` px
    (``ObjectInfo.size_px``: a circle's diameter, a bar's length, the diameter of a triangle's circumcircle)."""
    if shape == "circle":
        return u * u + v * v <= r * r
    if shape == "ring":
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        return (np.abs(u) <= r * 0.8) & (np.abs(v) <= r * 0.8)
    if shape == "bar":
        return (np.abs(u) <= r) & (np.abs(v) <= r * 0.3)
    if shape == "cross":
        return ((np.abs(u) <= r) & (np.abs(v) <= r * 0.3)) | ((np.abs(v) <= r) & (np.abs(u) <= r * 0.3))
    if shape == "triangle":  # equilateral, circumradius r, pointing up in the object frame
        within = v <= r / 2
        for k in (1, 2):
            a = math.radians(90 + 120 * k)
            within &= (u * math.cos(a) + v * math.sin(a)) <= r / 2
        return within
    raise ValueError(f"unknown shape {shape!r}; shapes are {ALL_SHAPES}")
