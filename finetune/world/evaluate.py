"""Score a model on synthetic clips: every prompt kind on every clip, against exact ground truth.

Per clip (deterministic from its seed): one object is clicked, boxed and painted on the same prompt
frame (three fresh sessions, so each call pays its own frame encoding, as a first click does), one
of the clip's unambiguous referring expressions is asked as a text query, and the object is described
from its mask. Validation seeds must not be training seeds: the toy model trains on seeds from
:data:`TRAIN_SEED_START` up, and :data:`EVAL_SEED_START` is far above anything it used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from finetune.evaluate import DescriptionScore, EvalReport, describe_object, score_track, timed
from finetune.text_metrics import text_similarity
from finetune.world import sampling
from finetune.world.expressions import describe, expressions
from finetune.world.scene import Clip, WorldConfig, make_clip
from unipixel_model import templates
from unipixel_model.session import InferenceSession

TRAIN_SEED_START = 1_000
EVAL_SEED_START = 900_000


@torch.no_grad()
def evaluate_world(model, tokenizer, seeds: Iterable[int], config: WorldConfig = WorldConfig(),
                   kinds: tuple[str, ...] = ("click", "box", "mask", "text"), describe_objects: bool = True,
                   progress: Callable[[int, Clip], None] | None = None) -> EvalReport:
    """Run the calls of every clip of ``seeds`` and collect an :class:`EvalReport`.

    Each call's ``tag`` reads ``shape=<s> colour=<c> size=<fraction of the shorter side> expr=<kind>``.
    """
    model.eval()
    report = EvalReport()
    with model.sam2_gating(True):
        for n, seed in enumerate(seeds):
            clip = make_clip(int(seed), config)
            _evaluate_clip(model, tokenizer, clip, kinds, describe_objects, report)
            if progress is not None:
                progress(n, clip)
    return report


def _session(model, tokenizer, clip: Clip) -> InferenceSession:
    return InferenceSession.open(model, tokenizer, clip.frames if clip.num_frames > 1 else clip.frames[0])


def _tag(clip: Clip, obj: int, expr: str = "") -> str:
    info = clip.objects[obj]
    size = info.size_px / min(clip.size_hw)
    return f"shape={info.shape} colour={info.colour} size={size:.2f}" + (f" expr={expr}" if expr else "")


def _evaluate_clip(model, tokenizer, clip: Clip, kinds: tuple[str, ...], describe_objects: bool,
                   report: EvalReport) -> None:
    rng = np.random.default_rng(clip.seed)
    present = [o for o in range(len(clip.objects)) if clip.visible_frames(o, min_pixels=16)]
    if not present:
        return
    obj = int(rng.choice(present))
    frame = sampling.prompt_frame(clip, obj, rng)
    prompts = {"click": sampling.click(clip, obj, frame, rng), "box": sampling.box(clip, obj, frame, rng),
               "mask": sampling.mask(clip, obj, frame)}
    for kind, prompt in prompts.items():
        if kind in kinds:
            session = _session(model, tokenizer, clip)
            result, seconds = timed(lambda: session.refer({1: prompt}, ask=False))
            report.calls.append(score_track(kind, result.tracks[0], clip.masks[obj], frame, seconds, _tag(clip, obj)))
    exprs = expressions(clip)
    if "text" in kinds and exprs:
        expr = exprs[int(rng.integers(len(exprs)))]
        session = _session(model, tokenizer, clip)
        question = templates.segmentation_question(expr.text, clip.num_frames == 1)
        result, seconds = timed(lambda: session.segment(question))
        track = result.tracks[0] if result.tracks else None
        report.calls.append(score_track("text", track, clip.masks[expr.obj], None, seconds,
                                        _tag(clip, expr.obj, expr.kind)))
    if describe_objects:
        answer = describe_object(_session(model, tokenizer, clip), clip.masks[obj, frame], frame)
        words = set(answer.lower().replace(".", " ").split())
        named = clip.objects[obj].colour in words or clip.objects[obj].shape in words
        report.descriptions.append(DescriptionScore(named, text_similarity(answer, describe(clip, obj))))
