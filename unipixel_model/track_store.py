"""Where a session keeps an object's track while SAM 2 fills it: the low-res logits store (in memory, or a sparse
temporary file for long videos), one frame's prediction written into it, and a propagation cut short by the
tracking budget."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from unipixel_model.heap import note_frame_done
from unipixel_model.mask_decoder import ConditioningPrompt, FramePrediction
from unipixel_model.types import MaskTrack

# Above this many bytes, a track's logits live in a temporary file (memory flat in video length).
IN_MEMORY_LOGITS_BYTES = 32 << 20


@dataclass
class PendingTrack:
    """A propagation cut short by the tracking budget: the generator fills ``track`` in place."""

    track: MaskTrack
    steps: Iterator[FramePrediction]


def empty_track(obj_id: int, size_hw: tuple[int, int], total: int, side: int, prompt_frames: list[int]) -> MaskTrack:
    """A :class:`MaskTrack` of ``total`` untracked frames of original size ``size_hw`` (H, W) px: logits float32
    [total, side, side], ``side`` SAM 2's low-res mask side (its input size / 4); ``prompt_frames`` 0-based."""
    scores, ious = torch.full((total,), float("nan")), torch.full((total,), float("nan"))
    return MaskTrack(obj_id, size_hw, logit_store(total, side), scores, ious, sorted(prompt_frames))


def store(track: MaskTrack, pred: FramePrediction) -> None:
    """Write one frame's prediction into ``track`` (logits on the CPU, float32)."""
    track.low_res_logits[pred.frame_idx] = pred.low_res_logits.float().cpu()
    track.object_scores[pred.frame_idx], track.ious[pred.frame_idx] = pred.object_score, float(pred.ious.max())
    note_frame_done()  # the frame's temporaries are freed: hand the heap's free pages back now and then


def logit_store(total: int, side: int) -> torch.Tensor:
    """float32 [total, side, side] low-res logits, disk-backed for long videos.

    Untracked frames hold -inf in memory and 0 on disk (the file is left sparse: filling it wrote every frame when
    the object was created, 2.5 GiB for 18,000 frames at 768 px); both read as empty masks, and the track's
    ``object_scores`` (NaN) say which frames were tracked.
    """
    if total * side * side * 4 <= IN_MEMORY_LOGITS_BYTES:
        return torch.full((total, side, side), float("-inf"))
    tmp = tempfile.TemporaryFile(prefix="unipixel-logits-")
    tmp.truncate(total * side * side * 4)
    mapped = np.memmap(tmp, dtype=np.float32, mode="r+", shape=(total, side, side))
    return torch.from_numpy(mapped)  # the mapping outlives the (already unlinked) file


def prompt_to(prompt: ConditioningPrompt, device: torch.device) -> ConditioningPrompt:
    """``prompt`` with its tensors on ``device``."""
    move = (lambda t: None if t is None else t.to(device))
    return ConditioningPrompt(prompt.frame_idx, move(prompt.hidden), move(prompt.point_coords),
                              move(prompt.point_labels), move(prompt.mask), move(prompt.prev_logits))


def stretch_track(base: MaskTrack, prompt_frames: list[int], stretch: tuple[int, int, int]) -> MaskTrack:
    """A track to re-fill only the stretch (start, lo, hi), 0-based frames lo < f < hi: it shares ``base``'s logits
    (frames outside the stretch keep theirs) and copies its scores; ``updated`` says which frames the call changes."""
    return MaskTrack(base.obj_id, base.frame_size_hw, base.low_res_logits, base.object_scores.clone(),
                     base.ious.clone(), sorted(prompt_frames), (stretch[1] + 1, stretch[2] - 1))


def fill(track: MaskTrack, steps: Iterator[FramePrediction], deadline: float | None,
         stretch: tuple[int, int, int] | None = None) -> PendingTrack | None:
    """Store SAM 2's predictions into ``track`` until ``steps`` ends or ``deadline`` (``time.monotonic()`` seconds)
    passes after a tracked frame; then the rest is a :class:`PendingTrack`. With ``stretch`` (start, lo, hi; 0-based
    frames) only the start frame and frames lo < f < hi are stored: other prompted frames are the annotator's, kept as
    they are."""
    for pred in steps:
        if stretch is not None and pred.frame_idx != stretch[0] and not stretch[1] < pred.frame_idx < stretch[2]:
            continue
        store(track, pred)
        if deadline is not None and not pred.is_conditioning and time.monotonic() > deadline:
            return PendingTrack(track, steps)
    return None


def resume(job: PendingTrack, max_frames: int | None) -> bool:
    """Store up to ``max_frames`` more frames of ``job`` (all when None); True when its propagation has ended."""
    for done, pred in enumerate(job.steps, start=1):
        store(job.track, pred)
        if max_frames is not None and done >= max_frames:
            return False
    return True
