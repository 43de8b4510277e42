"""What a recipe trains: LoRA injection, which parameters are unfrozen, the optimizer and its LR schedule.

Stateless functions over a :class:`UniPixelModel` and a :class:`TrainRecipe`; :class:`finetune.trainer.Trainer`
calls them once when it is built (LoRA, trainable parameters) and once per run (optimizer, schedule).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from finetune.recipe import RecipeError, TrainRecipe
from unipixel_model.adapters import lora_layer_names

ADAPTER_NAME = "default"
HEAD_MODULES = ("seg_head", "ref_encoder", "ref_proj_single", "ref_proj_double", "ref_proj", "tem_emb",
                "tem_proj", "msk_proj")
EMBEDDING_PARAMS = ("model.language_model.embed_tokens.weight", "lm_head.weight")
SAM2_ENCODER_PREFIX = "sam2.image_encoder."


def inject_lora(model: nn.Module, recipe: TrainRecipe) -> list[str]:
    """Wrap the recipe's LoRA targets in place (peft, adapter ``ADAPTER_NAME``).

    Returns:
        The names of the wrapped modules.
    Raises:
        RuntimeError: when the targets match no module, or would wrap a SAM 2 module.
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                        target_modules=recipe.lora_target_regex, bias="none", base_model_name_or_path=recipe.base_model)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    wrapped = lora_layer_names(model)
    if not wrapped or any(name.startswith("sam2.") for name in wrapped):
        raise RuntimeError(f"LoRA target regex {recipe.lora_target_regex!r} wrapped {len(wrapped)} modules "
                           f"({[n for n in wrapped if n.startswith('sam2.')][:3]} in SAM 2); expected the "
                           "LLM/ViT attention projections only")
    return wrapped


def mark_trainable(model: nn.Module, recipe: TrainRecipe) -> list[str]:
    """Freeze everything, then unfreeze LoRA and the recipe's modules (cast to float32).

    Returns:
        Names of the fully trained (non-LoRA) parameters, which the adapter saves in full.
    Raises:
        RecipeError: when ``full_model_modules`` names a module the model lacks.
    """
    prefixes = (HEAD_MODULES if recipe.train_heads else ()) + (("sam2",) if recipe.train_sam2 else ())
    tops = {name for name, _ in model.named_children()}
    unknown = sorted(set(recipe.full_model_modules or ()) - tops)
    if unknown:
        raise RecipeError(f"full_model_modules names {unknown}, which this model lacks; its top-level modules "
                          f"are {sorted(tops)}")
    full = []
    for name, param in model.named_parameters():
        lora, top = "lora_" in name, name.split(".")[0]
        if recipe.full_model:  # every module, or the listed full_model_modules
            train = recipe.trains_module(top)
        else:
            train = lora or top in prefixes or (recipe.train_embeddings and name in EMBEDDING_PARAMS)
        if name.startswith(SAM2_ENCODER_PREFIX) and not recipe.trains_sam2_encoder:
            train = False  # sam2_encoder_lr 0: frozen, so no gradient graph through it and not saved
        param.requires_grad_(train)
        if train and param.dtype != torch.float32:
            param.data = param.data.float()  # AdamW on bf16 weights would drop small updates
        if train and not lora:
            full.append(name)
    return full


def build_optimizer(model: nn.Module, recipe: TrainRecipe) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters, one group per LR: LoRA and modules (``lr``), SAM 2 (``sam2_lr``) and
    SAM 2's image encoder (``sam2_encoder_lr``)."""
    groups: dict[str, list[nn.Parameter]] = {"lora": [], "modules": [], "sam2": [], "sam2_encoder": []}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = "lora" if "lora_" in name else "sam2_encoder" if name.startswith(SAM2_ENCODER_PREFIX) \
                else "sam2" if name.startswith("sam2.") else "modules"
            groups[key].append(param)
    lrs = {"lora": recipe.lr, "modules": recipe.lr, "sam2": recipe.sam2_lr,
           "sam2_encoder": recipe.sam2_encoder_lr_or_default}
    params = [{"params": p, "lr": lrs[k], "name": k} for k, p in groups.items() if p]
    # fused: one kernel per group for the whole update, 3.5x faster than foreach on the toy's 9.7 M parameters on
    # 2 CPU cores (8.6 against 30 ms a step); the update is the same AdamW up to float rounding
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR multiplier at optimizer step ``step`` (0-based): linear 0 -> 1 over ``warmup_steps``, then cosine 1 -> 0 at
    ``total_steps`` (HF's schedule). Past ``total_steps`` it rises again, as HF's does; the trainer stops there."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
