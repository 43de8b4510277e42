"""Active learning, measured: the toy model, which never saw a cross, fine-tuned on crosses annotated in Label Studio.

Everything is real: a ``redis-server``, Label Studio 1.23.2, ``python -m backend serve`` with the base model, and the
RQ worker (``python -m finetune worker --burst``) running the ``toy_active`` recipe. For each labeling config, a
project gets synthetic clips of the new shape, annotated as Label Studio stores annotations
(``finetune.world.ls_annotations``: masks in ``video_masks`` and the image configs, box-only tracks in
``video_tracking``). *Start Training* is pressed through Label Studio's API, the worker trains, evaluates its held-out
tasks and publishes, and the published version is scored on held-out clips of the new shape next to the base:

    python -m benchmarks.active_learning --out /tmp/al          # base: the shipped toy; new shape: cross
    python -m benchmarks.active_learning --out /tmp/al --striped   # new kind: striped objects of every shape

The shipped toy was trained without crosses (``finetune.world.scene.SHAPES``), so it is the base as it is; another
base and shape work too (``python -m finetune toy --shapes circle,square,ring,bar`` trains one without triangles).
The toy never saw striped objects either (``WorldConfig.p_striped``): with ``--striped`` they are the new category, in
every trained shape. Crosses are one colour, so the base already segments them about as well as the shapes it
knows and a fine-tune has little to teach; stripes of two colours it joins less well, and a fine-tune on 16
annotated stills lifts them (README: Fine-tuning, 2026-12-06).
It prints one table (J&F on the new shape per prompt kind, before and after, per config) and writes ``report.json``.
It is a script, not a test: a run takes 5-10 minutes on 2 CPU cores (README: Fine-tuning, for the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).parents[1]
sys.path.insert(0, str(REPO))

from backend.label_config import parse_label_config  # noqa: E402
from finetune.world import writers  # noqa: E402
from finetune.world.evaluate import EVAL_SEED_START  # noqa: E402
from finetune.world.ls_annotations import annotation_result, task_data  # noqa: E402
from finetune.world.scene import SHAPES, WorldConfig, make_clip  # noqa: E402

CONFIGS = {"video_masks": 12, "image_segmentation": 1, "referring_expressions": 1, "video_tracking": 12}
TRAIN_SEED = 5_000_000  # far from the toy model's training seeds and from the evaluation seeds


def recipe(args, work: Path) -> Path:
    """The worker's recipe: ``args.recipe`` (``finetune/configs/toy_active.yaml``) on ``args.base`` (its held-out
    check included)."""
    values = yaml.safe_load(Path(args.recipe).read_text())
    values.update(base_model=str(args.base), max_steps=args.steps)
    path = work / "toy_active.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def new_category(args, num_frames: int, objects: tuple[int, int], **options) -> WorldConfig:
    """The world of the new category: clips of ``args.shape`` only, or (``args.striped``) striped objects of every
    shape the toy trained on."""
    if args.striped:
        return WorldConfig(num_frames=num_frames, shapes=SHAPES, p_striped=1.0, objects=objects, **options)
    return WorldConfig(num_frames=num_frames, shapes=(args.shape,), objects=objects, **options)


def category_name(args) -> str:
    """The new category as project titles and the report name it: ``striped`` or the shape."""
    return "striped" if args.striped else args.shape


def make_project(ls, backend_url: str, name: str, args, folder: Path) -> tuple[int, int]:
    """A project of ``name`` with ``args.tasks`` annotated clips of the new shape; returns (project, ML backend)."""
    xml = (REPO / "label_config" / f"{name}.xml").read_text().replace('framerate="25"', 'framerate="10"')
    spec = parse_label_config(xml)
    title = f"learn {category_name(args)}: {name}"
    project = ls.request("POST", "/api/projects/", {"title": title, "label_config": xml})["id"]
    (folder / name).mkdir(parents=True, exist_ok=True)
    ls.add_local_storage(project, folder / name)
    world = new_category(args, CONFIGS[name], (1, 2), fps=10.0)
    # seeded by the config, not by the project id Label Studio hands out: --configs video_tracking alone draws the same
    # clips and annotations as in a run of all four (whose projects are 1-4 in CONFIGS order)
    stream = 1 + list(CONFIGS).index(name)
    rng = np.random.default_rng(stream)
    for n in range(args.tasks):
        clip = make_clip(TRAIN_SEED + 1000 * stream + n, world)
        stem = folder / name / str(n)
        if CONFIGS[name] == 1:
            media = ls.local_files_url(writers.write_image(clip.frames[0], stem.with_suffix(".png")))
        elif spec.strategy.frame_list:
            media = [ls.local_files_url(p) for p in writers.write_frame_folder(clip.frames, stem)]
        else:
            media = ls.local_files_url(writers.write_mp4(clip.frames, stem.with_suffix(".mp4"), clip.fps))
        ls.request("POST", f"/api/projects/{project}/import", [{"data": task_data(spec, media)}])
        task = ls.request("GET", f"/api/tasks/?project={project}")
        task_id = max(t["id"] for t in (task["tasks"] if isinstance(task, dict) else task))
        ls.request("POST", f"/api/tasks/{task_id}/annotations/", {"result": annotation_result(clip, spec, rng)})
    ml = ls.request("POST", "/api/ml/", {"project": project, "url": backend_url, "title": "unipixel",
                                         "is_interactive": True})["id"]
    return project, ml


def evaluate(base: str | Path, adapter: Path | None, world: WorldConfig, clips: int) -> dict:
    """J&F on held-out clips of the new category (``world``, 12 frames), per prompt kind, over all frames and on the
    prompt frame."""
    from finetune.world.evaluate import evaluate_world
    from unipixel_model.loading import from_pretrained, load_adapter, resolve_checkpoint
    from unipixel_model.tokenization import load_tokenizer

    model, tokenizer = from_pretrained(base), load_tokenizer(resolve_checkpoint(str(base)))
    if adapter is not None:
        load_adapter(model, adapter)
    seeds = range(EVAL_SEED_START + 50_000, EVAL_SEED_START + 50_000 + clips)
    report = evaluate_world(model, tokenizer, seeds, world, describe_objects=False)
    scores = {kind: {"all": report.mean(kind, "all"), "prompt": report.mean(kind, "prompt")}
              for kind in ("click", "box", "mask", "text")}
    return {**scores, "box_corners_covered": box_corners_covered(model, tokenizer, seeds, world)}


def box_corners_covered(model, tokenizer, seeds, world: WorldConfig) -> float:
    """Mean share of the pixels of each object's bounding box outside the object that its mask covers, per frame,
    when the first object of each clip is prompted by its box (``sampling.box``): 0 for a mask that follows the
    object, 1 for one that fills its box. What box-only supervision without BoxInst's pairwise term drives up."""
    import torch

    from finetune.world import sampling
    from unipixel_model.session import InferenceSession

    covered = []
    with torch.no_grad(), model.sam2_gating(True):
        for seed in seeds:
            clip, rng = make_clip(seed, world), np.random.default_rng(seed)
            frame = sampling.prompt_frame(clip, 0, rng)
            session = InferenceSession.open(model.eval(), tokenizer, clip.frames)
            track = session.refer({1: sampling.box(clip, 0, frame, rng)}, ask=False).tracks[0]
            for t, truth in enumerate(clip.masks[0]):
                ys, xs = np.nonzero(truth)
                if len(xs) < 20:  # hardly visible: no box to speak of
                    continue
                outside = np.zeros_like(truth)
                outside[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
                outside &= ~truth
                covered.append((track.mask(t) & outside).sum() / max(int(outside.sum()), 1))
    return float(np.mean(covered))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="toy", help="'toy' (never saw a cross) or a toy checkpoint trained "
                                                     "without --shape")
    category = parser.add_mutually_exclusive_group()
    category.add_argument("--shape", default="cross", help="the new category: a shape the base never saw")
    category.add_argument("--striped", action="store_true", help="the new category is striped objects of every "
                                                                  "trained shape instead of a shape")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--tasks", type=int, default=8, help="annotated tasks per config")
    parser.add_argument("--steps", type=int, default=150, help="fine-tune steps per project")
    parser.add_argument("--clips", type=int, default=12, help="held-out clips scored before and after")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--recipe", default=str(REPO / "finetune/configs/toy_active.yaml"),
                        help="the fine-tune recipe YAML (its base_model and max_steps are replaced)")
    args = parser.parse_args(argv)
    from tests.e2e.conftest import BackendServer
    from tests.services import LabelStudioServer, RedisServer

    args.out.mkdir(parents=True, exist_ok=True)
    redis = RedisServer().start()
    ls = LabelStudioServer(files_root=args.out / "files").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "UNIPIXEL_"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", UNIPIXEL_MODEL=str(args.base), REDIS_URL=redis.url,
               LABEL_STUDIO_URL=ls.url, LABEL_STUDIO_API_KEY=ls.personal_access_token(),
               MODEL_DIR=str(args.out / "models"), UNIPIXEL_DATA_DIR=str(args.out / "data"),
               UNIPIXEL_MEDIA_CACHE_DIR=str(args.out / "media"), UNIPIXEL_TRAIN_RECIPE=str(recipe(args, args.out)),
               UNIPIXEL_TRAIN_QUEUE="active-learning", LOG_LEVEL="INFO")
    backend = BackendServer(env, args.out / "backend.log").wait()
    held_out = new_category(args, 12, (1, 3))
    report: dict = {"base": str(args.base), "category": category_name(args),
                    "before": evaluate(args.base, None, held_out, args.clips), "configs": {}}
    try:
        for name in args.configs.split(","):
            project, ml = make_project(ls, backend.url, name, args, args.out / "files")
            ls.request("POST", f"/api/ml/{ml}/train", {})  # the "Start Training" button
            started = time.time()
            worker = subprocess.run([sys.executable, "-m", "finetune", "worker", "--burst"], cwd=REPO, env=env,
                                    capture_output=True, text=True, timeout=3600)
            (args.out / f"worker-{name}.log").write_text(worker.stderr)
            run = json.loads((args.out / "models" / "runs" / f"{project}.json").read_text())
            entry = {"project": project, "run": run, "seconds": round(time.time() - started)}
            if run.get("version"):
                entry["after"] = evaluate(args.base, args.out / "models" / run["version"] / "adapter", held_out,
                                          args.clips)
                entry["label_studio_shows"] = ls.request("GET", f"/api/ml/{ml}").get("model_version")
            report["configs"][name] = entry
            print(json.dumps({name: entry}, default=str), flush=True)
    finally:
        (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
        backend.stop()
        ls.close()
        redis.close()
    print(table(report))
    return 0


def table(report: dict) -> str:
    rows = ["| config | run | kind | J&F before (all / prompt frame) | after | change (all) |", "|---|---|---|---|---|---|"]
    before = report["before"]
    for name, entry in report["configs"].items():
        after = entry.get("after") or {}
        for kind in ("click", "box", "mask", "text"):
            b, a = before[kind], after.get(kind)
            change = f"{a['all'] - b['all']:+.3f}" if a and a["all"] is not None and b["all"] is not None else "—"
            rows.append(f"| {name} | {entry['run'].get('status')} | {kind} | {_pair(b)} | {_pair(a)} | {change} |")
        b, a = before.get("box_corners_covered"), after.get("box_corners_covered")
        rows.append(f"| {name} | {entry['run'].get('status')} | box corners covered | {b:.3f} | "
                    f"{'—' if a is None else f'{a:.3f}'} | {'—' if a is None else f'{a - b:+.3f}'} |")
    return "\n".join(rows)


def _pair(scores: dict | None) -> str:
    if not scores:
        return "—"
    return " / ".join("—" if scores[g] is None else f"{scores[g]:.3f}" for g in ("all", "prompt"))


if __name__ == "__main__":
    sys.exit(main())
