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


def record_square_project(root: Path, project: int, tasks: int, label_config: str, first_task_id: int = 100):
    """Label ``tasks`` square images as an annotator would in ``referring_expressions.xml`` (a mask, its
    expression, a query) and keep them in the project's local record, as a gather would.

    Returns:
        The :class:`finetune.gather.GatheredAnnotation` items written (task ids from ``first_task_id``).
    """
    from backend.converters.rle import mask_to_ls_rle
    from finetune.gather import AnnotationRecord, GatheredAnnotation

    record = AnnotationRecord(root / "data", project)
    record.save_config(label_config)
    mask_rle = mask_to_ls_rle(square_frame(3)[..., 0] > 100)
    items = []
    for n in range(tasks):
        image = write_image(root / f"task{n}.png")
        result = [{"id": f"r{n}", "from_name": "mask", "to_name": "image", "type": "brushlabels",
                   "original_width": WIDTH, "original_height": HEIGHT,
                   "value": {"format": "rle", "rle": mask_rle, "brushlabels": ["Region"]}},
                  {"id": f"r{n}", "from_name": "description", "to_name": "image", "type": "textarea",
                   "value": {"text": ["the yellow square"]}},
                  {"from_name": "prompt", "to_name": "image", "type": "textarea", "value": {"text": ["yellow square"]}}]
        items.append(GatheredAnnotation(first_task_id + n, {"image": str(image)}, 500 + first_task_id + n, result,
                                        "2026-11-21T10:00:00Z"))
    record.append(items)
    return items
