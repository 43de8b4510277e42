"""Object masks to ``<|mem|>`` tokens: the mask grid, the prompt prefix and masked pooling.

UniPixel's object memory bank is a prompting protocol, not a module: masks of objects [1], [2], ...
become a grid mask over the LLM's merged visual tokens (``build_refer_mask``), a text prefix with
one ``<|mem|>`` per (object, pair of frames) where the object is present (``mem_prefix``), and a
masked mean of the merger-MLP input for each such token (``pool_mem_features``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unipixel_model import templates
from unipixel_model.errors import UniPixelInputError

MEM_TOKEN = templates.MEM_TOKEN
_MERGED_PATCH_PX = 28  # one merged LLM token covers 28x28 resized pixels


def build_refer_mask(masks: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Down-sample object masks to the merged token grid, as the official dataset code does.

    Args:
        masks: bool/float [T, O, H, W] at original resolution over the LLM's (unpadded) frames.
        grid_hw: (grid_h, grid_w) patch grid of one LLM frame (``video_grid_thw[1:]``).
    Returns:
        bool [ceil(T/2), O, grid_h/2, grid_w/2]: True where the object covers part of a merged token
        in either frame of the pair.
    """
    pooled = time_pool_masks(masks).float()
    size = (grid_hw[0] * 14, grid_hw[1] * 14)
    resized = F.interpolate(pooled, size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.max_pool2d(resized, kernel_size=_MERGED_PATCH_PX, stride=_MERGED_PATCH_PX) > 0


def time_pool_masks(masks: torch.Tensor) -> torch.Tensor:
    """bool/float [T, O, H, W] -> bool [ceil(T/2), O, H, W]: OR over frame pairs, the last frame
    repeated when T is odd (the LLM frames were padded that way)."""
    if masks.ndim != 4:
        raise UniPixelInputError(f"masks must be [T, O, H, W], got shape {tuple(masks.shape)}")
    masks = masks.bool()
    if masks.shape[0] % 2 == 1:
        masks = torch.cat([masks, masks[-1:]], dim=0)
    return masks.reshape(masks.shape[0] // 2, 2, *masks.shape[1:]).any(dim=1)


def present_chunks(refer_mask: torch.Tensor) -> list[list[int]]:
    """Per object, the temporal chunks (pairs of frames) where its grid mask is non-empty."""
    any_cell = refer_mask.flatten(2).any(dim=-1)  # [T_grid, O]
    return [torch.nonzero(any_cell[:, o]).flatten().tolist() for o in range(any_cell.shape[1])]


def mem_prefix(obj_ids: list[int], refer_mask: torch.Tensor, num_frames: int | None) -> str:
    """The memory-injection prefix glued before the question.

    Args:
        obj_ids: the ids shown to the model, ``[1]``, ``[2]``, ... in mask order.
        refer_mask: bool [T_grid, O, h, w] from :func:`build_refer_mask`.
        num_frames: frames the LLM sees before even padding; ``None`` for an image (no time tags).
    Raises:
        UniPixelInputError: if an object's mask is empty on every frame (it would get no token).
    """
    chunks = present_chunks(refer_mask)
    if len(obj_ids) != len(chunks):
        raise UniPixelInputError(f"expected one id per mask, got {len(obj_ids)} ids for {len(chunks)} masks")
    for obj_id, obj_chunks in zip(obj_ids, chunks):
        if not obj_chunks:
            raise UniPixelInputError(f"the mask of object [{obj_id}] is empty after down-sampling to the "
                                     f"{tuple(refer_mask.shape[-2:])} token grid; give a larger mask")
    return templates.mem_prefix_lines(dict(zip(obj_ids, chunks)), num_frames)


def pool_mem_features(window_ordered: torch.Tensor, refer_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean of the merger-MLP input for every (object, chunk) with a non-empty mask.

    The features are in the ViT's window-permuted order while the mask is raster-ordered; the
    released ``msk_proj`` was trained on exactly this mismatch, so it is reproduced, not fixed.

    Args:
        window_ordered: [T_grid * h * w, M] merger-MLP input rows in window order.
        refer_mask: bool [T_grid, O, h, w] (h, w = merged grid).
    Returns:
        [K, M], object-major then chunk-ascending; K = number of non-empty (object, chunk) pairs.
    """
    t_grid, num_obj = refer_mask.shape[:2]
    step = refer_mask.shape[2] * refer_mask.shape[3]
    if window_ordered.shape[0] != t_grid * step:
        raise UniPixelInputError(f"refer_mask covers {t_grid * step} visual tokens "
                                 f"({t_grid}x{step}) but the video has {window_ordered.shape[0]}")
    pooled = []
    for obj in range(num_obj):
        for chunk in range(t_grid):
            cells = refer_mask[chunk, obj].flatten().to(window_ordered.device)
            if cells.any():
                rows = window_ordered[chunk * step:(chunk + 1) * step]
                pooled.append(rows[cells].mean(dim=0))
    if not pooled:
        return window_ordered.new_zeros((0, window_ordered.shape[1]))
    return torch.stack(pooled)
