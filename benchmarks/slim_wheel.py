"""Rewrite a transformers wheel without the model families UniPixel does not use (59 -> ~9 MB unpacked).

Usage: ``python benchmarks/slim_wheel.py transformers-X-py3-none-any.whl [keep ...]``

The device tool carries at most 64 MiB of working tree, and the test fixtures take 55 of them;
the full transformers wheel (13 MB) would not fit. transformers finds its model packages by
listing ``transformers/models/`` at import time, so dropping directories there is safe as long as
nothing used imports them: ``auto``, ``encoder_decoder`` and ``bloom`` are what loading, the
session, the backend, peft and the trainer import (read off ``sys.modules`` after a full
``bench_gpu.py`` run), plus the Qwen2 / Qwen2-VL / Qwen2.5-VL and Llama families (the ``RECORD``
is rewritten to match). The wheel is replaced in place.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

KEEP = ("auto", "encoder_decoder", "bloom", "llama", "qwen2", "qwen2_vl", "qwen2_5_vl")


def slim(wheel: Path, keep: tuple[str, ...] = KEEP) -> tuple[int, int]:
    """Drop ``transformers/models/<name>/`` for every name not in ``keep``. Returns (bytes before, after)."""
    def wanted(name: str) -> bool:
        parts = name.split("/")
        return not (len(parts) > 3 and parts[:2] == ["transformers", "models"] and parts[2] not in keep)

    tmp = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if not wanted(info.filename):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(line for line in lines if wanted(line.split(",")[0])) + "\n").encode()
            dst.writestr(info, data)
    before = wheel.stat().st_size
    tmp.replace(wheel)
    return before, wheel.stat().st_size


if __name__ == "__main__":
    path = Path(sys.argv[1])
    size_before, size_after = slim(path, tuple(sys.argv[2:]) or KEEP)
    print(f"{path.name}: {size_before / 2 ** 20:.1f} MB -> {size_after / 2 ** 20:.1f} MB")
