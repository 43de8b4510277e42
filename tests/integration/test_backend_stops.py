"""A served backend stopped in the middle of a background track: by SIGTERM (``docker stop``, a deploy) it stops at
once and says what it cut off; by SIGKILL (a crash) its next start says it. Either way the next process serves the
task again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.backend_media import write_video
from tests.integration.test_backend_api import _video_box_body
from tests.served_backend import ServedBackend


def served_env(model: Path, media_root: Path, work: Path) -> dict[str, str]:
    """The environment of a served tiny backend whose propagation outlasts its interactive budget (0.01 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "UNIPIXEL_"))}
    env.update({"PYTHONPATH": str(Path(__file__).parents[2]), "HF_HUB_OFFLINE": "1", "UNIPIXEL_MODEL": str(model),
                "UNIPIXEL_LOCAL_ROOTS": str(media_root), "UNIPIXEL_DATA_DIR": str(work / "data"),
                "UNIPIXEL_MEDIA_CACHE_DIR": str(work / "media"), "MODEL_DIR": str(work / "models"),
                "UNIPIXEL_INTERACTIVE_BUDGET_S": "0.01", "UNIPIXEL_DESCRIBE": "false", "OMP_NUM_THREADS": "2"})
    return env


FRAMES = 300  # at 10 fps: long enough that the track is still propagating when the signal comes

DROPPED_AT_START = "task 42: the full track of vr7 was still being propagated when the backend stopped"


@pytest.fixture
def long_track(tiny_checkpoint, media_root, tmp_path):
    """(environment, /predict body): a box on the middle frame of a 300-frame video, whose track goes on in the
    background after the interactive answer."""
    video = write_video(media_root / f"long-{tmp_path.name}.mp4", count=FRAMES, fps=10)
    return served_env(tiny_checkpoint, media_root, tmp_path), _video_box_body(video, 42, "vr7", FRAMES)


def _start_the_track(env, body, log, docker: bool = False) -> ServedBackend:
    served = ServedBackend(env, log, preload=not docker, docker=docker).wait()
    assert served.predict(body)["results"][0]["result"], served.text()[-3000:]  # the interactive part came back
    pending = Path(env["UNIPIXEL_DATA_DIR"]) / "pending"
    assert list(pending.glob("42-*.json")), served.text()[-3000:]  # the rest goes on in the background
    return served


@pytest.mark.parametrize("docker", [False, True], ids=["python-m-backend-serve", "docker-cmd"])
def test_sigterm_during_a_background_track_stops_at_once_and_says_what_it_cut_off(long_track, tmp_path, docker):
    """``docker stop`` sends SIGTERM and kills after 10 s. The backend used to wait for the whole track (and any
    queued ones) until gunicorn's 30 s graceful timeout killed its worker, logging nothing about it. Both ways to
    serve: the README's command and the Docker image's ``CMD`` (gunicorn with ``backend.gunicorn_conf``)."""
    env, body = long_track
    served = _start_the_track(env, body, tmp_path / "first.log", docker)
    try:
        served.terminate(timeout_s=25)
    finally:
        served.kill()
    text = served.text()
    assert "task 42: the backend is stopping: the full track of vr7 is cut off" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "Control socket" not in text, text[-3000:]  # the other setting of backend.gunicorn_conf
    # its marker stays, so the next start says it too (what the test below checks after a SIGKILL)
    assert list((tmp_path / "data" / "pending").glob("42-*.json")), text[-3000:]


def test_backend_killed_during_a_background_track_says_at_restart_what_it_dropped(long_track, tmp_path):
    """SIGKILLed while a long track propagates in the background: the next process logs which task's track was
    dropped and how to get it back, and serves the task again."""
    env, body = long_track
    first = _start_the_track(env, body, tmp_path / "first.log")
    first.kill()
    second = ServedBackend(env, tmp_path / "second.log", preload=True).wait()
    try:
        assert DROPPED_AT_START in second.text(), second.text()[-3000:]
        assert not list((tmp_path / "data" / "pending").glob("*.json"))
        assert second.predict(body)["results"][0]["result"], second.text()[-3000:]  # served again
    finally:
        second.kill()  # its own new track is propagating: SIGKILL, not the stop under test above


def test_stop_cancels_the_queued_background_jobs_and_names_each(backend_settings, caplog):
    """What :meth:`Engine.stop` does in gunicorn's ``worker_exit`` hook: the running job goes on to its next chunk
    (it checks ``engine.stopping``), the queued ones are cancelled, each named with its task and how to get it back,
    and a job submitted after the stop is not started."""
    import threading

    from backend.engine import Engine

    engine = Engine(backend_settings)
    release = threading.Event()
    running = engine.submit(release.wait, 30, task_id=1, what="the full track of r1")
    queued = engine.submit(print, "never", task_id=2, what="the text-query prediction",
                           recover="Retrieve Predictions recomputes it")
    with caplog.at_level("WARNING", logger="backend.engine"):
        engine.stop()
        late = engine.submit(print, "never", task_id=3, what="the full track of r3")
    release.set()
    assert running.result(timeout=10) is True and queued.cancelled() and late.cancelled()
    assert engine.stopping.is_set()
    said = [r.getMessage() for r in caplog.records]
    assert said == [("task 2: the backend is stopping: the text-query prediction is cut off (it was queued) and not "
                     "posted to Label Studio; Retrieve Predictions recomputes it"),
                    ("task 3: the backend is stopping: the full track of r3 is not started; select the region and "
                     "press its label again (or Retrieve Predictions) to get it")], said
