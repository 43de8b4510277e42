"""UniPixel configuration: the official ``config.json`` fields plus presets.

A released checkpoint's ``config.json`` is a transformers-4.53 ``Qwen2_5_VLConfig`` (flat text
fields, ``rope_scaling`` with ``mrope_section``) extended with UniPixel's fields
(``ref_token_id``, ``sam2_config``, ...). :class:`UniPixelConfig` keeps the UniPixel fields typed
and turns the Qwen part into a transformers-5 config with explicit ``rope_parameters``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unipixel_model import _tv_shim  # noqa: F401  (must precede transformers)
from transformers import Qwen2_5_VLConfig

from unipixel_model.sam2_side import check_sam2_image_size

CONFIG_FILE = "config.json"
MODEL_TYPE = "pixel_qwen2_5_vl"



# Text-model fields that 4.53 stores at the top level of config.json.
_TEXT_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "attention_dropout", "initializer_range", "use_sliding_window", "sliding_window",
    "max_window_layers", "bos_token_id", "eos_token_id", "pad_token_id",
)
_VISION_FIELDS = (
    "depth", "hidden_size", "intermediate_size", "num_heads", "out_hidden_size", "patch_size",
    "spatial_merge_size", "temporal_patch_size", "window_size", "fullatt_block_indexes",
    "tokens_per_second", "in_channels", "hidden_act", "initializer_range",
)


@dataclass
class UniPixelConfig:
    """Typed view of a UniPixel ``config.json``.

    Attributes:
        qwen: the transformers-5 ``Qwen2_5_VLConfig`` for the ViT + LLM.
        ref_token_id / seg_token_id / mem_token_id: ids of ``<|ref|>``, ``<|seg|>``, ``<|mem|>``.
        sam2_config: hydra name of the SAM 2 yaml (``configs/sam2.1_hiera_b+`` for the releases).
        sam2_image_size: SAM 2 input side in pixels (768 for the releases).
        sam2_hidden_tokens: SAM 2 prompt tokens produced per ``<|seg|>`` (2).
        sam2_enable_decoder: whether ``<|seg|>`` states are decoded into masks.
        sam2_inference_mode: gate low-res logits of NO_OBJ frames (on for inference).
        sample_objects: at most this many ``<|seg|>`` per sample go to SAM 2 in training.
        llm_min_pixels / llm_max_pixels: per-frame pixel budget of the frames the LLM reads (the max
            scales by 16 / frames); the official 128 and 256 merged patches unless a checkpoint was
            trained with another (the ``toy`` model reads smaller frames).
        toy_text_grounding: width of the toy's text-grounding head (:mod:`unipixel_model.toy_grounding`); 0, the
            released models' value, builds none and is not written to ``config.json``.
        extra: every other field of the file, kept so that saving round-trips.
    """

    qwen: Qwen2_5_VLConfig
    ref_token_id: int
    seg_token_id: int
    mem_token_id: int
    sam2_config: str = "configs/sam2.1_hiera_b+"
    sam2_image_size: int = 768
    sam2_hidden_tokens: int = 2
    sam2_enable_decoder: bool = True
    sam2_batch_mode: bool = False
    sam2_inference_mode: bool = True
    sample_objects: int = 5
    llm_min_pixels: int = 128 * 28 * 28
    llm_max_pixels: int = 256 * 28 * 28
    toy_text_grounding: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = {"ref_token_id": self.ref_token_id, "seg_token_id": self.seg_token_id,
               "mem_token_id": self.mem_token_id}
        vocab = self.qwen.text_config.vocab_size
        for name, value in ids.items():
            if not isinstance(value, int) or not 0 <= value < vocab:
                raise ValueError(f"{name} must be a token id in [0, {vocab}), got {value!r}")
        if len(set(ids.values())) != 3:
            raise ValueError(f"ref/seg/mem token ids must differ, got {ids}")
        check_sam2_image_size(self.sam2_image_size)
        if self.sam2_hidden_tokens < 1:
            raise ValueError(f"sam2_hidden_tokens must be >= 1, got {self.sam2_hidden_tokens}")
        if self.toy_text_grounding < 0:
            raise ValueError(f"toy_text_grounding must be >= 0 (0: no head), got {self.toy_text_grounding}")
        if not 28 * 28 <= self.llm_min_pixels <= self.llm_max_pixels:
            raise ValueError(f"need 784 <= llm_min_pixels <= llm_max_pixels, got {self.llm_min_pixels}, "
                             f"{self.llm_max_pixels}")

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def llm_hidden_size(self) -> int:
        """D: the LLM hidden size (2048 for 3B, 3584 for 7B)."""
        return self.qwen.text_config.hidden_size

    @property
    def merger_input_size(self) -> int:
        """M: the merger MLP input width (ViT hidden x merge_size**2, 5120 for the releases)."""
        vision = self.qwen.vision_config
        return vision.hidden_size * vision.spatial_merge_size ** 2

    @property
    def tie_word_embeddings(self) -> bool:
        return bool(self.qwen.tie_word_embeddings)

    # ---- (de)serialisation ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "UniPixelConfig":
        """Build from the parsed ``config.json`` of a checkpoint (4.53 or 5.x layout)."""
        raw = copy.deepcopy(raw)
        missing = [k for k in ("ref_token_id", "mem_token_id", "vision_config") if k not in raw]
        if missing:
            raise ValueError(f"config.json is not a UniPixel config: missing {missing}")
        seg_id = raw.get("seg_token_id", raw["ref_token_id"] + 1)  # added right after <|ref|>
        qwen = _qwen_config_from_dict(raw)
        known = {f for f in cls.__dataclass_fields__ if f not in ("qwen", "extra")}
        values = {k: raw[k] for k in known if k in raw and raw[k] is not None}
        values["seg_token_id"] = seg_id
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(qwen=qwen, extra=extra, **values)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "UniPixelConfig":
        """Read ``<path>/config.json``."""
        file = Path(path) / CONFIG_FILE
        if not file.is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {path}: is this a UniPixel checkpoint directory?")
        return cls.from_dict(json.loads(file.read_text()))

    def to_dict(self) -> dict[str, Any]:
        """The ``config.json`` content, in the official (4.53, flat text fields) layout."""
        text = self.qwen.text_config
        out = dict(self.extra)
        out.update({k: getattr(text, k) for k in _TEXT_FIELDS if getattr(text, k, None) is not None})
        rope = dict(text.rope_parameters or {})
        out["rope_theta"] = rope.pop("rope_theta", out.get("rope_theta", 1e6))
        out["rope_scaling"] = {"type": "default", "rope_type": "default", **rope}
        out["vision_config"] = {k: getattr(self.qwen.vision_config, k) for k in _VISION_FIELDS}
        out["vision_config"]["model_type"] = "qwen2_5_vl"
        for key in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"):
            out[key] = getattr(self.qwen, key)
        out["tie_word_embeddings"] = self.tie_word_embeddings
        out["model_type"] = MODEL_TYPE
        out["architectures"] = ["PixelQwen2_5_VLForConditionalGeneration"]
        for name in self.__dataclass_fields__:
            if name not in ("qwen", "extra") and (name != "toy_text_grounding" or self.toy_text_grounding):
                out[name] = getattr(self, name)
        return out

    def save_pretrained(self, path: str | Path) -> None:
        """Write ``<path>/config.json``."""
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / CONFIG_FILE).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _qwen_config_from_dict(raw: dict[str, Any]) -> Qwen2_5_VLConfig:
    """Turn a 4.53-style config dict into a transformers-5 ``Qwen2_5_VLConfig``."""
    text_src = dict(raw)
    text_src.update({k: v for k, v in (raw.get("text_config") or {}).items() if v is not None})
    text = {k: text_src[k] for k in _TEXT_FIELDS if k in text_src}
    rope = dict(text_src.get("rope_parameters") or text_src.get("rope_scaling") or {})
    rope.pop("type", None)
    rope["rope_type"] = "default"
    rope.setdefault("rope_theta", text.pop("rope_theta", 1e6))
    text.pop("rope_theta", None)
    if "mrope_section" not in rope:
        raise ValueError("config.json has no rope_scaling.mrope_section; Qwen2.5-VL needs it")
    text["rope_parameters"] = rope
    text["tie_word_embeddings"] = bool(raw.get("tie_word_embeddings", False))
    vision_src = raw["vision_config"]
    vision = {k: vision_src[k] for k in _VISION_FIELDS if k in vision_src}
    if "in_channels" not in vision and "in_chans" in vision_src:
        vision["in_channels"] = vision_src["in_chans"]
    ids = {k: raw[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                "vision_end_token_id") if k in raw}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision,
                              tie_word_embeddings=text["tie_word_embeddings"], **ids)
    config._attn_implementation = "sdpa"
    return config
