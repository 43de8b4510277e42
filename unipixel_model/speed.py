"""Speed levers, all off by default: each one is measured by ``benchmarks/gpu.sh`` before it may
become a default, and none may change the golden-case parity while it is off.

* ``sam2_bf16``: SAM 2 (frame encoding and every tracking step) under bfloat16 autocast, as the
  official fork runs SAM 2 in bf16 weights. The masks differ slightly from float32 (spec §8.10);
  the feature cache then holds bf16 features (half the memory per frame).
* ``compile_sam2``: ``torch.compile`` of SAM 2's image encoder (static shapes) and memory
  attention (dynamic: the number of memories grows over the first frames), the anchor of the
  ``sam2`` package's ``vos_optimized`` predictor. The first calls compile (tens of seconds).
* ``attn=<name>``: the ViT and LLM attention kernel (``sdpa``, the default already; ``eager``;
  ``flash_attention_2`` when the ``flash_attn`` package is installed).
* ``gpu_frames``: SAM 2 input frames are moved to the device as uint8 and resized/normalised
  there instead of on the CPU (frames are still decoded once on the CPU when a session opens).

Typical use::

    levers = SpeedLevers.parse("sam2_bf16,compile_sam2")
    apply_levers(model, levers)      # in place; call once, right after loading
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import torch

_FLAGS = ("sam2_bf16", "compile_sam2", "gpu_frames")


@dataclass(frozen=True)
class SpeedLevers:
    """Which levers are on (see the module docstring)."""

    sam2_bf16: bool = False
    compile_sam2: bool = False
    gpu_frames: bool = False
    attn: str | None = None  # None keeps the loaded model's kernel (sdpa)

    @classmethod
    def parse(cls, text: str) -> "SpeedLevers":
        """``"sam2_bf16,compile_sam2,gpu_frames,attn=eager"`` (any subset; ``""`` or ``"none"``: all off).

        Raises:
            ValueError: naming an unknown lever and the known ones.
        """
        values: dict = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            if item == "none":
                continue
            key, sep, value = item.partition("=")
            if key == "attn" and sep and value:
                values["attn"] = value
            elif key in _FLAGS and not sep:
                values[key] = True
            else:
                raise ValueError(f"unknown speed lever {item!r}; use {', '.join(_FLAGS)} or attn=<name>")
        return cls(**values)

    @property
    def label(self) -> str:
        """The levers that are on, comma-separated (``baseline`` when none)."""
        on = [f.name for f in fields(self) if f.name in _FLAGS and getattr(self, f.name)]
        on += [f"attn={self.attn}"] if self.attn else []
        return ",".join(on) or "baseline"


def apply_levers(model, levers: SpeedLevers) -> None:
    """Turn ``levers`` on for ``model`` (a :class:`~unipixel_model.modeling.UniPixelModel`), in place.

    Wraps instance methods of ``model.sam2`` (state-dict keys and adapters are untouched), so
    apply once per loaded model.

    Raises:
        ValueError: when ``attn`` names a kernel transformers cannot use here.
    """
    sam2 = model.sam2
    device_type = next(sam2.parameters()).device.type
    if levers.sam2_bf16:
        sam2.track_step = _under_autocast(sam2.track_step, device_type)
        sam2.forward_image = _under_autocast(sam2.forward_image, device_type)
    if levers.compile_sam2:
        sam2.image_encoder.forward = torch.compile(sam2.image_encoder.forward, dynamic=False)
        sam2.memory_attention.forward = torch.compile(sam2.memory_attention.forward, dynamic=True)
    if levers.gpu_frames:
        sam2.frames_on_device = True  # read by SAM2FeatureCache
    if levers.attn:
        try:
            model.model.set_attn_implementation(levers.attn)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"attention kernel {levers.attn!r} is not usable here: {exc}") from exc


def clear_levers(model, attn: str = "sdpa") -> None:
    """Undo :func:`apply_levers` (compiled code caches stay; the original methods serve again)."""
    sam2 = model.sam2
    for owner, name in ((sam2, "track_step"), (sam2, "forward_image"), (sam2.image_encoder, "forward"),
                        (sam2.memory_attention, "forward"), (sam2, "frames_on_device")):
        owner.__dict__.pop(name, None)
    if model.model.config._attn_implementation != attn:
        model.model.set_attn_implementation(attn)


def _under_autocast(fn, device_type: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return fn(*args, **kwargs)
    return wrapper
