"""Checks of a session's prompts against its media: frames in range, points inside the frame, boxes and masks that
make sense. Each failure raises :class:`UniPixelInputError` saying what was given and what the media allows."""

from __future__ import annotations

from collections.abc import Sequence

from unipixel_model.errors import UniPixelInputError
from unipixel_model.feature_cache import to_numpy_mask
from unipixel_model.media import Frames
from unipixel_model.types import BoxPrompt, MaskPrompt, PointPrompt, VisualPrompt


def check_frame(frame_idx: int, frames: Frames) -> None:
    """``frame_idx`` (0-based) must be a frame of ``frames``."""
    if not 0 <= frame_idx < frames.num_frames:
        raise UniPixelInputError(f"frame_idx {frame_idx} is out of range: the media has "
                                 f"{frames.num_frames} frames (0..{frames.num_frames - 1})")


def check_point(x: float, y: float, frame_idx: int, frames: Frames) -> None:
    """(``x``, ``y``) in pixels of the original frame must lie on frame ``frame_idx``."""
    check_frame(frame_idx, frames)
    height, width = frames.size_hw
    if not (0 <= x <= width and 0 <= y <= height):
        raise UniPixelInputError(f"point ({x}, {y}) is outside the {width}x{height} frame")


def check_clicks(clicks: Sequence[PointPrompt], frames: Frames) -> int:
    """Correction clicks must be one or more :class:`PointPrompt` on one frame of ``frames``, inside it; returns that
    0-based frame."""
    if not clicks or any(not isinstance(c, PointPrompt) for c in clicks):
        raise UniPixelInputError(f"refine() takes one or more PointPrompt clicks, got {clicks!r}")
    frame_set = sorted({c.frame_idx for c in clicks})
    if len(frame_set) != 1:
        raise UniPixelInputError(f"refine() clicks must share one frame, got frames {frame_set}; call it once per frame")
    for click in clicks:
        check_point(click.x_px, click.y_px, frame_set[0], frames)
    return frame_set[0]


def check_prompt(obj_id: int, prompt: VisualPrompt, frames: Frames) -> None:
    """A click, box or mask of object ``obj_id`` must fit ``frames``; a box needs x2 > x1 and y2 > y1, a mask the
    frames' (H, W) and at least one pixel."""
    if isinstance(prompt, PointPrompt):
        check_point(prompt.x_px, prompt.y_px, prompt.frame_idx, frames)
    elif isinstance(prompt, BoxPrompt):
        check_point(prompt.x1_px, prompt.y1_px, prompt.frame_idx, frames)
        check_point(prompt.x2_px, prompt.y2_px, prompt.frame_idx, frames)
        if prompt.x2_px <= prompt.x1_px or prompt.y2_px <= prompt.y1_px:
            raise UniPixelInputError(f"box of object [{obj_id}] must have x2 > x1 and y2 > y1, got "
                                     f"({prompt.x1_px}, {prompt.y1_px}, {prompt.x2_px}, {prompt.y2_px})")
    elif isinstance(prompt, MaskPrompt):
        check_frame(prompt.frame_idx, frames)
        mask = to_numpy_mask(prompt.mask)
        if mask.shape != frames.size_hw:
            raise UniPixelInputError(f"mask of object [{obj_id}] is {mask.shape}, the frames are {frames.size_hw}")
        if not mask.any():
            raise UniPixelInputError(f"mask of object [{obj_id}] on frame {prompt.frame_idx} is empty")
    else:
        raise UniPixelInputError(f"unsupported prompt type {type(prompt).__name__} for object [{obj_id}]")
