"""``python -m finetune worker | run | samples | publish | export | evaluate | world | toy``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from finetune.world.cli import WORLD_COMMANDS, add_world_commands as _add_world_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune", description="UniPixel active-learning fine-tunes")
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="run an RQ worker for the training queue (REDIS_URL)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    run = sub.add_parser("run", help="fine-tune a project now, in this process")
    run.add_argument("--project", type=int, required=True, help="Label Studio project id")
    run.add_argument("--recipe", default=None, help="recipe name (tiny, 3b, 3b_multi_gpu) or YAML path")
    samples = sub.add_parser("samples", help="gather + convert a project into train/holdout JSONL (for torchrun)")
    samples.add_argument("--project", type=int, required=True)
    samples.add_argument("--out", required=True, help="folder for train.jsonl and holdout.jsonl")
    samples.add_argument("--recipe", default=None, help="recipe whose holdout_fraction splits the tasks")
    publish = sub.add_parser("publish", help="publish an adapter trained by hand as a new version")
    publish.add_argument("--project", type=int, required=True)
    publish.add_argument("--adapter", required=True, help="adapter folder written by finetune.trainer")
    export = sub.add_parser("export", help="write a project's masks as COCO RLE JSON and DAVIS PNGs")
    export.add_argument("--project", type=int, required=True)
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--format", choices=("coco", "davis", "both"), default="both")
    _add_world_commands(sub)
    args = parser.parse_args(argv)
    # Only a command line of its own may be run again (toy: with jemalloc); a caller's argv is not the process's.
    args.own_command_line = argv is None
    if args.command in WORLD_COMMANDS:
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return WORLD_COMMANDS[args.command](args)

    from finetune.settings import FinetuneSettings, SettingsError

    try:
        settings = FinetuneSettings.from_env()
    except SettingsError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        from finetune.worker import run_worker

        return run_worker(settings, burst=args.burst)
    if args.command == "run":
        from finetune.jobs import execute_recorded

        spec = {"project_id": args.project, "reason": "manual", "recipe": args.recipe or settings.train_recipe}
        print(json.dumps(execute_recorded(settings, spec), indent=2, default=str))
        return 0
    if args.command == "samples":
        return _samples(settings, args)
    if args.command == "publish":
        return _publish(settings, args)
    from finetune.export_project import export_project

    for path in export_project(settings, args.project, args.out, args.format):
        print(path)
    return 0


def _samples(settings, args) -> int:
    from pathlib import Path

    from finetune.gather import gather
    from finetune.jobs import FinetuneRun
    from finetune.sample import write_samples

    run = FinetuneRun(settings, {"project_id": args.project, "recipe": args.recipe or settings.train_recipe})
    gathered = gather(settings.data_dir, settings.label_studio_url, settings.label_studio_api_key, args.project)
    train, holdout = run.samples(gathered.label_config, gathered.annotations)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(write_samples(train, out / "train.jsonl"), len(train))
    print(write_samples(holdout, out / "holdout.jsonl"), len(holdout))
    return 0


def _publish(settings, args) -> int:
    import shutil
    from pathlib import Path

    from finetune.publish import new_version_name, publish

    source = Path(args.adapter)
    if not (source / "adapter_config.json").is_file():
        print(f"{source} is not an adapter folder (no adapter_config.json)", file=sys.stderr)
        return 2
    version = new_version_name(args.project)
    info = {"project": args.project, "reason": "manual publish", "base_model": settings.model, "source": str(source)}
    print(publish(settings.model_dir, version, lambda dest: shutil.copytree(source, dest), info, [],
                  keep=settings.keep_versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
