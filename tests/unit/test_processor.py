"""Frame sizing, sampling, chat text and SAM 2 transform (no model)."""

import numpy as np
import pytest
import torch

from unipixel_model import processor
from unipixel_model.errors import UniPixelInputError


@pytest.mark.parametrize("hw, budget, expected", [
    ((200, 136), (12544, 3211264), (196, 140)),   # golden case a: round to multiples of 28
    ((120, 160), (12544, 401408), (112, 168)),
    ((1080, 1920), (100352, 200704), (336, 588)),  # above max: floor
    ((30, 40), (100352, 200704), (280, 392)),      # below min: ceil
])
def test_smart_resize_matches_qwen_rule(hw, budget, expected):
    assert processor.smart_resize(*hw, *budget) == expected


def test_pixel_budget_scales_with_frame_count():
    assert processor.pixel_budget(1) == (128 * 784, 256 * 784 * 16)
    assert processor.pixel_budget(16) == (128 * 784, 256 * 784)
    assert processor.pixel_budget(5) == (128 * 784, 256 * 784 * 3)


def test_sample_frame_indices_uniform_and_capped():
    assert processor.sample_frame_indices(10) == list(range(10))
    picked = processor.sample_frame_indices(100)
    assert len(picked) == 16 and picked[0] == 0 and picked[-1] == 99
    assert picked == sorted(set(picked))


def test_prepare_llm_video_pads_odd_frame_count_and_orders_patches():
    frames = np.random.default_rng(0).integers(0, 255, (3, 56, 84, 3), dtype=np.uint8)
    video = processor.prepare_llm_video(frames, 56 * 84, 56 * 84)
    assert video.num_frames == 3
    assert video.resized_frames.shape == (4, 56, 84, 3)
    assert np.array_equal(video.resized_frames[3], video.resized_frames[2])
    assert video.video_grid_thw.tolist() == [[2, 4, 6]]
    assert video.num_tokens == 2 * 2 * 3
    assert video.pixel_values_videos.shape == (2 * 4 * 6, 3 * 2 * 14 * 14)


def test_prepare_llm_video_rejects_bad_arrays():
    with pytest.raises(UniPixelInputError, match="uint8"):
        processor.prepare_llm_video(np.zeros((2, 28, 28, 3), np.float32), 784, 784 * 4)


def test_render_chat_multi_turn_and_generation_prompt():
    text = processor.render_chat([("Q1", "A1"), ("Q2", None)], assistant_prefix="The best option is (")
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q1<|im_end|>\n"
                    "<|im_start|>assistant\nA1<|im_end|>\n"
                    "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nThe best option is (")
    with pytest.raises(UniPixelInputError, match="last turn"):
        processor.render_chat([("Q1", None), ("Q2", None)])


def test_sam2_transform_shape_and_normalisation():
    frames = np.full((2, 10, 20, 3), 255, np.uint8)
    out = processor.sam2_transform(frames, 32)
    assert out.shape == (2, 3, 32, 32)
    assert torch.allclose(out[0, 0], torch.full((32, 32), (1 - 0.485) / 0.229))
