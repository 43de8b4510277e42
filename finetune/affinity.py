"""Colour affinity between neighbouring pixels: what BoxInst's pairwise term needs to learn a mask from a box.

A box says where an object's extent is (the projection term, :func:`finetune.losses.box_projection_loss`), not which
of its pixels are the object: a mask that fills the box scores as well as one that follows the object. BoxInst (Tian
et al., CVPR 2021) adds that neighbouring pixels of one colour probably share a label. Per pixel, its 8 neighbours at
dilation 2 get a similarity ``exp(-||lab_i - lab_j|| / 2)`` (CIE LAB, L in 0..100), and an edge counts as "same
colour" from 0.3 on. Computed at 1/4 of the SAM 2 input size, as BoxInst does at its mask resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unipixel_model.processor import IMAGENET_MEAN, IMAGENET_STD

KERNEL, DILATION = 3, 2
THETA = 2.0  # LAB distance scale of the similarity
STRIDE = 4  # pixels of the SAM 2 input per affinity cell
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))


def neighbours(x: torch.Tensor) -> torch.Tensor:
    """[..., h, w] -> [..., 8, h, w]: each cell's 8 neighbours at ``DILATION`` (zero padding at the borders)."""
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    flat = x.reshape(-1, 1, h, w)
    patches = F.unfold(flat, KERNEL, dilation=DILATION, padding=DILATION)  # [B, 9, h*w]
    centre = KERNEL * KERNEL // 2
    keep = [k for k in range(KERNEL * KERNEL) if k != centre]
    return patches[:, keep].reshape(*lead, KERNEL * KERNEL - 1, h, w)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB [3, h, w] in 0..1 -> CIE LAB [3, h, w] (D65; L 0..100, a and b about -128..127)."""
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,jhw->ihw", torch.tensor(_RGB_TO_XYZ, dtype=rgb.dtype, device=rgb.device), linear)
    xyz = xyz / torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def colour_affinity(sam2_frames: torch.Tensor) -> torch.Tensor:
    """Per frame, the similarity of each cell to its 8 neighbours.

    Args:
        sam2_frames: float [T, 3, S, S], SAM 2's ImageNet-normalised input (``processor.sam2_transform``).
    Returns:
        float [T, 8, S / STRIDE, S / STRIDE] in 0..1 (0 across the image border).
    """
    mean = torch.tensor(IMAGENET_MEAN, device=sam2_frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=sam2_frames.device).view(1, 3, 1, 1)
    rgb = F.avg_pool2d((sam2_frames.float() * std + mean).clamp(0, 1), STRIDE)
    lab = torch.stack([rgb_to_lab(frame) for frame in rgb])  # [T, 3, h, w]
    distance = (neighbours(lab) - lab[:, :, None]).norm(dim=1)  # [T, 8, h, w]
    inside = neighbours(torch.ones_like(lab[:, 0]))  # 0 where a neighbour falls outside the image
    return torch.exp(-distance / THETA) * inside
