"""Simulated correction clicks in training (``finetune.objective._add_correction``): where they land, per recipe."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from finetune.objective import _add_correction
from finetune.recipe import RecipeError, TrainRecipe
from finetune.world.samples import SampleMix, clip_samples
from finetune.world.scene import WorldConfig, make_clip

S = 64


def _leaky() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [1, 1, S, S] of a prediction that covers the 16 px target square and leaks onto a 20 px square beside
    it; and the target, bool [1, S, S]."""
    target = torch.zeros(1, S, S, dtype=torch.bool)
    target[0, 8:24, 8:24] = True
    predicted = torch.full((1, 1, S, S), -5.0)
    predicted[0, 0, 8:24, 8:24] = 5.0
    predicted[0, 0, 30:50, 30:50] = 5.0  # the leak: 400 px against no miss
    return predicted, target


def _depth(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]


@pytest.mark.parametrize("method", ["uniform", "center"])
def test_a_correction_click_is_negative_inside_a_leak(method):
    predicted, target = _leaky()
    torch.manual_seed(0)
    for _ in range(20):
        points = _add_correction(None, predicted, target, method)
        x, y = points["point_coords"][0, 0].tolist()
        assert points["point_labels"].tolist() == [[0]]
        assert 30 <= x < 50 and 30 <= y < 50, (method, x, y)


def test_a_center_click_lands_deep_inside_the_error_where_an_annotator_clicks():
    predicted, target = _leaky()
    leak = np.zeros((S, S), bool)
    leak[30:50, 30:50] = True
    depth = _depth(leak)
    torch.manual_seed(0)
    for _ in range(20):
        x, y = _add_correction(None, predicted, target, "center")["point_coords"][0, 0].tolist()
        assert depth[int(y), int(x)] >= 0.5 * depth.max(), (x, y)


def test_a_center_click_follows_torch_seed_so_a_run_is_reproducible():
    predicted, target = _leaky()
    clicks = []
    for _ in range(2):
        torch.manual_seed(7)
        clicks.append([_add_correction(None, predicted, target, "center")["point_coords"].tolist() for _ in range(5)])
    assert clicks[0] == clicks[1]
    assert len({str(c) for c in clicks[0]}) > 1  # and they are drawn, not one fixed point


def test_a_perfect_prediction_gets_a_positive_click_on_the_object():
    _, target = _leaky()
    perfect = torch.where(target[:, None], 5.0, -5.0)
    points = _add_correction(None, perfect, target, "center")
    x, y = points["point_coords"][0, 0].tolist()
    assert points["point_labels"].tolist() == [[1]] and target[0, int(y), int(x)]


def test_a_recipe_names_where_correction_clicks_land():
    assert TrainRecipe().correction_point == "uniform"  # SAM 2's trainer, and every recipe before the option
    with pytest.raises(RecipeError, match="correction_point must be one of"):
        TrainRecipe(correction_point="middle")


def test_a_sample_mix_draws_up_to_max_corrections():
    mix = SampleMix(mem_prompt=3, mem_mask=0, seg=0, region=0, ref=0, p_corrections=1.0, max_corrections=3)
    counts = set()
    for seed in range(12):
        clip = make_clip(seed, WorldConfig(num_frames=1))
        counts |= {s.corrections for s in clip_samples(clip, "x.png", np.random.default_rng(seed), mix)}
    assert counts == {1, 2, 3}


@pytest.mark.parametrize("bad", [{"max_corrections": 0}, {"max_corrections": 4}, {"p_corrections": 1.5}])
def test_a_sample_mix_refuses_corrections_a_sample_cannot_hold(bad):
    """Caught when the mix is made, not as a numpy error or a SampleError halfway through rendering a phase."""
    with pytest.raises(ValueError, match="corrections"):
        SampleMix(**bad)
