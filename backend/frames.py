"""Split videos into JPEG frames and write a Label Studio import file for multi-image tasks.

Open-source Label Studio cannot show per-frame masks on ``<Video>``; the usual way around it is
``<Image valueList="$frames">`` + ``<BrushLabels>`` over a list of frame images (one task per
video, every region carrying ``item_index``). This module makes that list::

    python -m backend frames clip.mp4 other.mp4 --out /data/frames [--every 2] [--max-frames 300]

writes ``/data/frames/clip/00001.jpg, 00002.jpg, ...`` (1-based names, matching LS frame
numbers) and ``/data/frames/tasks.json``::

    [{"data": {"frames": ["/data/local-files/?d=frames/clip/00001.jpg", ...],
               "video_name": "clip.mp4", "fps": 12.5}}, ...]

URLs are paths relative to the parent of ``--out``. The default prefix ``/data/local-files/?d=``
needs Label Studio started with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<parent of --out>`` plus a Local Storage whose path is
``--out``; with ``--url-prefix http://host:8081`` serve the parent of ``--out`` at that address.
Frames are decoded with OpenCV, the decoder ``unipixel_model.media`` uses, so ``frame_idx`` means
the same frame on both sides.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from backend.converters.frame_files import frame_file_name

LOCAL_FILES_PREFIX = "/data/local-files/?d="
DEFAULT_FPS = 25.0  # as unipixel_model.media: used when the container does not state a frame rate
JPEG_QUALITY = 95


class FramesError(ValueError):
    """A video is missing or cannot be decoded, or the arguments conflict; the message says which."""


@dataclass(frozen=True)
class ExtractedVideo:
    """Frames written for one video.

    Attributes:
        video_path: the source video.
        frame_paths: the JPEGs written, in order; ``frame_paths[i]`` is LS frame ``i + 1``.
        fps: frame rate of the written sequence (source fps / ``every``).
        source_fps: frame rate stated by the video (``DEFAULT_FPS`` when it states none).
    """

    video_path: Path
    frame_paths: list[Path]
    fps: float
    source_fps: float


def extract_frames(video_path: Path, out_dir: Path, every: int = 1, max_frames: int | None = None) -> ExtractedVideo:
    """Decode ``video_path`` and write every ``every``-th frame as ``out_dir/00001.jpg, ...``.

    Numbered JPEGs left in ``out_dir`` by an earlier, longer run are removed so the folder
    matches the task.

    Args:
        video_path: a video file OpenCV can decode (H.264, VP8, MPEG-4, ...).
        out_dir: folder for this video's frames (created).
        every: keep source frames 0, every, 2*every, ... (>= 1).
        max_frames: stop after writing this many frames (>= 1), or None for all.

    Returns:
        The written frames and the frame rate of the sequence.

    Raises:
        FramesError: for a missing file, a file with no decodable frame, or a failed JPEG write.
    """
    import cv2

    if every < 1 or (max_frames is not None and max_frames < 1):
        raise FramesError(f"every and max_frames must be >= 1, got every={every}, max_frames={max_frames}")
    if not video_path.is_file():
        raise FramesError(f"video not found: {video_path}")
    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise FramesError(f"cannot open {video_path}: not a video OpenCV can decode")
    source_fps = capture.get(cv2.CAP_PROP_FPS)
    source_fps = float(source_fps) if source_fps and math.isfinite(source_fps) and source_fps > 0 else DEFAULT_FPS
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        frame_paths = _write_frames(capture, out_dir, every, max_frames)
    finally:
        capture.release()
    if not frame_paths:
        raise FramesError(f"no frame of {video_path} could be decoded; is it a supported video (H.264, VP8, ...)?")
    _remove_stale_frames(out_dir, len(frame_paths))
    return ExtractedVideo(video_path, frame_paths, source_fps / every, source_fps)


def _write_frames(capture, out_dir: Path, every: int, max_frames: int | None) -> list[Path]:
    """Read frames from an open ``cv2.VideoCapture``, writing every ``every``-th as JPEG."""
    import cv2

    frame_paths: list[Path] = []
    source_idx = 0
    while max_frames is None or len(frame_paths) < max_frames:
        if source_idx % every == 0:
            ok, bgr = capture.read()
        else:
            ok, bgr = capture.grab(), None  # grab() skips the colour conversion of unused frames
        if not ok:
            break
        if bgr is not None:
            path = out_dir / frame_file_name(len(frame_paths))
            if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise FramesError(f"could not write {path}; check that the folder is writable and has space")
            frame_paths.append(path)
        source_idx += 1
    return frame_paths


def _remove_stale_frames(out_dir: Path, count: int) -> None:
    """Delete ``NNNNN.jpg`` files numbered above ``count`` (left by an earlier run)."""
    for path in out_dir.glob("*.jpg"):
        if path.stem.isdigit() and int(path.stem) > count:
            path.unlink()


def frame_urls(frame_paths: list[Path], out_dir: Path, url_prefix: str | None = None) -> list[str]:
    """URLs Label Studio loads the frames from.

    Args:
        frame_paths: JPEGs under ``out_dir``.
        out_dir: the ``--out`` folder; paths in URLs are relative to its parent.
        url_prefix: None for Local Storage (``/data/local-files/?d=<path>``), otherwise a base URL
            that serves the parent of ``out_dir`` (``<prefix>/<path>``).

    Returns:
        One URL per frame, percent-encoded.
    """
    root = out_dir.resolve().parent
    relative = [quote(path.resolve().relative_to(root).as_posix(), safe="/") for path in frame_paths]
    if url_prefix is None:
        return [LOCAL_FILES_PREFIX + rel for rel in relative]
    return [url_prefix.rstrip("/") + "/" + rel for rel in relative]


def build_task(video: ExtractedVideo, urls: list[str], data_key: str = "frames") -> dict:
    """One Label Studio task: ``{"data": {data_key: urls, "video_name": ..., "fps": ...}}``."""
    return {"data": {data_key: urls, "video_name": video.video_path.name, "fps": video.fps}}


def write_frame_tasks(video_paths: list[Path], out_dir: Path, every: int = 1, max_frames: int | None = None,
                      url_prefix: str | None = None, data_key: str = "frames") -> Path:
    """Extract frames of every video into ``out_dir/<stem>/`` and write ``out_dir/tasks.json``.

    Args:
        video_paths: videos, one task each; their stems must differ.
        out_dir: output folder (created).
        every, max_frames: see :func:`extract_frames`.
        url_prefix, data_key: see :func:`frame_urls` and :func:`build_task`.

    Returns:
        The path of ``tasks.json``.

    Raises:
        FramesError: for a missing video (checked before any decoding), two videos with the same
            stem, or a video that does not decode.
    """
    missing = [str(path) for path in video_paths if not path.is_file()]
    if missing:
        raise FramesError(f"video not found: {', '.join(missing)}")
    stems = [path.stem for path in video_paths]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise FramesError(f"videos share the name stem {duplicates}; their frame folders would collide, "
                          "rename them or run once per video with a different --out")
    tasks = []
    for path in video_paths:
        video = extract_frames(path, out_dir / path.stem, every, max_frames)
        tasks.append(build_task(video, frame_urls(video.frame_paths, out_dir, url_prefix), data_key))
    tasks_path = out_dir / "tasks.json"
    tasks_path.write_text(json.dumps(tasks, indent=2) + "\n")
    return tasks_path


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def add_frames_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``frames`` sub-command on ``subparsers`` (from ``parser.add_subparsers()``)."""
    parser = subparsers.add_parser(
        "frames", help="split videos into JPEG frames + a Label Studio tasks.json for <Image valueList>",
        description="Split videos into JPEG frames DIR/<stem>/00001.jpg ... and write DIR/tasks.json, one "
                    "Label Studio task per video for <Image valueList=\"$frames\"> + <BrushLabels>.")
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files, one task each")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output folder: DIR/<video stem>/00001.jpg ... and DIR/tasks.json")
    parser.add_argument("--every", type=_positive_int, default=1, metavar="N", help="keep every N-th frame (1)")
    parser.add_argument("--max-frames", type=_positive_int, default=None, metavar="M",
                        help="write at most M frames per video (all)")
    parser.add_argument("--url-prefix", default=None, metavar="URL",
                        help=f"base URL serving the parent of DIR (default: Local Storage, {LOCAL_FILES_PREFIX}"
                             "<path>, with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT = parent of DIR)")
    parser.add_argument("--data-key", default="frames", metavar="KEY",
                        help="task data key of the frame list, as in <Image valueList=\"$KEY\"> (frames)")
    parser.set_defaults(handler=run_frames)
    return parser


def run_frames(args: argparse.Namespace) -> int:
    """Run the ``frames`` sub-command; returns the exit code (0, or 2 with a message on stderr)."""
    try:
        tasks_path = write_frame_tasks(list(args.videos), args.out, args.every, args.max_frames,
                                       args.url_prefix, args.data_key)
    except FramesError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(args.videos)} task(s) to {tasks_path}")
    return 0
