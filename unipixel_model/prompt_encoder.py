"""Visual prompts (points, boxes) to ``<|ref|>`` embeddings.

Per object: SAM-style spatial tokens from ``ref_encoder`` (padding token included, so a point
gives 2 tokens and a box 3), flattened and projected to 3C; a 1-D random-Fourier encoding of the
prompt's frame projected to 3C; both concatenated and projected to the LLM width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unipixel_model.errors import UniPixelInputError
from unipixel_model.prompts import BoxPrompt, PointPrompt

POINT_LABEL_POSITIVE = 1
BOX_LABEL_TOP_LEFT = 2
BOX_LABEL_BOTTOM_RIGHT = 3


@dataclass(frozen=True)
class RefPrompt:
    """One ``<|ref|>`` object prompt in SAM 2 input space.

    Attributes:
        coords_sam: float [P, 2], (x, y) pixels of the ``sam2_image_size`` square input.
            P=1 for a point, P=2 (top-left, bottom-right) for a box.
        labels: int [P]: ``[1]`` for a point, ``[2, 3]`` for a box.
        frame_idx: 0-based index, within the frames the LLM sees, of the frame with the prompt.
    """

    coords_sam: torch.Tensor
    labels: torch.Tensor
    frame_idx: int

    def __post_init__(self) -> None:
        points = self.coords_sam.shape[0]
        if self.coords_sam.shape != (points, 2) or points not in (1, 2):
            raise UniPixelInputError(
                f"a <|ref|> prompt is a point [1, 2] or a box [2, 2], got coords of shape {tuple(self.coords_sam.shape)}")
        if tuple(self.labels.shape) != (points,):
            raise UniPixelInputError(f"expected {points} labels, got shape {tuple(self.labels.shape)}")


class PositionEmbedding1DRandom(nn.Module):
    """Random-Fourier encoding of a scalar position (the prompt's frame), as in UniPixel's fork.

    The Gaussian matrix is a persistent buffer: checkpoints store it and it is never re-drawn.
    """

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((1, num_pos_feats)))

    @torch.no_grad()
    def forward_with_coords(self, positions: torch.Tensor, seq_length: int) -> torch.Tensor:
        """Encode positions in ``[0, seq_length - 1]``.

        Args:
            positions: float [R] frame indices.
            seq_length: number of positions (frames padded to an even count).
        Returns:
            [R, 2 * num_pos_feats] in the buffer's dtype (computed in float32).
        """
        gaussian = self.positional_encoding_gaussian_matrix
        coords = positions.float().reshape(-1, 1) / (seq_length - 1)
        coords = (2 * coords - 1) @ gaussian.float()
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1).to(gaussian.dtype)


def sam_input_px(xy_px: torch.Tensor, size_hw: tuple[int, int], side: int) -> torch.Tensor:
    """[..., 2] (x, y) pixels of a ``size_hw`` (H, W) frame -> float32 pixels of SAM 2's ``side`` square input."""
    height, width = size_hw
    return xy_px.float() * torch.tensor([side / width, side / height])


def mask_input(mask: torch.Tensor, side: int) -> torch.Tensor:
    """bool or float [H, W] mask of a frame -> float [1, 1, side, side], SAM 2's mask prompt (bilinear)."""
    return F.interpolate(mask.float()[None, None], size=(side, side), mode="bilinear", align_corners=False)


def ref_prompt_px(prompt: PointPrompt | BoxPrompt, llm_frame: int, size_hw: tuple[int, int],
                  side: int) -> RefPrompt:
    """A point or box in pixels of a ``size_hw`` (H, W) frame -> its :class:`RefPrompt`. ``llm_frame`` is the
    0-based index of the prompt's frame among the frames the LLM reads (not the video's frame index). The session
    and the trainer's batches both prompt this way."""
    if isinstance(prompt, PointPrompt):
        xy = torch.tensor([[prompt.x_px, prompt.y_px]])
        return RefPrompt(sam_input_px(xy, size_hw, side), torch.tensor([POINT_LABEL_POSITIVE]), llm_frame)
    box = torch.tensor([[prompt.x1_px, prompt.y1_px], [prompt.x2_px, prompt.y2_px]])
    return RefPrompt(sam_input_px(box, size_hw, side), torch.tensor([BOX_LABEL_TOP_LEFT, BOX_LABEL_BOTTOM_RIGHT]),
                     llm_frame)


@dataclass
class RefEncoding:
    """Intermediates of :func:`encode_ref_prompts` (all rows in prompt order).

    Attributes:
        embeds: [R, D] what goes into the ``<|ref|>`` positions.
        sparse_tokens: per object [1, P+1, C], the ``ref_encoder`` output.
        proj_input: [R, 6C], the concatenation before ``ref_proj``'s GELU.
        temporal_in: [R, C], ``tem_pe(frame) + tem_emb[0]``.
        temporal: [R, 3C], output of ``tem_proj``.
    """

    embeds: torch.Tensor
    sparse_tokens: list[torch.Tensor]
    proj_input: torch.Tensor
    temporal_in: torch.Tensor
    temporal: torch.Tensor


def encode_ref_prompts(modules: nn.Module, prompts: list[RefPrompt], num_llm_frames_padded: int) -> RefEncoding:
    """Embed visual prompts for the ``<|ref|>`` tokens.

    Args:
        modules: the UniPixel model (provides ``ref_encoder``, ``ref_proj_single``, ``ref_proj_double``,
            ``ref_proj``, ``tem_pe``, ``tem_emb``, ``tem_proj``).
        prompts: one per ``<|ref|>`` token, in text order.
        num_llm_frames_padded: frames the LLM sees after even padding (2 x T_grid); the temporal
            encoding normalises the frame index by this minus one.
    Returns:
        :class:`RefEncoding` with ``embeds`` [R, D].
    """
    dtype = modules.ref_proj_single.weight.dtype
    device = modules.ref_proj_single.weight.device
    spatial, tokens = [], []
    for prompt in prompts:
        coords = prompt.coords_sam.to(device=device, dtype=torch.float32)[None]
        labels = prompt.labels.to(device=device, dtype=torch.int32)[None]
        sparse, _ = modules.ref_encoder((coords, labels), None, None)
        tokens.append(sparse)
        flat = sparse.reshape(1, -1).to(dtype)
        proj = modules.ref_proj_single if sparse.shape[1] == 2 else modules.ref_proj_double
        spatial.append(proj(flat))
    frames = torch.tensor([p.frame_idx for p in prompts], device=device)
    temporal_in = modules.tem_pe.forward_with_coords(frames, num_llm_frames_padded).to(dtype)
    temporal_in = temporal_in + modules.tem_emb.weight[0]
    temporal = modules.tem_proj(temporal_in)
    proj_input = torch.cat([torch.cat(spatial, dim=0), temporal], dim=-1)
    return RefEncoding(modules.ref_proj(proj_input), tokens, proj_input, temporal_in, temporal)
