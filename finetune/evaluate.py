"""Held-out evaluation of a model state: mask J&F on ``seg`` samples, text F1 on ``region`` samples.

The model runs exactly as the backend serves it (an :class:`InferenceSession` in eval mode) on
the sample's frames; a segmentation answer is teacher-forced (``sample.answer``) so the score
measures the masks, not the phrasing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from finetune.metrics import j_and_f, text_similarity
from finetune.sample import TrainSample
from unipixel_model.media import load_frames
from unipixel_model.session import InferenceSession
from unipixel_model.types import MaskPrompt

DESCRIBE = "Please describe [1] briefly."


@dataclass
class HoldoutScore:
    """Means over held-out samples (None when there was no sample of that kind)."""

    jf: float | None
    text: float | None
    num_seg: int
    num_text: int

    @property
    def score(self) -> float:
        """The publish criterion: mean of the available metrics (0 when none)."""
        parts = [v for v in (self.jf, self.text) if v is not None]
        return float(np.mean(parts)) if parts else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "score": self.score}


@torch.no_grad()
def evaluate_holdout(model, tokenizer, samples: list[TrainSample], max_new_tokens: int = 64) -> HoldoutScore:
    """Score ``model`` on ``samples`` (switches it to eval mode with SAM 2's inference gating)."""
    was_training = model.training
    model.eval()
    gated, model.sam2.inference_mode = model.sam2.inference_mode, True
    jfs, texts = [], []
    try:
        for sample in samples:
            frames = load_frames(sample.media).take(sample.frame_idx)
            session = InferenceSession.open(model, tokenizer, frames if len(frames) > 1 else frames[0])
            session.max_new_tokens = max_new_tokens
            if sample.kind == "seg" and sample.target_masks is not None:
                jfs.append(_seg_score(session, sample))
            elif sample.kind == "region" and sample.region_masks is not None:
                texts.append(_text_score(session, sample))
    finally:
        model.sam2.inference_mode = gated
        model.train(was_training)
    return HoldoutScore(float(np.mean(jfs)) if jfs else None, float(np.mean(texts)) if texts else None,
                        len(jfs), len(texts))


def _seg_score(session: InferenceSession, sample: TrainSample) -> float:
    result = session.segment(sample.question, forced_answer=sample.answer)
    scores = []
    for n, target in enumerate(sample.target_masks):  # [O, T, H, W]
        pred = result.tracks[n].masks() if n < len(result.tracks) else np.zeros_like(target)
        scores.append(j_and_f(target, pred).jf)
    return float(np.mean(scores))


def _text_score(session: InferenceSession, sample: TrainSample) -> float:
    first = int(np.argmax(sample.region_masks[0].reshape(len(sample.frame_idx), -1).any(axis=1)))
    session.refer({1: MaskPrompt(sample.region_masks[0][first], first)})
    answer = session.ask(DESCRIBE, [1]).text
    return text_similarity(answer, sample.answer)
