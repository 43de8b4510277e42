"""Run prompts on a task's session: create, reuse or refine objects, answer text queries.

Identical regions sent again (LS re-sends every smart region of the same label) are served from
the session; a point group that only gained clicks is refined with the new clicks alone (SAM 2
only, no LLM pass), which is what makes a second click fast.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from backend.converters.prompts import ContextPrompts, ObjectPrompt
from backend.sessions import TaskSession, TrackedObject
from unipixel_model.errors import UniPixelInputError
from unipixel_model.types import MaskPrompt, PointPrompt

logger = logging.getLogger(__name__)

DESCRIBE_QUESTION = "Please describe [{}] briefly."
FORCED_SEG_ANSWER = "Sure, it is <|seg|>."
_OBJ_REF = re.compile(r"\[(\d+)\]")
_SPECIAL = re.compile(r"<\|[^|>]*\|>")


@dataclass
class AnnotatedObject:
    """An object to report back: its tracked state and whether this call changed it."""

    tracked: TrackedObject
    changed: bool


def run_prompts(ts: TaskSession, prompts: ContextPrompts, default_label: str | None,
                describe: bool) -> tuple[list[AnnotatedObject], str | None]:
    """Apply ``prompts`` to ``ts`` (call with the GPU lock held).

    Returns:
        The objects of this call in context order (then text results), and the model's text
        answer to a question about earlier objects (None otherwise).
    """
    out: list[AnnotatedObject] = []
    fresh: list[ObjectPrompt] = []
    for op in prompts.objects:
        reused = _reuse_or_refine(ts, op)
        if reused is None:
            fresh.append(op)
        else:
            out.append(reused)
    out += _create(ts, fresh)
    answer = None
    if prompts.text:
        objects, answer = _text(ts, prompts.text, default_label)
        out += objects
    if describe:
        for item in out:
            if item.changed or item.tracked.description is None:
                item.tracked.description = _describe(ts, item.tracked.obj_id) or item.tracked.description
    return out, answer


def _signature(op: ObjectPrompt) -> str:
    p = op.prompt
    if isinstance(p, MaskPrompt):
        return f"mask:{p.frame_idx}:{hash(p.mask.tobytes())}"
    return f"{type(p).__name__}:{p}"


def _reuse_or_refine(ts: TaskSession, op: ObjectPrompt) -> AnnotatedObject | None:
    known = ts.objects.get(op.key)
    if known is None or known.obj_id not in ts.session.objects:
        return None
    if not op.clicks:
        return AnnotatedObject(known, False) if known.signature == _signature(op) else _drop(ts, op.key)
    done = len(known.clicks)
    if op.clicks[:done] != known.clicks or known.signature != _signature(op):
        return _drop(ts, op.key)  # clicks were removed or moved: start over
    new = op.clicks[done:]
    if not new:
        return AnnotatedObject(known, False)
    ts.session.refine(known.obj_id, new[0].frame_idx, [(c.x_px, c.y_px) for c in new],
                      [int(c.positive) for c in new])
    known.clicks = list(op.clicks)
    return AnnotatedObject(known, True)


def _drop(ts: TaskSession, key: str) -> None:
    known = ts.objects.pop(key)
    if known.obj_id in ts.session.objects:
        ts.session.forget(known.obj_id)
    return None


def _create(ts: TaskSession, fresh: list[ObjectPrompt]) -> list[AnnotatedObject]:
    """One ``refer`` pass for every new object, then the extra clicks of point groups."""
    if not fresh:
        return []
    first_id = ts.next_obj_id()
    ids = {first_id + n: op for n, op in enumerate(fresh)}
    ts.session.refer({obj_id: op.prompt for obj_id, op in ids.items()})
    out = []
    for obj_id, op in ids.items():
        extra: list[PointPrompt] = op.clicks[1:]
        if extra:
            ts.session.refine(obj_id, extra[0].frame_idx, [(c.x_px, c.y_px) for c in extra],
                              [int(c.positive) for c in extra])
        tracked = TrackedObject(obj_id, op.label, _signature(op), list(op.clicks), op.region_id)
        ts.objects[op.key] = tracked
        out.append(AnnotatedObject(tracked, True))
    return out


def _text(ts: TaskSession, text: str, label: str | None) -> tuple[list[AnnotatedObject], str | None]:
    """A text query: a question about ``[n]`` objects goes to the memory bank, anything else segments."""
    key = f"text:{text}"
    known = [o for k, o in ts.objects.items() if k.startswith(key + "#") and o.obj_id in ts.session.objects]
    if known:
        return [AnnotatedObject(o, False) for o in known], None
    refs = [int(n) for n in _OBJ_REF.findall(text)]
    if refs and all(n in ts.session.objects for n in refs):
        result = ts.session.ask(text, refs)
        answer = clean_text(result.text)
        asked = [AnnotatedObject(o, False) for o in ts.objects.values() if o.obj_id in refs]
        for item in asked:  # the answer is shown as the referenced objects' description
            item.tracked.description = answer
        return asked + _keep_text_tracks(ts, key, label, result.tracks), answer
    question = segmentation_question(text, ts.session.frames.is_image)
    result = ts.session.segment(question)
    if not result.tracks:  # the user asked for a mask: take UniPixel's own answer template
        result = ts.session.segment(question, forced_answer=FORCED_SEG_ANSWER)
    answer = None
    return _keep_text_tracks(ts, key, label, result.tracks), answer


def _keep_text_tracks(ts: TaskSession, key: str, label: str | None, tracks) -> list[AnnotatedObject]:
    out = []
    for n, track in enumerate(tracks):
        tracked = TrackedObject(track.obj_id, label, key, [], None)
        ts.objects[f"{key}#{n}"] = tracked
        out.append(AnnotatedObject(tracked, True))
    return out


def segmentation_question(text: str, is_image: bool) -> str:
    """A query as UniPixel was trained to read it: short phrases go into the "Please segment the
    {} in this video." template, sentences and questions get "Please provide the segmentation mask."."""
    text = " ".join(text.split())
    medium = "image" if is_image else "video"
    if text.endswith(("?", ".", "!")) or len(text.split()) > 12:
        return f"{text} Please provide the segmentation mask."
    phrase = re.sub(r"^(the|a|an)\s+", "", text, flags=re.IGNORECASE)
    return f"Please segment the {phrase} in this {medium}."


def _describe(ts: TaskSession, obj_id: int) -> str | None:
    """The model's description of object ``[obj_id]`` (None when its mask is too small to pool)."""
    before = set(ts.session.objects)
    try:
        answer = ts.session.ask(DESCRIBE_QUESTION.format(obj_id), [obj_id]).text
    except UniPixelInputError as err:
        logger.info("no description for [%d]: %s", obj_id, err)
        return None
    for extra in set(ts.session.objects) - before:  # a <|seg|> in a description is not a new object
        ts.session.forget(extra)
    return clean_text(answer)


def clean_text(answer: str) -> str:
    """Model text without special tokens (``<|seg|>``, ``<|im_end|>``...) and extra spaces."""
    return " ".join(_SPECIAL.sub(" ", answer).split())
