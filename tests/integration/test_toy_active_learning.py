"""Active learning seen to work, with the toy model that sees: striped objects, a kind it never trained on, annotated
as Label Studio stores ``image_segmentation.xml`` annotations, fine-tuned with the ``toy_active`` recipe, make the
model segment and track held-out striped objects better.

``benchmarks/active_learning.py --striped`` runs the same loop through a real Label Studio and the RQ worker, and
scores every config (README: Fine-tuning); this test keeps the learning itself on every CI run (about a minute):
24 held-out 12-frame clips, J&F over all frames, box 0.784 -> 0.829 and click 0.780 -> 0.790 (2026-12-06).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from backend.converters.annotation import MediaShape
from backend.label_config import parse_label_config
from finetune.convert import LabeledTask, task_to_samples
from finetune.recipe import load_recipe
from finetune.trainer import Trainer
from finetune.world import writers
from finetune.world.evaluate import EVAL_SEED_START, evaluate_world
from finetune.world.ls_annotations import annotation_result
from finetune.world.scene import WorldConfig, make_clip

REPO = Path(__file__).parents[2]
STRIPED_STILLS = WorldConfig(num_frames=1, p_striped=1.0, objects=(1, 2))
TRAIN_SEEDS = range(5_100_000, 5_100_016)  # 16 annotated stills, as in the benchmark; far from every other seed
HELD_OUT = WorldConfig(num_frames=12, p_striped=1.0, objects=(1, 3))
HELD_OUT_SEEDS = range(EVAL_SEED_START + 60_000, EVAL_SEED_START + 60_024)


def _annotated_stills(directory: Path) -> list:
    """The fine-tune job's samples of 16 striped stills, each annotated with every object's mask."""
    spec = parse_label_config((REPO / "label_config" / "image_segmentation.xml").read_text())
    rng, samples = np.random.default_rng(0), []
    for seed in TRAIN_SEEDS:
        clip = make_clip(seed, STRIPED_STILLS)
        media = writers.write_image(clip.frames[0], directory / f"{seed}.png")
        task = LabeledTask(seed, {}, annotation_result(clip, spec, rng), str(media), MediaShape(1, *clip.size_hw, 0.0))
        samples += task_to_samples(task, spec)
    return samples


def _score(trainer: Trainer) -> dict[str, float]:
    """Mean J&F over all frames of held-out striped clips, a click or a box on one frame tracked both ways."""
    report = evaluate_world(trainer.model, trainer.tokenizer, HELD_OUT_SEEDS, HELD_OUT, kinds=("click", "box"),
                            describe_objects=False)  # sessions run without gradients; train() sets train mode again
    return {kind: round(report.mean(kind, "all"), 3) for kind in ("click", "box")}


def test_a_fine_tune_on_annotated_striped_stills_lifts_held_out_striped_clips(tmp_path):
    try:
        trainer = Trainer.from_recipe(dataclasses.replace(load_recipe("toy_active"), max_steps=300), device="cpu")
    except FileNotFoundError as err:  # the shipped toy checkpoint is missing: fail, never skip
        pytest.fail(str(err), pytrace=False)
    samples = _annotated_stills(tmp_path)
    before = _score(trainer)
    trainer.train(samples)
    after = _score(trainer)
    print(f"held-out striped clips, J&F before {before}, after {after} ({len(samples)} samples)")
    # boxes gain the most (+0.045 here, +0.055 and +0.067 in the benchmark's runs); clicks +0.010 here, +0.076 and
    # +0.078 there: what 16 stills teach a click varies with them, so the click bar is "no worse"
    assert after["box"] >= before["box"] + 0.03, (before, after)
    assert after["click"] >= before["click"], (before, after)
