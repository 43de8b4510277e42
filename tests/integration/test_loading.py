"""Loading checkpoints in the official layout through the public ``from_pretrained``."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.conftest import GOLDEN_CHECKPOINT, PARITY_DIR
from unipixel_model import loading, parity
from unipixel_model.errors import CheckpointError
from unipixel_model.presets import preset_config

GAUSSIANS = ("sam2.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
             "ref_encoder.pe_layer.positional_encoding_gaussian_matrix",
             "tem_pe.positional_encoding_gaussian_matrix")


def _checkpoint_tensor(name, path=GOLDEN_CHECKPOINT / "model.safetensors"):
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name)


def test_loading_golden_checkpoint_every_tensor_bit_identical(golden_model):
    saved = load_file(str(GOLDEN_CHECKPOINT / "model.safetensors"))
    ours = {loading.module_key_to_checkpoint_key(k): v for k, v in golden_model.state_dict().items()}
    assert set(saved) == set(ours)
    assert all(torch.equal(saved[k], ours[k]) for k in saved)
    for name in GAUSSIANS:  # loaded, never re-drawn
        assert torch.equal(ours[name], _checkpoint_tensor(name))
    assert golden_model.config.sam2_inference_mode is True  # the file says false
    assert golden_model.sam2.inference_mode is True


def test_loading_sharded_bf16_copy(tmp_path, golden_model, golden_tokenizer):
    bf16 = loading.build_model(golden_model.config, (GOLDEN_CHECKPOINT,), dtype=torch.bfloat16, init_weights=False)
    bf16.load_state_dict({k: v.to(torch.bfloat16) for k, v in golden_model.state_dict().items()})
    target = tmp_path / "sharded"
    loading.save_checkpoint(bf16, target, max_shard_bytes=4_000_000)
    shutil.copy(GOLDEN_CHECKPOINT / "sam2.1_hiera_tiny_parity.yaml", target)
    index = json.loads((target / loading.SAFETENSORS_INDEX).read_text())
    assert len(set(index["weight_map"].values())) > 2
    reloaded = loading.from_pretrained(target, dtype=torch.bfloat16)
    assert reloaded.lm_head.weight.dtype == torch.bfloat16
    assert reloaded.sam2.no_mem_embed.dtype == torch.float32  # SAM 2 always runs in float32
    state = {loading.module_key_to_checkpoint_key(k): v for k, v in reloaded.state_dict().items()}
    for key, value in golden_model.state_dict().items():
        assert torch.equal(state[loading.module_key_to_checkpoint_key(key)].float(),
                           value.to(torch.bfloat16).float()), key
    meta = json.loads((PARITY_DIR / "e_image_mask_mem.json").read_text())
    expected = load_file(str(PARITY_DIR / "e_image_mask_mem.safetensors"))
    inputs, _ = parity.build_case_inputs(meta, expected, golden_tokenizer, 768)
    with torch.no_grad():
        logits = reloaded.prefill(inputs).logits.float()
    # bf16 weights and activations: close to the float32 reference, not equal to it.
    relative = (logits - expected["logits"]).norm() / expected["logits"].norm()
    assert relative < 0.05, float(relative)


def test_loading_missing_tensor_names_it(tmp_path):
    target = tmp_path / "broken"
    shutil.copytree(GOLDEN_CHECKPOINT, target)
    tensors = load_file(str(target / "model.safetensors"))
    del tensors["msk_proj.2.bias"]
    save_file(tensors, str(target / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"msk_proj\.2\.bias"):
        loading.from_pretrained(target)


def test_loading_wrong_shape_and_missing_shard_are_reported(tmp_path):
    target = tmp_path / "broken"
    shutil.copytree(GOLDEN_CHECKPOINT, target)
    tensors = load_file(str(target / "model.safetensors"))
    tensors["tem_emb.weight"] = torch.zeros(2, 256)
    save_file(tensors, str(target / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"tem_emb\.weight \(2, 256\) != \(1, 256\)"):
        loading.from_pretrained(target)
    (target / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="neither model.safetensors"):
        loading.from_pretrained(target)


def test_loading_fuser_layer_scale_maps_to_gamma(golden_model):
    gamma = golden_model.sam2.memory_encoder.fuser.layers[1].gamma
    assert torch.equal(gamma, _checkpoint_tensor("sam2.memory_encoder.fuser.layers.1.weight"))
    assert loading.checkpoint_key_to_module_key("sam2.memory_encoder.fuser.layers.0.weight") == \
        "sam2.memory_encoder.fuser.layers.0.gamma"
    # only the direct child is renamed
    assert loading.checkpoint_key_to_module_key("sam2.memory_encoder.fuser.layers.0.dwconv.weight") == \
        "sam2.memory_encoder.fuser.layers.0.dwconv.weight"


def test_loading_tied_lm_head_absent_from_file(tmp_path):
    config = preset_config("tiny")
    config.qwen.tie_word_embeddings = True
    config.qwen.text_config.tie_word_embeddings = True
    model = loading.build_model(config)
    loading.save_checkpoint(model, tmp_path / "tied")
    with safe_open(str(tmp_path / "tied" / "model.safetensors"), framework="pt") as handle:
        assert "lm_head.weight" not in handle.keys()
    from unipixel_model.tokenization import build_byte_tokenizer
    build_byte_tokenizer().save_pretrained(str(tmp_path / "tied"))
    reloaded = loading.from_pretrained(tmp_path / "tied")
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.language_model.embed_tokens.weight.data_ptr()
    assert torch.equal(reloaded.lm_head.weight, model.model.language_model.embed_tokens.weight)


def test_loading_tiny_by_name_builds_once(tmp_path):
    first = loading.resolve_checkpoint("tiny", cache_dir=tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert loading.resolve_checkpoint("tiny", cache_dir=tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(FileNotFoundError, match="hub id"):
        loading.resolve_checkpoint(tmp_path / "nope" / "deeper")


def test_loading_lora_adapter_on_top(tmp_path, tiny_checkpoint):
    """A peft adapter saved from a LoRA-wrapped model reloads onto a fresh base and changes logits."""
    from peft import LoraConfig, get_peft_model

    from unipixel_model.finetune_targets import LORA_TARGET_REGEX

    base = loading.from_pretrained(tiny_checkpoint)
    ids = torch.tensor([[961, 72, 105, 962]])
    embeds = base.model.language_model.embed_tokens(ids)
    pos = torch.arange(4).view(1, 1, 4).expand(3, 1, 4)
    from transformers.cache_utils import DynamicCache
    reference, _ = base.run_language_model(embeds, pos, DynamicCache(config=base.config.qwen.text_config))
    lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=LORA_TARGET_REGEX))
    names = [n for n, _ in lora.named_modules() if n.endswith("lora_A")]
    assert names and not any(".sam2." in n for n in names)
    assert any("visual.blocks" in n and n.endswith("attn.qkv.lora_A") for n in names)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    lora.save_pretrained(str(tmp_path / "adapter"))
    expected, _ = lora.base_model.model.run_language_model(embeds, pos, DynamicCache(config=base.config.qwen.text_config))
    fresh = loading.from_pretrained(tiny_checkpoint, adapter=tmp_path / "adapter")
    got, _ = fresh.run_language_model(embeds, pos, DynamicCache(config=base.config.qwen.text_config))
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, reference, atol=1e-3)
