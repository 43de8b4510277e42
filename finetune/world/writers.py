"""Write synthetic clips as the media Label Studio, the backend and the DAVIS tools read.

* :func:`write_mp4`: H.264 (``libx264``, ``yuv420p``) so Chromium and Label Studio play it;
* :func:`write_frame_folder` / :func:`write_image`: PNG frames (a ``video_masks.xml`` frame list) and stills;
* :func:`write_davis`: ``JPEGImages/480p/<name>/00000.jpg`` + ``Annotations/480p/<name>/00000.png``
  (indexed PNG, pixel value = object number, DAVIS palette), the layout of the official DAVIS tools.

Ground truth stays exact in PNGs; an mp4 is lossy, so compare masks against :attr:`Clip.masks`, never
against pixels decoded back from a video.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from backend.converters.frame_files import frame_file_name
from finetune.export import ExportItem, ObjectMasks, write_davis_pngs
from finetune.world.scene import Clip


def write_mp4(frames: np.ndarray | Iterable[np.ndarray], path: str | Path, fps: float, codec: str = "libx264") -> Path:
    """Encode uint8 [T, H, W, 3] RGB frames (even H and W) as H.264 at ``fps``; returns the path.

    ``frames`` may also be an iterable of uint8 [H, W, 3] frames: they are encoded as they come, so a long
    clip never has to be in memory at once.

    ``codec="mpeg4"`` writes MPEG-4 Part 2 instead (OpenCV's ``mp4v``): what cameras and scripts
    often produce, for tests of decoding a second codec."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}; an mp4 needs at least one")
    height, width = first.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even sides, got {width}x{height}")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=_fps_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "veryfast", "g": "1"}  # near-lossless, every frame a keyframe
        for frame in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _fps_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def write_frame_folder(frames: np.ndarray, folder: str | Path, suffix: str = ".png") -> list[Path]:
    """Frames as ``00001.png``, ``00002.png``, ... (1-based, like ``python -m backend frames``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_image(frame, folder / frame_file_name(n, suffix)) for n, frame in enumerate(frames)]


def write_image(frame: np.ndarray, path: str | Path) -> Path:
    """One uint8 [H, W, 3] RGB frame as PNG (lossless, fast compression) or JPEG (quality 95), by ``path``'s suffix.

    Raises:
        ValueError: a suffix other than .png, .jpg or .jpeg.
    """
    path = Path(path)
    options = {".png": {"format": "PNG", "compress_level": 1}, ".jpg": {"format": "JPEG", "quality": 95},
               ".jpeg": {"format": "JPEG", "quality": 95}}.get(path.suffix.lower())
    if options is None:
        raise ValueError(f"{path}: frames are written as .png or .jpg, not {path.suffix or 'a name without a suffix'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a process killed mid-write (the toy's background renderer) leaves no half a PNG
    # that the render cache would take for a finished frame.
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    Image.fromarray(np.ascontiguousarray(frame)).save(part, **options)
    os.replace(part, path)
    return path


def write_davis(clips: dict[str, Clip], root: str | Path) -> Path:
    """The DAVIS 2017 layout under ``root``: frames as JPEG and ground truth as indexed PNGs.

    Object numbers are 1-based in ``clip.objects`` order; where objects overlap the visible masks
    never do (occluded pixels belong to the front object), so the PNGs are exact.
    """
    root = Path(root)
    items = []
    for name, clip in clips.items():
        stems = [f"{t:05d}" for t in range(clip.num_frames)]
        for stem, frame in zip(stems, clip.frames):
            write_image(frame, root / "JPEGImages" / "480p" / name / f"{stem}.jpg")
        objects = {n + 1: ObjectMasks(info.category, {t: clip.masks[n, t] for t in range(clip.num_frames)})
                   for n, info in enumerate(clip.objects)}
        items.append(ExportItem(task_id=clip.seed, name=name, frame_names=stems, size_hw=clip.size_hw,
                                objects=objects))
    write_davis_pngs(items, root / "Annotations" / "480p")
    return root
