"""Train the ``toy`` model: the ``toy`` preset from random weights, on the synthetic world, with the
project's own stage-3 trainer (``full_model`` recipes, no LoRA: every parameter trained in phases 1-2, the
LLM alone in phases 3-4, SAM 2 and the seg head alone in phases 5-6), then its text-grounding head (phase 7), then
SAM 2's decoder on corrections (phase 8).

Eight phases, each but the seventh a recipe in ``finetune/configs/`` plus the world it draws from:

1. ``toy_stills``: still images, every object of a still clicked or boxed at once (cheap: one SAM 2
   frame per sample), text queries, descriptions — the model learns to see and to read;
2. ``toy_videos``: short windows of videos, one object per sample, clicks/boxes/masks on one frame
   tracked both ways, text queries seeded where the object is — the model learns to track;
3. ``toy_describe``: the LLM alone (SAM 2 frozen) on descriptions of new stills and videos: after the first two
   phases it described every object alike ("a purple bar"), the template learned and not the content;
4. ``toy_describe_text``: the same with text queries mixed in, which phase 3 made the LLM forget to answer with
   ``<|seg|>``;
5. ``toy_masks``: SAM 2 and the seg head alone (the LLM frozen, so the descriptions stay) on clicks, boxes and text
   queries of new stills and videos: phases 1-2 stop while the mask loss still falls;
6. ``toy_tracks``: the same on videos only, which phase 5, mostly stills, left worse on frames far from the prompt;
7. ``toy_grounding``: the text-grounding head alone (:mod:`unipixel_model.toy_grounding`, its own loop over frozen
   SAM 2 features, :mod:`finetune.world.grounding`) on text queries of new videos and phase 3's stills: the toy's
   LLM does not bring a query's words to ``<|seg|>`` (README: The toy model). 30,000 steps, about 5 minutes with
   rendering; ``--minutes`` plans those 5 minutes and scales the other phases;
8. ``toy_clicks``: SAM 2 alone, its image encoder frozen (so phase 7's features stay), on clicks and boxes that each
   get 1-3 correction clicks where an annotator puts them (deep inside the largest error, ``correction_point:
   center``), on stills that include touching same-colour twins: after phase 6 corrections hardly changed a mask.

Training seeds start at :data:`~finetune.world.evaluate.TRAIN_SEED_START`; evaluation seeds are far
above. The result is written fp16 in the official layout (plus the head's ``toy_grounding.*`` tensors) with its
tokenizer, ``toy_training.json`` (steps and losses per phase) and ``loss.png``. ``--minutes M`` scales every phase
but the grounding head's by one factor so that the whole run takes about M minutes on 2 CPU cores.
``python -m finetune toy --steps-from unipixel_model/toy --out DIR`` trains the shipped checkpoint's phases with the
steps its ``toy_training.json`` records: 43 minutes on 2 idle CPU cores (2026-12-07, with jemalloc preloaded by
:mod:`finetune.allocator`; about an hour before fused AdamW, the render pool of :mod:`finetune.world.render_cache`,
the frame-folder decode and jemalloc). The shipped one was made in three steps, so it was rounded to fp16 twice where
that run keeps fp32 between phases: phases 1-6 scaled by 0.59 (42 minutes on 2 idle CPU cores, the same bytes in both
runs measured on 2026-12-06 on one machine; another machine's float kernels train other bytes of the same quality,
see the README), then phase 7 (5 minutes, ``--init`` with that checkpoint, ``--phases toy_grounding``), then phase 8
(12 minutes, ``--init`` with that one, ``--phases toy_clicks``). Without either option every phase runs its recipe's
full steps (phases 1-6 took 70 minutes, measured 2026-12-05: 23 for phases 1-2, 12 for phases 3-4, 28 for phases 5-6,
8 rendering). CI never trains: it uses the shipped checkpoint. ``--init DIR --phases a,b`` runs some phases from a
checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from finetune.recipe import load_recipe
from finetune.world.toy_plan import training_log
from finetune.world.evaluate import TRAIN_SEED_START
from finetune.world.samples import SampleMix, clip_samples
from finetune.world.render_cache import render_clips
from finetune.world.scene import WorldConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToyPhase:
    """One phase: a recipe, the clips it renders and how samples are drawn from them (``clips`` clips of
    ``num_frames`` frames from ``first_seed``, plus ``still_clips`` stills from ``still_first_seed``)."""

    recipe: str
    clips: int
    num_frames: int
    first_seed: int
    mix: SampleMix = SampleMix()
    still_clips: int = 0
    still_first_seed: int = 0
    grounding_steps: int = 0  # > 0: not a recipe; trains the text-grounding head alone (finetune/world/grounding.py)
    p_touch: float = 0.0  # the world's p_touch: same-colour twins that touch (what a negative click must split)


PHASES = (
    # Descriptions weigh more than their share of serving calls: a byte-level LLM learns to spell
    # "a yellow triangle" only from many of them (0.75 a still gave gibberish after 4,000 steps).
    ToyPhase("toy_stills", clips=4000, num_frames=1, first_seed=TRAIN_SEED_START,
             mix=SampleMix(region=1.5, ref=0.5)),
    ToyPhase("toy_videos", clips=1000, num_frames=16, first_seed=TRAIN_SEED_START + 100_000,
             mix=SampleMix(mem_prompt=2.0, mem_mask=0.5, seg=1.5, region=0.5, ref=0.25, max_window=6)),
    ToyPhase("toy_describe", clips=800, num_frames=16, first_seed=TRAIN_SEED_START + 69_000,
             mix=SampleMix(mem_prompt=0.0, mem_mask=0.0, seg=0.0, region=1.5, ref=0.0, max_window=6),
             still_clips=4000, still_first_seed=TRAIN_SEED_START + 59_000),
    ToyPhase("toy_describe_text", clips=300, num_frames=16, first_seed=TRAIN_SEED_START + 69_000,
             mix=SampleMix(mem_prompt=0.0, mem_mask=0.0, seg=0.4, region=1.5, ref=0.0, max_window=6),
             still_clips=2000, still_first_seed=TRAIN_SEED_START + 59_000),
    # SAM 2 alone on what serves masks: clicks and boxes (with correction clicks), masks, text queries; no
    # descriptions (the LLM is frozen, so they would train nothing).
    ToyPhase("toy_masks", clips=500, num_frames=16, first_seed=TRAIN_SEED_START + 120_000,
             mix=SampleMix(mem_prompt=2.0, mem_mask=0.5, seg=0.5, region=0.0, ref=0.0, max_window=6),
             still_clips=3000, still_first_seed=TRAIN_SEED_START + 20_000),
    ToyPhase("toy_tracks", clips=900, num_frames=16, first_seed=TRAIN_SEED_START + 125_000,
             mix=SampleMix(mem_prompt=2.0, mem_mask=0.5, seg=0.3, region=0.0, ref=0.0, max_window=6)),
    # The text-grounding head alone, on text queries of new videos and of phase 3's stills (the rest is frozen).
    ToyPhase("toy_grounding", clips=400, num_frames=16, first_seed=TRAIN_SEED_START + 109_000,
             mix=SampleMix(mem_prompt=0.0, mem_mask=0.0, seg=1.5, region=0.0, ref=0.0, max_window=4),
             still_clips=3000, still_first_seed=TRAIN_SEED_START + 59_000, grounding_steps=30_000),
    # SAM 2 alone, its image encoder frozen (so the head's features stay), on corrections: every click or box gets
    # 1-3 correction clicks where an annotator puts them, on stills that include touching same-colour twins.
    ToyPhase("toy_clicks", clips=300, num_frames=16, first_seed=TRAIN_SEED_START + 130_000,
             mix=SampleMix(mem_prompt=2.0, mem_mask=0.0, seg=0.0, region=0.0, ref=0.0, max_window=4,
                           p_corrections=1.0, max_corrections=3),
             still_clips=3000, still_first_seed=TRAIN_SEED_START + 140_000, p_touch=0.3),
)


def build_toy_init(directory: Path, seed: int = 0) -> Path:
    """The random starting point: the ``toy`` preset, UniPixel's fresh-run head initialisation."""
    from unipixel_model.presets import build_tiny_checkpoint

    return build_tiny_checkpoint(directory, seed, preset="toy")


def render_phase(phase: ToyPhase, work: Path, shapes: tuple[str, ...] | None = None) -> list:
    """Render the phase's clips under ``work`` (PNG, reused when present: one ``work`` per ``shapes``; a process per
    core draws and writes them) and draw its samples: the stills first, then the clips."""
    rng = np.random.default_rng(phase.first_seed)
    samples = []
    for num_frames, first, count in ((1, phase.still_first_seed, phase.still_clips),
                                     (phase.num_frames, phase.first_seed, phase.clips)):
        config = WorldConfig(num_frames=num_frames, p_touch=phase.p_touch, **({"shapes": shapes} if shapes else {}))
        for clip, media in render_clips(range(first, first + count), config, work):
            samples += clip_samples(clip, media, rng, phase.mix)
    return samples


def train_toy(out: Path, work: Path, steps: dict[str, int] | None = None, phases: tuple[ToyPhase, ...] = PHASES,
              shapes: tuple[str, ...] | None = None, init: Path | None = None) -> dict:
    """Run the phases from random weights (or from the checkpoint ``init``); write the fp16 checkpoint to ``out``.

    Args:
        steps: phase (recipe name) -> steps to train, from :func:`plan_steps` (``--minutes``, ``--steps-from``); a
            phase it does not name trains its recipe's ``max_steps`` (the grounding head: its ``grounding_steps``).
        shapes: the shapes the world draws (None: all but the held-out ``cross``).
        init: start from this checkpoint; its ``toy_training.json`` (phases and losses) is carried over.
    Returns:
        A summary: per phase the steps, seconds, final losses and skipped samples.
    """
    from finetune.trainer import Trainer

    work.mkdir(parents=True, exist_ok=True)
    earlier = training_log(init) if init is not None else {"phases": [], "history": [], "seconds": 0}
    checkpoint = init if init is not None else build_toy_init(work / "init")
    summary: dict = {"phases": earlier["phases"]}
    started = time.time()
    history = earlier["history"]
    steps = steps or {}
    for n, phase in enumerate(phases):
        samples = render_phase(phase, work, shapes)
        last = out if n == len(phases) - 1 else work / f"after-{phase.recipe}"
        dtype = torch.float16 if last == out else torch.float32
        if phase.grounding_steps:
            from finetune.world.grounding import train_grounding_phase

            result = train_grounding_phase(checkpoint, last, samples, steps.get(phase.recipe, phase.grounding_steps),
                                           dtype)
            history += [{"phase": phase.recipe, "loss": math.nan, "lm": math.nan, "seg": math.nan, "grounding": l}
                        for l in result.pop("losses")]
            summary["phases"].append(result)
            checkpoint = last
            continue
        recipe = load_recipe(phase.recipe)
        if recipe.name in steps:
            recipe = dataclasses.replace(recipe, max_steps=steps[recipe.name])
        trainer = Trainer.from_recipe(recipe, checkpoint=checkpoint)
        result = trainer.train(samples, progress=lambda step, total, loss, eta: logger.info(
            "%s step %d/%d loss %.3f eta %.0f s", phase.recipe, step, total, loss, eta))
        history += [{"phase": phase.recipe, "loss": l, "lm": m, "seg": s}
                    for l, m, s in zip(result.losses, result.lm_losses, result.seg_losses)]
        checkpoint = trainer.save_checkpoint(last, dtype=dtype)
        summary["phases"].append({"recipe": phase.recipe, "samples": len(samples), "steps": result.steps,
                                  "seconds": round(result.seconds), "skipped": len(result.skipped)})
    summary["seconds"] = earlier["seconds"] + round(time.time() - started)
    (out / "toy_training.json").write_text(json.dumps({**summary, "history": history}))
    _plot(history, out / "loss.png")
    return summary


def select_phases(names: str | None) -> tuple[ToyPhase, ...]:
    """The phases named in a comma list (in the order of :data:`PHASES`); None: every phase.

    Raises:
        ValueError: naming the unknown ones and the known ones.
    """
    if names is None:
        return PHASES
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    unknown = sorted(wanted - {p.recipe for p in PHASES})
    if unknown or not wanted:
        raise ValueError(f"unknown toy phases {unknown or names!r}; the phases are {[p.recipe for p in PHASES]}")
    return tuple(p for p in PHASES if p.recipe in wanted)


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
    for key, label in (("loss", "total"), ("seg", "mask (core / T)"), ("lm", "language"),
                       ("grounding", "text grounding (phase 7)")):
        ax.plot(smooth([h.get(key, math.nan) for h in history]), label=label)
    boundaries = [i for i in range(1, len(history)) if history[i]["phase"] != history[i - 1]["phase"]]
    for b in boundaries:
        ax.axvline(b, color="grey", linestyle=":")
    phases = dict.fromkeys(h["phase"].removeprefix("toy_") for h in history)
    ax.set_xlabel(f"optimizer step ({', '.join(phases)})")
    ax.set_ylabel("loss (running mean of 100)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
