"""Periodic training, the worker's no-CUDA-before-fork rule, and the mask export command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from backend.converters.rle import mask_to_ls_rle
from finetune.gather import AnnotationRecord, GatheredAnnotation
from finetune.queue import JOB_FUNC, SCHEDULE_FUNC, QueuePolicy, TrainingQueue
from tests.integration.backend_media import HEIGHT, WIDTH, record_square_project, write_frames, write_video
from tests.integration.conftest import config

REPO = Path(__file__).parents[2]


def test_every_minutes_arms_one_scheduled_check_that_queues_a_run(redis_server, monkeypatch):
    redis = Redis.from_url(redis_server.url)
    redis.flushall()
    queue = TrainingQueue(redis, "train-sched", QueuePolicy(every_minutes=30, recipe="tiny"))
    for _ in range(3):
        assert queue.on_event("ANNOTATION_CREATED", 5)["status"] == "counted"
    registry = ScheduledJobRegistry(queue=queue.queue)
    (scheduled_id,) = registry.get_job_ids()  # one check per project, however many events
    check = queue.queue.fetch_job(scheduled_id)
    assert check.func_name == SCHEDULE_FUNC and check.args[0]["project_id"] == 5
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("UNIPIXEL_TRAIN_QUEUE", "train-sched")
    outcome = check.perform()  # what the worker's scheduler runs after 30 minutes
    assert outcome["status"] == "queued"
    (run,) = Queue("train-sched", connection=redis, serializer=JSONSerializer).get_jobs()
    assert run.func_name == JOB_FUNC and run.args[0]["reason"] == "schedule"


def test_scheduled_check_without_new_labels_does_nothing(redis_server, monkeypatch):
    redis = Redis.from_url(redis_server.url)
    redis.flushall()
    queue = TrainingQueue(redis, "train-sched", QueuePolicy(every_minutes=30))
    job = queue.queue.enqueue(SCHEDULE_FUNC, {"project_id": 6})
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert job.perform() == {"status": "nothing new"}


def test_worker_process_does_not_import_torch_before_a_job():
    code = ("import sys, finetune.__main__, finetune.worker, finetune.queue, backend.training; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": str(REPO)}).returncode == 0


def test_export_command_writes_coco_rle_and_davis_pngs(tmp_path):
    from finetune.export import read_coco_rle, read_davis_png

    frames = write_frames(tmp_path / "clip", count=3)
    record = AnnotationRecord(tmp_path / "data", 9)
    record.save_config(config("video_masks"))
    masks = []
    result = []
    for f in range(3):
        mask = np.zeros((HEIGHT, WIDTH), bool)
        mask[10:20, 5 + f:25 + f] = True
        masks.append(mask)
        result.append({"id": f"obj-f{f + 1}", "from_name": "mask", "to_name": "frames", "type": "brushlabels",
                       "item_index": f, "original_width": WIDTH, "original_height": HEIGHT,
                       "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Person"]}})
    record.replace([GatheredAnnotation(31, {"frames": [str(p) for p in frames]}, 1, result, "2026-11-21")])
    env = {"PYTHONPATH": str(REPO), "UNIPIXEL_DATA_DIR": str(tmp_path / "data"), "UNIPIXEL_LOCAL_ROOTS": str(tmp_path),
           "LABEL_STUDIO_URL": "", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "finetune", "export", "--project", "9", "--out", str(tmp_path / "x")],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (item,) = read_coco_rle(tmp_path / "x" / "project-9.coco.json")
    assert item.task_id == 31 and list(item.objects.values())[0].label == "Person"
    assert np.array_equal(item.object_volume(1), np.stack(masks))
    png = read_davis_png(tmp_path / "x" / "davis" / "task-31" / "00002.png")
    assert np.array_equal(png > 0, masks[1]) and json.loads((tmp_path / "x" / "project-9.coco.json").read_text())


def test_samples_and_publish_commands_for_hand_runs(tmp_path):
    from finetune.sample import read_samples

    frames = write_frames(tmp_path / "clip", count=3)
    record = AnnotationRecord(tmp_path / "data", 12)
    record.save_config(config("video_masks"))
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:30, 5:25] = True
    result = [{"id": "o-f1", "from_name": "mask", "to_name": "frames", "type": "brushlabels", "item_index": 0,
               "original_width": WIDTH, "original_height": HEIGHT,
               "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Person"]}},
              {"from_name": "prompt", "to_name": "frames", "type": "textarea", "value": {"text": ["the square"]}}]
    record.replace([GatheredAnnotation(40, {"frames": [str(p) for p in frames]}, 2, result, "2026-11-21")])
    env = {"PYTHONPATH": str(REPO), "UNIPIXEL_DATA_DIR": str(tmp_path / "data"), "UNIPIXEL_LOCAL_ROOTS": str(tmp_path),
           "MODEL_DIR": str(tmp_path / "models"), "LABEL_STUDIO_URL": "", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "finetune", "samples", "--project", "12", "--out", str(tmp_path / "r"),
                          "--recipe", "tiny"], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    samples = read_samples(tmp_path / "r" / "train.jsonl") + read_samples(tmp_path / "r" / "holdout.jsonl")
    assert sorted(s.kind for s in samples) == ["mem", "seg"] and all(s.task_id == 40 for s in samples)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    pub = subprocess.run([sys.executable, "-m", "finetune", "publish", "--project", "12", "--adapter", str(adapter)],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert pub.returncode == 0, pub.stderr
    latest = (tmp_path / "models" / "latest").read_text().strip()
    assert latest.startswith("p12-") and (tmp_path / "models" / latest / "adapter" / "adapter_config.json").is_file()
    bad = subprocess.run([sys.executable, "-m", "finetune", "publish", "--project", "12", "--adapter", str(tmp_path)],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "adapter_config.json" in bad.stderr


def test_a_malformed_annotation_leaves_out_its_task_not_the_run(tmp_path, caplog):
    """The fine-tune reads annotations with the interactive path's parser: a region it refuses costs its task
    (logged, listed in ``skipped_tasks``), the other tasks still give samples."""
    from finetune.settings import FinetuneSettings as Settings
    from finetune.jobs import FinetuneRun

    frames = [str(p) for p in write_frames(tmp_path / "clip", count=3)]
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:30, 5:25] = True

    def brush(item_index: int) -> dict:
        return {"id": "o-f1", "from_name": "mask", "to_name": "frames", "type": "brushlabels", "item_index": item_index,
                "original_width": WIDTH, "original_height": HEIGHT,
                "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Person"]}}

    settings = Settings(data_dir=tmp_path / "data", local_roots=(tmp_path,))
    run = FinetuneRun(settings, {"project_id": 16, "recipe": "tiny", "recipe_overrides": {"holdout_fraction": 0.0}})
    with caplog.at_level("WARNING"):
        train, _ = run.samples(config("video_masks"), [GatheredAnnotation(60, {"frames": frames}, 1, [brush(7)], "t"),
                                                       GatheredAnnotation(61, {"frames": frames}, 2, [brush(1)], "t")])
    assert {s.task_id for s in train} == {61} and train
    assert run.skipped_tasks == ["task 60: item_index 7 is out of range: the task has 3 images (0-based)"]
    assert "fine-tune project 16: task 60 is left out: item_index 7 is out of range" in caplog.text


def test_a_task_whose_media_cannot_be_read_is_left_out_not_the_run(tmp_path, caplog):
    """Media gone since labeling (a deleted file), refused (outside the allowed roots) or not decodable costs its task
    (logged, listed in ``skipped_tasks``); the other tasks still train."""
    from finetune.settings import FinetuneSettings as Settings
    from finetune.jobs import FinetuneRun

    frames = [str(p) for p in write_frames(tmp_path / "clip", count=3)]
    broken = tmp_path / "clip" / "broken.png"
    broken.write_bytes(b"not a png")
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:30, 5:25] = True
    brush = {"id": "o-f1", "from_name": "mask", "to_name": "frames", "type": "brushlabels", "item_index": 0,
             "original_width": WIDTH, "original_height": HEIGHT,
             "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Person"]}}
    settings = Settings(data_dir=tmp_path / "data", local_roots=(tmp_path / "clip",))
    run = FinetuneRun(settings, {"project_id": 17, "recipe": "tiny", "recipe_overrides": {"holdout_fraction": 0.0}})
    tasks = {70: [str(tmp_path / "clip" / "deleted.png")] + frames[1:], 71: ["/etc/hostname"] + frames[1:],
             72: [str(broken)] + frames[1:], 73: frames}
    with caplog.at_level("WARNING"):
        train, _ = run.samples(config("video_masks"), [GatheredAnnotation(task, {"frames": media}, 1, [brush], "t")
                                                       for task, media in tasks.items()])
    assert {s.task_id for s in train} == {73} and train
    assert [line.split(":")[0] for line in run.skipped_tasks] == ["task 70", "task 71", "task 72"], run.skipped_tasks
    for task in (70, 71, 72):
        assert f"fine-tune project 17: task {task} is left out: " in caplog.text
    # a run whose every task is left out says so, with the reasons, instead of "nothing this config trains on"
    from finetune.jobs import nothing_to_train

    reason = nothing_to_train(17, [GatheredAnnotation(70, {}, 1, [brush], "t")], 0, run.skipped_tasks[:1])
    assert reason.startswith("all 1 annotated task(s) of project 17 were left out: task 70: ") and "no such file" in reason


def test_run_evaluates_held_out_tasks_and_refuses_to_publish_a_worse_model(tmp_path, tiny_checkpoint):
    """Held-out J&F and text F1 are computed before and after; an impossible bar publishes nothing."""
    import dataclasses

    from finetune.settings import FinetuneSettings as Settings
    from finetune.jobs import FinetuneRun

    record_square_project(tmp_path, 13, 6, config("referring_expressions"))
    settings = Settings(model=str(tiny_checkpoint), data_dir=tmp_path / "data", model_dir=tmp_path / "models",
                        local_roots=(tmp_path,))
    overrides = {"holdout_fraction": 0.5, "max_steps": 2, "min_improvement": 10.0}
    run = FinetuneRun(settings, {"project_id": 13, "recipe": "tiny", "recipe_overrides": overrides})
    assert dataclasses.asdict(run.recipe)["min_improvement"] == 10.0
    summary = run.execute()
    assert summary["status"].startswith("not published") and summary["holdout_samples"] > 0
    for when in ("before", "after"):
        scores = summary[when]
        assert scores["calls"] > 0 and 0.0 <= scores["text"]["all"]["JF"] <= 1.0
        assert scores["descriptions"]["count"] > 0 and 0.0 <= scores["descriptions"]["token_f1"] <= 1.0
        assert 0.0 <= scores["score"] <= 1.0
    from backend.versions import VersionStore

    store = VersionStore(tmp_path / "models")
    assert store.list() == [] and store.latest() is None  # nothing published
    last = store.last_runs()["13"]
    assert last["status"] == "not published" and "is not above" in last["reason"]


def test_a_run_with_nothing_to_train_says_why_in_the_result_the_log_and_versions(tmp_path, tiny_checkpoint, caplog,
                                                                                  make_client):
    from finetune.settings import FinetuneSettings as Settings
    from finetune.jobs import FinetuneRun

    record = AnnotationRecord(tmp_path / "data", 14)
    record.save_config(config("video_tracking"))
    brush_only = [{"id": "r1", "from_name": "mask", "to_name": "video", "type": "brushlabels",
                   "value": {"format": "rle", "rle": [0], "brushlabels": ["Object"]}}]  # not this config's control
    record.replace([GatheredAnnotation(140, {"video": str(tmp_path / "v.mp4")}, 1, brush_only, "2026-11-29T10:00:00Z")])
    settings = Settings(model=str(tiny_checkpoint), data_dir=tmp_path / "data", model_dir=tmp_path / "models",
                        local_roots=(tmp_path,))
    write_video(tmp_path / "v.mp4")
    with caplog.at_level("WARNING"):
        outcome = FinetuneRun(settings, {"project_id": 14, "recipe": "tiny"}).execute()
    assert outcome["status"] == "nothing to train" and outcome["tasks"] == 1
    assert "hold nothing this labeling config trains on (region types found: brushlabels)" in outcome["reason"]
    assert "fine-tune project 14: nothing to train: the 1 annotation(s)" in caplog.text
    versions = make_client(model_dir=tmp_path / "models").get("/versions").json
    assert versions["versions"] == [] and versions["last_runs"]["14"]["status"] == "nothing to train"
    assert versions["last_runs"]["14"]["reason"] == outcome["reason"]


def test_run_command_fine_tunes_by_hand(tmp_path, tiny_checkpoint):
    import yaml

    record_square_project(tmp_path, 14, 2, config("referring_expressions"))
    recipe = yaml.safe_load((REPO / "finetune/configs/tiny.yaml").read_text())
    recipe.update(max_steps=2, holdout_fraction=0.0)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    env = {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "UNIPIXEL_MODEL": str(tiny_checkpoint),
           "UNIPIXEL_DATA_DIR": str(tmp_path / "data"), "UNIPIXEL_LOCAL_ROOTS": str(tmp_path),
           "MODEL_DIR": str(tmp_path / "models"), "LABEL_STUDIO_URL": "", "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-m", "finetune", "run", "--project", "14", "--recipe",
                          str(tmp_path / "r.yaml")], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["status"] == "published" and summary["source"] == "local record" and summary["steps"] == 2
    assert (tmp_path / "models" / "latest").read_text().strip() == summary["version"]


def test_label_studio_down_during_gather_trains_on_the_local_record(tmp_path, tiny_checkpoint, caplog):
    import socket

    from finetune.settings import FinetuneSettings as Settings
    from finetune.jobs import FinetuneRun

    with socket.socket() as sock:  # a port nothing listens on: Label Studio is down
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    record_square_project(tmp_path, 15, 2, config("referring_expressions"))
    settings = Settings(model=str(tiny_checkpoint), data_dir=tmp_path / "data", model_dir=tmp_path / "models",
                        local_roots=(tmp_path,), label_studio_url=down,
                        label_studio_api_key="token-of-a-test")
    overrides = {"max_steps": 2, "holdout_fraction": 0.0, "min_improvement": -1.0}
    with caplog.at_level("WARNING"):
        summary = FinetuneRun(settings, {"project_id": 15, "recipe": "tiny", "recipe_overrides": overrides}).execute()
    assert summary["status"] == "published" and summary["source"] == "local record" and summary["train_samples"] > 0
    assert "Label Studio unavailable" in caplog.text and "training on the local record of project 15" in caplog.text
    assert "token-of-a-test" not in caplog.text
