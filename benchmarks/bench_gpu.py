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
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import gpu_rows, gpu_table  # noqa: E402
from benchmarks.gpu_rows import MIB  # noqa: E402

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

    def lever_rows(self, lever: str) -> None:
        from unipixel_model.speed import SpeedLevers, apply_levers, clear_levers

        levers = SpeedLevers.parse(lever)
        sam2_lever = levers.sam2_bf16 or levers.compile_sam2 or levers.gpu_frames
        apply_levers(self.model, levers)
        try:  # only the rows the lever can change
            gpu_rows.session_rows(self, levers.label, click=sam2_lever, text=levers.attn is not None)
            if sam2_lever:
                gpu_rows.propagation_rows(self, levers.label, memory=levers.sam2_bf16)
        finally:
            clear_levers(self.model)


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
            bench.section("session", gpu_rows.session_rows, bench, "baseline", True)
            bench.section("propagation + memory", gpu_rows.propagation_rows, bench, "baseline", True)
            bench.section("backend", gpu_rows.backend_rows, bench, need_s=20,
                          missing=missing_modules(BACKEND_MODULES) or ([] if bench.engine else ["backend"]))
            for lever in profile.levers:
                bench.section(lever, bench.lever_rows, lever, need_s=40)
            bench.section("training", gpu_rows.training_rows, bench, need_s=20, missing=missing_modules(TRAIN_MODULES))
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
