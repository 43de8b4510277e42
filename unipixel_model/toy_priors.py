"""The toy model's prompt priors: what a tiny SAM 2 trained from scratch on a CPU needs besides its own prompts.

Released SAM 2.1 / UniPixel models never use them (every key is 0, off, in their yaml); the ``toy`` preset turns
them on in ``configs/sam2.1_hiera_toy.yaml`` (README: The toy model):

* :func:`click_prior` (``click_prior_logit``): clicks and boxes are also drawn into the dense mask prompt;
* :func:`track_prior` (``track_prior_margin``): a tracked frame is also prompted with the box of its neighbour's
  mask;
* :func:`box_pass_prompt` (``box_pass_margin``): when the model serves (SAM 2's ``inference_mode``, never in
  training), a prompt without a box (clicks, a text query's tokens) is decoded a second time with the box of its
  first mask added.

Coordinates are SAM 2 input pixels (0..image_size); masks are low-res logits [B, 1, h, w] (``pred_masks``).
"""

from __future__ import annotations

import numpy as np
import torch

_BOX = (2, 3)  # SAM 2's point labels of a box's top-left and bottom-right corners


def click_prior(coords: torch.Tensor, labels: torch.Tensor, size_hw: tuple[int, int], image_size: int,
                logit: float) -> torch.Tensor:
    """A dense prompt [B, 1, h, w] (mask-prompt logits) drawn from the sparse prompts.

    Positive clicks (label 1) add a Gaussian bump of height ``logit`` (sigma: 1/32 of the side),
    negative clicks (0) subtract one, a box (labels 2, 3) adds ``logit / 2`` inside it. A toy model
    trained from scratch on a CPU learns to find the clicked object far sooner from a local dense
    cue than from matching positional encodings (see the README's toy-model section).

    Args:
        coords: [B, N, 2] x, y in SAM 2 input pixels (0..image_size).
        labels: [B, N] int (1 positive, 0 negative, 2/3 box corners, -1 padding).
    """
    height, width = size_hw
    scale = torch.tensor([width / image_size, height / image_size], device=coords.device)
    xy = coords.float() * scale  # [B, N, 2] in mask-prompt cells
    ys = torch.arange(height, device=coords.device).float()[:, None] + 0.5
    xs = torch.arange(width, device=coords.device).float()[None, :] + 0.5
    sigma = max(height, width) / 32
    dist2 = (xs[None, None] - xy[..., 0, None, None]) ** 2 + (ys[None, None] - xy[..., 1, None, None]) ** 2
    bumps = torch.exp(-dist2 / (2 * sigma ** 2))  # [B, N, h, w]
    sign = (labels == 1).float() - (labels == 0).float()
    prior = (bumps * sign[..., None, None]).sum(1) * logit
    for b in range(coords.shape[0]):
        corners = xy[b][(labels[b] == 2) | (labels[b] == 3)]
        if len(corners) == 2:
            (x1, y1), (x2, y2) = corners.min(0).values.tolist(), corners.max(0).values.tolist()
            inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
            prior[b] = prior[b] + inside.float() * logit / 2
    return prior[:, None].to(coords.dtype if coords.is_floating_point() else torch.float32)


def track_prior(output_dict: dict, frame_idx: int, reverse: bool, image_size: int, margin: float) -> dict | None:
    """Box prompts for a tracked frame: per object, the box of the mask on the frame it is tracked from (the one
    before, or after when tracking in reverse), see :func:`mask_box_prompt`. None when that frame was not tracked.

    Args:
        output_dict: SAM 2's per-frame outputs (``cond_frame_outputs`` / ``non_cond_frame_outputs``, keyed by 0-based
            frame_idx); ``pred_masks`` are low-res logits [B, 1, h, w].
        frame_idx: the 0-based frame about to be tracked.

    A toy model trained on a CPU learns to follow an object from its box far sooner than through memory attention
    alone (see the README's toy-model section).
    """
    source = frame_idx + 1 if reverse else frame_idx - 1
    previous = output_dict["cond_frame_outputs"].get(source) or output_dict["non_cond_frame_outputs"].get(source)
    if previous is None:
        return None
    return mask_box_prompt(previous["pred_masks"], image_size, margin)


def box_pass_prompt(point_inputs: dict | None, hidden: bool, pred_masks: torch.Tensor, image_size: int,
                    margin: float) -> dict | None:
    """The prompt for a second decoding of a prompt without a box: its clicks plus the box of the mask the first
    decoding gave (:func:`mask_box_prompt`). None for a box prompt (it has its box) or for clicks that are all
    negative without hidden tokens.

    Rows get the box when they have a positive click or when the hidden tokens (``<|ref|>`` / ``<|seg|>``) prompt
    them; other rows get padding. The toy's masks from clicks covered the part of the object around the click
    (click J&F 0.69 on its frame, 0.82 with this pass; a box gave 0.89), and its masks from a text query's tokens a
    blob of the object (text J&F 0.37 averaged over 11 synthetic sets, 0.46 with it).

    Args:
        point_inputs: {"point_coords" float [B, P, 2], "point_labels" int [B, P]} or None.
        hidden: hidden tokens prompt this decoding too.
        pred_masks: low-res logits [B, 1, h, w] of the first decoding.
    Returns:
        {"point_coords" [B, P + 2, 2], "point_labels" [B, P + 2]} (P = 0 without clicks), or None.
    """
    if point_inputs is None:
        return mask_box_prompt(pred_masks, image_size, margin) if hidden else None
    labels = point_inputs["point_labels"]
    boxed_rows = (labels == 1).any(dim=1) | hidden
    if ((labels == _BOX[0]) | (labels == _BOX[1])).any() or not boxed_rows.any():
        return None
    box = mask_box_prompt(pred_masks, image_size, margin)
    box["point_labels"][~boxed_rows.to(box["point_labels"].device)] = -1
    return {"point_coords": torch.cat([point_inputs["point_coords"], box["point_coords"].to(labels.device)], 1),
            "point_labels": torch.cat([labels, box["point_labels"].to(labels.device)], 1)}


def mask_box_prompt(pred_masks: torch.Tensor, image_size: int, margin: float) -> dict:
    """Per object, the box of the largest piece of its mask, grown by ``margin`` (a share of the box side) plus 2 px
    and kept inside the image; padding (-1) for an empty mask.

    Args:
        pred_masks: low-res logits [B, 1, h, w].
    Returns:
        ``{"point_coords": float [B, 2, 2] (x, y in SAM 2 input pixels), "point_labels": int32 [B, 2] (2, 3 box
        corners or -1 padding)}``.
    """
    logits = pred_masks[:, 0]
    scale = image_size / logits.shape[-1]
    coords = torch.zeros(logits.shape[0], 2, 2, device=logits.device)
    labels = torch.full((logits.shape[0], 2), -1, dtype=torch.int32, device=logits.device)
    for b, mask in enumerate(logits > 0):
        cells = _largest_piece_box(mask)
        if cells is None:
            continue
        x1, y1, x2, y2 = (v * scale for v in cells)
        grow_x, grow_y = margin * (x2 - x1) + 2, margin * (y2 - y1) + 2
        coords[b] = torch.tensor([[max(0.0, x1 - grow_x), max(0.0, y1 - grow_y)],
                                  [min(image_size, x2 + grow_x), min(image_size, y2 + grow_y)]])
        labels[b] = torch.tensor(_BOX, dtype=torch.int32)
    return {"point_coords": coords, "point_labels": labels}


def _largest_piece_box(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2), end-exclusive, in mask cells, of the largest 8-connected piece of ``mask`` (bool [h, w]);
    None when it is empty. Stray cells on other objects would otherwise open the box over the whole frame: the
    toy's tracks fell apart there (over all frames, click J&F 0.72 -> 0.79 on the README's held-out set, 0.54 ->
    0.76 on clips of 3-4 objects)."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.cpu().numpy().astype(np.uint8), connectivity=8)
    if count <= 1:  # the background alone
        return None
    x, y, w, h, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))].tolist()
    return x, y, x + w, y + h
