"""Inputs the way the official inference builds them: frames, pixels, chat text, token ids.

The LLM and SAM 2 see the same frames through different resizers: Qwen's ``smart_resize`` to
multiples of 28 with PIL bicubic (pixel budget scaled by ``16 / num_frames``), and a square
bilinear+antialias resize to ``sam2_image_size`` with ImageNet normalisation. Images take the video
path (one frame, padded to two). All of this is plain numpy/torch/PIL so that it matches the
official processor bit for bit without transformers' torchvision-based video processor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unipixel_model.errors import UniPixelInputError

PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH = 2
FACTOR = PATCH_SIZE * MERGE_SIZE
MIN_PIXELS = 128 * 28 * 28
BASE_MAX_PIXELS = 256 * 28 * 28
MAX_LLM_FRAMES = 16
FPS = 2.0
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SYSTEM_PROMPT = "You are a helpful assistant."
VIDEO_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"


@dataclass
class LLMVideo:
    """What the ViT receives for one video (or image as a 1-frame video).

    Attributes:
        pixel_values_videos: float32 [4N, 1176] patch rows ordered (t, h/2, w/2, 2, 2).
        video_grid_thw: long [1, 3] = [T'/2, h/14, w/14].
        second_per_grid_ts: float32 [1].
        num_frames: frames before even padding (what the memory prefix counts).
        resized_frames: uint8 [T', h, w, 3] after resize and padding.
    """

    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor
    num_frames: int
    resized_frames: np.ndarray

    @property
    def num_tokens(self) -> int:
        """N: merged visual tokens, i.e. ``<|video_pad|>`` tokens in the text."""
        return int(self.video_grid_thw.prod()) // MERGE_SIZE ** 2

    @property
    def grid_hw(self) -> tuple[int, int]:
        return int(self.video_grid_thw[0, 1]), int(self.video_grid_thw[0, 2])


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: sides to multiples of ``factor`` within the pixel budget."""
    if max(height, width) / min(height, width) > 200:
        raise UniPixelInputError(f"aspect ratio must be below 200, got {height}x{width}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def pixel_budget(num_frames: int, min_pixels: int = MIN_PIXELS, base_max_pixels: int = BASE_MAX_PIXELS,
                 frames_budget: int = MAX_LLM_FRAMES) -> tuple[int, int]:
    """(min_pixels, max_pixels) per frame: the max scales by ``int(frames_budget / num_frames)``."""
    return min_pixels, base_max_pixels * max(1, int(frames_budget / num_frames))


def sample_frame_indices(num_frames: int, max_frames: int = MAX_LLM_FRAMES) -> list[int]:
    """Uniform indices the official ``load_video`` keeps when a video has more than ``max_frames``."""
    if num_frames <= max_frames:
        return list(range(num_frames))
    picked = np.round(np.arange(0, num_frames, (num_frames - 1) / (max_frames - 1)))[:max_frames]
    return [int(i) for i in picked]


def prepare_llm_video(frames: np.ndarray, min_pixels: int, max_pixels: int) -> LLMVideo:
    """Resize, pad to an even count, normalise and patchify frames for the ViT.

    Args:
        frames: uint8 [T, H, W, 3] RGB.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise UniPixelInputError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    num_frames, height, width = frames.shape[:3]
    h, w = smart_resize(height, width, min_pixels, max_pixels)
    resized = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])
    if num_frames % 2:
        resized = np.concatenate([resized, resized[-1:]], axis=0)
    x = torch.from_numpy(resized).permute(0, 3, 1, 2).float()  # [T', 3, h, w]
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255.0
    x = (x - mean) / std
    grid_t, grid_h, grid_w = x.shape[0] // TEMPORAL_PATCH, h // PATCH_SIZE, w // PATCH_SIZE
    x = x.reshape(grid_t, TEMPORAL_PATCH, 3, grid_h // MERGE_SIZE, MERGE_SIZE, PATCH_SIZE,
                  grid_w // MERGE_SIZE, MERGE_SIZE, PATCH_SIZE)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = x.reshape(grid_t * grid_h * grid_w, 3 * TEMPORAL_PATCH * PATCH_SIZE * PATCH_SIZE)
    return LLMVideo(pixel_values.contiguous(), torch.tensor([[grid_t, grid_h, grid_w]]),
                    torch.tensor([TEMPORAL_PATCH / FPS], dtype=torch.float32), num_frames, resized)


def sam2_transform(frames: np.ndarray, size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """SAM 2 input: uint8 [T, H, W, 3] -> float32 [T, 3, size, size], /255, resized, ImageNet-normalised.

    Args:
        device: where to resize (the uint8 frames are moved there first; the ``gpu_frames``
            speed lever). None: on the CPU, the reference path.
    """
    x = torch.from_numpy(np.ascontiguousarray(frames))
    if device is not None:
        x = x.to(device)
    x = x.permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def render_chat(turns: list[tuple[str, str | None]], assistant_prefix: str = "") -> str:
    """The Qwen2-VL chat template for one video and several turns.

    Args:
        turns: (user text, assistant text or None); the video precedes the first user text.
            A final turn with ``None`` ends with the generation prompt (plus ``assistant_prefix``).
    Returns:
        The text with a single ``<|video_pad|>`` placeholder.
    """
    parts = [f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"]
    for i, (user, assistant) in enumerate(turns):
        video = VIDEO_PLACEHOLDER if i == 0 else ""
        parts.append(f"<|im_start|>user\n{video}{user}<|im_end|>\n<|im_start|>assistant\n")
        if assistant is None:
            if i != len(turns) - 1:
                raise UniPixelInputError("only the last turn may lack an assistant answer")
            parts.append(assistant_prefix)
        else:
            parts.append(f"{assistant}<|im_end|>\n")
    return "".join(parts)


def expand_video_placeholder(text: str, num_tokens: int) -> str:
    """Replace the single ``<|video_pad|>`` by ``num_tokens`` copies, as the Qwen processor does."""
    if text.count("<|video_pad|>") != 1:
        raise UniPixelInputError(f"expected one <|video_pad|> placeholder, got {text.count('<|video_pad|>')}")
    return text.replace("<|video_pad|>", "<|video_pad|>" * num_tokens)


def tokenize(tokenizer, text: str) -> torch.Tensor:
    """Token ids [1, L] of an already expanded chat text (special tokens are kept as tokens)."""
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]], dtype=torch.long)
