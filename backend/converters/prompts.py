"""Label Studio interactive context -> typed prompts in pixels and 0-based frames.

What the Label Studio 1.23 editor really sends (``tests/e2e/EDITOR_NOTES.md``): the region just
drawn plus every other *dynamic* region of the same type and label, on every page of a frame list.
So a context is read item by item, not as one object:

- every smart keypoint is a :class:`Click` keyed by its own region id; which object it belongs to is
  decided by the backend, which remembers the clicks it has applied;
- a rectangle, video rectangle or brush region drawn by the annotator is a :class:`RegionPrompt`;
- regions the backend wrote (``unipixel-...`` ids, see :mod:`region_ids`) come back when the
  annotator selects them or keeps a label selected; they are listed in ``own`` and never re-prompted;
- only the prompt control's ``TextArea`` is a query; a per-region description ``TextArea`` is the
  annotator's text for that region and is kept, never taken as a query.

The regions are read by :func:`backend.converters.annotation.parse_result`, the one parser of Label
Studio regions (the fine-tune reads saved annotations through it too), so the rules of what raises
:class:`PromptError` and what is skipped with the reason in ``skipped`` are its rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.converters.annotation import (BoxRegion, KeypointRegion, MaskRegion, MediaShape, Region, TextRegion,
                                           VideoBoxRegion, parse_result)
from backend.converters.region_ids import base_region_id, is_backend_region
from backend.errors import PromptError
from unipixel_model.prompts import BoxPrompt, MaskPrompt, PointPrompt

@dataclass(frozen=True)
class PromptControls:
    """Names of the config's controls that the context is read against (None: not in the config)."""

    prompt: str | None = None       # whole-object TextArea: text queries
    description: str | None = None  # per-region TextArea: descriptions


@dataclass(frozen=True)
class Click:
    """One smart keypoint: ``click_id`` is its LS region id (stable while the click exists)."""

    click_id: str
    label: str | None
    point: PointPrompt


@dataclass
class RegionPrompt:
    """A box or mask the annotator drew; ``keyframe`` is the LS keyframe of a video box prompt."""

    region_id: str
    label: str | None
    prompt: BoxPrompt | MaskPrompt
    keyframe: dict | None = None


@dataclass
class ContextPrompts:
    """Everything one interactive call carries."""

    clicks: list[Click] = field(default_factory=list)
    regions: list[RegionPrompt] = field(default_factory=list)
    own: list[str] = field(default_factory=list)                # base ids of backend regions sent back
    descriptions: dict[str, str] = field(default_factory=dict)  # base region id -> annotator's text
    text: str | None = None
    skipped: list[str] = field(default_factory=list)            # why items were not served

    @property
    def asks_model(self) -> bool:
        """True when the call needs the model (a click, a drawn region or a query)."""
        return bool(self.clicks or self.regions or self.text)


def wants_model(context: object, controls: PromptControls = PromptControls()) -> bool:
    """True when ``context`` may need the model: a click or region not written by the backend, or a
    query in the prompt control. Cheap and shape-free, so an empty context (``{"result": []}``, sent
    after every Submit/Update) is answered without opening a session or taking the GPU lock."""
    items = context.get("result") if isinstance(context, dict) else None
    if not isinstance(items, list):
        return context is not None and context != {}  # malformed: let the parser say why
    for item in items:
        if not isinstance(item, dict):
            return True
        if item.get("type") == "textarea":
            if item.get("from_name") != controls.description or controls.description is None:
                return True
        elif not is_backend_region(str(item.get("id"))):
            return True
    return False


def context_to_prompts(context: dict | None, shape: MediaShape,
                       controls: PromptControls = PromptControls()) -> ContextPrompts:
    """Convert ``params.context`` of ``/predict``.

    Raises:
        PromptError: the context or a region is malformed (says which and why).
    """
    out = ContextPrompts()
    if not context:
        return out
    if not isinstance(context, dict):
        raise PromptError("context must be {\"result\": [regions...]}; got " + type(context).__name__)
    parsed = parse_result(context.get("result"), shape, where="context.result", known=is_backend_region)
    out.skipped.extend(parsed.skipped)
    for region in parsed.regions:
        if isinstance(region, TextRegion):
            _read_text(out, region, controls)
        elif is_backend_region(region.region_id):  # the backend's own regions: known by id, never prompts
            if region.base_id not in out.own:
                out.own.append(region.base_id)
        elif isinstance(region, KeypointRegion):
            out.clicks.append(Click(region.region_id, region.label, region.point))
        else:
            _read_region(out, region)
    return out


def _read_text(out: ContextPrompts, region: TextRegion, controls: PromptControls) -> None:
    if controls.description is not None and region.from_name == controls.description:
        if region.text:  # the annotator's description of that region: kept, never a query
            out.descriptions[base_region_id(region.region_id)] = region.text
    elif region.text and (controls.prompt is None or region.from_name == controls.prompt):
        out.text = region.text


def _read_region(out: ContextPrompts, region: Region) -> None:
    if isinstance(region, BoxRegion):
        out.regions.append(RegionPrompt(region.region_id, region.label, region.box))
    elif isinstance(region, MaskRegion):
        mask = region.mask_prompt()
        if mask is None:
            out.skipped.append(f"brush region {region.region_id} is empty; paint over the object")
        else:
            out.regions.append(RegionPrompt(region.region_id, region.label, mask))
    elif isinstance(region, VideoBoxRegion):
        key = region.prompt()
        out.regions.append(RegionPrompt(region.region_id, region.label, BoxPrompt(*key.box_px, key.frame_idx),
                                        key.raw))
