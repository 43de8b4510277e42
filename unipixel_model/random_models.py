"""``random-3b`` / ``random-7b``: the released architectures with random weights, for timings.

A model reference ``random-3b`` (or ``random-7b``) is accepted wherever a checkpoint is
(``UNIPIXEL_MODEL``, ``--model`` of the CLI and the benchmarks, a recipe's ``base_model``). It
builds the architecture of ``PolyU-ChenLab/UniPixel-3B``/``-7B`` (:mod:`unipixel_model.presets`)
with random weights directly on the target device and dtype (bfloat16 on CUDA), without writing
or reading any weights, and pairs it with a byte-level tokenizer whose special tokens carry the
real ids (``<|video_pad|>`` 151656, ``<|ref|>``/``<|seg|>``/``<|mem|>`` 151665-151667). The
masks and answers are noise: these models give **timings and memory, not masks**. One weight is
not left to chance: SAM 2's object score is biased so the object is visible on every frame, as
a real object is (a click the model "does not see" would take a shorter path).

A shrink override builds a smaller copy of the same layout, for CI on a CPU::

    random-3b:layers=2,depth=2                    # 2 LLM layers, 2 ViT blocks (full widths)
    random-3b:layers=1,depth=1,hidden=128,sam2=tiny,sam2_size=256,llm_side=112   # seconds on a CPU

Keys: ``layers`` (LLM decoder layers), ``depth`` (ViT blocks; full attention kept on the
released blocks below it, else on the last), ``hidden`` (LLM width, a multiple of 128: head size
and M-RoPE sections stay), ``sam2`` (``b+``, the released Hiera, or ``tiny``, the repo's 5-block
one), ``sam2_size`` (SAM 2 input side, a multiple of 16), ``llm_side`` (each frame the LLM reads
is about ``llm_side`` x ``llm_side`` pixels, instead of 128-256 merged patches; a multiple of 28)
and ``seed`` (weights, default 0).

:func:`materialize` writes only ``config.json`` (marked :data:`RANDOM_WEIGHTS_FIELD`) and the
tokenizer, about 5 MB, into a cache folder; :func:`unipixel_model.loading.from_pretrained` sees
the mark and builds the weights in place of loading them.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from unipixel_model.config import UniPixelConfig

PREFIX = "random-"
RANDOM_WEIGHTS_FIELD = "unipixel_random_weights"  # config.json: {"seed": int} when weights are random
SAM2_SHRINKS = {"b+": "configs/sam2.1_hiera_b+", "tiny": "configs/sam2.1_hiera_tiny_unipixel"}
_INT_KEYS = ("layers", "depth", "hidden", "sam2_size", "llm_side", "seed")
OBJECT_SCORE_BIAS = 20.0  # added to SAM 2's object-score logit: every frame shows the object
_HEAD_DIM = 128  # Qwen2.5 LLM head size at 3B and 7B; mrope_section [16, 24, 24] sums to half of it


def is_random_reference(text: str) -> bool:
    """Whether ``text`` names a random model (``random-3b``, ``random-7b:layers=2`` ...)."""
    return str(text).startswith(PREFIX)


def parse_reference(text: str) -> tuple[str, dict[str, int | str]]:
    """``random-3b:layers=2,depth=2`` -> (``3b``, {"layers": 2, "depth": 2}).

    Raises:
        ValueError: for an unknown size or key, or a value that is not a positive integer / known
            SAM 2 name, naming the accepted ones.
    """
    if not is_random_reference(text):
        raise ValueError(f"{text!r} is not a random model reference (random-3b, random-7b[:key=value,...])")
    name, _, spec = text[len(PREFIX):].partition(":")
    if name not in ("3b", "7b"):
        raise ValueError(f"unknown random model {text!r}; use random-3b or random-7b")
    shrink: dict[str, int | str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in _INT_KEYS + ("sam2",):
            raise ValueError(f"bad shrink {item!r} in {text!r}; keys: {', '.join(_INT_KEYS + ('sam2',))}")
        if key == "sam2":
            if value not in SAM2_SHRINKS:
                raise ValueError(f"sam2={value!r} in {text!r}: choose one of {sorted(SAM2_SHRINKS)}")
            shrink[key] = value
            continue
        if not re.fullmatch(r"\d+", value) or (int(value) < 1 and key != "seed"):
            raise ValueError(f"{key}={value!r} in {text!r} must be a positive integer")
        shrink[key] = int(value)
    if "hidden" in shrink and shrink["hidden"] % _HEAD_DIM:
        raise ValueError(f"hidden={shrink['hidden']} in {text!r} must be a multiple of {_HEAD_DIM} (the head size)")
    if "sam2_size" in shrink and shrink["sam2_size"] % 16:
        raise ValueError(f"sam2_size={shrink['sam2_size']} in {text!r} must be a multiple of 16")
    if "llm_side" in shrink and shrink["llm_side"] % 28:
        raise ValueError(f"llm_side={shrink['llm_side']} in {text!r} must be a multiple of 28 (one merged patch)")
    return name, shrink


def random_config(text: str) -> UniPixelConfig:
    """The :class:`UniPixelConfig` a random reference builds (shrinks applied, marked random)."""
    from unipixel_model.presets import PRESETS

    name, shrink = parse_reference(text)
    raw = copy.deepcopy(PRESETS[name])
    vision = raw["vision_config"]
    if "layers" in shrink:
        raw["num_hidden_layers"] = shrink["layers"]
    if "depth" in shrink:
        depth = int(shrink["depth"])
        vision["depth"] = depth
        vision["fullatt_block_indexes"] = [i for i in vision["fullatt_block_indexes"] if i < depth] or [depth - 1]
    if "hidden" in shrink:
        hidden = int(shrink["hidden"])
        heads = hidden // _HEAD_DIM
        group = raw["num_attention_heads"] // raw["num_key_value_heads"]  # query heads per KV head
        raw["intermediate_size"] = round(raw["intermediate_size"] * hidden / raw["hidden_size"])
        raw.update(hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=max(1, heads // group))
        vision["out_hidden_size"] = hidden
    if "sam2" in shrink:
        raw["sam2_config"] = SAM2_SHRINKS[str(shrink["sam2"])]
    if "sam2_size" in shrink:
        raw["sam2_image_size"] = shrink["sam2_size"]
    if "llm_side" in shrink:
        raw["llm_min_pixels"] = raw["llm_max_pixels"] = int(shrink["llm_side"]) ** 2
    raw["sam2_inference_mode"] = True
    raw[RANDOM_WEIGHTS_FIELD] = {"seed": int(shrink.get("seed", 0)), "reference": text}
    return UniPixelConfig.from_dict(raw)


def canonical_name(text: str) -> str:
    """A folder name for a reference: ``random-3b`` or ``random-3b_depth2_layers2`` (keys sorted)."""
    name, shrink = parse_reference(text)
    return PREFIX + name + "".join(f"_{k}{shrink[k]}" for k in sorted(shrink)).replace("+", "plus")


def materialize(text: str, cache_dir: Path) -> Path:
    """The folder holding ``config.json`` and the real-id tokenizer of ``text`` (no weights).

    The tokenizer is written once under ``cache_dir``; ``config.json`` is rewritten whenever the
    presets changed. Both are written to a temporary name and renamed, so concurrent processes
    never read half a file.
    """
    import json

    from unipixel_model.tokenization import QWEN_SPECIAL_START, build_byte_tokenizer

    config_text = json.dumps(random_config(text).to_dict(), indent=2, sort_keys=True) + "\n"
    target = Path(cache_dir) / canonical_name(text)
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "tokenizer.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=target))
        try:
            build_byte_tokenizer(QWEN_SPECIAL_START).save_pretrained(str(tmp))
            for file in sorted(tmp.iterdir(), key=lambda f: f.name == "tokenizer.json"):  # tokenizer.json last
                os.replace(file, target / file.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    config_file = target / "config.json"
    if not config_file.is_file() or config_file.read_text() != config_text:
        tmp_file = target / f".config-{os.getpid()}.json"
        tmp_file.write_text(config_text)
        os.replace(tmp_file, config_file)
    return target


def random_seed(config: UniPixelConfig) -> int | None:
    """The weight seed when ``config`` is marked random, else None (a real checkpoint)."""
    mark = config.extra.get(RANDOM_WEIGHTS_FIELD)
    return int(mark.get("seed", 0)) if isinstance(mark, dict) else None


def build_random_model(config: UniPixelConfig, search_dirs: tuple[Path, ...], device: torch.device,
                       dtype: torch.dtype):
    """Build a :class:`UniPixelModel` with random weights straight on ``device`` in ``dtype``.

    Parameters are allocated and initialised on the device (no CPU copy of the ViT/LLM ever
    exists); SAM 2, which the ``sam2`` package builds on the CPU, is moved there afterwards.
    The UniPixel heads get the official fresh-run initialisation.
    """
    from unipixel_model.loading import build_model
    from unipixel_model.presets import init_unipixel_heads

    torch.manual_seed(random_seed(config) or 0)
    with torch.device(device):
        model = build_model(config, search_dirs, dtype=dtype, init_weights=True)
    model.to(device)
    init_unipixel_heads(model)
    _see_every_object(model.sam2)
    return model


@torch.no_grad()
def _see_every_object(sam2) -> None:
    """Bias SAM 2's object-score head so that the object is visible on every frame.

    With random weights the object score is positive about half of the time; a click the model
    "does not see" is skipped by the backend and a NO_OBJ frame takes shortcuts (no mask pixels
    to render), so the timings would depend on the seed. A real object is visible: time that.
    """
    head = sam2.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    last.bias.add_(OBJECT_SCORE_BIAS)
