"""Commands of the synthetic world: ``evaluate`` a model, write ``world`` media, train the ``toy`` model.

::

    python -m finetune evaluate --model toy                       # J/F/J&F per prompt kind, held-out seeds
    python -m finetune evaluate --model toy --adapter data/models/7-20261129-120000 --json report.json
    python -m finetune world --out demo/ --clips 1 --formats mp4,frames,davis,ls   # media + LS tasks
    python -m finetune toy --minutes 45 --out toy/                # a toy model in 45 minutes on 2 CPU cores
    python -m finetune toy --steps-from unipixel_model/toy --out toy/   # the shipped toy's steps (43 minutes)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from finetune.world.scene import ALL_SHAPES, COLOURS, WorldConfig
from unipixel_model.sam2_side import sam2_side_argument

logger = logging.getLogger(__name__)

EVALUATED = ("click", "box", "mask", "text", "describe")  # what `evaluate --kinds` can score


def add_world_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate``, ``world`` and ``toy`` on the ``python -m finetune`` parser."""
    evaluate = sub.add_parser("evaluate", help="score a model on synthetic clips (J, F, J&F per prompt kind)")
    evaluate.add_argument("--model", default="toy", help="toy, tiny or a checkpoint directory")
    evaluate.add_argument("--adapter", default=None, help="a published version's folder (MODEL_DIR/<version>)")
    evaluate.add_argument("--json", default=None, help="also write the report as JSON here")
    evaluate.add_argument("--sam2-image-size", type=sam2_side_argument, default=None,
                          help="SAM 2's input side in pixels (a multiple of 16) instead of the "
                          "checkpoint's: the toy's masks gain at 192 (README: The toy model)")
    evaluate.add_argument("--kinds", default=",".join(EVALUATED), help="comma list of what to score among "
                          f"{', '.join(EVALUATED)} (default: all)")
    _world_options(evaluate, clips=40, seed=900_000)
    world = sub.add_parser("world", help="write synthetic clips as mp4, frames, images, DAVIS PNGs and LS tasks")
    world.add_argument("--out", required=True, help="output folder")
    world.add_argument("--formats", default="mp4,frames,images,davis,ls",
                       help="comma list of mp4, frames, images, davis, ls")
    world.add_argument("--url-prefix", default=None, help="URL prefix of --out in Label Studio (default: file paths)")
    _world_options(world, clips=4, seed=0)
    toy = sub.add_parser("toy", help="train the toy model from random weights on the synthetic world")
    toy.add_argument("--out", required=True, help="checkpoint folder to create")
    toy.add_argument("--work", default=None, help="folder for the rendered training clips (default: <out>.work)")
    toy.add_argument("--minutes", type=float, default=None, help="scale every phase's steps by one factor so "
                     "the whole run takes about this many minutes on 2 CPU cores")
    toy.add_argument("--steps-from", default=None, help="train each phase the steps this checkpoint's "
                     "toy_training.json records, e.g. unipixel_model/toy: reproduce the shipped toy (43 minutes)")
    toy.add_argument("--shapes", default=None, help="train on these shapes only (comma list), e.g. a base model "
                     "without one category for the active-learning check (use its own --work folder)")
    toy.add_argument("--init", default=None, help="start from this checkpoint instead of random weights")
    toy.add_argument("--system-malloc", action="store_true", help="train with glibc's malloc instead of running "
                     "again with jemalloc preloaded (finetune/allocator.py: 4-8 %% faster steps)")
    toy.add_argument("--phases", default=None, help="run only these phases (comma list of toy_stills, toy_videos, "
                     "toy_describe, toy_describe_text, toy_masks, toy_tracks, toy_grounding, toy_clicks); default: all")


def _world_options(parser: argparse.ArgumentParser, clips: int, seed: int) -> None:
    parser.add_argument("--clips", type=int, default=clips, help=f"clips to use (default {clips})")
    parser.add_argument("--seed", type=int, default=seed, help=f"first clip seed (default {seed})")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (1: still images)")
    parser.add_argument("--shapes", default=None, help=f"comma list of shapes among {', '.join(ALL_SHAPES)}")
    parser.add_argument("--colours", default=None, help=f"comma list of colours among {', '.join(COLOURS)}")
    parser.add_argument("--resolution", default=None, help="WIDTHxHEIGHT (even numbers); default: several")
    parser.add_argument("--objects", default=None, help="MIN,MAX objects per clip (default 1,4)")
    parser.add_argument("--motion", default=None, choices=sorted(MOTIONS),
                        help="only one kind of motion: " + "; ".join(f"{k}: {v[0]}" for k, v in MOTIONS.items()))
    parser.add_argument("--touching", action="store_true",
                        help="every new object repeats an earlier one's colour or shape, and one of the same colour "
                             "touches it (two blobs that read as one)")
    parser.add_argument("--striped", action="store_true",
                        help="every object has stripes of a second colour (a kind of object the toy never trained on)")


# Named motion sets for evaluation (the default mixes them all): what each means, and the WorldConfig fields it sets.
MOTIONS: dict[str, tuple[str, dict]] = {
    "slow": ("objects stay in view and keep their heading, at the slowest speeds",
             {"speed_range": (0.004, 0.008), "p_enter": 0.0, "p_leave": 0.0, "p_turn": 0.0}),
    "fast": ("objects stay in view and keep their heading, at the fastest speeds",
             {"speed_range": (0.02, 0.025), "p_enter": 0.0, "p_leave": 0.0, "p_turn": 0.0}),
    "turning": ("every object changes direction once, none enters or leaves",
                {"p_enter": 0.0, "p_leave": 0.0, "p_turn": 1.0}),
    "entering": ("every object enters the frame during the clip", {"p_enter": 1.0, "p_leave": 0.0, "p_turn": 0.0}),
    "leaving": ("every object leaves the frame during the clip", {"p_enter": 0.0, "p_leave": 1.0, "p_turn": 0.0}),
}


def world_config(args: argparse.Namespace) -> WorldConfig:
    """The :class:`WorldConfig` the common options describe."""
    options: dict = {"num_frames": args.frames}
    if args.shapes:
        options["shapes"] = tuple(s.strip() for s in args.shapes.split(","))
    if args.colours:
        options["colours"] = tuple(c.strip() for c in args.colours.split(","))
    if args.resolution:
        width, height = (int(v) for v in args.resolution.lower().split("x"))
        options["resolutions_wh"] = ((width, height),)
    if args.objects:
        low, high = (int(v) for v in args.objects.split(","))
        options["objects"] = (low, high)
    if args.motion:
        options.update(MOTIONS[args.motion][1])
    if args.touching:
        options.update(p_distractor=1.0, p_touch=1.0)
    if args.striped:
        options["p_striped"] = 1.0
    return WorldConfig(**options)


def run_evaluate(args: argparse.Namespace) -> int:
    from unipixel_model.loading import from_pretrained, load_adapter, resolve_checkpoint
    from unipixel_model.tokenization import load_tokenizer

    from finetune.world.evaluate import evaluate_world

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(EVALUATED))
    if unknown or not kinds:
        print(f"error: --kinds {args.kinds!r}: unknown {unknown}; give a comma list of {', '.join(EVALUATED)}",
              file=sys.stderr)
        return 2
    path = resolve_checkpoint(args.model)
    model, tokenizer = from_pretrained(path, sam2_image_size=args.sam2_image_size), load_tokenizer(path)
    if args.adapter:  # a published version's folder, or its adapter/ folder
        adapter = Path(args.adapter)
        load_adapter(model, adapter / "adapter" if (adapter / "adapter").is_dir() else adapter)
    start = time.time()
    seeds = range(args.seed, args.seed + args.clips)
    report = evaluate_world(model, tokenizer, seeds, world_config(args),
                            kinds=tuple(k for k in kinds if k != "describe"), describe_objects="describe" in kinds,
                            progress=lambda n, clip: logger.info("clip %d/%d (seed %d)", n + 1, args.clips, clip.seed))
    print(f"model {args.model}{' + ' + args.adapter if args.adapter else ''}, {args.clips} clips from seed "
          f"{args.seed}, {time.time() - start:.0f} s\n")
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    return 0


def run_world(args: argparse.Namespace) -> int:
    from finetune.world.export import write_world

    formats = {f.strip() for f in args.formats.split(",") if f.strip()}
    seeds = range(args.seed, args.seed + args.clips)
    for path in write_world(Path(args.out), seeds, world_config(args), formats, args.url_prefix):
        print(path)
    return 0


def run_toy(args: argparse.Namespace) -> int:
    from finetune.allocator import rerun_with_jemalloc
    from finetune.world.toy import train_toy
    from finetune.world.toy_plan import plan_steps

    out = Path(args.out)
    work = Path(args.work) if args.work else out.with_name(out.name + ".work")
    shapes = tuple(s.strip() for s in args.shapes.split(",")) if args.shapes else None
    try:  # every refusal before the first clip is rendered
        phases, init = _toy_phases_and_init(args.phases, args.init)
        steps = plan_steps(phases, args.minutes, Path(args.steps_from) if args.steps_from else None)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.own_command_line and not args.system_malloc:
        rerun_with_jemalloc()  # returns only where jemalloc is preloaded already, or missing
    summary = train_toy(out, work, steps=steps, phases=phases, shapes=shapes, init=init)
    print(json.dumps(summary, indent=2))
    return 0


WORLD_COMMANDS = {"evaluate": run_evaluate, "world": run_world, "toy": run_toy}


def _toy_phases_and_init(names: str | None, init_arg: str | None) -> tuple[tuple, Path | None]:
    """The phases ``--phases`` names and the ``--init`` checkpoint, checked together.

    Raises:
        ValueError: an unknown phase, an ``--init`` that is not a checkpoint or whose ``toy_training.json`` is
            unreadable, or later phases without ``--init`` (they would train on random weights).
    """
    from finetune.world.toy import PHASES, select_phases
    from finetune.world.toy_plan import training_log

    phases = select_phases(names)
    init = Path(init_arg) if init_arg else None
    if init is None:
        if phases[0] is not PHASES[0]:  # e.g. the description phases on random weights
            raise ValueError(f"--phases {names} starts after {PHASES[0].recipe}, which trains from random weights; "
                             "give --init with the checkpoint of the phases before (e.g. --init unipixel_model/toy)")
        return phases, None
    if not (init / "config.json").is_file():
        raise ValueError(f"--init {init} is not a checkpoint folder (no config.json)")
    training_log(init)  # its loss history is carried over
    return phases, init
