"""A task's media -> an opened :class:`TaskSession` (fetch, limits, decode once)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from backend.converters.annotation import MediaShape
from backend.errors import MediaError
from backend.label_config import LabelSpec
from backend.media import MediaFetcher
from backend.sessions import TaskSession
from backend.settings import Settings
from backend.task_data import media_key, media_value, task_id_of
from unipixel_model.errors import MediaDecodeError
from unipixel_model.media import IMAGE_SUFFIXES
from unipixel_model.session import InferenceSession


def open_task_session(settings: Settings, fetcher: MediaFetcher, model, tokenizer, task: dict,
                      spec: LabelSpec) -> TaskSession:
    """Fetch and decode the task's media once, check the limits, start a session.

    Raises:
        MediaError: the media cannot be fetched, decoded or served; its ``field`` names the task data key.
    """
    try:
        return _open(settings, fetcher, model, tokenizer, task, spec)
    except MediaError as err:
        err.field = err.field or f"data.{spec.obj.value_key}"
        raise


def _open(settings: Settings, fetcher: MediaFetcher, model, tokenizer, task: dict, spec: LabelSpec) -> TaskSession:
    task_id, value, mode = task_id_of(task), media_value(task, spec), spec.strategy
    source = mode.fetch(fetcher, value, task_id)
    first = min(source.iterdir()) if source.is_dir() else source
    check_resolution(first, settings.max_pixels, task_id)  # before decoding a whole oversized video
    try:
        session = InferenceSession.open(model, tokenizer, source, feature_cache_bytes=settings.feature_cache_bytes,
                                        max_frames=settings.max_frames, max_side=settings.frame_max_side)
    except MediaDecodeError as err:
        raise MediaError(f"task {task_id}: {err}") from None
    finally:
        mode.release(source)  # decoded into the session's own store: links are no longer needed
    height, width = session.frames.size_hw
    check_pixels(width, height, settings.max_pixels, task_id)
    ls_fps = spec.framerate(task["data"]) if mode.timed else 0.0
    shape = MediaShape(session.frames.num_frames, height, width, *mode.timing(session.frames.fps, ls_fps))
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
