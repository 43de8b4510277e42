"""Published model versions under ``MODEL_DIR`` (written by ``finetune.publish``).

Layout::

    MODEL_DIR/<version>/adapter/      peft LoRA + trained heads (what AdapterSwitcher loads)
    MODEL_DIR/<version>/version.json  {"version", "created", "project", "metrics", "base_model", ...}
    MODEL_DIR/<version>/loss.png
    MODEL_DIR/latest                  the served version's name (replaced atomically)
    MODEL_DIR/runs/<project>.json     the last fine-tune run of each project, published or not (its
                                      status and, when nothing was published, the reason)

A version directory appears by ``rename`` of a finished temporary directory, so a reader never
sees half a version; ``latest`` moves only afterwards.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

LATEST = "latest"
RUNS = "runs"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


class VersionStore:
    """Read (and, for the publisher, point ``latest`` at) versions in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._broken: dict[str, str] = {}  # version -> why it could not be activated

    def latest(self) -> str | None:
        """The version ``latest`` names, if it is a complete version directory."""
        try:
            name = (self.root / LATEST).read_text().strip()
        except OSError:
            return None
        if not VERSION_RE.match(name) or not (self.root / name / "version.json").is_file():
            return None
        return name

    def is_broken(self, version: str | None) -> bool:
        """Whether activating ``version`` failed in this process (it is then never retried)."""
        return version in self._broken

    def adapter_dir(self, version: str) -> Path:
        """Where ``version``'s adapter (LoRA + trained modules) lies."""
        return self.root / version / "adapter"

    def info(self, version: str) -> dict:
        """``version.json`` of a version (metrics, losses, project); ``{"version"}`` when unreadable."""
        try:
            return json.loads((self.root / version / "version.json").read_text())
        except (OSError, ValueError):
            return {"version": version}

    def list(self) -> list[dict]:
        """Every complete version (oldest first) with its metadata and metrics."""
        if not self.root.is_dir():
            return []
        found = [self.info(p.name) for p in self.root.iterdir()
                 if p.is_dir() and VERSION_RE.match(p.name) and (p / "version.json").is_file()]
        return sorted(found, key=lambda info: (_created(info), str(info.get("version", ""))))

    def set_latest(self, version: str) -> None:
        """Point ``latest`` at ``version`` atomically (write a temporary file, then rename)."""
        if not (self.root / version / "version.json").is_file():
            raise FileNotFoundError(f"{self.root / version} is not a complete version (no version.json)")
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".latest-")
        with os.fdopen(fd, "w") as out:
            out.write(version + "\n")
        os.replace(tmp, self.root / LATEST)

    def mark_broken(self, version: str | None, reason: str = "") -> None:
        """Never try ``version`` again in this process (it failed to load, for ``reason``)."""
        if version:
            self._broken[version] = reason

    def refused(self) -> dict[str, str]:
        """The versions this process could not activate, with why (``GET /versions``)."""
        return dict(self._broken)

    def record_run(self, project_id: int, outcome: dict) -> None:
        """Keep ``outcome`` (status, reason, numbers) as the last run of ``project_id`` (replaced atomically)."""
        folder = self.root / RUNS
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".run-")
        with os.fdopen(fd, "w") as out:
            json.dump({"project": project_id, **outcome}, out, default=str)
        os.replace(tmp, folder / f"{int(project_id)}.json")

    def last_runs(self) -> dict[str, dict]:
        """Project id (str) -> its last run's outcome, for ``GET /versions``."""
        runs: dict[str, dict] = {}
        for path in sorted((self.root / RUNS).glob("*.json")) if (self.root / RUNS).is_dir() else []:
            try:
                runs[path.stem] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return runs


def _created(info: dict) -> float:
    """When a version was published (seconds since the epoch); 0 when ``version.json`` does not say."""
    try:
        return float(info.get("created", 0))
    except (TypeError, ValueError):
        return 0.0
