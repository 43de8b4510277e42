"""/webhook -> RQ on a real redis-server: policies, coalescing, START_TRAINING, Redis outages."""

from __future__ import annotations

import json
import zlib

import pytest
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from finetune.gather import AnnotationRecord
from tests.integration.test_backend_predict import _click, _only, _predict


def _event(action: str, project_id: int = 7, annotation_id: int = 1, task_id: int = 3) -> dict:
    return {"action": action, "project": {"id": project_id, "label_config": "<View/>"},
            "annotation": {"id": annotation_id, "task": task_id, "project": project_id, "was_cancelled": False,
                           "updated_at": f"2026-11-21T10:00:0{annotation_id}Z",
                           "result": [{"type": "textarea", "value": {"text": ["x"]}}]},
            "task": {"id": task_id, "data": {"image": "/data/upload/7/a.png"}}}


@pytest.fixture
def queue_client(make_client, redis_server, tmp_path):
    redis = Redis.from_url(redis_server.url)
    redis.flushall()
    client = make_client(redis_url=redis_server.url, train_queue="train-test", train_every_n=2,
                         data_dir=tmp_path / "data")
    client.queue = Queue("train-test", connection=redis, serializer=JSONSerializer)
    client.redis = redis
    return client


def test_webhook_counts_then_queues_then_coalesces(queue_client):
    first = queue_client.post("/webhook", json=_event("ANNOTATION_CREATED", annotation_id=1))
    assert first.status_code == 200 and first.json["result"]["status"] == "counted"
    second = queue_client.post("/webhook", json=_event("ANNOTATION_UPDATED", annotation_id=2))
    assert second.status_code == 201 and second.json["result"]["status"] == "queued"
    job_id = second.json["result"]["job"]
    for n in range(3, 6):  # more corrections while the run waits: they join it
        queue_client.post("/webhook", json=_event("ANNOTATION_CREATED", annotation_id=n))
    start = queue_client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert start.status_code == 201
    assert (start.json["result"]["status"], start.json["result"]["job"]) == ("coalesced", job_id)
    assert queue_client.queue.job_ids == [job_id]
    job = queue_client.queue.fetch_job(job_id)
    assert job.func_name == "finetune.jobs.run_training" and job.args[0]["project_id"] == 7
    assert job.timeout == 6 * 3600 and job.result_ttl > 0 and job.failure_ttl > 0
    raw = queue_client.redis.hget(f"rq:job:{job_id}", "data")
    assert "\"project_id\": 7" in json.dumps(json.loads(zlib.decompress(raw)))  # zlib-compressed JSON, not pickle


def test_start_training_queues_at_the_front(queue_client):
    queue_client.queue.enqueue("finetune.jobs.run_training", {"project_id": 99})  # another project's run
    reply = queue_client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 8}})
    assert reply.status_code == 201
    assert queue_client.queue.job_ids[0] == reply.json["result"]["job"]


def test_start_training_without_annotations_says_so_in_the_status_line_label_studio_shows(queue_client, caplog):
    project = {"id": 9, "total_annotations_number": 0, "num_tasks_with_annotations": 0}
    with caplog.at_level("WARNING"):
        reply = queue_client.post("/webhook", json={"action": "START_TRAINING", "project": project})
    # LS keeps only str(requests.HTTPError) of a failed train call: "422 Client Error: <reason phrase> for url"
    assert reply.status_code == 422 and reply.status.startswith("422 Nothing to train: project 9 has no submitted")
    assert reply.json["field"] == "project.total_annotations_number"
    assert queue_client.queue.job_ids == [] and "Nothing to train: project 9" in caplog.text
    project["total_annotations_number"] = 3
    assert queue_client.post("/webhook", json={"action": "START_TRAINING", "project": project}).status_code == 201


def test_other_events_are_ignored_and_payload_without_project_is_400(queue_client):
    assert queue_client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 7}}).json["result"][
        "status"] == "ignored"
    reply = queue_client.post("/webhook", json={"action": "ANNOTATION_CREATED"})
    assert reply.status_code == 400 and "project id" in reply.json["error"]


def test_redis_down_webhook_503_predict_works_and_event_is_kept(queue_client, redis_server, media_root, tmp_path):
    redis_server.stop()
    try:
        reply = queue_client.post("/webhook", json=_event("ANNOTATION_CREATED", annotation_id=41, task_id=5))
        assert reply.status_code == 503 and "Redis" in reply.json["error"] and "recorded" in reply.json["error"]
        pred = _only(_predict(queue_client, "image_segmentation",
                              {"id": 60, "data": {"image": str(media_root / "square.png")}},
                              {"result": [_click(40, 45)]}))
        assert pred["result"]
    finally:
        redis_server.start()
    record = AnnotationRecord(tmp_path / "data", 7)
    assert [a.annotation_id for a in record.latest()] == [41]  # the next run gathers it offline too


def test_unwritable_record_still_queues_the_event(make_client, redis_server, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data dir should be")
    Redis.from_url(redis_server.url).flushall()
    client = make_client(redis_url=redis_server.url, train_queue="train-test", train_every_n=1, data_dir=blocker)
    reply = client.post("/webhook", json=_event("ANNOTATION_CREATED", annotation_id=77))
    assert reply.status_code == 201 and reply.json["result"]["status"] == "queued"


def test_the_events_of_a_project_that_never_trains_stay_its_size(queue_client, tmp_path, monkeypatch):
    """No run ever drops the events of a project nobody trains: past a size, the backend compacts them in the
    background (``AnnotationRecord.compact_events``), and the offline fallback still reads each task's latest."""
    import threading

    from backend import training

    monkeypatch.setattr(training, "EVENTS_COMPACT_BYTES", 4_000)
    for version in range(30):
        for task in (3, 4):
            event = _event("ANNOTATION_UPDATED", annotation_id=task, task_id=task)
            event["annotation"]["updated_at"] = f"2026-11-21T10:{version:02d}:00Z"
            assert queue_client.post("/webhook", json=event).status_code in (200, 201)
    for thread in threading.enumerate():
        if thread.name.startswith("compact-events-"):
            thread.join(timeout=10)
    record = AnnotationRecord(tmp_path / "data", 7)
    assert sum(p.stat().st_size for p in record.folder.glob("webhook_events*")) < 6_000
    assert [(a.task_id, a.updated_at) for a in record.latest()] == [(3, "2026-11-21T10:29:00Z"),
                                                                     (4, "2026-11-21T10:29:00Z")]
