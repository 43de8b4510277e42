"""``random-3b`` / ``random-7b``: the released layouts with random weights, shrunk to CPU size.

The full-width shrink (``random-3b:layers=2,depth=2``) is checked on the meta device against the
``3b`` preset; the sessions, the CLI and the backend run a fully shrunk copy in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unipixel_model.loading import from_pretrained, resolve_checkpoint, save_checkpoint
from unipixel_model.random_models import RANDOM_WEIGHTS_FIELD, parse_reference, random_config
from unipixel_model.session import InferenceSession
from unipixel_model.tokenization import load_tokenizer, special_token_ids
from unipixel_model.types import PointPrompt

SMALL = "random-3b:layers=1,depth=1,hidden=128,sam2=tiny,sam2_size=256,llm_side=56"
REAL_IDS = {"<|endoftext|>": 151643, "<|im_end|>": 151645, "<|vision_start|>": 151652, "<|vision_end|>": 151653,
            "<|image_pad|>": 151655, "<|video_pad|>": 151656, "<|ref|>": 151665, "<|seg|>": 151666,
            "<|mem|>": 151667}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("random-models")


@pytest.fixture(scope="module")
def small(cache_dir):
    path = resolve_checkpoint(SMALL, cache_dir)
    return path, from_pretrained(path), load_tokenizer(path)


def _frames(count: int = 4, side: int = 64) -> np.ndarray:
    frames = np.full((count, side, side, 3), 40, np.uint8)
    for t in range(count):
        frames[t, 20:40, 5 + 4 * t:25 + 4 * t] = (230, 200, 40)
    return frames


def test_random_reference_parse_and_errors():
    assert parse_reference("random-3b") == ("3b", {})
    assert parse_reference("random-7b:layers=2, depth=3,sam2=tiny") == ("7b", {"layers": 2, "depth": 3, "sam2": "tiny"})
    for bad, words in [("random-13b", "random-3b or random-7b"), ("random-3b:width=2", "keys"),
                       ("random-3b:layers=two", "positive integer"), ("random-3b:layers=0", "positive integer"),
                       ("random-3b:hidden=100", "multiple of 128"), ("random-3b:sam2=huge", "choose one of"),
                       ("random-3b:llm_side=50", "multiple of 28")]:
        with pytest.raises(ValueError, match=words):
            parse_reference(bad)


def test_random_3b_shrink_keeps_the_released_widths_and_ids():
    """layers/depth shrink only the counts: every tensor keeps its 3B shape (built on the meta device)."""
    from transformers import initialization

    from unipixel_model.loading import checkpoint_state_keys
    from unipixel_model.modeling import UniPixelModel

    config = random_config("random-3b:layers=2,depth=2")
    text, vision = config.qwen.text_config, config.qwen.vision_config
    assert (text.num_hidden_layers, vision.depth, vision.fullatt_block_indexes) == (2, 2, [1])
    assert (text.hidden_size, text.vocab_size, vision.hidden_size, config.sam2_image_size) == (2048, 151936, 1280, 768)
    assert (config.ref_token_id, config.seg_token_id, config.mem_token_id) == (151665, 151666, 151667)
    assert config.qwen.video_token_id == 151656 and config.tie_word_embeddings
    assert config.extra[RANDOM_WEIGHTS_FIELD]["seed"] == 0
    with torch.device("meta"), initialization.no_init_weights():
        shapes = checkpoint_state_keys(UniPixelModel(config))
    assert tuple(shapes["model.embed_tokens.weight"]) == (151936, 2048)
    assert tuple(shapes["model.layers.1.self_attn.k_proj.weight"]) == (256, 2048)  # 2 KV heads of 128
    assert tuple(shapes["visual.blocks.1.attn.qkv.weight"]) == (3840, 1280)
    assert tuple(shapes["msk_proj.0.weight"]) == (5120, 5120) and tuple(shapes["seg_head.3.weight"]) == (512, 2048)
    assert "model.layers.2.mlp.up_proj.weight" not in shapes and "visual.blocks.2.norm1.weight" not in shapes
    assert tuple(shapes["sam2.image_encoder.trunk.patch_embed.proj.weight"]) == (112, 3, 7, 7)  # Hiera b+


def test_random_model_folder_holds_no_weights_and_the_real_token_ids(small):
    path, model, tokenizer = small
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) == \
        ["config.json", "tokenizer.json", "tokenizer_config.json"]
    ids = special_token_ids(tokenizer)
    assert {name: ids[name] for name in REAL_IDS} == REAL_IDS
    assert (model.config.ref_token_id, model.config.seg_token_id, model.config.mem_token_id) == (151665, 151666, 151667)
    assert model.lm_head.weight.shape == (151936, 128) and model.config.tie_word_embeddings
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_random_model_runs_a_session_on_the_real_ids(small):
    _, model, tokenizer = small
    session = InferenceSession.open(model, tokenizer, _frames())
    track = session.refer({1: PointPrompt(15.0, 30.0, 1)}, ask=False).tracks[0]
    assert track.frame_idx == [0, 1, 2, 3]
    result = session.segment("Please segment the yellow square.", forced_answer="Sure, it is <|seg|>.")
    assert len(result.tracks) == 1 and result.tracks[0].frame_idx == [0, 1, 2, 3]


def test_random_models_are_seeded_and_7b_unties_the_head(small, cache_dir):
    a = from_pretrained(resolve_checkpoint(SMALL, cache_dir))
    b = from_pretrained(resolve_checkpoint(SMALL + ",seed=1", cache_dir))
    c = from_pretrained(resolve_checkpoint("random-7b:layers=1,depth=1,hidden=128,sam2=tiny,sam2_size=256", cache_dir))
    weight = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(a.state_dict()[weight], small[1].state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], b.state_dict()[weight])
    assert not c.config.tie_word_embeddings and c.lm_head.weight is not c.model.language_model.embed_tokens.weight
    assert c.config.qwen.text_config.num_key_value_heads == 1  # 7B's 7 query heads per KV head, one query head


def test_saved_random_model_loads_as_a_normal_checkpoint(small, tmp_path):
    path, model, tokenizer = small
    save_checkpoint(model, tmp_path / "ckpt")
    assert RANDOM_WEIGHTS_FIELD not in json.loads((tmp_path / "ckpt" / "config.json").read_text())
    loaded = from_pretrained(tmp_path / "ckpt")
    for key in ("model.language_model.embed_tokens.weight", "seg_head.1.weight",
                "sam2.sam_mask_decoder.iou_token.weight"):
        assert torch.equal(loaded.state_dict()[key], model.state_dict()[key]), key


def test_predict_cli_accepts_a_random_model(tmp_path, capsys, monkeypatch):
    from finetune.world import writers
    from unipixel_model.__main__ import main

    monkeypatch.setenv("HOME", str(tmp_path))  # the reference's folder goes to ~/.cache/unipixel
    media = tmp_path / "clip"
    writers.write_frame_folder(np.stack(list(_frames())), media)
    out = tmp_path / "out"
    assert main(["predict", "--model", SMALL, "--media", str(media), "--point", "15,30,1", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("obj1_frame*.png")) == [f"obj1_frame{i:05d}.png" for i in range(4)]


def test_backend_engine_serves_a_random_model_reference(tmp_path, monkeypatch):
    from backend.engine import Engine
    from backend.settings import Settings

    monkeypatch.setenv("HOME", str(tmp_path))
    engine = Engine(Settings(model=SMALL, device="cpu", model_dir=tmp_path / "models",
                             data_dir=tmp_path / "data", media_cache_dir=tmp_path / "media"))
    with engine.gpu:
        model, tokenizer = engine.model()
    assert special_token_ids(tokenizer)["<|seg|>"] == model.config.seg_token_id == 151666
    assert engine.model_version().startswith(SMALL)
