"""Config parsing/validation and token-count errors."""

import json

import pytest
import torch

from tests.conftest import GOLDEN_CHECKPOINT
from unipixel_model.config import UniPixelConfig
from unipixel_model.errors import TokenCountError, UniPixelInputError
from unipixel_model.presets import preset_config
from unipixel_model.prompt_encoder import RefPrompt


def test_config_reads_official_fields_and_round_trips(tmp_path):
    config = UniPixelConfig.from_pretrained(GOLDEN_CHECKPOINT)
    assert (config.ref_token_id, config.seg_token_id, config.mem_token_id) == (982, 983, 984)
    assert config.sam2_inference_mode is False  # as saved; loading flips it on
    assert config.qwen.text_config.rope_parameters["mrope_section"] == [4, 6, 6]
    assert config.merger_input_size == 256 and config.llm_hidden_size == 128
    config.save_pretrained(tmp_path)
    again = UniPixelConfig.from_pretrained(tmp_path)
    assert again.to_dict() == config.to_dict()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "pixel_qwen2_5_vl"


def test_config_rejects_bad_values():
    raw = json.loads((GOLDEN_CHECKPOINT / "config.json").read_text())
    with pytest.raises(ValueError, match="seg_token_id must be a token id in \\[0, 1024\\), got 5000"):
        UniPixelConfig.from_dict({**raw, "seg_token_id": 5000})
    with pytest.raises(ValueError, match="must differ"):
        UniPixelConfig.from_dict({**raw, "mem_token_id": 982})
    with pytest.raises(ValueError, match="missing \\['ref_token_id'\\]"):
        UniPixelConfig.from_dict({k: v for k, v in raw.items() if k != "ref_token_id"})
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("13b")


def test_ref_prompt_shape_errors():
    with pytest.raises(UniPixelInputError, match="point \\[1, 2\\] or a box \\[2, 2\\]"):
        RefPrompt(torch.zeros(3, 2), torch.zeros(3), 0)
    with pytest.raises(UniPixelInputError, match="expected 2 labels"):
        RefPrompt(torch.zeros(2, 2), torch.zeros(1), 0)


def test_token_count_mismatch_raises_with_both_numbers(golden_model, golden_tokenizer):
    import numpy as np

    from unipixel_model import processor
    from unipixel_model.modeling import UniPixelInputs

    video = processor.prepare_llm_video(np.zeros((2, 56, 56, 3), np.uint8), 56 * 56, 56 * 56)
    text = processor.render_chat([("[1] <|ref|> and [2] <|ref|>?", None)])
    ids = processor.tokenize(golden_tokenizer, processor.expand_video_placeholder(text, video.num_tokens))
    prompt = RefPrompt(torch.tensor([[10.0, 10.0]]), torch.tensor([1]), 0)
    inputs = UniPixelInputs(ids, video.pixel_values_videos, video.video_grid_thw, video.second_per_grid_ts, [prompt])
    with pytest.raises(TokenCountError, match="1 prompts, 2 <\\|ref\\|> tokens"):
        golden_model.prefill(inputs)
    assert issubclass(TokenCountError, ValueError)
    bad_video = processor.tokenize(golden_tokenizer, processor.expand_video_placeholder(text, video.num_tokens + 1))
    inputs = UniPixelInputs(bad_video, video.pixel_values_videos, video.video_grid_thw, video.second_per_grid_ts,
                            [prompt, prompt])
    with pytest.raises(TokenCountError, match="expected 4 <\\|video_pad\\|> tokens .* got 5"):
        golden_model.prefill(inputs)
