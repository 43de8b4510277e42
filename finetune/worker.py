"""The training worker: an RQ worker on the training queue that forks a work horse per job.

The worker process imports no torch: CUDA is initialised only inside the forked job, so a crashed
or killed job never leaves a broken CUDA context behind (RQ's fork semantics).
"""

from __future__ import annotations

from backend.settings import Settings


def run_worker(settings: Settings, burst: bool = False) -> int:
    """Serve ``settings.train_queue`` on ``settings.redis_url`` (with RQ's scheduler for periodic runs)."""
    from redis import Redis
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    redis = Redis.from_url(settings.redis_url)
    queue = Queue(settings.train_queue, connection=redis, serializer=JSONSerializer)
    worker = Worker([queue], connection=redis, serializer=JSONSerializer)
    worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level.upper())
    return 0
