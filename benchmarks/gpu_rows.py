"""The rows of ``bench_gpu.py``'s table: session latency and its phases, propagation speed and device memory, the
backend over real HTTP, and two training steps. Each function fills the columns of a ``bench_gpu.Bench`` (its loaded
model, profile, device helpers and part file), which ``bench_gpu.run`` calls section by section; the inputs are a
bright square crossing a textured background (:func:`scene`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import urllib.request
from pathlib import Path

MIB = 2 ** 20


# ---- inputs -------------------------------------------------------------------------------
def scene(num_frames: int, side: int):
    """uint8 [T, side, side, 3]: a bright square crossing a textured background."""
    import numpy as np

    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(10, 70, (1, side, side, 3), dtype=np.uint8), num_frames, axis=0)
    size = side // 5
    for t in range(num_frames):
        x = int((side - size) * t / max(1, num_frames - 1))
        frames[t, side // 2 - size // 2: side // 2 + size // 2, x:x + size] = (230, 200, 40)
    return frames


def square_center(num_frames: int, side: int, t: int) -> tuple[float, float]:
    """(x, y) in pixels of the square's centre on 0-based frame ``t`` of :func:`scene`."""
    size = side // 5
    return (side - size) * t / max(1, num_frames - 1) + size / 2, side / 2


# ---- timing -------------------------------------------------------------------------------
class PhaseTimer:
    """Device-synchronised seconds in the ViT, LLM prefill, LLM decode and SAM 2 while active.

    Wraps instance methods of the model (restored on exit, stacked on any speed-lever wrappers).
    """

    def __init__(self, model, sync) -> None:
        self.model, self.sync = model, sync
        self.seconds = {"vit": 0.0, "prefill": 0.0, "decode": 0.0, "sam2": 0.0}
        self.calls = {k: 0 for k in self.seconds}
        self._saved: list = []

    def _wrap(self, owner, name: str, phase) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name)))
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            key = phase(*args, **kwargs) if callable(phase) else phase
            self.sync()
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[key] += time.perf_counter() - start
                self.calls[key] += 1
        setattr(owner, name, timed)

    def __enter__(self) -> "PhaseTimer":
        model = self.model
        self._wrap(model, "encode_video", "vit")
        self._wrap(model, "run_language_model",
                   lambda embeds, *a, **k: "prefill" if embeds.shape[1] > 1 else "decode")
        self._wrap(model.sam2, "encode_frames", "sam2")
        self._wrap(model.sam2, "track_step", "sam2")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, saved in reversed(self._saved):
            if saved is None:
                owner.__dict__.pop(name, None)
            else:
                setattr(owner, name, saved)

    def ms(self, phase: str) -> float:
        return self.seconds[phase] * 1e3


def session_rows(bench, column: str, cold: bool = False, click: bool = True, text: bool = True) -> None:
    """First refer (phases), then the second click (``click``) and the text query + decode speed (``text``), on a
    fresh session."""
    from unipixel_model.session import InferenceSession
    from unipixel_model.types import PointPrompt

    p, row = bench.profile, bench.column(column)
    frames = scene(p.query_frames, p.query_side)
    mid = p.query_frames // 2
    x, y = square_center(p.query_frames, p.query_side, mid)
    first = {1: PointPrompt(x, y, mid)}  # not `click`: that flag says whether to time the second click
    if cold or column != "baseline":  # first call: CUDA kernels, compile, autotuning
        start = time.perf_counter()
        InferenceSession.open(bench.model, bench.tokenizer, frames).refer(first, ask=False)
        bench.sync()
        row["cold_refer_ms"] = (time.perf_counter() - start) * 1e3
    session = InferenceSession.open(bench.model, bench.tokenizer, frames)
    with PhaseTimer(bench.model, bench.sync) as timer:
        start = time.perf_counter()
        session.refer(first, ask=False)
        row["refer_ms"] = (time.perf_counter() - start) * 1e3
    row.update(refer_vit_ms=timer.ms("vit"), refer_prefill_ms=timer.ms("prefill"), refer_sam2_ms=timer.ms("sam2"))
    if click:
        start = time.perf_counter()
        session.refine(1, [PointPrompt(x + p.query_side // 12, y, mid, positive=False)])
        bench.sync()
        row["click2_ms"] = (time.perf_counter() - start) * 1e3
    if not text:
        return
    start = time.perf_counter()
    session.segment("Please segment the yellow square.", forced_answer="Sure, it is <|seg|>.")
    bench.sync()
    row["text_ms"] = (time.perf_counter() - start) * 1e3
    session.max_new_tokens = p.gen_tokens
    with PhaseTimer(bench.model, bench.sync) as timer:
        session.segment("Please segment the yellow square.")
    row["decode_ms_per_token"] = timer.ms("decode") / max(1, timer.calls["decode"])

def propagation_rows(bench, column: str, memory: bool) -> None:
    """Propagation fps over the long clip; with ``memory``, device memory per session and its growth."""
    p, row = bench.profile, bench.column(column)
    held, feat, peak = _track_clip(bench, p.track_frames, row)
    if not memory:
        return
    row["feature_cache_mib"] = feat
    if held is None:
        return
    short_held, short_feat, _ = _track_clip(bench, p.short_frames, None)
    row.update(session_peak_mib=peak, session_retained_mib=held,
               session_growth_mib_per_frame=((held - feat) - (short_held - short_feat))
               / (p.track_frames - p.short_frames))
    import torch

    total = torch.cuda.get_device_properties(0).total_memory / MIB
    model = bench.column("baseline").get("gpu_model_mib") or 0.0
    row["sessions_fit"] = float(math.floor((total - model - (peak - held)) / max(held, 1.0)))

def _track_clip(bench, num_frames: int, row: dict | None) -> tuple[float | None, float, float | None]:
    """Open a session on ``num_frames`` frames and refer one click on frame 0 (tracked to the end).

    Returns (device MiB the open session holds, feature-cache MiB, peak device MiB above the model).
    """
    from unipixel_model.session import InferenceSession
    from unipixel_model.types import PointPrompt

    side = bench.profile.track_side
    frames = scene(num_frames, side)
    bench.reset_peak()
    before = bench.allocated_mib()
    session = InferenceSession.open(bench.model, bench.tokenizer, frames)
    with PhaseTimer(bench.model, bench.sync) as timer:
        session.refer({1: PointPrompt(*square_center(num_frames, side, 0), 0)}, ask=False)
    if row is not None:
        row["fps"] = num_frames / max(timer.seconds["sam2"], 1e-9)
    feat = session.features.nbytes / MIB
    held = None if before is None else bench.allocated_mib() - before
    peak = None if before is None else bench.peak_mib() - before
    del session
    bench.reset_peak()
    return held, feat, peak

def backend_rows(bench) -> None:
    """/predict over real HTTP (werkzeug threaded server): first and second click per annotator."""
    import numpy as np
    from werkzeug.serving import make_server

    from backend.api import create_app
    from backend.engine import Engine
    from benchmarks.bench_media import config, keypoint, predict_body, square_box, write_frames

    settings = bench.settings(max_queued_requests=max(bench.profile.annotators) + 1)
    engine = Engine(settings)
    engine.share_model(bench.engine)
    server = make_server("127.0.0.1", 0, create_app(settings, engine), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/predict"
    frames = [str(f) for f in write_frames(Path(bench.work) / "frames", bench.profile.click_frames)]
    cfg = config("video_masks")
    x1, y1, x2, y2 = square_box(0)
    pos = keypoint((x1 + x2) / 2, (y1 + y2) / 2, True, "k1", "frames", 0)
    neg = keypoint(x1 + 6, y1 + 6, False, "k2", "frames", 0)
    task_ids = iter(range(100, 1000))

    def annotate(results: list, barrier: threading.Barrier | None) -> None:
        task = next(task_ids)
        if barrier is not None:
            barrier.wait()
        first = _post_ms(url, predict_body(task, {"frames": frames}, cfg, [pos]))
        second = _post_ms(url, predict_body(task, {"frames": frames}, cfg, [pos, neg]))
        results.append((first, second))

    try:
        annotate([], None)  # warm-up: the code paths of both clicks
        row = bench.column("baseline")
        for count in bench.profile.annotators:
            results: list = []
            barrier = threading.Barrier(count)
            workers = [threading.Thread(target=annotate, args=(results, barrier)) for _ in range(count)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            firsts, seconds = [r[0] for r in results], [r[1] for r in results]
            row.update({f"http{count}_first_median_ms": float(np.median(firsts)),
                        f"http{count}_first_max_ms": max(firsts),
                        f"http{count}_second_median_ms": float(np.median(seconds)),
                        f"http{count}_second_max_ms": max(seconds)})
    finally:
        server.shutdown()
        engine.sessions.clear()

def training_rows(bench) -> None:
    """Two stage-3 steps (LoRA r``lora_r``, the ``3b`` recipe, grad_accum 1) on one mem sample."""
    import torch

    from finetune.recipe import load_recipe
    from finetune.sample import TrainSample
    from finetune.trainer import Trainer
    from unipixel_model.types import BoxPrompt

    p = bench.profile
    media, masks = _write_train_clip(Path(bench.work) / "train", p.train_frames, p.train_side)
    x1, y1, x2, y2 = _box_of(masks[0])
    sample = TrainSample("mem", str(media), list(range(p.train_frames)),
                         "[1] <|ref|> Please localize the relevant objects with IDs.", "[1] <|seg|>",
                         prompts=[BoxPrompt(x1, y1, x2, y2, 0)], target_masks=masks[None])
    recipe = dataclasses.replace(load_recipe("3b"), base_model=p.model, lora_r=p.lora_r, lora_alpha=2 * p.lora_r,
                                 max_steps=2, grad_accum=1, frames_per_video=p.train_frames, log_every=1,
                                 llm_min_pixels=None, llm_max_pixels=None)  # the model's own budget
    bench.reset_peak()
    before = bench.allocated_mib()
    trainer = Trainer(bench.model, bench.tokenizer, recipe)
    marks = [time.monotonic()]
    trainer.train([sample], progress=lambda *_: (bench.sync(), marks.append(time.monotonic())))
    row = bench.column("baseline")
    row["train_step1_s"] = marks[1] - marks[0]
    row["train_step2_s"] = marks[2] - marks[1] if len(marks) > 2 else None
    row["train_peak_mib"] = bench.peak_mib()
    row["train_trainable_m"] = sum(q.numel() for q in bench.model.parameters() if q.requires_grad) / 1e6
    if before is not None:
        bench.part["notes"].append(f"training: {before:,.0f} MiB were allocated before the trainer was built "
                                  "(the inference model it trains in place)")
    del trainer
    torch.cuda.empty_cache() if bench.cuda else None

def _post_ms(url: str, body: dict) -> float:
    """Milliseconds of one POST; raises on a non-200 answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as reply:
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"/predict answered {reply.status}")
    return (time.perf_counter() - start) * 1e3


def _write_train_clip(folder: Path, count: int, side: int):
    """JPEG frames of :func:`scene` and the square's masks bool [T, side, side]."""
    import numpy as np

    from finetune.world import writers

    frames = scene(count, side)
    writers.write_frame_folder(frames, folder, ".jpg")
    return folder, np.all(frames == np.array([230, 200, 40], np.uint8), axis=-1)


def _box_of(mask) -> tuple[float, float, float, float]:
    ys, xs = mask.nonzero()
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
