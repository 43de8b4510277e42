"""Small real media for backend tests: a PNG, numbered JPEG frames and an H.264 mp4 of a moving square (written
by :mod:`finetune.world.writers`, the one writer of synthetic media)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune.world import writers

WIDTH, HEIGHT = 64, 48


def square_frame(i: int) -> np.ndarray:
    """uint8 [48, 64, 3]: a bright 20×20 square moving 3 px right per frame on a dark background."""
    frame = np.full((HEIGHT, WIDTH, 3), 20, np.uint8)
    frame[12:32, 6 + 3 * i:26 + 3 * i] = (230, 200, 40)
    return frame


def write_image(path: Path) -> Path:
    return writers.write_image(square_frame(3), path)


def write_frames(folder: Path, count: int = 8) -> list[Path]:
    return writers.write_frame_folder(np.stack([square_frame(i) for i in range(count)]), folder, ".jpg")


def write_video(path: Path, count: int = 12, fps: int = 10) -> Path:
    """An H.264 mp4 (what browsers play) with ``count`` frames at ``fps``."""
    return writers.write_mp4(np.stack([square_frame(i % 14) for i in range(count)]), path, fps)


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
    record.replace(items)
    return items
