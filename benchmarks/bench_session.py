"""Session cost against video length, and the gain of an open session (prints ratios).

Usage: ``python benchmarks/bench_session.py [--model tiny|random-3b[:shrink]|PATH|HUB_ID] [--device cpu|cuda]
[--lengths 16 64 256]``

Each length runs in a fresh subprocess so that peak RSS (``ru_maxrss``) and, on CUDA, peak
device memory belong to that length alone. Per length it prints: open time, first ``refer``
(one click, propagated over every frame), a second ``refer`` on the same open session, their
ratio, and peak memory. Flat memory shows as peak RSS barely moving with length; caching shows
as second/first well below 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_video(num_frames: int, height: int = 240, width: int = 320) -> np.ndarray:
    """A ball moving across a textured background, uint8 [T, H, W, 3]."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        cx = 40 + (width - 80) * t / max(1, num_frames - 1)
        frames[t][(yy - height / 2) ** 2 + (xx - cx) ** 2 < 30 ** 2] = (220, 30, 30)
    return frames


def run_one(model_name: str, device: str, num_frames: int, cache_mib: int) -> dict:
    import torch

    import unipixel_model  # noqa: F401
    from unipixel_model.loading import from_pretrained, resolve_checkpoint
    from unipixel_model.session import InferenceSession
    from unipixel_model.tokenization import load_tokenizer
    from unipixel_model.types import PointPrompt

    path = resolve_checkpoint(model_name)
    model = from_pretrained(path, device=device)
    tokenizer = load_tokenizer(path)
    frames = synthetic_video(num_frames)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    session = InferenceSession.open(model, tokenizer, frames, feature_cache_bytes=cache_mib * 2 ** 20)
    opened = time.perf_counter()
    session.refer({1: PointPrompt(40, 120, num_frames // 2)}, ask=False)
    sync()
    first = time.perf_counter()
    session.refer({2: PointPrompt(45, 118, num_frames // 2)}, ask=False)
    sync()
    second = time.perf_counter()
    result = {"frames": num_frames, "open_s": opened - start, "first_s": first - opened,
              "second_s": second - first, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "feature_cache_mib": session.features.nbytes / 2 ** 20}
    if device.startswith("cuda"):
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny",
                        help="tiny, random-3b[:shrink], random-7b, a checkpoint dir or a hub id")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--feature-cache-mib", type=int, default=64,
                        help="session feature-cache cap (the one part that may grow with length)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.model, args.device, args.one, args.feature_cache_mib)))
        return 0
    rows = []
    for length in args.lengths:
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--device", args.device,
                              "--one", str(length), "--feature-cache-mib", str(args.feature_cache_mib)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"{'frames':>6} {'open s':>8} {'1st s':>8} {'2nd s':>8} {'2nd/1st':>8} {'s/frame':>8} "
          f"{'peak RSS MiB':>13} {'RSS/RSS@' + str(base['frames']):>12} {'cache MiB':>10}")
    for r in rows:
        print(f"{r['frames']:>6} {r['open_s']:8.2f} {r['first_s']:8.2f} {r['second_s']:8.2f} "
              f"{r['second_s'] / r['first_s']:8.2f} {r['first_s'] / r['frames']:8.3f} {r['peak_rss_mib']:13.0f} "
              f"{r['peak_rss_mib'] / base['peak_rss_mib']:12.2f} {r['feature_cache_mib']:10.1f}"
              + (f"  peak CUDA {r['peak_cuda_mib']:.0f} MiB" if "peak_cuda_mib" in r else ""))
    print(f"time per frame at {rows[-1]['frames']} / at {base['frames']} frames: "
          f"{(rows[-1]['first_s'] / rows[-1]['frames']) / (base['first_s'] / base['frames']):.2f} (1.0 = linear cost)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
