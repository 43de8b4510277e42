"""Background tracks in flight, kept on disk (``UNIPIXEL_DATA_DIR/pending/``), so that a backend killed in the middle
of a propagation says at its next start what it dropped, instead of losing it silently.

One small JSON file per submitted background track: written before the work starts, removed when it ends (posted,
dropped for a reason already logged, or failed). Whatever is left at start-up was cut off by a crash or a kill.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)
# What an annotator does once the backend serves again, for work a stop or a kill cut off.
HOW_TO_GET_IT_BACK = "select the region and press its label again (or Retrieve Predictions) to get it"


class PendingTracks:
    """Markers of background tracks not finished yet."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "pending"

    def add(self, task_id: int, region_ids: list[str]) -> Path | None:
        """Mark a background track of ``region_ids`` on ``task_id`` as started; None when the disk refuses."""
        path = self.folder / f"{task_id}-{uuid.uuid4().hex[:12]}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"task": task_id, "regions": region_ids, "started": time.time()}))
        except OSError as err:
            logger.warning("cannot mark the background track of task %s in %s: %s", task_id, self.folder, err)
            return None
        return path

    def done(self, marker: Path | None) -> None:
        """The background track of ``marker`` ended, one way or another."""
        if marker is not None:
            marker.unlink(missing_ok=True)

    def report_dropped(self) -> list[dict]:
        """At start-up: log every background track a previous process left unfinished, then forget it."""
        dropped = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                entry = {"task": path.stem.split("-")[0], "regions": []}
            logger.warning("task %s: the full track of %s was still being propagated when the backend stopped and "
                           "was not posted to Label Studio; %s", entry.get("task"),
                           ", ".join(entry.get("regions") or []) or "its regions", HOW_TO_GET_IT_BACK)
            path.unlink(missing_ok=True)
            dropped.append(entry)
        return dropped
