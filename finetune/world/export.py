"""Write a set of synthetic clips in every format, with Label Studio tasks and annotations per config.

Layout under ``out`` (``<name>`` is ``clip<seed>``)::

    videos/<name>.mp4                       H.264 (the ``video_tracking.xml`` task media)
    frames/<name>/00001.png ...             frame lists (``video_masks.xml``)
    images/<name>.png                       first frames as stills (the image configs)
    davis/JPEGImages/480p/<name>/...        DAVIS layout with exact palette PNG ground truth
    davis/Annotations/480p/<name>/...
    ls/<config>.json                        per config: tasks with their annotation, ready to import
    truth/<name>.npz                        masks bool [O, T, H, W] + object names (exact ground truth)

Task media are referenced as ``<url_prefix>/<relative path>`` (default: absolute file paths, which the
backend reads under ``UNIPIXEL_LOCAL_ROOTS``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from backend.label_config import parse_label_config
from finetune.world import writers
from finetune.world.ls_annotations import CONFIGS, annotation_result, task_data
from finetune.world.scene import Clip, WorldConfig, make_clip

LABEL_CONFIG_DIR = Path(__file__).resolve().parents[2] / "label_config"
FORMATS = ("mp4", "frames", "images", "davis", "ls")


def write_world(out: Path, seeds: range, config: WorldConfig, formats: set[str],
                url_prefix: str | None = None) -> list[Path]:
    """Render ``seeds`` and write the requested ``formats``; returns the files and folders written.

    Raises:
        ValueError: naming an unknown format.
    """
    unknown = formats - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; choose among {FORMATS}")
    clips = {f"clip{seed}": make_clip(seed, config) for seed in seeds}
    written: list[Path] = []
    for name, clip in clips.items():
        written.append(write_truth(clip, out / "truth" / f"{name}.npz"))
        if "mp4" in formats and clip.num_frames > 1:
            written.append(writers.write_mp4(clip.frames, out / "videos" / f"{name}.mp4", clip.fps))
        if "frames" in formats:
            writers.write_frame_folder(clip.frames, out / "frames" / name)
            written.append(out / "frames" / name)
        if "images" in formats:
            written.append(writers.write_image(clip.frames[0], out / "images" / f"{name}.png"))
    if "davis" in formats:
        written.append(writers.write_davis(clips, out / "davis"))
    if "ls" in formats:
        written += write_ls_tasks(out, clips, url_prefix)
    return written


def write_truth(clip: Clip, path: Path) -> Path:
    """The exact masks and object names of ``clip`` as an ``.npz`` (``masks``, ``shapes``, ``colours``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, masks=clip.masks, shapes=[o.shape for o in clip.objects],
                        colours=[o.colour for o in clip.objects], seed=clip.seed)
    return path


def media_url(path: Path, out: Path, url_prefix: str | None) -> str:
    """How a task refers to ``path``: under ``url_prefix`` when given, else the absolute path."""
    if url_prefix is None:
        return str(path.resolve())
    return url_prefix.rstrip("/") + "/" + path.resolve().relative_to(out.resolve()).as_posix()


def write_ls_tasks(out: Path, clips: dict[str, Clip], url_prefix: str | None) -> list[Path]:
    """``ls/<config>.json`` for every config: an importable list of tasks, each with one annotation."""
    written = []
    for config in CONFIGS:
        spec = parse_label_config((LABEL_CONFIG_DIR / f"{config}.xml").read_text())
        tasks = []
        for name, clip in clips.items():
            media = _task_media(spec.mode, name, clip, out, url_prefix)
            if media is None:
                continue
            rng = np.random.default_rng(clip.seed)
            result = annotation_result(clip, spec, rng)
            task = {"data": task_data(spec, media, clip.fps)}
            if result:
                task["annotations"] = [{"result": result}]
            tasks.append(task)
        path = out / "ls" / f"{config}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tasks, indent=1))
        written.append(path)
    return written


def _task_media(mode: str, name: str, clip: Clip, out: Path, url_prefix: str | None) -> str | list[str] | None:
    if mode == "video":
        video = out / "videos" / f"{name}.mp4"
        return media_url(video, out, url_prefix) if video.is_file() else None
    if mode == "frames":
        folder = out / "frames" / name
        return [media_url(p, out, url_prefix) for p in sorted(folder.glob("*.png"))] or None
    image = out / "images" / f"{name}.png"
    return media_url(image, out, url_prefix) if image.is_file() else None
