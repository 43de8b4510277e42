"""The fine-tuning recipe: a validated dataclass and the YAML files of ``finetune/configs``.

Defaults are UniPixel's stage-3 recipe (spec §5.1): LoRA r=128, α=256, dropout 0.1 on the anchored
attention targets; base/LoRA LR 2e-5, SAM 2 LR 5e-6; cosine schedule with 3 % warm-up; weight
decay 0; 8 frames per video; bf16 on CUDA. ``load_recipe("3b")`` reads ``finetune/configs/3b.yaml``;
unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from unipixel_model.finetune_targets import LORA_TARGET_REGEX
from unipixel_model.processor import BASE_MAX_PIXELS, MIN_PIXELS
from unipixel_model.sam2_side import check_sam2_image_size

CONFIG_DIR = Path(__file__).parent / "configs"
# Where a simulated correction click lands: "uniform", any pixel of the larger error (leak or miss), as SAM 2's
# trainer samples them; "center", deep inside the largest piece of it, where SAM 2's evaluation and an annotator
# click (finetune.world.sampling.correction_click).
CORRECTION_POINTS = ("uniform", "center")


class RecipeError(ValueError):
    """A recipe has an unknown key or an invalid value."""


@dataclass
class TrainRecipe:
    """Everything that defines a fine-tuning run (YAML keys = field names).

    Attributes:
        name: label stored with the adapter.
        base_model: checkpoint dir, ``tiny`` or a hub id (``PolyU-ChenLab/UniPixel-3B``).
        lora_r / lora_alpha / lora_dropout: LoRA rank, scale numerator and dropout (bias none).
        lora_target_regex: anchored regex of adapted ``nn.Linear`` names (never SAM 2's).
        lr: LR of LoRA, the UniPixel heads and embeddings; sam2_lr: LR of every ``sam2.*`` parameter
            but the image encoder's, which uses ``sam2_encoder_lr`` (null: ``sam2_lr``), as the official
            trainer separates ``sam2_enc_lr`` from ``sam2_dec_lr``; ``sam2_encoder_lr: 0`` freezes the encoder (no
            gradient graph through it, not saved in the adapter).
        weight_decay: AdamW weight decay (0 in the official recipe).
        warmup_ratio: share of optimizer steps with linear warm-up, then cosine decay to 0.
        grad_accum: samples per optimizer step per process (batch size 1 per process).
        epochs: passes over the samples; max_steps: when set, overrides ``epochs``.
        max_grad_norm: global gradient-norm clip (0 disables).
        train_heads: train ``seg_head``, ``ref_proj*``, ``tem_*``, ``ref_encoder``, ``msk_proj``.
        train_sam2: train all of SAM 2 (Hiera included) at ``sam2_lr``; otherwise it is frozen and in
            eval mode, and the mask loss still trains the LLM/``seg_head`` through it.
        train_embeddings: train ``embed_tokens``/``lm_head`` (the official stage 3 does; off by
            default because it makes the adapter as large as the embedding matrix).
        train_llm_on_prompts: ``mem`` samples (clicks, boxes, masks, box tracks: the fixed ``[id] <|seg|>``
            answer) also train the LLM and everything before it, as in the official stage 3. False: they train SAM 2
            and the seg head alone (no gradient into the LLM's LoRA; their LM loss is still reported), so a project
            without text queries or descriptions cannot change how the model answers text.
        box_pairwise_weight: weight of BoxInst's pairwise colour term (``finetune.losses.box_pairwise_loss``) next to
            the projection term in the mask loss of box-only tracks; 0: the projection alone, which lets a mask fill
            the object's box.
        correction_point: where the simulated correction clicks of ``corrections`` samples land: ``uniform`` (any
            pixel of the larger error, as SAM 2's trainer samples) or ``center`` (deep inside its largest piece, where
            SAM 2's evaluation and an annotator click; the toy's clicks phase).
        full_model: train every parameter and save a whole checkpoint instead of an adapter (no
            LoRA; how the ``toy`` model is trained from random weights).
        full_model_modules: with ``full_model``, train only these top-level modules (``model``, ``lm_head``,
            ``msk_proj``, ``sam2``, ...) and freeze the rest; null: every one. The toy's description phases train
            the LLM alone this way.
        bf16: bf16 autocast (CUDA only; CPU runs stay float32).
        gradient_checkpointing: recompute LLM/ViT layer activations in the backward pass.
        frames_per_video: the LLM pixel budget per frame scales with ``frames_per_video / T``.
        llm_min_pixels / llm_max_pixels: per-frame pixel budget of the LLM frames (before scaling);
            null: the model config's (what the session serves with).
        sam2_image_size: SAM 2's input side in pixels while training (a multiple of 16), written into a
            ``full_model`` checkpoint; null: the checkpoint's own (what it serves with). A fine-tune job with null
            trains at ``UNIPIXEL_SAM2_IMAGE_SIZE`` when that is set (``finetune.jobs.served_recipe``).
        max_tokens: samples whose prompt exceeds this are skipped.
        sample_objects: at most this many ``<|seg|>`` objects per sample go to SAM 2.
        seed: seeds data order, LoRA init, dropout and object subsampling.
        max_new_tokens: generation limit when evaluating.
        holdout_fraction: share of Label Studio tasks kept out of training for evaluation.
        min_improvement: a new adapter is published only if the held-out score improves this much.
        log_every: optimizer steps between progress callbacks (the last step always reports).
    """

    name: str = "custom"
    base_model: str = "PolyU-ChenLab/UniPixel-3B"
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.1
    lora_target_regex: str = LORA_TARGET_REGEX
    lr: float = 2e-5
    sam2_lr: float = 5e-6
    sam2_encoder_lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    grad_accum: int = 4
    epochs: float = 1.0
    max_steps: int | None = None
    max_grad_norm: float = 1.0
    train_heads: bool = True
    train_sam2: bool = True
    train_embeddings: bool = False
    train_llm_on_prompts: bool = True
    box_pairwise_weight: float = 1.0
    correction_point: str = "uniform"
    full_model: bool = False
    full_model_modules: list[str] | None = None
    bf16: bool = True
    gradient_checkpointing: bool = False
    frames_per_video: int = 8
    llm_min_pixels: int | None = MIN_PIXELS
    llm_max_pixels: int | None = BASE_MAX_PIXELS
    sam2_image_size: int | None = None
    max_tokens: int = 40960
    sample_objects: int = 5
    seed: int = 42
    max_new_tokens: int = 128
    holdout_fraction: float = 0.1
    min_improvement: float = 0.0
    log_every: int = 1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            _check_type(field.name, getattr(self, field.name), field.type)
        positive = ("lora_r", "lora_alpha", "lr", "grad_accum", "epochs", "frames_per_video", "llm_min_pixels",
                    "llm_max_pixels", "max_tokens", "sample_objects", "max_new_tokens", "log_every")
        for name in positive:
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise RecipeError(f"{name} must be > 0, got {getattr(self, name)}")
        non_negative = ("sam2_lr", "sam2_encoder_lr", "weight_decay", "max_grad_norm", "box_pairwise_weight")
        if any((getattr(self, name) or 0) < 0 for name in non_negative):
            raise RecipeError(f"{', '.join(non_negative)} must be >= 0, got "
                              f"{', '.join(str(getattr(self, name)) for name in non_negative)}")
        for name in ("lora_dropout", "warmup_ratio", "holdout_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise RecipeError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise RecipeError(f"max_steps must be > 0 or null, got {self.max_steps}")
        if self.sam2_image_size is not None:
            try:
                check_sam2_image_size(self.sam2_image_size)
            except ValueError as err:
                raise RecipeError(f"sam2_image_size: {err}; or null for the checkpoint's own") from None
        if None not in (self.llm_min_pixels, self.llm_max_pixels) and self.llm_min_pixels > self.llm_max_pixels:
            raise RecipeError(f"llm_min_pixels ({self.llm_min_pixels}) exceeds llm_max_pixels ({self.llm_max_pixels})")
        if self.full_model_modules is not None and (not self.full_model or not self.full_model_modules):
            raise RecipeError(f"full_model_modules needs full_model: true and at least one module name, got "
                              f"{self.full_model_modules!r} with full_model {self.full_model}")
        if self.correction_point not in CORRECTION_POINTS:
            raise RecipeError(f"correction_point must be one of {CORRECTION_POINTS}, got {self.correction_point!r}")
        if self.frames_per_video > 16:
            raise RecipeError(f"frames_per_video must be <= 16 (the LLM's frame limit), got {self.frames_per_video}")
        if "sam2" in self.lora_target_regex:
            raise RecipeError("lora_target_regex must not name sam2 modules; SAM 2 is trained fully or frozen")

    @property
    def sam2_encoder_lr_or_default(self) -> float:
        """The image encoder's learning rate: ``sam2_encoder_lr``, or ``sam2_lr`` when it is null."""
        return self.sam2_lr if self.sam2_encoder_lr is None else self.sam2_encoder_lr

    def trains_module(self, name: str) -> bool:
        """A top-level module (``sam2``, ``msk_proj``, ...) of a ``full_model`` run trains: every one, or the listed
        ``full_model_modules``."""
        return self.full_model and (self.full_model_modules is None or name in self.full_model_modules)

    @property
    def trains_sam2(self) -> bool:
        """SAM 2 trains (and runs in train mode): ``train_sam2``, or for ``full_model`` runs, whether
        ``full_model_modules`` leaves it in."""
        return self.trains_module("sam2") if self.full_model else self.train_sam2

    @property
    def trains_sam2_encoder(self) -> bool:
        """SAM 2's image encoder trains: SAM 2 trains and its encoder's learning rate is not 0 (0 freezes it)."""
        return self.trains_sam2 and self.sam2_encoder_lr_or_default > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> "TrainRecipe":
        """Build from a mapping; unknown keys raise :class:`RecipeError` listing the valid ones."""
        if not isinstance(data, dict):
            raise RecipeError(f"{source}: expected a mapping of recipe keys, got {type(data).__name__}")
        types = {f.name: str(f.type) for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise RecipeError(f"{source}: unknown key(s) {unknown}; valid keys are {sorted(types)}")
        data = {k: _yaml_float(v) if types[k].startswith("float") else v for k, v in data.items()}
        try:
            return cls(**data)
        except RecipeError as exc:
            raise RecipeError(f"{source}: {exc}") from exc


def load_recipe(path_or_name: str | Path) -> TrainRecipe:
    """Read a recipe YAML: a path, or the name of a file in ``finetune/configs`` (``tiny``, ``3b``...).

    Raises:
        FileNotFoundError: listing the shipped recipe names.
        RecipeError: on unknown keys or invalid values.
    """
    path = Path(path_or_name)
    if not path.is_file():
        path = CONFIG_DIR / f"{path_or_name}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no recipe {str(path_or_name)!r}: not a file, and not one of {shipped}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return TrainRecipe.from_dict(data, source=str(path))


def _yaml_float(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``2e-5`` as a string; accept it for float fields."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _check_type(name: str, value: Any, annotation: str) -> None:
    """Reject YAML values of the wrong type (``lr: "fast"``, ``grad_accum: 2.5``, ``bf16: "yes"``)."""
    kinds = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
    options = [part.strip() for part in str(annotation).split("|")]
    if value is None and "None" in options:
        return
    if "list[str]" in options and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return
    allowed = tuple(t for option in options for t in kinds.get(option, ()))
    bad_bool = isinstance(value, bool) and bool not in allowed
    if not isinstance(value, allowed) or bad_bool:
        raise RecipeError(f"{name} must be {' or '.join(options)}, got {value!r} ({type(value).__name__})")
