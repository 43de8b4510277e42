"""The training worker: an RQ worker on the training queue that forks a work horse per job.

The worker process imports no torch: CUDA is initialised only inside the forked job, so a crashed
or killed job never leaves a broken CUDA context behind (RQ's fork semantics).

A worker killed outright (SIGKILL, OOM killer, power loss) leaves its job "started" for good: RQ only
notices once the job's heartbeat lapses and a worker cleans the registries. So a starting worker
first looks for runs whose worker on this host is gone (:func:`recover_abandoned`): each is marked
failed with the reason, and the project's run is queued again; it gathers every annotation anew.
A Redis restart does not end the worker either, nor Redis not being up yet when it starts: it waits for Redis
and goes on (the work horse of a running job keeps training; its progress updates are best-effort).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Worker
from rq.exceptions import StopRequested

from finetune.settings import FinetuneSettings

logger = logging.getLogger(__name__)


class WorkerStopped(SystemExit):
    """A SIGTERM/SIGINT stop of a worker with no job running, raised from the signal handler (exit status 0).

    A ``SystemExit`` because the handler runs wherever the main thread is, often inside a log call (RQ logs every
    Redis reconnect attempt): logging catches any ``Exception`` a handler raises, RQ's ``StopRequested`` included, and
    the stop was lost. RQ's loop re-raises a ``SystemExit`` after its teardown; :func:`run_worker` returns 0 on it.
    """

    def __init__(self) -> None:
        super().__init__(0)


class TrainingWorker(Worker):
    """RQ's worker, whose SIGTERM/SIGINT stop is never lost.

    * RQ's warm stop writes the shutdown date to Redis when it counts a job as running (as it still does for a moment
      after one finishes). With Redis down that raised a ConnectionError inside the signal handler, which RQ's own
      reconnect loop swallowed, and the worker retried for ever. Without a live work horse there is nothing to wait
      for, so the stop goes through; with one, the horse finishes and RQ's loop then stops.
    * The stop of an idle worker is raised as :class:`WorkerStopped`, which no ``except Exception`` swallows.
    """

    def request_stop(self, signum, frame):
        try:
            super().request_stop(signum, frame)
        except StopRequested:
            self._stop_requested = True
            raise WorkerStopped() from None
        except RedisConnectionError:
            self._stop_requested = True
            if not (self.horse_pid and _alive(self.horse_pid)):
                raise WorkerStopped() from None


def run_worker(settings: FinetuneSettings, burst: bool = False) -> int:
    """Serve ``settings.train_queue`` on ``settings.redis_url`` (with RQ's scheduler for periodic runs)."""
    from redis import Redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    redis = Redis.from_url(settings.redis_url)
    queue = Queue(settings.train_queue, connection=redis, serializer=JSONSerializer)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    delay_s, recovered, worker = 1.0, False, None
    while True:
        try:  # everything that talks to Redis: a worker may start before Redis, or retry while it is still down
            if not recovered:
                recover_abandoned(queue, settings)
                recovered = True
            worker = TrainingWorker([queue], connection=redis, serializer=JSONSerializer)
            worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
            return 0
        except WorkerStopped:  # RQ's loop tore down first (see WorkerStopped)
            return 0
        except RedisConnectionError as err:  # a Redis restart must not end the worker: wait for it, then go on
            # a SIGTERM/SIGINT already asked RQ to stop (RQ's own stop talks to Redis, and may be what failed)
            if getattr(worker, "_stop_requested", False) or getattr(worker, "_shutdown_requested_date", None):
                return 0
            # RQ's handlers only flag a stop for its loop: while waiting here, SIGTERM/SIGINT act at once again
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            logger.warning("Redis at %s unreachable (%s); the worker retries in %.0f s (a running job goes on)",
                           settings.redis_url, err, delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 30.0)


def recover_abandoned(queue, settings: FinetuneSettings) -> list[str]:
    """Fail, with the reason, every started run whose worker on this host is no longer alive, and queue the project
    again. Returns the ids of the abandoned jobs."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.registry import StartedJobRegistry

    from finetune.queue import JOB_FUNC, QueuePolicy, TrainingQueue

    abandoned = []
    registry = StartedJobRegistry(queue=queue)
    for job_id in registry.get_job_ids(cleanup=False):
        try:
            job = Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        gone = _dead_worker(job)
        logger.info("started job %s (worker %s): %s", job.id, job.worker_name, gone or "its worker is alive or remote")
        if gone is None:
            continue
        project_id = int(job.args[0]["project_id"]) if job.func_name == JOB_FUNC and job.args else None
        reason = f"abandoned: its worker ({gone}) died mid-run; nothing was published"
        logger.warning("fine-tune job %s of project %s %s; queueing the project again", job.id, project_id, reason)
        registry.remove_executions(job)
        job.meta.update(stage="abandoned", reason=reason)
        job.save_meta()
        queue.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=reason)
        job.set_status("failed")
        abandoned.append(job.id)
        if project_id is not None:
            policy = QueuePolicy(settings.train_every_n, settings.train_every_minutes, settings.train_job_timeout_s,
                                 job.args[0].get("recipe") or settings.train_recipe)
            TrainingQueue(queue.connection, queue.name, policy).enqueue(project_id, f"re-run after {reason}")
    return abandoned


def _dead_worker(job) -> str | None:
    """``"<worker name>, pid <pid>"`` when the job's worker ran on this host and its process is gone; else None
    (alive, or on another host: RQ's heartbeat expiry handles those)."""
    from rq import Worker

    name = job.worker_name
    worker = Worker.find_by_key(f"{Worker.redis_worker_namespace_prefix}{name}", connection=job.connection,
                                serializer=job.serializer) if name else None
    if worker is None:  # its registration expired or was never there: RQ's own cleanup takes over
        return None
    if worker.hostname != socket.gethostname() or not worker.pid:
        return None
    horse = job.meta.get("pid")  # the forked job may outlive its worker and still finish
    if _alive(int(worker.pid)) or (horse and _alive(int(horse))):
        return None
    return f"{name}, pid {worker.pid}"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: a killed worker's horse may wait unreaped under a PID 1 that does
    not reap, as in many containers)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:  # no /proc (not Linux): trust kill(0)
        return True
