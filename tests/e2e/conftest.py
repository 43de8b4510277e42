"""End-to-end fixtures: our backend (``python -m backend serve``, ``UNIPIXEL_MODEL=tiny``; ``toy_backend`` serves the
toy model) next to a real Label Studio 1.23.2, a real redis-server, a short real clip cut from the sample video in
the LS wheel, a synthetic shapes image, and a headless Chromium driving the LS editor (``editor``, see
``tests/e2e/editor.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from finetune.world import writers
from tests.served_backend import ServedBackend
from tests.services import ls_sample_video

REPO = Path(__file__).parents[2]
CLIP_FRAMES, CLIP_FPS, CLIP_SIZE = 16, 10, (160, 90)
SHAPES_SIZE = (320, 240)
# Centres of the shapes drawn by write_shapes_image, as fractions of the image size (Editor.click coordinates).
SHAPES = {"red_circle": (0.22, 0.33), "blue_rectangle": (0.73, 0.38), "green_triangle": (0.42, 0.80),
          "yellow_square": (0.86, 0.81)}


def write_clip(path: Path) -> Path:
    """The first frames of the LS sample video (opossum_snow.mp4), downscaled, re-encoded as H.264."""
    frames = []
    with av.open(str(ls_sample_video())) as source:
        for n, frame in enumerate(source.decode(video=0)):
            if n >= CLIP_FRAMES * 3:
                break
            if n % 3 == 0:  # 29.97 fps -> ~10 fps
                frames.append(np.asarray(frame.to_image().resize(CLIP_SIZE)))
    return writers.write_mp4(np.stack(frames), path, CLIP_FPS)


def write_shapes_image(path: Path, shift_x: int = 0) -> Path:
    """A 320x240 PNG: red circle, blue rectangle, green triangle, yellow square on grey (centres in ``SHAPES``;
    ``shift_x`` moves the circle right by that many pixels, to make frame lists)."""
    image = Image.new("RGB", SHAPES_SIZE, (235, 235, 225))
    draw = ImageDraw.Draw(image)
    draw.ellipse((30 + shift_x, 40, 110 + shift_x, 120), fill=(220, 30, 30))
    draw.rectangle((180, 50, 290, 130), fill=(30, 60, 220))
    draw.polygon([(60, 220), (140, 140), (220, 220)], fill=(30, 170, 60))
    draw.rectangle((255, 175, 295, 215), fill=(230, 200, 30))
    return writers.write_image(np.asarray(image), path)


def create_project(ls, config: str, tasks: list[dict], backend=None, storage_dir: Path | None = None,
                   title: str = "editor test", framerate: int | None = None) -> dict:
    """Create an LS project from ``label_config/<config>.xml``, connect a Local Files storage (for
    ``ls.local_files_url`` media under ``storage_dir``), import ``tasks`` and connect ``backend`` as the interactive
    ML backend. Returns ``{"project": id, "ml": id or None, "tasks": [ids]}``."""
    xml = (REPO / "label_config" / f"{config}.xml").read_text()
    if framerate is not None:
        xml = xml.replace('framerate="25"', f'framerate="{framerate}"')
    project = ls.request("POST", "/api/projects/", {"title": title, "label_config": xml})["id"]
    if storage_dir is not None:
        ls.add_local_storage(project, storage_dir)
    ls.request("POST", f"/api/projects/{project}/import", tasks)
    ml = None
    if backend is not None:
        ml = ls.request("POST", "/api/ml/", {"project": project, "url": backend.url, "title": "unipixel",
                                             "is_interactive": True})["id"]
    reply = ls.request("GET", f"/api/tasks/?project={project}")
    listed = reply["tasks"] if isinstance(reply, dict) else reply
    return {"project": project, "ml": ml, "tasks": [t["id"] for t in listed]}


@pytest.fixture(scope="session")
def e2e_env(label_studio, redis_server, tmp_path_factory) -> dict[str, str]:
    """Environment shared by the backend and the worker: PAT auth, tiny model, a tiny recipe that always publishes."""
    work = tmp_path_factory.mktemp("e2e")
    recipe = yaml.safe_load((REPO / "finetune/configs/tiny.yaml").read_text())
    recipe.update(max_steps=4, min_improvement=-1.0, holdout_fraction=0.0)
    (work / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "UNIPIXEL_"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", UNIPIXEL_MODEL="tiny",
               LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=label_studio.personal_access_token(),
               REDIS_URL=redis_server.url, UNIPIXEL_TRAIN_QUEUE="e2e-train", MODEL_DIR=str(work / "models"),
               UNIPIXEL_DATA_DIR=str(work / "data"), UNIPIXEL_MEDIA_CACHE_DIR=str(work / "media"),
               UNIPIXEL_TRAIN_RECIPE=str(work / "recipe.yaml"), UNIPIXEL_INTERACTIVE_BUDGET_S="0.05",
               THREADS="4", OMP_NUM_THREADS="2", LOG_LEVEL="INFO")
    return env


@pytest.fixture(scope="session")
def backend_server(e2e_env, tmp_path_factory):
    server = ServedBackend(e2e_env, tmp_path_factory.mktemp("backend-log") / "backend.log")
    try:
        yield server.wait()
    except RuntimeError as err:
        server.stop()
        pytest.fail(f"backend_server fixture: {err}", pytrace=False)
    finally:
        server.stop()


def _serve_toy(e2e_env, tmp_path_factory, name: str, **env):
    """``python -m backend serve`` with ``UNIPIXEL_MODEL=toy`` and ``env`` (the toy model's browser tests)."""
    server = ServedBackend(dict(e2e_env, UNIPIXEL_MODEL="toy", **env), tmp_path_factory.mktemp(name) / "backend.log")
    try:
        yield server.wait()
    except RuntimeError as err:
        pytest.fail(f"{name} fixture: {err}", pytrace=False)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def toy_backend(e2e_env, tmp_path_factory):
    """The toy backend with an interactive budget that lets the whole track of a 24-frame clip come back in the
    call."""
    yield from _serve_toy(e2e_env, tmp_path_factory, "toy-backend", UNIPIXEL_INTERACTIVE_BUDGET_S="120")


@pytest.fixture(scope="module")
def toy_backend_stored_small(e2e_env, tmp_path_factory):
    """The toy backend storing frames with a longer side of 160 px (``UNIPIXEL_FRAME_MAX_SIDE``): a 320x240 still is
    kept at 160x120, as a 4K clip is kept at 1024x576 by default."""
    yield from _serve_toy(e2e_env, tmp_path_factory, "toy-backend-small", UNIPIXEL_FRAME_MAX_SIDE="160")


@pytest.fixture(scope="module")
def toy_backend_192(e2e_env, tmp_path_factory):
    """The toy backend with SAM 2 reading 192 px frames (``UNIPIXEL_SAM2_IMAGE_SIZE``) instead of the checkpoint's 128."""
    yield from _serve_toy(e2e_env, tmp_path_factory, "toy-backend-192", UNIPIXEL_SAM2_IMAGE_SIZE="192")


@pytest.fixture(scope="session")
def editor_screenshots(tmp_path_factory) -> Path:
    """One folder for every editor screenshot of the session (printed, so a failing run shows where to look)."""
    path = tmp_path_factory.mktemp("editor-screenshots")
    print(f"\neditor screenshots: {path}")
    return path


@pytest.fixture(scope="session")
def shared_browser():
    """One headless Chromium for the session's editors (``tests.e2e.editor_browser.SharedBrowser``)."""
    from tests.e2e.editor_browser import SharedBrowser

    browser = SharedBrowser()
    yield browser
    browser.close()


@pytest.fixture
def editor(label_studio, shared_browser, editor_screenshots, request):
    """A ``tests.e2e.editor.Editor`` logged in to ``label_studio``: a fresh context (cookies, storage, cache) of the
    session's headless Chromium (``/usr/bin/chromium``).

    FAILS (never skips) when Chromium or Playwright is missing. Screenshots go to
    ``<editor_screenshots>/<test name>/``; a last one is taken at teardown.
    """
    from tests.e2e.editor import Editor, EditorError, browser_available

    missing = browser_available()
    if missing:
        pytest.fail(f"editor fixture: {missing}", pytrace=False)
    shots = editor_screenshots / request.node.name.replace("/", "_")
    try:
        ed = Editor(label_studio.url, label_studio.username, label_studio.password, shots,
                    token=label_studio.token).start(shared_browser)
    except EditorError as err:
        pytest.fail(f"editor fixture: {err}", pytrace=False)
    try:
        yield ed
    finally:
        try:
            ed.screenshot("teardown")
        except Exception:  # noqa: BLE001, S110  (page already gone)
            pass
        print(f"\neditor screenshots of {request.node.name}: {shots}")
        ed.close()
