"""Publish a trained adapter as ``MODEL_DIR/<version>/`` atomically, then move ``latest``.

The version is assembled in a hidden temporary directory next to its final place and renamed in
one step, so a crash (or SIGKILL) mid-publish leaves no partial version; ``latest`` moves only
after the rename. Stale temporary directories of killed runs are removed by the next publish.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from backend.versions import VersionStore

TMP_PREFIX = ".tmp-"


def new_version_name(project_id: int) -> str:
    """``p<project>-<UTC timestamp>``: sortable and unique per second."""
    return f"p{project_id}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"


def publish(model_dir: Path, version: str, write_adapter: Callable[[Path], object], info: dict,
            losses: list[float]) -> Path:
    """Write ``adapter/`` (via ``write_adapter(path)``), ``version.json`` and ``loss.png``, then rename.

    Returns:
        The final version directory (``latest`` already points at it).
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(model_dir)
    final = model_dir / version
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are immutable")
    tmp = model_dir / f"{TMP_PREFIX}{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_adapter(tmp / "adapter")
        plot_losses(losses, tmp / "loss.png")
        (tmp / "version.json").write_text(json.dumps({"version": version, "created": time.time(), **info}, indent=2))
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    VersionStore(model_dir).set_latest(version)
    return final


def plot_losses(losses: list[float], path: Path) -> None:
    """The training loss per optimizer step as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, marker="." if len(losses) < 50 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _remove_stale(model_dir: Path, older_than_s: float = 0.0) -> None:
    for path in model_dir.glob(f"{TMP_PREFIX}*"):
        if time.time() - path.stat().st_mtime >= older_than_s:
            shutil.rmtree(path, ignore_errors=True)
