"""The table ``benchmarks/gpu.sh`` writes: rows, the JSON parts it merges, and its markdown.

``bench_gpu.py`` writes one JSON part per process into the output folder (``part-main.json``,
``part-lever-<name>.json``), rewriting it after every section so that a run cut short by its time
limit still leaves what it measured. :func:`render` merges the parts into ``gpu_bench.json`` and
``gpu_bench.md``: one row per metric, one column per configuration (``baseline``, then one per
speed lever, each lever alone on top of the baseline). A part whose process did not finish shows
as such in the notes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

PART_GLOB = "part-*.json"
TABLE_JSON = "gpu_bench.json"
TABLE_MD = "gpu_bench.md"

# (key, label, decimals); a label's {placeholders} are filled from the run's profile.
ROWS: list[tuple[str, str, int]] = [
    ("load_s", "model load: random weights built on the device (s)", 1),
    ("cold_refer_ms", "first refer right after loading, cold (ms)", 0),
    ("refer_ms", "first refer: one click, {query_frames} frames @ {query_side} px, warm (ms)", 0),
    ("refer_vit_ms", "  of which ViT (ms)", 0),
    ("refer_prefill_ms", "  of which LLM prefill (ms)", 0),
    ("refer_sam2_ms", "  of which SAM 2: encode + track {query_frames} frames (ms)", 0),
    ("click2_ms", "second click (SAM 2 only, re-propagates {query_frames} frames) (ms)", 0),
    ("text_ms", "text query, answer teacher-forced (ms)", 0),
    ("decode_ms_per_token", "LLM decode (ms per generated token)", 1),
    ("fps", "propagation @ {track_side} px over {track_frames} frames (frames/s)", 1),
    ("gpu_model_mib", "GPU memory: model weights (MiB)", 0),
    ("session_peak_mib", "GPU memory: peak of one session, {track_frames} frames (MiB)", 0),
    ("session_retained_mib", "GPU memory: held by an open session (MiB)", 0),
    ("feature_cache_mib", "SAM 2 feature cache held by that session, capped (MiB)", 0),
    ("session_growth_mib_per_frame",
     "  beyond the cache, growth per extra frame ({short_frames} -> {track_frames}) (MiB)", 4),
    ("sessions_fit", "open sessions that fit on this device", 0),
]
BACKEND_ROWS = [("first_median_ms", "first click, median (ms)"), ("first_max_ms", "first click, max (ms)"),
                ("second_median_ms", "second click, median (ms)"), ("second_max_ms", "second click, max (ms)")]
TRAIN_ROWS: list[tuple[str, str, int]] = [
    ("train_step1_s", "training: first stage-3 step, LoRA r{lora_r} (s)", 2),
    ("train_step2_s", "training: second step (s)", 2),
    ("train_peak_mib", "training: peak GPU memory (MiB)", 0),
    ("train_trainable_m", "training: trainable parameters (M)", 1),
]


def write_part(out_dir: Path, name: str, part: dict) -> None:
    """Write ``part-<name>.json`` atomically (the table may be rendered while a run is going)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".part-{name}.json.tmp"
    tmp.write_text(json.dumps(part, indent=2, default=str))
    tmp.replace(out_dir / f"part-{name}.json")


def merge_parts(out_dir: Path) -> dict:
    """All parts in one dict: ``meta`` and ``notes`` of the main part, every part's columns."""
    merged: dict = {"meta": {}, "columns": {}, "notes": [], "profile": {}}
    parts = sorted(out_dir.glob(PART_GLOB), key=lambda p: (p.name != "part-main.json", p.name))
    for path in parts:
        part = json.loads(path.read_text())
        if path.name == "part-main.json":
            merged["meta"], merged["profile"] = part.get("meta", {}), part.get("profile", {})
        merged["columns"].update(part.get("columns", {}))
        merged["notes"] += part.get("notes", [])
        if not part.get("finished"):
            merged["notes"].append(f"{path.stem[5:]}: did not finish (time limit or crash); its cells are partial")
    return merged


def _cell(value, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:,.{decimals}f}"


def markdown(merged: dict) -> str:
    """The merged table as markdown: a header line, the table, then notes."""
    meta, profile, columns = merged["meta"], merged["profile"], merged["columns"]
    names = list(columns)
    head = ", ".join(f"{k} {v}" for k, v in meta.items())
    lines = [f"**{head}**", "", "| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    rows = [(k, label, d) for k, label, d in ROWS]
    for n in profile.get("annotators", []):
        rows += [(f"http{n}_{k}", f"backend /predict over HTTP, {n} annotator{'s' * (n > 1)}: {label}", 0)
                 for k, label in BACKEND_ROWS]
    rows += TRAIN_ROWS
    for key, label, decimals in rows:
        values = [columns[name].get(key) for name in names]
        if all(v is None for v in values):
            continue
        lines.append(f"| {label.format(**profile)} | " + " | ".join(_cell(v, decimals) for v in values) + " |")
    if merged["notes"]:
        lines += [""] + [f"- {note}" for note in merged["notes"]]
    return "\n".join(lines) + "\n"


def render(out_dir: Path) -> str:
    """Merge the parts of ``out_dir`` into ``gpu_bench.json`` + ``gpu_bench.md``; returns the markdown."""
    merged = merge_parts(out_dir)
    text = markdown(merged)
    (out_dir / TABLE_JSON).write_text(json.dumps(merged, indent=2, default=str))
    (out_dir / TABLE_MD).write_text(text)
    return text


if __name__ == "__main__":  # python benchmarks/gpu_table.py OUT_DIR: render without torch or numpy
    import sys

    print(render(Path(sys.argv[1])), end="")
