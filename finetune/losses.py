"""Stage-3 losses (spec §5.4): LM cross-entropy plus SAM 2's multi-mask segmentation loss.

The segmentation part is SAM 2's ``MultiStepMultiMasksAndIous`` as UniPixel configures it
(weights mask 100, dice 5, iou 5, class 5; focal α=0.25 γ=2; ``supervise_all_iou``; L1 IoU loss;
object scores with plain BCE, i.e. focal α=−1 γ=0). Per frame, every object's 3 candidate masks
are scored; the candidate with the lowest ``100·focal + 5·dice`` is back-propagated, the IoU head is
supervised on all 3, and mask/dice/IoU terms count only where the object is present (``target_obj``).
A sample's core loss is the sum over its frames; the total is
``LM CE + mean over samples-with-masks of (core / T)``.

All functions take float logits and compute in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from finetune.affinity import neighbours

IGNORE_INDEX = -100
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0
CLASS_ALPHA, CLASS_GAMMA = -1.0, 0.0  # objectness: plain BCE
PAIRWISE_TAU = 0.3  # BoxInst: a neighbour this similar in colour (finetune.affinity) probably shares the label


@dataclass(frozen=True)
class SegLossWeights:
    """Weights of the core loss (UniPixel's ``loss_seg`` config)."""

    mask: float = 100.0
    dice: float = 5.0
    iou: float = 5.0
    cls: float = 5.0
    pairwise: float = 1.0  # BoxInst's pairwise term against its projection term (1:1), box-supervised targets only


@dataclass
class SegLoss:
    """Segmentation losses of one sample, each summed over its frames (already / ``num_objects``).

    Attributes:
        core: ``100·mask + 5·dice + 5·iou + 5·class`` (scalar tensor, differentiable).
        mask / dice / iou / cls: the unweighted terms.
        num_frames: T, the frames the sums run over.
    """

    core: torch.Tensor
    mask: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    cls: torch.Tensor
    num_frames: int


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, num_objects: float, alpha: float = FOCAL_ALPHA,
                       gamma: float = FOCAL_GAMMA, loss_on_multimask: bool = False) -> torch.Tensor:
    """Per-pixel sigmoid focal loss (RetinaNet), as in SAM 2's training code.

    Args:
        logits: float [N, M, H, W] with ``loss_on_multimask``, else [N, K] (e.g. object-score logits).
        targets: same shape, 0/1.
        num_objects: normaliser (objects in the batch, >= 1).
        alpha: positive-class weight; < 0 disables it.
        gamma: focusing exponent; 0 gives plain BCE.
    Returns:
        [N, M] spatial means / num_objects with ``loss_on_multimask``; otherwise a scalar: mean over
        the last dim, summed over N, / num_objects.
    """
    logits, targets = logits.float(), targets.float()
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if loss_on_multimask:
        return loss.flatten(2).mean(-1) / num_objects
    return loss.mean(1).sum() / num_objects


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_objects: float) -> torch.Tensor:
    """``1 − (2·Σpt + 1) / (Σp + Σt + 1)`` on sigmoid probabilities, per candidate mask.

    Args:
        logits, targets: float [N, M, H, W] (targets 0/1).
    Returns:
        [N, M] / num_objects.
    """
    prob = logits.float().sigmoid().flatten(2)
    targets = targets.float().flatten(2)
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)) / num_objects


def iou_loss(logits: torch.Tensor, targets: torch.Tensor, pred_ious: torch.Tensor, num_objects: float,
             use_l1_loss: bool = True) -> torch.Tensor:
    """Error of the IoU head against the actual IoU of each thresholded candidate (logit > 0).

    Args:
        logits, targets: [N, M, H, W]; pred_ious: [N, M].
    Returns:
        [N, M] L1 (or squared) error / num_objects.
    """
    pred = logits.flatten(2) > 0
    gt = targets.flatten(2) > 0
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    actual = inter / union.clamp(min=1.0)
    loss_fn = F.l1_loss if use_l1_loss else F.mse_loss
    return loss_fn(pred_ious.float(), actual, reduction="none") / num_objects


def box_projection_loss(logits: torch.Tensor, boxes: torch.Tensor, num_objects: float) -> torch.Tensor:
    """BoxInst's projection term: a box says where the mask's extent is on each axis, not its pixels.

    The mask's sigmoid probability is max-projected onto the x and y axes and compared with the
    filled box's projections by the dice loss, so a mask of any shape inside the box scores 0.

    Args:
        logits: float [N, M, H, W] candidate logits; boxes: bool/float [N, M, H, W] filled boxes.
    Returns:
        [N, M] (dice on x + dice on y) / num_objects.
    """
    prob, boxes = logits.float().sigmoid(), boxes.float()
    loss = 0.0
    for dim in (-1, -2):
        pred, target = prob.amax(dim=dim), boxes.amax(dim=dim)
        numerator = 2 * (pred * target).sum(-1)
        denominator = (pred * pred).sum(-1) + (target * target).sum(-1)
        loss = loss + 1 - (numerator + 1) / (denominator + 1)
    return loss / num_objects


def box_pairwise_loss(logits: torch.Tensor, boxes: torch.Tensor, affinity: torch.Tensor,
                      num_objects: float) -> torch.Tensor:
    """BoxInst's pairwise term: inside the box, neighbouring cells of one colour should share a label, so a mask
    learned from boxes follows the object instead of filling its box.

    ``-log P(same label)`` with ``P = p_i p_j + (1 - p_i)(1 - p_j)``, averaged over the edges inside the box whose
    colour affinity reaches :data:`PAIRWISE_TAU`; at the affinity's resolution (logits average-pooled).

    Args:
        logits: float [N, M, S, S] candidate logits; boxes: bool/float [N, M, S, S] filled boxes.
        affinity: float [8, S / k, S / k] of the frame (:func:`finetune.affinity.colour_affinity`).
    Returns:
        [N, M] / num_objects.
    """
    stride = logits.shape[-1] // affinity.shape[-1]
    small = F.avg_pool2d(logits.float(), stride)  # [N, M, h, w]
    inside = (F.avg_pool2d(boxes.float(), stride) > 0.5).float()
    log_fg, log_bg = F.logsigmoid(small), F.logsigmoid(-small)
    log_same = torch.logaddexp(log_fg[:, :, None] + neighbours(log_fg), log_bg[:, :, None] + neighbours(log_bg))
    edges = (affinity >= PAIRWISE_TAU).float() * inside[:, :, None]  # [N, M, 8, h, w]
    loss = -(log_same * edges).sum((-3, -2, -1)) / edges.sum((-3, -2, -1)).clamp(min=1.0)
    return loss / num_objects


def frame_seg_losses(multimask_logits: torch.Tensor, target: torch.Tensor, pred_ious: torch.Tensor,
                     object_score_logits: torch.Tensor, num_objects: float,
                     weights: SegLossWeights = SegLossWeights(), box_supervised: bool = False,
                     affinity: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The four loss terms of one frame (``MultiStepMultiMasksAndIous._update_losses``).

    Args:
        multimask_logits: float [O, M, S, S] candidate logits at the SAM 2 input size.
        target: bool/float [O, S, S] ground truth at the same size.
        pred_ious: float [O, M] predicted IoUs.
        object_score_logits: float [O, 1].
        num_objects: normaliser (the sample's O, clamped to >= 1).
        box_supervised: ``target`` holds filled boxes: the focal and pixel dice terms become the box
            projection loss (in "dice"; "mask" is 0) and the IoU head is not supervised.
        affinity: with ``box_supervised``, the frame's colour affinity [8, h, w]: BoxInst's pairwise term
            (:func:`box_pairwise_loss`, times ``weights.pairwise``) is added to "dice". None: the projection alone.
    Returns:
        {"mask", "dice", "iou", "cls"}: scalars, summed over objects.
    """
    targets = target.float()[:, None].expand_as(multimask_logits)
    if box_supervised:
        dice = box_projection_loss(multimask_logits, targets, num_objects)
        if affinity is not None and weights.pairwise:
            dice = dice + weights.pairwise * box_pairwise_loss(multimask_logits, targets, affinity, num_objects)
        focal = torch.zeros_like(dice)
        iou = torch.zeros_like(dice)
    else:
        focal = sigmoid_focal_loss(multimask_logits, targets, num_objects, loss_on_multimask=True)
        dice = dice_loss(multimask_logits, targets, num_objects)
        iou = iou_loss(multimask_logits, targets, pred_ious, num_objects)
    target_obj = (target.flatten(1) > 0).any(dim=-1, keepdim=True).float()  # [O, 1]
    cls = sigmoid_focal_loss(object_score_logits, target_obj, num_objects, alpha=CLASS_ALPHA, gamma=CLASS_GAMMA)
    if focal.shape[1] > 1:  # back-propagate only the best candidate per object
        best = torch.argmin(focal * weights.mask + dice * weights.dice, dim=-1)
        rows = torch.arange(focal.shape[0], device=focal.device)
        focal, dice = focal[rows, best][:, None], dice[rows, best][:, None]
        iou = iou.mean(dim=-1, keepdim=True)  # supervise_all_iou
    return {"mask": (focal * target_obj).sum(), "dice": (dice * target_obj).sum(),
            "iou": (iou * target_obj).sum(), "cls": cls}


def seg_core_loss(frame_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], targets: torch.Tensor,
                  num_objects: float | None = None, weights: SegLossWeights = SegLossWeights(),
                  box_supervised: bool = False, affinities: list[torch.Tensor] | None = None) -> SegLoss:
    """Sum the frame losses of one sample and weight them into the core loss.

    Args:
        frame_outputs: per scored prediction t, (multimask logits [O, M, S, S], pred IoUs [O, M],
            object-score logits [O, 1]); one per frame, plus any correction or probe passes.
        targets: bool [T, O, S, S], one row per entry of ``frame_outputs``.
        num_objects: normaliser; default O (UniPixel all-reduces it over ranks; see ``finetune.trainer``).
        box_supervised: the targets are filled boxes (see :func:`frame_seg_losses`).
        affinities: with ``box_supervised``, one colour affinity [8, h, w] per entry of ``frame_outputs``.
    Raises:
        ValueError: when the frame count or object count of outputs and targets differ.
    """
    if len(frame_outputs) != targets.shape[0]:
        raise ValueError(f"{len(frame_outputs)} frames of predictions for {targets.shape[0]} frames of targets")
    num_objects = max(1.0, float(targets.shape[1] if num_objects is None else num_objects))
    totals = {"mask": 0.0, "dice": 0.0, "iou": 0.0, "cls": 0.0}
    for n, ((logits, ious, scores), target) in enumerate(zip(frame_outputs, targets)):
        if logits.shape[0] != target.shape[0]:
            raise ValueError(f"{logits.shape[0]} predicted objects for {target.shape[0]} target objects")
        affinity = None if affinities is None else affinities[n]
        for key, value in frame_seg_losses(logits, target, ious, scores, num_objects, weights,
                                           box_supervised, affinity).items():
            totals[key] = totals[key] + value
    core = (weights.mask * totals["mask"] + weights.dice * totals["dice"] + weights.iou * totals["iou"]
            + weights.cls * totals["cls"])
    return SegLoss(core, totals["mask"], totals["dice"], totals["iou"], totals["cls"], len(frame_outputs))


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, mean over supervised tokens (HF's default).

    Args:
        logits: float [L, V] for positions 0..L-1; labels: long [L], ``IGNORE_INDEX`` where unsupervised.
    """
    return F.cross_entropy(logits[:-1].float(), labels[1:], ignore_index=IGNORE_INDEX)


def total_loss(lm: torch.Tensor, seg_losses: list[SegLoss | None]) -> torch.Tensor:
    """``lm + mean over samples with masks of (core / T)``; samples without masks add nothing.

    Args:
        lm: the LM loss of the micro-batch (scalar).
        seg_losses: one entry per sample of the micro-batch, None for samples without masks.
    """
    with_masks = [s.core / s.num_frames for s in seg_losses if s is not None]
    if not with_masks:
        return lm
    return lm + torch.stack([torch.as_tensor(x, device=lm.device) for x in with_masks]).mean()
