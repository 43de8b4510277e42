"""The toy's text-grounding head (unipixel_model/toy_grounding.py): words, cell inputs, loss and the click it gives."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from unipixel_model.toy_grounding import (CELL_CHANNELS, TextGrounding, cell_inputs, grounding_loss, query_words,
                                          word_ids)


def test_query_words_are_the_lower_case_words_without_punctuation():
    assert query_words("Please segment the Red circle, moving up.") == \
        ["please", "segment", "the", "red", "circle", "moving", "up"]
    assert query_words("<|seg|> 42 !") == ["seg"]


def test_word_ids_are_the_same_in_another_process():
    """Python's hash() of a str changes per process: the head's vocabulary must not."""
    here = word_ids(["red", "circle"]).tolist()
    code = "from unipixel_model.toy_grounding import word_ids; print(word_ids(['red', 'circle']).tolist())"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=".").stdout.strip()
    assert str(here) == there
    assert word_ids([]).tolist() == [0]  # a query without words still has a vector


def test_cell_inputs_hold_colour_motion_and_place():
    frames = torch.zeros(3, 3, 32, 32)
    frames[1, 0, :8, :8] = 1.0  # something red appears in the top-left cell on frame 1 only
    cells = cell_inputs(frames, (4, 4))
    assert cells.shape == (3, CELL_CHANNELS, 4, 4)
    assert cells[1, 0, 0, 0] == 1.0 and cells[0, 0, 0, 0] == 0.0
    assert cells[0, 3, 0, 0] == 1.0  # frame 0 -> 1: it appears ahead
    assert cells[2, 6, 0, 0] == -1.0  # frame 1 -> 2: it went away behind
    assert cells[0, 9, 0, 0] == -1.0 and cells[0, 9, 0, 3] == 1.0  # x from left to right
    assert cells[0, 10, 0, 0] == -1.0 and cells[0, 10, 3, 0] == 1.0  # y from top to bottom
    still = cell_inputs(frames[1:2], (4, 4))
    assert still[:, 3:9].abs().sum() == 0  # one frame: no motion


def test_the_loss_falls_as_the_mass_moves_onto_the_object():
    share = torch.zeros(2, 4, 4)
    share[1, 2, 3] = 1.0
    flat = torch.zeros(2, 4, 4)
    peaked = flat.clone()
    peaked[1, 2, 3] = 10.0
    assert grounding_loss(peaked, share) < 0.01 < grounding_loss(flat, share)
    missing = torch.zeros(2, 4, 4, requires_grad=True)
    loss = grounding_loss(missing, torch.zeros(2, 4, 4))
    loss.backward()  # an object on no frame trains nothing, and does not break the step
    assert loss.item() == 0.0 and missing.grad is not None


def test_the_point_is_the_best_cell_centre_in_sam2_pixels():
    head = TextGrounding(feature_dim=8, width=16)
    logits = torch.full((2, 4, 4), -5.0)
    logits[1, 2, 3] = 5.0
    head.forward = lambda text, features, frames: logits  # the scores are the point's only input
    point = head.point("the red circle", torch.zeros(2, 8, 4, 4), torch.zeros(2, 3, 64, 64))
    assert (point.frame, point.x_px, point.y_px) == (1, 56.0, 40.0)


def test_the_head_scores_every_cell_of_every_frame_and_learns_a_word():
    """Two words, two colours: a few steps of the loss teach 'red' the red cell and 'blue' the blue one."""
    torch.manual_seed(0)
    head = TextGrounding(feature_dim=4, width=16)
    frames = torch.zeros(1, 3, 32, 32)
    frames[0, 0, :8, :8] = 1.0  # red top-left
    frames[0, 2, 24:, 24:] = 1.0  # blue bottom-right
    features = torch.zeros(1, 4, 4, 4)
    red, blue = torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)
    red[0, 0, 0], blue[0, 3, 3] = 1.0, 1.0
    assert head("the red one", features, frames).shape == (1, 4, 4)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(60):
        for text, share in (("the red one", red), ("the blue one", blue)):
            optimizer.zero_grad()
            grounding_loss(head(text, features, frames), share).backward()
            optimizer.step()
    red_point, blue_point = (head.point(t, features, frames) for t in ("the red one", "the blue one"))
    assert (red_point.x_px, red_point.y_px) == (4.0, 4.0)
    assert (blue_point.x_px, blue_point.y_px) == (28.0, 28.0)


def test_a_negative_grounding_width_is_refused():
    from unipixel_model.presets import preset_config

    config = preset_config("tiny")
    config.toy_text_grounding = -1
    with pytest.raises(ValueError, match="toy_text_grounding must be >= 0"):
        config.__post_init__()


def test_only_a_toy_config_writes_its_grounding_width():
    """Released configs keep the official keys; a toy's width survives a round trip."""
    from unipixel_model.config import UniPixelConfig
    from unipixel_model.presets import preset_config

    config = preset_config("tiny")
    assert "toy_text_grounding" not in config.to_dict()
    config.toy_text_grounding = 64
    assert UniPixelConfig.from_dict(config.to_dict()).toy_text_grounding == 64
