"""Peak RSS of one interactive video box in a fresh process: part 4 of ``bench_backend.py`` and each row of
``bench_memory.py``. :func:`measure` writes the video and runs this file on it; the child loads the model, resets its
high-water mark (``/proc/self/clear_refs``), sends one ``VideoRectangle`` box through ``POST /predict`` (Flask test
client), awaits the background propagation and prints one JSON row (MiB): ``loaded_mib`` after loading,
``peak_mib`` while serving, ``RssAnon`` / ``RssFile`` at the end, the feature cache, the track's logits.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

from benchmarks.bench_media import (
    FPS,
    config,
    make_client,
    make_settings,
    post,
    predict_body,
    video_rectangle,
    write_video,
)

ROOT = Path(__file__).resolve().parents[1]  # the child runs as ``python -m benchmarks.memory_child`` from here


def rss_status() -> dict:
    """Current VmRSS / RssAnon / RssFile and VmHWM of this process, in MiB (Linux)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out


def maxrss_mib() -> float:
    """Peak RSS of this process in MiB: ``VmHWM``, which ``/proc/self/clear_refs`` resets. Not ``ru_maxrss``:
    the kernel folds into it the parent's peak at the moment it forked this child, so a parent that held
    a long video's frames made a short child look 1 GB heavier."""
    status = rss_status()
    return status.get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_child(args) -> dict:
    """One interactive call on ``args.video`` in this (fresh) process; peak RSS after it."""
    import torch

    torch.set_num_threads(args.threads)
    video = Path(args.video)
    with tempfile.TemporaryDirectory(prefix="bench-backend-child-") as tmp:
        work = Path(tmp)
        tempfile.tempdir = tmp  # the backend's frame memmap and logit files land here
        settings = make_settings(args, video.parent, media_cache_dir=work / "cache", data_dir=work / "data",
                                 model_dir=work / "models")
        client, engine = make_client(settings)
        load_peak = maxrss_mib()
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
            reset = True
        except OSError:
            reset = False
        loaded = rss_status()["VmRSS"]
        body = predict_body(1, {"video": str(video)}, config("video_tracking", FPS),
                            [video_rectangle(args.frames)])
        predict_s, reply, reply_bytes = post(client, body)
        peak_after_predict = maxrss_mib()  # the interactive call alone (the background propagation may run on)
        start = time.perf_counter()
        jobs = list(engine.background_jobs)
        wait(jobs)
        for job in jobs:
            job.result()  # re-raises a failed propagation
        background_s = time.perf_counter() - start
        ts = engine.sessions.peek(1)
        track = ts.session.track(ts.session.object_ids()[0])
        row = {"frames": ts.session.frames.num_frames, "load_peak_mib": load_peak, "loaded_mib": loaded,
               "peak_mib": maxrss_mib(), "peak_after_predict_mib": peak_after_predict, "reset": reset,
               "predict_s": predict_s, "background_jobs": len(jobs),
               "background_s": background_s, "tracked": len(track.frame_idx), "reply_bytes": reply_bytes,
               "feature_cache_mib": ts.session.cache_bytes / 2 ** 20,
               "encoded_frames": ts.session.features.encoded_frames,
               "logits_mib": track.low_res_logits.numel() * track.low_res_logits.element_size() / 2 ** 20,
               **rss_status()}
        engine.sessions.clear()
        del ts, track
        gc.collect()
    return row


def measure(model: str, device: str, length: int, threads: int, cache_mib: int, work: Path) -> dict:
    """Run :func:`run_child` in a fresh process on a ``length``-frame video written under ``work``; its JSON row."""
    video = write_video(work / f"mem-{length}.mp4", length)
    cmd = [sys.executable, "-m", "benchmarks.memory_child", "--model", model, "--device", device,
           "--threads", str(threads), "--feature-cache-mib", str(cache_mib), "--video", str(video),
           "--frames", str(length)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    video.unlink()
    if done.returncode != 0:
        raise SystemExit(f"child for {length} frames failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--feature-cache-mib", type=int, required=True)
    parser.add_argument("--video", required=True, help="an mp4 of bench_media's square")
    parser.add_argument("--frames", type=int, required=True, help="its frame count")
    print(json.dumps(run_child(parser.parse_args())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
