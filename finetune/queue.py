"""Training queue on Redis + RQ: one pending fine-tune per project, policies, JSON job specs.

- ``ANNOTATION_CREATED``/``UPDATED``/``ANNOTATIONS_CREATED``/``ANNOTATIONS_DELETED`` count towards
  ``every_n`` (0 = never by count) and arm the ``every_minutes`` schedule;
- ``START_TRAINING`` queues a run at the front of the queue now;
- while a project's run is still queued, new triggers coalesce into it (``pending`` key); the
  key is cleared when the run starts, so corrections made during training queue the next run.

Jobs use RQ's JSON serializer and carry only a JSON spec, so any worker version can read them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

JOB_FUNC = "finetune.jobs.run_training"
SCHEDULE_FUNC = "finetune.jobs.scheduled_training"
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED",
                     "ANNOTATION_DELETED")
RESULT_TTL_S = 7 * 24 * 3600
FAILURE_TTL_S = 30 * 24 * 3600


@dataclass(frozen=True)
class QueuePolicy:
    """When to train. ``every_n`` new annotation events, or every ``every_minutes``, or on START_TRAINING."""

    every_n: int = 0
    every_minutes: float = 0.0
    job_timeout_s: int = 6 * 3600
    recipe: str = "3b"

    def __post_init__(self) -> None:
        if self.every_n < 0 or self.every_minutes < 0 or self.job_timeout_s <= 0:
            raise ValueError(f"invalid training policy {self}: counts and minutes must be >= 0, timeout > 0")


def key(kind: str, project_id: int) -> str:
    """Redis key of a project's ``count``, ``pending`` job id or ``scheduled`` flag."""
    return f"unipixel:train:{kind}:{project_id}"


class TrainingQueue:
    """Enqueue fine-tunes for Label Studio projects."""

    def __init__(self, redis: Redis, name: str, policy: QueuePolicy) -> None:
        self.redis, self.policy = redis, policy
        self.queue = Queue(name, connection=redis, serializer=JSONSerializer)

    def on_event(self, action: str, project_id: int) -> dict:
        """Apply the policy to one webhook event; returns what happened (for the webhook's answer)."""
        if action == "START_TRAINING":
            return self.enqueue(project_id, "START_TRAINING", now=True)
        if action not in ANNOTATION_EVENTS:
            return {"status": "ignored", "action": action}
        count = int(self.redis.incr(key("count", project_id)))
        self._arm_schedule(project_id)
        if self.policy.every_n and count >= self.policy.every_n:
            return self.enqueue(project_id, f"{count} new annotations")
        return {"status": "counted", "new_annotations": count}

    def enqueue(self, project_id: int, reason: str, now: bool = False) -> dict:
        """Queue a run for ``project_id`` unless one is already waiting (then coalesce into it)."""
        pending = self.pending_job(project_id)
        if pending is not None:
            if now:  # START_TRAINING: the waiting run moves to the front
                self.queue.remove(pending)
                self.queue.enqueue_job(pending, at_front=True)
            return {"status": "coalesced", "job": pending.id}
        spec = {"project_id": project_id, "reason": reason, "recipe": self.policy.recipe,
                "requested_at": time.time()}
        job = self.queue.enqueue(JOB_FUNC, spec, job_timeout=self.policy.job_timeout_s, result_ttl=RESULT_TTL_S,
                                 failure_ttl=FAILURE_TTL_S, at_front=now,
                                 description=f"fine-tune project {project_id}: {reason}")
        self.redis.set(key("pending", project_id), job.id)
        self.redis.set(key("count", project_id), 0)
        return {"status": "queued", "job": job.id}

    def pending_job(self, project_id: int) -> Job | None:
        """The project's run that has not started yet, if any."""
        job_id = self.redis.get(key("pending", project_id))
        if not job_id:
            return None
        try:
            job = Job.fetch(job_id.decode(), connection=self.redis, serializer=JSONSerializer)
        except NoSuchJobError:  # expired or deleted: nothing is pending
            self.redis.delete(key("pending", project_id))
            return None
        if job.get_status() in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
            return job
        return None

    def _arm_schedule(self, project_id: int) -> None:
        """With ``every_minutes``, make sure one scheduled check is waiting for this project."""
        if not self.policy.every_minutes:
            return
        if self.redis.set(key("scheduled", project_id), 1, nx=True, ex=int(self.policy.every_minutes * 60) + 60):
            self.queue.enqueue_in(timedelta(minutes=self.policy.every_minutes), SCHEDULE_FUNC,
                                  {"project_id": project_id, "recipe": self.policy.recipe},
                                  job_timeout=60, result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S)


def started(redis: Redis, project_id: int) -> None:
    """Called by the job when it starts: later events must queue a new run."""
    redis.delete(key("pending", project_id))

