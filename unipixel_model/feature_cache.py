"""Per-session caches: SAM 2 frame features (LRU under a byte cap) and ViT outputs per frame set."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from unipixel_model import processor
from unipixel_model.errors import UniPixelInputError
from unipixel_model.media import Frames
from unipixel_model.sam2_adapter import FrameFeatures, UniPixelSAM2


def encode_chunk(device: torch.device) -> int:
    """Frames per SAM 2 backbone call on ``device``: 4 on an accelerator (keeps it busy), 1 on a CPU.

    A CPU gains nothing from the batch but holds every frame's activations at once, the peak of a
    propagation (Hiera-B+ at 768 px, float32, 2 threads, 2026-12-05: 693-756 MiB above the model for
    4 frames against 157-205 MiB for one, 2.9-3.1 against 2.6 s per frame).
    """
    return 1 if device.type == "cpu" else 4


class SAM2FeatureCache:
    """Backbone features of video frames, computed in small chunks on demand.

    Only frame-specific features count against ``max_bytes``; positional encodings are the
    same for every frame and stored once. Chunks follow the access direction so a backward
    propagation does not encode frames it will never read.

    Args:
        sam2: the SAM 2 module (its device and dtype are used).
        frames: the decoded video.
        max_bytes: cap on cached feature bytes (oldest frames are evicted first).
        chunk: frames encoded per backbone call; default :func:`encode_chunk` of SAM 2's device.
    """

    def __init__(self, sam2: UniPixelSAM2, frames: Frames, max_bytes: int, chunk: int | None = None) -> None:
        self.sam2, self.frames, self.max_bytes = sam2, frames, max_bytes
        self.chunk = chunk or encode_chunk(next(sam2.parameters()).device)
        self._cache: OrderedDict[int, FrameFeatures] = OrderedDict()
        self._bytes = 0
        self._last: int | None = None
        self._pos: list[torch.Tensor] | None = None
        self.encoded_frames = 0  # how many backbone encodings ran (for tests and benchmarks)

    def __call__(self, frame_idx: int) -> FrameFeatures:
        backward = self._last is not None and frame_idx == self._last - 1
        self._last = frame_idx
        if frame_idx not in self._cache:
            self._encode(frame_idx, backward)
        self._cache.move_to_end(frame_idx)
        entry = self._cache[frame_idx]
        self._evict()  # after the move: the frame asked for is the newest and is never the one evicted
        return entry

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _encode(self, frame_idx: int, backward: bool) -> None:
        chunk = self.chunk
        if self._cache:  # never encode more frames ahead than the cap keeps: they would be evicted unread
            frame_bytes = next(iter(self._cache.values())).feats_nbytes
            chunk = max(1, min(chunk, self.max_bytes // max(1, frame_bytes)))
        span = range(frame_idx, max(-1, frame_idx - chunk), -1) if backward else \
            range(frame_idx, min(self.frames.num_frames, frame_idx + chunk))
        wanted = sorted(i for i in span if i not in self._cache)
        size = self.sam2.image_size
        device = next(self.sam2.parameters()).device
        on_device = device if getattr(self.sam2, "frames_on_device", False) else None  # speed lever gpu_frames
        batch = processor.sam2_transform(self.frames.take(wanted), size, on_device).to(device)
        for i, feats in zip(wanted, self.sam2.encode_frames(batch)):
            if self._pos is None:  # identical for every frame: keep one copy
                self._pos = [p.clone() for p in feats.vision_pos]
            entry = FrameFeatures([f.clone() for f in feats.vision_feats], self._pos, feats.feat_sizes)
            self._cache[i] = entry
            self._bytes += entry.feats_nbytes
            self.encoded_frames += 1

    def _evict(self) -> None:
        """Drop the least recently used frames until the cap holds; the newest frame always stays (a cap below one
        frame's features, e.g. 1 MiB at 1024 px where a frame takes 16 MiB, keeps just the frame being read)."""
        while self._bytes > self.max_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.feats_nbytes


class VisionCache:
    """ViT outputs per set of LLM frames, so asking again about the same frames skips the ViT.

    Keeps the ``max_entries`` most recent frame sets. ``min_pixels``/``base_max_pixels`` are the
    official per-frame budget (128 and 256 merged patches, the max scaled by 16/frames).
    """

    def __init__(self, max_entries: int = 4, min_pixels: int = processor.MIN_PIXELS,
                 base_max_pixels: int = processor.BASE_MAX_PIXELS) -> None:
        self.max_entries, self.min_pixels, self.base_max_pixels = max_entries, min_pixels, base_max_pixels
        self._entries: OrderedDict[tuple, tuple[processor.LLMVideo, tuple | None]] = OrderedDict()

    def video(self, frames: Frames, indices: tuple[int, ...]) -> processor.LLMVideo:
        """The :class:`LLMVideo` of ``indices`` (pixel budget per the official inference)."""
        if indices not in self._entries:
            min_px, max_px = processor.pixel_budget(len(indices), self.min_pixels, self.base_max_pixels)
            self._entries[indices] = (processor.prepare_llm_video(frames.take(list(indices)), min_px, max_px), None)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        self._entries.move_to_end(indices)
        return self._entries[indices][0]

    def vision(self, indices: tuple[int, ...]) -> tuple | None:
        entry = self._entries.get(indices)
        return entry[1] if entry else None

    def store_vision(self, indices: tuple[int, ...], vision: tuple) -> None:
        if indices in self._entries:
            self._entries[indices] = (self._entries[indices][0], vision)


def llm_frame_indices(num_frames: int, required: list[int], max_frames: int = processor.MAX_LLM_FRAMES) -> tuple[int, ...]:
    """Uniform frames for the LLM that include every ``required`` frame (prompt frames).

    Each required frame replaces the nearest uniformly sampled one, so a visual prompt's frame
    maps exactly to one LLM frame.
    """
    picked = processor.sample_frame_indices(num_frames, max_frames)
    for frame in sorted(set(required)):
        if frame in picked:
            continue
        free = [i for i, p in enumerate(picked) if p not in required]
        nearest = min(free, key=lambda i: abs(picked[i] - frame)) if free else None
        if nearest is None:
            raise UniPixelInputError(f"{len(set(required))} distinct prompt frames; the LLM sees at most "
                                     f"{max_frames} frames, so put the prompts on at most {max_frames} frames")
        picked[nearest] = frame
    return tuple(sorted(picked))


def to_numpy_mask(mask) -> np.ndarray:
    """bool [H, W] numpy view of a mask given as numpy or torch."""
    return mask.numpy().astype(bool) if isinstance(mask, torch.Tensor) else np.asarray(mask, dtype=bool)
