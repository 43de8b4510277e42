"""Small real media for backend tests: a PNG, numbered JPEG frames and an H.264 mp4 of a moving square."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

WIDTH, HEIGHT = 64, 48


def square_frame(i: int) -> np.ndarray:
    """uint8 [48, 64, 3]: a bright 20×20 square moving 3 px right per frame on a dark background."""
    frame = np.full((HEIGHT, WIDTH, 3), 20, np.uint8)
    frame[12:32, 6 + 3 * i:26 + 3 * i] = (230, 200, 40)
    return frame


def write_image(path: Path) -> Path:
    Image.fromarray(square_frame(3)).save(path)
    return path


def write_frames(folder: Path, count: int = 8) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i + 1:05d}.jpg"
        Image.fromarray(square_frame(i)).save(path, quality=95)
        paths.append(path)
    return paths


def write_video(path: Path, count: int = 12, fps: int = 10) -> Path:
    """An H.264 mp4 (what browsers play) with ``count`` frames at ``fps``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(square_frame(i % 14), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
