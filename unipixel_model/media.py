"""Decode an image, a video file, a folder of frames or an array once, into a disk-backed store.

Frames are decoded a single time into a temporary file, so a session can read any frame again
without re-decoding while its resident memory stays flat in video length: frames are read back
with ``os.pread`` into fresh arrays, never through a mapping, so the page cache (which the kernel
may drop) holds the pixels and the process holds only the frames it is using. (Reading through
a ``numpy.memmap`` maps every page touched into the process: 0.22 MiB of resident memory per
320x240 frame that stays until the session closes.)

With ``max_side``, frames of files whose longer side is larger are stored with that side (10 minutes of
1080p at 30 fps take 112 GB at their own size, 32 GB at 1024 px); ``Frames.size_hw`` stays the media's
own size, the one prompts and masks are in, and every reader resizes the stored frames anyway (SAM 2 to
its square input, the LLM to its pixel budget).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from unipixel_model.errors import MediaDecodeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEFAULT_FPS = 25.0
# Left free under TMPDIR after decoding: the disk may hold Label Studio's database, Redis and the logs too.
DISK_RESERVE_BYTES = 1 << 30


@dataclass
class Frames:
    """Decoded RGB frames of one medium.

    Attributes:
        pixels: uint8 [T, H, W, 3] (a read-only memmap for files, the array itself otherwise);
            read frames with :meth:`take`, which does not map the file into memory.
        fps: frames per second (``DEFAULT_FPS`` when unknown; 0 for a still image).
        is_image: True for a single still image.
        original_hw: the media's own (H, W) when the frames were stored smaller (``max_side``), else None.
    """

    pixels: np.ndarray
    fps: float
    is_image: bool
    _tmp: object | None = field(default=None, repr=False)  # the open temporary file behind ``pixels``
    original_hw: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def size_hw(self) -> tuple[int, int]:
        """The media's own (H, W) in pixels: the size of prompts and masks, whatever the stored size."""
        return self.original_hw or self.stored_hw

    @property
    def stored_hw(self) -> tuple[int, int]:
        """(H, W) of the frames :meth:`take` returns (smaller than ``size_hw`` when stored downscaled)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])

    def take(self, indices: list[int]) -> np.ndarray:
        """uint8 [len(indices), *stored_hw, 3] copies of the given frames."""
        if self._tmp is None:
            return np.ascontiguousarray(self.pixels[indices])
        shape = self.pixels.shape[1:]
        frame_bytes = int(np.prod(shape))
        out = np.empty((len(indices), *shape), dtype=np.uint8)
        fd = self._tmp.fileno()
        for row, index in enumerate(indices):
            index = range(self.num_frames)[index]  # negative indices and bounds, as numpy would
            view = memoryview(out[row].reshape(-1))
            if os.preadv(fd, [view], index * frame_bytes) != frame_bytes:
                raise MediaDecodeError(f"frame {index} of the decoded video could not be read back")
        return out

    def subset(self, indices: list[int]) -> "Frames":
        """The frames at ``indices`` (0-based frame_idx) as frames of their own in memory, ``size_hw`` kept; one frame
        is a still, as a single decoded image is."""
        pixels = self.take(indices)
        still = len(indices) == 1
        return Frames(pixels, 0.0 if still else self.fps, still, original_hw=self.original_hw)


def load_frames(source: "str | Path | np.ndarray | Frames", max_frames: int | None = None,
                max_side: int | None = None) -> Frames:
    """Decode ``source`` once.

    Args:
        source: an image file, a video file, a directory of frame images (sorted numerically),
            or a uint8 array [H, W, 3] (image) / [T, H, W, 3] (video), or frames already decoded (returned as
            they are).
        max_frames: refuse longer videos (a clear error instead of filling the disk).
        max_side: store frames of files whose longer side is larger with this longer side, in pixels
            (``size_hw`` stays the original); None or 0 keep every frame as it is. Arrays are kept as given.
    Raises:
        MediaDecodeError: when nothing decodable is found, naming the file.
        ValueError: a negative ``max_side``.
    """
    if max_side is not None and max_side < 0:
        raise ValueError(f"max_side must be None, 0 (keep the size) or > 0 pixels, got {max_side}")
    if isinstance(source, Frames):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    path = Path(source)
    if not path.exists():
        raise MediaDecodeError(f"media not found: {path}")
    if path.is_dir():
        return _from_directory(path, max_frames, max_side)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = _read_image(path)
        stored = _shrink(image, working_hw(image.shape[:2], max_side))
        return Frames(stored[None], 0.0, True, original_hw=_original_if_shrunk(image.shape, stored.shape))
    return _from_video(path, max_frames, max_side)


def working_hw(size_hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(H, W) in pixels that frames of ``size_hw`` are stored at: their own, or scaled so the longer side is
    ``max_side`` (aspect ratio kept, each side rounded, at least 1)."""
    height, width = int(size_hw[0]), int(size_hw[1])
    if not max_side or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shrink(frame: np.ndarray, stored_hw: tuple[int, int]) -> np.ndarray:
    """``frame`` [H, W, 3] resized to ``stored_hw`` by pixel area (no aliasing), or itself when it already is."""
    if frame.shape[:2] == stored_hw:
        return frame
    import cv2

    return cv2.resize(frame, (stored_hw[1], stored_hw[0]), interpolation=cv2.INTER_AREA)


def _original_if_shrunk(original: tuple[int, ...], stored: tuple[int, ...]) -> tuple[int, int] | None:
    return None if tuple(original[:2]) == tuple(stored[:2]) else (int(original[0]), int(original[1]))


def _from_array(array: np.ndarray) -> Frames:
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise MediaDecodeError(f"frames must be uint8 [H, W, 3] or [T, H, W, 3], got {array.dtype} {array.shape}")
    if array.ndim == 3:
        return Frames(array[None], 0.0, True)
    if array.shape[0] == 0:
        raise MediaDecodeError("the frame array is empty")
    return Frames(array, DEFAULT_FPS, False)


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise MediaDecodeError(f"cannot decode image {path}: {exc}") from exc


def frame_folder_files(path: str | Path) -> list[Path]:
    """The frame images of a folder, sorted numerically (``2.png`` before ``10.png``).

    Raises:
        MediaDecodeError: the folder holds no frame image.
    """
    path = Path(path)
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])
    if not files:
        raise MediaDecodeError(f"no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    return files


def read_frame_files(files: list[Path], max_side: int | None = None) -> Frames:
    """Decode just these frame images (of one folder, from :func:`frame_folder_files`), in memory.

    A training sample uses 1-8 frames of a folder; decoding only those costs a third of a toy training step less
    than decoding the whole folder (``load_frames``) for a description of a 16-frame clip.

    Raises:
        MediaDecodeError: a file cannot be decoded, or is not the size of the first.
    """
    first = _read_image(files[0])
    stored_hw = working_hw(first.shape[:2], max_side)
    pixels = np.empty((len(files), *stored_hw, 3), np.uint8)
    for i, frame in enumerate(_stored_frames(files, first, stored_hw)):
        pixels[i] = frame  # straight into the array: no list of frames copied again by np.stack
    return Frames(pixels, DEFAULT_FPS, False, original_hw=_original_if_shrunk(first.shape, stored_hw))


def _stored_frames(files: list[Path], first: np.ndarray, stored_hw: tuple[int, int]) -> Iterator[np.ndarray]:
    """Each file decoded (``first`` is the first, already decoded) and shrunk to ``stored_hw``; a frame of another
    size than the first is refused, naming it."""
    for i, file in enumerate(files):
        frame = first if i == 0 else _read_image(file)
        if frame.shape != first.shape:
            raise MediaDecodeError(f"{file.name} is {frame.shape[:2]}, the first frame is {first.shape[:2]}")
        yield np.ascontiguousarray(_shrink(frame, stored_hw))


def _from_directory(path: Path, max_frames: int | None, max_side: int | None) -> Frames:
    files = frame_folder_files(path)
    if max_frames is not None and len(files) > max_frames:
        raise MediaDecodeError(f"{path} has {len(files)} frames; the limit is {max_frames}")
    first = _read_image(files[0])
    stored_hw = working_hw(first.shape[:2], max_side)
    _check_room(len(files), (*stored_hw, 3), path)
    tmp = _frames_file()
    with _disk_full_is_clear(path):
        for frame in _stored_frames(files, first, stored_hw):
            tmp.write(frame.tobytes())  # streamed to disk: flat RAM
    return _stored(tmp, len(files), (*stored_hw, 3), DEFAULT_FPS, _original_if_shrunk(first.shape, stored_hw))


def _from_video(path: Path, max_frames: int | None, max_side: int | None) -> Frames:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise MediaDecodeError(f"cannot open video {path}: not a video file OpenCV can decode")
    fps = capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
    expected = max(1, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # the container's count: an estimate
    expected = min(expected, max_frames or expected)  # no more are ever written
    tmp = _frames_file()
    count, shape, original = 0, None, None
    with _disk_full_is_clear(path):
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                count += 1
                if max_frames is not None and count > max_frames:
                    raise MediaDecodeError(f"{path} has more than {max_frames} frames; the limit is {max_frames}")
                original = original or bgr.shape
                shape = shape or (*working_hw(original[:2], max_side), 3)
                if count == 1 or count > expected and count % _RECHECK_FRAMES == 0:
                    _check_room(expected if count == 1 else _RECHECK_FRAMES, shape, path)
                rgb = cv2.cvtColor(_shrink(bgr, shape[:2]), cv2.COLOR_BGR2RGB)
                tmp.write(rgb.tobytes())  # streamed to disk: flat RAM
        finally:
            capture.release()
    if count == 0:
        raise MediaDecodeError(f"cannot decode any frame of {path}; is it a supported video (H.264, VP8, ...)?")
    return _stored(tmp, count, shape, float(fps), _original_if_shrunk(original, shape))


_RECHECK_FRAMES = 64  # past the container's frame count, room for this many more frames is checked again


def _check_room(count: int, shape: tuple[int, ...], source: Path) -> None:
    """Refuse to decode ``count`` frames of ``shape`` (H, W, 3) when they would leave less than
    :data:`DISK_RESERVE_BYTES` free under TMPDIR.

    Raises:
        MediaDecodeError: with the bytes needed and free, and what to do.
    """
    needed = count * int(np.prod(shape))
    directory = tempfile.gettempdir()
    free = shutil.disk_usage(directory).free
    if needed > free - DISK_RESERVE_BYTES:
        raise MediaDecodeError(
            f"decoding {source} needs {needed} bytes ({needed / 2 ** 30:.1f} GiB: {count} frames of "
            f"{shape[1]}x{shape[0]} RGB) under TMPDIR ({directory}), which has {free / 2 ** 30:.1f} GiB free and keeps "
            f"{DISK_RESERVE_BYTES / 2 ** 30:.0f} GiB in reserve; point TMPDIR at a larger disk, or shorten or "
            "downscale the video")


@contextlib.contextmanager
def _disk_full_is_clear(source: Path) -> Iterator[None]:
    """Turn a disk that fills up while the frames are written (another process took the room) into a clear error."""
    try:
        yield
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        raise MediaDecodeError(f"the disk under TMPDIR ({tempfile.gettempdir()}) filled up while decoding {source}; "
                               "free space or point TMPDIR at a larger disk") from err


def _frames_file():
    """A temporary file without a name for decoded frames: the kernel frees it when the process ends, however it
    ends (a named one outlived every backend killed with SIGKILL: the OOM killer, ``docker kill``)."""
    return tempfile.TemporaryFile(prefix="unipixel-frames-", suffix=".u8")


def _stored(tmp, count: int, shape: tuple[int, ...], fps: float, original_hw: tuple[int, int] | None) -> Frames:
    """Frames of the ``count`` frames of ``shape`` written to ``tmp`` (``pixels``: a memmap that
    :meth:`Frames.take` never reads through; ``original_hw``: the media's size when stored smaller)."""
    tmp.flush()
    store = np.memmap(tmp, dtype=np.uint8, mode="r", shape=(count, *shape))
    return Frames(store, fps, False, tmp, original_hw)
