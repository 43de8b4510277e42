"""``benchmarks/gpu.sh`` at the shrunk size on the CPU: the script the GPU machine runs, end to end.

It must produce the whole table (session, propagation, memory, backend over HTTP, training, one
column per lever) from a bare call, and say what is missing instead of stopping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEVERS = "sam2_bf16 gpu_frames attn=eager"


def _run_script(out: Path, home: Path, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHON": sys.executable, "SIZE": "tiny", "WHEELS": str(out / "no-wheels"),
               "HOME": str(home), "LEVERS": LEVERS, **env}
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out)], env=environ,
                          capture_output=True, text=True, timeout=300)


def test_gpu_script_writes_the_whole_table_at_tiny_size(tmp_path):
    start = time.monotonic()
    done = _run_script(tmp_path / "out", tmp_path)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = json.loads((tmp_path / "out" / "gpu_bench.json").read_text())
    markdown = (tmp_path / "out" / "gpu_bench.md").read_text()
    assert list(table["columns"]) == ["baseline", "sam2_bf16", "gpu_frames", "attn=eager"]
    base = table["columns"]["baseline"]
    for key in ("load_s", "cold_refer_ms", "refer_ms", "refer_vit_ms", "refer_prefill_ms", "refer_sam2_ms",
                "click2_ms", "text_ms", "decode_ms_per_token", "fps", "feature_cache_mib",
                "http1_first_median_ms", "http1_second_median_ms", "http2_first_max_ms", "http2_second_max_ms",
                "train_step1_s", "train_step2_s", "train_trainable_m"):
        assert isinstance(base.get(key), float) and base[key] > 0, (key, base.get(key))
    assert table["columns"]["sam2_bf16"]["fps"] > 0 and table["columns"]["attn=eager"]["text_ms"] > 0
    # a lever column has the rows the lever can change: the second click for SAM 2's levers only
    assert table["columns"]["sam2_bf16"]["click2_ms"] > 0 and "click2_ms" not in table["columns"]["attn=eager"]
    assert not [n for n in table["notes"] if "failed" in n or "skipped" in n], table["notes"]
    assert "| propagation @ 64 px over 8 frames (frames/s) |" in markdown
    assert markdown in done.stdout  # the table is printed too
    assert seconds < 150, f"gpu.sh took {seconds:.0f} s at tiny size"


def test_gpu_script_reports_missing_modules_instead_of_failing(tmp_path):
    """A stand-in interpreter without torch: the script says what is missing and still renders."""
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")  # no site-packages: no torch
    fake.chmod(0o755)
    done = _run_script(tmp_path / "out", tmp_path, PYTHON=str(fake), MAIN_LIMIT_S="60")
    assert "missing Python modules: torch" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "out" / "gpu_bench.md").is_file()
