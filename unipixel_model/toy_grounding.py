"""The toy model's text grounding: where in the frames a text query's words point.

The toy's LLM (2 layers, 64 wide, byte-level tokens) does not carry a query's words to ``<|seg|>``: a probe trained on
its ``<|seg|>`` state picks the named object at chance (``benchmarks/toy_grounding_probe.py``). This head reads the
words themselves (hashed, one learned vector per word) and scores every cell of SAM 2's stride-8 features, plus each
cell's colour, its change to the neighbouring frames and its place in the frame, against them. When the model
serves a text query, the best cell becomes a positive click beside the ``<|seg|>`` tokens on its frame (see
:meth:`~unipixel_model.session.InferenceSession.segment`), so SAM 2 segments what the words name.

Released UniPixel models have no such head (``toy_text_grounding`` is 0 in their config); the ``toy`` preset sets
its width. Frames are SAM 2 inputs (normalised, [T, 3, S, S]); cells are the stride-8 grid [h, w].
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

WORD_BUCKETS = 1024  # hashed word vocabulary: the world's ~40 words never collide in 1024 buckets
FEATURE_LEVEL = 1  # SAM 2's backbone_fpn level at stride 8 (16x16 cells at the toy's 128 px)
CELL_CHANNELS = 11  # colour (3), change to the next and from the previous frame (3 + 3), x and y (2)
_WORD = re.compile(r"[a-z]+")


def query_words(text: str) -> list[str]:
    """The lower-case words of a query ("Please segment the red circle." -> please, segment, the, red, circle)."""
    return _WORD.findall(text.lower())


def word_ids(words: list[str], buckets: int = WORD_BUCKETS) -> torch.Tensor:
    """Bucket ids [N] of words, by CRC-32 (the same in every process, unlike ``hash``)."""
    return torch.tensor([zlib.crc32(w.encode()) % buckets for w in words] or [0], dtype=torch.long)


def cell_inputs(frames: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Per cell: mean colour, its change to the next frame and from the previous one (0 at the ends and for a
    single frame), and the cell's x, y in -1..1. frames [T, 3, S, S] -> [T, 11, h, w]."""
    colour = F.adaptive_avg_pool2d(frames.float(), size_hw)
    ahead = torch.cat([colour[1:], colour[-1:]]) - colour
    behind = colour - torch.cat([colour[:1], colour[:-1]])
    height, width = size_hw
    ys = torch.linspace(-1, 1, height, device=frames.device)[:, None].expand(height, width)
    xs = torch.linspace(-1, 1, width, device=frames.device)[None, :].expand(height, width)
    place = torch.stack([xs, ys])[None].expand(frames.shape[0], 2, height, width)
    return torch.cat([colour, ahead, behind, place], 1)


@dataclass(frozen=True)
class GroundedPoint:
    """The best cell: its frame (0-based, among the frames scored) and centre in SAM 2 input pixels."""

    frame: int
    x_px: float
    y_px: float
    logit: float


class TextGrounding(nn.Module):
    """Cell logits [T, h, w] for a query: the words' mean vector modulates (FiLM) the cells' features, then two 3x3
    convolutions (a shape spans several cells) score each cell.

    Args:
        feature_dim: channels of SAM 2's stride-8 features (``sam_mask_decoder.conv_s1.out_channels``).
        width: the head's width; ``buckets``: the hashed word vocabulary.
    """

    def __init__(self, feature_dim: int, width: int = 64, buckets: int = WORD_BUCKETS) -> None:
        super().__init__()
        self.buckets = buckets
        self.words = nn.EmbeddingBag(buckets, width, mode="mean")
        self.film = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 2 * width))
        self.cells = nn.Conv2d(feature_dim + CELL_CHANNELS, width, 1)
        self.score = nn.Sequential(nn.GELU(), nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                   nn.Conv2d(width, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, 1, 1))

    def forward(self, text: str, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """text: the query; features [T, C, h, w] SAM 2 stride-8 features; frames [T, 3, S, S] -> logits [T, h, w]."""
        ids = word_ids(query_words(text), self.buckets).to(features.device)
        scale, shift = self.film(self.words(ids[None]))[0].chunk(2)
        cells = torch.cat([features.float(), cell_inputs(frames, tuple(features.shape[-2:]))], 1)
        hidden = self.cells(cells.to(self.cells.weight.dtype))
        hidden = hidden * (1 + scale[None, :, None, None]) + shift[None, :, None, None]
        return self.score(hidden)[:, 0]

    @torch.no_grad()
    def point(self, text: str, features: torch.Tensor, frames: torch.Tensor) -> GroundedPoint:
        """The best cell over every frame, as a click in SAM 2 input pixels."""
        logits = self(text, features, frames).float()
        frame, row, col = torch.unravel_index(logits.argmax(), logits.shape)
        side_y, side_x = frames.shape[-2] / logits.shape[-2], frames.shape[-1] / logits.shape[-1]
        return GroundedPoint(int(frame), (int(col) + 0.5) * side_x, (int(row) + 0.5) * side_y,
                             float(logits.max()))


def grounding_loss(logits: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """-log of the softmax mass, over every cell of every frame, on the named object.

    Args:
        logits: [T, h, w] cell scores; share: [T, h, w] the named object's share of each cell, 0..1.
    Returns:
        A scalar; 0 (with a graph) when the object shows on no frame.
    """
    if not bool((share > 0).any()):
        return logits.sum() * 0
    mass = (logits.flatten().float().softmax(0) * share.flatten()).sum().clamp_min(1e-6)
    return -mass.log()


def stride8_features(frame_features: list) -> torch.Tensor:
    """SAM 2's stride-8 features of cached frames (:class:`~unipixel_model.sam2_adapter.FrameFeatures`, as the
    inference session keeps them: [h*w, 1, C] per level) -> [T, C, h, w]."""
    maps = []
    for feats in frame_features:
        height, width = feats.feat_sizes[FEATURE_LEVEL]
        maps.append(feats.vision_feats[FEATURE_LEVEL].permute(1, 2, 0).reshape(1, -1, height, width))
    return torch.cat(maps)
