"""Synthetic clips -> stage-3 :class:`TrainSample` s, the way serving will prompt the model.

Each clip yields a few samples of every kind the backend uses:

* ``mem`` with ``sam_condition="prompt"``: a click or box on one frame; SAM 2 gets the ``<|seg|>``
  tokens plus the click/box on that frame and tracks both ways (the session's ``refer``); some carry
  simulated correction clicks (the session's ``refine``);
* ``mem`` with ``sam_condition="mask"``: the exact mask on one frame, tracked both ways (a brush prompt);
* ``seg``: a referring expression -> ``<|seg|>`` (the session's ``segment``);
* ``region``: the mask through ``<|mem|>`` -> its description (what fills the description box);
* ``ref``: a click or box through ``<|ref|>`` -> its description.

Videos give short windows of 2-8 frames at a random stride, so tracking is learned over gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from finetune.sample import MAX_CORRECTIONS, TrainSample
from finetune.world import sampling
from finetune.world.expressions import describe, expressions
from finetune.world.scene import Clip
from unipixel_model import templates


@dataclass(frozen=True)
class SampleMix:
    """How many samples of each kind one clip yields (expected counts; fractions are drawn)."""

    mem_prompt: float = 2.0
    mem_mask: float = 0.5
    seg: float = 1.5
    region: float = 0.5
    ref: float = 0.25
    max_window: int = 8
    max_objects: int = 4
    prompts_per_object: int = 1
    p_box: float = 0.4
    p_corrections: float = 0.4
    max_corrections: int = 2  # a sample with corrections has 1..max_corrections of them (MAX_CORRECTIONS at most)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_corrections <= 1.0:
            raise ValueError(f"p_corrections is a probability, 0..1; got {self.p_corrections}")
        if not 1 <= self.max_corrections <= MAX_CORRECTIONS:
            raise ValueError(f"max_corrections must be 1..{MAX_CORRECTIONS} (a sample holds at most "
                             f"{MAX_CORRECTIONS} corrections); got {self.max_corrections}")


def clip_samples(clip: Clip, media: str | Path, rng: np.random.Generator, mix: SampleMix = SampleMix(),
                 task_id: int | None = None) -> list[TrainSample]:
    """Samples of one clip whose frames are stored at ``media`` (a frame folder, video or image)."""
    media = str(media)
    present = [n for n in range(len(clip.objects)) if clip.visible_frames(n, min_pixels=16)]
    if not present:
        return []
    out: list[TrainSample] = []
    for _ in range(_count(mix.mem_prompt, rng)):
        out.append(_mem(clip, media, present, rng, mix, task_id, mask_prompt=False))
    for _ in range(_count(mix.mem_mask, rng) if clip.num_frames > 1 else 0):  # a still has nothing to track
        out.append(_mem(clip, media, present, rng, mix, task_id, mask_prompt=True))
    exprs = expressions(clip)
    for _ in range(_count(mix.seg, rng) if exprs else 0):
        out.append(_seg(clip, media, exprs[int(rng.integers(len(exprs)))], rng, mix, task_id))
    for _ in range(_count(mix.region, rng)):
        out.append(_region(clip, media, int(rng.choice(present)), rng, mix, task_id))
    for _ in range(_count(mix.ref, rng)):
        out.append(_ref(clip, media, int(rng.choice(present)), rng, mix, task_id))
    return out


def _count(expected: float, rng: np.random.Generator) -> int:
    whole = int(expected)
    return whole + int(rng.random() < expected - whole)


def window(clip: Clip, anchor: int, rng: np.random.Generator, max_window: int) -> list[int]:
    """2..max_window frames at a random stride (1-3) that include ``anchor``; [0] for images."""
    if clip.num_frames == 1:
        return [0]
    last = clip.num_frames - 1
    stride = min(int(rng.integers(1, 4)), max(anchor, last - anchor))  # a second frame within reach
    size = int(rng.integers(2, max_window + 1))
    before = int(rng.integers(0, size))
    before = min(max(before, size - 1 - (last - anchor) // stride), anchor // stride)  # slid inside the clip
    frames = [anchor + stride * (k - before) for k in range(size)]
    return [f for f in frames if 0 <= f < clip.num_frames]


def _mem(clip: Clip, media: str, present: list[int], rng: np.random.Generator, mix: SampleMix,
         task_id: int | None, mask_prompt: bool) -> TrainSample:
    """A click or box on one frame: every visible object of a still (one batch for SAM 2), one object
    of a video (tracking costs per object and frame)."""
    if clip.num_frames == 1:
        objects = [o for o in present if clip.masks[o, 0].sum() >= 16][:mix.max_objects] or present[:1]
        frame = 0
    else:
        objects = [int(rng.choice(present))]
        frame = sampling.prompt_frame(clip, objects[0], rng)
    frames = window(clip, frame, rng, mix.max_window)
    use_box = mask_prompt or rng.random() < mix.p_box  # one prompt type per sample: no padded points
    if clip.num_frames == 1 and not mask_prompt:  # several prompts per object: SAM 2's decoder is cheap
        objects = [o for o in objects for _ in range(mix.prompts_per_object)]
    prompts = [sampling.box(clip, o, frame, rng) if use_box else sampling.click(clip, o, frame, rng) for o in objects]
    question, answer = templates.memory_question(list(range(1, len(objects) + 1)))
    corrected = not mask_prompt and rng.random() < mix.p_corrections
    corrections = int(rng.integers(1, mix.max_corrections + 1)) if corrected else 0
    return TrainSample("mem", media, frames, question, answer, prompts, clip.masks[objects][:, frames], None,
                       task_id, sam_condition="mask" if mask_prompt else "prompt", corrections=corrections)


def _seg(clip: Clip, media: str, expr, rng: np.random.Generator, mix: SampleMix, task_id: int | None) -> TrainSample:
    frame = sampling.prompt_frame(clip, expr.obj, rng, visible_share=0.3)
    frames = window(clip, frame, rng, mix.max_window)
    question = templates.segmentation_question(expr.text, clip.num_frames == 1)
    return TrainSample("seg", media, frames, question, templates.SEG_ANSWER, [], clip.masks[[expr.obj]][:, frames],
                       None, task_id)


def _region(clip: Clip, media: str, obj: int, rng: np.random.Generator, mix: SampleMix,
            task_id: int | None) -> TrainSample:
    frame = sampling.prompt_frame(clip, obj, rng)
    frames = window(clip, frame, rng, mix.max_window)
    return TrainSample("region", media, frames, templates.DESCRIBE_QUESTION.format(1), describe(clip, obj), [],
                       None, clip.masks[[obj]][:, frames], task_id)


def _ref(clip: Clip, media: str, obj: int, rng: np.random.Generator, mix: SampleMix,
         task_id: int | None) -> TrainSample:
    frame = sampling.prompt_frame(clip, obj, rng)
    prompt = sampling.box(clip, obj, frame, rng) if rng.random() < mix.p_box else sampling.click(clip, obj, frame, rng)
    return TrainSample("ref", media, [frame], templates.REF_DESCRIBE_QUESTION.format(1), describe(clip, obj),
                       [prompt], None, None, task_id)
