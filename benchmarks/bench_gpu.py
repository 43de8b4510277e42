"""What users ask about UniPixel on a GPU, in one table: session latency, propagation speed,
memory per session, the backend over real HTTP, one training step, and the speed levers.

Run through ``benchmarks/gpu.sh`` (it picks the Python, installs carried wheels, enforces the time
limits and renders the table). By hand::

    python benchmarks/bench_gpu.py --out DIR [--size full|tiny] [--part main|lever] [--lever NAME]
    python benchmarks/bench_gpu.py --out DIR --render

``--size full`` (default with CUDA): ``random-3b`` in bfloat16 (random weights: timings and memory,
not masks), a 16-frame 448 px clip for the session rows, 300 frames at 768 px for propagation, 16
JPEG frames per annotator for the backend, one 8-frame stage-3 sample for training. ``--size tiny``
runs the same code on a CPU in seconds with a shrunk ``random-3b`` (CI runs it). ``--part main``
measures everything with the levers in ``--levers`` as extra columns (each alone, same process);
``--part lever --lever compile_sam2`` measures one lever in its own process (gpu.sh gives that one
its own time limit: compiling may take minutes). Every section records its error instead of
stopping the run, and the part file is rewritten after each section.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import json
import math
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import gpu_table  # noqa: E402

MIB = 2 ** 20
TINY_MODEL = "random-3b:layers=1,depth=1,hidden=128,sam2=tiny,sam2_size=256,llm_side=56"


@dataclass(frozen=True)
class Profile:
    """Sizes of one run (``full``: the questions of issue 12; ``tiny``: the same code in seconds)."""

    model: str
    query_frames: int     # frames of the clip the session rows use (the LLM reads all of them)
    query_side: int       # its square frame side in pixels
    track_frames: int     # frames propagated for the fps and memory rows
    track_side: int
    short_frames: int     # a shorter clip: device memory growth per extra frame
    click_frames: int     # JPEG frames per annotator task (backend rows)
    annotators: tuple[int, ...]
    train_frames: int     # frames of the training sample
    train_side: int
    gen_tokens: int       # tokens generated for the decode row
    lora_r: int
    levers: tuple[str, ...]


PROFILES = {
    "full": Profile("random-3b", 16, 448, 300, 768, 60, 16, (1, 4), 8, 448, 32, 128,
                    ("sam2_bf16", "gpu_frames", "attn=eager")),
    "tiny": Profile(TINY_MODEL, 4, 64, 8, 64, 4, 4, (1, 2), 2, 64, 4, 128,
                    ("sam2_bf16", "gpu_frames", "attn=eager")),
}
CORE_MODULES = ("torch", "transformers", "tokenizers", "safetensors", "sam2", "hydra", "omegaconf", "iopath", "cv2",
                "PIL")
BACKEND_MODULES = ("flask", "werkzeug", "requests", "pycocotools", "yaml")
TRAIN_MODULES = ("peft", "pycocotools", "yaml")


def missing_modules(names: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` that cannot be imported here."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure means unusable here
            missing.append(name)
    return missing


# ---- inputs -------------------------------------------------------------------------------
def scene(num_frames: int, side: int):
    """uint8 [T, side, side, 3]: a bright square crossing a textured background."""
    import numpy as np

    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(10, 70, (1, side, side, 3), dtype=np.uint8), num_frames, axis=0)
    size = side // 5
    for t in range(num_frames):
        x = int((side - size) * t / max(1, num_frames - 1))
        frames[t, side // 2 - size // 2: side // 2 + size // 2, x:x + size] = (230, 200, 40)
    return frames


def square_center(num_frames: int, side: int, t: int) -> tuple[float, float]:
    size = side // 5
    return (side - size) * t / max(1, num_frames - 1) + size / 2, side / 2


# ---- timing -------------------------------------------------------------------------------
class PhaseTimer:
    """Device-synchronised seconds in the ViT, LLM prefill, LLM decode and SAM 2 while active.

    Wraps instance methods of the model (restored on exit, stacked on any speed-lever wrappers).
    """

    def __init__(self, model, sync) -> None:
        self.model, self.sync = model, sync
        self.seconds = {"vit": 0.0, "prefill": 0.0, "decode": 0.0, "sam2": 0.0}
        self.calls = {k: 0 for k in self.seconds}
        self._saved: list = []

    def _wrap(self, owner, name: str, phase) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name)))
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            key = phase(*args, **kwargs) if callable(phase) else phase
            self.sync()
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[key] += time.perf_counter() - start
                self.calls[key] += 1
        setattr(owner, name, timed)

    def __enter__(self) -> "PhaseTimer":
        model = self.model
        self._wrap(model, "encode_video", "vit")
        self._wrap(model, "run_language_model",
                   lambda embeds, *a, **k: "prefill" if embeds.shape[1] > 1 else "decode")
        self._wrap(model.sam2, "encode_frames", "sam2")
        self._wrap(model.sam2, "track_step", "sam2")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, saved in reversed(self._saved):
            if saved is None:
                owner.__dict__.pop(name, None)
            else:
                setattr(owner, name, saved)

    def ms(self, phase: str) -> float:
        return self.seconds[phase] * 1e3


class Bench:
    """One run: the loaded model, the device, the profile and the part file being written."""

    def __init__(self, args, profile: Profile, part_name: str) -> None:
        self.args, self.profile, self.part_name = args, profile, part_name
        self.out = Path(args.out)
        self.started = time.monotonic()
        self.part: dict = {"finished": False, "columns": {}, "notes": [], "profile": dataclasses.asdict(profile)}
        self.model = self.tokenizer = self.engine = None

    # ---- bookkeeping --------------------------------------------------------------------
    def save(self) -> None:
        gpu_table.write_part(self.out, self.part_name, self.part)

    def column(self, name: str) -> dict:
        return self.part["columns"].setdefault(name, {})

    def left_s(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.started)

    def section(self, name: str, fn, *args, need_s: float = 0.0, missing: list[str] | None = None) -> None:
        """Run one section; its error, a missing module or too little time becomes a note."""
        if missing:
            self.part["notes"].append(f"{name}: skipped, missing Python modules {', '.join(missing)}")
        elif self.left_s() < need_s:
            self.part["notes"].append(f"{name}: skipped, {self.left_s():.0f} s left of the time budget")
        else:
            start, cpu = time.monotonic(), time.process_time()
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
                import traceback

                traceback.print_exc()
                self.part["notes"].append(f"{name}: failed: {type(exc).__name__}: {str(exc)[:300]}")
            print(f"[bench_gpu] {name}: {time.monotonic() - start:.1f} s ({time.process_time() - cpu:.1f} s CPU)",
                  flush=True)
        self.save()

    # ---- device helpers -----------------------------------------------------------------
    @property
    def cuda(self) -> bool:
        return self.args.device.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def allocated_mib(self) -> float | None:
        import torch

        return torch.cuda.memory_allocated() / MIB if self.cuda else None

    def reset_peak(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_mib(self) -> float | None:
        import torch

        return torch.cuda.max_memory_allocated() / MIB if self.cuda else None

    # ---- sections -----------------------------------------------------------------------
    def load(self) -> None:
        """Load through the backend's Engine when it imports (the production path), else directly."""
        import torch

        torch.manual_seed(0)
        self.reset_peak()
        start = time.perf_counter()
        if not missing_modules(BACKEND_MODULES):
            from backend.engine import Engine

            self.engine = Engine(self.settings())
            with self.engine.gpu:
                self.model, self.tokenizer = self.engine.model()
        else:
            from unipixel_model.loading import from_pretrained, resolve_checkpoint
            from unipixel_model.tokenization import load_tokenizer

            path = resolve_checkpoint(self.profile.model)
            self.model, self.tokenizer = from_pretrained(path, device=self.args.device), load_tokenizer(path)
        self.sync()
        base = self.column("baseline")
        base["load_s"] = time.perf_counter() - start
        base["gpu_model_mib"] = self.allocated_mib()
        dtype = next(self.model.model.language_model.parameters()).dtype
        self.part["meta"].update(dtype=str(dtype).replace("torch.", ""),
                                 params=f"{sum(p.numel() for p in self.model.parameters()) / 1e9:.2f} B")

    def settings(self, **overrides):
        from backend.settings import Settings

        work = Path(self.work)
        base = dict(model=self.profile.model, device=self.args.device, local_roots=(work,),
                    media_cache_dir=work / "cache", data_dir=work / "data", model_dir=work / "models",
                    redis_url="redis://127.0.0.1:9/0", describe_objects=False)
        base.update(overrides)
        return Settings(**base)

    def session_rows(self, column: str, cold: bool = False, click: bool = True, text: bool = True) -> None:
        """First refer (phases), then the second click and the text query + decode speed, on a fresh session."""
        from unipixel_model.session import InferenceSession
        from unipixel_model.types import PointPrompt

        p, row = self.profile, self.column(column)
        frames = scene(p.query_frames, p.query_side)
        mid = p.query_frames // 2
        x, y = square_center(p.query_frames, p.query_side, mid)
        click = {1: PointPrompt(x, y, mid)}
        if cold or column != "baseline":  # first call: CUDA kernels, compile, autotuning
            start = time.perf_counter()
            InferenceSession.open(self.model, self.tokenizer, frames).refer(click, ask=False)
            self.sync()
            row["cold_refer_ms"] = (time.perf_counter() - start) * 1e3
        session = InferenceSession.open(self.model, self.tokenizer, frames)
        with PhaseTimer(self.model, self.sync) as timer:
            start = time.perf_counter()
            session.refer(click, ask=False)
            row["refer_ms"] = (time.perf_counter() - start) * 1e3
        row.update(refer_vit_ms=timer.ms("vit"), refer_prefill_ms=timer.ms("prefill"), refer_sam2_ms=timer.ms("sam2"))
        if click:
            start = time.perf_counter()
            session.refine(1, [PointPrompt(x + p.query_side // 12, y, mid, positive=False)])
            self.sync()
            row["click2_ms"] = (time.perf_counter() - start) * 1e3
        if not text:
            return
        start = time.perf_counter()
        session.segment("Please segment the yellow square.", forced_answer="Sure, it is <|seg|>.")
        self.sync()
        row["text_ms"] = (time.perf_counter() - start) * 1e3
        session.max_new_tokens = p.gen_tokens
        with PhaseTimer(self.model, self.sync) as timer:
            session.segment("Please segment the yellow square.")
        row["decode_ms_per_token"] = timer.ms("decode") / max(1, timer.calls["decode"])

    def propagation_rows(self, column: str, memory: bool) -> None:
        """Propagation fps over the long clip; with ``memory``, device memory per session and its growth."""
        p, row = self.profile, self.column(column)
        held, feat, peak = self._track_clip(p.track_frames, row)
        if not memory:
            return
        row["feature_cache_mib"] = feat
        if held is None:
            return
        short_held, short_feat, _ = self._track_clip(p.short_frames, None)
        row.update(session_peak_mib=peak, session_retained_mib=held,
                   session_growth_mib_per_frame=((held - feat) - (short_held - short_feat))
                   / (p.track_frames - p.short_frames))
        import torch

        total = torch.cuda.get_device_properties(0).total_memory / MIB
        model = self.column("baseline").get("gpu_model_mib") or 0.0
        row["sessions_fit"] = float(math.floor((total - model - (peak - held)) / max(held, 1.0)))

    def _track_clip(self, num_frames: int, row: dict | None) -> tuple[float | None, float, float | None]:
        """Open a session on ``num_frames`` frames and refer one click on frame 0 (tracked to the end).

        Returns (device MiB the open session holds, feature-cache MiB, peak device MiB above the model).
        """
        from unipixel_model.session import InferenceSession
        from unipixel_model.types import PointPrompt

        side = self.profile.track_side
        frames = scene(num_frames, side)
        self.reset_peak()
        before = self.allocated_mib()
        session = InferenceSession.open(self.model, self.tokenizer, frames)
        with PhaseTimer(self.model, self.sync) as timer:
            session.refer({1: PointPrompt(*square_center(num_frames, side, 0), 0)}, ask=False)
        if row is not None:
            row["fps"] = num_frames / max(timer.seconds["sam2"], 1e-9)
        feat = session.features.nbytes / MIB
        held = None if before is None else self.allocated_mib() - before
        peak = None if before is None else self.peak_mib() - before
        del session
        self.reset_peak()
        return held, feat, peak

    def backend_rows(self) -> None:
        """/predict over real HTTP (werkzeug threaded server): first and second click per annotator."""
        import numpy as np
        from werkzeug.serving import make_server

        from backend.api import create_app
        from backend.engine import Engine
        from benchmarks.bench_media import config, keypoint, predict_body, square_box, write_frames

        settings = self.settings(max_queued_requests=max(self.profile.annotators) + 1)
        engine = Engine(settings)
        engine.share_model(self.engine)
        server = make_server("127.0.0.1", 0, create_app(settings, engine), threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/predict"
        frames = [str(f) for f in write_frames(Path(self.work) / "frames", self.profile.click_frames)]
        cfg = config("video_masks")
        x1, y1, x2, y2 = square_box(0)
        pos = keypoint((x1 + x2) / 2, (y1 + y2) / 2, True, "k1", "frames", 0)
        neg = keypoint(x1 + 6, y1 + 6, False, "k2", "frames", 0)
        task_ids = iter(range(100, 1000))

        def annotate(results: list, barrier: threading.Barrier | None) -> None:
            task = next(task_ids)
            if barrier is not None:
                barrier.wait()
            first = _post_ms(url, predict_body(task, {"frames": frames}, cfg, [pos]))
            second = _post_ms(url, predict_body(task, {"frames": frames}, cfg, [pos, neg]))
            results.append((first, second))

        try:
            annotate([], None)  # warm-up: the code paths of both clicks
            row = self.column("baseline")
            for count in self.profile.annotators:
                results: list = []
                barrier = threading.Barrier(count)
                workers = [threading.Thread(target=annotate, args=(results, barrier)) for _ in range(count)]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
                firsts, seconds = [r[0] for r in results], [r[1] for r in results]
                row.update({f"http{count}_first_median_ms": float(np.median(firsts)),
                            f"http{count}_first_max_ms": max(firsts),
                            f"http{count}_second_median_ms": float(np.median(seconds)),
                            f"http{count}_second_max_ms": max(seconds)})
        finally:
            server.shutdown()
            engine.sessions.clear()

    def training_rows(self) -> None:
        """Two stage-3 steps (LoRA r``lora_r``, the ``3b`` recipe, grad_accum 1) on one mem sample."""
        import torch

        from finetune.recipe import load_recipe
        from finetune.sample import TrainSample
        from finetune.trainer import Trainer
        from unipixel_model.types import BoxPrompt

        p = self.profile
        media, masks = _write_train_clip(Path(self.work) / "train", p.train_frames, p.train_side)
        x1, y1, x2, y2 = _box_of(masks[0])
        sample = TrainSample("mem", str(media), list(range(p.train_frames)),
                             "[1] <|ref|> Please localize the relevant objects with IDs.", "[1] <|seg|>",
                             prompts=[BoxPrompt(x1, y1, x2, y2, 0)], target_masks=masks[None])
        recipe = dataclasses.replace(load_recipe("3b"), base_model=p.model, lora_r=p.lora_r, lora_alpha=2 * p.lora_r,
                                     max_steps=2, grad_accum=1, frames_per_video=p.train_frames, log_every=1,
                                     llm_min_pixels=None, llm_max_pixels=None)  # the model's own budget
        self.reset_peak()
        before = self.allocated_mib()
        trainer = Trainer(self.model, self.tokenizer, recipe)
        marks = [time.monotonic()]
        trainer.train([sample], progress=lambda *_: (self.sync(), marks.append(time.monotonic())))
        row = self.column("baseline")
        row["train_step1_s"] = marks[1] - marks[0]
        row["train_step2_s"] = marks[2] - marks[1] if len(marks) > 2 else None
        row["train_peak_mib"] = self.peak_mib()
        row["train_trainable_m"] = sum(q.numel() for q in self.model.parameters() if q.requires_grad) / 1e6
        if before is not None:
            self.part["notes"].append(f"training: {before:,.0f} MiB were allocated before the trainer was built "
                                      "(the inference model it trains in place)")
        del trainer
        torch.cuda.empty_cache() if self.cuda else None

    def lever_rows(self, lever: str) -> None:
        from unipixel_model.speed import SpeedLevers, apply_levers, clear_levers

        levers = SpeedLevers.parse(lever)
        sam2_lever = levers.sam2_bf16 or levers.compile_sam2 or levers.gpu_frames
        apply_levers(self.model, levers)
        try:  # only the rows the lever can change
            self.session_rows(levers.label, click=sam2_lever, text=levers.attn is not None)
            if sam2_lever:
                self.propagation_rows(levers.label, memory=levers.sam2_bf16)
        finally:
            clear_levers(self.model)


def _post_ms(url: str, body: dict) -> float:
    """Milliseconds of one POST; raises on a non-200 answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as reply:
        reply.read()
        if reply.status != 200:
            raise RuntimeError(f"/predict answered {reply.status}")
    return (time.perf_counter() - start) * 1e3


def _write_train_clip(folder: Path, count: int, side: int):
    """JPEG frames of :func:`scene` and the square's masks bool [T, side, side]."""
    import numpy as np

    from finetune.world import writers

    frames = scene(count, side)
    writers.write_frame_folder(frames, folder, ".jpg")
    return folder, np.all(frames == np.array([230, 200, 40], np.uint8), axis=-1)


def _box_of(mask) -> tuple[float, float, float, float]:
    ys, xs = mask.nonzero()
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def describe_machine(args) -> dict:
    import torch
    import transformers

    meta = {"model": None, "device": args.device, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        meta["gpu"] = f"{props.name}, {props.total_memory / 2 ** 30:.0f} GiB"
    return meta


def run(args) -> int:
    profile = PROFILES[args.size]
    if args.model:
        profile = dataclasses.replace(profile, model=args.model)
    if args.levers is not None:
        profile = dataclasses.replace(profile, levers=tuple(args.levers))
    part_name = "main" if args.part == "main" else f"lever-{args.lever}"
    bench = Bench(args, profile, part_name)
    missing = missing_modules(CORE_MODULES)
    bench.part["meta"] = {"model": profile.model, "device": args.device}
    if missing:
        bench.part["notes"].append(f"cannot run: missing Python modules {', '.join(missing)}")
        bench.save()
        return 2
    import unipixel_model  # noqa: F401  (torchvision shim)
    import torch

    torch.set_num_threads(args.threads) if args.threads else None
    bench.part["meta"] = {**describe_machine(args), "model": profile.model}
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
        bench.work = work
        tempfile.tempdir = work  # session memmaps and backend files go away with the run
        bench.section("load", bench.load)
        if bench.model is None:
            return 1
        if args.part == "lever":
            bench.section(args.lever, bench.lever_rows, args.lever)
        else:
            bench.section("session", bench.session_rows, "baseline", True)
            bench.section("propagation + memory", bench.propagation_rows, "baseline", True)
            bench.section("backend", bench.backend_rows, need_s=20,
                          missing=missing_modules(BACKEND_MODULES) or ([] if bench.engine else ["backend"]))
            for lever in profile.levers:
                bench.section(lever, bench.lever_rows, lever, need_s=40)
            bench.section("training", bench.training_rows, need_s=20, missing=missing_modules(TRAIN_MODULES))
        bench.part["finished"] = True
        bench.part["meta"]["seconds"] = round(time.monotonic() - bench.started)
        bench.save()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder of the part files and the rendered table")
    parser.add_argument("--render", action="store_true", help="only merge the parts into the table and print it")
    parser.add_argument("--size", choices=sorted(PROFILES), help="default: full with CUDA, else tiny")
    parser.add_argument("--model", help="override the profile's model reference")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--part", choices=("main", "lever"), default="main")
    parser.add_argument("--lever", default="compile_sam2", help="with --part lever: the lever to measure")
    parser.add_argument("--levers", nargs="*", help="levers measured as columns by --part main (default: profile's)")
    parser.add_argument("--budget-s", type=float, default=1e9, help="sections that would not fit are skipped")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = parser.parse_args()
    if args.render:
        print(gpu_table.render(Path(args.out)), end="")
        return 0
    if args.device is None or args.size is None:
        try:
            import torch

            cuda = torch.cuda.is_available()
        except ImportError:
            cuda = False
        args.device = args.device or ("cuda" if cuda else "cpu")
        args.size = args.size or ("full" if args.device.startswith("cuda") else "tiny")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
