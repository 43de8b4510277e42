"""Peak RSS of one interactive video box against video length: the long/short table (MiB per extra frame).

Usage::

    PYTHONPATH=. HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_memory.py \\
        [--model tiny] [--device cpu] [--lengths 32 320 3200] [--threads 1] [--feature-cache-mib 64 [16 ...]]
        [--repeats 3] [--json FILE]

Each length runs part 4 of ``bench_backend.py`` in a fresh process (``memory_child.py``): an H.264 mp4 of a square
moving over a textured 320x240 background, one ``VideoRectangle`` box through ``POST /predict``
(Flask test client), the background propagation awaited, then ``ru_maxrss``. The child resets its
high-water mark after loading the model (``/proc/self/clear_refs``), so ``growth`` = peak - RSS
after loading is what serving the video added. ``MiB/frame`` is the growth beyond the shortest
video divided by the extra frames: the figure that must stay near 0 (issue 12 asks for <= 0.05 at
320x240) for 10-minute clips of 18,000 frames to fit. ``w/o cache`` leaves the SAM 2 feature cache
out: it fills up to ``--feature-cache-mib`` (1 MiB per frame with the tiny model) and then stays,
so between a short video that does not fill it and a long one it adds a constant, not a per-frame
cost. The low-res logits (16 KiB per frame with the tiny model, 144 KiB at 768 px) are kept: they
are the track itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_media import HEIGHT, WIDTH  # noqa: E402
from benchmarks.memory_child import measure  # noqa: E402


def median_row(rows: list[dict]) -> dict:
    """The run whose growth (peak - loaded) is the median of repeated runs of one length (peaks of identical runs
    differ by several MiB: when glibc hands pages back and which temporaries are alive at the peak), with every run's
    growth under ``growths_mib``."""
    ordered = sorted(rows, key=lambda row: row["peak_mib"] - row["loaded_mib"])
    return {**ordered[len(ordered) // 2], "growths_mib": [round(r["peak_mib"] - r["loaded_mib"], 1) for r in rows]}


def per_frame_growth(rows: list[dict], minus_cache: bool = False) -> list[float | None]:
    """MiB of extra growth per extra frame relative to the first (shortest) row; None for it.

    With ``minus_cache`` the feature cache is taken out of the growth first: it fills up to its cap
    (``--feature-cache-mib``) and then stays, so it is a constant, not a per-frame cost.
    """
    def growth(row: dict) -> float:
        return row["peak_mib"] - row["loaded_mib"] - (row["feature_cache_mib"] if minus_cache else 0.0)

    base = rows[0]
    return [None] + [(growth(row) - growth(base)) / (row["frames"] - base["frames"]) for row in rows[1:]]


def format_table(rows: list[dict]) -> str:
    """The long/short table as text (MiB)."""
    lines = [f"{'frames':>6} {'loaded':>7} {'peak':>7} {'growth':>7} {'MiB/frame':>9} {'w/o cache':>9} "
             f"{'RssAnon':>7} {'RssFile':>7} {'feat':>5} {'logits':>7} {'tracked':>7} {'bg s':>7}"]
    slopes, no_cache = per_frame_growth(rows), per_frame_growth(rows, minus_cache=True)
    for row, slope, bare in zip(rows, slopes, no_cache):
        lines.append(f"{row['frames']:>6} {row['loaded_mib']:7.0f} {row['peak_mib']:7.0f} "
                     f"{row['peak_mib'] - row['loaded_mib']:7.1f} {'-' if slope is None else f'{slope:.4f}':>9} "
                     f"{'-' if bare is None else f'{bare:.4f}':>9} {row['RssAnon']:7.0f} {row['RssFile']:7.0f} "
                     f"{row['feature_cache_mib']:5.0f} {row['logits_mib']:7.1f} {row['tracked']:7d} "
                     f"{row['background_s']:7.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny, random-3b:..., a checkpoint dir or a hub id")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 320, 3200])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each child (1: steadier)")
    parser.add_argument("--feature-cache-mib", type=int, nargs="+", default=[64],
                        help="UNIPIXEL_FEATURE_CACHE_MB; several values print one table each (a cap the shortest "
                             "video fills shows the per-frame growth alone, without the cache filling up)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per length; the median growth is used (odd)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    lengths = sorted(set(args.lengths))
    if lengths[0] < 5:
        parser.error("every length must be >= 5 frames (the box is drawn on frame 5)")
    if args.repeats < 1 or args.repeats % 2 == 0:
        parser.error(f"--repeats must be odd and >= 1 (the median of the runs), got {args.repeats}")
    out = []
    for cap in args.feature_cache_mib:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            rows = [median_row([measure(args.model, args.device, n, args.threads, cap, Path(tmp))
                                for _ in range(args.repeats)]) for n in lengths]
        print(f"peak RSS per video length, {WIDTH}x{HEIGHT}, model {args.model} on {args.device}, "
              f"{args.threads} thread(s), feature cache {cap} MiB (MiB)")
        print(format_table(rows), flush=True)
        if args.repeats > 1:
            print("growth of each run (MiB): " + "; ".join(f"{r['frames']}: {r['growths_mib']}" for r in rows))
        slopes, no_cache = per_frame_growth(rows), per_frame_growth(rows, minus_cache=True)
        out += [{**r, "feature_cache_cap_mib": cap, "mib_per_extra_frame": s, "mib_per_extra_frame_without_cache": b}
                for r, s, b in zip(rows, slopes, no_cache)]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
