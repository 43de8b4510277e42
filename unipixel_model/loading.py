"""Load UniPixel checkpoints in the official layout (and save in it).

The official trainer saves with transformers 4.53, which writes the *legacy* Qwen keys
(``visual.*``, ``model.*``); SAM 2's layer scale is saved as ``...fuser.layers.N.weight`` where the
``sam2`` package calls it ``gamma``; a tied ``lm_head`` may be absent. This module maps between
that layout and :class:`~unipixel_model.modeling.UniPixelModel`'s names in both directions,
checks that every tensor is present with the right shape, and names the ones that are not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from unipixel_model.config import UniPixelConfig
from unipixel_model.errors import CheckpointError

logger = logging.getLogger(__name__)

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
_GAMMA_CKPT = re.compile(r"^(sam2\.memory_encoder\.fuser\.layers\.\d+)\.weight$")
_GAMMA_OURS = re.compile(r"^(sam2\.memory_encoder\.fuser\.layers\.\d+)\.gamma$")


def checkpoint_key_to_module_key(key: str) -> str:
    """Official checkpoint key -> :class:`UniPixelModel` state-dict key."""
    if key.startswith("visual."):
        return "model." + key
    if key.startswith("model.language_model.") or key.startswith("model.visual."):
        return key  # already the transformers-5 layout
    if key.startswith("model."):
        return "model.language_model." + key[len("model."):]
    match = _GAMMA_CKPT.match(key)
    if match:
        return match.group(1) + ".gamma"
    return key


def module_key_to_checkpoint_key(key: str) -> str:
    """:class:`UniPixelModel` state-dict key -> official checkpoint key."""
    if key.startswith("model.visual."):
        return key[len("model."):]
    if key.startswith("model.language_model."):
        return "model." + key[len("model.language_model."):]
    match = _GAMMA_OURS.match(key)
    if match:
        return match.group(1) + ".weight"
    return key


def checkpoint_state_keys(model: torch.nn.Module) -> dict[str, torch.Size]:
    """Every tensor the official code saves for ``model``: checkpoint key -> shape.

    A tied ``lm_head.weight`` is left out, as the official save does.
    """
    shapes = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        if key == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        shapes[module_key_to_checkpoint_key(key)] = tensor.shape
    return shapes


def _safetensors_files(path: Path) -> list[Path]:
    index = path / SAFETENSORS_INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [path / name for name in sorted(set(weight_map.values()))]
    if (path / SAFETENSORS_SINGLE).is_file():
        return [path / SAFETENSORS_SINGLE]
    raise CheckpointError(f"{path} holds neither {SAFETENSORS_SINGLE} nor {SAFETENSORS_INDEX}; "
                          "UniPixel checkpoints are saved as safetensors")


def read_checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint, keyed by checkpoint key."""
    tensors: dict[str, torch.Tensor] = {}
    for file in _safetensors_files(path):
        if not file.is_file():
            raise CheckpointError(f"shard {file.name} listed in {SAFETENSORS_INDEX} is missing from {path}")
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    return tensors


def load_checkpoint_weights(model: torch.nn.Module, path: Path) -> None:
    """Copy a checkpoint's tensors into ``model`` (every tensor, Gaussian buffers included).

    Raises:
        CheckpointError: naming the missing, unexpected or mis-shaped tensors.
    """
    expected = checkpoint_state_keys(model)
    found = read_checkpoint_tensors(path)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected) - {"lm_head.weight"})
    wrong = sorted(k for k in set(expected) & set(found) if tuple(found[k].shape) != tuple(expected[k]))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:5])})")
        if wrong:
            parts.append("wrong shape: " + ", ".join(
                f"{k} {tuple(found[k].shape)} != {tuple(expected[k])}" for k in wrong[:5]))
        raise CheckpointError(f"checkpoint {path} does not match the model built from its config.json: "
                              + "; ".join(parts))
    state = {checkpoint_key_to_module_key(k): v for k, v in found.items()
             if k != "lm_head.weight" or not model.config.tie_word_embeddings}
    model.load_state_dict(state, strict=False)  # strictness is checked above, with better messages


def save_checkpoint(model: torch.nn.Module, path: Path, max_shard_bytes: int | None = None) -> None:
    """Write ``config.json`` and safetensors in the official layout (sharded above ``max_shard_bytes``)."""
    from unipixel_model.random_models import RANDOM_WEIGHTS_FIELD

    path.mkdir(parents=True, exist_ok=True)
    # The weights are saved: a model built from a ``random-...`` reference loses its random mark.
    extra = {k: v for k, v in model.config.extra.items() if k != RANDOM_WEIGHTS_FIELD}
    dataclasses.replace(model.config, extra=extra).save_pretrained(path)
    state = {module_key_to_checkpoint_key(k): v.detach().contiguous()
             for k, v in model.state_dict().items()
             if not (k == "lm_head.weight" and model.config.tie_word_embeddings)}
    if max_shard_bytes is None:
        save_file(state, str(path / SAFETENSORS_SINGLE), metadata={"format": "pt"})
        return
    shards, current, size = [], {}, 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key], size = state[key], size + nbytes
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(path / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(v.numel() * v.element_size() for v in state.values())
    (path / SAFETENSORS_INDEX).write_text(json.dumps({"metadata": {"total_size": total},
                                                      "weight_map": weight_map}, indent=2))


def read_config(path: Path) -> UniPixelConfig:
    """Read a checkpoint's config and force ``sam2_inference_mode`` on (the hub config says false)."""
    config = UniPixelConfig.from_pretrained(path)
    config.sam2_inference_mode = True
    return config


def build_model(config: UniPixelConfig, sam2_search_dirs: tuple[Path, ...] = (), *,
                dtype: torch.dtype = torch.float32, init_weights: bool = True):
    """Construct a :class:`UniPixelModel` from its config.

    Args:
        init_weights: False skips random initialisation (weights are loaded right after), which
            matters at the 3B/7B sizes; buffers that are not saved (rotary tables) are still built.
    """
    from transformers import initialization

    from unipixel_model.modeling import UniPixelModel

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        if init_weights:
            return UniPixelModel(config, sam2_search_dirs)
        with initialization.no_init_weights():
            return UniPixelModel(config, sam2_search_dirs)
    finally:
        torch.set_default_dtype(previous)


TINY_NAME = "tiny"
TOY_NAME = "toy"
TOY_DIR = Path(__file__).parent / "toy"  # shipped: fp16 safetensors, config, tokenizer (README: The toy model)
RANDOM_PREFIX = "random-"  # random-3b / random-7b[:shrink]: see unipixel_model.random_models
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.yaml", "*.model"]


def resolve_checkpoint(name_or_path: str | Path, cache_dir: Path | None = None) -> Path:
    """Turn a checkpoint reference into a local directory.

    Args:
        name_or_path: a local directory; ``toy`` (the small model trained on the synthetic world,
            shipped in ``unipixel_model/toy/``); ``tiny`` (a random tiny model, built once into
            ``cache_dir``); ``random-3b``/``random-7b`` with an optional shrink such as
            ``random-3b:layers=2,depth=2`` (a folder with only ``config.json`` and a tokenizer: the
            weights are built randomly on the device by :func:`from_pretrained`, see
            :mod:`unipixel_model.random_models`); or a hub id such as ``PolyU-ChenLab/UniPixel-3B``
            (downloaded with ``huggingface_hub``, honouring ``HF_HOME``/``HF_HUB_OFFLINE``).
        cache_dir: where ``tiny`` and the random models' folders are written (default
            ``~/.cache/unipixel``).
    Raises:
        FileNotFoundError: for a path that does not exist and is not a hub id.
        ValueError: for a malformed ``random-...`` reference.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if text.startswith(RANDOM_PREFIX):
        from unipixel_model.random_models import materialize

        return materialize(text, cache_dir or Path.home() / ".cache" / "unipixel")
    if text == TOY_NAME:
        if not (TOY_DIR / SAFETENSORS_SINGLE).is_file():
            raise FileNotFoundError(f"the toy checkpoint is not in {TOY_DIR}; restore it (`git checkout -- {TOY_DIR}`) "
                                    f"or train one with `python -m finetune toy --minutes 45 --out {TOY_DIR}` (README: "
                                    "The toy model)")
        return TOY_DIR
    if text == TINY_NAME:
        from unipixel_model.presets import build_tiny_checkpoint

        target = (cache_dir or Path.home() / ".cache" / "unipixel") / "tiny-seed0"
        if not (target / SAFETENSORS_SINGLE).is_file():
            build_tiny_checkpoint(target)
        return target
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download

        logger.info("downloading %s from the Hugging Face hub", text)
        return Path(snapshot_download(repo_id=text, allow_patterns=HUB_ALLOW_PATTERNS))
    raise FileNotFoundError(f"{text!r} is neither a checkpoint directory, 'toy', 'tiny', 'random-3b', 'random-7b', "
                            "nor a hub id like 'PolyU-ChenLab/UniPixel-3B'")


def from_pretrained(name_or_path: str | Path, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None, adapter: str | Path | None = None,
                    cache_dir: Path | None = None, sam2_image_size: int | None = None):
    """Load a full UniPixel checkpoint (official layout), optionally with a LoRA adapter on top.

    Args:
        name_or_path: see :func:`resolve_checkpoint`.
        device: ``cpu``, ``cuda``, ``cuda:1``...
        dtype: weights of the ViT, LLM and heads (default bfloat16 on CUDA, float32 on CPU). SAM 2
            and the ``<|ref|>`` prompt encoder always run in float32: the ``sam2`` package lacks the
            fork's bf16 casts, and 81 M parameters in float32 cost little.
        adapter: a peft adapter directory (see :func:`load_adapter`).
        sam2_image_size: SAM 2's input side in pixels instead of the checkpoint's ``sam2_image_size`` (a positive
            multiple of 16; no SAM 2 weight depends on it): a larger side gives finer masks for more time, e.g. 192
            for the toy, which trained at 128 (README: The toy model). None: the checkpoint's.
    Returns:
        The model in eval mode with ``sam2_inference_mode`` on. A folder made for a ``random-...``
        reference (its ``config.json`` is marked random) gets random weights built on ``device``.
    """
    from unipixel_model.random_models import build_random_model, random_seed

    path = resolve_checkpoint(name_or_path, cache_dir)
    config = read_config(path)
    if sam2_image_size is not None:
        config = dataclasses.replace(config, sam2_image_size=sam2_image_size)  # validated again by __post_init__
    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if random_seed(config) is not None:
        model = build_random_model(config, (path,), device, dtype)
    else:
        model = build_model(config, (path,), dtype=dtype, init_weights=False)
        load_checkpoint_weights(model, path)
    model.sam2.float()
    model.ref_encoder.float()
    model.tem_pe.float()
    if adapter is not None:
        model = load_adapter(model, adapter)
    return model.to(device).eval()


def load_adapter(model, adapter_dir: str | Path):
    """Activate an adapter saved by ``finetune`` (LoRA + trained heads / SAM 2 tensors) on ``model``.

    LoRA layers are injected into the model in place (the returned object is ``model`` itself, so
    sessions keep working), and the base weights are kept: see
    :class:`unipixel_model.adapters.AdapterSwitcher` to switch versions without reloading.
    """
    from unipixel_model.adapters import AdapterSwitcher

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise CheckpointError(f"{adapter_dir} has no adapter_config.json; pass an adapter directory")
    AdapterSwitcher(model).activate(adapter_dir)
    return model
