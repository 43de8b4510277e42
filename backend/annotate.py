"""Run one interactive call's prompts on a task's session and say what changed.

Object identity follows what the Label Studio editor really does (``tests/e2e/EDITOR_NOTES.md``):

- A smart click is applied once: ``TaskSession.clicks`` remembers which object each click id went
  to, so the clicks the editor sends again (all dynamic clicks of a label, every call) only mark
  that object as still pending.
- A new click goes to an object by where it lands (:mod:`backend.targeting`): on or next to an
  object's mask it corrects that object (positive adds, negative removes), on a frame where an
  object's track is missing but next to its footprint on the nearest frame it fixes that track,
  elsewhere a positive click starts a new object. A negative click with nothing to correct is
  logged and answered with nothing, never an error.
- A correction of an object the editor no longer holds as pending (accepted, or sent alone)
  re-tracks only the stretch up to the nearest frame the annotator already prompted, each way.
- A drawn box or mask is one object; drawn again unchanged, it is served from the session.
- Regions the backend wrote are never re-prompted; descriptions the annotator edited are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from backend.converters.prompts import Click, ContextPrompts, RegionPrompt
from backend.converters.region_ids import new_object_id
from backend.sessions import TaskSession, TrackedObject
from backend.targeting import covers, target_object
from unipixel_model import templates
from unipixel_model.errors import UniPixelInputError
from unipixel_model.types import MaskPrompt, MaskTrack, PointPrompt

logger = logging.getLogger(__name__)


@dataclass
class ObjectUpdate:
    """An object to report back, and the 0-based frames (inclusive) to report; None: all."""

    tracked: TrackedObject
    track: MaskTrack
    frames: tuple[int, int] | None = None


@dataclass
class CallResult:
    """What one call did: the objects to render (context order), the text answer, what was skipped."""

    updates: list[ObjectUpdate] = field(default_factory=list)
    answer: str | None = None
    skipped: list[str] = field(default_factory=list)


def run_prompts(ts: TaskSession, prompts: ContextPrompts, default_label: str | None, describe: bool) -> CallResult:
    """Apply ``prompts`` to ``ts`` (call with the GPU lock and ``ts.lock`` held)."""
    result = CallResult(skipped=list(prompts.skipped))
    changed: dict[str, tuple[int, int] | None] = {}
    keep_descriptions(ts, prompts.descriptions)
    for region in prompts.regions:
        try:
            changed[_region_object(ts, region)] = None
        except UniPixelInputError as err:  # e.g. a mask too small for the model: the rest is still served
            result.skipped.append(f"region {region.region_id}: {err}")
    pending = {ts.clicks[c.click_id] for c in prompts.clicks if ts.clicks.get(c.click_id) in ts.objects}
    for click in prompts.clicks:
        if click.click_id in ts.clicks:
            continue
        try:
            obj = _apply_click(ts, click, pending, result.skipped, default_label)
        except UniPixelInputError as err:
            result.skipped.append(f"click {click.click_id}: {err}")
            ts.clicks[click.click_id] = ""
            continue
        if obj is not None:
            frames = None if obj.region_id in pending else ts.session.track(obj.obj_id).updated
            changed[obj.region_id] = _merge(changed, obj.region_id, frames)
    for region_id in pending:  # still pending in the editor: its whole track is re-sent
        changed[region_id] = None
    if prompts.text:
        result.answer = _text(ts, prompts.text, default_label, changed)
    for region_id, frames in changed.items():
        obj = ts.objects.get(region_id)
        if obj is None or not ts.session.has(obj.obj_id):
            continue
        if describe and not obj.description_by_annotator and (frames is None or obj.description is None):
            obj.description = _describe(ts, obj.obj_id) or obj.description
        result.updates.append(ObjectUpdate(obj, ts.session.track(obj.obj_id), frames))
    incomplete = set(ts.session.incomplete())
    result.skipped += [_nothing_drawn(u.tracked) for u in result.updates  # a click's own miss is said at the click
                       if u.tracked.obj_id not in incomplete and not u.tracked.signature.startswith("click:")
                       and next(u.track.visible_masks(chunk=1), None) is None]  # stops at the first drawn frame
    return result


def _nothing_drawn(obj: TrackedObject) -> str:
    """Why an object's answer draws nothing: the model found it on no frame (say what made it, and what to do)."""
    made_by = f"the text query {obj.signature[len('text:'):]!r}" if obj.signature.startswith("text:") else "its prompt"
    return (f"{obj.region_id}: the model finds the object of {made_by} on no frame, so Label Studio gets nothing to "
            "draw; click inside the object or draw a box around it")


def _merge(changed: dict, region_id: str, frames: tuple[int, int] | None) -> tuple[int, int] | None:
    """Frames to report after one more change: the union of stretches (None, all frames, wins)."""
    if region_id not in changed:
        return frames
    before = changed[region_id]
    if before is None or frames is None:
        return None
    return min(before[0], frames[0]), max(before[1], frames[1])


def keep_descriptions(ts: TaskSession, descriptions: dict[str, str]) -> None:
    """Descriptions the annotator wrote (by region id) replace the model's, and stay theirs."""
    for region_id, text in descriptions.items():
        obj = ts.objects.get(region_id)
        if obj is not None and text != obj.description:  # the annotator rewrote it: theirs from now on
            obj.description, obj.description_by_annotator = text, True


def _signature(prompt) -> str:
    if isinstance(prompt, MaskPrompt):
        return f"mask:{prompt.frame_idx}:{hash(prompt.mask.tobytes())}"
    return f"{type(prompt).__name__}:{prompt}"


def _region_object(ts: TaskSession, region: RegionPrompt) -> str:
    """A drawn box or mask -> its object (reused when unchanged); returns the object's region id."""
    owner = ts.clicks.get(region.region_id)
    known = ts.objects.get(owner) if owner else None
    signature = _signature(region.prompt)
    if known is not None and ts.session.has(known.obj_id) and known.signature == signature:
        return known.region_id
    if known is not None:
        _forget(ts, known)
    # A video box becomes the track under the annotator's own id (the editor replaces it in place,
    # keeping their keyframe); an image box or stroke gets a mask region of its own.
    region_id = region.region_id if region.keyframe is not None else new_object_id(ts.task_id)
    obj = TrackedObject(ts.next_obj_id(), region_id, region.label, signature, {region.prompt.frame_idx},
                        keyframe=region.keyframe)
    ts.session.refer({obj.obj_id: region.prompt})
    ts.objects[region_id], ts.clicks[region.region_id] = obj, region_id
    return region_id


def _apply_click(ts: TaskSession, click: Click, pending: set[str], skipped: list[str],
                 default_label: str | None) -> TrackedObject | None:
    point = click.point
    target = target_object(ts, point, prefer=pending)
    if target is None and not point.positive:
        why = (f"negative click at ({point.x_px:.0f}, {point.y_px:.0f}) px on frame {point.frame_idx} has no object "
               "to correct; click the object first (plain click), then Alt-click to remove parts")
        skipped.append(why)
        ts.clicks[click.click_id] = ""
        return None
    if target is None:
        obj = TrackedObject(ts.next_obj_id(), new_object_id(ts.task_id), click.label or default_label,
                            f"click:{click.click_id}", {point.frame_idx})
        track = ts.session.refer({obj.obj_id: point}).tracks[0]
        ts.objects[obj.region_id] = obj
        pending.add(obj.region_id)
        action = "starts new object"
    else:
        obj = target
        track = ts.session.refine(obj.obj_id, [point], stretch_only=obj.region_id not in pending)
        obj.fixed_frames.add(point.frame_idx)
        action = "adds to" if point.positive else "removes from"
    ts.clicks[click.click_id] = obj.region_id
    logger.info("task %s: click %s (%s, frame %d at %.0f, %.0f px) %s %s", ts.task_id, click.click_id,
                "positive" if point.positive else "negative", point.frame_idx, point.x_px, point.y_px, action,
                obj.region_id)
    if not track.visible(point.frame_idx):
        skipped.append(f"the model finds no object at the click on frame {point.frame_idx} for {obj.region_id} "
                       f"(object score {float(track.object_scores[point.frame_idx]):.3f}); click inside the object")
    else:
        _say_unfollowed(point, obj.region_id, track, skipped, new=target is None)
    return obj


def _say_unfollowed(point: PointPrompt, region_id: str, track: MaskTrack, skipped: list[str], new: bool) -> None:
    """A click the model did not follow (the pixel under a negative click still in the mask, or under a positive one
    out of the mask it made or corrected) looks like a no-op to the annotator: say so, and what to do instead."""
    if covers(track.mask(point.frame_idx), point) == point.positive:
        return
    where = f"({point.x_px:.0f}, {point.y_px:.0f}) px on frame {point.frame_idx}"
    if new:
        skipped.append(f"the model left the part under the click at {where} out of {region_id}, the new object's "
                       "mask lies elsewhere; draw a box around the object instead")
    elif point.positive:
        skipped.append(f"the model left the part under the click at {where} out of {region_id}; paint it in with "
                       "the Brush on the accepted mask (README: Fix a mask by hand)")
    else:
        skipped.append(f"the model kept the part under the negative click at {where} in {region_id}; wipe it with "
                       "the Eraser on the accepted mask (README: Fix a mask by hand)")


def _forget(ts: TaskSession, obj: TrackedObject) -> None:
    ts.objects.pop(obj.region_id, None)
    if ts.session.has(obj.obj_id):
        ts.session.forget(obj.obj_id)


def _text(ts: TaskSession, text: str, label: str | None, changed: dict) -> str | None:
    """A text query: a question about ``[n]`` objects goes to the memory bank, anything else segments.
    The same query again is served from the session."""
    known = [r for r in ts.queries.get(text, []) if r in ts.objects and ts.session.has(ts.objects[r].obj_id)]
    if known:
        changed.update({r: None for r in known})
        return None
    refs = [int(n) for n in templates.OBJ_REF.findall(text)]
    if refs and all(ts.session.has(n) for n in refs):
        result = ts.session.ask(text, refs)
        answer = templates.clean_answer(result.text)
        for obj in ts.live():
            if obj.obj_id in refs and not obj.description_by_annotator:
                obj.description = answer  # shown as the referenced objects' description
                changed[obj.region_id] = None
        tracks = result.tracks
    else:
        question = templates.segmentation_question(text, ts.session.frames.is_image)
        tracks = ts.session.segment(question).tracks
        if not tracks:  # the user asked for a mask: take UniPixel's own answer template
            tracks = ts.session.segment(question, forced_answer=templates.SEG_ANSWER).tracks
        answer = None
    ids = []
    for track in tracks:
        obj = TrackedObject(track.obj_id, new_object_id(ts.task_id), label, f"text:{text}")
        ts.objects[obj.region_id] = obj
        changed[obj.region_id] = None
        ids.append(obj.region_id)
    ts.queries[text] = ids
    return answer


def _describe(ts: TaskSession, obj_id: int) -> str | None:
    """The model's description of object ``[obj_id]`` (None when its mask is too small to pool)."""
    try:
        result = ts.session.ask(templates.DESCRIBE_QUESTION.format(obj_id), [obj_id])
    except UniPixelInputError as err:
        logger.info("no description for [%d]: %s", obj_id, err)
        return None
    for extra in result.tracks:  # a <|seg|> in a description is not a new object
        ts.session.forget(extra.obj_id)
    return templates.clean_answer(result.text) or None
