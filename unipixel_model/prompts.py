"""Typed visual prompts in pixels and 0-based ``frame_idx`` (torch-free).

The one module of the model package that Label Studio converters import: it needs numpy only, so
``backend.converters`` stays pure. Coordinates are pixels of the original frame; masks are
``bool[H, W]`` at the original resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PointPrompt:
    """A click at (x_px, y_px) on frame ``frame_idx``; ``positive=False`` is a negative click."""

    x_px: float
    y_px: float
    frame_idx: int
    positive: bool = True


@dataclass(frozen=True)
class BoxPrompt:
    """A box (x1_px, y1_px) top-left to (x2_px, y2_px) bottom-right on frame ``frame_idx``."""

    x1_px: float
    y1_px: float
    x2_px: float
    y2_px: float
    frame_idx: int


@dataclass(frozen=True)
class MaskPrompt:
    """An object mask on one frame: ``mask`` is bool [H, W] at the original resolution."""

    mask: np.ndarray
    frame_idx: int


VisualPrompt = PointPrompt | BoxPrompt | MaskPrompt
