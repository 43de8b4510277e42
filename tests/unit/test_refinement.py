"""Correction clicks without a model: the prompts they make, the stretch they re-track, what is checked, and how a
track is filled up to a deadline."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from unipixel_model.errors import UniPixelInputError
from unipixel_model.mask_decoder import ConditioningPrompt, FramePrediction
from unipixel_model.media import Frames
from unipixel_model.prompt_checks import check_clicks
from unipixel_model.prompts import PointPrompt
from unipixel_model.refinement import refined_prompts, stretch_around
from unipixel_model.track_store import empty_track, fill, resume


def _clicks(*xy_label: tuple[float, float, int]) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.tensor([[[x, y] for x, y, _ in xy_label]], dtype=torch.float32)
    return coords, torch.tensor([[label for _, _, label in xy_label]], dtype=torch.int32)


def test_clicks_on_a_prompted_frame_add_to_its_clicks_and_keep_its_tokens():
    hidden = torch.ones(1, 2, 8)
    first = ConditioningPrompt(4, hidden=hidden, point_coords=_clicks((10, 10, 1))[0],
                               point_labels=_clicks((10, 10, 1))[1])
    other = ConditioningPrompt(9, hidden=hidden)
    coords, labels = _clicks((20, 30, 0))
    logits = torch.zeros(1, 1, 32, 32)
    prompts = refined_prompts([first, other], 4, coords, labels, logits)
    assert [p.frame_idx for p in prompts] == [9, 4]  # the clicked frame's prompt last
    assert prompts[0] is other
    clicked = prompts[1]
    assert clicked.hidden is hidden and clicked.prev_logits is logits
    assert clicked.point_coords.tolist() == [[[10.0, 10.0], [20.0, 30.0]]]
    assert clicked.point_labels.tolist() == [[1, 0]]


def test_clicks_on_a_new_frame_make_a_prompt_of_clicks_alone():
    coords, labels = _clicks((5, 6, 1))
    prompts = refined_prompts([ConditioningPrompt(0, hidden=torch.ones(1, 2, 8))], 7, coords, labels, None)
    assert [p.frame_idx for p in prompts] == [0, 7]
    assert prompts[1].hidden is None and prompts[1].prev_logits is None
    assert prompts[1].point_labels.tolist() == [[1]]


@pytest.mark.parametrize("frame, prompted, expected", [
    (5, [5], (5, -1, 20)),            # the only prompt: the whole video
    (5, [2, 5, 12], (5, 2, 12)),      # between the annotator's frames
    (0, [0, 3], (0, -1, 3)),
    (19, [8, 19], (19, 8, 20)),
])
def test_a_correction_retracks_up_to_the_nearest_prompted_frame_each_way(frame, prompted, expected):
    assert stretch_around(frame, prompted, 20) == expected


def test_correction_clicks_must_be_points_on_one_frame_inside_it():
    frames = Frames(np.zeros((6, 40, 60, 3), dtype=np.uint8), fps=10.0, is_image=False)
    assert check_clicks([PointPrompt(10, 10, 3), PointPrompt(50, 30, 3, positive=False)], frames) == 3
    with pytest.raises(UniPixelInputError, match="share one frame, got frames \\[1, 3\\]"):
        check_clicks([PointPrompt(10, 10, 1), PointPrompt(10, 10, 3)], frames)
    with pytest.raises(UniPixelInputError, match="one or more PointPrompt"):
        check_clicks([], frames)
    with pytest.raises(UniPixelInputError, match="outside the 60x40 frame"):
        check_clicks([PointPrompt(61, 10, 2)], frames)
    with pytest.raises(UniPixelInputError, match="out of range"):
        check_clicks([PointPrompt(1, 1, 6)], frames)


def _predictions(frames: list[int], conditioning: int):
    for f in frames:
        yield FramePrediction(f, torch.full((8, 8), float(f)), torch.tensor([0.5]), 1.0, torch.zeros(4),
                              f == conditioning)


def test_a_stretch_fill_keeps_the_other_prompted_frames_as_they_are():
    track = empty_track(1, (32, 32), 10, 8, [2, 5, 8])
    assert fill(track, _predictions([5, 6, 7, 8, 9, 4, 3, 2, 1, 0], 5), None, stretch=(5, 2, 8)) is None
    assert track.frame_idx == [3, 4, 5, 6, 7]


def test_a_fill_past_its_deadline_leaves_the_rest_pending_and_resume_finishes_it():
    track = empty_track(1, (32, 32), 6, 8, [0])
    pending = fill(track, _predictions([0, 1, 2, 3, 4, 5], 0), time.monotonic() - 1)
    assert pending is not None and track.frame_idx == [0, 1]  # the conditioning frame, then one tracked frame
    assert resume(pending, 2) is False and track.frame_idx == [0, 1, 2, 3]
    assert resume(pending, None) is True and track.frame_idx == list(range(6))
