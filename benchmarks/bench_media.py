"""The benchmarks' media and Label Studio requests: a square bouncing over a textured background (320x240, 10 fps),
written as an H.264 mp4, numbered JPEGs or one PNG, the ``/predict`` bodies that prompt it, and a backend in this
process to post them to (a Flask test client; used by ``bench_backend.py``, ``bench_load.py``, ``bench_memory.py``,
``memory_child.py`` and ``bench_gpu.py``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FPS = 320, 240, 10
SQUARE = 64
PROMPT_LS_FRAME = 5  # 1-based LS frame of the VideoRectangle keyframe


# ---- media --------------------------------------------------------------------------------
def square_box(i: int) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the square on frame ``i``: bounces left-right, 4 px per frame."""
    span = WIDTH - SQUARE - 32
    p = (4 * i) % (2 * span)
    x = 16 + (p if p <= span else 2 * span - p)
    y = (HEIGHT - SQUARE) // 2
    return x, y, x + SQUARE, y + SQUARE


_BACKGROUND = np.random.default_rng(0).integers(10, 70, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def square_frame(i: int) -> np.ndarray:
    frame = _BACKGROUND.copy()
    x1, y1, x2, y2 = square_box(i)
    frame[y1:y2, x1:x2] = (230, 200, 40)
    return frame


def write_video(path: Path, count: int) -> Path:
    """H.264 mp4 (yuv420p, what browsers play) with ``count`` frames at ``FPS``, streamed (one frame in memory)."""
    from finetune.world import writers

    return writers.write_mp4((square_frame(i) for i in range(count)), path, FPS)


def write_frames(folder: Path, count: int) -> list[str]:
    from finetune.world import writers

    return [str(p) for p in writers.write_frame_folder(np.stack([square_frame(i) for i in range(count)]), folder,
                                                       ".jpg")]


def write_image(path: Path) -> Path:
    from finetune.world import writers

    return writers.write_image(square_frame(3), path)


# ---- Label Studio requests ----------------------------------------------------------------
def config(name: str, framerate: float | None = None) -> str:
    xml = (ROOT / "label_config" / f"{name}.xml").read_text()
    if framerate is not None:
        xml = xml.replace('framerate="25"', f'framerate="{framerate:g}"')
    return xml


def prompt_box_px() -> tuple[int, int, int, int]:
    """The square on the prompt frame with an 8 px margin."""
    x1, y1, x2, y2 = square_box(PROMPT_LS_FRAME - 1)
    return x1 - 8, y1 - 8, x2 + 8, y2 + 8


def video_rectangle(num_frames: int) -> dict:
    x1, y1, x2, y2 = prompt_box_px()
    key = {"frame": PROMPT_LS_FRAME, "enabled": True, "rotation": 0, "time": (PROMPT_LS_FRAME - 1) / FPS,
           "x": x1 * 100 / WIDTH, "y": y1 * 100 / HEIGHT, "width": (x2 - x1) * 100 / WIDTH,
           "height": (y2 - y1) * 100 / HEIGHT}
    return {"id": "vr1", "from_name": "box", "to_name": "video", "type": "videorectangle", "origin": "manual",
            "value": {"framesCount": num_frames, "duration": num_frames / FPS, "labels": ["Object"],
                      "sequence": [key]}}


def keypoint(x_px: float, y_px: float, positive: bool, rid: str, to_name: str, item_index: int | None) -> dict:
    item = {"id": rid, "from_name": "click", "to_name": to_name, "type": "keypointlabels", "origin": "manual",
            "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0, "is_positive": positive,
            "value": {"x": x_px * 100 / WIDTH, "y": y_px * 100 / HEIGHT, "width": 0.5,
                      "keypointlabels": ["Object"]}}
    if item_index is not None:
        item["item_index"] = item_index
    return item


def predict_body(task_id: int, data: dict, label_config: str, regions: list[dict]) -> dict:
    return {"tasks": [{"id": task_id, "data": data}], "label_config": label_config, "project": "1.1700000000",
            "params": {"login": None, "password": None, "context": {"result": regions}}}


# ---- a backend in this process ---------------------------------------------------------
def post(client, body: dict) -> tuple[float, dict, int]:
    """(seconds, reply JSON, reply bytes) of one /predict."""
    start = time.perf_counter()
    reply = client.post("/predict", json=body)
    elapsed = time.perf_counter() - start
    if reply.status_code != 200:
        raise SystemExit(f"/predict answered {reply.status_code}: {reply.get_data(as_text=True)[:500]}")
    return elapsed, reply.get_json(), len(reply.get_data())


def make_settings(args, work: Path, **overrides):
    """The backend's ``Settings`` for a benchmark: ``args.model`` on ``args.device``, media under ``work``, a feature
    cache of ``args.feature_cache_mib`` MiB, no descriptions, no Redis; ``overrides`` are Settings fields."""
    from backend.settings import Settings

    base = dict(model=args.model, device=args.device, local_roots=(work,), media_cache_dir=work / "cache",
                data_dir=work / "data", model_dir=work / "models", redis_url="redis://127.0.0.1:9/0",
                describe_objects=False, feature_cache_bytes=args.feature_cache_mib << 20)
    base.update(overrides)
    return Settings(**base)


def make_client(settings, shared=None):
    """(Flask test client, engine); the engine serves ``shared``'s weights when given."""
    from backend.api import create_app
    from backend.engine import Engine

    engine = Engine(settings)
    if shared is not None:
        engine.share_model(shared)
    else:
        with engine.gpu:
            engine.model()
    return create_app(settings, engine).test_client(), engine
