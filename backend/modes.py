"""One small strategy per config mode (``video``, ``frames``, ``image``): how a task's media is
fetched into something ``load_frames`` decodes, and how its frames are timed. Chosen once, from the
parsed config (:attr:`backend.label_config.LabelSpec.strategy`); callers never compare mode strings.

Server-free: the interactive server and the fine-tune worker share it. Rendering per mode lives with
the renderer (``backend/render.py``, keyed by :attr:`MediaMode.name`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from backend.task_data import frame_dir, media_key


@dataclass(frozen=True)
class MediaMode:
    """A single media file (``<Video>`` or one ``<Image>``)."""

    name: str
    timed: bool = False       # frames carry a frame rate (video): LS numbers them with the config's framerate
    frame_list: bool = False  # the task lists one image per frame (``<Image valueList>``)

    def fetch(self, fetcher, value, task_id: int, folder: Path | None = None) -> Path:
        """Download the task's media (cached) and return what ``load_frames`` decodes."""
        return fetcher.fetch(value, task_id)

    def first_file(self, fetcher, value, task_id: int) -> Path:
        return self.fetch(fetcher, value, task_id)

    def release(self, source: Path) -> None:
        """Free what :meth:`fetch` made once the frames are decoded (nothing for a file)."""

    def timing(self, decoded_fps: float, ls_fps: float) -> tuple[float, float | None]:
        """(fps of the decoded frames, LS's framerate) for :class:`MediaShape`."""
        return (decoded_fps, ls_fps) if self.timed else (0.0, None)


@dataclass(frozen=True)
class FrameListMode(MediaMode):
    """``<Image valueList="$frames">``: one downloaded image per frame, linked into a numbered folder."""

    def fetch(self, fetcher, value, task_id: int, folder: Path | None = None) -> Path:
        return frame_dir(fetcher.fetch_many(value, task_id), folder)

    def stable_folder(self, fetcher, value) -> Path:
        """A folder in the media cache that the same frame list always maps to (training samples refer to it)."""
        return fetcher.cache_dir / f"frames-{media_key(value)}"

    def release(self, source: Path) -> None:
        shutil.rmtree(source, ignore_errors=True)


MODES = {"video": MediaMode("video", timed=True), "frames": FrameListMode("frames", frame_list=True),
         "image": MediaMode("image")}
