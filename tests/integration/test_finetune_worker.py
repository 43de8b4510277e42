"""A real RQ worker (subprocess) fine-tunes the tiny model on LS-format labels and publishes a version
the backend then serves; SIGKILL mid-training publishes nothing and the backend keeps serving."""

from __future__ import annotations

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
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            job.refresh()
            if job.meta.get("stage") == "training" and job.meta.get("step", 0) >= 1:
                break
            time.sleep(0.5)
        assert job.meta.get("stage") == "training", job.meta
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
