"""Label Studio's video timeline (1-based ``ls_frame`` at the config's framerate) vs decoded frames.

LS numbers video frames with the labeling config's ``framerate``, not the file's: frame ``n``
starts at ``(n - 1) / ls_fps`` seconds. When the two rates agree the mapping is ``n - 1``; when they
differ we go through time so a prompt lands on the frame the annotator saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from backend.converters.geometry import frame_idx_to_time_s, ls_frame_to_frame_idx, time_s_to_frame_idx


@dataclass(frozen=True)
class Timeline:
    """A decoded video (``num_frames`` at ``media_fps``) seen through LS's ``ls_fps``."""

    num_frames: int
    media_fps: float
    ls_fps: float

    @property
    def same_rate(self) -> bool:
        """LS and the file agree on fps: ``ls_frame`` n is ``frame_idx`` n - 1."""
        return abs(self.media_fps - self.ls_fps) < 1e-3 or self.media_fps <= 0

    @property
    def ls_frames_count(self) -> int:
        """How many frames LS shows for this video (its ``framesCount``)."""
        if self.same_rate:
            return self.num_frames
        return max(1, math.floor(self.duration_s * self.ls_fps + 1e-6))

    @property
    def duration_s(self) -> float:
        """Length of the decoded video in seconds."""
        rate = self.media_fps if self.media_fps > 0 else self.ls_fps
        return self.num_frames / rate

    def to_frame_idx(self, ls_frame: int) -> int:
        """1-based LS frame -> 0-based decoded frame."""
        index = ls_frame_to_frame_idx(ls_frame)
        if self.same_rate:
            return index
        return time_s_to_frame_idx(index / self.ls_fps, self.media_fps, self.num_frames)

    def ls_time_s(self, ls_frame: int) -> float:
        """Start time in seconds of LS frame ``ls_frame`` (the ``time`` of a keyframe)."""
        return frame_idx_to_time_s(ls_frame_to_frame_idx(ls_frame), self.ls_fps)
