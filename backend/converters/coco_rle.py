"""COCO RLE (pycocotools) for masks in exports and training data.

COCO RLE runs over the mask in column-major (Fortran) order and, compressed, stores the counts
as an ASCII string; it is unrelated to Label Studio's brush RLE (see ``rle.py``). The JSON
form used here is ``{"size": [H, W], "counts": str}``.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


class CocoRLEError(ValueError):
    """A COCO RLE dict is malformed; the message says which field is wrong."""


def mask_to_coco_rle(mask: np.ndarray) -> dict:
    """Encode a mask as compressed COCO RLE, ready for JSON.

    Args:
        mask: bool (or numeric, nonzero = on) array [H, W] in pixels.

    Returns:
        ``{"size": [H, W], "counts": str}``.

    Raises:
        CocoRLEError: if ``mask`` is not 2-D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise CocoRLEError(f"mask must be 2-D [H, W], got shape {mask.shape}; encode one frame at a time")
    encoded = coco_mask.encode(np.asfortranarray((mask != 0).astype(np.uint8)))
    return {"size": [int(encoded["size"][0]), int(encoded["size"][1])], "counts": encoded["counts"].decode("ascii")}


def coco_rle_to_mask(rle: dict) -> np.ndarray:
    """Decode a COCO RLE dict.

    Args:
        rle: ``{"size": [H, W], "counts": ...}`` where counts is a compressed ``str`` or
            ``bytes``, or an uncompressed ``list[int]`` (converted with ``frPyObjects``).

    Returns:
        bool array [H, W].

    Raises:
        CocoRLEError: for a missing/ill-typed ``size`` or ``counts``, or counts whose total does
            not match ``H * W``.
    """
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise CocoRLEError(f"a COCO RLE is a dict with 'size' and 'counts', got {type(rle).__name__} "
                           f"{sorted(rle) if isinstance(rle, dict) else ''}")
    size = rle["size"]
    if len(size) != 2 or min(size) < 0:
        raise CocoRLEError(f"COCO RLE 'size' must be [H, W], got {size}")
    height, width = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, list):
        if sum(counts) != height * width:
            raise CocoRLEError(f"uncompressed counts sum to {sum(counts)} but size {height}x{width} "
                               f"needs {height * width}")
        compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    elif isinstance(counts, (str, bytes)):
        counts = counts.encode("ascii") if isinstance(counts, str) else counts
        # pycocotools pads short counts with uninitialised memory, so check the total first.
        total = sum(_compressed_counts(counts))
        if total != height * width:
            raise CocoRLEError(f"COCO RLE counts cover {total} pixels but size {height}x{width} "
                               f"needs {height * width}; is 'size' [H, W] of this mask?")
        compressed = {"size": [height, width], "counts": counts}
    else:
        raise CocoRLEError(f"COCO RLE 'counts' must be str, bytes or list[int], got {type(counts).__name__}")
    return coco_mask.decode(compressed).astype(bool)


def _compressed_counts(counts: bytes) -> list[int]:
    """Run lengths of a compressed COCO counts string (``rleFrString`` of pycocotools' maskApi.c).

    Each count is a little-endian sequence of 5-bit groups in chars offset by 48; 0x20 marks
    "more groups follow", 0x10 in the last group is the sign; from the third count on, values
    are deltas to the count two places earlier.
    """
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise CocoRLEError("COCO RLE counts string ends inside a number; it is truncated")
            char = counts[pos] - 48
            value |= (char & 0x1F) << shift
            more = bool(char & 0x20)
            pos += 1
            shift += 5
            if not more and char & 0x10:
                value -= 1 << shift  # sign-extend
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    if any(run < 0 for run in runs):
        raise CocoRLEError("COCO RLE counts decode to a negative run length; the string is corrupt")
    return runs
