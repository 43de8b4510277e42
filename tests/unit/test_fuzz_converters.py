"""Property-based fuzzing of the pure edge code: whatever the input, only the documented error comes out.

- ``ls_rle_to_mask``: a mask of the declared size, or :class:`RLEError`;
- ``normalise_ls_media_path``: a path inside Label Studio's media prefixes, or :class:`MediaError`;
- ``parse_json_body`` / ``check_context``: the body, or :class:`BadRequest` naming a field;
- ``parse_label_config``: a spec, or :class:`UnsupportedLabelConfig`;
- ``context_to_prompts``: prompts, or :class:`PromptError`.

Profiles as in ``tests/conftest.py`` (``--hypothesis-profile=long``: 10,000 examples each).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.converters.annotation import MediaShape
from backend.converters.prompts import context_to_prompts
from backend.converters.rle import RLEError, ls_rle_to_mask, mask_to_ls_rle
from backend.errors import BadRequest, MediaError, PromptError, UnsupportedLabelConfig
from backend.label_config import parse_label_config
from backend.limits import RequestLimits, check_context, parse_json_body
from backend.media import LS_FILE_PREFIXES, LS_LOCAL_FILES, LS_PRESIGN, normalise_ls_media_path

MANY = settings(max_examples=max(settings.default.max_examples, min(settings.default.max_examples * 2, 10_000)))
CONFIGS = sorted((Path(__file__).parents[2] / "label_config").glob("*.xml"))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=4), max_leaves=10)


@MANY
@given(rle=st.one_of(st.lists(st.integers(-5, 300), max_size=40), st.binary(max_size=40).map(list),
                     st.builds(lambda h, w, tail: list((h * w * 4).to_bytes(4, "big")) + tail,
                               st.integers(1, 40), st.integers(1, 40), st.lists(st.integers(0, 255), max_size=30))),
       height=st.one_of(st.integers(-3, 40), st.floats(), st.sampled_from([30000, 2 ** 40])),
       width=st.one_of(st.integers(-3, 40), st.sampled_from([30000, 2 ** 40])))
def test_ls_rle_to_mask_returns_the_declared_size_or_rle_error(rle, height, width):
    try:
        mask = ls_rle_to_mask(rle, height, width, max_pixels=1600)
    except RLEError:
        return
    assert mask.dtype == bool and mask.shape == (int(height), int(width))


@given(mask=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=5))
def test_ls_rle_round_trips(mask):
    array = np.array(mask, dtype=bool)
    assert np.array_equal(ls_rle_to_mask(mask_to_ls_rle(array), *array.shape, max_pixels=array.size), array)


segment = st.one_of(st.sampled_from(["..", ".", "", "%2e%2e", "%2E.", "%252e%252e", "%2f", "%5c", "a", "1", "x.png",
                                     "upload", "data", "tasks", "presign", "api", "\\", "a%00b", "%"]),
                    st.text(alphabet="a.%/\\2e5cf", max_size=6))


@MANY
@given(start=st.sampled_from(["/data/upload/", "/data/local-files/", "/storage-data/", "/tasks/1/", "/", "/data/"]),
       rest=st.lists(segment, max_size=6), query=st.sampled_from(["", "?d=a.png", "?fileuri=eA=="]))
def test_normalised_ls_paths_stay_inside_the_media_prefixes(start, rest, query):
    try:
        sent = normalise_ls_media_path(start + "/".join(rest) + query)
    except MediaError:
        return
    path = unquote(urlsplit(sent).path)
    assert ".." not in path.split("/") and "\\" not in path and "\x00" not in path
    assert posixpath.normpath(path) == path.rstrip("/") or path.endswith("/")
    assert path.startswith(LS_FILE_PREFIXES) or path in LS_LOCAL_FILES or LS_PRESIGN.match(path)


@MANY
@given(value=json_values)
def test_parse_json_body_gives_the_body_or_a_named_bad_request(value):
    limits = RequestLimits(max_depth=4)
    try:
        body = parse_json_body(json.dumps({"v": value}, allow_nan=True).encode(), limits)
    except BadRequest as err:
        assert err.field and err.field.split(".")[0].split("[")[0] in ("v", "body")
        return
    assert body.keys() == {"v"}


@MANY
@given(context=st.dictionaries(st.sampled_from(["result", "x"]), json_values | st.lists(
    st.fixed_dictionaries({"type": st.sampled_from(["keypointlabels", "brushlabels", "videorectangle", "textarea"]),
                           "value": json_values, "original_width": json_values, "item_index": json_values}),
    max_size=4)))
def test_check_context_only_raises_bad_request(context):
    try:
        check_context(context, RequestLimits(max_clicks=2, max_regions=2))
    except BadRequest as err:
        assert err.field.startswith("context.result")


@given(xml=st.sampled_from(CONFIGS).map(lambda p: p.read_text()), cut=st.integers(0, 2000),
       junk=st.text(alphabet="<>\"'=$/ &;abcVideoImageframerate", max_size=20))
def test_parse_label_config_only_raises_unsupported(xml, cut, junk):
    try:
        parse_label_config(xml[:cut] + junk + xml[cut:])
    except UnsupportedLabelConfig:
        pass


@MANY
@given(items=st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["keypointlabels", "rectanglelabels", "brushlabels", "videorectangle", "textarea"]),
     "value": json_values | st.fixed_dictionaries({"x": json_values, "y": json_values, "width": json_values,
                                                   "height": json_values, "sequence": json_values,
                                                   "rle": json_values, "text": json_values})},
    optional={"id": json_values, "item_index": json_values, "original_width": json_values,
              "original_height": json_values, "is_positive": json_values}), max_size=4))
def test_context_to_prompts_only_raises_prompt_error(items):
    try:
        context_to_prompts({"result": items}, MediaShape(4, 48, 64, 25.0))
    except PromptError:
        pass
