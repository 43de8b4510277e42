"""Publish a trained adapter as ``MODEL_DIR/<version>/`` atomically, then move ``latest``.

The version is assembled in a hidden temporary directory next to its final place and renamed in
one step, so a crash (or SIGKILL) mid-publish leaves no partial version; ``latest`` moves only
after the rename. Temporary directories of killed runs are removed by a later publish once they are an hour old
(a younger one may be another worker's publish under way). Once ``latest`` has
moved, versions beyond the newest ``keep`` (``UNIPIXEL_KEEP_VERSIONS``) are removed, never the served one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from backend.versions import VersionStore

TMP_PREFIX = ".tmp-"
STALE_TMP_S = 3600.0  # a temporary folder untouched this long is a killed run's; a younger one may be another
# worker's publish under way (two projects can train at once), which must not be removed under it
logger = logging.getLogger(__name__)


def new_version_name(project_id: int) -> str:
    """``p<project>-<UTC timestamp>``: sortable and unique per second."""
    return f"p{project_id}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"


def publish(model_dir: Path, version: str, write_adapter: Callable[[Path], object], info: dict,
            losses: list[float], keep: int = 0) -> Path:
    """Write ``adapter/`` (via ``write_adapter(path)``), ``version.json`` and ``loss.png``, then rename; then
    remove the versions beyond the newest ``keep`` (0: keep every one; see :func:`remove_old_versions`).

    Returns:
        The final version directory (``latest`` already points at it).
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(model_dir, older_than_s=STALE_TMP_S)
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
    remove_old_versions(model_dir, keep)
    return final


def remove_old_versions(model_dir: Path, keep: int) -> list[str]:
    """Remove the complete versions older than the newest ``keep`` (by ``created``), except the one ``latest``
    names (an operator may have rolled back to it). Each goes by one rename to a hidden temporary name first, so a
    reader never sees half a version; a process killed mid-removal leaves that name to a later publish.

    Returns:
        The names removed, oldest first.
    """
    if keep <= 0:
        return []
    store = VersionStore(model_dir)
    served = store.latest()
    names = [str(info["version"]) for info in store.list()]
    removed = []
    for name in (name for name in names[:max(len(names) - keep, 0)] if name != served):
        hidden = Path(model_dir) / f"{TMP_PREFIX}removed-{name}"
        try:
            (Path(model_dir) / name).rename(hidden)
        except OSError as err:  # a version.json naming another folder, a read-only mount: the publish stands
            logger.warning("could not remove old version %s (%s); remove it by hand if MODEL_DIR runs short", name,
                           err)
            continue
        shutil.rmtree(hidden, ignore_errors=True)
        removed.append(name)
    if removed:
        logger.info("removed %d old version(s): %s; keeping the newest %d (UNIPIXEL_KEEP_VERSIONS)", len(removed),
                    ", ".join(removed), keep)
    return removed


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
