"""The backend's cost over the bare model session, on real media (prints ratios).

Usage::

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_backend.py \\
        [--model tiny|PATH|HUB_ID] [--device cpu|cuda] [--frames 32] [--long-factor 10] [--repeats 3] \\
        [--feature-cache-mib 64] [--click-frames 8] [--threads 2]

Media are written to a temporary folder: an H.264 mp4 of a square moving over a textured
background (320x240, ``--frames`` frames at 10 fps, written with PyAV, decoded by the backend with
OpenCV), the same frames as numbered JPEGs, and one PNG. Times are medians over ``--repeats``
(part 1 warms up first; part 2 runs the same code paths after it), in seconds; every timed call
that starts a task opens a fresh one, so decoding counts.

1. ``predict/session``: ``POST /predict`` through a Flask test client of ``create_app`` (a
   VideoRectangle box on LS frame 5, ``video_tracking.xml`` with ``framerate`` set to the video's
   fps, ``describe_objects=False``, interactive budget large enough to track every frame in the
   request) divided by the bare model calls on the same file and box:
   ``InferenceSession.open`` + ``refer({1: BoxPrompt})`` + one box per visible frame from the masks.
   Both use the same loaded weights and the same feature-cache cap. The excess over 1 is the
   protocol layer (fetch, label-config parse, prompt conversion, rendering, JSON, Flask), but on
   a shared CPU call-to-call noise can exceed it; so the script also times ``open`` and
   ``refer`` inside each call (patched in this process only) and prints what each call spent
   outside them, a noise-free reading of the protocol layer. Warm-up: one bare call on the
   video, one /predict on a 6-frame video (not timed). Then, on the last request's session: the
   time of ``render_updates`` and ``json.dumps`` as served, and again with the object made
   visible on every frame (the square's own mask written into its track) -- random tiny weights
   rarely see the object, so the served reply under-states rendering; ``predict/session (all
   visible)`` swaps both sides' rendering/box times for the all-visible ones.
2. ``second/first click``: ``image_segmentation.xml`` on the PNG, and ``video_masks.xml`` on
   ``--click-frames`` JPEG frames (0 skips it). First call: one positive keypoint on a fresh task
   (opens the session: decoding, LLM pass, SAM 2). Second call on the same task: the same
   keypoint plus a negative one, which the backend applies with SAM 2 only (the script counts LLM
   passes to check). For frame lists both calls propagate over every frame and encode one RLE
   mask per visible frame, so the ratio is closer to 1 than for a still image.
3. ``rle ours/sdk speed``: ``backend.converters.rle.mask_to_ls_rle`` against
   ``label_studio_sdk.converter.brush.mask2rle`` on the 1920x1080 blob mask of
   ``benchmarks/bench_rle.py`` (about 30 thousand runs; outputs checked byte-identical); the
   factor by which ours is faster (best-of times).
4. ``peak RSS long/short``: each of two fresh subprocesses (``memory_child.py``) loads the model, sends one
   interactive VideoRectangle call on a video of ``--frames`` resp. ``--frames * --long-factor``
   frames (same resolution; default settings but ``UNIPIXEL_FEATURE_CACHE_MB =
   --feature-cache-mib`` so the feature cap is reached), waits for the background propagation
   (``engine.background_jobs``) and reports ``ru_maxrss`` (KiB on Linux, printed in MiB). After
   the model is loaded the child resets its high-water mark (``echo 5 > /proc/self/clear_refs``),
   so ``peak`` is the peak while serving (it still includes the resident model) and ``growth`` =
   peak - RSS after loading, the part that may grow with video length. This part runs first,
   while this process is small: a child's ``ru_maxrss`` starts at its parent's peak (exec keeps
   it), so children spawned after loading the model here would all report this process's peak.
   ``RssAnon`` (heap, tensors) and ``RssFile`` (mapped files: libraries and the frame memmap,
   reclaimable) at the end of each child tell where the memory sits. The design goal is
   ``peak RSS long/short`` near 1.

With ``--model tiny`` (random weights) the numbers measure plumbing, not quality; its SAM 2 is
a real Hiera-tiny (about 50 ms per frame on 2 idle CPU cores), so the model dominates every time.
Backend temporary files (frame memmaps, frame-list link folders) go to the script's temporary
folder and are removed with it. On a shared machine, compare the ratios, not the seconds; with
2 torch threads on 2 busy cores, OpenMP threads that wait for a descheduled sibling stall single
calls by 3-30x (CPU time grows with the wall time), and ``--threads 1`` gives steadier numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.backend_report import report  # noqa: E402 (after the sys.path line: run as a script)
from benchmarks.bench_media import (  # noqa: E402 (after the sys.path line: run as a script)
    FPS,
    HEIGHT,
    PROMPT_LS_FRAME,
    WIDTH,
    config,
    keypoint,
    make_client,
    make_settings,
    post,
    predict_body,
    prompt_box_px,
    square_box,
    video_rectangle,
    write_frames,
    write_image,
    write_video,
)
from benchmarks.memory_child import measure  # noqa: E402


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def median(values: list[float]) -> float:
    return statistics.median(values)


def use_square_track(ts, obj_id: int) -> None:
    """Make object ``obj_id`` of ``ts`` visible on every frame with the square's own mask as logits
    (random tiny weights rarely see the object, which would leave nothing to render)."""
    import torch

    track = ts.session.track(obj_id)
    total, side = track.num_frames, track.low_res_logits.shape[-1]
    logits = torch.full((total, side, side), -8.0)
    for f in range(total):
        x1, y1, x2, y2 = square_box(f)
        logits[f, y1 * side // HEIGHT:y2 * side // HEIGHT, x1 * side // WIDTH:x2 * side // WIDTH] = 8.0
    track.low_res_logits, track.object_scores, track.ious = logits, torch.ones(total), torch.full((total,), 0.9)


def time_render(ts, spec, objects) -> tuple[float, float, int]:
    """Median seconds of ``render_updates`` and of ``json.dumps`` of its output, and the JSON bytes."""
    from backend.annotate import ObjectUpdate
    from backend.render import render_updates

    updates = [ObjectUpdate(o, ts.session.track(o.obj_id)) for o in objects]
    render_s, json_s, size = [], [], 0
    for _ in range(3):
        start = time.perf_counter()
        rendered = render_updates(ts.shape, spec, updates)
        render_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        size = len(json.dumps({"results": [{"result": rendered}]}))
        json_s.append(time.perf_counter() - start)
    return median(render_s), median(json_s), size


def bare_boxes(track) -> tuple[dict, float]:
    """The bare call's output step: one box per visible frame from ``track.mask`` (and its seconds)."""
    from backend.converters.geometry import mask_to_box_px

    start = time.perf_counter()
    boxes = {f: mask_to_box_px(track.mask(f)) for f in track.frame_idx if track.visible(f)}
    return boxes, time.perf_counter() - start


# ---- 1. /predict vs the bare session ------------------------------------------------------
class ModelTimer:
    """Times ``InferenceSession.open`` and ``.refer`` wherever they are called from (the backend
    included), so the protocol layer's share of a /predict can be read inside that very call."""

    def __init__(self) -> None:
        from unipixel_model.session import InferenceSession

        self.cls, self.seconds = InferenceSession, 0.0
        self.saved = {name: InferenceSession.__dict__[name] for name in ("open", "refer")}

    def __enter__(self) -> "ModelTimer":
        def timed(fn):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
            return wrapper

        self.cls.open = classmethod(timed(self.saved["open"].__func__))
        self.cls.refer = timed(self.saved["refer"])
        return self

    def __exit__(self, *exc) -> None:
        for name, attr in self.saved.items():
            setattr(self.cls, name, attr)


def bench_predict_vs_session(args, work: Path, engine0) -> dict:
    from backend.label_config import parse_label_config
    from unipixel_model.session import InferenceSession
    from unipixel_model.types import BoxPrompt

    warm_video = write_video(work / "warm.mp4", 6)
    video = write_video(work / "square.mp4", args.frames)
    # A budget no call reaches: /predict tracks every frame in the request, as the bare call does.
    settings = make_settings(args, work, interactive_budget_s=1e9)
    client, engine = make_client(settings, engine0)
    model, tokenizer = engine0.model()
    cfg = config("video_tracking", FPS)
    x1, y1, x2, y2 = prompt_box_px()
    box = BoxPrompt(float(x1), float(y1), float(x2), float(y2), PROMPT_LS_FRAME - 1)
    task_ids = iter(range(1000, 2000))
    last_task = [0]

    def bare(path: Path = video) -> tuple[float, dict]:
        start = time.perf_counter()
        session = InferenceSession.open(model, tokenizer, str(path), feature_cache_bytes=settings.feature_cache_bytes,
                                        max_frames=settings.max_frames)
        track = session.refer({1: box}).tracks[0]
        boxes, _ = bare_boxes(track)
        sync(args.device)
        return time.perf_counter() - start, boxes

    def via_api(path: Path = video, frames: int = args.frames) -> tuple[float, dict, int]:
        last_task[0] = next(task_ids)
        return post(client, predict_body(last_task[0], {"video": str(path)}, cfg, [video_rectangle(frames)]))

    # Warm-up: the model path on the full video (SAM 2's memory reaches its full size only after
    # a few dozen frames), the protocol path on a short one.
    bare()
    via_api(warm_video, 6)
    bare_s, api_s, bare_rest, api_rest = [], [], [], []
    for r in range(args.repeats):
        for fn in ((bare, via_api) if r % 2 == 0 else (via_api, bare)):
            with ModelTimer() as timer:
                out = fn()
            if fn is bare:
                bare_s.append(out[0])
                bare_rest.append(out[0] - timer.seconds)
                boxes = out[1]
            else:
                api_s.append(out[0])
                api_rest.append(out[0] - timer.seconds)
                reply, reply_bytes = out[1], out[2]
    # Same answer both ways? (LS fps == media fps, so LS frame = frame_idx + 1.)
    regions = [r for r in reply["results"][0]["result"] if r["type"] == "videorectangle"]
    keyframes = {k["frame"] - 1 for k in regions[0]["value"]["sequence"]} if regions else set()

    ts = engine.sessions.peek(last_task[0])  # the last request's session
    spec = parse_label_config(cfg)
    objects = list(ts.objects.values())
    track = ts.session.track(objects[0].obj_id)
    served = time_render(ts, spec, objects)
    served_boxes_s = bare_boxes(track)[1]
    use_square_track(ts, objects[0].obj_id)
    full = time_render(ts, spec, objects)
    full_boxes_s = bare_boxes(ts.session.track(objects[0].obj_id))[1]
    return {"bare_s": median(bare_s), "api_s": median(api_s), "same": keyframes == set(boxes),
            "visible": len(boxes), "keyframes": len(keyframes), "reply_bytes": reply_bytes,
            "served": served, "served_boxes_s": served_boxes_s, "full": full, "full_boxes_s": full_boxes_s,
            "bare_all": bare_s, "api_all": api_s, "bare_rest_s": median(bare_rest), "api_rest_s": median(api_rest)}


# ---- 2. second click vs first click -------------------------------------------------------
def bench_clicks(args, work: Path, engine0) -> dict:
    from backend.label_config import parse_label_config

    settings = make_settings(args, work, interactive_budget_s=1e9)
    client, engine = make_client(settings, engine0)
    cases = {"image": (config("image_segmentation"), {"image": str(write_image(work / "square.png"))}, "image",
                       None, square_box(3))}
    if args.click_frames:
        frames = write_frames(work / "frames", args.click_frames)
        cases["frames"] = (config("video_masks"), {"frames": frames}, "frames", 0, square_box(0))
    task_ids = iter(range(3000, 4000))
    out = {}
    for name, (cfg, data, to_name, item_index, (x1, y1, x2, y2)) in cases.items():
        pos = keypoint((x1 + x2) / 2, (y1 + y2) / 2, True, "k1", to_name, item_index)
        neg = keypoint(x1 + 6, y1 + 6, False, "k2", to_name, item_index)  # inside the square's corner
        first_s, second_s, llm_passes = [], [], []
        for _ in range(args.repeats):  # no warm-up: part 1 ran the same code paths
            task_id = next(task_ids)
            t1, _, _ = post(client, predict_body(task_id, data, cfg, [pos]))
            ts = engine.sessions.peek(task_id)
            calls = []
            original = ts.session._llm
            ts.session._llm = lambda *a, _o=original, **k: calls.append(1) or _o(*a, **k)  # spy: counts LLM passes
            t2, reply, _ = post(client, predict_body(task_id, data, cfg, [pos, neg]))
            first_s.append(t1)
            second_s.append(t2)
            llm_passes.append(len(calls))
        masks = sum(1 for res in reply["results"][0]["result"] if res["type"] == "brushlabels")
        row = {"first_s": median(first_s), "second_s": median(second_s), "llm_passes": max(llm_passes),
               "masks": masks, "frames": ts.session.frames.num_frames}
        if name == "frames":  # the RLE side of a reply: one mask per frame once the object is seen
            objects = list(ts.objects.values())
            use_square_track(ts, objects[0].obj_id)
            row["full"] = time_render(ts, parse_label_config(cfg), objects)
        out[name] = row
    return out


# ---- 3. RLE -------------------------------------------------------------------------------
def bench_rle() -> dict:
    from label_studio_sdk.converter import brush

    from backend.converters.rle import mask_to_ls_rle
    from benchmarks.bench_rle import best_ms, blob_mask, count_runs  # it has no timing function to call

    mask = blob_mask(800, 0)
    mask_u8 = mask.astype(np.uint8) * 255
    ours = mask_to_ls_rle(mask)
    identical = ours == brush.mask2rle(mask_u8)
    ours_ms = best_ms(lambda: mask_to_ls_rle(mask), 20)
    sdk_ms = best_ms(lambda: brush.mask2rle(mask_u8), 2)
    return {"runs": count_runs(mask), "ours_ms": ours_ms, "sdk_ms": sdk_ms, "identical": identical,
            "bytes": len(ours)}


# ---- main ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny",
                        help="tiny or random-3b[:shrink] / random-7b (random, offline), a checkpoint dir or a hub id")
    parser.add_argument("--frames", type=int, default=32, help="frames of the video in parts 1 and 4")
    parser.add_argument("--long-factor", type=int, default=10, help="long video = frames x this (part 4)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--feature-cache-mib", type=int, default=64, help="UNIPIXEL_FEATURE_CACHE_MB, every part")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (1: steadier on a busy CPU)")
    parser.add_argument("--click-frames", type=int, default=8, help="frame-list length in part 2 (0: image only)")
    args = parser.parse_args()
    if args.frames < PROMPT_LS_FRAME:
        parser.error(f"--frames must be >= {PROMPT_LS_FRAME} (the box is drawn on LS frame {PROMPT_LS_FRAME})")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-backend-") as tmp:
        work = Path(tmp)
        (work / "tmp").mkdir()
        tempfile.tempdir = str(work / "tmp")  # backend temp files (memmaps, frame-list links) go away with us

        # [4] first, while this process is small (a child's ru_maxrss starts at its parent's peak).
        rows = [measure(args.model, args.device, count, args.threads, args.feature_cache_mib, work)
                for count in (args.frames, args.frames * args.long_factor)]

        import torch

        from backend.engine import Engine

        torch.set_num_threads(args.threads)
        print(f"device {args.device}, model {args.model}, torch {torch.__version__}, "
              f"threads {torch.get_num_threads()}, media {WIDTH}x{HEIGHT} @ {FPS} fps, repeats {args.repeats} "
              f"(median), feature cache {args.feature_cache_mib} MiB, load avg {_loadavg()}")
        start = time.perf_counter()
        engine0 = Engine(make_settings(args, work))
        with engine0.gpu:
            engine0.model()
        print(f"model loaded in {time.perf_counter() - start:.1f} s")

        p = bench_predict_vs_session(args, work, engine0)
        c = bench_clicks(args, work, engine0)
        r = bench_rle()
        gc.collect()  # close the sessions' temporary files before their folder goes

    report(args, torch.get_num_threads(), p, c, r, rows)
    print(f"total {time.perf_counter() - started:.0f} s, load avg {_loadavg()}")
    return 0


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
