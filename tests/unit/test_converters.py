"""Unit tests for backend.converters: geometry, LS brush RLE (vs label_studio_sdk), COCO RLE."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter import brush

from backend.converters.coco_rle import CocoRLEError, coco_rle_to_mask, mask_to_coco_rle
from backend.converters.geometry import (
    GeometryError,
    box_px_to_pct,
    frame_idx_to_ls_frame,
    frame_idx_to_time_s,
    ls_frame_to_frame_idx,
    mask_to_box_px,
    pct_to_px,
    px_to_pct,
    rect_pct_to_box_px,
    time_s_to_frame_idx,
)
from backend.converters.rle import RLEError, decode_ls_rle, encode_ls_rle, ls_rle_to_mask, mask_to_ls_rle


def _sdk_rle(mask: np.ndarray) -> list[int]:
    return brush.mask2rle((mask > 0).astype(np.uint8) * 255)


def _blob_mask(rng: np.random.Generator, height: int, width: int, count: int = 3) -> np.ndarray:
    """bool [H, W] with a few filled random ellipses."""
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), dtype=bool)
    for _ in range(count):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.5, height / 2 + 1), rng.uniform(0.5, width / 2 + 1)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask


def _random_cases(count: int = 60) -> list:
    """Seeded noise and blob masks of fixed awkward sizes plus random sizes."""
    rng = np.random.default_rng(1234)
    sizes = [(1, 1), (1, 7), (7, 1), (4, 6), (37, 53), (240, 320), (240, 320), (65, 1)]
    sizes += [tuple(int(v) for v in rng.integers(1, 120, 2)) for _ in range(count - len(sizes))]
    cases = []
    for i, (height, width) in enumerate(sizes):
        if i % 2 == 0:
            mask = rng.random((height, width)) < rng.uniform(0.05, 0.95)
            cases.append(pytest.param(mask, id=f"noise{height}x{width}"))
        else:
            cases.append(pytest.param(_blob_mask(rng, height, width), id=f"blob{height}x{width}"))
    return cases


# ---- geometry -----------------------------------------------------------------------------------

def test_geometry_pct_px_round_trip():
    for size_px in (1, 37, 640, 1920):
        for value_px in (0.0, 0.5, 1.0, size_px / 3, float(size_px)):
            assert px_to_pct(pct_to_px(px_to_pct(value_px, size_px), size_px), size_px) == pytest.approx(
                px_to_pct(value_px, size_px), abs=1e-12)
            assert pct_to_px(px_to_pct(value_px, size_px), size_px) == pytest.approx(value_px, abs=1e-9)
    assert pct_to_px(50, 640) == 320.0
    assert px_to_pct(160, 640) == 25.0


def test_geometry_pct_px_refuses_zero_size():
    with pytest.raises(GeometryError, match="size_px must be > 0"):
        pct_to_px(10, 0)


def test_geometry_ls_frame_off_by_one():
    assert ls_frame_to_frame_idx(1) == 0
    assert ls_frame_to_frame_idx(1051) == 1050  # last frame of a 1051-frame video
    assert frame_idx_to_ls_frame(0) == 1
    assert frame_idx_to_ls_frame(1050) == 1051
    assert ls_frame_to_frame_idx(3.0) == 2
    for frame_idx in range(100):
        assert ls_frame_to_frame_idx(frame_idx_to_ls_frame(frame_idx)) == frame_idx
    with pytest.raises(GeometryError, match="start at 1, got 0"):
        ls_frame_to_frame_idx(0)
    with pytest.raises(GeometryError, match=">= 0, got -1"):
        frame_idx_to_ls_frame(-1)
    with pytest.raises(GeometryError, match="whole number"):
        ls_frame_to_frame_idx(2.5)


@pytest.mark.parametrize("fps", [24.0, 25.0, 29.97, 30000 / 1001])
def test_geometry_time_boundaries_land_on_the_next_frame(fps):
    """LS frame n (1-based) spans [(n-1)/fps, n/fps): t = n/fps is frame_idx n, just before is n-1."""
    for n in range(0, 2000):
        assert time_s_to_frame_idx(n / fps, fps) == n
        assert time_s_to_frame_idx(frame_idx_to_time_s(n, fps), fps) == n
        if n > 0:
            assert time_s_to_frame_idx(n / fps - 1e-4, fps) == n - 1
        assert time_s_to_frame_idx((n + 0.5) / fps, fps) == n  # floor, not round


def test_geometry_time_clamps_and_refuses_bad_input():
    assert time_s_to_frame_idx(10.0, 25.0, num_frames=100) == 99
    assert time_s_to_frame_idx(3.96, 25.0, num_frames=100) == 99
    assert time_s_to_frame_idx(0.0, 25.0, num_frames=1) == 0
    with pytest.raises(GeometryError, match="fps must be > 0"):
        time_s_to_frame_idx(1.0, 0.0)
    with pytest.raises(GeometryError, match="time_s must be >= 0"):
        time_s_to_frame_idx(-0.5, 25.0)
    assert frame_idx_to_time_s(25, 25.0) == 1.0


def test_geometry_mask_to_box_px():
    mask = np.zeros((48, 64), dtype=bool)
    assert mask_to_box_px(mask) is None
    mask[10:20, 30:41] = True
    assert mask_to_box_px(mask) == (30, 10, 41, 20)
    mask[47, 63] = True
    assert mask_to_box_px(mask) == (30, 10, 64, 48)
    assert mask_to_box_px(np.ones((1, 1), dtype=np.uint8)) == (0, 0, 1, 1)
    with pytest.raises(GeometryError, match=r"2-D \[H, W\]"):
        mask_to_box_px(np.zeros((2, 3, 4), dtype=bool))


def test_geometry_box_pct_round_trip():
    box_pct = box_px_to_pct((30, 10, 41, 20), width_px=64, height_px=48)
    assert box_pct == pytest.approx({"x": 46.875, "y": 20.833333333333336, "width": 17.1875,
                                     "height": 20.833333333333336})
    box_px = rect_pct_to_box_px(box_pct["x"], box_pct["y"], box_pct["width"], box_pct["height"], 64, 48)
    assert box_px == pytest.approx((30, 10, 41, 20))


def test_geometry_rect_is_clamped_into_the_frame():
    assert rect_pct_to_box_px(-10, 90, 50, 20, 200, 100) == (0.0, 90.0, 80.0, 100.0)
    with pytest.raises(GeometryError, match="no area inside the 200x100 frame"):
        rect_pct_to_box_px(110, 10, 5, 5, 200, 100)
    with pytest.raises(GeometryError, match=">= 0 percent"):
        rect_pct_to_box_px(10, 10, -5, 5, 200, 100)


# ---- LS brush RLE -------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", _random_cases())
def test_rle_matches_sdk_bytes(mask):
    ours = mask_to_ls_rle(mask)
    assert ours == _sdk_rle(mask)
    assert all(type(v) is int for v in ours)
    assert np.array_equal(ls_rle_to_mask(ours, *mask.shape), mask)


@pytest.mark.parametrize("height,width", [(1, 1), (4, 6), (37, 53), (128, 129), (256, 256)])
@pytest.mark.parametrize("fill", [False, True])
def test_rle_constant_masks_match_sdk(height, width, fill):
    """All-zero / all-one masks: one run of H*W*4 values, split by the sdk into 65536-long chunks."""
    mask = np.full((height, width), fill)
    assert mask_to_ls_rle(mask) == _sdk_rle(mask)
    assert np.array_equal(ls_rle_to_mask(mask_to_ls_rle(mask), height, width), mask)


def test_rle_full_hd_blob_matches_sdk():
    mask = _blob_mask(np.random.default_rng(7), 1080, 1920, count=4)
    ours = mask_to_ls_rle(mask)
    assert ours == _sdk_rle(mask)
    assert np.array_equal(ls_rle_to_mask(ours, 1080, 1920), mask)


def test_rle_uint8_and_bool_masks_encode_alike():
    mask = _blob_mask(np.random.default_rng(3), 40, 50)
    assert mask_to_ls_rle(mask.astype(np.uint8)) == mask_to_ls_rle(mask)
    assert mask_to_ls_rle(mask.astype(np.uint8) * 7) == mask_to_ls_rle(mask)


def test_rle_doc_example_decodes():
    """The 4x6 example of label_studio_protocol.md §5.2: a 2x3 block of 255."""
    rle = [0, 0, 0, 96, 57, 27, 254, 31, 0, 183, 255, 108, 2, 223, 254, 27, 0, 0]
    mask = ls_rle_to_mask(rle, 4, 6)
    x1, y1, x2, y2 = mask_to_box_px(mask)
    assert mask.sum() == 6 and (x2 - x1) * (y2 - y1) == 6
    assert mask_to_ls_rle(mask) == rle


def test_rle_decodes_sdk_rle_like_sdk():
    rng = np.random.default_rng(11)
    for height, width in [(1, 1), (5, 9), (30, 41)]:
        mask = rng.random((height, width)) < 0.4
        sdk_rle = _sdk_rle(mask)
        assert np.array_equal(decode_ls_rle(sdk_rle), brush.decode_rle(sdk_rle))
        assert np.array_equal(ls_rle_to_mask(sdk_rle, height, width), mask)


def test_rle_generic_buffer_matches_sdk_encode_rle():
    """Runs of 1 (literal tokens), all count widths, and runs over 65536 (chunked) in one buffer."""
    rng = np.random.default_rng(5)
    lengths = np.concatenate([rng.integers(1, 20, 300), [1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 131073]])
    values = rng.integers(0, 256, lengths.size).astype(np.uint8)
    buffer = np.repeat(values, lengths)
    ours = encode_ls_rle(buffer)
    assert ours == brush.encode_rle(buffer)
    assert np.array_equal(decode_ls_rle(ours), buffer)


def test_rle_mask_takes_alpha_of_unaligned_runs():
    """RGBA buffers whose runs do not follow pixel borders (RGB differs from alpha) decode alpha only."""
    rng = np.random.default_rng(9)
    height, width = 13, 17
    buffer = np.repeat(rng.choice([0, 0, 90, 255], 200).astype(np.uint8), rng.integers(1, 9, 200))
    buffer = np.resize(buffer, height * width * 4)
    expected = buffer.reshape(height, width, 4)[:, :, 3] > 0
    assert np.array_equal(ls_rle_to_mask(encode_ls_rle(buffer), height, width), expected)


def test_rle_decodes_literal_blocks():
    """A literal token with several values, as the LS frontend (rle-pack) may write them."""
    bits = f"{5:032b}{7:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))
    bits += "0" + "00" + f"{3 - 1:03b}" + f"{10:08b}{20:08b}{30:08b}"  # literals 10, 20, 30
    bits += "1" + "00" + f"{2 - 1:03b}" + f"{40:08b}"  # then 40 twice
    bits += "0" * (-len(bits) % 8)
    rle = [int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_ls_rle(rle).tolist() == [10, 20, 30, 40, 40]
    assert np.array_equal(decode_ls_rle(rle), brush.decode_rle(rle))


def test_rle_errors_name_the_numbers():
    rle = mask_to_ls_rle(np.ones((4, 6), dtype=bool))
    with pytest.raises(RLEError, match=r"holds 96 values but a 5x6 RGBA mask needs 120"):
        ls_rle_to_mask(rle, 5, 6)
    with pytest.raises(RLEError, match="truncated"):
        decode_ls_rle(rle[:8])
    with pytest.raises(RLEError, match="0-255"):
        decode_ls_rle([300] * 10)
    with pytest.raises(RLEError, match="0-255"):
        decode_ls_rle([0.5] * 10)
    with pytest.raises(RLEError, match="integers 0-255, got dtype float64"):
        encode_ls_rle(np.full(8, 0.5))
    with pytest.raises(RLEError, match=r"2-D \[H, W\]"):
        mask_to_ls_rle(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(RLEError, match="empty mask"):
        mask_to_ls_rle(np.zeros((0, 5), dtype=bool))


# ---- COCO RLE -----------------------------------------------------------------------------------

def test_coco_rle_round_trip():
    rng = np.random.default_rng(2)
    for height, width in [(1, 1), (4, 6), (37, 53), (240, 320)]:
        for mask in (_blob_mask(rng, height, width), rng.random((height, width)) < 0.3,
                     np.zeros((height, width), bool)):
            rle = mask_to_coco_rle(mask)
            assert rle["size"] == [height, width] and isinstance(rle["counts"], str)
            assert np.array_equal(coco_rle_to_mask(rle), mask)
            assert np.array_equal(coco_rle_to_mask({**rle, "counts": rle["counts"].encode()}), mask)


def test_coco_rle_uncompressed_counts():
    mask = np.zeros((3, 4), dtype=bool)
    mask[1:3, 1] = True  # column-major runs: 4 off, 2 on, 6 off
    assert np.array_equal(coco_rle_to_mask({"size": [3, 4], "counts": [4, 2, 6]}), mask)
    with pytest.raises(CocoRLEError, match="sum to 11 but size 3x4 needs 12"):
        coco_rle_to_mask({"size": [3, 4], "counts": [4, 2, 5]})


def test_coco_rle_wrong_size_is_refused():
    rle = mask_to_coco_rle(np.ones((10, 10), dtype=bool))
    with pytest.raises(CocoRLEError, match="cover 100 pixels but size 4x5 needs 20"):
        coco_rle_to_mask({**rle, "size": [4, 5]})
    with pytest.raises(CocoRLEError, match="'size' and 'counts'"):
        coco_rle_to_mask({"counts": "abc"})
