"""A Label Studio task's data: its id, the media value the config points at, and a frame folder.

Server-free (no Flask, no session): the interactive server and the fine-tune worker share it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from backend.errors import BadRequest
from backend.label_config import LabelSpec


def task_id_of(task: dict) -> int:
    """The LS task id; :class:`BadRequest` when the task is not ``{"id": int, "data": {...}}``."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise BadRequest("each task must be an object with a 'data' object")
    try:
        return int(task.get("id"))
    except (TypeError, ValueError):
        raise BadRequest(f"task has no integer 'id' (got {task.get('id')!r})") from None


def media_value(task: dict, spec: LabelSpec):
    """The task data the config's object tag points at (a URL, or a list of URLs for frames)."""
    value = task["data"].get(spec.obj.value_key)
    if value is None:
        raise BadRequest(f"task {task.get('id')} has no data key {spec.obj.value_key!r} "
                         f"(the config's <{spec.obj.tag} name=\"{spec.obj.name}\"> reads ${spec.obj.value_key})")
    if spec.strategy.frame_list and not isinstance(value, list):
        raise BadRequest(f"task {task.get('id')}: ${spec.obj.value_key} must be a list of image URLs for valueList")
    return value


def media_key(value) -> str:
    """A short hash of the task's media value (URL or URL list): a new value means new media."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def frame_dir(paths: list[Path], folder: Path | None = None) -> Path:
    """A folder of numbered links to the frame files, in task order (what load_frames reads);
    a new temporary folder unless ``folder`` is given."""
    folder = Path(tempfile.mkdtemp(prefix="unipixel-task-frames-")) if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    for n, path in enumerate(paths, start=1):
        link = folder / f"{n:06d}{path.suffix.lower() or '.jpg'}"
        if not link.is_symlink():
            link.symlink_to(path.resolve())
    return folder
