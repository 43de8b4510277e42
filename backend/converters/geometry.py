"""Coordinate and frame conversions between Label Studio units and ours.

Label Studio stores region geometry in percent (0-100) of the original frame, with ``x``/``y``
the top-left corner, and numbers video frames from 1 (``ls_frame``). Everything outside
``backend/converters`` works in pixels and 0-based ``frame_idx``; these functions are the only
place where ``/ 100`` and ``- 1`` happen. All functions are pure (no I/O, no torch).

Boxes in pixels are ``(x1, y1, x2, y2)`` with exclusive right/bottom edges: a box covering
pixel columns 3..5 is ``x1=3, x2=6``, so ``x2 - x1`` is the width in pixels.
"""

from __future__ import annotations

import math

import numpy as np

# Absorbs float error in ``time_s * fps`` (e.g. 1001/30000 s * 29.97 fps = 0.99999999...).
_FRAME_EPS = 1e-6


class GeometryError(ValueError):
    """A coordinate, frame number or size is out of range; the message gives the numbers."""


def _check_size(size_px: int | float, name: str = "size_px") -> None:
    if not size_px > 0:
        raise GeometryError(f"{name} must be > 0 pixels, got {size_px}; pass the frame's original width/height")


def _check_integer(value: object, name: str) -> None:
    # Accepts 3, 3.0 and numpy integers (JSON may carry frames as floats); refuses 2.5 and "3".
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not numeric or not math.isfinite(value) or int(value) != value:
        raise GeometryError(f"{name} must be a whole number, got {value!r}")


def pct_to_px(value_pct: float, size_px: int) -> float:
    """Convert a Label Studio percent coordinate (0-100) to pixels.

    Args:
        value_pct: coordinate or length in percent of ``size_px``.
        size_px: frame width (for x/width) or height (for y/height) in pixels, > 0.

    Returns:
        The value in pixels (float, not rounded, not clamped).

    Raises:
        GeometryError: if ``size_px`` is not positive.
    """
    _check_size(size_px)
    return float(value_pct) * float(size_px) / 100.0


def px_to_pct(value_px: float, size_px: int) -> float:
    """Convert pixels to a Label Studio percent coordinate (0-100), full float precision.

    Args:
        value_px: coordinate or length in pixels.
        size_px: frame width or height in pixels, > 0.

    Returns:
        The value in percent of ``size_px`` (not clamped).

    Raises:
        GeometryError: if ``size_px`` is not positive.
    """
    _check_size(size_px)
    return float(value_px) * 100.0 / float(size_px)


def ls_frame_to_frame_idx(ls_frame: int) -> int:
    """Convert a 1-based Label Studio frame number to a 0-based ``frame_idx``.

    Args:
        ls_frame: ``sequence[i]["frame"]`` of a VideoRectangle (1 is the first frame).

    Returns:
        ``ls_frame - 1``.

    Raises:
        GeometryError: if ``ls_frame < 1`` (a 0-based index passed where LS numbering is expected).
    """
    _check_integer(ls_frame, "ls_frame")
    if ls_frame < 1:
        raise GeometryError(f"Label Studio frame numbers start at 1, got {ls_frame}; "
                            "did you pass a 0-based frame_idx?")
    return int(ls_frame) - 1


def frame_idx_to_ls_frame(frame_idx: int) -> int:
    """Convert a 0-based ``frame_idx`` to a 1-based Label Studio frame number.

    Raises:
        GeometryError: if ``frame_idx < 0``.
    """
    _check_integer(frame_idx, "frame_idx")
    if frame_idx < 0:
        raise GeometryError(f"frame_idx is 0-based and must be >= 0, got {frame_idx}")
    return int(frame_idx) + 1


def time_s_to_frame_idx(time_s: float, fps: float, num_frames: int | None = None) -> int:
    """Convert a time in seconds to the 0-based index of the frame shown at that time.

    Label Studio frame ``n`` (1-based) is on screen during ``[(n-1)/fps, n/fps)``, so the frame
    shown at ``time_s`` is ``floor(time_s * fps)`` (0-based); ``round`` would jump to the next
    frame halfway through the current one. The small epsilon keeps an exact boundary
    ``time_s = n / fps`` on frame ``n`` (0-based) despite float error at fps like 29.97.

    Args:
        time_s: time from the start of the video in seconds, >= 0.
        fps: frame rate Label Studio uses (the config ``framerate``), > 0.
        num_frames: if given, the result is clamped to ``num_frames - 1`` (LS may report a time
            slightly past the last decoded frame).

    Returns:
        The 0-based frame index.

    Raises:
        GeometryError: for negative time, non-positive fps or ``num_frames < 1``.
    """
    if not fps > 0:
        raise GeometryError(f"fps must be > 0, got {fps}; use the <Video framerate> of the label config")
    if time_s < 0:
        raise GeometryError(f"time_s must be >= 0 seconds, got {time_s}")
    frame_idx = int(math.floor(time_s * fps + _FRAME_EPS))
    if num_frames is not None:
        if num_frames < 1:
            raise GeometryError(f"num_frames must be >= 1, got {num_frames}")
        frame_idx = min(frame_idx, num_frames - 1)
    return frame_idx


def frame_idx_to_time_s(frame_idx: int, fps: float) -> float:
    """Start time in seconds of the 0-based frame ``frame_idx`` (``frame_idx / fps``).

    Raises:
        GeometryError: for a negative ``frame_idx`` or non-positive fps.
    """
    if not fps > 0:
        raise GeometryError(f"fps must be > 0, got {fps}")
    if frame_idx < 0:
        raise GeometryError(f"frame_idx is 0-based and must be >= 0, got {frame_idx}")
    return frame_idx / float(fps)


def mask_to_box_px(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight bounding box of a mask in pixels.

    Args:
        mask: bool (or any numeric, nonzero = on) array [H, W].

    Returns:
        ``(x1, y1, x2, y2)`` with exclusive ``x2 = max_x + 1`` and ``y2 = max_y + 1``, or ``None``
        when the mask is empty.

    Raises:
        GeometryError: if ``mask`` is not 2-D.
    """
    if mask.ndim != 2:
        raise GeometryError(f"mask must be 2-D [H, W], got shape {mask.shape}; index one frame of a [T, H, W] stack")
    on = mask if mask.dtype == np.bool_ else mask != 0
    rows = np.flatnonzero(on.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(on[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def box_px_to_pct(box: tuple[float, float, float, float], width_px: int, height_px: int) -> dict[str, float]:
    """Convert a pixel box to Label Studio rectangle geometry (full float precision).

    Args:
        box: ``(x1, y1, x2, y2)`` in pixels, exclusive right/bottom edges.
        width_px: frame width in pixels.
        height_px: frame height in pixels.

    Returns:
        ``{"x", "y", "width", "height"}`` in percent of the frame (top-left corner + size).

    Raises:
        GeometryError: for a non-positive frame size or a box with ``x2 < x1`` or ``y2 < y1``.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise GeometryError(f"box must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1, got {tuple(box)}")
    _check_size(width_px, "width_px")
    _check_size(height_px, "height_px")
    return {"x": px_to_pct(x1, width_px), "y": px_to_pct(y1, height_px),
            "width": px_to_pct(x2 - x1, width_px), "height": px_to_pct(y2 - y1, height_px)}


def rect_pct_to_box_px(x_pct: float, y_pct: float, w_pct: float, h_pct: float,
                       width_px: int, height_px: int) -> tuple[float, float, float, float]:
    """Convert Label Studio rectangle geometry to a pixel box clamped into the frame.

    Args:
        x_pct, y_pct: top-left corner in percent.
        w_pct, h_pct: width and height in percent, >= 0.
        width_px, height_px: frame size in pixels.

    Returns:
        ``(x1, y1, x2, y2)`` floats in pixels with ``0 <= x1 < x2 <= width_px`` and
        ``0 <= y1 < y2 <= height_px``.

    Raises:
        GeometryError: for negative width/height, or a box with no area inside the frame.
    """
    if w_pct < 0 or h_pct < 0:
        raise GeometryError(f"rectangle width/height must be >= 0 percent, got {w_pct}, {h_pct}")
    x1 = min(max(pct_to_px(x_pct, width_px), 0.0), float(width_px))
    y1 = min(max(pct_to_px(y_pct, height_px), 0.0), float(height_px))
    x2 = min(max(pct_to_px(x_pct + w_pct, width_px), 0.0), float(width_px))
    y2 = min(max(pct_to_px(y_pct + h_pct, height_px), 0.0), float(height_px))
    if x2 <= x1 or y2 <= y1:
        raise GeometryError(f"rectangle x={x_pct}% y={y_pct}% w={w_pct}% h={h_pct}% has no area inside the "
                            f"{width_px}x{height_px} frame; draw it over the image")
    return x1, y1, x2, y2


def rotated_rect_pct_to_box_px(x_pct: float, y_pct: float, w_pct: float, h_pct: float, rotation_deg: float,
                               width_px: int, height_px: int) -> tuple[float, float, float, float]:
    """The pixel box enclosing a rotated Label Studio rectangle, clamped into the frame.

    Label Studio rotates a rectangle clockwise (screen y points down) by ``rotation_deg`` around its
    top-left corner ``(x, y)``, in pixel space; the 3-point tool draws such boxes. SAM 2 takes
    axis-aligned boxes, so the prompt is the box around the four rotated corners.

    Raises:
        GeometryError: as :func:`rect_pct_to_box_px`, or for a non-finite rotation.
    """
    if not math.isfinite(rotation_deg):
        raise GeometryError(f"rectangle rotation must be a finite number of degrees, got {rotation_deg}")
    if rotation_deg % 360 == 0:
        return rect_pct_to_box_px(x_pct, y_pct, w_pct, h_pct, width_px, height_px)
    if w_pct < 0 or h_pct < 0:
        raise GeometryError(f"rectangle width/height must be >= 0 percent, got {w_pct}, {h_pct}")
    x0, y0 = pct_to_px(x_pct, width_px), pct_to_px(y_pct, height_px)
    w, h = pct_to_px(w_pct, width_px), pct_to_px(h_pct, height_px)
    theta = math.radians(rotation_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    xs = [x0 + dx * cos - dy * sin for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    ys = [y0 + dx * sin + dy * cos for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    return rect_pct_to_box_px(px_to_pct(x1, width_px), px_to_pct(y1, height_px), px_to_pct(x2 - x1, width_px),
                              px_to_pct(y2 - y1, height_px), width_px, height_px)
