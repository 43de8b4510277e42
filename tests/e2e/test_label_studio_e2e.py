"""Real Label Studio 1.23.2 + our backend (tiny model): every config, interactive and batch predictions,
background propagation posted back, and the active-learning loop (annotation -> webhook -> worker ->
new model version shown by Label Studio)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from backend.converters.rle import mask_to_ls_rle
from tests.e2e.conftest import CLIP_FRAMES, CLIP_SIZE, REPO, write_clip

CONFIGS = REPO / "label_config"
W, H = CLIP_SIZE


def _project(ls, name: str, title: str) -> int:
    config = (CONFIGS / f"{name}.xml").read_text().replace('framerate="25"', 'framerate="10"')
    return ls.request("POST", "/api/projects/", {"title": title, "label_config": config})["id"]


def _connect(ls, project: int, backend) -> int:
    created = ls.request("POST", "/api/ml/", {"project": project, "url": backend.url, "title": "unipixel",
                                              "is_interactive": True})
    return created["id"]


def _tasks(ls, project: int) -> list[dict]:
    reply = ls.request("GET", f"/api/tasks/?project={project}&fields=all")
    return reply["tasks"] if isinstance(reply, dict) else reply


def _predictions(ls, task_id: int) -> list[dict]:
    return ls.request("GET", f"/api/predictions/?task={task_id}")


def _interactive(ls, ml_id: int, task_id: int, context: dict) -> dict:
    return ls.request("POST", f"/api/ml/{ml_id}/interactive-annotating", {"task": task_id, "context": context},
                      timeout_s=120)


@pytest.fixture(scope="module")
def clip(label_studio) -> Path:
    return write_clip(label_studio.files_root / "opossum_clip.mp4")


def test_e2e_video_tracking_upload_interactive_batch_and_background(label_studio, backend_server, clip):
    ls = label_studio
    project = _project(ls, "video_tracking", "video tracking")
    with open(clip, "rb") as handle:  # an uploaded file: served by LS only with auth (our PAT path)
        requests.post(f"{ls.url}/api/projects/{project}/import", headers=ls.headers,
                      files={"file": ("clip.mp4", handle, "video/mp4")}, timeout=60).raise_for_status()
    (task,) = _tasks(ls, project)
    assert task["data"]["video"].startswith("/data/upload/")
    ml_id = _connect(ls, project, backend_server)
    box = {"id": "vr1", "from_name": "box", "to_name": "video", "type": "videorectangle", "origin": "manual",
           "value": {"framesCount": CLIP_FRAMES, "duration": CLIP_FRAMES / 10, "labels": ["Object"], "sequence": [
               {"frame": 6, "enabled": True, "rotation": 0, "x": 10, "y": 10, "width": 80, "height": 80,
                "time": 0.5}]}}
    reply = _interactive(ls, ml_id, task["id"], {"result": [box]})
    regions = [r for r in reply["data"]["result"] if r["type"] == "videorectangle"]
    assert regions, (reply, backend_server.log_path.read_text()[-3000:])
    region = regions[0]
    frames = [k["frame"] for k in region["value"]["sequence"]]
    assert 6 in frames and region["id"] == "vr1" and "score" in region
    # the 0.05 s budget cut the propagation: the full track arrives as a stored prediction
    deadline = time.monotonic() + 120
    stored = []
    while time.monotonic() < deadline and not stored:
        stored = [p for p in _predictions(ls, task["id"]) if p["result"]]
        time.sleep(1)
    assert stored, backend_server.log_path.read_text()[-2000:]
    full = stored[-1]
    assert full["model_version"].startswith("tiny@") and full["score"] is not None
    assert len(full["result"][0]["value"]["sequence"]) >= len(frames)


def test_e2e_video_masks_frames_batch_predictions_stored(label_studio, backend_server, clip):
    ls = label_studio
    out = ls.files_root / "frames"
    subprocess.run([sys.executable, "-m", "backend", "frames", str(clip), "--out", str(out)], cwd=REPO, check=True,
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    tasks = json.loads((out / "tasks.json").read_text())
    tasks[0]["data"]["query"] = "the animal"
    project = _project(ls, "video_masks", "video masks")
    ls.add_local_storage(project, out)
    ls.request("POST", f"/api/projects/{project}/import", tasks)
    ml_id = _connect(ls, project, backend_server)
    ls.request("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
               {"selectedItems": {"all": True, "excluded": []}}, timeout_s=120)
    (task,) = _tasks(ls, project)
    (prediction,) = _predictions(ls, task["id"])
    masks = [r for r in prediction["result"] if r["type"] == "brushlabels"]
    assert masks and prediction["model_version"].startswith("tiny@")
    assert all(0 <= r["item_index"] < len(task["data"]["frames"]) and "score" in r for r in masks)
    click = {"id": "k1", "from_name": "click", "to_name": "frames", "type": "keypointlabels", "item_index": 4,
             "original_width": W, "original_height": H, "image_rotation": 0, "is_positive": True,
             "value": {"x": 50, "y": 50, "width": 1, "keypointlabels": ["Object"], "labels": ["Object"]}}
    reply = _interactive(ls, ml_id, task["id"], {"result": [click]})
    assert 4 in {r.get("item_index") for r in reply["data"]["result"]}


def test_e2e_a_task_with_nothing_to_predict_gets_no_empty_prediction(label_studio, backend_server, clip):
    """Opening a task makes Label Studio ask the backend for predictions (``MLBackend.predict_tasks``, as *Retrieve
    Predictions* does). A task without a query has nothing to predict: it must not be stored an empty prediction,
    which the editor shows as a "tiny@base 0.00%" tab next to the annotator's own; a task with one gets its masks."""
    ls = label_studio
    import av
    from finetune.world import writers

    with av.open(str(clip)) as source:
        frame = next(source.decode(video=0)).to_ndarray(format="rgb24")
    folder = ls.files_root / "nothing-to-predict"
    folder.mkdir(exist_ok=True)
    url = ls.local_files_url(writers.write_image(frame, folder / "still.png"))
    project = _project(ls, "image_segmentation", "nothing to predict")
    ls.add_local_storage(project, folder)
    ls.request("POST", f"/api/projects/{project}/import", [{"data": {"image": url}},
                                                           {"data": {"image": url, "query": "the animal"}}])
    _connect(ls, project, backend_server)
    ls.request("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
               {"selectedItems": {"all": True, "excluded": []}}, timeout_s=120)
    plain, queried = sorted(_tasks(ls, project), key=lambda t: "query" in t["data"])
    assert _predictions(ls, plain["id"]) == []
    (stored,) = _predictions(ls, queried["id"])
    assert stored["model_version"].startswith("tiny@") and stored["result"], stored


def test_e2e_image_configs_and_fine_tune_loop(label_studio, backend_server, e2e_env, clip):
    ls = label_studio
    import av
    from finetune.world import writers

    with av.open(str(clip)) as source:
        frame = next(source.decode(video=0)).to_ndarray(format="rgb24")
    folder = ls.files_root / "images"
    folder.mkdir(exist_ok=True)
    writers.write_image(frame, folder / "opossum.png")
    url = ls.local_files_url(folder / "opossum.png")
    results = {}
    for name in ("image_segmentation", "referring_expressions"):
        project = _project(ls, name, name.replace("_", " "))
        ls.add_local_storage(project, folder)
        ls.request("POST", f"/api/projects/{project}/import", [{"data": {"image": url, "query": "the animal"}}])
        ml_id = _connect(ls, project, backend_server)
        (task,) = _tasks(ls, project)
        text = {"id": "t1", "from_name": "prompt", "to_name": "image", "type": "textarea",
                "value": {"text": ["the animal"]}}
        reply = _interactive(ls, ml_id, task["id"], {"result": [text]})
        assert any(r["type"] == "brushlabels" for r in reply["data"]["result"])
        ls.request("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
                   {"selectedItems": {"all": True, "excluded": []}}, timeout_s=120)  # batch: the task's query
        (stored,) = _predictions(ls, task["id"])
        assert stored["model_version"].startswith("tiny@") and stored["score"] is not None
        assert [r["type"] for r in stored["result"]][0] == "brushlabels"
        assert all(r["original_width"] == W and "score" in r for r in stored["result"] if r["type"] == "brushlabels")
        results[name] = (project, ml_id, task)

    project, ml_id, task = results["referring_expressions"]
    mask = np.zeros((H, W), bool)
    mask[20:70, 40:120] = True
    annotation = [{"id": "r1", "from_name": "mask", "to_name": "image", "type": "brushlabels",
                   "original_width": W, "original_height": H, "image_rotation": 0,
                   "value": {"format": "rle", "rle": mask_to_ls_rle(mask), "brushlabels": ["Region"]}},
                  {"id": "r1", "from_name": "description", "to_name": "image", "type": "textarea",
                   "value": {"text": ["an opossum in the snow"]}}]
    ls.request("POST", f"/api/tasks/{task['id']}/annotations/", {"result": annotation})
    events = Path(e2e_env["UNIPIXEL_DATA_DIR"]) / "projects" / str(project) / "webhook_events.jsonl"
    _wait(lambda: events.is_file() and "ANNOTATION_CREATED" in events.read_text(), "the annotation webhook")
    ls.request("POST", f"/api/ml/{ml_id}/train", {})  # the "Start Training" button
    worker = subprocess.run([sys.executable, "-m", "finetune", "worker", "--burst"], cwd=REPO, env=e2e_env,
                            capture_output=True, text=True, timeout=600)
    assert worker.returncode == 0, worker.stderr[-3000:]
    latest = (Path(e2e_env["MODEL_DIR"]) / "latest").read_text().strip()
    assert latest.startswith(f"p{project}-")
    # the run gathered from Label Studio: the local record is what it holds, and the events it covers are gone
    record = [json.loads(line) for line in (events.parent / "annotations.jsonl").read_text().splitlines()]
    assert [(r["task_id"], "an opossum in the snow" in json.dumps(r["result"])) for r in record] == [(task["id"], True)]
    assert "ANNOTATION_CREATED" not in (events.read_text() if events.exists() else "")
    assert list(events.parent.glob("webhook_events.*")) == ([events] if events.exists() else [])
    backend = _wait(lambda: (b := ls.request("GET", f"/api/ml/{ml_id}")) and latest in (b.get("model_version") or "")
                    and b, "Label Studio to show the new model version")
    assert backend["model_version"] == f"tiny@{latest}"
    versions = ls.request("GET", f"/api/ml/{ml_id}/versions")
    assert f"{latest}" in json.dumps(versions)


def _wait(check, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_e2e_start_training_with_nothing_to_train_is_refused_with_the_reason(label_studio, backend_server):
    """*Start Training* on a project without annotations: the backend refuses it at once, with the reason in its
    log and in the HTTP status line. Label Studio 1.23 records the failure on the model (state ER) but re-checks the
    backend on the next read of its model list and shows "Connected" again, so the annotator does not see it there
    (README: Troubleshooting)."""
    ls = label_studio
    project = _project(ls, "image_segmentation", "nothing to train")
    ml_id = _connect(ls, project, backend_server)
    ls.request("POST", f"/api/ml/{ml_id}/train", {})  # the "Start Training" button
    assert f"POST /webhook -> 422: Nothing to train: project {project} has no submitted annotations" in \
        backend_server.log_path.read_text()
    (backend,) = [b for b in ls.request("GET", f"/api/ml?project={project}") if b["id"] == ml_id]
    assert backend["state"] == "CO"  # what Label Studio shows: the refusal is not kept on the card
