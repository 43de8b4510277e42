"""Correction clicks on a saved object: the SAM 2 prompts they make, and the stretch of frames they re-track.

Stateless; :meth:`~unipixel_model.session.InferenceSession.refine` checks the clicks and runs the tracking. An
annotator corrects frame by frame, so the clicks of one frame add up (SAM 2's interactive refinement: the earlier
clicks, the new ones and the frame's previous mask), while every other frame's prompts stay as they were.
"""

from __future__ import annotations

import torch

from unipixel_model.mask_decoder import ConditioningPrompt


def refined_prompts(prompts: list[ConditioningPrompt], frame_idx: int, coords_sam: torch.Tensor,
                    labels: torch.Tensor, prev_logits: torch.Tensor | None) -> list[ConditioningPrompt]:
    """The object's prompts after new clicks on ``frame_idx``: that frame's earlier clicks and ``<|seg|>`` tokens
    kept, the new clicks appended, its previous mask fed with them; the clicked frame's prompt comes last.

    Args:
        prompts: the object's current conditioning prompts, one per frame.
        frame_idx: the clicked 0-based frame.
        coords_sam: float [1, P, 2] the new clicks, (x, y) pixels of SAM 2's input square.
        labels: int32 [1, P] 1 positive, 0 negative.
        prev_logits: float [1, 1, h, w] the frame's current low-res logits, or None for a frame never tracked.
    """
    previous = next((p for p in prompts if p.frame_idx == frame_idx), None)
    if previous is not None and previous.point_coords is not None:
        coords_sam = torch.cat([previous.point_coords, coords_sam], dim=1)
        labels = torch.cat([previous.point_labels, labels], dim=1)
    prompt = ConditioningPrompt(frame_idx, hidden=previous.hidden if previous else None, point_coords=coords_sam,
                                point_labels=labels, prev_logits=prev_logits)
    return [p for p in prompts if p.frame_idx != frame_idx] + [prompt]


def stretch_around(frame_idx: int, prompt_frames: list[int], num_frames: int) -> tuple[int, int, int]:
    """(start, lo, hi): a correction on ``frame_idx`` re-tracks the frames lo < f < hi, up to the nearest other
    prompted frame each way (the annotator's, never overwritten) or the video's ends (lo = -1, hi = num_frames)."""
    others = [f for f in prompt_frames if f != frame_idx]
    return (frame_idx, max([f for f in others if f < frame_idx], default=-1),
            min([f for f in others if f > frame_idx], default=num_frames))
