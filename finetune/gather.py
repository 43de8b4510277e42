"""Gather a project's corrected labels from Label Studio into a local record.

Each gather writes the project's accepted annotations (the latest per task) to
``<data_dir>/projects/<id>/annotations.jsonl`` and its labeling config to ``project.json``. When
Label Studio is reachable it is the truth (deleted annotations disappear from the run); when it
is not, the run falls back on the record plus the webhook events the backend appended, so an
outage loses nothing.

Both files stay the size of the project, not of its history: a gather from Label Studio replaces the record
(it held every version of every annotation: a video annotation's masks are megabytes, saved at each Update), and
the webhook events received before the gather began, which Label Studio's answer covers, are dropped. The backend
appends events while a gather runs, so the events file is first renamed aside (an append already under way lands
in the renamed file, and so was sent before the gather asked Label Studio); the renamed files are removed only
once the gather succeeded, and until then the offline fallback reads them too. A project that never trains has no
gather to drop its events, so the events are compacted as they grow: the latest annotation of each task and the
deleted ids are kept, which is all the offline fallback reads.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
# A project's webhook events are compacted once they pass this and what the last compaction kept (a video
# annotation's masks are megabytes, sent again at each Update; a project that never trains kept them all).
EVENTS_COMPACT_BYTES = 64 << 20


@dataclass
class GatheredAnnotation:
    """The accepted annotation of one task (pixels come later: this is Label Studio JSON)."""

    task_id: int
    data: dict
    annotation_id: int
    result: list[dict]
    updated_at: str

    @classmethod
    def from_task(cls, task: dict, annotation: dict) -> "GatheredAnnotation | None":
        """From LS task and annotation JSON; None for cancelled or empty annotations."""
        if annotation.get("was_cancelled") or not annotation.get("result"):
            return None  # skipped tasks and empty submissions teach nothing
        return cls(int(task["id"]), dict(task.get("data") or {}), int(annotation.get("id") or 0),
                   list(annotation["result"]), str(annotation.get("updated_at") or annotation.get("created_at") or ""))


@dataclass
class Gathered:
    """What a run trains on: the config, the latest annotation per task, and where it came from."""

    label_config: str
    annotations: list[GatheredAnnotation]  # the latest accepted annotation per task
    source: str                            # "label_studio" or "local record"


class AnnotationRecord:
    """The local record of one project: Label Studio's answer at the last gather, and the webhook events since."""

    def __init__(self, data_dir: Path, project_id: int) -> None:
        self.folder = Path(data_dir) / "projects" / str(project_id)
        self.path = self.folder / "annotations.jsonl"
        self.events = self.folder / "webhook_events.jsonl"
        self.project_file = self.folder / "project.json"

    @contextmanager
    def _events_lock(self, name: str = ".events.lock", wait: bool = True) -> Iterator[bool]:
        """Hold the project's lock file ``name`` (``flock``: across threads and processes); yields False when
        ``wait`` is False and another holds it. ``.events.lock`` orders appends (the backend's request threads),
        set-asides (the worker's gather) and compactions; ``.compact.lock`` lets one compaction run at a time."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / name, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append_event(self, entry: dict, compact_above_bytes: int = EVENTS_COMPACT_BYTES) -> bool:
        """Append one webhook event (JSON-able); returns True when :meth:`compact_events` is due: the events file
        has passed ``compact_above_bytes`` and the size of what the last compaction kept."""
        line = json.dumps(entry) + "\n"
        with self._events_lock():
            with open(self.events, "a") as out:
                out.write(line)
            size = self.events.stat().st_size
        if size <= compact_above_bytes:
            return False
        return size > sum(p.stat().st_size for p in self.folder.glob("webhook_events.*.aside.jsonl"))

    def compact_events(self) -> tuple[int, int] | None:
        """Rewrite every kept event as the latest accepted annotation of each task plus one row of the deleted ids:
        what :meth:`latest` reads, and so what an offline run trains on, stays the same.

        Returns:
            (events read, events kept); None when another thread or process is compacting this project now.
        """
        with self._events_lock(".compact.lock", wait=False) as mine:
            return self._compact_locked() if mine else None

    def _compact_locked(self) -> tuple[int, int]:
        with self._events_lock():
            for stale in self.folder.glob(".webhook_events.*.tmp"):  # a compaction killed mid-write
                stale.unlink(missing_ok=True)
            paths = self._set_aside_locked()
            rows = self._webhook_rows(paths)
            deleted = self._deleted_ids(rows)
            latest: dict[int, tuple[GatheredAnnotation, dict]] = {}
            for row, item in self._annotation_rows(rows):
                known = latest.get(item.task_id)
                if item.annotation_id not in deleted and (known is None or item.updated_at >= known[0].updated_at):
                    latest[item.task_id] = (item, row)
            kept = [latest[t][1] for t in sorted(latest)]
            if deleted:
                kept.insert(0, {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": i} for i in sorted(deleted)]})
            tmp = self.folder / f".webhook_events.{os.getpid()}.tmp"
            with open(tmp, "w") as out:
                out.writelines(json.dumps(row) + "\n" for row in kept)
            os.replace(tmp, self.folder / f"webhook_events.{time.time_ns()}.aside.jsonl")
            self.drop_events(paths)
        return len(rows), len(kept)

    def replace(self, items: list[GatheredAnnotation]) -> int:
        """Make the record exactly ``items`` (Label Studio's answer), written atomically; returns how many of them
        the record did not hold yet."""
        self.folder.mkdir(parents=True, exist_ok=True)
        seen = {(a.annotation_id, a.updated_at) for a in self._read(self.path)}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w") as out:
                for item in items:
                    out.write(json.dumps({**item.__dict__, "gathered_at": time.time()}) + "\n")
            os.replace(tmp, self.path)
        except BaseException:  # a full disk: the record stays as it was, and no half-written copy is left
            tmp.unlink(missing_ok=True)
            raise
        return sum((a.annotation_id, a.updated_at) not in seen for a in items)

    def set_events_aside(self) -> list[Path]:
        """Rename the webhook events received so far aside (the backend starts a new file at its next event).

        Returns:
            Every set-aside events file now in the folder (of this call, of gathers that failed or died, and of
            compactions): :meth:`drop_events` removes them once Label Studio has answered.
        """
        with self._events_lock():
            return self._set_aside_locked()

    def _set_aside_locked(self) -> list[Path]:
        if self.events.is_file():
            try:
                self.events.rename(self.folder / f"webhook_events.{time.time_ns()}.aside.jsonl")
            except FileNotFoundError:  # another gather of this project set it aside first
                pass
        return sorted(self.folder.glob("webhook_events.*.aside.jsonl"))

    @staticmethod
    def drop_events(paths: list[Path]) -> None:
        """Remove set-aside events files that Label Studio's answer covers."""
        for path in paths:
            path.unlink(missing_ok=True)

    def save_config(self, label_config: str) -> None:
        """Keep the project's labeling config for offline runs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.project_file.write_text(json.dumps({"label_config": label_config}))

    def latest(self) -> list[GatheredAnnotation]:
        """Latest annotation per task from the record and the webhook events (offline fallback)."""
        items = self._read(self.path) + self._webhook_annotations()
        deleted = self._deleted_ids()
        by_task: dict[int, GatheredAnnotation] = {}
        for item in items:
            if item.annotation_id in deleted:
                continue
            known = by_task.get(item.task_id)
            if known is None or item.updated_at >= known.updated_at:
                by_task[item.task_id] = item
        return [by_task[t] for t in sorted(by_task)]

    def label_config(self) -> str | None:
        try:
            return json.loads(self.project_file.read_text())["label_config"]
        except (OSError, ValueError, KeyError):
            return None

    @staticmethod
    def _read(path: Path) -> list[GatheredAnnotation]:
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                row.pop("gathered_at", None)
                out.append(GatheredAnnotation(**row))
            except (ValueError, TypeError):
                logger.warning("skipping a damaged line of %s", path)  # e.g. cut by a crash mid-write
        return out

    def _webhook_rows(self, paths: list[Path] | None = None) -> list[dict]:
        """Every webhook event kept, oldest first: set-aside files (named by time), then the current one."""
        rows = []
        default = [*sorted(self.folder.glob("webhook_events.*.aside.jsonl")), self.events]
        for path in default if paths is None else paths:
            try:
                lines = path.read_text().splitlines()
            except FileNotFoundError:  # set aside or dropped meanwhile, or never written
                continue
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        return rows

    @staticmethod
    def _annotation_rows(rows: list[dict]) -> Iterator[tuple[dict, GatheredAnnotation]]:
        """The events that carry an accepted annotation, with it."""
        for row in rows:
            task, annotation = row.get("task"), row.get("annotation")
            if isinstance(task, dict) and isinstance(annotation, dict) and "id" in task:
                try:
                    item = GatheredAnnotation.from_task(task, annotation)
                except (TypeError, ValueError):  # anyone with the webhook's URL can post; it is recorded as sent
                    logger.warning("skipping a malformed annotation event (task %r)", task.get("id"))
                    continue
                if item is not None:
                    yield row, item

    def _webhook_annotations(self) -> list[GatheredAnnotation]:
        return [item for _, item in self._annotation_rows(self._webhook_rows())]

    def _deleted_ids(self, rows: list[dict] | None = None) -> set[int]:
        ids: set[int] = set()
        for row in self._webhook_rows() if rows is None else rows:
            if row.get("action") in ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED"):
                entries = row.get("annotations") or [row.get("annotation")]
                for entry in entries if isinstance(entries, list) else [entries]:
                    try:
                        ids.add(int(entry["id"]) if isinstance(entry, dict) else int(entry))
                    except (KeyError, TypeError, ValueError):
                        logger.warning("skipping a malformed deletion event: %.200r", entry)
        return ids


def fetch_project(url: str, api_key: str, project_id: int) -> tuple[str, list[GatheredAnnotation]]:
    """The project's config and latest accepted annotation per task, through label-studio-sdk
    (personal access tokens are refreshed by the SDK; legacy tokens work too)."""
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=url, api_key=api_key, timeout=60)
    label_config = client.projects.get(id=project_id).label_config
    latest: dict[int, GatheredAnnotation] = {}
    for task in client.tasks.list(project=project_id, fields="all", only_annotated=True):
        task_dict = task.dict() if hasattr(task, "dict") else dict(task)
        for annotation in task_dict.get("annotations") or []:
            item = GatheredAnnotation.from_task(task_dict, annotation)
            known = latest.get(item.task_id) if item else None
            if item is not None and (known is None or item.updated_at >= known.updated_at):
                latest[item.task_id] = item
    return label_config, [latest[t] for t in sorted(latest)]


def gather(data_dir: Path, url: str, api_key: str, project_id: int) -> Gathered:
    """Pull from Label Studio and record; on an outage, use the local record.

    Raises:
        RuntimeError: Label Studio is unreachable and nothing was ever recorded for the project.
    """
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    record = AnnotationRecord(data_dir, project_id)
    try:
        if not url:
            raise ConnectionError("LABEL_STUDIO_URL is not set")
        aside = record.set_events_aside()  # before asking: what Label Studio answers covers these
        label_config, annotations = fetch_project(url, api_key, project_id)
    except (ApiError, httpx.HTTPError, OSError) as err:  # LS refused or unreachable: use what we kept (a bug
        # in our own code is not an outage, and must fail the run instead of training on old data)
        config = record.label_config()
        if config is None:
            raise RuntimeError(f"cannot gather project {project_id}: Label Studio failed ({err}) and there is no "
                               f"local record in {record.folder}") from None
        logger.warning("Label Studio unavailable (%s); training on the local record of project %d", err, project_id)
        return Gathered(config, record.latest(), "local record")
    record.save_config(label_config)
    new = record.replace(annotations)
    record.drop_events(aside)
    logger.info("project %d: %d annotated tasks (%d new or updated annotations)", project_id, len(annotations), new)
    return Gathered(label_config, annotations, "label_studio")
