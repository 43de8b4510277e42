"""Our LS brush RLE codec against label_studio_sdk's on a 1920x1080 blob mask (prints ratios).

Usage: ``python benchmarks/bench_rle.py [--ellipses 800] [--seed 0]``

The mask is a union of filled ellipses (blob-shaped, like real segmentations of many objects);
with the default 800 ellipses it has about 30 thousand runs. Before timing, the script
checks that our encoding is byte-identical to ``brush.mask2rle`` and that both decoders agree.
The sdk codecs walk Python strings bit by bit, so they get few repetitions; ours get more. Each
time printed is the best of its repetitions, in milliseconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from label_studio_sdk.converter import brush

from backend.converters.rle import RGBA_CHANNELS, ls_rle_to_mask, mask_to_ls_rle

HEIGHT, WIDTH = 1080, 1920


def blob_mask(ellipses: int, seed: int) -> np.ndarray:
    """bool [1080, 1920]: union of ``ellipses`` filled ellipses with seeded random placement."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for _ in range(ellipses):
        cy, cx = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
        ry, rx = rng.uniform(6, 40), rng.uniform(6, 60)
        # Evaluate each ellipse on its bounding box only: 800 full-frame passes would take seconds.
        y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, HEIGHT)
        x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, WIDTH)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def best_ms(fn, reps: int) -> float:
    """Best wall time of ``reps`` calls of ``fn()``, in milliseconds."""
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def count_runs(mask: np.ndarray) -> int:
    """Runs of equal values in the flattened mask (the RGBA buffer has the same runs, 4x longer)."""
    flat = mask.ravel()
    return int(np.count_nonzero(flat[1:] != flat[:-1])) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--ellipses", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sdk-reps", type=int, default=3)
    parser.add_argument("--our-reps", type=int, default=30)
    args = parser.parse_args()

    mask = blob_mask(args.ellipses, args.seed)
    mask_u8 = mask.astype(np.uint8) * 255
    ours = mask_to_ls_rle(mask)
    sdk = brush.mask2rle(mask_u8)
    if ours != sdk:  # not an assert: the check must survive python -O
        raise SystemExit(f"byte identity FAILED: ours {len(ours)} bytes, sdk {len(sdk)} bytes")
    sdk_mask = brush.decode_rle(sdk).reshape(HEIGHT, WIDTH, RGBA_CHANNELS)[:, :, 3] > 0
    if not (np.array_equal(ls_rle_to_mask(sdk, HEIGHT, WIDTH), mask) and np.array_equal(sdk_mask, mask)):
        raise SystemExit("decode mismatch between ours, the sdk and the source mask")
    runs = count_runs(mask)
    print(f"mask {WIDTH}x{HEIGHT}: {int(mask.sum())} pixels on, {runs} runs, RLE {len(ours)} bytes; "
          f"byte-identical to brush.mask2rle")

    ours_ms = best_ms(lambda: mask_to_ls_rle(mask), args.our_reps)
    sdk_ms = best_ms(lambda: brush.mask2rle(mask_u8), args.sdk_reps)
    print(f"rle encode {WIDTH}x{HEIGHT} ({runs} runs): ours {ours_ms:.2f} ms, sdk {sdk_ms:.1f} ms, "
          f"speed ratio ours/sdk = {sdk_ms / ours_ms:.1f}x (ours is faster by this factor)")

    ours_ms = best_ms(lambda: ls_rle_to_mask(sdk, HEIGHT, WIDTH), args.our_reps)
    sdk_ms = best_ms(lambda: brush.decode_rle(sdk).reshape(HEIGHT, WIDTH, RGBA_CHANNELS)[:, :, 3] > 0, args.sdk_reps)
    print(f"rle decode {WIDTH}x{HEIGHT} ({runs} runs): ours {ours_ms:.2f} ms, sdk {sdk_ms:.1f} ms, "
          f"speed ratio ours/sdk = {sdk_ms / ours_ms:.1f}x (ours is faster by this factor)")


if __name__ == "__main__":
    main()
