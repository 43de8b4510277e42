"""One stage-3 training sample, in model units (pixels, 0-based frames), and its JSONL form.

A :class:`TrainSample` is what ``finetune.convert`` makes of a Label Studio annotation and what
``finetune.batch`` turns into model inputs. The four kinds follow the stage-3 data families of the
UniPixel recipe (spec §5.2):

* ``seg``: text question -> answer with one ``<|seg|>`` per target object (masks supervised);
* ``ref``: question with ``<|ref|>`` point/box prompts -> free text (no mask loss);
* ``mem``: ``[id] <|ref|>`` prompts -> ``[id] <|seg|>`` answer (memory pre-filling, masks supervised);
* ``region``: masks injected through the ``<|mem|>`` prefix (built by ``finetune.batch``) -> text.

On disk a sample is one JSON object per line; masks are COCO RLE (one per object and frame), so a
JSONL file needs no side files and round-trips exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend.converters.coco_rle import coco_rle_to_mask, mask_to_coco_rle
from unipixel_model.media import IMAGE_SUFFIXES
from unipixel_model.types import BoxPrompt, PointPrompt

KINDS = ("seg", "ref", "mem", "region")
MAX_FRAMES = 8  # stage-3 samples carry at most 8 frames (spec §5.1 ``sample_frames 8``)
REF_TOKEN, SEG_TOKEN, MEM_TOKEN = "<|ref|>", "<|seg|>", "<|mem|>"
_PROMPT_KINDS = ("ref", "mem")
_MASK_KINDS = ("seg", "mem")
SAM_CONDITIONS = {"mem": ("prompt", "mask", "official"), "seg": ("best", "official")}
MAX_CORRECTIONS = 3


class SampleError(ValueError):
    """A training sample is inconsistent (token counts, shapes, frames or kind)."""


@dataclass
class TrainSample:
    """One stage-3 sample (pixels, 0-based frame_idx; no Label Studio units).

    Attributes:
        kind: ``seg``, ``ref``, ``mem`` or ``region`` (see the module docstring).
        media: video file, image file or folder of frames (anything ``load_frames`` accepts).
        frame_idx: the frames of ``media`` this sample uses, sorted, unique, at most 8; ``[0]`` for images.
        question: user turn. ``ref``/``mem``: one ``<|ref|>`` per prompt, in prompt order. ``region``:
            the plain question (the ``<|mem|>`` prefix is added when the batch is built).
        answer: assistant turn. ``seg``/``mem``: one ``<|seg|>`` per target object, in order.
        prompts: :class:`PointPrompt`/:class:`BoxPrompt` in pixels, one per ``<|ref|>``; each
            ``frame_idx`` is a frame of ``frame_idx`` (a video frame index, not a position).
        target_masks: bool [O, T, H, W], one per ``<|seg|>`` (O) and per frame of ``frame_idx`` (T),
            original resolution.
        region_masks: bool [O, T, H, W] for ``region``: objects [1]..[O] of the ``<|mem|>`` prefix.
        task_id: the Label Studio task it came from (for held-out splits).
        sam_condition: how SAM 2 is prompted (masked kinds): ``"prompt"`` (``mem`` default: the
            ``<|seg|>`` tokens plus the click/box on each object's prompt frame, tracked both ways, as
            the session's ``refer`` does), ``"mask"`` (``mem``: the target mask on the prompt frame,
            as a brush prompt), ``"best"`` (``seg`` default: the ``<|seg|>`` tokens on the frame where the
            first target is largest, tracked both ways, plus a memory-free probe of another frame, as
            the session's ``segment`` does) or ``"official"`` (the tokens alone on the first frame,
            forward only: the official recipe).
        corrections: correction clicks simulated on the conditioning frame (SAM 2's interactive
            training; ``"prompt"`` only).
        box_supervised: the targets are filled boxes (box-only tracks): the mask loss compares the
            predicted mask's projections on both axes with the box's (BoxInst) instead of pixels.

    Raises:
        SampleError: naming the numbers that disagree.
    """

    kind: str
    media: str
    frame_idx: list[int]
    question: str
    answer: str
    prompts: list = field(default_factory=list)
    target_masks: np.ndarray | None = None
    region_masks: np.ndarray | None = None
    task_id: int | None = None
    sam_condition: str | None = None
    corrections: int = 0
    box_supervised: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SampleError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.media, str) or not self.media:
            raise SampleError(f"media must be a non-empty path string, got {self.media!r}")
        self.frame_idx = [int(i) for i in self.frame_idx]
        self._check_frames()
        self._check_tokens()
        self.target_masks = self._check_masks("target_masks", self.target_masks, self.kind in _MASK_KINDS)
        self.region_masks = self._check_masks("region_masks", self.region_masks, self.kind == "region")
        if self.region_masks is not None:
            empty = [o + 1 for o in range(self.region_masks.shape[0]) if not self.region_masks[o].any()]
            if empty:
                raise SampleError(f"region_masks of object(s) {empty} are empty on all {len(self.frame_idx)} "
                                  "frames; a <|mem|> object needs at least one pixel")
        self._check_prompts()
        self._check_condition()

    # ---- validation ----------------------------------------------------------------------
    def _check_frames(self) -> None:
        frames = self.frame_idx
        if not frames or len(frames) > MAX_FRAMES:
            raise SampleError(f"frame_idx must hold 1 to {MAX_FRAMES} frames, got {len(frames)}")
        if frames != sorted(set(frames)) or frames[0] < 0:
            raise SampleError(f"frame_idx must be sorted, unique and >= 0, got {frames}")
        if Path(self.media).suffix.lower() in IMAGE_SUFFIXES and frames != [0]:
            raise SampleError(f"an image sample uses frame_idx [0], got {frames} for {self.media}")

    def _check_tokens(self) -> None:
        refs_q, segs_a = self.question.count(REF_TOKEN), self.answer.count(SEG_TOKEN)
        misplaced = {"<|seg|> in the question": self.question.count(SEG_TOKEN),
                     "<|ref|> in the answer": self.answer.count(REF_TOKEN),
                     "<|mem|> in the question or answer": (self.question + self.answer).count(MEM_TOKEN)}
        for what, count in misplaced.items():
            if count:
                raise SampleError(f"{self.kind} sample has {count} {what}; "
                                  "<|mem|> prefixes are built from region_masks, <|ref|> belongs to questions")
        if refs_q != len(self.prompts):
            raise SampleError(f"{self.kind} sample: the question has {refs_q} <|ref|> tokens "
                              f"but {len(self.prompts)} prompts are given")
        if self.kind in _PROMPT_KINDS and not self.prompts:
            raise SampleError(f"a {self.kind} sample needs at least one point/box prompt and <|ref|> token")
        if self.kind in _MASK_KINDS and segs_a == 0:
            raise SampleError(f"a {self.kind} sample's answer needs at least one <|seg|> token")
        if self.kind not in _MASK_KINDS and segs_a:
            raise SampleError(f"a {self.kind} sample's answer must not contain <|seg|> (found {segs_a})")

    def _check_masks(self, name: str, masks: np.ndarray | None, required: bool) -> np.ndarray | None:
        if masks is None:
            if required:
                raise SampleError(f"a {self.kind} sample needs {name} [O, T, H, W]")
            return None
        if not required:
            raise SampleError(f"a {self.kind} sample takes no {name}")
        masks = np.asarray(masks)
        if masks.ndim != 4:
            raise SampleError(f"{name} must be bool [O, T, H, W], got shape {masks.shape}")
        if masks.dtype != bool:
            masks = masks > 0
        if masks.shape[1] != len(self.frame_idx):
            raise SampleError(f"{name} has {masks.shape[1]} frames, frame_idx has {len(self.frame_idx)}")
        if min(masks.shape) == 0:
            raise SampleError(f"{name} has an empty dimension: shape {masks.shape}")
        if name == "target_masks" and masks.shape[0] != self.answer.count(SEG_TOKEN):
            raise SampleError(f"{name} holds {masks.shape[0]} objects but the answer has "
                              f"{self.answer.count(SEG_TOKEN)} <|seg|> tokens")
        return masks

    def _check_prompts(self) -> None:
        size = next((m.shape[2:] for m in (self.target_masks, self.region_masks) if m is not None), None)
        for n, prompt in enumerate(self.prompts):
            if isinstance(prompt, PointPrompt):
                if not prompt.positive:
                    raise SampleError(f"prompt {n}: <|ref|> points are positive clicks; got a negative one")
                corners = [(prompt.x_px, prompt.y_px)]
            elif isinstance(prompt, BoxPrompt):
                if prompt.x2_px <= prompt.x1_px or prompt.y2_px <= prompt.y1_px:
                    raise SampleError(f"prompt {n}: box needs x2 > x1 and y2 > y1, got ({prompt.x1_px}, "
                                      f"{prompt.y1_px}, {prompt.x2_px}, {prompt.y2_px})")
                corners = [(prompt.x1_px, prompt.y1_px), (prompt.x2_px, prompt.y2_px)]
            else:
                raise SampleError(f"prompt {n} is a {type(prompt).__name__}; <|ref|> takes PointPrompt/BoxPrompt")
            if prompt.frame_idx not in self.frame_idx:
                raise SampleError(f"prompt {n} is on frame {prompt.frame_idx}, not one of frame_idx {self.frame_idx}")
            for x, y in corners:
                if x < 0 or y < 0 or (size is not None and (x > size[1] or y > size[0])):
                    bound = f" {size[1]}x{size[0]}" if size is not None else ""
                    raise SampleError(f"prompt {n}: ({x}, {y}) px lies outside the{bound} frame")

    def _check_condition(self) -> None:
        if self.kind not in _MASK_KINDS:
            if self.sam_condition is not None or self.corrections or self.box_supervised:
                raise SampleError(f"a {self.kind} sample has no masks: sam_condition, corrections and "
                                  "box_supervised do not apply")
            return
        if self.sam_condition is None:
            self.sam_condition = "prompt" if self.kind == "mem" else "best"
        allowed = SAM_CONDITIONS[self.kind]
        if self.sam_condition not in allowed:
            raise SampleError(f"a {self.kind} sample's sam_condition must be one of {allowed}, "
                              f"got {self.sam_condition!r}")
        if not 0 <= int(self.corrections) <= MAX_CORRECTIONS or (self.corrections and self.sam_condition != "prompt"):
            raise SampleError(f"corrections must be 0..{MAX_CORRECTIONS} and only with sam_condition 'prompt', "
                              f"got {self.corrections} with {self.sam_condition!r}")

    # ---- derived -------------------------------------------------------------------------
    @property
    def num_objects(self) -> int:
        """Objects SAM 2 is supervised on (``<|seg|>`` count; 0 for ``ref``/``region``)."""
        return 0 if self.target_masks is None else int(self.target_masks.shape[0])

    # ---- JSON ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        """A JSON-serialisable dict (masks as COCO RLE, one per object and frame)."""
        return {"kind": self.kind, "media": self.media, "frame_idx": list(self.frame_idx),
                "question": self.question, "answer": self.answer,
                "prompts": [_prompt_to_json(p) for p in self.prompts],
                "target_masks": _masks_to_json(self.target_masks),
                "region_masks": _masks_to_json(self.region_masks), "task_id": self.task_id,
                "sam_condition": self.sam_condition, "corrections": self.corrections,
                "box_supervised": self.box_supervised}

    @classmethod
    def from_json(cls, data: dict) -> "TrainSample":
        """Inverse of :meth:`to_json`.

        Raises:
            SampleError: on unknown or missing keys, or when the restored sample is inconsistent.
        """
        known = {"kind", "media", "frame_idx", "question", "answer", "prompts", "target_masks",
                 "region_masks", "task_id", "sam_condition", "corrections", "box_supervised"}
        unknown, missing = set(data) - known, {"kind", "media", "frame_idx", "question", "answer"} - set(data)
        if unknown or missing:
            raise SampleError(f"sample JSON: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        return cls(kind=data["kind"], media=data["media"], frame_idx=data["frame_idx"],
                   question=data["question"], answer=data["answer"],
                   prompts=[_prompt_from_json(p) for p in data.get("prompts", [])],
                   target_masks=_masks_from_json(data.get("target_masks")),
                   region_masks=_masks_from_json(data.get("region_masks")), task_id=data.get("task_id"),
                   sam_condition=data.get("sam_condition"), corrections=int(data.get("corrections") or 0),
                   box_supervised=bool(data.get("box_supervised", False)))


def write_samples(samples: Iterable[TrainSample], path: str | Path) -> Path:
    """Write samples as JSONL (one :meth:`TrainSample.to_json` object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for sample in samples:
            handle.write(json.dumps(sample.to_json()) + "\n")
    return path


def read_samples(path: str | Path) -> list[TrainSample]:
    """Read a JSONL file written by :func:`write_samples`.

    Raises:
        SampleError: naming the line that fails to parse or validate.
    """
    samples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.append(TrainSample.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # JSONDecodeError and SampleError are ValueErrors
            raise SampleError(f"{path}:{number}: {exc}") from exc
    return samples


def _prompt_to_json(prompt: PointPrompt | BoxPrompt) -> dict:
    if isinstance(prompt, PointPrompt):
        return {"type": "point", "x_px": prompt.x_px, "y_px": prompt.y_px, "frame_idx": prompt.frame_idx}
    return {"type": "box", "x1_px": prompt.x1_px, "y1_px": prompt.y1_px, "x2_px": prompt.x2_px,
            "y2_px": prompt.y2_px, "frame_idx": prompt.frame_idx}


def _prompt_from_json(data: dict) -> PointPrompt | BoxPrompt:
    if data.get("type") == "point":
        return PointPrompt(float(data["x_px"]), float(data["y_px"]), int(data["frame_idx"]))
    if data.get("type") == "box":
        return BoxPrompt(float(data["x1_px"]), float(data["y1_px"]), float(data["x2_px"]), float(data["y2_px"]),
                         int(data["frame_idx"]))
    raise SampleError(f"prompt type must be 'point' or 'box', got {data.get('type')!r}")


def _masks_to_json(masks: np.ndarray | None) -> dict | None:
    """bool [O, T, H, W] -> {"shape": [...], "rle": [[{"size", "counts"} per frame] per object]}."""
    if masks is None:
        return None
    rles = [[mask_to_coco_rle(frame) for frame in obj] for obj in masks]
    return {"shape": list(masks.shape), "rle": rles}


def _masks_from_json(data: dict | None) -> np.ndarray | None:
    if data is None:
        return None
    shape = tuple(data["shape"])
    masks = np.zeros(shape, dtype=bool)
    for o, frames in enumerate(data["rle"]):
        for t, rle in enumerate(frames):
            masks[o, t] = coco_rle_to_mask(rle)
    return masks
