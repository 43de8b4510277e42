"""File names of frame-list images: 1-based and five digits (``00001.jpg``), as Label Studio numbers frames.

``python -m backend frames`` writes frame lists with these names, the DAVIS export of a frame-list project names
its PNGs after them, and synthetic frame folders use them too, so a frame's file name and its LS frame number
agree everywhere. (DAVIS's own 0-based ``00000.jpg`` layout is written by :mod:`finetune.world.writers`.)
"""

from __future__ import annotations


def frame_file_stem(frame_idx: int) -> str:
    """Stem of the file holding 0-based frame ``frame_idx``: ``00001`` for frame 0."""
    if frame_idx < 0:
        raise ValueError(f"frame_idx must be >= 0, got {frame_idx}")
    return f"{frame_idx + 1:05d}"


def frame_file_name(frame_idx: int, suffix: str = ".jpg") -> str:
    """File name of 0-based frame ``frame_idx``: ``00001.jpg`` for frame 0."""
    return frame_file_stem(frame_idx) + suffix
