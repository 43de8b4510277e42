"""Interleaved propagation (both sides of the prompt early) gives exactly SAM 2's sequential masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unipixel_model.mask_decoder import BACKWARD, FORWARD, ConditioningPrompt, track_object
from unipixel_model.session import InferenceSession
from unipixel_model.types import PointPrompt


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    from unipixel_model.loading import from_pretrained
    from unipixel_model.tokenization import load_tokenizer

    return from_pretrained(tiny_checkpoint), load_tokenizer(tiny_checkpoint)


def _video(frames: int = 48) -> np.ndarray:
    rng = np.random.default_rng(3)
    video = (rng.random((frames, 40, 56, 3)) * 60).astype(np.uint8)
    for t in range(frames):
        video[t, 10:26, 4 + t % 30:20 + t % 30] = 220
    return video


def test_interleaved_and_sequential_tracking_are_bit_identical(tiny):
    model, tokenizer = tiny
    session = InferenceSession.open(model, tokenizer, _video())
    sam2 = model.sam2
    side = sam2.image_size
    prompt = ConditioningPrompt(24, point_coords=torch.tensor([[[12.0 * side / 56, 18.0 * side / 40]]]),
                                point_labels=torch.tensor([[1]], dtype=torch.int32))
    runs = {}
    for interleave in (False, True):
        preds = list(track_object(sam2, session.features, 48, [prompt], (FORWARD, BACKWARD), interleave=interleave))
        runs[interleave] = preds
    order = [p.frame_idx for p in runs[True]]
    assert sorted(order) == list(range(48)) and order[:17] == list(range(24, 41))  # prompt, then keep=16 forward
    assert order[17:21] == [41, 23, 42, 22]  # then one forward, one backward in turn
    by_frame = {p.frame_idx: p for p in runs[False]}
    for pred in runs[True]:
        ref = by_frame[pred.frame_idx]
        assert torch.equal(pred.low_res_logits, ref.low_res_logits), pred.frame_idx
        assert pred.object_score == ref.object_score and torch.equal(pred.ious, ref.ious)


def test_budget_cut_track_has_frames_on_both_sides_of_the_prompt(tiny):
    session = InferenceSession.open(*tiny, _video())
    session.track_budget_s = 0.0
    track = session.refer({1: PointPrompt(12, 18, 24)}, ask=False).tracks[0]
    session.continue_tracking(1, max_frames=30)  # what the background job does, chunk by chunk
    tracked = track.frame_idx
    assert min(tracked) < 24 < max(tracked)
    assert len(tracked) == 1 + 1 + 30  # prompt frame, the frame that hit the budget, 30 more
