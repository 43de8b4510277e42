"""Write a trained adapter directory that :class:`unipixel_model.adapters.AdapterSwitcher` can load.

Layout (file names from :mod:`unipixel_model.adapters`):

* ``adapter_config.json`` / ``adapter_model.safetensors``: the LoRA adapter in peft's format;
* ``unipixel_modules.safetensors``: every other trained parameter (heads, SAM 2, embeddings) in full,
  keyed by :class:`UniPixelModel` parameter name;
* ``recipe.yaml``: the :class:`TrainRecipe` of the run.

The directory is written under a temporary name and renamed at the end, so a watcher never sees a
half-written adapter.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from finetune.recipe import TrainRecipe
from unipixel_model.adapters import ADAPTER_WEIGHTS, MODULE_WEIGHTS, PEFT_KEY_PREFIX, RECIPE_FILE


def save_adapter(model: nn.Module, out_dir: str | Path, recipe: TrainRecipe, module_params: list[str],
                 adapter_name: str = "default") -> Path:
    """Save the LoRA adapter ``adapter_name`` of ``model`` plus the named full parameters.

    Args:
        model: a model with LoRA injected in place (``peft.inject_adapter_in_model``).
        out_dir: the adapter directory to create; it must not exist or be empty.
        recipe: written as ``recipe.yaml``.
        module_params: parameter names (as in ``model.named_parameters()``) saved in full.
    Returns:
        ``out_dir``.
    Raises:
        FileExistsError: when ``out_dir`` exists and is not empty.
    """
    from peft import get_peft_model_state_dict

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty; adapters are written to a new directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        config = copy.copy(model.peft_config[adapter_name])
        config.inference_mode = True
        config.save_pretrained(str(tmp))
        lora = get_peft_model_state_dict(model, adapter_name=adapter_name, save_embedding_layers=False)
        save_file({PEFT_KEY_PREFIX + k: _cpu(v) for k, v in lora.items()}, str(tmp / ADAPTER_WEIGHTS),
                  metadata={"format": "pt"})
        params = dict(model.named_parameters())
        missing = [n for n in module_params if n not in params]
        if missing:
            raise KeyError(f"parameters to save are not in the model: {missing[:5]}")
        if module_params:
            save_file({n: _cpu(params[n]) for n in module_params}, str(tmp / MODULE_WEIGHTS),
                      metadata={"format": "pt"})
        (tmp / RECIPE_FILE).write_text(recipe.to_yaml(), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    # safetensors refuses shared storage (a tied lm_head/embed_tokens): always write a fresh copy
    return tensor.detach().to("cpu", copy=True).contiguous()
