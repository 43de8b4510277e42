"""Stage-3 losses against hand-computed values (spec §5.4)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from finetune.losses import (
    SegLoss,
    dice_loss,
    frame_seg_losses,
    iou_loss,
    lm_loss,
    seg_core_loss,
    sigmoid_focal_loss,
    total_loss,
)

LN2 = math.log(2.0)
BIG = 30.0  # sigmoid(30) = 1 - 9e-14: "perfect" logits


def test_focal_loss_at_zero_logits_matches_hand_values():
    # p = 0.5 everywhere: CE = ln2, (1 - p_t)^2 = 1/4; alpha_t = 0.25 (positive) / 0.75 (negative)
    logits = torch.zeros(1, 1, 1, 2)
    targets = torch.tensor([[[[1.0, 0.0]]]])
    loss = sigmoid_focal_loss(logits, targets, num_objects=1, loss_on_multimask=True)
    assert loss.shape == (1, 1)
    assert loss.item() == pytest.approx((0.25 * 0.25 * LN2 + 0.75 * 0.25 * LN2) / 2)
    assert sigmoid_focal_loss(logits, targets, num_objects=4, loss_on_multimask=True).item() == \
        pytest.approx(loss.item() / 4)


def test_focal_loss_with_alpha_minus_one_gamma_zero_is_bce():
    logits = torch.tensor([[0.0], [2.0]])
    targets = torch.tensor([[1.0], [0.0]])
    bce = LN2 + math.log(1 + math.exp(2.0))
    assert sigmoid_focal_loss(logits, targets, 2, alpha=-1, gamma=0).item() == pytest.approx(bce / 2)


def test_dice_loss_hand_value():
    # p = 0.5 on 4 pixels, one target pixel: 1 - (2*0.5 + 1) / (2 + 1 + 1) = 0.5
    logits = torch.zeros(1, 1, 2, 2)
    targets = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert dice_loss(logits, targets, 1).item() == pytest.approx(0.5)
    assert dice_loss(logits, targets, 2).item() == pytest.approx(0.25)


def test_iou_loss_is_l1_against_the_thresholded_iou():
    logits = torch.tensor([[[[1.0, -1.0], [-1.0, -1.0]]]])  # predicts 1 pixel
    targets = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])  # 2 pixels: IoU 1/2
    assert iou_loss(logits, targets, torch.tensor([[0.8]]), 1).item() == pytest.approx(0.3)
    assert iou_loss(logits, targets, torch.tensor([[0.8]]), 1, use_l1_loss=False).item() == pytest.approx(0.09)


def _two_object_frame():
    """Object 0 (present): candidates 0 = zeros, 1 = perfect, 2 = wrong pixel. Object 1: absent."""
    target = torch.zeros(2, 2, 2)
    target[0, 0, 0] = 1
    logits = torch.full((2, 3, 2, 2), -BIG)
    logits[0, 0] = 0.0
    logits[0, 1, 0, 0] = BIG
    logits[0, 2, 0, 1] = BIG
    logits[1] = 0.0
    ious = torch.tensor([[0.5, 1.0, 0.0], [0.3, 0.3, 0.3]])
    scores = torch.zeros(2, 1)
    return logits, target, ious, scores


def test_frame_losses_pick_best_candidate_supervise_all_ious_and_gate_absent_objects():
    logits, target, ious, scores = _two_object_frame()
    losses = frame_seg_losses(logits, target, ious, scores, num_objects=2)
    # object 0 keeps candidate 1 (focal and dice ~0); object 1 is absent, so its mask terms are gated
    assert losses["mask"].item() == pytest.approx(0.0, abs=1e-9)
    assert losses["dice"].item() == pytest.approx(0.0, abs=1e-9)
    # actual IoUs of object 0's candidates: 0 (no pixel > 0), 1, 0 -> L1 errors 0.5, 0, 0, mean over all 3
    assert losses["iou"].item() == pytest.approx(0.5 / 3 / 2)
    # objectness: BCE(0, 1) + BCE(0, 0) = 2 ln2, summed over objects, / num_objects
    assert losses["cls"].item() == pytest.approx(2 * LN2 / 2)


def test_frame_losses_without_the_perfect_candidate_keep_the_cheaper_one():
    logits, target, ious, scores = _two_object_frame()
    logits = logits[:, [0, 2]]  # candidates: zeros and wrong pixel
    losses = frame_seg_losses(logits, target, ious[:, [0, 2]], scores, num_objects=1)
    zeros_focal = (0.0625 * LN2 + 3 * 0.1875 * LN2) / 4  # one positive, three negative pixels at p = 0.5
    assert losses["mask"].item() == pytest.approx(zeros_focal)
    assert losses["dice"].item() == pytest.approx(0.5)


def test_seg_core_loss_sums_frames_and_applies_the_weights():
    logits, target, ious, scores = _two_object_frame()
    frame = frame_seg_losses(logits, target, ious, scores, num_objects=2)
    seg = seg_core_loss([(logits, ious, scores)] * 3, target[None].repeat(3, 1, 1, 1))
    expected = 3 * (100 * frame["mask"] + 5 * frame["dice"] + 5 * frame["iou"] + 5 * frame["cls"])
    assert seg.num_frames == 3
    assert seg.core.item() == pytest.approx(expected.item())
    assert seg.cls.item() == pytest.approx(3 * LN2)


def test_seg_core_loss_rejects_mismatched_frames_and_objects():
    logits, target, ious, scores = _two_object_frame()
    with pytest.raises(ValueError, match="2 frames of predictions for 3 frames"):
        seg_core_loss([(logits, ious, scores)] * 2, target[None].repeat(3, 1, 1, 1))
    with pytest.raises(ValueError, match="2 predicted objects for 1 target objects"):
        seg_core_loss([(logits, ious, scores)], target[None, :1])


def test_lm_loss_is_mean_over_supervised_next_tokens():
    logits = torch.zeros(4, 5)
    logits[1, 3] = 10.0
    labels = torch.tensor([-100, -100, 3, 2])  # position 1 predicts 3, position 2 predicts 2
    uniform, confident = math.log(5), math.log(1 + 4 * math.exp(-10.0))
    assert lm_loss(logits, labels).item() == pytest.approx((confident + uniform) / 2)


def test_total_loss_adds_mean_seg_core_over_samples_with_masks_only():
    lm = torch.tensor(2.0)
    a = SegLoss(torch.tensor(8.0), *[torch.tensor(0.0)] * 4, num_frames=4)
    b = SegLoss(torch.tensor(6.0), *[torch.tensor(0.0)] * 4, num_frames=2)
    assert total_loss(lm, [a, None, b]).item() == pytest.approx(2.0 + (2.0 + 3.0) / 2)
    assert total_loss(lm, [None]).item() == 2.0


def _cross_scene(size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A red cross on grey, as SAM 2 input [1, 3, S, S] (ImageNet-normalised), its mask and its filled box [S, S]."""
    from unipixel_model.processor import sam2_transform

    cross = torch.zeros(size, size, dtype=torch.bool)
    cross[24:40, 8:56] = True
    cross[8:56, 24:40] = True
    box = torch.zeros(size, size, dtype=torch.bool)
    box[8:56, 8:56] = True
    image = torch.full((1, size, size, 3), 128, dtype=torch.uint8)
    image[0][cross] = torch.tensor([220, 30, 30], dtype=torch.uint8)
    return sam2_transform(image.numpy(), size), cross, box


def test_colour_affinity_is_high_within_a_colour_and_low_across_its_edge():
    from finetune.affinity import STRIDE, colour_affinity
    from finetune.losses import PAIRWISE_TAU

    frames, cross, _ = _cross_scene()
    affinity = colour_affinity(frames)
    assert affinity.shape == (1, 8, 64 // STRIDE, 64 // STRIDE)
    assert affinity[0, :, 3, 3].min() > 0.99  # cell (3, 3): the grey corner of the box, its neighbours grey too
    assert affinity[0, 4, 7, 4] > 0.99  # cell (7, 4) is red (y 28-31, x 16-19), and its right neighbour (7, 6) too
    edge = affinity[0, :, 5, 3]  # cell (5, 3): grey just above the cross's left arm; its neighbours below are red
    assert edge.min() < PAIRWISE_TAU and edge.max() > 0.99
    assert (affinity[0, :, 0, 0] == 0).sum() == 5  # the border: neighbours outside the image


def test_box_pairwise_loss_prefers_the_object_to_its_filled_box():
    """Both masks have the box's projections, so the projection term cannot tell them apart; the pairwise term
    scores the mask that follows the cross lower than the one that fills its box."""
    from finetune.affinity import colour_affinity
    from finetune.losses import box_pairwise_loss, box_projection_loss

    frames, cross, box = _cross_scene()
    affinity = colour_affinity(frames)[0]
    follows = torch.where(cross, 8.0, -8.0)[None, None]
    fills = torch.where(box, 8.0, -8.0)[None, None]
    boxes = box.float()[None, None]
    assert box_projection_loss(follows, boxes, 1).item() == pytest.approx(box_projection_loss(fills, boxes, 1).item(),
                                                                          abs=1e-3)
    good, bad = box_pairwise_loss(follows, boxes, affinity, 1), box_pairwise_loss(fills, boxes, affinity, 1)
    assert good.shape == (1, 1) and good.item() < 0.01 and bad.item() > 0.05
    assert box_pairwise_loss(fills, boxes, affinity, 2).item() == pytest.approx(bad.item() / 2)
    follows.requires_grad_(True)
    box_pairwise_loss(follows * 0, boxes, affinity, 1).sum().backward()  # differentiable in the logits
    assert follows.grad is not None


def test_frame_losses_add_the_pairwise_term_to_dice_for_box_supervised_targets():
    from finetune.affinity import colour_affinity
    from finetune.losses import box_pairwise_loss, box_projection_loss

    frames, cross, box = _cross_scene()
    affinity = colour_affinity(frames)[0]
    logits = torch.where(box, 8.0, -8.0)[None, None]
    scores = torch.full((1, 1), BIG)
    plain = frame_seg_losses(logits, box[None], torch.ones(1, 1), scores, 1, box_supervised=True)
    paired = frame_seg_losses(logits, box[None], torch.ones(1, 1), scores, 1, box_supervised=True, affinity=affinity)
    boxes = box.float()[None, None]
    assert plain["dice"].item() == pytest.approx(box_projection_loss(logits, boxes, 1).item())
    assert paired["dice"].item() == pytest.approx(plain["dice"].item()
                                                  + box_pairwise_loss(logits, boxes, affinity, 1).item())
    assert paired["mask"].item() == 0 and paired["iou"].item() == 0


def _scene_from(seed: int, size: int = 96) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random colour blocks as SAM 2 input [1, 3, S, S], random logits [1, 1, S, S] and a random box [1, 1, S, S]."""
    from unipixel_model.processor import sam2_transform

    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (1, 4, 4, 3), generator=g, dtype=torch.uint8)
    image = blocks.repeat_interleave(size // 4, 1).repeat_interleave(size // 4, 2)
    logits = (torch.rand(1, 1, size, size, generator=g) - 0.5) * 100
    x1, y1 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=g))
    x2, y2 = (v + int(torch.randint(4, size // 4, (1,), generator=g)) for v in (x1, y1))
    box = torch.zeros(1, 1, size, size)
    box[..., y1:y2, x1:x2] = 1
    return sam2_transform(image.numpy(), size), logits, box


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_box_pairwise_loss_is_finite_non_negative_and_blind_outside_the_box(seed):
    """Any image, logits in ±50 and box: the affinity stays in [0, 1], the loss is finite and >= 0, and logits outside
    the box (beyond the neighbours of its cells) do not change it."""
    from finetune.affinity import STRIDE, colour_affinity
    from finetune.losses import box_pairwise_loss

    frames, logits, box = _scene_from(seed)
    affinity = colour_affinity(frames)[0]
    assert 0 <= affinity.min() and affinity.max() <= 1
    loss = box_pairwise_loss(logits, box, affinity, 1)
    assert torch.isfinite(loss).all() and (loss >= 0).all()
    cells = torch.nn.functional.max_pool2d(box, STRIDE)  # the box's cells, grown by their neighbours' reach
    reach = torch.nn.functional.max_pool2d(cells, 5, stride=1, padding=2)
    far = reach.repeat_interleave(STRIDE, -1).repeat_interleave(STRIDE, -2) == 0
    assert far.any()
    changed = torch.where(far, torch.rand(logits.shape, generator=torch.Generator().manual_seed(seed + 1)) * 100 - 50,
                          logits)
    assert box_pairwise_loss(changed, box, affinity, 1).item() == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    assert box_pairwise_loss(torch.full_like(logits, 40.0), box, affinity, 1).item() < 1e-6  # one label: no cost
