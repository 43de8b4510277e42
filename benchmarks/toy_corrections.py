"""Do correction clicks help? A click, then correction clicks where an annotator puts them, on held-out synthetic clips.

For each clip the largest object is clicked (``finetune.world.sampling.click``) on a frame where it shows well, then
up to ``--corrections`` correction clicks follow (``finetune.world.sampling.correction_click``: a negative click deep
inside the largest leak, or a positive one deep inside the largest missed part, whichever error is larger), each sent
as the session's ``refine`` sends an editor's click. It prints the mean IoU on the clicked frame after 0, 1, 2, ...
corrections, and the mean IoU change that a positive and a negative click bring, for three sets: stills, stills with
touching same-colour twins (``p_touch``) and 6-frame videos.

    python -m benchmarks.toy_corrections                      # the shipped toy, 30 clips a set (15 s)
    python -m benchmarks.toy_corrections --model DIR --clips 60

Measured 2026-12-06 (README: The toy model, "Corrections: phase 8"), 30 clips a set:

| model | set | after 0, 1, 2, 3 corrections | positive clicks: n, mean change | negative clicks: n, mean change |
|---|---|---|---|---|
| toy before phase 8 | stills | 0.802, 0.808, 0.802, 0.814 | 53, +0.004 | 37, +0.004 |
| | touching twins | 0.778, 0.782, 0.787, 0.812 | 37, +0.002 | 53, +0.018 |
| | videos | 0.838, 0.836, 0.838, 0.848 | 64, +0.008 | 26, −0.009 |
| shipped toy (phase 8) | stills | 0.791, 0.806, 0.842, 0.870 | 66, +0.029 | 24, +0.020 |
| | touching twins | 0.776, 0.782, 0.818, 0.838 | 42, +0.016 | 48, +0.025 |
| | videos | 0.827, 0.854, 0.889, 0.900 | 70, +0.032 | 20, −0.003 |
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from finetune.metrics import db_eval_iou
from finetune.world import sampling
from finetune.world.evaluate import EVAL_SEED_START
from finetune.world.scene import WorldConfig, make_clip
from unipixel_model.sam2_side import sam2_side_argument
from unipixel_model.types import PointPrompt

SETS = (("stills", WorldConfig(num_frames=1), 3000),
        ("touching twins", WorldConfig(num_frames=1, p_touch=1.0, objects=(2, 4)), 3100),
        ("videos", WorldConfig(num_frames=6), 3200))


def corrections_on(model, tokenizer, config: WorldConfig, seeds: range, corrections: int
                   ) -> tuple[np.ndarray, list[tuple[bool, float]]]:
    """IoU on the clicked frame after 0..corrections corrections, float [clips, corrections + 1], and per correction
    (positive, IoU change)."""
    from unipixel_model.session import InferenceSession

    curves, changes = [], []
    for seed in seeds:
        clip = make_clip(seed, config)
        rng = np.random.default_rng(seed)
        obj = int(np.argmax(clip.masks.reshape(len(clip.objects), -1).sum(1)))
        frame = sampling.prompt_frame(clip, obj, rng)
        truth = clip.masks[obj, frame]
        session = InferenceSession.open(model, tokenizer, clip.frames)
        mask = session.refer({1: sampling.click(clip, obj, frame, rng)}, ask=False).tracks[0].mask(frame)
        curve = [float(db_eval_iou(truth, mask))]
        for _ in range(corrections):
            click = sampling.correction_click(truth, mask, rng)
            if click is None:  # nothing left to correct
                curve.append(curve[-1])
                continue
            mask = session.refine(1, [PointPrompt(click.x_px, click.y_px, frame, positive=click.positive)]).mask(frame)
            curve.append(float(db_eval_iou(truth, mask)))
            changes.append((click.positive, curve[-1] - curve[-2]))
        curves.append(curve)
    return np.array(curves), changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.toy_corrections", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="toy", help="toy, or a checkpoint folder (default toy)")
    parser.add_argument("--clips", type=int, default=30, help="held-out clips per set (default 30)")
    parser.add_argument("--corrections", type=int, default=3, help="correction clicks per clip (default 3)")
    parser.add_argument("--sam2-image-size", type=sam2_side_argument, default=None,
                        help="SAM 2's input side in pixels instead of the checkpoint's")
    args = parser.parse_args(argv)
    from unipixel_model.loading import from_pretrained, resolve_checkpoint
    from unipixel_model.tokenization import load_tokenizer

    path = resolve_checkpoint(args.model)
    model, tokenizer = from_pretrained(path, sam2_image_size=args.sam2_image_size).eval(), load_tokenizer(path)
    started = time.time()
    print(f"model {args.model}, {args.clips} clips a set\n")
    print("| set | after 0..N corrections | positive clicks: n, mean change | negative clicks: n, mean change |")
    print("|---|---|---|---|")
    with torch.no_grad(), model.sam2_gating(True):
        for name, config, offset in SETS:
            seeds = range(EVAL_SEED_START + offset, EVAL_SEED_START + offset + args.clips)
            curves, changes = corrections_on(model, tokenizer, config, seeds, args.corrections)
            parts = [[c for p, c in changes if p == positive] for positive in (True, False)]
            cells = [f"{len(c)}, {np.mean(c) if c else 0.0:+.3f}" for c in parts]
            print(f"| {name} | {', '.join(f'{v:.3f}' for v in curves.mean(0))} | {cells[0]} | {cells[1]} |")
    print(f"\n{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
