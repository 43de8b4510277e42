"""A :class:`TrainSample` -> the tensors one training step needs (spec §5.2).

The LLM inputs are built exactly as the inference session builds them (``processor.render_chat``,
``expand_video_placeholder``, ``tokenize``), with the training pixel budget (``frames_per_video /
T`` scaling, 8 in stage 3). Labels are −100 up to and including
``"<|im_end|>\\n<|im_start|>assistant\\n"``; the response and its closing ``<|im_end|>`` are
supervised (the official ``apply_chat_template(...).strip()`` drops the trailing newline). SAM 2
gets the same frames through its own transform, and targets are resized to ``sam2_image_size``.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from finetune.losses import IGNORE_INDEX
from finetune.recipe import TrainRecipe
from finetune.sample import SEG_TOKEN, TrainSample
from unipixel_model import processor
from unipixel_model.config import UniPixelConfig
from unipixel_model.errors import UniPixelInputError
from unipixel_model.media import Frames, frame_folder_files, load_frames, read_frame_files
from unipixel_model.memory_bank import build_refer_mask, mem_prefix
from unipixel_model.modeling import UniPixelInputs
from unipixel_model.prompt_encoder import RefPrompt, ref_prompt_px

ASSISTANT_HEADER = "<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class SamConditioning:
    """How SAM 2 is prompted for a group of a sample's objects; positions index the sample's frames.

    Attributes:
        objects: the target objects (rows of ``target_masks``' O axis) this conditioning applies to.
        frame: the conditioning frame (position in the sample's frames).
        directions: ``("forward",)`` or ``("forward", "backward")`` from ``frame``.
        point_coords: float [O, P, 2] clicks/box corners in SAM 2 input pixels, or None.
        point_labels: int32 [O, P] (1 click, 2/3 box corners, -1 padding), or None.
        mask: float [O, 1, S, S] mask prompts (SAM 2 then outputs the mask itself), or None.
        use_hidden: feed the ``<|seg|>`` tokens on ``frame``.
        corrections: correction clicks simulated on ``frame`` after the first prediction.
        probe_frame: another frame decoded from the tokens alone, without memory, or None.
        box_supervised: targets are filled boxes (projection loss).
    """

    objects: list[int] = field(default_factory=lambda: [0])
    frame: int = 0
    directions: tuple[str, ...] = ("forward",)
    point_coords: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    use_hidden: bool = True
    corrections: int = 0
    probe_frame: int | None = None
    box_supervised: bool = False

    def to(self, device: torch.device | str) -> "SamConditioning":
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        return replace(self, point_coords=move(self.point_coords), point_labels=move(self.point_labels),
                       mask=move(self.mask))


@dataclass
class TrainBatch:
    """Model inputs and targets of one sample (batch size 1).

    Attributes:
        kind: the sample's kind.
        inputs: LLM inputs (``input_ids`` [1, L], video patches, ``<|ref|>`` prompts, ``refer_mask``).
        labels: long [L]; ``IGNORE_INDEX`` on the prompt.
        sam2_frames: float32 [T, 3, S, S] normalised SAM 2 frames, or None (no mask loss).
        target_masks: bool [T, O, S, S] (O <= ``sample_objects``), or None.
        seg_select: which ``<|seg|>`` tokens (0-based, text order) feed SAM 2, one per target object.
        conditions: how SAM 2 is prompted, one entry per group of objects (empty without masks).
    """

    kind: str
    inputs: UniPixelInputs
    labels: torch.Tensor
    sam2_frames: torch.Tensor | None = None
    target_masks: torch.Tensor | None = None
    seg_select: list[int] = field(default_factory=list)
    conditions: list[SamConditioning] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return 0 if self.sam2_frames is None else int(self.sam2_frames.shape[0])

    def to(self, device: torch.device | str) -> "TrainBatch":
        """A copy with every tensor on ``device``."""
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        inputs = replace(self.inputs, input_ids=move(self.inputs.input_ids),
                         pixel_values_videos=move(self.inputs.pixel_values_videos),
                         video_grid_thw=move(self.inputs.video_grid_thw),
                         second_per_grid_ts=move(self.inputs.second_per_grid_ts),
                         refer_mask=move(self.inputs.refer_mask))
        return replace(self, inputs=inputs, labels=move(self.labels), sam2_frames=move(self.sam2_frames),
                       target_masks=move(self.target_masks),
                       conditions=[c.to(device) for c in self.conditions])


def chat_ids_and_labels(tokenizer, question: str, answer: str, num_video_tokens: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [1, L] of the one-turn chat and labels [L] supervising only the response.

    Raises:
        UniPixelInputError: when no response token is supervised.
    """
    text = processor.render_chat([(question, answer)]).rstrip("\n")
    text = processor.expand_video_placeholder(text, num_video_tokens)
    response_start = len(text) - len(answer + "<|im_end|>")  # the text ends with answer + <|im_end|>
    if not text[:response_start].endswith(ASSISTANT_HEADER):
        raise UniPixelInputError("the chat text does not end with the assistant turn; cannot build labels")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([encoded["input_ids"]], dtype=torch.long)
    supervised = torch.tensor([start >= response_start for start, _ in encoded["offset_mapping"]])
    labels = torch.where(supervised, ids[0], torch.full_like(ids[0], IGNORE_INDEX))
    if not bool(supervised.any()):
        raise UniPixelInputError("no response token is supervised; is the answer empty?")
    return ids, labels


class BatchBuilder:
    """Turns samples into :class:`TrainBatch` es; decoded media are kept in a small LRU.

    Args:
        tokenizer: the checkpoint's tokenizer.
        config: the model's :class:`UniPixelConfig` (token ids, ``sam2_image_size``).
        recipe: pixel budget, ``max_tokens``, ``sample_objects``.
        media_cache: decoded media kept (frames live in memmaps, so this costs disk, not RAM).
        max_side: media with a longer side are decoded with this one, in pixels (``UNIPIXEL_FRAME_MAX_SIDE``; samples
            stay in the media's own pixels); None or 0 keep their size.
    """

    def __init__(self, tokenizer, config: UniPixelConfig, recipe: TrainRecipe, media_cache: int = 4,
                 max_side: int | None = None) -> None:
        self.tokenizer, self.config, self.recipe = tokenizer, config, recipe
        self.media_cache, self.max_side = media_cache, max_side
        self._media: OrderedDict[str, Frames] = OrderedDict()

    def build(self, sample: TrainSample, rng: random.Random | None = None) -> TrainBatch:
        """Build one sample's inputs.

        Args:
            rng: picks the ``sample_objects`` objects SAM 2 sees when a sample has more.
        Raises:
            MediaDecodeError: when the media cannot be read.
            UniPixelInputError: frames out of range, too many tokens, a region vanishing on the grid.
        """
        frames, pixels = self._sample_frames(sample)
        size_hw = frames.size_hw
        for name in ("target_masks", "region_masks"):
            masks = getattr(sample, name)
            if masks is not None and tuple(masks.shape[2:]) != size_hw:
                raise UniPixelInputError(f"{name} are {tuple(masks.shape[2:])} px, the frames {size_hw}")
        min_px, max_px = processor.pixel_budget(len(sample.frame_idx),
                                                self.recipe.llm_min_pixels or self.config.llm_min_pixels,
                                                self.recipe.llm_max_pixels or self.config.llm_max_pixels,
                                                self.recipe.frames_per_video)
        video = processor.prepare_llm_video(pixels, min_px, max_px)
        question, refer_mask = sample.question, None
        if sample.kind == "region":
            masks = torch.from_numpy(sample.region_masks).permute(1, 0, 2, 3)  # [T, O, H, W]
            refer_mask = build_refer_mask(masks, video.grid_hw)
            ids = list(range(1, sample.region_masks.shape[0] + 1))
            question = mem_prefix(ids, refer_mask, None if frames.is_image else len(sample.frame_idx)) + question
        input_ids, labels = chat_ids_and_labels(self.tokenizer, question, sample.answer, video.num_tokens)
        if input_ids.shape[1] > self.recipe.max_tokens:
            raise UniPixelInputError(f"the sample has {input_ids.shape[1]} tokens; "
                                     f"max_tokens is {self.recipe.max_tokens}")
        num_seg = int((input_ids == self.config.seg_token_id).sum())
        if num_seg != sample.answer.count(SEG_TOKEN):
            raise UniPixelInputError(f"the tokenizer produced {num_seg} <|seg|> ids for "
                                     f"{sample.answer.count(SEG_TOKEN)} <|seg|> in the answer")
        refs = [self._ref_prompt(p, sample.frame_idx.index(p.frame_idx), size_hw) for p in sample.prompts]
        inputs = UniPixelInputs(input_ids, video.pixel_values_videos, video.video_grid_thw,
                                video.second_per_grid_ts, refs, refer_mask)
        batch = TrainBatch(sample.kind, inputs, labels)
        if sample.target_masks is not None:
            self._add_targets(batch, sample, pixels, rng or random.Random(0))
        return batch

    def _add_targets(self, batch: TrainBatch, sample: TrainSample, pixels: np.ndarray, rng: random.Random) -> None:
        side = self.config.sam2_image_size
        count = sample.target_masks.shape[0]
        select = list(range(count))
        if count > self.recipe.sample_objects:  # the official code subsamples 5 objects at random
            select = sorted(rng.sample(select, self.recipe.sample_objects))
        masks = torch.from_numpy(sample.target_masks[select]).float()  # [O, T, H, W]
        resized = F.interpolate(masks.flatten(0, 1)[:, None], size=(side, side), mode="bilinear",
                                align_corners=False)[:, 0] > 0.5
        batch.target_masks = resized.reshape(len(select), masks.shape[1], side, side).permute(1, 0, 2, 3).contiguous()
        batch.sam2_frames = processor.sam2_transform(pixels, side)
        batch.seg_select = select
        batch.conditions = self._conditions(sample, batch, select, rng)

    def _conditions(self, sample: TrainSample, batch: TrainBatch, select: list[int],
                    rng: random.Random) -> list[SamConditioning]:
        """SAM 2's prompts for ``sample`` (see ``TrainSample.sam_condition``): one group of objects
        per prompt frame."""
        both = ("forward", "backward")
        targets = batch.target_masks  # bool [T, O, S, S]
        everyone, kind, box = list(range(len(select))), sample.sam_condition, sample.box_supervised
        if kind == "official":
            return [SamConditioning(everyone, box_supervised=box)]
        if kind == "best":
            frame = int(targets[:, 0].flatten(1).sum(1).argmax())
            others = [t for t in range(targets.shape[0]) if t != frame]
            probe = rng.choice(others) if others else None
            return [SamConditioning(everyone, frame, both, probe_frame=probe, box_supervised=box)]
        groups: dict[int, list[int]] = {}
        for row, obj in enumerate(select):
            groups.setdefault(sample.frame_idx.index(sample.prompts[obj].frame_idx), []).append(row)
        size_hw = tuple(sample.target_masks.shape[2:])
        out = []
        for frame, rows in sorted(groups.items()):
            if kind == "mask":
                out.append(SamConditioning(rows, frame, both, mask=targets[frame][rows][:, None].float(),
                                           use_hidden=False, box_supervised=box))
                continue
            refs = [self._ref_prompt(sample.prompts[select[r]], frame, size_hw) for r in rows]
            width = max(len(r.labels) for r in refs)
            coords = torch.zeros(len(refs), width, 2)
            labels = torch.full((len(refs), width), -1, dtype=torch.int32)  # -1: SAM 2's padding point
            for o, ref in enumerate(refs):
                coords[o, :len(ref.labels)] = ref.coords_sam.float()
                labels[o, :len(ref.labels)] = ref.labels.int()
            out.append(SamConditioning(rows, frame, both, coords, labels, corrections=sample.corrections,
                                       box_supervised=box))
        return out

    def _ref_prompt(self, prompt, llm_frame: int, size_hw: tuple[int, int]) -> RefPrompt:
        """Pixels of the original frame -> the SAM 2 input square, as the session does."""
        return ref_prompt_px(prompt, llm_frame, size_hw, self.config.sam2_image_size)

    def _sample_frames(self, sample: TrainSample) -> tuple[Frames, np.ndarray]:
        """The sample's media and uint8 [len(frame_idx), H, W, 3] pixels of its frames. Of a frame folder only those
        frames are decoded: a sample uses 1-8 of them."""
        if Path(sample.media).is_dir():
            files = frame_folder_files(sample.media)
            self._check_frame_idx(sample, len(files))
            frames = read_frame_files([files[i] for i in sample.frame_idx], self.max_side)
            return frames, frames.pixels
        frames = self.frames(sample.media)
        self._check_frame_idx(sample, frames.num_frames)
        return frames, frames.take(sample.frame_idx)

    @staticmethod
    def _check_frame_idx(sample: TrainSample, num_frames: int) -> None:
        if sample.frame_idx[-1] >= num_frames:
            raise UniPixelInputError(f"{sample.media} has {num_frames} frames; the sample uses frame "
                                     f"{sample.frame_idx[-1]}")

    def frames(self, media: str) -> Frames:
        """The decoded frames of ``media`` (the last ``media_cache`` media are kept)."""
        if media not in self._media:
            self._media[media] = load_frames(media, max_side=self.max_side)
            while len(self._media) > self.media_cache:
                self._media.popitem(last=False)
        self._media.move_to_end(media)
        return self._media[media]
