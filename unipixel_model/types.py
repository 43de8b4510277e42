"""Typed prompts and results of an inference session (pixels, 0-based ``frame_idx``).

Coordinates are pixels of the original frame; frames are 0-based indices into the whole video.
Masks are ``bool[H, W]`` at the original resolution.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from unipixel_model.prompts import BoxPrompt, MaskPrompt, PointPrompt, VisualPrompt  # noqa: F401  (re-exported)


@dataclass
class MaskTrack:
    """One object's masks over the video, kept as SAM 2 low-res logits (masks made on demand).

    Attributes:
        obj_id: the object's id in the session's memory bank ([1], [2], ...).
        frame_size_hw: original (H, W).
        low_res_logits: float32 [T, h, w]; untracked frames hold -inf, or 0 in a long video's disk-backed store
            (either reads as an empty mask; ``frame_idx`` lists the tracked frames).
        object_scores: float32 [T] object-visibility logits (NaN where untracked).
        ious: float32 [T] predicted IoU of the selected mask (NaN where untracked).
        prompt_frames: frames that carried a prompt.
        updated: ``(first, last)`` 0-based frames (inclusive) the last call changed; None: all.
    """

    obj_id: int
    frame_size_hw: tuple[int, int]
    low_res_logits: torch.Tensor
    object_scores: torch.Tensor
    ious: torch.Tensor
    prompt_frames: list[int] = field(default_factory=list)
    updated: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return int(self.low_res_logits.shape[0])

    @property
    def frame_idx(self) -> list[int]:
        """0-based frames that were tracked (every frame after a full propagation)."""
        return torch.nonzero(~torch.isnan(self.object_scores)).flatten().tolist()

    def mask(self, frame_idx: int) -> np.ndarray:
        """bool [H, W]: the logits of ``frame_idx`` resized to the original size, thresholded at 0."""
        logits = F.interpolate(self.low_res_logits[frame_idx][None, None], size=self.frame_size_hw,
                               mode="bilinear", align_corners=False)
        return (logits[0, 0] > 0).numpy()

    def visible_masks(self, frames: tuple[int, int] | None = None, chunk: int = 8) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_idx, bool [H, W])`` for tracked frames where the object is visible and
        has pixels, within ``frames`` (first, last inclusive; None: all), resizing ``chunk``
        frames at a time (a 1080p float chunk of 8 is ~66 MB)."""
        wanted = [f for f in self.frame_idx if self.visible(f) and (frames is None or frames[0] <= f <= frames[1])]
        for start in range(0, len(wanted), chunk):
            batch = wanted[start:start + chunk]
            logits = self.low_res_logits[batch][:, None].float()
            masks = F.interpolate(logits, size=self.frame_size_hw, mode="bilinear", align_corners=False)[:, 0] > 0
            for frame_idx, mask in zip(batch, masks.numpy()):
                if mask.any():
                    yield frame_idx, mask

    def masks(self) -> np.ndarray:
        """bool [T, H, W] for every frame (mind the memory on long videos; prefer :meth:`mask`)."""
        return np.stack([self.mask(i) for i in range(self.num_frames)])

    def visible(self, frame_idx: int) -> bool:
        return bool(self.object_scores[frame_idx] > 0)

    def score(self, frame_idx: int | None = None) -> float:
        """Confidence in [0, 1]: predicted IoU where the object is visible, averaged over
        frames when ``frame_idx`` is None (0 when it is never visible)."""
        if frame_idx is not None:
            return float(self.ious[frame_idx]) if self.visible(frame_idx) else 0.0
        visible = self.object_scores > 0
        return float(self.ious[visible].mean()) if bool(visible.any()) else 0.0


@dataclass
class SegmentationResult:
    """What a session call returns: the model's text and one track per produced mask."""

    text: str
    tracks: list[MaskTrack] = field(default_factory=list)
