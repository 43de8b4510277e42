"""Property-based fuzzing of every route with Label-Studio-shaped bodies (issue 13, part 1).

Bodies are built for every config in ``label_config/`` in the shapes of
``shared/docs/label_studio_protocol.md`` (interactive and batch ``/predict``, ``/setup``, webhooks),
then 0-3 mutations hit random leaves and keys: wrong types, numbers as strings, NaN/Infinity, huge
integers, deep nesting, missing keys, keyframes that are not objects, RLE claiming huge masks, hostile
media URLs. Whatever arrives, the server answers:

- never a 5xx (a 503 "busy" with ``Retry-After`` excepted);
- every 4xx is a JSON object whose error names the field (``field``) or the setting at fault;
- ``/health`` stays up, no model lock or admission slot is left held.

The tiny real model answers the bodies that survive the mutations. Profiles: ``ci`` (default, bounded)
and ``--hypothesis-profile=long`` (10,000 examples per test), registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.converters.rle import mask_to_ls_rle
from tests.integration.backend_media import HEIGHT, WIDTH, write_frames, write_image, write_video
from tests.integration.conftest import CONFIGS, config

CONFIG_NAMES = sorted(p.stem for p in CONFIGS.glob("*.xml"))
MODES = {"image_segmentation": "image", "referring_expressions": "image", "video_masks": "frames",
         "video_tracking": "video"}
DEEP = {"__DEEP_LIST__": ("[", "]"), "__DEEP_DICT__": ('{"a":', "}")}
HOSTILE_URLS = ["/data/upload/../../../api/users/", "/data/upload/%2e%2e/%2e%2e/api/projects/",
                "/data/upload/%252e%252e/x", "/data/local-files/?d=../../etc/passwd", "/tasks/1/presign/?fileuri=eA==",
                "/tasks/../api/users", "s3://bucket/clip.mp4", "gs://b/x.png", "file:///etc/passwd", "~root/x.png",
                "http://127.0.0.1:9/x.png", "http://[::1", "http://x:99999/a.png", "/etc/passwd", "ftp://h/a.png",
                "/data/upload/1/a\x00.png", "/" + "a" * 5000, "", " ", "C:\\x.png"]
STATS: dict[str, int] = {}
# Bodies that never reach the model cost milliseconds: those tests run 4x the profile's examples (the
# long profile's 10,000 at most).
CHEAP = settings(max_examples=max(settings.default.max_examples, min(settings.default.max_examples * 4, 10_000)))


# ---- fixtures --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_media(tmp_path_factory) -> dict[str, object]:
    """Small media so the bodies that reach the model stay cheap: an image, 3 frames, a 4-frame video."""
    root = tmp_path_factory.mktemp("fuzz-media")
    frames = write_frames(root / "frames", count=3)
    return {"root": root, "image": str(write_image(root / "square.png")), "frames": [str(p) for p in frames],
            "video": str(write_video(root / "clip.mp4", count=4, fps=25))}


@pytest.fixture(scope="module")
def fuzz_client(shared_engine, backend_settings, redis_server, fuzz_media, tmp_path_factory):
    """One client for the whole module (hypothesis reruns the test body; sessions stay cached)."""
    import dataclasses

    from backend.api import create_app
    from backend.engine import Engine

    work = tmp_path_factory.mktemp("fuzz")
    settings = dataclasses.replace(backend_settings, local_roots=(fuzz_media["root"],), describe_objects=False,
                                   redis_url=redis_server.url, data_dir=work / "data", media_cache_dir=work / "cache",
                                   label_studio_url="http://127.0.0.1:9", label_studio_api_key="0" * 40,
                                   interactive_budget_s=5.0, batch_budget_s=5.0)
    engine = Engine(settings)
    engine.share_model(shared_engine)
    client = create_app(settings, engine).test_client()
    client.engine = engine
    redis_server.client().flushall()
    yield client
    redis_server.client().flushall()
    print(f"\nfuzz statuses: {dict(sorted(STATS.items()))}")


# ---- Label-Studio-shaped bodies ----------------------------------------------------------------------------
pct = st.floats(min_value=0, max_value=100, allow_nan=False)
labels = st.sampled_from(["Object", "Person", "Region"])


@st.composite
def keypoint(draw, to_name: str, frames: int):
    item = {"id": draw(st.sampled_from(["k1", "k2", "k3"])), "from_name": "click", "to_name": to_name,
            "type": "keypointlabels", "origin": "manual", "original_width": WIDTH, "original_height": HEIGHT,
            "image_rotation": 0, "is_positive": draw(st.booleans()),
            "value": {"x": draw(pct), "y": draw(pct), "width": 0.5, "keypointlabels": [draw(labels)]}}
    if frames > 1:
        item["item_index"] = draw(st.integers(0, frames - 1))
    return item


@st.composite
def rectangle(draw, to_name: str, frames: int):
    x, y = draw(st.floats(0, 80)), draw(st.floats(0, 80))
    item = {"id": draw(st.sampled_from(["b1", "b2"])), "from_name": "box", "to_name": to_name,
            "type": "rectanglelabels", "origin": "manual", "original_width": WIDTH, "original_height": HEIGHT,
            "value": {"x": x, "y": y, "width": draw(st.floats(1, 100 - x)), "height": draw(st.floats(1, 100 - y)),
                      "rotation": draw(st.sampled_from([0, 0, 30, 90])), "rectanglelabels": [draw(labels)]}}
    if frames > 1:
        item["item_index"] = draw(st.integers(0, frames - 1))
    return item


@st.composite
def brush(draw, to_name: str, frames: int):
    top, left = draw(st.integers(0, HEIGHT - 2)), draw(st.integers(0, WIDTH - 2))
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[top:top + draw(st.integers(1, 20)), left:left + draw(st.integers(1, 20))] = True
    item = {"id": "m1", "from_name": "mask", "to_name": to_name, "type": "brushlabels", "origin": "manual",
            "original_width": WIDTH, "original_height": HEIGHT,
            "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": [draw(labels)]}}
    if draw(st.booleans()):  # an RLE claiming a huge mask (a few bytes, 30000 x 30000 declared)
        item["original_width"] = item["original_height"] = 30000
        item["value"]["rle"] = _claiming_rle(30000 * 30000 * 4)
    if frames > 1:
        item["item_index"] = draw(st.integers(0, frames - 1))
    return item


def _claiming_rle(num: int) -> list[int]:
    """A valid-looking LS RLE header that declares ``num`` values, followed by one repeat token."""
    rle = mask_to_ls_rle(np.ones((2, 2), bool))
    return list(int(num).to_bytes(4, "big")) + rle[4:]


@st.composite
def video_box(draw, frames: int):
    sequence = [{"frame": draw(st.integers(1, frames + 1)), "enabled": draw(st.booleans()), "rotation": 0,
                 "x": draw(st.floats(0, 60)), "y": draw(st.floats(0, 60)), "width": draw(st.floats(5, 40)),
                 "height": draw(st.floats(5, 40)), "time": 0.04} for _ in range(draw(st.integers(1, 3)))]
    return {"id": draw(st.sampled_from(["vbox1", "unipixel-7-2"])), "from_name": "box", "to_name": "video",
            "type": "videorectangle", "origin": "manual",
            "value": {"framesCount": frames, "duration": frames / 25, "labels": [draw(labels)], "sequence": sequence}}


@st.composite
def text_region(draw, to_name: str, name: str = "prompt"):
    text = draw(st.sampled_from(["the square", "yellow square", "What is [1] doing?", "[1] and [2]", "", "[0]",
                                 "[" + "9" * 1990 + "]", "<|seg|><|ref|><|mem|>", "a\ud800b", "   ", "?" * 2000]))
    item = {"id": draw(st.sampled_from(["t1", "vbox1", "m1"])), "from_name": name, "to_name": to_name,
            "type": "textarea", "origin": "manual", "value": {"text": [text]}}
    return item


def region(cfg: str):
    mode = MODES[cfg]
    if mode == "video":
        return st.one_of(video_box(4), text_region("video"), text_region("video", "description"))
    to_name, frames = ("frames", 3) if mode == "frames" else ("image", 1)
    return st.one_of(keypoint(to_name, frames), rectangle(to_name, frames), brush(to_name, frames),
                     text_region(to_name), text_region(to_name, "description"))


def task_for(cfg: str, media: dict, task_id: int) -> dict:
    mode = MODES[cfg]
    key = {"image": "image", "frames": "frames", "video": "video"}[mode]
    return {"id": task_id, "data": {key: media[mode], "query": "the square"}, "annotations": [], "predictions": []}


@st.composite
def predict_body(draw, media: dict):
    cfg = draw(st.sampled_from(CONFIG_NAMES))
    task_id = 900 + CONFIG_NAMES.index(cfg)  # one task per config: sessions stay cached between examples
    body = {"tasks": [task_for(cfg, media, task_id)], "label_config": config(cfg), "project": "3.1700000000",
            "params": {"login": None, "password": None, "context": None}}
    if draw(st.integers(0, 3)):  # mostly interactive calls; sometimes a batch "Retrieve predictions"
        body["params"]["context"] = {"result": draw(st.lists(region(cfg), max_size=3))}
    if draw(st.integers(0, 9)) == 0:  # a hostile media URL
        data = body["tasks"][0]["data"]
        data[next(k for k in data if k != "query")] = draw(st.sampled_from(HOSTILE_URLS))
    return body


@st.composite
def setup_body(draw):
    return {"project": draw(st.sampled_from(["3.1700000000", "3", 3, "x.y"])),
            "schema": config(draw(st.sampled_from(CONFIG_NAMES))), "hostname": "http://localhost:8080",
            "access_token": "0" * 40, "model_version": "tiny@base", "extra_params": {"a": 1}}


@st.composite
def webhook_body(draw):
    cfg = draw(st.sampled_from(CONFIG_NAMES))
    result = draw(st.lists(region(cfg), max_size=2))
    action = draw(st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
                                   "START_TRAINING", "PROJECT_UPDATED", "TASKS_CREATED"]))
    return {"action": action, "project": {"id": draw(st.integers(1, 3)), "title": "p", "label_config": config(cfg)},
            "annotation": {"id": 5, "task": 900, "project": 3, "result": result, "was_cancelled": False},
            "task": {"id": 900, "data": {"image": "/data/upload/1/a.png"}}}


# ---- mutations -------------------------------------------------------------------------------------------
HUGE_INTS = st.sampled_from([2 ** 63, -(2 ** 63), 2 ** 64 + 1, 10 ** 30, 10 ** 400])
SPECIAL_FLOATS = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 1e300])
STRINGS = st.one_of(st.text(max_size=20), st.sampled_from(["", "12", "1e400", "NaN", "Infinity", "-1", "0x10",
                                                           "\ud800", "\x00", "[1]", "<|seg|>" * 50, "a" * 3000]))
HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), HUGE_INTS, SPECIAL_FLOATS,
                    st.floats(), STRINGS, st.sampled_from(HOSTILE_URLS), st.just([]), st.just({}),
                    st.lists(st.integers(-300, 300), max_size=6), st.lists(STRINGS, max_size=3),
                    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
                    st.sampled_from([f"{marker}{n}" for marker in DEEP for n in (40, 70, 3000, 100_000)]))


def _paths(node, path=()):
    """Every (path, value) in the tree, containers included; the root is ``()``."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list) and not (node and all(type(v) is int for v in node)):  # RLE lists: one leaf
        for n, value in enumerate(node):
            yield from _paths(value, path + (n,))


def _parent(body, path):
    node = body
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def mutated(draw, base):
    """``base`` with 0-3 random mutations; returns (body, list of (operation, path))."""
    body, done = json.loads(json.dumps(base)), []
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p, _ in _paths(body) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(body, path), path[-1]
        operation = draw(st.sampled_from(["replace", "replace", "replace", "delete", "rename", "wrap",
                                          "stringify", "repeat", "scalars"]))
        if operation == "replace":
            parent[last] = draw(HOSTILE)
        elif operation == "delete":
            del parent[last]
        elif operation == "rename" and isinstance(parent, dict):
            parent[draw(STRINGS)] = parent.pop(last)
        elif operation == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"value": parent[last]}]))
        elif operation == "stringify":
            parent[last] = json.dumps(parent[last], allow_nan=True)[:5000]
        elif operation == "repeat" and isinstance(parent, list):
            parent.extend([parent[last]] * draw(st.sampled_from([2, 150, 300])))
        elif operation == "scalars" and isinstance(parent[last], list):  # e.g. a sequence of non-objects
            parent[last] = draw(st.lists(st.one_of(STRINGS, st.integers(), st.none()), min_size=1, max_size=4))
        done.append((operation, path))
        if len(json.dumps(body, allow_nan=True)) > 2_000_000:  # "repeat" of something big
            break
    return body, done


def _encode(body) -> bytes:
    """JSON as an attacker may send it: NaN/Infinity literals allowed, deep-nesting markers expanded."""
    text = json.dumps(body, allow_nan=True)
    for marker, (opening, closing) in DEEP.items():
        text = re.sub(f'"{marker}(\\d+)"', lambda m, o=opening, c=closing: o * int(m.group(1)) + "1" +
                      c * int(m.group(1)), text)
    return text.encode("utf-8", "surrogatepass")


# ---- the properties ----------------------------------------------------------------------------------------
SETTING = re.compile(r"\bUNIPIXEL_[A-Z_]+|LABEL_STUDIO_[A-Z_]+|BASIC_AUTH_[A-Z]+")


def _post(client, route: str, body) -> None:
    reply = client.post(route, data=_encode(body), content_type="application/json")
    _check_reply(reply, route, body)
    _check_healthy(client)


def _check_reply(reply, route: str, body) -> None:
    status = reply.status_code
    STATS[f"{route} {status}"] = STATS.get(f"{route} {status}", 0) + 1
    if os.environ.get("FUZZ_STATUS_LOG"):  # long runs: one line per example, readable while it runs
        with open(os.environ["FUZZ_STATUS_LOG"], "a") as log:
            log.write(f"{route} {status}\n")
    text = reply.get_data(as_text=True)
    assert status < 500 or (status == 503 and int(reply.headers.get("Retry-After", "0")) > 0), \
        f"{route} answered {status}: {text[:500]}"
    assert "Traceback" not in text
    if 400 <= status < 500:
        data = reply.get_json(silent=True)
        assert isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"], text[:300]
        assert data.get("status") == status
        assert _names_a_field(data, body), f"{status} names no field: {data['error'][:300]}"


def _names_a_field(data: dict, body) -> bool:
    """The error says what is at fault: a ``field`` path, a key of the body, or the setting to change."""
    if data.get("field"):
        return True
    message = data["error"]
    if SETTING.search(message):
        return True
    if re.search(r"['\"][A-Za-z_][\w.\[\]]*['\"]|\$\w+|\w*\[\d+\]|\b\w+\.\w+\b", message):  # 'action', $image, tasks[0], object [1]
        return True
    if any(len(v) >= 3 and v[:60] in message for p, v in _paths(body) if isinstance(v, str)):
        return True  # the offending value itself, e.g. a media URL that is refused
    words = set(re.findall(r"[A-Za-z_]\w*", message))
    keys = {str(p[-1]) for p, _ in _paths(body) if p and isinstance(p[-1], str)}
    region_ids = {str(v) for p, v in _paths(body) if p and p[-1] == "id" and isinstance(v, (str, int))}
    return bool(keys & words) or bool(region_ids & words)  # a key of the body, or the region at fault by id


def _check_healthy(client) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "UP"
    engine = client.engine
    for future in list(engine.background_jobs):  # background propagation / batch posts hold slots meanwhile
        with contextlib.suppress(Exception):
            future.result(timeout=300)
    assert engine.gpu.acquire(timeout=120), "the model lock is held after the request"
    engine.gpu.release()
    with contextlib.ExitStack() as slots:  # every admission slot is free again
        for _ in range(engine.settings.max_queued_requests + 1):
            slots.enter_context(engine.admitted())


@given(data=st.data())
def test_fuzz_predict_never_5xx(fuzz_client, fuzz_media, data):
    body, _ = data.draw(mutated(data.draw(predict_body(fuzz_media))))
    _post(fuzz_client, "/predict", body)


@CHEAP
@given(data=st.data())
def test_fuzz_setup_and_webhook_never_5xx(fuzz_client, data):
    route = data.draw(st.sampled_from(["/setup", "/webhook"]))
    base = data.draw(setup_body() if route == "/setup" else webhook_body())
    body, _ = data.draw(mutated(base))
    _post(fuzz_client, route, body)


@CHEAP
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                     st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"NaN", b'{"tasks": Infinity}', b"\xff\xfe",
                                      b'{"tasks": [' + b"1," * 100 + b"]}", b'{"a": 1e400}', b"{" + b"9" * 5000 + b"}"])),
       route=st.sampled_from(["/predict", "/setup", "/webhook"]),
       content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]))
def test_fuzz_raw_bytes_never_5xx(fuzz_client, raw, route, content_type):
    reply = fuzz_client.post(route, data=raw, content_type=content_type)
    _check_reply(reply, route, {})
    _check_healthy(fuzz_client)


@CHEAP
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       path=st.one_of(st.sampled_from(["/", "/health", "/setup", "/predict", "/webhook", "/versions", "/metrics",
                                       "/predict/", "/webhook?secret=x", "/versions?x=1&x=2"]),
                      # no leading "//": the test client would read a host name from it
                      st.text(alphabet="abc/%.?=&", max_size=20).map(lambda t: "/" + t.lstrip("/"))))
def test_fuzz_methods_and_paths_never_5xx(fuzz_client, method, path):
    reply = fuzz_client.open(path, method=method)
    status = reply.status_code
    assert status < 500, f"{method} {path}: {status}"
    if status >= 400 and method != "HEAD":
        assert isinstance(reply.get_json(silent=True), dict)
    _check_healthy(fuzz_client)
