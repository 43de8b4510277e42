"""Request limits, checked at the edge before any work: body size, JSON shape, numbers, regions, clicks.

Everything here runs before the model lock, the media download or an RLE decode, and costs time
linear in the body (itself capped by ``UNIPIXEL_MAX_REQUEST_MB``). Each refusal is a 4xx
:class:`~backend.errors.BackendError` whose ``field`` names the part of the body at fault, in the
``tasks[0].id`` / ``params.context.result[3].value.x`` notation, and whose message gives the
numbers and the setting to change.

What is refused anywhere in a body: nesting deeper than ``UNIPIXEL_MAX_JSON_DEPTH``, ``NaN`` and
``Infinity`` (Python's JSON reader accepts them, and ``1e400`` reads as infinity), integers of 2**63
or more, text holding a lone UTF-16 surrogate (``"\\ud800"`` is valid JSON; the tokenizer fails on it).
In a ``/predict`` body also: task ids that are not whole numbers, percent coordinates outside
±``PCT_LIMIT``, frame numbers and sizes that are not whole positive numbers, brush masks
declared larger than ``UNIPIXEL_MAX_PIXELS``, more than ``UNIPIXEL_MAX_REGIONS`` regions or
``UNIPIXEL_MAX_CLICKS`` clicks, and text queries over ``UNIPIXEL_MAX_QUERY_CHARS`` or holding the
model's control tokens (``<|ref|>``, ``<|seg|>``...).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from backend.errors import BadRequest, PayloadTooLarge
from backend.settings import Settings

INT_LIMIT = 2 ** 63         # |int| anywhere in a body (int64, and exact as a float conversion never overflows)
PCT_LIMIT = 1000.0          # |x|, |y|, |width|, |height| in percent; LS keeps regions on the image, rotated boxes overhang
FRAME_LIMIT = 2 ** 31       # LS frame numbers, item_index, original_width/height
GEOMETRY_KEYS = ("x", "y", "width", "height")
CLICK_TYPE = "keypointlabels"
_SCALARS = frozenset({int, str, bool, type(None)})
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z_]+\|>")  # <|ref|>, <|seg|>, <|im_start|>...: the model's control tokens


@dataclass(frozen=True)
class RequestLimits:
    """The request limits of :class:`~backend.settings.Settings` (bytes, levels, counts, pixels, characters)."""

    max_body_bytes: int = 8 << 20
    max_depth: int = 64
    max_regions: int = 100
    max_clicks: int = 200
    max_pixels: int = 3840 * 2160
    max_query_chars: int = 2000

    @classmethod
    def from_settings(cls, settings: Settings) -> "RequestLimits":
        return cls(settings.max_request_bytes, settings.max_json_depth, settings.max_regions, settings.max_clicks,
                   settings.max_pixels, settings.max_query_chars)


def check_body_size(size_bytes: int | None, limits: RequestLimits) -> None:
    """Refuse a body over ``max_body_bytes`` (``Content-Length`` or bytes read) with a 413."""
    if size_bytes is not None and size_bytes > limits.max_body_bytes:
        raise PayloadTooLarge(f"the request body is {size_bytes} bytes; the limit is {limits.max_body_bytes} bytes "
                              f"({limits.max_body_bytes / (1 << 20):g} MiB, UNIPIXEL_MAX_REQUEST_MB)", field="body")


def parse_json_body(raw: bytes, limits: RequestLimits) -> dict:
    """Parse a request body into a JSON object and check its shape (:func:`check_json_tree`).

    Args:
        raw: the body bytes (UTF-8/16/32 JSON).
        limits: the limits in force.

    Returns:
        The body as a dict.

    Raises:
        PayloadTooLarge: over ``max_body_bytes``.
        BadRequest: not JSON, not an object, too deep, or holding a non-finite or huge number.
    """
    check_body_size(len(raw), limits)
    try:
        body = json.loads(raw)
    except RecursionError:  # the C reader recurses per level: thousands of '[' exhaust the stack
        raise BadRequest(f"the body nests JSON deeper than {limits.max_depth} levels (UNIPIXEL_MAX_JSON_DEPTH)",
                         field="body") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise BadRequest(f"the body is not valid JSON ({str(err)[:200]}); send a JSON object with "
                         "Content-Type: application/json", field="body") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got a JSON {type(body).__name__}", field="body")
    check_json_tree(body, limits.max_depth)
    return body


def check_json_tree(body: object, max_depth: int) -> None:
    """Walk ``body`` (iteratively: no recursion to exhaust) and refuse deep nesting, NaN/Infinity and
    integers of 2**63 or more, naming the first offending field.

    Raises:
        BadRequest: with ``field`` set to the offending path.
    """
    stack: list[tuple[object, str, int]] = [(body, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > max_depth:
            raise BadRequest(f"{path or 'the body'} is nested {depth} levels deep; the limit is {max_depth} "
                             "(UNIPIXEL_MAX_JSON_DEPTH)", field=path or "body")
        if isinstance(node, dict):
            bad_key = next((k for k in node if not _valid_unicode(k)), None)
            if bad_key is not None:
                raise BadRequest(f"a key of {path or 'the body'} holds a lone UTF-16 surrogate; send valid Unicode "
                                 "text", field=path or "body")
            children = ((_join(path, k), v) for k, v in node.items())
        elif _flat_and_sane(node):
            continue
        else:
            children = ((f"{path}[{i}]", v) for i, v in enumerate(node))
        for child_path, value in children:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, child_path, depth + 1))
            elif kind is str and not _valid_unicode(value):
                raise BadRequest(f"{child_path} holds a lone UTF-16 surrogate (an escape such as \\ud800); send "
                                 "valid Unicode text", field=child_path)
            elif kind is float and not math.isfinite(value):
                raise BadRequest(f"{child_path} is {value}; numbers must be finite (no NaN or Infinity)",
                                 field=child_path)
            elif kind is int and not -INT_LIMIT < value < INT_LIMIT:
                raise BadRequest(f"{child_path} is an integer of {len(str(abs(value)))} digits; numbers must be "
                                 f"below 2**63", field=child_path)


def _flat_and_sane(items: list) -> bool:
    """True for a list of sane scalars, checked at C speed (brush RLE lists hold millions of ints)."""
    kinds = set(map(type, items))
    if not kinds <= _SCALARS:
        return False
    if kinds == {int}:
        return -INT_LIMIT < min(items) and max(items) < INT_LIMIT
    return int not in kinds and (str not in kinds or all(map(_valid_unicode, filter(_is_str, items))))


def _is_str(value: object) -> bool:
    return type(value) is str


def _valid_unicode(text: str) -> bool:
    """False for text holding a lone surrogate (JSON allows the escape; tokenizers and file names do not)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, key: str) -> str:
    step = _key(key)
    if not step.isidentifier():
        return f"{path}[{step}]"
    return f"{path}.{step}" if path else step


def _key(key: str) -> str:
    """A key as a path step: ``name``, or ``["odd key"]`` for empty and non-identifier keys (cut at 40)."""
    shown = key if len(key) <= 40 else key[:37] + "..."
    return shown if shown.isidentifier() else json.dumps(shown)


def check_predict_body(body: dict, limits: RequestLimits, text_field: str = "query") -> None:
    """The ``/predict`` checks: task ids, batch text queries, and the interactive context.

    Raises:
        BadRequest: with ``field`` naming the task, region or number at fault.
    """
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise BadRequest("'tasks' must be a non-empty list of Label Studio tasks", field="tasks")
    params = body.get("params")
    context = params.get("context") if isinstance(params, dict) else None
    if context and len(tasks) != 1:
        raise BadRequest(f"an interactive call (params.context) carries one task, got {len(tasks)}", field="tasks")
    for n, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        if task.get("id") is not None:
            _whole(task["id"], f"tasks[{n}].id", 0, INT_LIMIT)
        data = task.get("data")
        if isinstance(data, dict) and isinstance(data.get(text_field), str):
            _check_query(data[text_field], _join(f"tasks[{n}].data", text_field), limits)
    if isinstance(context, dict):
        check_context(context, limits, "params.context")


def check_context(context: dict, limits: RequestLimits, path: str = "context") -> None:
    """Count the regions and clicks of an interactive context and check each region's numbers.

    Raises:
        BadRequest: too many regions or clicks, or a number out of range (``field`` names it).
    """
    items = context.get("result")
    if items is None:
        return
    if not isinstance(items, list):
        raise BadRequest(f"{path}.result must be a list of regions, got a JSON {type(items).__name__}",
                         field=f"{path}.result")
    clicks = sum(1 for item in items if isinstance(item, dict) and item.get("type") == CLICK_TYPE)
    if clicks > limits.max_clicks:
        raise BadRequest(f"the context holds {clicks} clicks; the limit is {limits.max_clicks} per request "
                         "(UNIPIXEL_MAX_CLICKS)", field=f"{path}.result")
    if len(items) - clicks > limits.max_regions:
        raise BadRequest(f"the context holds {len(items) - clicks} regions; the limit is {limits.max_regions} per "
                         "request (UNIPIXEL_MAX_REGIONS)", field=f"{path}.result")
    for n, item in enumerate(items):
        if isinstance(item, dict):
            _check_region(item, f"{path}.result[{n}]", limits)


def _check_region(item: dict, path: str, limits: RequestLimits) -> None:
    for key in ("item_index", "original_width", "original_height"):
        if item.get(key) is not None:
            _whole(item[key], f"{path}.{key}", 0 if key == "item_index" else 1, FRAME_LIMIT)
    value = item.get("value")
    if not isinstance(value, dict):
        return
    _check_geometry(value, f"{path}.value")
    sequence = value.get("sequence")
    for k, keyframe in enumerate(sequence if isinstance(sequence, list) else []):
        if isinstance(keyframe, dict):
            _check_geometry(keyframe, f"{path}.value.sequence[{k}]")
            if keyframe.get("frame") is not None:
                _whole(keyframe["frame"], f"{path}.value.sequence[{k}].frame", 1, FRAME_LIMIT)
    if item.get("type") == "brushlabels":
        _check_mask_size(item, path, limits)
    texts = value.get("text")
    if item.get("type") == "textarea" and isinstance(texts, list):
        _check_query(" ".join(t for t in texts if isinstance(t, str)), f"{path}.value.text", limits)


def _check_geometry(geometry: dict, path: str) -> None:
    for key in GEOMETRY_KEYS:
        number = _as_number(geometry.get(key))
        if number is not None and not abs(number) <= PCT_LIMIT:
            raise BadRequest(f"{path}.{key} is {geometry[key]!r}; Label Studio coordinates are percent of the image "
                             f"(0-100), and anything beyond ±{PCT_LIMIT:g} is refused", field=f"{path}.{key}")


def _check_mask_size(item: dict, path: str, limits: RequestLimits) -> None:
    """A brush mask is decoded at its declared size: refuse one over the pixel limit before decoding."""
    width, height = item.get("original_width"), item.get("original_height")
    if width is None or height is None:
        return
    width, height = int(_as_number(width)), int(_as_number(height))  # both already checked whole and in range
    if width * height > limits.max_pixels:
        raise BadRequest(f"{path} declares a {width}x{height} mask = {width * height} pixels; the limit is "
                         f"{limits.max_pixels} (UNIPIXEL_MAX_PIXELS)", field=f"{path}.original_width")


def _check_query(text: str, path: str, limits: RequestLimits) -> None:
    """A text query: at most ``max_query_chars``, and none of the model's control tokens (typed into a
    query they would break the prompt: a ``<|ref|>`` without a region makes the model refuse the call)."""
    if len(text) > limits.max_query_chars:
        raise BadRequest(f"{path} is {len(text)} characters; the limit is {limits.max_query_chars} "
                         "(UNIPIXEL_MAX_QUERY_CHARS)", field=path)
    token = _SPECIAL_TOKEN.search(text)
    if token:
        raise BadRequest(f"{path} holds the model's control token {token.group()!r}; remove it from the query "
                         "(use [1], [2] to refer to segmented objects)", field=path)


def _as_number(value: object) -> float | None:
    """``value`` as a float when it is a number or a numeric string (None otherwise: the parser says why)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and len(value) < 64:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _whole(value: object, path: str, low: int, high: int) -> None:
    """Refuse anything but a whole number (or numeric string) in ``[low, high)``."""
    number = _as_number(value)
    if number is None or not math.isfinite(number) or number != int(number) or not low <= number < high:
        raise BadRequest(f"{path} must be a whole number from {low} to {high - 1}, got {_short(value)}", field=path)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
