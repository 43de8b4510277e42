"""Architectures of the released UniPixel-3B/7B and a tiny random model for offline use.

``3b`` and ``7b`` reproduce the hub ``config.json`` of ``PolyU-ChenLab/UniPixel-3B``/``-7B``
(Qwen2.5-VL-3B/7B-Instruct + SAM 2.1 b+ at 768 px); they are used to build models on the meta
device (``python -m unipixel_model.inspect``) and for benchmarks with random weights. ``tiny``
is a few-million-parameter model with a byte-level tokenizer, built locally by
:func:`build_tiny_checkpoint` for smoke runs and tests (no hub access needed).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from unipixel_model.config import UniPixelConfig

_QWEN_SPECIALS = {"image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
                  "vision_end_token_id": 151653, "bos_token_id": 151643, "eos_token_id": 151645}
_UNIPIXEL_FIELDS = {"ref_token_id": 151665, "seg_token_id": 151666, "mem_token_id": 151667,
                    "sam2_config": "configs/sam2.1_hiera_b+", "sam2_image_size": 768, "sam2_hidden_tokens": 2,
                    "sam2_enable_decoder": True, "sam2_batch_mode": False, "sam2_apply_postprocessing": False,
                    "sam2_inference_mode": False, "sample_objects": 5, "base_model": "qwen2_5_vl",
                    "conv_type": "chatml"}
_VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "patch_size": 14,
           "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112, "in_channels": 3,
           "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2, "hidden_act": "silu"}


def _release(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, tied: bool) -> dict:
    return {**_QWEN_SPECIALS, **_UNIPIXEL_FIELDS, "model_type": "pixel_qwen2_5_vl", "vocab_size": 151936,
            "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv_heads, "hidden_act": "silu",
            "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_scaling": {"type": "default", "rope_type": "default", "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": tied, "torch_dtype": "bfloat16",
            "vision_config": {**_VISION, "out_hidden_size": hidden}}


_TINY = {
    "model_type": "pixel_qwen2_5_vl", "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu",
    "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "rope_scaling": {"type": "default", "rope_type": "default", "mrope_section": [2, 3, 3]},
    "tie_word_embeddings": False, "torch_dtype": "float32",
    "bos_token_id": 960, "eos_token_id": 962, "image_token_id": 972, "video_token_id": 973,
    "vision_start_token_id": 969, "vision_end_token_id": 970,
    "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                      "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                      "in_channels": 3, "fullatt_block_indexes": [1], "tokens_per_second": 2, "hidden_act": "silu"},
    **{**_UNIPIXEL_FIELDS, "ref_token_id": 982, "seg_token_id": 983, "mem_token_id": 984,
       "sam2_config": "configs/sam2.1_hiera_tiny_unipixel", "sam2_image_size": 256},
}

# The toy model's architecture (trained on the synthetic world by ``python -m finetune toy``): the
# tiny LLM and ViT reading small frames (112 x 112 per frame at 16 frames), a wider SAM 2 trunk at 128 px,
# and the click prior (clicks and boxes also drawn into the dense prompt, see configs/sam2.1_hiera_toy.yaml).
_TOY = {**_TINY, "sam2_config": "configs/sam2.1_hiera_toy", "sam2_image_size": 128, "llm_min_pixels": 112 * 112,
        "llm_max_pixels": 112 * 112}

PRESETS: dict[str, dict[str, Any]] = {
    "3b": _release(2048, 11008, 36, 16, 2, tied=True),
    "7b": _release(3584, 18944, 28, 28, 4, tied=False),
    "tiny": _TINY,
    "toy": _TOY,
}


def preset_config(name: str) -> UniPixelConfig:
    """The :class:`UniPixelConfig` of a preset (``3b``, ``7b``, ``tiny`` or ``toy``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return UniPixelConfig.from_dict(copy.deepcopy(PRESETS[name]))


@torch.no_grad()
def init_unipixel_heads(model: torch.nn.Module) -> None:
    """The official fresh-run initialisation of the UniPixel parts (``init_parameters``).

    ``ref_encoder`` copies SAM 2's prompt encoder parameters (its Gaussian buffer stays its own),
    ``msk_proj`` copies the merger MLP, and the new projections are Xavier-uniform with zero bias.
    """
    sam_pe = model.sam2.sam_prompt_encoder.state_dict()
    own = model.ref_encoder.state_dict()
    model.ref_encoder.load_state_dict({k: (own[k] if "gaussian" in k else v) for k, v in sam_pe.items()})
    model.msk_proj.load_state_dict(model.model.visual.merger.mlp.state_dict())
    for module in (model.seg_head, model.ref_proj_single, model.ref_proj_double, model.ref_proj, model.tem_proj):
        for layer in module.modules() if isinstance(module, torch.nn.Sequential) else [module]:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.xavier_uniform_(layer.weight)
                torch.nn.init.zeros_(layer.bias)


def build_tiny_checkpoint(directory: str | Path, seed: int = 0, preset: str = "tiny") -> Path:
    """Write a random UniPixel checkpoint of a small ``preset`` (``tiny``, or ``toy``: the toy model's starting
    point) in the official layout + byte tokenizer to ``directory``."""
    from unipixel_model.loading import build_model, save_checkpoint
    from unipixel_model.tokenization import build_byte_tokenizer

    directory = Path(directory)
    torch.manual_seed(seed)
    model = build_model(preset_config(preset))
    init_unipixel_heads(model)
    save_checkpoint(model, directory)
    build_byte_tokenizer().save_pretrained(str(directory))
    return directory
