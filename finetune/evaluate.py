"""How well a model state segments, tracks and describes: one report for every evaluation.

Each *call* is one thing an annotator does (a click, a box, a painted mask or a text query) run
through an :class:`~unipixel_model.session.InferenceSession` exactly as the backend serves it, and
scored frame by frame against the ground truth with the fixture-exact DAVIS metrics (J = IoU, F =
boundary F-measure, J&F their mean). :class:`EvalReport` averages the calls per prompt kind over
frame groups:

* ``prompt``: the frame that carried the click/box/mask;
* ``others``: every other frame; ``before`` / ``after``: the frames before / after the prompt;
* ``all``: every frame (the only group of a text query, which has no prompt frame).

It also keeps the seconds per call and, for descriptions, how often the model names the object's
colour or shape and the token F1 against the reference. The synthetic world
(:mod:`finetune.world.evaluate`) and the fine-tune job's held-out tasks (:func:`evaluate_holdout`)
both fill it, so ``/versions`` shows the same numbers the evaluation command prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from backend.converters.geometry import mask_to_box_px
from finetune.metrics import db_eval_boundary, db_eval_iou
from finetune.text_metrics import text_similarity
from finetune.sample import TrainSample
from unipixel_model import templates
from unipixel_model.errors import UniPixelInputError
from unipixel_model.media import Frames, load_frames
from unipixel_model.session import InferenceSession
from unipixel_model.types import BoxPrompt, MaskPrompt, MaskTrack, PointPrompt

PROMPT_KINDS = ("click", "box", "mask", "text")
GROUPS = ("prompt", "others", "before", "after", "all")


@dataclass
class CallScore:
    """One scored call: per-frame J and F (float [T]) and where its prompt was."""

    kind: str
    j: np.ndarray
    f: np.ndarray
    prompt_frame: int | None
    seconds: float
    tag: str = ""

    def frames(self, group: str) -> np.ndarray:
        """Indices of ``group`` (see the module docstring); empty when it does not apply."""
        every = np.arange(len(self.j))
        if group == "all":
            return every
        if self.prompt_frame is None:
            return every[:0]
        p = self.prompt_frame
        return {"prompt": every[p:p + 1], "others": every[every != p], "before": every[:p],
                "after": every[p + 1:]}[group]


@dataclass
class DescriptionScore:
    """One description: does it name the colour or shape, and its token F1 against the reference."""

    names_object: bool
    f1: float


@dataclass
class EvalReport:
    """Calls and descriptions of one evaluation, with the means the tables show."""

    calls: list[CallScore] = field(default_factory=list)
    descriptions: list[DescriptionScore] = field(default_factory=list)
    seg_answers: list[bool] = field(default_factory=list)  # per held-out media: did a text query give a mask

    def mean(self, kind: str, group: str, metric: str = "jf") -> float | None:
        """Mean over calls of ``kind`` of their per-call mean over ``group`` frames (None if none)."""
        values = []
        for call in self.calls:
            frames = call.frames(group)
            if call.kind == kind and len(frames):
                j, f = float(call.j[frames].mean()), float(call.f[frames].mean())
                values.append({"j": j, "f": f, "jf": (j + f) / 2}[metric])
        return float(np.mean(values)) if values else None

    def seconds(self, kind: str) -> float | None:
        times = [c.seconds for c in self.calls if c.kind == kind]
        return float(np.mean(times)) if times else None

    @property
    def score(self) -> float:
        """The publish criterion: mean over prompt kinds of J&F on all frames, with the description
        F1 as one more part when there are descriptions (0 when there is nothing)."""
        parts = [v for v in (self.mean(k, "all") for k in PROMPT_KINDS) if v is not None]
        if self.descriptions:
            parts.append(float(np.mean([d.f1 for d in self.descriptions])))
        return float(np.mean(parts)) if parts else 0.0

    def to_dict(self) -> dict:
        """JSON: ``{"score", "calls", "<kind>": {"<group>": {"J", "F", "JF"}, "seconds", "calls"}, "descriptions"}``."""
        out: dict = {"score": round(self.score, 4), "calls": len(self.calls)}
        for kind in PROMPT_KINDS:
            count = sum(c.kind == kind for c in self.calls)
            if not count:
                continue
            groups = {g: {m.upper(): _round(self.mean(kind, g, m)) for m in ("j", "f", "jf")}
                      for g in GROUPS if self.mean(kind, g) is not None}
            out[kind] = {**groups, "seconds": _round(self.seconds(kind)), "calls": count}
        if self.descriptions:
            out["descriptions"] = {"names_colour_or_shape": _round(np.mean([d.names_object for d in self.descriptions])),
                                   "token_f1": _round(np.mean([d.f1 for d in self.descriptions])),
                                   "count": len(self.descriptions)}
        if self.seg_answers:
            share = _round(np.mean(self.seg_answers))
            out["text_answers_with_mask"] = {"share": share, "media": len(self.seg_answers)}
        return out

    def table(self) -> str:
        """A markdown table: J&F (J / F) per prompt kind and frame group, and seconds per call."""
        lines = ["| prompt | calls | " + " | ".join(f"J&F {g} (J / F)" for g in GROUPS) + " | s / call |",
                 "|---" * (len(GROUPS) + 3) + "|"]
        for kind in PROMPT_KINDS:
            count = sum(c.kind == kind for c in self.calls)
            if not count:
                continue
            cells = []
            for group in GROUPS:
                jf = self.mean(kind, group)
                cells.append("—" if jf is None else
                             f"{jf:.3f} ({self.mean(kind, group, 'j'):.3f} / {self.mean(kind, group, 'f'):.3f})")
            lines.append(f"| {kind} | {count} | " + " | ".join(cells) + f" | {self.seconds(kind):.2f} |")
        if self.descriptions:
            named = np.mean([d.names_object for d in self.descriptions])
            f1 = np.mean([d.f1 for d in self.descriptions])
            lines.append(f"\ndescriptions: {len(self.descriptions)}, naming the colour or shape {named:.3f}, "
                         f"token F1 {f1:.3f}")
        return "\n".join(lines)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def score_track(kind: str, track: MaskTrack | None, truth: np.ndarray, prompt_frame: int | None,
                seconds: float, tag: str = "") -> CallScore:
    """Score a track against ``truth`` bool [T, H, W] on every frame (a missing track predicts nothing)."""
    pred = np.zeros_like(truth) if track is None else np.stack([track.mask(t) for t in range(truth.shape[0])])
    return CallScore(kind, db_eval_iou(truth, pred), db_eval_boundary(truth, pred), prompt_frame, seconds, tag)


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """(result, seconds) of ``call()``."""
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def describe_object(session: InferenceSession, mask: np.ndarray, frame_idx: int) -> str:
    """The model's description of the object painted by ``mask`` on ``frame_idx`` (as the backend asks); empty
    when the object is too small for the model to read (its mask vanishes on the LLM's token grid)."""
    try:
        session.refer({1: MaskPrompt(mask, frame_idx)}, ask=False)
        return templates.clean_answer(session.ask(templates.DESCRIBE_QUESTION.format(1), [1]).text)
    except UniPixelInputError:
        return ""


@torch.no_grad()
def evaluate_holdout(model, tokenizer, samples: list[TrainSample], max_new_tokens: int = 64,
                     max_side: int | None = None) -> EvalReport:
    """Score ``model`` on held-out Label Studio samples as the backend would serve them.

    ``mem`` samples replay their click/box (a box-only track: its first box, scored by the box around the mask on
    every annotated frame), ``seg`` samples their text query, ``region`` samples ask for the description of their
    mask. Each media is also asked one segmentation question (``seg_answers``: did it give a mask), so a fine-tune
    that makes the LLM stop answering text queries with ``<|seg|>`` shows even where no held-out task has a query.
    Each media is decoded once, with ``max_side`` (``UNIPIXEL_FRAME_MAX_SIDE`` in pixels; None or 0 keep its size);
    prompts and masks stay in its own pixels.
    """
    was_training = model.training
    model.eval()
    report = EvalReport()
    media: dict[str, Frames] = {}  # the last media: a task's samples come together and share it
    try:
        with model.sam2_gating(True):
            for sample in samples:
                if sample.media not in media:
                    media = {sample.media: load_frames(sample.media, max_side=max_side)}
                    report.seg_answers.append(_answers_with_mask(model, tokenizer, media[sample.media].subset(
                        sample.frame_idx), max_new_tokens))
                _score_sample(model, tokenizer, sample, media[sample.media], max_new_tokens, report)
    finally:
        model.train(was_training)
    return report


def _score_sample(model, tokenizer, sample: TrainSample, decoded: Frames, max_new_tokens: int,
                  report: EvalReport) -> None:
    frames = decoded.subset(sample.frame_idx)  # keeps the media's own size_hw, the one of prompts and masks
    session = InferenceSession.open(model, tokenizer, frames)
    session.max_new_tokens = max_new_tokens
    if sample.kind == "mem" and sample.box_supervised:
        local = sample.frame_idx.index(sample.prompts[0].frame_idx)
        result, seconds = timed(lambda: session.refer({1: _at_frame(sample.prompts[0], local)}, ask=False))
        boxes = _boxes_of(result.tracks[0], len(sample.frame_idx))
        truth = sample.target_masks[0]
        report.calls.append(CallScore("box", db_eval_iou(truth, boxes), db_eval_boundary(truth, boxes), local,
                                      seconds, "box track"))
    elif sample.kind == "mem":
        for n, prompt in enumerate(sample.prompts):
            local = sample.frame_idx.index(prompt.frame_idx)
            moved = _at_frame(prompt, local)
            result, seconds = timed(lambda: session.refer({n + 1: moved}, ask=False))
            kind = "click" if isinstance(prompt, PointPrompt) else "box"
            report.calls.append(score_track(kind, result.tracks[0], sample.target_masks[n], local, seconds))
    elif sample.kind == "seg":
        result, seconds = timed(lambda: session.segment(sample.question))
        for n, truth in enumerate(sample.target_masks):
            track = result.tracks[n] if n < len(result.tracks) else None
            report.calls.append(score_track("text", track, truth, None, seconds))
    elif sample.kind == "region":
        first = int(np.argmax(sample.region_masks[0].reshape(len(sample.frame_idx), -1).any(axis=1)))
        answer = describe_object(session, sample.region_masks[0][first], first)
        words = set(answer.lower().split())
        named = any(w in words for w in sample.answer.lower().split() if len(w) > 2)
        report.descriptions.append(DescriptionScore(named, text_similarity(answer, sample.answer)))


def _answers_with_mask(model, tokenizer, frames: Frames, max_new_tokens: int) -> bool:
    """Does a plain segmentation question on ``frames`` get at least one mask (a ``<|seg|>`` in the answer)?"""
    session = InferenceSession.open(model, tokenizer, frames)
    session.max_new_tokens = max_new_tokens
    question = templates.segmentation_question("object", frames.num_frames == 1)
    return bool(session.segment(question).tracks)


def _boxes_of(track: MaskTrack, num_frames: int) -> np.ndarray:
    """bool [T, H, W]: on each frame the filled box around ``track``'s mask (empty where the mask is)."""
    boxes = np.zeros((num_frames, *track.frame_size_hw), bool)
    for t in range(num_frames):
        box = mask_to_box_px(track.mask(t))  # (x1, y1, x2, y2) px, x2 and y2 exclusive; None for an empty mask
        if box is not None:
            x1, y1, x2, y2 = box
            boxes[t, y1:y2, x1:x2] = True
    return boxes


def _at_frame(prompt: PointPrompt | BoxPrompt, frame_idx: int) -> PointPrompt | BoxPrompt:
    if isinstance(prompt, PointPrompt):
        return PointPrompt(prompt.x_px, prompt.y_px, frame_idx)
    return BoxPrompt(prompt.x1_px, prompt.y1_px, prompt.x2_px, prompt.y2_px, frame_idx)
