"""Track one object through a video with SAM 2, prompted by hidden tokens, clicks or a mask.

This replaces the official predictor's dict-of-strings session with a small loop over
``UniPixelSAM2.track_step``: conditioning frames first (no memory on an initial frame), then
propagation forward and/or backward from the earliest conditioning frame. Only the SAM 2 memory
window is kept (older per-frame outputs are yielded and dropped), so memory stays flat in video
length; frame features come from a callable so the caller decides what to cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unipixel_model.sam2_adapter import FrameFeatures, UniPixelSAM2

FORWARD = "forward"
BACKWARD = "backward"


@dataclass
class ConditioningPrompt:
    """A prompt that makes ``frame_idx`` a conditioning frame for one object.

    Attributes:
        frame_idx: 0-based index into the frames SAM 2 tracks.
        hidden: [1, K, C] ``<|seg|>`` tokens from ``seg_head``, or None.
        point_coords: float [1, P, 2] (x, y) in SAM input pixels, or None.
        point_labels: int32 [1, P] (1 positive, 0 negative, 2/3 box corners), or None.
        mask: float [1, 1, S, S] mask prompt in SAM input space, or None.
        prev_logits: [1, 1, h, w] low-res logits of an earlier prediction on this frame, fed
            with new clicks (SAM 2's interactive refinement), or None.
    """

    frame_idx: int
    hidden: torch.Tensor | None = None
    point_coords: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    prev_logits: torch.Tensor | None = None


@dataclass
class FramePrediction:
    """SAM 2's output for one object on one frame.

    Attributes:
        frame_idx: 0-based frame index.
        low_res_logits: float32 [h, w] selected mask logits (NO_OBJ-gated at inference).
        ious: float [M] predicted IoUs of the candidate masks (M = 3 with multimask, else 1).
        object_score: logit that the object is visible (> 0: visible).
        obj_ptr: [C] object pointer.
        is_conditioning: whether the frame carried a prompt.
    """

    frame_idx: int
    low_res_logits: torch.Tensor
    ious: torch.Tensor
    object_score: float
    obj_ptr: torch.Tensor
    is_conditioning: bool

    @property
    def best_iou(self) -> float:
        return float(self.ious.max())

    def mask_at(self, height: int, width: int) -> torch.Tensor:
        """bool [H, W]: logits resized straight to the original frame size, thresholded at 0."""
        logits = F.interpolate(self.low_res_logits[None, None].float(), size=(height, width),
                               mode="bilinear", align_corners=False)
        return logits[0, 0] > 0


def _prediction(frame_idx: int, out: dict, is_cond: bool) -> FramePrediction:
    return FramePrediction(frame_idx, out["pred_masks"][0, 0].float(), out["ious"][0].float(),
                           float(out["object_score_logits"][0, 0]), out["obj_ptr"][0], is_cond)


def _prune(memory: dict, frame_idx: int, keep: int, direction: str, start: int) -> None:
    """Drop non-conditioning outputs that the next frames in ``direction`` can no longer read.

    Frames within ``keep`` after ``start`` stay: the backward pass reads them, as SAM 2's does.
    """
    stale = [f for f in memory["non_cond_frame_outputs"]
             if (start + keep < f < frame_idx - keep if direction == FORWARD else frame_idx + keep < f < start)]
    for f in stale:
        del memory["non_cond_frame_outputs"][f]


@torch.no_grad()
def track_object(sam2: UniPixelSAM2, features: Callable[[int], FrameFeatures], num_frames: int,
                 prompts: list[ConditioningPrompt], directions: tuple[str, ...] = (FORWARD, BACKWARD),
                 interleave: bool = True, stretch: tuple[int, int, int] | None = None) -> Iterator[FramePrediction]:
    """Segment one object on its prompted frames, then propagate.

    Args:
        sam2: the SAM 2 module.
        features: frame_idx -> backbone features of that frame.
        num_frames: frames in the video (SAM 2 normalises pointer distances with it).
        prompts: at least one; several on one frame are not allowed (merge them first).
        directions: ``forward`` tracks frames after the earliest prompt, ``backward`` frames before it.
        interleave: alternate the two directions after the first frames (see :func:`_schedule`;
            the masks are the same either way, only the order differs).
        stretch: ``(start, lo, hi)``: propagate from the prompted frame ``start`` only over the
            frames strictly between ``lo`` and ``hi`` (a correction re-tracks up to the nearest
            other prompted frames; every prompt still conditions the memory).
    Yields:
        One :class:`FramePrediction` per frame: conditioning frames first (in frame order), then
        the propagated frames (forward ascending, backward descending; interleaved by default).
    """
    if not prompts:
        raise ValueError("track_object needs at least one prompt")
    memory: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    for prompt in sorted(prompts, key=lambda p: p.frame_idx):
        out = _step(sam2, features, num_frames, memory, prompt.frame_idx, True, False, prompt)
        memory["cond_frame_outputs"][prompt.frame_idx] = out
        yield _prediction(prompt.frame_idx, out, True)
    start = min(memory["cond_frame_outputs"]) if stretch is None else stretch[0]
    lo, hi = (-1, num_frames) if stretch is None else stretch[1:]
    keep = max(sam2.num_maskmem, sam2.max_obj_ptrs_in_encoder)
    for frame_idx, direction in _schedule(start, num_frames, directions, keep, interleave):
        if not lo < frame_idx < hi:
            continue
        if frame_idx in memory["cond_frame_outputs"]:
            continue
        out = _step(sam2, features, num_frames, memory, frame_idx, False, direction == BACKWARD, None)
        memory["non_cond_frame_outputs"][frame_idx] = out
        yield _prediction(frame_idx, out, False)
        _prune(memory, frame_idx, keep, direction, start)


@torch.no_grad()
def score_frame(sam2: UniPixelSAM2, features: Callable[[int], FrameFeatures], num_frames: int, frame_idx: int,
                hidden: torch.Tensor) -> float:
    """Object-score logit of SAM 2 prompted on ``frame_idx`` by ``hidden`` [1, K, C] alone, without
    memory (> 0: SAM 2 finds the object there)."""
    memory: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    out = _step(sam2, features, num_frames, memory, frame_idx, True, False,
                ConditioningPrompt(frame_idx, hidden=hidden), run_mem_encoder=False)
    return float(out["object_score_logits"][0, 0])


def _schedule(start: int, num_frames: int, directions: tuple[str, ...], keep: int,
              interleave: bool) -> Iterator[tuple[int, str]]:
    """The order frames are tracked in: (frame_idx, direction).

    Sequential: all forward frames, then all backward ones (SAM 2's order). Interleaved: the first
    ``keep`` forward frames, then one forward and one backward frame in turn. Both give identical
    masks: a forward frame reads at most ``keep`` frames back, so once the forward pass is past
    ``start + keep`` it never reads a backward output, and the backward pass reads only frames up
    to ``start + keep``, which are done before it starts. Interleaving makes a budget-limited call
    return the frames on both sides of the prompt.
    """
    forward = iter(range(start + 1, num_frames)) if FORWARD in directions else iter(())
    backward = iter(range(start - 1, -1, -1)) if BACKWARD in directions else iter(())
    if not interleave:
        yield from ((f, FORWARD) for f in forward)
        yield from ((f, BACKWARD) for f in backward)
        return
    for _ in range(keep):
        frame = next(forward, None)
        if frame is None:
            break
        yield frame, FORWARD
    pending = [(forward, FORWARD), (backward, BACKWARD)]
    while pending:
        for source, direction in list(pending):
            frame = next(source, None)
            if frame is None:
                pending.remove((source, direction))
            else:
                yield frame, direction


def _step(sam2: UniPixelSAM2, features: Callable[[int], FrameFeatures], num_frames: int, memory: dict,
          frame_idx: int, is_cond: bool, reverse: bool, prompt: ConditioningPrompt | None,
          run_mem_encoder: bool = True) -> dict:
    feats = features(frame_idx)
    point_inputs = mask_inputs = hidden = prev = None
    if prompt is not None:
        hidden, mask_inputs, prev = prompt.hidden, prompt.mask, prompt.prev_logits
        if prompt.point_coords is not None:
            point_inputs = {"point_coords": prompt.point_coords, "point_labels": prompt.point_labels}
    out = sam2.track_step(frame_idx=frame_idx, is_init_cond_frame=is_cond, current_vision_feats=feats.vision_feats,
                          current_vision_pos_embeds=feats.vision_pos, feat_sizes=feats.feat_sizes,
                          point_inputs=point_inputs, mask_inputs=mask_inputs, output_dict=memory,
                          num_frames=num_frames, track_in_reverse=reverse, run_mem_encoder=run_mem_encoder,
                          prev_sam_mask_logits=prev, hidden_inputs=hidden)
    # Keep only what later frames read; the high-res mask is [1, 1, S, S] and would dominate memory.
    out.pop("pred_masks_high_res", None)
    return out
