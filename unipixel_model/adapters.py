"""Hot-swap fine-tuned adapters on a live :class:`UniPixelModel`, without reloading the base model.

An adapter directory (written by ``finetune``) holds:

* ``adapter_config.json`` + ``adapter_model.safetensors``: a peft LoRA adapter (peft's own format,
  keys prefixed ``base_model.model.``, so ``PeftModel.from_pretrained`` reads it too);
* ``unipixel_modules.safetensors`` (optional): full tensors of the other trained modules (the
  UniPixel heads, SAM 2, embeddings), keyed by :class:`UniPixelModel` parameter names;
* ``recipe.yaml``: how it was trained (not read here).

:class:`AdapterSwitcher` injects LoRA layers into the model *in place* (``peft.inject_adapter_in_model``),
so the object a session holds stays the same ``UniPixelModel`` (``model.sam2``, ``model.prefill``...).
Several adapters can be loaded side by side; switching selects one in every LoRA layer and copies its
module tensors in. The original tensors are copied to the CPU the first time they are overwritten,
and ``activate(None)`` disables LoRA and copies them back, which restores the base model bit for bit.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from unipixel_model import _tv_shim  # noqa: F401  (peft imports transformers, which imports torchvision)
from unipixel_model.errors import CheckpointError

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODULE_WEIGHTS = "unipixel_modules.safetensors"
RECIPE_FILE = "recipe.yaml"
PEFT_KEY_PREFIX = "base_model.model."  # what PeftModel.save_pretrained puts before module names


def lora_layer_names(model: nn.Module) -> list[str]:
    """Qualified names of the modules carrying LoRA layers (peft tuner layers)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [name for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def read_module_weights(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """The adapter's full module tensors (empty when it trained LoRA only)."""
    from safetensors.torch import load_file

    path = adapter_dir / MODULE_WEIGHTS
    return load_file(str(path)) if path.is_file() else {}


class AdapterSwitcher:
    """Switch a live model between its base weights and fine-tuned adapters.

    Not thread-safe with respect to inference: callers serialise ``activate`` with model use (the
    backend's GPU semaphore). ``activate`` itself holds a lock. Sessions opened before a switch keep
    SAM 2 and ViT features computed with the previous weights (their caches): open new sessions
    after switching.

    Args:
        model: the :class:`UniPixelModel` sessions use (modified in place).
        max_loaded: LoRA adapters kept injected; the least recently used inactive one is deleted.
    """

    def __init__(self, model: nn.Module, max_loaded: int = 4) -> None:
        if max_loaded < 1:
            raise ValueError(f"max_loaded must be >= 1, got {max_loaded}")
        self.model, self.max_loaded = model, max_loaded
        self._loaded: OrderedDict[tuple, str] = OrderedDict()  # (dir, mtimes) -> peft adapter name
        self._originals: dict[str, torch.Tensor] = {}  # parameter name -> CPU copy of the base tensor
        self._active: str | None = None
        self._active_name: str | None = None  # peft name of the active adapter
        self._counter = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> str | None:
        """The active adapter directory (as given to :meth:`activate`, resolved), or None for the base."""
        return self._active

    def activate(self, adapter_dir: str | Path | None) -> None:
        """Make ``adapter_dir`` the live adapter; None restores the base model exactly.

        Raises:
            CheckpointError: when the directory lacks the adapter files, or its tensors do not fit
                the model (nothing is changed then).
        """
        with self._lock:
            if adapter_dir is None:
                self._restore_originals()
                self._set_lora(None)
                self._active = self._active_name = None
                return
            path = Path(adapter_dir).resolve()
            modules = self._check_modules(path, read_module_weights(path))
            name = self._ensure_lora(path)
            self._restore_originals()
            self._copy_modules(modules)
            self._set_lora(name)
            self._active, self._active_name = str(path), name
            self._evict()
            logger.info("adapter %s active (%d LoRA layers, %d module tensors)", path,
                        len(lora_layer_names(self.model)), len(modules))

    # ---- LoRA ----------------------------------------------------------------------------
    def _ensure_lora(self, path: Path) -> str:
        for required in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            if not (path / required).is_file():
                raise CheckpointError(f"{path} has no {required}; pass a directory written by finetune")
        key = (str(path), *((path / f).stat().st_mtime_ns for f in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)))
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return self._loaded[key]
        self._counter += 1
        name = f"adapter_{self._counter}"
        self._inject(path, name)
        self._loaded[key] = name
        return name

    def _evict(self) -> None:
        """Delete least recently used adapters beyond ``max_loaded`` (never the active one)."""
        while len(self._loaded) > self.max_loaded:
            key = next(k for k, n in self._loaded.items() if n != self._active_name)
            self._delete(self._loaded.pop(key))

    def _inject(self, path: Path, name: str) -> None:
        from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
        from safetensors.torch import load_file

        config = LoraConfig.from_pretrained(str(path))
        if isinstance(config.target_modules, str):  # peft full-matches a regex against module names
            hits = [n for n, _ in self.model.named_modules() if re.fullmatch(config.target_modules, n)]
            if any(n.startswith("sam2.") for n in hits):
                raise CheckpointError(f"{path}: its LoRA target regex matches SAM 2 modules (e.g. "
                                      f"{[n for n in hits if n.startswith('sam2.')][:2]}); use an anchored regex")
        weights = {k.removeprefix(PEFT_KEY_PREFIX): v for k, v in load_file(str(path / ADAPTER_WEIGHTS)).items()}
        flags = {p: p.requires_grad for p in self.model.parameters()}  # peft freezes base params; undo that
        with warnings.catch_warnings():  # several adapters side by side is the point here
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            inject_adapter_in_model(config, self.model, adapter_name=name)
        for param, flag in flags.items():
            param.requires_grad_(flag)
        wrapped = lora_layer_names(self.model)
        if any(n.startswith("sam2.") for n in wrapped):
            self._discard(name)
            raise CheckpointError(f"{path}: its LoRA targets wrap SAM 2 modules; use an anchored target regex")
        result = set_peft_model_state_dict(self.model, weights, adapter_name=name)
        unexpected = getattr(result, "unexpected_keys", [])
        missing = [k for k in getattr(result, "missing_keys", []) if f".{name}." in k and "lora_" in k]
        if unexpected or missing:
            self._discard(name)
            raise CheckpointError(f"{path}: LoRA weights do not fit the model: {len(unexpected)} unexpected "
                                  f"(e.g. {unexpected[:3]}), {len(missing)} missing (e.g. {missing[:3]})")

    def _discard(self, name: str) -> None:
        """Undo a failed injection: delete it and re-select the adapter that was live before."""
        self._delete(name)
        self._set_lora(self._active_name)

    def _delete(self, name: str) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self.model.modules():
            if isinstance(module, BaseTunerLayer):
                module.delete_adapter(name)  # a no-op on layers without it
        getattr(self.model, "peft_config", {}).pop(name, None)

    def _set_lora(self, name: str | None) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self.model.modules():
            if isinstance(module, BaseTunerLayer):
                if name is None:
                    module.enable_adapters(False)
                else:
                    module.enable_adapters(True)
                    module.set_adapter(name)

    # ---- full module tensors -------------------------------------------------------------
    def _params(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers by their un-wrapped names (``.base_layer`` dropped)."""
        named = dict(self.model.named_parameters())
        named.update(dict(self.model.named_buffers()))
        return {k.replace(".base_layer", ""): v for k, v in named.items()}

    def _check_modules(self, path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        params = self._params()
        unknown = sorted(set(tensors) - set(params))
        wrong = [f"{k} {tuple(v.shape)} != {tuple(params[k].shape)}" for k, v in tensors.items()
                 if k in params and v.shape != params[k].shape]
        if unknown or wrong:
            raise CheckpointError(f"{path / MODULE_WEIGHTS} does not fit the model: {len(unknown)} unknown "
                                  f"tensors (e.g. {unknown[:3]}), wrong shapes: {wrong[:3]}")
        return tensors

    @torch.no_grad()
    def _copy_modules(self, tensors: dict[str, torch.Tensor]) -> None:
        params = self._params()
        for key, value in tensors.items():
            target = params[key]
            if key not in self._originals:
                self._originals[key] = target.detach().to("cpu", copy=True)
            target.copy_(value)

    @torch.no_grad()
    def _restore_originals(self) -> None:
        params = self._params()
        for key, original in self._originals.items():
            params[key].copy_(original)
