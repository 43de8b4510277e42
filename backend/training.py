"""Webhook events -> the training queue (never trains in the serving process).

Each annotation event is first appended to a local record (``UNIPIXEL_DATA_DIR``), then counted
in Redis; a fine-tune job is queued per the policy. Redis being down costs no label: the event is
on disk and the next run gathers every annotation from Label Studio anyway.
"""

from __future__ import annotations

import logging
import threading
import time

from backend.errors import BadRequest, NothingToTrain, QueueUnavailable
from backend.settings import Settings
from finetune.gather import EVENTS_COMPACT_BYTES, AnnotationRecord

REDIS_TIMEOUT_S = 0.4  # LS gives webhooks 1 s
logger = logging.getLogger(__name__)


def project_id_of(data: dict) -> int:
    """The project id of a webhook payload (``project`` is the full project object)."""
    project = data.get("project") if isinstance(data, dict) else None
    raw = project.get("id") if isinstance(project, dict) else project
    if raw is None and isinstance(data, dict) and isinstance(data.get("annotation"), dict):
        raw = data["annotation"].get("project")
    try:
        return int(str(raw).split(".")[0])
    except (TypeError, ValueError):
        raise BadRequest("webhook payload has no project id (expected {\"project\": {\"id\": ...}})") from None


def record_event(settings: Settings, event: str, data: dict, project_id: int) -> threading.Thread | None:
    """Append the event's annotation to ``<data_dir>/projects/<id>/webhook_events.jsonl``.

    Returns:
        The thread compacting the project's events when they have outgrown ``EVENTS_COMPACT_BYTES`` (the webhook
        does not wait for it), else None.
    """
    if event == "START_TRAINING":
        return None
    record = AnnotationRecord(settings.data_dir, project_id)
    entry = {"action": event, "received_at": time.time(), "annotation": data.get("annotation"),
             "annotations": data.get("annotations"), "task": data.get("task")}
    if not record.append_event(entry, EVENTS_COMPACT_BYTES):
        return None
    thread = threading.Thread(target=_compact, args=(record, project_id), name=f"compact-events-{project_id}",
                              daemon=True)
    thread.start()
    return thread


def _compact(record: AnnotationRecord, project_id: int) -> None:
    try:
        counts = record.compact_events()
    except OSError as err:  # a full disk: the events stay as they were
        logger.warning("cannot compact the webhook events of project %d in %s: %s", project_id, record.folder, err)
        return
    if counts is not None:  # None: another thread or backend is compacting them now
        logger.info("project %d: compacted %d webhook events into %d (the latest annotation of each task)",
                    project_id, *counts)


def handle_event(settings: Settings, event: str, data: dict) -> dict:
    """Record the event and apply the training policy; returns the webhook's JSON answer.

    Raises:
        BadRequest: no project id in the payload.
        NothingToTrain: START_TRAINING on a project whose payload counts no annotation.
        QueueUnavailable: Redis cannot be reached (the event is still recorded locally).
    """
    from redis import Redis
    from redis.exceptions import RedisError

    from finetune.queue import QueuePolicy, TrainingQueue

    project_id = project_id_of(data)
    project = data.get("project")
    if event == "START_TRAINING" and isinstance(project, dict) and project.get("total_annotations_number") == 0:
        raise NothingToTrain(f"Nothing to train: project {project_id} has no submitted annotations. Label and submit "
                             "some tasks, then press Start Training again", field="project.total_annotations_number")
    try:
        record_event(settings, event, data, project_id)
    except OSError as err:  # a full or read-only disk must not drop the event: Redis and LS still have it
        logger.warning("cannot record %s for project %d in %s: %s", event, project_id, settings.data_dir, err)
    policy = QueuePolicy(settings.train_every_n, settings.train_every_minutes, settings.train_job_timeout_s,
                         settings.train_recipe)
    redis = Redis.from_url(settings.redis_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    try:
        outcome = TrainingQueue(redis, settings.train_queue, policy).on_event(event, project_id)
    except RedisError as err:
        raise QueueUnavailable(f"the training queue (Redis at {settings.redis_url}) is unreachable: "
                               f"{err.__class__.__name__}. The event was recorded locally; start Redis and the "
                               "next training run will gather every annotation from Label Studio") from None
    finally:
        redis.close()
    return {"project": project_id, "action": event, **outcome}
