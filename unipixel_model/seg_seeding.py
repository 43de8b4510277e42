"""Where SAM 2 starts each ``<|seg|>`` of an answer: which frame its tokens condition, and with what.

Stateless: the session passes its model, frames and feature cache, and gets back one SAM 2 prompt list a token.
Three ways, one per kind of call:

* ``official``: frame 0, the tokens alone, forward only (the official inference, bit for bit);
* a toy model's text-grounding head (:mod:`unipixel_model.toy_grounding`), for the one ``<|seg|>`` of a text query:
  the frame and cell the head points at, clicked beside the tokens, tracked both ways;
* otherwise: the frame among the LLM's where the tokens alone find the object most surely (highest SAM 2 object
  score), tracked both ways, so an object that enters late is found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from unipixel_model import processor
from unipixel_model.mask_decoder import BACKWARD, FORWARD, ConditioningPrompt, score_frame
from unipixel_model.media import Frames
from unipixel_model.modeling import UniPixelModel
from unipixel_model.prompt_encoder import RefPrompt
from unipixel_model.sam2_adapter import FrameFeatures
from unipixel_model.toy_grounding import stride8_features


@dataclass(frozen=True)
class SegSeed:
    """How one ``<|seg|>`` starts: its conditioning prompts and the directions SAM 2 propagates them."""

    prompts: list[ConditioningPrompt]
    directions: tuple[str, ...]


def seg_seeds(model: UniPixelModel, features: Callable[[int], FrameFeatures], frames: Frames,
              tokens: torch.Tensor, indices: tuple[int, ...], official: bool, query: str | None = None) -> list[SegSeed]:
    """One :class:`SegSeed` per ``<|seg|>``.

    Args:
        tokens: [N, K, C] SAM 2 hidden tokens, one row per ``<|seg|>`` (``model.seg_tokens``).
        indices: the 0-based frames the LLM read, ascending.
        official: seed frame 0, forward only.
        query: the text query, when the answer came from one (the grounding head reads it).
    """
    grounded = None
    if query and len(tokens) == 1 and not official:
        grounded = _grounded_click(model, features, frames, query, indices)
    seeds = []
    for tok in tokens:
        if official:
            seeds.append(SegSeed([ConditioningPrompt(0, hidden=tok[None])], (FORWARD,)))
        elif grounded is not None:
            frame, coords = grounded
            labels = torch.ones(1, 1, dtype=torch.int32, device=coords.device)
            prompt = ConditioningPrompt(frame, hidden=tok[None], point_coords=coords, point_labels=labels)
            seeds.append(SegSeed([prompt], (FORWARD, BACKWARD)))
        else:
            frame = _likeliest_frame(model, features, frames.num_frames, tok[None], indices)
            seeds.append(SegSeed([ConditioningPrompt(frame, hidden=tok[None])], (FORWARD, BACKWARD)))
    return seeds


def ref_seeds(frame_idx: list[int], refs: list[RefPrompt], tokens: torch.Tensor, official: bool) -> list[SegSeed]:
    """One :class:`SegSeed` per visual prompt of a ``[id] <|ref|>`` question: its ``<|seg|>`` tokens [1, K, C] with
    the click or box on the prompt's own frame (``frame_idx``, 0-based), tracked both ways; ``official``: the tokens
    alone on frame 0, forward only."""
    if official:
        return [SegSeed([ConditioningPrompt(0, hidden=tok[None])], (FORWARD,)) for tok in tokens]
    return [SegSeed([ConditioningPrompt(frame, hidden=tok[None], point_coords=ref.coords_sam[None],
                                        point_labels=ref.labels[None].int())], (FORWARD, BACKWARD))
            for frame, ref, tok in zip(frame_idx, refs, tokens)]


def _grounded_click(model: UniPixelModel, features: Callable[[int], FrameFeatures], frames: Frames, text: str,
                    indices: tuple[int, ...]) -> tuple[int, torch.Tensor] | None:
    """The toy's text grounding (None without one): (the frame, its best cell's centre [1, 1, 2] in SAM 2 input
    pixels) among the LLM's frames."""
    grounding = model.toy_grounding
    if grounding is None:
        return None
    stride8 = stride8_features([features(i) for i in indices])
    device = stride8.device
    pixels = processor.sam2_transform(frames.take(list(indices)), model.config.sam2_image_size)
    point = grounding.point(text, stride8, pixels.to(device))
    return indices[point.frame], torch.tensor([[[point.x_px, point.y_px]]], device=device)


def _likeliest_frame(model: UniPixelModel, features: Callable[[int], FrameFeatures], num_frames: int,
                     hidden: torch.Tensor, candidates: tuple[int, ...]) -> int:
    """The frame among ``candidates`` where SAM 2, prompted by ``hidden`` [1, K, C] alone and without memory, gives
    the highest object score."""
    if len(candidates) == 1:
        return candidates[0]
    scores = [score_frame(model.sam2, features, num_frames, frame, hidden) for frame in candidates]
    return candidates[int(np.argmax(scores))]
