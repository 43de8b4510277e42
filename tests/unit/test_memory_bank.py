"""``<|mem|>`` grid masks, prefixes (including the odd-frame-count quirk) and pooling order."""

import pytest
import torch

from unipixel_model.errors import UniPixelInputError
from unipixel_model.memory_bank import build_refer_mask, mem_prefix, pool_mem_features, time_pool_masks


def test_time_pool_repeats_last_frame_for_odd_counts():
    masks = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    masks[2, 0, 0, 0] = True
    pooled = time_pool_masks(masks)
    assert pooled.shape == (2, 1, 4, 4)
    assert not pooled[0].any() and pooled[1, 0, 0, 0]


def test_mem_prefix_video_odd_count_quirk_and_skipped_chunks():
    refer = torch.zeros(3, 2, 2, 2, dtype=torch.bool)
    refer[:, 0, 0, 0] = True          # object [1] in every chunk
    refer[2, 1, 1, 1] = True          # object [2] only in the last chunk
    text = mem_prefix([1, 2], refer, num_frames=5)
    assert text == ("Here is a video with 5 frames denoted as <1> to <5>. The highlighted regions are as follows:\n"
                    "[1]: <1>-<2> <|mem|> <3>-<4> <|mem|> <5>-<6> <|mem|>\n[2]: <5>-<6> <|mem|>\n")


def test_mem_prefix_image_and_empty_mask_error():
    refer = torch.ones(1, 2, 2, 2, dtype=torch.bool)
    assert mem_prefix([1, 2], refer, None) == ("Here is an image with the following highlighted regions:\n"
                                               "[1]: <|mem|>\n[2]: <|mem|>\n")
    refer[:, 1] = False
    with pytest.raises(UniPixelInputError, match=r"object \[2\] is empty"):
        mem_prefix([1, 2], refer, None)


def test_build_refer_mask_marks_touched_tokens():
    masks = torch.zeros(2, 1, 56, 112, dtype=torch.bool)
    masks[:, 0, 30:40, 60:70] = True
    refer = build_refer_mask(masks, grid_hw=(4, 8))
    assert refer.shape == (1, 1, 2, 4)
    assert refer[0, 0].nonzero().tolist() == [[1, 2]]


def test_pool_reads_window_ordered_rows_with_raster_mask():
    rows = torch.arange(8, dtype=torch.float32).view(8, 1).repeat(1, 3)
    refer = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    refer[1, 0, 0, 1] = True          # raster index 1 of chunk 1 -> row 4 + 1
    pooled = pool_mem_features(rows, refer)
    assert pooled.tolist() == [[5.0, 5.0, 5.0]]
    with pytest.raises(UniPixelInputError, match="covers 8 visual tokens"):
        pool_mem_features(rows[:6], refer)
