"""Parse a Label Studio labeling config into the tags this backend reads and fills.

Supported shapes (see ``label_config/``):

- ``video``: ``<Video>`` + ``<VideoRectangle>`` (+ ``<Labels>``) -> a box track per object;
- ``frames``: ``<Image valueList="$frames">`` + ``<BrushLabels>`` -> one mask per frame (``item_index``);
- ``image``: ``<Image value="$image">`` + ``<BrushLabels>`` -> one mask per object.

Optional in all: smart ``<KeyPointLabels>`` / ``<RectangleLabels>`` (click and box prompts), a
``<TextArea>`` for text queries, and a ``perRegion`` ``<TextArea>`` that receives descriptions.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from backend.errors import UnsupportedLabelConfig

SUPPORTED = ("Video + VideoRectangle", "Image valueList + BrushLabels", "Image + BrushLabels")
DEFAULT_FRAMERATE = 24.0  # Label Studio's own default for <Video>
MAX_FRAMERATE = 1000.0    # frames per second; anything above is a typo (or an attack on the timeline maths)


@dataclass(frozen=True)
class ObjectTag:
    """The media tag: ``value_key`` is the task data key (``$video`` -> ``video``)."""

    name: str
    tag: str
    value_key: str
    framerate: float | None = None     # fixed framerate attribute
    framerate_key: str | None = None   # framerate="$fps": read per task


@dataclass(frozen=True)
class Control:
    """A control tag: ``labels`` are its ``<Label value>``s (empty for TextArea)."""

    name: str
    tag: str
    to_name: str
    labels: tuple[str, ...] = ()
    smart: bool = True
    per_region: bool = False


@dataclass(frozen=True)
class LabelSpec:
    """What a config asks for. ``mode`` is ``video``, ``frames`` or ``image``."""

    mode: str
    obj: ObjectTag
    output: Control
    labels: Control | None = None
    points: Control | None = None
    boxes: Control | None = None
    prompt: Control | None = None
    description: Control | None = None

    @property
    def strategy(self):
        """The :class:`backend.modes.MediaMode` of this config (fetch and timing per mode)."""
        from backend.modes import MODES

        return MODES[self.mode]

    @property
    def default_label(self) -> str | None:
        source = self.labels if self.strategy.timed and self.labels else self.output
        return source.labels[0] if source and source.labels else None

    def framerate(self, task_data: dict) -> float:
        """Frames per second LS uses to number this task's frames."""
        if self.obj.framerate_key:
            raw = task_data.get(self.obj.framerate_key)
            rate = _framerate(raw)
            if rate is None:
                raise UnsupportedLabelConfig(f"the config reads framerate from ${self.obj.framerate_key}, but the "
                                             f"task has {str(raw)[:40]!r}; add a number of frames per second from 0 "
                                             f"to {MAX_FRAMERATE:g} to the task data")
            return rate
        return self.obj.framerate or DEFAULT_FRAMERATE


def parse_label_config(xml: str) -> LabelSpec:
    """Parse ``xml`` (a ``<View>`` config).

    Raises:
        UnsupportedLabelConfig: malformed XML, or no supported object/output pair; the message
            names the supported tags.
    """
    if not isinstance(xml, str) or not xml.strip():
        raise UnsupportedLabelConfig("the request has no label_config; connect the backend to a project first",
                                     field="label_config")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise UnsupportedLabelConfig(f"label_config is not valid XML: {err}", field="label_config") from None
    objects = {el.get("name"): el for el in root.iter() if el.tag in ("Video", "Image") and el.get("name")}
    controls = [_control(el) for el in root.iter() if el.get("toName") and el.get("name")]
    for output_tag, mode_of in (("VideoRectangle", _video_mode), ("BrushLabels", _image_mode)):
        for control in controls:
            target = objects.get(control.to_name)
            if control.tag == output_tag and target is not None and mode_of(target):
                return _spec(mode_of(target), _object(target), control, controls)
    found = sorted({el.tag for el in root.iter()} - {"View"})
    raise UnsupportedLabelConfig(f"unsupported labeling config: found tags {found}; this backend needs one of "
                                 f"{', '.join(SUPPORTED)} (examples in label_config/)", field="label_config")


def _video_mode(el: ET.Element) -> str | None:
    return "video" if el.tag == "Video" else None


def _image_mode(el: ET.Element) -> str | None:
    if el.tag != "Image":
        return None
    return "frames" if el.get("valueList") else "image"


def _framerate(raw: object) -> float | None:
    """A frames-per-second value in (0, MAX_FRAMERATE], or None."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None
    try:
        rate = float(raw)
    except (ValueError, OverflowError):
        return None
    return rate if math.isfinite(rate) and 0 < rate <= MAX_FRAMERATE else None


def _object(el: ET.Element) -> ObjectTag:
    value = el.get("valueList") or el.get("value") or ""
    rate = el.get("framerate")
    fixed = _framerate(rate) if rate and not rate.startswith("$") else None
    if rate and not rate.startswith("$") and fixed is None:
        raise UnsupportedLabelConfig(f"<{el.tag} name=\"{el.get('name')}\" framerate=\"{rate[:40]}\"> is not a number "
                                     f"of frames per second from 0 to {MAX_FRAMERATE:g}; fix the labeling config")
    return ObjectTag(el.get("name"), el.tag, value.lstrip("$"), fixed, rate[1:] if rate and rate.startswith("$") else None)


def _control(el: ET.Element) -> Control:
    labels = tuple(child.get("value") for child in el if child.tag == "Label" and child.get("value"))
    return Control(el.get("name"), el.tag, el.get("toName").split(",")[0], labels,
                   el.get("smart", "true").lower() != "false", el.get("perRegion", "false").lower() == "true")


def _spec(mode: str, obj: ObjectTag, output: Control, controls: list[Control]) -> LabelSpec:
    def first(tag: str, **want) -> Control | None:
        return next((c for c in controls if c.tag == tag and c.to_name == obj.name
                     and all(getattr(c, k) == v for k, v in want.items())), None)

    prompt = first("TextArea", per_region=False)
    if prompt is None:  # a text box may point at another tag (e.g. a header)
        prompt = next((c for c in controls if c.tag == "TextArea" and not c.per_region), None)
    return LabelSpec(mode, obj, output, labels=first("Labels"), points=first("KeyPointLabels"),
                     boxes=first("RectangleLabels"), prompt=prompt, description=first("TextArea", per_region=True))
