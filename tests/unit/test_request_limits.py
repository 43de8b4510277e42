"""Edge checks of backend.limits, Label Studio media path normalisation, RLE size checks, redaction."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from backend.converters.rle import RLEError, ls_rle_to_mask, mask_to_ls_rle
from backend.errors import BadRequest, MediaError, PayloadTooLarge, UnsupportedLabelConfig
from backend.label_config import parse_label_config
from backend.limits import RequestLimits, check_context, check_predict_body, parse_json_body
from backend.media import normalise_ls_media_path
from backend.redaction import Redactor, protect_logs

LIMITS = RequestLimits(max_body_bytes=1 << 20, max_depth=8, max_regions=3, max_clicks=4, max_pixels=100 * 100,
                       max_query_chars=50)


def _field(raw: bytes | dict, check=None) -> str:
    with pytest.raises(BadRequest) as err:
        body = parse_json_body(raw if isinstance(raw, bytes) else json.dumps(raw).encode(), LIMITS)
        if check:
            check(body, LIMITS)
    return err.value.field


@pytest.mark.parametrize("raw, field", [
    (b'{"tasks": [{"id": Infinity}]}', "tasks[0].id"),
    (b'{"a": {"b": [1, 2, NaN]}}', "a.b[2]"),
    (b'{"a": -Infinity}', "a"),
    (b'{"a": 1e999}', "a"),
    (b'{"a": [9223372036854775808]}', "a[0]"),
    (b'{"a": [[[[[[[[[1]]]]]]]]]}', "a[0][0][0][0][0][0][0]"),
    (b"[1]", "body"),
    (b'{"a": ', "body"),
    (b"\xff\xfe\x00", "body"),
    (b"[" * 100_000, "body"),
    (b'{"a": ' + b"9" * 5000 + b"}", "body"),
    (b'{"a": ["x", "\\ud800"]}', "a[1]"),
    (b'{"a": {"q\\udfff": 1}}', "a"),
    (b'{"": 1e400}', '[""]'),
    (b'{"a b": {"c": NaN}}', '["a b"].c'),
])
def test_parse_json_body_refuses_with_the_field(raw, field):
    assert _field(raw) == field


def test_parse_json_body_accepts_ls_bodies_and_long_rle_lists_fast():
    import time

    rle = mask_to_ls_rle(np.random.default_rng(0).random((540, 960)) > 0.9)  # ~0.5 M ints: a noisy stroke
    raw = json.dumps({"tasks": [{"id": 1}], "rle": rle, "x": 1.5, "s": ["a", None]}).encode()
    started = time.perf_counter()
    body = parse_json_body(raw, RequestLimits(max_body_bytes=len(raw)))
    assert body["rle"] == rle and time.perf_counter() - started < 1.0


def test_body_size_cap_is_413():
    with pytest.raises(PayloadTooLarge) as err:
        parse_json_body(b" " * (LIMITS.max_body_bytes + 1), LIMITS)
    assert err.value.status == 413 and "UNIPIXEL_MAX_REQUEST_MB" in str(err.value)


@pytest.mark.parametrize("context, field, words", [
    ({"result": "x"}, "context.result", "list"),
    ({"result": [{"type": "keypointlabels", "value": {"x": 1, "y": 1}}] * 5}, "context.result", "UNIPIXEL_MAX_CLICKS"),
    ({"result": [{"type": "rectanglelabels", "value": {}}] * 4}, "context.result", "UNIPIXEL_MAX_REGIONS"),
    ({"result": [{"type": "keypointlabels", "value": {"x": "5000", "y": 1}}]}, "context.result[0].value.x", "±1000"),
    ({"result": [{"type": "videorectangle", "value": {"sequence": [{"frame": 1.5}]}}]},
     "context.result[0].value.sequence[0].frame", "whole number"),
    ({"result": [{"type": "brushlabels", "original_width": 101, "original_height": 100, "value": {"rle": [0]}}]},
     "context.result[0].original_width", "UNIPIXEL_MAX_PIXELS"),
    ({"result": [{"type": "brushlabels", "original_width": 0, "value": {}}]}, "context.result[0].original_width",
     "whole number"),
    ({"result": [{"type": "textarea", "value": {"text": ["a" * 30, "b" * 30]}}]}, "context.result[0].value.text",
     "UNIPIXEL_MAX_QUERY_CHARS"),
])
def test_check_context_names_the_field_and_the_setting(context, field, words):
    with pytest.raises(BadRequest) as err:
        check_context(context, LIMITS)
    assert err.value.field == field and words in str(err.value)


def test_check_context_lets_editor_shapes_through():
    check_context({"result": [
        {"type": "keypointlabels", "item_index": 2, "original_width": 64, "original_height": 48,
         "value": {"x": 100.0, "y": 0, "width": 0.5, "keypointlabels": ["Object"]}},
        {"type": "videorectangle", "value": {"sequence": [{"frame": 37, "x": "12.5", "y": 3, "width": 9, "height": 9}]}},
        {"type": "brushlabels", "original_width": 100, "original_height": 100, "value": {"rle": [1, 2]}},
        {"type": "choices", "value": {"x": "not ours"}}]}, LIMITS)


@pytest.mark.parametrize("task, field", [({"id": "abc", "data": {}}, "tasks[0].id"), ({"id": -1, "data": {}}, "tasks[0].id"),
                                         ({"id": 1, "data": {"query": "q" * 51}}, "tasks[0].data.query")])
def test_check_predict_body_checks_tasks(task, field):
    with pytest.raises(BadRequest) as err:
        check_predict_body({"tasks": [task]}, LIMITS)
    assert err.value.field == field


# ---- Label Studio media paths --------------------------------------------------------------------------------
@pytest.mark.parametrize("path, sent", [
    ("/data/upload/1/a.mp4", "/data/upload/1/a.mp4"),
    ("/data/upload/1/../2/./a b.mp4", "/data/upload/2/a%20b.mp4"),
    ("/data/upload//1/a%20b.png", "/data/upload/1/a%20b.png"),
    ("/data/local-files/?d=clips/a.mp4", "/data/local-files/?d=clips/a.mp4"),
    ("/tasks/12/presign/?fileuri=czM6Ly9i", "/tasks/12/presign/?fileuri=czM6Ly9i"),
    ("/projects/3/resolve/?fileuri=x", "/projects/3/resolve/?fileuri=x"),
    ("/storage-data/uploaded/a.png", "/storage-data/uploaded/a.png"),
])
def test_normalise_ls_media_path_keeps_media_paths(path, sent):
    assert normalise_ls_media_path(path) == sent


@pytest.mark.parametrize("path", [
    "/data/upload/../../../api/users/", "/data/upload/1/../../../api/users", "/data/upload/%2e%2e/%2e%2e/api/x",
    "/data/upload/%252e%252e/x", "/data/upload/1/..%2f..%2fapi", "/data/upload/1\\..\\..\\api", "/data/upload/",
    "/tasks/1/presign/../../api/users", "/tasks/1/annotations/", "/tasks/abc/presign/", "/data/local-files/../api/",
    "/data/local-filesX/?d=a", "/api/projects/", "/data/upload/a\x00b",
])
def test_normalise_ls_media_path_refuses_escapes(path):
    with pytest.raises(MediaError, match="media paths|encoding"):
        normalise_ls_media_path(path)


# ---- RLE and configs ------------------------------------------------------------------------------------------
def test_rle_declared_size_is_checked_before_decoding(monkeypatch):
    import backend.converters.rle as rle

    monkeypatch.setattr(rle, "_decoded_runs", lambda *a: pytest.fail("decoded before the size check"))
    claim = list((30000 * 30000 * 4).to_bytes(4, "big")) + mask_to_ls_rle(np.ones((2, 2), bool))[4:]
    with pytest.raises(RLEError, match="UNIPIXEL_MAX_PIXELS"):
        ls_rle_to_mask(claim, 30000, 30000, max_pixels=3840 * 2160)
    for height, width in ((0, 5), (-2, 5), (2.5, 5), (True, 5), ("4", 5)):
        with pytest.raises(RLEError, match="whole number"):
            ls_rle_to_mask(claim, height, width)


def test_bad_framerates_are_config_errors():
    xml = '<View><Video name="v" value="$video" framerate="{}"/><VideoRectangle name="b" toName="v"/></View>'
    for rate in ("fast", "inf", "nan", "-5", "1e9"):
        with pytest.raises(UnsupportedLabelConfig, match="framerate"):
            parse_label_config(xml.format(rate))
    spec = parse_label_config(xml.format("$fps"))
    for raw in ("NaN", float("inf"), 0, None, [], "1e400"):
        with pytest.raises(UnsupportedLabelConfig, match="fps"):
            spec.framerate({"fps": raw})
    assert spec.framerate({"fps": "29.97"}) == 29.97


# ---- redaction ------------------------------------------------------------------------------------------------
def test_redactor_masks_secrets_longest_first():
    redactor = Redactor(lambda: ["secret-token", "secret-token-2", "", None, "ab"])
    assert redactor.scrub("a secret-token-2 and secret-token; ab stays") == "a *** and ***; ab stays"


def test_protect_logs_masks_messages_args_and_tracebacks(caplog):
    redactor = Redactor(lambda: ["tok-123456"])
    protect_logs(redactor)
    caplog.set_level(logging.INFO)
    logging.getLogger("any.library").info("auth %s", "Token tok-123456")
    try:
        raise ValueError("bad tok-123456")
    except ValueError:
        logging.getLogger("x").exception("boom")
    assert "tok-123456" not in caplog.text and caplog.text.count("***") >= 2
