"""A task's media -> an opened :class:`TaskSession` (fetch, limits, decode once)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from backend.converters.prompts import MediaShape
from backend.errors import BadRequest, MediaError
from backend.label_config import LabelSpec
from backend.media import MediaFetcher
from backend.sessions import TaskSession
from backend.settings import Settings
from unipixel_model.errors import MediaDecodeError
from unipixel_model.media import IMAGE_SUFFIXES
from unipixel_model.session import InferenceSession


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
    if spec.mode == "frames" and not isinstance(value, list):
        raise BadRequest(f"task {task.get('id')}: ${spec.obj.value_key} must be a list of image URLs for valueList")
    return value


def media_key(value) -> str:
    """A short hash of the task's media value (URL or URL list): a new value means new media."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def open_task_session(settings: Settings, fetcher: MediaFetcher, model, tokenizer, task: dict,
                      spec: LabelSpec) -> TaskSession:
    """Fetch and decode the task's media once, check the limits, start a session."""
    task_id, value = task_id_of(task), media_value(task, spec)
    paths = fetcher.fetch_many(value, task_id) if spec.mode == "frames" else [fetcher.fetch(value, task_id)]
    check_resolution(paths[0], settings.max_pixels, task_id)  # before decoding a whole oversized video
    source = frame_dir(paths) if spec.mode == "frames" else paths[0]
    try:
        session = InferenceSession.open(model, tokenizer, source, feature_cache_bytes=settings.feature_cache_bytes,
                                        max_frames=settings.max_frames)
    except MediaDecodeError as err:
        raise MediaError(f"task {task_id}: {err}") from None
    finally:
        if spec.mode == "frames":  # decoded into the session's own store: the links are no longer needed
            shutil.rmtree(source, ignore_errors=True)
    height, width = session.frames.size_hw
    check_pixels(width, height, settings.max_pixels, task_id)
    fps = session.frames.fps if spec.mode == "video" else 0.0
    ls_fps = spec.framerate(task["data"]) if spec.mode == "video" else None
    shape = MediaShape(session.frames.num_frames, height, width, fps, ls_fps)
    return TaskSession(task_id, media_key(value), session, shape)


def check_pixels(width: int, height: int, max_pixels: int, task_id: int) -> None:
    """Refuse frames larger than ``max_pixels`` (width_px × height_px) with a :class:`MediaError`."""
    if width * height > max_pixels:
        raise MediaError(f"task {task_id}: frames are {width}x{height} = {width * height} pixels; the limit is "
                         f"{max_pixels} (UNIPIXEL_MAX_PIXELS)")


def check_resolution(path: Path, max_pixels: int, task_id: int) -> None:
    """Refuse oversized media from its header (cheap), before anything is decoded."""
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with Image.open(path) as image:
                width, height = image.size
        else:
            import cv2

            capture = cv2.VideoCapture(str(path))
            width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            capture.release()
    except (OSError, ValueError):
        return  # undecodable: load_frames reports it with the file name
    check_pixels(width, height, max_pixels, task_id)


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
