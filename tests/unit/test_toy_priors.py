"""The toy model's prompt priors (``unipixel_model/toy_priors.py``): where they draw, and that they stay off unless
a config turns them on."""

from __future__ import annotations

import torch

from unipixel_model.toy_priors import box_pass_prompt, click_prior, track_prior

SIZE = 128  # SAM 2 input side of the toy preset


def _output(mask_low_res: torch.Tensor) -> dict:
    """A tracked frame's output as ``track_step`` stores it: low-res logits [B, 1, h, w]."""
    return {"pred_masks": torch.where(mask_low_res, 5.0, -5.0)[:, None]}


def test_click_prior_draws_positive_bumps_negative_dips_and_fills_boxes():
    coords = torch.tensor([[[32.0, 32.0], [96.0, 96.0]], [[16.0, 16.0], [48.0, 64.0]]])
    labels = torch.tensor([[1, 0], [2, 3]], dtype=torch.int32)
    prior = click_prior(coords, labels, (32, 32), SIZE, 8.0)[:, 0]  # mask-prompt cells: 1/4 of the input
    assert prior.shape == (2, 32, 32)
    # cell centres are at +0.5: the four cells around the click at (8, 8) share the peak
    assert prior[0, 7:9, 7:9].min() > 6.0 and prior[0].max() == prior[0, 7:9, 7:9].max()
    assert prior[0, 23:25, 23:25].max() < -6.0 and abs(prior[0, 8, 24]) < 0.1
    inside = torch.zeros(32, 32, dtype=torch.bool)
    inside[4:16, 4:12] = True  # x 16..48 px, y 16..64 px -> cells 4..12 x 4..16
    assert torch.allclose(prior[1][inside], torch.tensor(4.0)) and (prior[1][~inside] == 0).all()


def test_track_prior_prompts_the_box_of_the_neighbour_frame_grown_by_the_margin():
    mask = torch.zeros(2, 32, 32, dtype=torch.bool)
    mask[0, 8:16, 4:12] = True  # x 16..48 px, y 32..64 px at 128 px
    memory = {"cond_frame_outputs": {3: _output(mask)}, "non_cond_frame_outputs": {}}
    forward = track_prior(memory, 4, False, SIZE, margin=0.25)
    assert forward["point_labels"].tolist() == [[2, 3], [-1, -1]]  # an empty mask: padding, no prompt
    grow_x, grow_y = 0.25 * 32 + 2, 0.25 * 32 + 2
    assert torch.allclose(forward["point_coords"][0], torch.tensor([[16 - grow_x, 32 - grow_y],
                                                                      [48 + grow_x, 64 + grow_y]]))
    assert track_prior(memory, 2, True, SIZE, 0.25)["point_labels"][0].tolist() == [2, 3]  # reverse: from frame 3
    assert track_prior(memory, 2, False, SIZE, 0.25) is None  # frame 1 was never tracked
    border = torch.zeros(1, 32, 32, dtype=torch.bool)
    border[0, 0:6, 0:4] = True  # a box at the border stays inside the image
    edge = track_prior({"cond_frame_outputs": {}, "non_cond_frame_outputs": {0: _output(border)}}, 1, False, SIZE, 0.5)
    assert edge["point_coords"][0, 0].tolist() == [0.0, 0.0]


def test_track_prior_boxes_the_largest_piece_of_the_mask_not_its_stray_fragments():
    """A mask with a few stray cells on other objects (clip 900,600: a yellow square among yellow and orange rings)
    gave a box over the whole frame, and the track fell apart on the next frame (IoU 0.77 -> 0.09)."""
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 8:16, 4:12] = True  # the object: x 16..48 px, y 32..64 px at 128 px
    mask[0, 28:30, 28:31] = True  # stray cells far away
    mask[0, 2, 20] = True
    prompt = track_prior({"cond_frame_outputs": {0: _output(mask)}, "non_cond_frame_outputs": {}}, 1, False, SIZE, 0.0)
    assert torch.allclose(prompt["point_coords"][0], torch.tensor([[16.0 - 2, 32.0 - 2], [48.0 + 2, 64.0 + 2]]))


def test_box_pass_prompt_adds_the_box_of_the_first_mask_to_prompts_without_a_box():
    """Clicks, or the hidden tokens of a text query, are decoded a second time with the box of their first mask: the
    toy's click masks covered the part of the object around the click (click J&F 0.69 on its frame, boxes 0.89),
    and its text-query masks a blob of the object."""
    mask = torch.zeros(3, 32, 32, dtype=torch.bool)
    mask[:, 8:16, 4:12] = True  # x 16..48 px, y 32..64 px at 128 px
    mask[:, 28:30, 28:31] = True  # stray cells: not in the box
    logits = _output(mask)["pred_masks"]
    clicks = {"point_coords": torch.tensor([[[20.0, 40.0]], [[20.0, 40.0]], [[20.0, 40.0]]]),
              "point_labels": torch.tensor([[1], [0], [-1]], dtype=torch.int32)}
    prompt = box_pass_prompt(clicks, False, logits, SIZE, margin=0.0)
    assert prompt["point_labels"].tolist() == [[1, 2, 3], [0, -1, -1], [-1, -1, -1]]  # no positive click: no box
    assert torch.allclose(prompt["point_coords"][0], torch.tensor([[20.0, 40.0], [14.0, 30.0], [50.0, 66.0]]))
    with_tokens = box_pass_prompt(clicks, True, logits, SIZE, margin=0.0)  # the tokens prompt every row
    assert with_tokens["point_labels"].tolist() == [[1, 2, 3], [0, 2, 3], [-1, 2, 3]]
    tokens_alone = box_pass_prompt(None, True, logits, SIZE, margin=0.0)
    assert tokens_alone["point_labels"].tolist() == [[2, 3]] * 3
    assert torch.allclose(tokens_alone["point_coords"][0], torch.tensor([[14.0, 30.0], [50.0, 66.0]]))
    boxed = {"point_coords": torch.zeros(3, 3, 2), "point_labels": torch.tensor([[1, 2, 3]] * 3, dtype=torch.int32)}
    assert box_pass_prompt(boxed, True, logits, SIZE, 0.2) is None  # a box prompt has its box
    assert box_pass_prompt(None, False, logits, SIZE, 0.2) is None  # nothing prompted: nothing to box
    negative = {"point_coords": torch.zeros(3, 1, 2), "point_labels": torch.zeros(3, 1, dtype=torch.int32)}
    assert box_pass_prompt(negative, False, logits, SIZE, 0.2) is None
    empty = box_pass_prompt(clicks, False, _output(torch.zeros(3, 32, 32, dtype=torch.bool))["pred_masks"], SIZE, 0.2)
    assert empty["point_labels"][0].tolist() == [1, -1, -1]  # nothing was found: the clicks alone again


def test_released_sam2_configs_leave_every_prior_off():
    from pathlib import Path

    import yaml

    configs = Path(__file__).parents[2] / "unipixel_model" / "configs"
    for path in configs.glob("*.yaml"):
        model = yaml.safe_load(path.read_text())["model"]
        toy = path.stem == "sam2.1_hiera_toy"
        for key in ("click_prior_logit", "track_prior_margin", "box_pass_margin"):
            assert bool(model.get(key, 0)) == toy, (path, key)
