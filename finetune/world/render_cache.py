"""The toy's training clips on disk: each clip drawn and written once under a work folder, by a pool of processes.

Drawing the frames and encoding them as PNG is about a fifth of the shipped toy's training time on 2 CPU cores
(2 minutes of the 900 clips of ``toy_tracks``, 3 ms to draw and 4 ms to encode a frame). Both are numpy and zlib in
one thread, so a process per core does them at once; the clips still come back in seed order, so a seeded run draws
the same samples from them. The workers are forked: they start at once and use neither torch nor the model.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from finetune.world import writers
from finetune.world.scene import Clip, WorldConfig, make_clip

# Below this many clips a pool costs more to start than it saves.
MIN_CLIPS_FOR_POOL = 16


def rendered(clip: Clip, work: Path) -> Path:
    """The clip's frames under ``work`` (a PNG for a still, a frame folder for a video), written once."""
    if clip.num_frames == 1:
        media = work / "stills" / f"{clip.seed}.png"
        if not media.is_file():
            writers.write_image(clip.frames[0], media)
        return media
    media = work / "videos" / str(clip.seed)
    if not (media / f"{clip.num_frames:05d}.png").is_file():
        writers.write_frame_folder(clip.frames, media)
    return media


def _render(seed: int, config: WorldConfig, work: Path) -> tuple[Clip, Path]:
    clip = make_clip(seed, config)
    return clip, rendered(clip, work)


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def render_clips(seeds: Sequence[int], config: WorldConfig, work: Path,
                 workers: int | None = None) -> Iterator[tuple[Clip, Path]]:
    """(clip, its media under ``work``) for each seed, in the order of ``seeds``.

    Args:
        workers: processes that draw and write (None: one per usable core; 1: this process alone).
    """
    workers = usable_cores() if workers is None else workers
    if workers < 1:
        raise ValueError(f"render workers must be at least 1, not {workers}")
    render = functools.partial(_render, config=config, work=work)
    if workers == 1 or len(seeds) < MIN_CLIPS_FOR_POOL:
        yield from map(render, seeds)
        return
    # fork: a spawned worker would import the caller's main module again (torch and all, or a script without a
    # __main__ guard, which then fails); a forked one only draws with numpy and writes with zlib, never the torch
    # thread pools the parent may hold
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(render, seeds, chunksize=4)
