"""A project's masks (latest accepted annotation per task) -> COCO RLE JSON and DAVIS PNGs."""

from __future__ import annotations

import logging
from pathlib import Path

from backend.errors import PromptError
from backend.converters.frame_files import frame_file_stem
from backend.label_config import parse_label_config
from backend.ls_client import LabelStudioClient
from backend.media import MediaFetcher
from finetune.convert import task_objects
from finetune.export import ExportItem, ObjectMasks, write_coco_rle, write_davis_pngs
from finetune.gather import gather
from finetune.settings import FinetuneSettings

logger = logging.getLogger(__name__)


def export_project(settings: FinetuneSettings, project_id: int, out_dir: str | Path, fmt: str = "both") -> list[Path]:
    """Write ``<out>/project-<id>.coco.json`` and/or ``<out>/davis/<task>/<frame>.png``; returns the paths."""
    from finetune.jobs import _labeled_task

    gathered = gather(settings.data_dir, settings.label_studio_url, settings.label_studio_api_key, project_id)
    spec = parse_label_config(gathered.label_config)
    client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key) \
        if settings.label_studio_url else None
    fetcher = MediaFetcher(settings.media_policy(settings.data_dir / "media"), client)
    items = []
    for annotation in gathered.annotations:
        task = _labeled_task(annotation, spec, fetcher, settings.frame_max_side)
        try:
            objects, _ = task_objects(task, spec)
        except PromptError as err:  # the other tasks are still exported
            logger.warning("export of project %d: task %d is left out: %s", project_id, task.task_id, err)
            continue
        masks = {n: ObjectMasks(obj.label or "object", obj.masks)
                 for n, obj in enumerate((o for o in objects.values() if o.masks), start=1)}
        names = [frame_file_stem(i) for i in range(task.shape.num_frames)]
        items.append(ExportItem(task.task_id, f"task-{task.task_id}", names,
                                (task.shape.height_px, task.shape.width_px), masks))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if fmt in ("coco", "both"):
        written.append(write_coco_rle(items, out / f"project-{project_id}.coco.json"))
    if fmt in ("davis", "both"):
        written.append(write_davis_pngs(items, out / "davis"))
    return written
