"""Train the ``toy`` model: the ``toy`` preset from random weights, on the synthetic world, with the
project's own stage-3 trainer (``full_model`` recipes: every parameter trained, no LoRA).

Two phases, each a recipe in ``finetune/configs/`` plus the world it draws from:

1. ``toy_stills``: still images, every object of a still clicked or boxed at once (cheap: one SAM 2
   frame per sample), text queries, descriptions — the model learns to see and to read;
2. ``toy_videos``: short windows of videos, one object per sample, clicks/boxes/masks on one frame
   tracked both ways, text queries seeded where the object is — the model learns to track.

Training seeds start at :data:`~finetune.world.evaluate.TRAIN_SEED_START`; evaluation seeds are far
above. The result is written fp16 in the official layout with its tokenizer, plus ``toy_training.json``
(losses per step) and ``loss.png``. ``python -m finetune toy --out DIR`` runs it (about 40 minutes on
2 CPU cores); CI never does: it uses the shipped checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from finetune.recipe import load_recipe
from finetune.world import writers
from finetune.world.evaluate import TRAIN_SEED_START
from finetune.world.samples import SampleMix, clip_samples
from finetune.world.scene import WorldConfig, make_clip

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToyPhase:
    """One phase: a recipe, the clips it renders and how samples are drawn from them."""

    recipe: str
    clips: int
    num_frames: int
    first_seed: int
    mix: SampleMix = SampleMix()


PHASES = (
    # Descriptions weigh more than their share of serving calls: a byte-level LLM learns to spell
    # "a yellow triangle" only from many of them (0.75 a still gave gibberish after 4,000 steps).
    ToyPhase("toy_stills", clips=4000, num_frames=1, first_seed=TRAIN_SEED_START,
             mix=SampleMix(region=1.5, ref=0.5)),
    ToyPhase("toy_videos", clips=1000, num_frames=16, first_seed=TRAIN_SEED_START + 100_000,
             mix=SampleMix(mem_prompt=2.0, mem_mask=0.5, seg=1.5, region=0.5, ref=0.25, max_window=6)),
)


def build_toy_init(directory: Path, seed: int = 0) -> Path:
    """The random starting point: the ``toy`` preset, UniPixel's fresh-run head initialisation."""
    from unipixel_model.presets import build_tiny_checkpoint

    return build_tiny_checkpoint(directory, seed, preset="toy")


def render_phase(phase: ToyPhase, work: Path, shapes: tuple[str, ...] | None = None) -> list:
    """Render the phase's clips under ``work`` (PNG, reused when present: one ``work`` per ``shapes``) and draw its
    samples."""
    config = WorldConfig(num_frames=phase.num_frames, **({"shapes": shapes} if shapes else {}))
    rng = np.random.default_rng(phase.first_seed)
    samples = []
    for seed in range(phase.first_seed, phase.first_seed + phase.clips):
        clip = make_clip(seed, config)
        if phase.num_frames == 1:
            media = work / "stills" / f"{seed}.png"
            if not media.is_file():
                writers.write_image(clip.frames[0], media)
        else:
            media = work / "videos" / str(seed)
            if not (media / f"{phase.num_frames:05d}.png").is_file():
                writers.write_frame_folder(clip.frames, media)
        samples += clip_samples(clip, media, rng, phase.mix)
    return samples


def train_toy(out: Path, work: Path, minutes: float | None = None, phases: tuple[ToyPhase, ...] = PHASES,
              shapes: tuple[str, ...] | None = None) -> dict:
    """Run every phase from random weights; write the fp16 checkpoint to ``out``.

    Args:
        shapes: the shapes the world draws (None: all but the held-out ``cross``).
        minutes: when given, every phase's ``max_steps`` is scaled so the run takes about this long
            (measured on the first steps); None keeps the recipes' step counts.
    Returns:
        A summary: per phase the steps, seconds, final losses and skipped samples.
    """
    from finetune.trainer import Trainer

    work.mkdir(parents=True, exist_ok=True)
    checkpoint = build_toy_init(work / "init")
    summary: dict = {"phases": []}
    started = time.time()
    history = []
    for n, phase in enumerate(phases):
        samples = render_phase(phase, work, shapes)
        recipe = load_recipe(phase.recipe)
        if minutes is not None:
            share = minutes * 60 / len(phases)
            recipe = dataclasses.replace(recipe, max_steps=max(1, int(recipe.max_steps * share / _planned_s(recipe))))
        trainer = Trainer.from_recipe(recipe, checkpoint=checkpoint)
        result = trainer.train(samples, progress=lambda step, total, loss, eta: logger.info(
            "%s step %d/%d loss %.3f eta %.0f s", phase.recipe, step, total, loss, eta))
        history += [{"phase": phase.recipe, "loss": l, "lm": m, "seg": s}
                    for l, m, s in zip(result.losses, result.lm_losses, result.seg_losses)]
        last = out if n == len(phases) - 1 else work / f"after-{phase.recipe}"
        checkpoint = trainer.save_checkpoint(last, dtype=torch.float16 if last == out else torch.float32)
        summary["phases"].append({"recipe": phase.recipe, "samples": len(samples), "steps": result.steps,
                                  "seconds": round(result.seconds), "skipped": len(result.skipped)})
    summary["seconds"] = round(time.time() - started)
    (out / "toy_training.json").write_text(json.dumps({**summary, "history": history}))
    _plot(history, out / "loss.png")
    return summary


def _planned_s(recipe) -> float:
    """Seconds a recipe's steps take on 2 CPU cores (measured; used only to scale ``--minutes``)."""
    per_step = {"toy_stills": 0.2, "toy_videos": 0.55}.get(recipe.name, 0.5)
    return recipe.max_steps * per_step


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def smooth(values: list[float], width: int = 100) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        kernel = np.ones(width) / width
        valid = ~np.isnan(values)
        filled = np.where(valid, values, 0.0)
        return np.convolve(filled, kernel, "same") / np.maximum(np.convolve(valid, kernel, "same"), 1e-9)

    fig, ax = plt.subplots(figsize=(8, 4))
    for key, label in (("loss", "total"), ("seg", "mask (core / T)"), ("lm", "language")):
        ax.plot(smooth([h[key] for h in history]), label=label)
    boundaries = [i for i in range(1, len(history)) if history[i]["phase"] != history[i - 1]["phase"]]
    for b in boundaries:
        ax.axvline(b, color="grey", linestyle=":")
    ax.set_xlabel("optimizer step (stills, then videos)")
    ax.set_ylabel("loss (running mean of 100)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
