"""A real RQ worker (subprocess) fine-tunes the tiny model on LS-format labels and publishes a version
the backend then serves; SIGKILL mid-training publishes nothing and the backend keeps serving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from finetune.queue import QueuePolicy, TrainingQueue
from tests.integration.backend_media import record_square_project
from tests.integration.conftest import config
from tests.integration.test_backend_predict import _click, _only, _predict

REPO = Path(__file__).parents[2]
PROJECT = 21


@pytest.fixture
def finetune_env(tmp_path, redis_server, tiny_checkpoint):
    """Env for worker subprocesses: offline tiny model, local record as the label source (no LS)."""
    Redis.from_url(redis_server.url).flushall()
    record_square_project(tmp_path, PROJECT, 4, config("referring_expressions"))
    recipe = yaml.safe_load((REPO / "finetune/configs/tiny.yaml").read_text())
    recipe.update(min_improvement=-1.0, holdout_fraction=0.0, max_steps=6)  # always publish: random tiny model
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "REDIS_URL": redis_server.url,
           "UNIPIXEL_MODEL": str(tiny_checkpoint), "MODEL_DIR": str(tmp_path / "models"),
           "UNIPIXEL_DATA_DIR": str(tmp_path / "data"), "UNIPIXEL_TRAIN_RECIPE": str(tmp_path / "recipe.yaml"),
           "UNIPIXEL_LOCAL_ROOTS": str(tmp_path), "UNIPIXEL_TRAIN_QUEUE": "train-it", "LABEL_STUDIO_URL": "",
           "OMP_NUM_THREADS": "2"}
    return tmp_path, env


def _enqueue(env: dict, redis_url: str) -> Job:
    policy = QueuePolicy(recipe=env["UNIPIXEL_TRAIN_RECIPE"])
    outcome = TrainingQueue(Redis.from_url(redis_url), "train-it", policy).enqueue(PROJECT, "test", now=True)
    return Job.fetch(outcome["job"], connection=Redis.from_url(redis_url), serializer=JSONSerializer)


def _wait_for_training(job: Job, timeout_s: float = 240) -> float:
    """Wait until the job's horse reports training steps; returns the deadline (time.monotonic) for later waits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job.refresh()
        if job.meta.get("stage") == "training":
            return deadline
        time.sleep(0.5)
    raise AssertionError(f"the job never started training: {job.meta}")


def _worker(env: dict, burst: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "finetune", "worker"] + (["--burst"] if burst else [])
    return subprocess.Popen(args, env=env, cwd=REPO, start_new_session=True)


def test_worker_trains_publishes_and_backend_serves_the_new_version(finetune_env, make_client, redis_server):
    tmp_path, env = finetune_env
    client = make_client(model_dir=tmp_path / "models", describe_objects=False, local_roots=(tmp_path,))
    task = {"id": 70, "data": {"image": str(tmp_path / "task0.png")}}
    before = _only(_predict(client, "image_segmentation", task, {"result": [_click(40, 45)]}))
    assert client.post("/setup", json={"project": "21.1"}).json["model_version"].endswith("@base")

    job = _enqueue(env, redis_server.url)
    worker = _worker(env, burst=True)
    assert worker.wait(timeout=300) == 0
    job.refresh()
    assert job.get_status() == "finished", job.latest_result()
    result = job.return_value()
    assert result["status"] == "published", result
    losses = result.get("losses") or yaml.safe_load((tmp_path / "models" / result["version"] / "version.json")
                                                    .read_text())["losses"]
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2  # the loss went down
    assert job.meta["stage"] == "published" and job.meta["total_steps"] == 6
    version_dir = tmp_path / "models" / result["version"]
    assert (version_dir / "loss.png").is_file() and (version_dir / "adapter").is_dir()
    assert (tmp_path / "models" / "latest").read_text().strip() == result["version"]

    setup = client.post("/setup", json={"project": "21.1"}).json
    assert setup["model_version"].endswith("@" + result["version"])
    try:
        after = _only(_predict(client, "image_segmentation", task, {"result": [_click(40, 45)]}))
    finally:
        with client.engine.gpu:  # the weights are shared with other tests: back to the base model
            client.engine._activate(None)
    assert after["model_version"] == setup["model_version"]
    assert after["result"] != before["result"]  # the adapter changed the masks
    listed = client.get("/versions").json
    assert listed["versions"] == [result["version"]] and "after" in listed["details"][0]


def test_sigkill_mid_training_publishes_nothing_and_serving_continues(finetune_env, make_client, redis_server):
    tmp_path, env = finetune_env
    recipe = yaml.safe_load(Path(env["UNIPIXEL_TRAIN_RECIPE"]).read_text())
    recipe["max_steps"] = 400  # long enough to be killed while training
    Path(env["UNIPIXEL_TRAIN_RECIPE"]).write_text(yaml.safe_dump(recipe))
    job = _enqueue(env, redis_server.url)
    worker = _worker(env, burst=False)
    try:
        deadline = _wait_for_training(job)
        os.kill(job.meta["pid"], signal.SIGKILL)  # the work horse, e.g. the OOM killer
        while time.monotonic() < deadline and job.get_status(refresh=True) != "failed":
            time.sleep(0.5)
        assert job.get_status() == "failed"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    models = tmp_path / "models"
    assert not models.exists() or not [p for p in models.iterdir() if not p.name.startswith(".tmp-")]
    assert not (models / "latest").exists()
    client = make_client(model_dir=models, describe_objects=False, local_roots=(tmp_path,))
    assert client.post("/setup", json={"project": "21.1"}).json["model_version"].endswith("@base")
    assert _predict(client, "image_segmentation", {"id": 71, "data": {"image": str(tmp_path / "task1.png")}},
                    {"result": [_click(40, 45)]}).status_code == 200
    assert Queue("train-it", connection=Redis.from_url(redis_server.url), serializer=JSONSerializer).count == 0


def test_worker_killed_outright_mid_training_the_next_worker_fails_the_run_visibly_and_reruns_it(
        finetune_env, redis_server):
    """SIGKILL of the whole worker (worker and work horse, as the OOM killer or a power cut would): RQ alone would
    keep the run "started" until its heartbeat lapses; the next worker marks it failed with the reason and queues the
    project again, and that run trains on every annotation and publishes."""
    tmp_path, env = finetune_env
    recipe = yaml.safe_load(Path(env["UNIPIXEL_TRAIN_RECIPE"]).read_text())
    recipe["max_steps"] = 400
    Path(env["UNIPIXEL_TRAIN_RECIPE"]).write_text(yaml.safe_dump(recipe))
    job = _enqueue(env, redis_server.url)
    worker = _worker(env, burst=False)
    _wait_for_training(job)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker...
    os.kill(job.meta["pid"], signal.SIGKILL)  # ...and its horse (RQ starts it in a session of its own)
    worker.wait(timeout=30)
    assert job.get_status(refresh=True) == "started"  # what RQ shows until the heartbeat lapses
    recipe["max_steps"] = 2
    Path(env["UNIPIXEL_TRAIN_RECIPE"]).write_text(yaml.safe_dump(recipe))
    rerun = subprocess.run([sys.executable, "-m", "finetune", "worker", "--burst"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    job.refresh()
    assert job.get_status() == "failed" and job.meta["stage"] == "abandoned", rerun.stderr[-3000:]
    assert "died mid-run" in job.meta["reason"] and f"fine-tune job {job.id} of project {PROJECT}" in rerun.stderr
    models = tmp_path / "models"
    (run,) = [json.loads(p.read_text()) for p in (models / "runs").glob("*.json")]
    assert run["status"] == "published" and run["train_samples"] > 0
    assert (models / "latest").read_text().strip() == run["version"]
    assert not list(models.glob(".tmp-*"))


def test_model_dir_full_during_publish_keeps_serving_the_previous_version(finetune_env, make_client, redis_server):
    """The second run's worker may write files of at most 64 KiB (RLIMIT_FSIZE, as a full disk refuses writes): its
    adapter cannot be written, the run fails visibly, no partial version is left, and `latest` still names the first
    version, which the backend keeps serving."""
    tmp_path, env = finetune_env
    models = tmp_path / "models"
    _enqueue(env, redis_server.url)
    first = subprocess.run([sys.executable, "-m", "finetune", "worker", "--burst"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    v1 = (models / "latest").read_text().strip()
    job = _enqueue(env, redis_server.url)
    full = subprocess.run([sys.executable, "-m", "finetune", "worker", "--burst"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300, preexec_fn=_disk_full_after(64 * 1024))
    assert full.returncode == 0, full.stderr[-3000:]
    assert job.get_status(refresh=True) == "failed" and "File too large" in (job.latest_result().exc_string or "")
    assert (models / "latest").read_text().strip() == v1
    assert [p.name for p in models.iterdir() if p.name.startswith("p")] == [v1] and not list(models.glob(".tmp-*"))
    client = make_client(model_dir=models, describe_objects=False, local_roots=(tmp_path,))
    assert client.post("/setup", json={"project": f"{PROJECT}.1"}).json["model_version"].endswith(f"@{v1}")
    run = client.get("/versions").json["last_runs"][str(PROJECT)]
    assert run["status"] == "publish failed" and "the previous version is still served" in run["reason"]


def test_a_run_that_fails_says_why_in_versions_and_the_job(finetune_env, make_client, redis_server):
    """A run that breaks before it can train (here the operator's recipe file has an invalid value; a base model gone
    from disk or Label Studio unreachable end the same way) fails the RQ job, and says why where the annotator and the
    operator look: ``/versions`` ``last_runs`` and the job's meta, not only a traceback in the worker log."""
    tmp_path, env = finetune_env
    recipe = yaml.safe_load(Path(env["UNIPIXEL_TRAIN_RECIPE"]).read_text())
    Path(env["UNIPIXEL_TRAIN_RECIPE"]).write_text(yaml.safe_dump({**recipe, "lr": 0.0}))
    job = _enqueue(env, redis_server.url)
    worker = subprocess.run([sys.executable, "-m", "finetune", "worker", "--burst"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert job.get_status(refresh=True) == "failed"
    job.refresh()
    assert job.meta["stage"] == "failed" and "lr must be > 0" in job.meta["reason"], job.meta
    client = make_client(model_dir=tmp_path / "models", describe_objects=False, local_roots=(tmp_path,))
    run = client.get("/versions").json["last_runs"][str(PROJECT)]
    assert run["status"] == "failed" and run["trigger"] == "test", run
    assert "lr must be > 0" in run["reason"] and "nothing was published" in run["reason"], run
    assert "fine-tune project 21: failed: " in worker.stderr


def _disk_full_after(max_bytes: int):
    """``preexec_fn``: regular files this process (and its forks) write stop at ``max_bytes`` with EFBIG."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not death by signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def test_a_worker_started_while_redis_is_down_waits_for_it_then_trains(finetune_env):
    """Redis not up yet when the worker starts (compose ordering), or still down when the worker retries after an
    outage: the worker waits with backoff (it died with a traceback in ``Worker(...)`` and ``recover_abandoned``,
    outside the retry; the Redis-restart test below hit it now and then), and once Redis is up it serves the queue."""
    from tests.services import RedisServer, free_port

    tmp_path, env = finetune_env
    late = RedisServer(port=free_port())
    env = {**env, "REDIS_URL": late.url}
    log_path = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "finetune", "worker"], env=env, cwd=REPO,
                              stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text().count("unreachable") < 2 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)  # two failed attempts: the retry itself survives Redis being down
        assert worker.poll() is None and log_path.read_text().count("unreachable") >= 2, log_path.read_text()[-3000:]
        late.start()
        try:
            job = _enqueue(env, late.url)
            while time.monotonic() < deadline + 240 and job.get_status(refresh=True) not in ("finished", "failed"):
                time.sleep(1)
            assert job.get_status() == "finished", log_path.read_text()[-3000:]
            assert worker.poll() is None  # still serving
        finally:
            late.stop()
        # a SIGTERM while Redis is down still stops it (RQ's stop talks to Redis; it retried for ever before)
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, log_path.read_text()[-3000:]
    finally:
        if worker.poll() is None:  # a failed assert above: never leave the worker behind
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)


def test_a_sigterm_while_redis_is_down_stops_the_worker_even_just_after_a_job(redis_server):
    """The race behind the flaky test above: a job has just finished (RQ still counts the worker busy) when Redis
    goes away and SIGTERM comes. RQ's stop then writes the shutdown date to Redis; the ConnectionError it raised
    inside the signal handler was swallowed by RQ's own reconnect loop, and the worker retried for ever. The stop
    must go through without Redis when no job runs."""
    from rq.worker import WorkerStatus

    from finetune.worker import TrainingWorker, WorkerStopped
    from tests.services import free_port

    up = Redis.from_url(redis_server.url)
    worker = TrainingWorker([Queue("q", connection=up, serializer=JSONSerializer)], connection=up,
                            serializer=JSONSerializer)
    worker.connection = Redis(port=free_port(), socket_connect_timeout=0.5)  # then Redis is gone: nothing listens
    worker._state = WorkerStatus.BUSY  # what RQ still holds between a finished job and the next dequeue
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(WorkerStopped):
            worker.request_stop(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])


@pytest.mark.parametrize("redis_up", [True, False], ids=["idle, Redis up", "just after a job, Redis down"])
def test_a_sigterm_that_lands_inside_a_log_call_still_stops_the_worker(redis_server, redis_up):
    """The other race behind the flaky Redis-down test: the signal handler runs on the main thread wherever it is, and
    while Redis is down that is mostly inside RQ's "Could not connect to Redis" log call. A stop raised there as an
    ``Exception`` (RQ's StopRequested) was caught by the logging handler, printed as "--- Logging error ---", and the
    worker went on retrying. The stop must get out of the log call, and still be a stop RQ's loop tears down on."""
    import logging

    from rq.worker import WorkerStatus

    from finetune.worker import TrainingWorker, WorkerStopped
    from tests.services import free_port

    up = Redis.from_url(redis_server.url)
    worker = TrainingWorker([Queue("q", connection=up, serializer=JSONSerializer)], connection=up,
                            serializer=JSONSerializer)
    if not redis_up:
        worker.connection = Redis(port=free_port(), socket_connect_timeout=0.5)
        worker._state = WorkerStatus.BUSY

    class SignalledMidRecord(logging.StreamHandler):
        def format(self, record):  # inside StreamHandler.emit's try: where logging catches what a handler raises
            worker.request_stop(signal.SIGTERM, None)
            return super().format(record)

    log = logging.getLogger("tests.rq-reconnect-loop")
    log.addHandler(SignalledMidRecord())
    log.propagate = False
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(WorkerStopped) as stopped:
            log.error("Could not connect to Redis instance: Retrying in 1 seconds...")
        assert isinstance(stopped.value, SystemExit) and stopped.value.code == 0  # what RQ's loop re-raises
        assert worker._stop_requested
    finally:
        log.handlers.clear()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])


def test_redis_restarted_mid_training_the_run_still_publishes(finetune_env, redis_server):
    """Redis goes away for a few seconds while the horse trains (and comes back empty: no persistence). Progress
    updates fail meanwhile; the training goes on and publishes, and the worker survives."""
    tmp_path, env = finetune_env
    recipe = yaml.safe_load(Path(env["UNIPIXEL_TRAIN_RECIPE"]).read_text())
    recipe["max_steps"] = 40
    Path(env["UNIPIXEL_TRAIN_RECIPE"]).write_text(yaml.safe_dump(recipe))
    job = _enqueue(env, redis_server.url)
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "finetune", "worker"], env=env, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = _wait_for_training(job)
        redis_server.stop()
        try:
            time.sleep(4)
        finally:
            redis_server.start()
        latest = tmp_path / "models" / "latest"
        while time.monotonic() < deadline and not latest.exists():
            time.sleep(1)
        text = (tmp_path / "worker.log").read_text()
        assert latest.exists(), text[-3000:]
        assert "progress not saved to Redis" in text and worker.poll() is None  # the worker is still serving
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            raise AssertionError("the worker did not stop on SIGTERM after the Redis restart") from None
        finally:
            log.close()
