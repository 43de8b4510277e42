"""What ``benchmarks/gpu.sh`` needs to know before it runs, in one import pass.

Prints three lines: the size to run (``full`` with CUDA, else ``tiny``), the versions found, and the
missing modules (space-separated, empty when none). Never fails: a missing module is a result.
"""

from __future__ import annotations

import importlib
import sys

MODULES = ("torch", "transformers", "tokenizers", "safetensors", "sam2", "hydra", "omegaconf", "iopath", "cv2", "PIL",
           "numpy", "flask", "werkzeug", "requests", "pycocotools", "yaml", "peft")
VERSIONED = ("torch", "transformers", "sam2")


def _version(name: str, module) -> str:
    from importlib import metadata

    try:
        return getattr(module, "__version__", None) or metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def main() -> int:
    missing, versions = [], []
    try:  # on a CPU-only torch, torchvision (imported by transformers, sam2, peft) needs the shim first
        importlib.import_module("unipixel_model._tv_shim")
    except Exception:  # noqa: BLE001 - torch itself may be missing: reported below
        pass
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - any failure means unusable here
            missing.append(name)
            continue
        if name in VERSIONED:
            versions.append(f"{name} {_version(name, module)}")
    cuda = "torch" not in missing and bool(sys.modules["torch"].cuda.is_available())
    print("full" if cuda else "tiny")
    print(", ".join([f"Python {sys.version.split()[0]}", *versions, f"CUDA {cuda}"]))
    print(" ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
