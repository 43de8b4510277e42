"""The differentiable stage-3 forward: LLM with gradients, ``<|seg|>`` -> SAM 2 video tracking, losses.

This mirrors the official training forward (spec §2.3, §2.6 "Training"): the LLM runs teacher-forced
over the whole chat; the pre-final-norm state *before* each ``<|seg|>`` goes through ``seg_head`` to 2
hidden tokens; SAM 2 runs its backbone on the sample's T frames, makes frame 0 the only conditioning
frame (hidden tokens only, no points, multimask output) and tracks frames 1..T−1 through its memory
(memory encoder, memory attention and object pointers), with gradients flowing through the memory
too. All objects of a sample are tracked at once as SAM 2's batch dimension, as ``SAM2Train`` does.
Low-res NO_OBJ gating stays off (training sees raw logits). The losses are those of
:mod:`finetune.losses`.

:class:`UniPixelObjective` is an ``nn.Module`` so that ``DistributedDataParallel`` can wrap it.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finetune.affinity import colour_affinity
from finetune.batch import SamConditioning, TrainBatch
from finetune.losses import IGNORE_INDEX, SegLoss, SegLossWeights, seg_core_loss, total_loss
from finetune.recipe import CORRECTION_POINTS
from finetune.world.sampling import correction_click  # the one rule of where an annotator's correction lands
from unipixel_model.modeling import UniPixelModel
from unipixel_model.sam2_adapter import UniPixelSAM2

FrameOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # multimask logits, IoUs, object scores


def track_with_grad(sam2: UniPixelSAM2, frames: torch.Tensor, hidden: torch.Tensor, train_backbone: bool,
                    condition: SamConditioning | None = None, targets: torch.Tensor | None = None,
                    correction_point: str = "uniform") -> list[tuple[int, FrameOutput]]:
    """Segment O objects through T frames from one conditioning frame, with gradients.

    The conditioning frame gets the hidden tokens and/or clicks, box or mask of ``condition``
    (default: the official recipe, tokens alone on frame 0), optionally followed by simulated
    correction clicks; the other frames are tracked through SAM 2's memory, forward and (when asked)
    backward, exactly as inference does.

    Args:
        frames: float [T, 3, S, S] normalised SAM 2 frames.
        hidden: [O, K, C] ``seg_head`` tokens, one row per object.
        train_backbone: keep the Hiera/FPN graph (when SAM 2 is trained); otherwise its features are
            computed without gradients (the rest of SAM 2 still passes gradients to ``hidden``).
        condition: how SAM 2 is prompted (:class:`SamConditioning`).
        targets: bool [T, O, S, S], needed to place correction clicks.
        correction_point: where a correction click lands, see :data:`~finetune.recipe.CORRECTION_POINTS`.
    Returns:
        (frame position, output) pairs to score: every frame once (a mask-prompted frame is left out:
        its output is the prompt itself), plus each correction step and the probe frame. An output is
        (multimask logits [O, M, S, S], predicted IoUs [O, M], object-score logits [O, 1]).
    """
    condition = condition or SamConditioning()
    num_frames = frames.shape[0]
    grad = contextlib.nullcontext() if train_backbone else torch.no_grad()
    with grad:
        backbone = sam2.forward_image(frames.to(sam2.dtype))
        _, feats, pos, sizes = sam2._prepare_backbone_features(backbone)
    num_obj = hidden.shape[0]

    def step(t: int, memory: dict, is_cond: bool, reverse: bool = False, **prompt) -> dict:
        # One copy of the frame's features per object, like SAM2Train's per-object image batch.
        return sam2.track_step(frame_idx=t, is_init_cond_frame=is_cond,
                               current_vision_feats=[f[:, t:t + 1].repeat(1, num_obj, 1) for f in feats],
                               current_vision_pos_embeds=[p[:, t:t + 1].repeat(1, num_obj, 1) for p in pos],
                               feat_sizes=sizes, output_dict=memory, num_frames=num_frames,
                               track_in_reverse=reverse, keep_multimasks=True, **prompt)

    def scored(out: dict) -> FrameOutput:
        return out["multimasks_high_res"], out["ious"], out["object_score_logits"]

    memory: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    outputs: list[tuple[int, FrameOutput]] = []
    c = condition.frame
    tokens = hidden if condition.use_hidden else None
    points = None if condition.point_coords is None else \
        {"point_coords": condition.point_coords, "point_labels": condition.point_labels}
    tracked = num_frames > 1  # a still needs no memory
    out = step(c, memory, True, point_inputs=points, mask_inputs=condition.mask, hidden_inputs=tokens,
               run_mem_encoder=tracked and condition.corrections == 0)
    if condition.mask is None:
        outputs.append((c, scored(out)))
    for n in range(condition.corrections):
        points = _add_correction(points, out["pred_masks_high_res"], targets[c], correction_point)
        out = step(c, memory, True, point_inputs=points, mask_inputs=None, hidden_inputs=tokens,
                   prev_sam_mask_logits=out["pred_masks"], run_mem_encoder=tracked and n == condition.corrections - 1)
        outputs.append((c, scored(out)))
    memory["cond_frame_outputs"][c] = out
    order = [(t, False) for t in range(c + 1, num_frames)]
    if "backward" in condition.directions:
        order += [(t, True) for t in range(c - 1, -1, -1)]
    for t, reverse in order:
        out = step(t, memory, False, reverse, point_inputs=None, mask_inputs=None)
        memory["non_cond_frame_outputs"][t] = out
        outputs.append((t, scored(out)))
    if condition.probe_frame is not None:  # the tokens alone must find the object on any frame
        probe = step(condition.probe_frame, {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}, True,
                     point_inputs=None, mask_inputs=None, hidden_inputs=hidden, run_mem_encoder=False)
        outputs.append((condition.probe_frame, scored(probe)))
    return outputs


def _add_correction(points: dict | None, predicted: torch.Tensor, target: torch.Tensor,
                    correction_point: str = "uniform") -> dict:
    """Append one click per object inside its larger error: negative in a leak, positive in a miss.

    Args:
        points: {"point_coords" [O, P, 2], "point_labels" [O, P]} or None.
        predicted: [O, 1, S, S] mask logits of the last prediction; target: bool [O, S, S].
        correction_point: one of :data:`~finetune.recipe.CORRECTION_POINTS`.
    """
    pred = predicted[:, 0].detach() > 0
    coords, labels = [], []
    for o in range(target.shape[0]):
        xy, label = _correction_xy(pred[o], target[o], correction_point)
        coords.append(xy)
        labels.append(label)
    new_coords = torch.stack(coords)[:, None].to(predicted.device)
    new_labels = torch.tensor(labels, dtype=torch.int32, device=predicted.device)[:, None]
    if points is None:
        return {"point_coords": new_coords, "point_labels": new_labels}
    return {"point_coords": torch.cat([points["point_coords"], new_coords], 1),
            "point_labels": torch.cat([points["point_labels"], new_labels], 1)}


def _correction_xy(pred: torch.Tensor, target: torch.Tensor, correction_point: str) -> tuple[torch.Tensor, int]:
    """(x, y) in SAM 2 input pixels and the label of one correction click for bool [S, S] ``pred`` and ``target``:
    1 in a miss, 0 in a leak; with nothing to fix, a positive click on the object (or -1 padding when it is absent)."""
    if correction_point == "center" and (pred != target).any():
        # the generator is seeded from torch's, so a run stays reproducible from the recipe's seed
        rng = np.random.default_rng(int(torch.randint(2 ** 31, (1,))))
        click = correction_click(target.cpu().numpy(), pred.cpu().numpy(), rng)
        return torch.tensor([click.x_px, click.y_px]), int(click.positive)
    leak, miss = pred & ~target, target & ~pred
    region, label = (leak, 0) if leak.sum() >= miss.sum() else (miss, 1)
    ys, xs = torch.nonzero(region, as_tuple=True)
    if len(xs) == 0:  # nothing to fix: a positive click on the object (or a padding point)
        ys, xs = torch.nonzero(target, as_tuple=True)
        label = 1 if len(xs) else -1
    k = int(torch.randint(len(xs), (1,))) if len(xs) else 0
    xy = torch.stack([xs[k], ys[k]]).float() + 0.5 if len(xs) else torch.zeros(2)
    return xy, label


class UniPixelObjective(nn.Module):
    """``forward(batch)`` -> the sample's losses, with gradients for whatever is trainable.

    Args:
        model: the UniPixel model (LoRA already injected by the trainer, or plain).
        train_backbone: see :func:`track_with_grad`.
        autocast_dtype: bf16 autocast on CUDA, or None (float32).
        train_llm_on_prompts: see :class:`~finetune.recipe.TrainRecipe`.
        weights: the mask loss's weights (UniPixel's, and BoxInst's pairwise term).
        correction_point: where simulated correction clicks land, see :data:`~finetune.recipe.CORRECTION_POINTS`.
    """

    def __init__(self, model: UniPixelModel, train_backbone: bool, autocast_dtype: torch.dtype | None = None,
                 train_llm_on_prompts: bool = True, weights: SegLossWeights = SegLossWeights(),
                 correction_point: str = "uniform") -> None:
        super().__init__()
        if correction_point not in CORRECTION_POINTS:
            raise ValueError(f"correction_point must be one of {CORRECTION_POINTS}, got {correction_point!r}")
        self.correction_point = correction_point
        self.model = model
        self.train_backbone = train_backbone
        self.autocast_dtype = autocast_dtype
        self.train_llm_on_prompts = train_llm_on_prompts
        self.weights = weights

    def forward(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Returns {"total", "lm"} and, for samples with masks, {"seg", "mask", "dice", "iou", "cls"}
        (``seg`` = core / T). Scalars, float32."""
        device = self.model.lm_head.weight.device
        autocast = (torch.autocast(device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else contextlib.nullcontext())
        # a prompt sample's answer is the fixed "[id] <|seg|>": with train_llm_on_prompts off it trains SAM 2 and the
        # seg head only (the LLM runs without a graph; its LM loss is still reported, not trained)
        llm_frozen = batch.kind == "mem" and not self.train_llm_on_prompts
        with autocast:
            with torch.no_grad() if llm_frozen else contextlib.nullcontext():
                last_hidden, pre_norm = self.language(batch)
                lm = self.lm_loss(last_hidden, batch.labels)
            if batch.target_masks is not None:
                outputs = self._masks(batch, pre_norm)
        seg: SegLoss | None = None
        if batch.target_masks is not None:
            seg = self._seg_loss(batch, outputs, self.weights)
        out = {"total": total_loss(lm, [seg]), "lm": lm}
        if seg is not None:
            out.update(seg=seg.core / seg.num_frames, mask=seg.mask, dice=seg.dice, iou=seg.iou, cls=seg.cls)
        return out

    def language(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced LLM pass. Returns (final hidden [L, D], pre-final-norm hidden [L, D])."""
        model = self.model
        embeds, _ = model.embed_inputs(batch.inputs)
        position_ids, _ = model.rope_index(batch.inputs)
        language = model.model.language_model
        store: dict = {}
        handle = language.norm.register_forward_pre_hook(lambda _m, args: store.__setitem__("pre_norm", args[0]))
        try:
            out = language(inputs_embeds=embeds, position_ids=position_ids, use_cache=False)
        finally:
            handle.remove()
        return out.last_hidden_state[0], store["pre_norm"][0]

    def lm_loss(self, last_hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the supervised next tokens; ``lm_head`` runs only where it is needed
        (the same mean as HF's loss, without a [L, vocab] logits tensor)."""
        positions = torch.nonzero(labels[1:] != IGNORE_INDEX).flatten()
        logits = self.model.lm_head(last_hidden[positions])
        return F.cross_entropy(logits.float(), labels[positions + 1])

    def _masks(self, batch: TrainBatch, pre_norm: torch.Tensor) -> list[list[tuple[int, FrameOutput]]]:
        """Per conditioning group, the scored (frame position, output) pairs of its objects."""
        ids = batch.inputs.input_ids[0]
        positions = torch.nonzero(ids[1:] == self.model.config.seg_token_id).flatten()
        hidden = self.model.seg_tokens(pre_norm[positions[batch.seg_select]])
        return [track_with_grad(self.model.sam2, batch.sam2_frames, hidden[group.objects], self.train_backbone,
                                group, batch.target_masks[:, group.objects], self.correction_point)
                for group in batch.conditions]

    @staticmethod
    def _seg_loss(batch: TrainBatch, outputs: list[list[tuple[int, FrameOutput]]],
                  weights: SegLossWeights = SegLossWeights()) -> SegLoss | None:
        """SAM 2's loss summed over groups, each normalised by the sample's object count (None when
        nothing was predicted: a mask prompt on a one-frame sample)."""
        total = None
        num_objects = batch.target_masks.shape[1]
        for group, scored in zip(batch.conditions, outputs):
            if not scored:  # a mask prompt on the only frame: its output is the prompt itself
                continue
            frames = [(logits.float(), ious.float(), scores.float()) for _, (logits, ious, scores) in scored]
            targets = batch.target_masks[[t for t, _ in scored]][:, group.objects]
            affinities = None
            if group.box_supervised and weights.pairwise:  # BoxInst's pairwise term: the mask follows the colours
                affinity = colour_affinity(batch.sam2_frames)
                affinities = [affinity[t] for t, _ in scored]
            loss = seg_core_loss(frames, targets, num_objects, weights, box_supervised=group.box_supervised,
                                 affinities=affinities)
            total = loss if total is None else SegLoss(
                total.core + loss.core, total.mask + loss.mask, total.dice + loss.dice, total.iou + loss.iou,
                total.cls + loss.cls, batch.num_frames)
        if total is None:
            return None
        total.num_frames = batch.num_frames  # core / T, as the official loss; extra passes add to the sum
        return total
