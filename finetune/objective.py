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

import torch
import torch.nn.functional as F
from torch import nn

from finetune.batch import TrainBatch
from finetune.losses import IGNORE_INDEX, SegLoss, seg_core_loss, total_loss
from unipixel_model.modeling import UniPixelModel
from unipixel_model.sam2_adapter import UniPixelSAM2

FrameOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # multimask logits, IoUs, object scores


def track_with_grad(sam2: UniPixelSAM2, frames: torch.Tensor, hidden: torch.Tensor,
                    train_backbone: bool) -> list[FrameOutput]:
    """Segment O objects through T frames: hidden tokens on frame 0, memory tracking afterwards.

    Args:
        frames: float [T, 3, S, S] normalised SAM 2 frames.
        hidden: [O, K, C] ``seg_head`` tokens, one row per object.
        train_backbone: keep the Hiera/FPN graph (when SAM 2 is trained); otherwise its features are
            computed without gradients (the rest of SAM 2 still passes gradients to ``hidden``).
    Returns:
        Per frame: (multimask logits [O, M, S, S], predicted IoUs [O, M], object-score logits [O, 1]).
    """
    num_obj, num_frames = hidden.shape[0], frames.shape[0]
    grad = contextlib.nullcontext() if train_backbone else torch.no_grad()
    with grad:
        backbone = sam2.forward_image(frames.to(sam2.dtype))
        _, feats, pos, sizes = sam2._prepare_backbone_features(backbone)
    memory: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    outputs = []
    for t in range(num_frames):
        # One copy of the frame's features per object, like SAM2Train's per-object image batch.
        frame_feats = [f[:, t:t + 1].repeat(1, num_obj, 1) for f in feats]
        frame_pos = [p[:, t:t + 1].repeat(1, num_obj, 1) for p in pos]
        out = sam2.track_step(frame_idx=t, is_init_cond_frame=t == 0, current_vision_feats=frame_feats,
                              current_vision_pos_embeds=frame_pos, feat_sizes=sizes, point_inputs=None,
                              mask_inputs=None, output_dict=memory, num_frames=num_frames,
                              hidden_inputs=hidden if t == 0 else None, keep_multimasks=True)
        memory["cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"][t] = out
        outputs.append((out["multimasks_high_res"], out["ious"], out["object_score_logits"]))
    return outputs


class UniPixelObjective(nn.Module):
    """``forward(batch)`` -> the sample's losses, with gradients for whatever is trainable.

    Args:
        model: the UniPixel model (LoRA already injected by the trainer, or plain).
        train_backbone: see :func:`track_with_grad`.
        autocast_dtype: bf16 autocast on CUDA, or None (float32).
    """

    def __init__(self, model: UniPixelModel, train_backbone: bool, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.train_backbone = train_backbone
        self.autocast_dtype = autocast_dtype

    def forward(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Returns {"total", "lm"} and, for samples with masks, {"seg", "mask", "dice", "iou", "cls"}
        (``seg`` = core / T). Scalars, float32."""
        device = self.model.lm_head.weight.device
        autocast = (torch.autocast(device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else contextlib.nullcontext())
        seg: SegLoss | None = None
        with autocast:
            last_hidden, pre_norm = self._language(batch)
            lm = self._lm_loss(last_hidden, batch.labels)
            if batch.target_masks is not None:
                outputs = self._masks(batch, pre_norm)
        if batch.target_masks is not None:
            frames = [(logits.float(), ious.float(), scores.float()) for logits, ious, scores in outputs]
            seg = seg_core_loss(frames, batch.target_masks)
        out = {"total": total_loss(lm, [seg]), "lm": lm}
        if seg is not None:
            out.update(seg=seg.core / seg.num_frames, mask=seg.mask, dice=seg.dice, iou=seg.iou, cls=seg.cls)
        return out

    def _language(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
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

    def _lm_loss(self, last_hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the supervised next tokens; ``lm_head`` runs only where it is needed
        (the same mean as HF's loss, without a [L, vocab] logits tensor)."""
        positions = torch.nonzero(labels[1:] != IGNORE_INDEX).flatten()
        logits = self.model.lm_head(last_hidden[positions])
        return F.cross_entropy(logits.float(), labels[positions + 1])

    def _masks(self, batch: TrainBatch, pre_norm: torch.Tensor) -> list[FrameOutput]:
        ids = batch.inputs.input_ids[0]
        positions = torch.nonzero(ids[1:] == self.model.config.seg_token_id).flatten()
        hidden = self.model.seg_tokens(pre_norm[positions[batch.seg_select]])
        return track_with_grad(self.model.sam2, batch.sam2_frames, hidden, self.train_backbone)
