"""Unit tests for backend.frames: video -> numbered JPEGs + Label Studio tasks.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.converters.frame_files import frame_file_name
from backend.frames import add_frames_parser, run_frames
from finetune.world import writers

NUM_FRAMES, WIDTH, HEIGHT, FPS = 12, 64, 48, 12


def _gray_level(frame_idx: int) -> int:
    return 10 + 20 * frame_idx  # distinct per frame, so the order of the JPEGs can be checked


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 12-frame 64x48 H.264 video whose frame k is a flat gray of level 10 + 20k."""
    levels = np.array([_gray_level(k) for k in range(NUM_FRAMES)], np.uint8)
    clip = np.broadcast_to(levels[:, None, None, None], (NUM_FRAMES, HEIGHT, WIDTH, 3))
    return writers.write_mp4(clip, tmp_path_factory.mktemp("video") / "clip.mp4", FPS)


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend")
    add_frames_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def _mean(path: Path) -> float:
    with Image.open(path) as image:
        return float(np.asarray(image.convert("L")).mean())


def test_frames_cli_writes_one_based_jpegs_and_tasks(video, tmp_path):
    out = tmp_path / "frames"
    assert _run(["frames", str(video), "--out", str(out)]) == 0
    names = sorted(p.name for p in (out / "clip").iterdir())
    assert names == [f"{n:05d}.jpg" for n in range(1, NUM_FRAMES + 1)]
    for frame_idx in range(NUM_FRAMES):  # 00001.jpg is frame_idx 0
        assert _mean(out / "clip" / frame_file_name(frame_idx)) == pytest.approx(_gray_level(frame_idx), abs=4)
    tasks = json.loads((out / "tasks.json").read_text())
    assert tasks == [{"data": {
        "frames": [f"/data/local-files/?d=frames/clip/{n:05d}.jpg" for n in range(1, NUM_FRAMES + 1)],
        "video_name": "clip.mp4", "fps": float(FPS)}}]


def test_frames_cli_every_max_frames_and_url_prefix(video, tmp_path):
    out = tmp_path / "out dir"
    argv = ["frames", str(video), "--out", str(out), "--every", "3", "--max-frames", "3",
            "--url-prefix", "http://localhost:8081/", "--data-key", "images"]
    assert _run(argv) == 0
    assert sorted(p.name for p in (out / "clip").iterdir()) == ["00001.jpg", "00002.jpg", "00003.jpg"]
    for position, frame_idx in enumerate([0, 3, 6]):
        assert _mean(out / "clip" / frame_file_name(position)) == pytest.approx(_gray_level(frame_idx), abs=4)
    data = json.loads((out / "tasks.json").read_text())[0]["data"]
    assert data["images"] == [f"http://localhost:8081/out%20dir/clip/{n:05d}.jpg" for n in (1, 2, 3)]
    assert data["fps"] == pytest.approx(FPS / 3)


def test_frames_cli_several_videos_and_stale_frames(video, tmp_path):
    second = tmp_path / "second.mp4"
    second.write_bytes(video.read_bytes())
    out = tmp_path / "frames"
    assert _run(["frames", str(video), "--out", str(out)]) == 0
    assert _run(["frames", str(video), str(second), "--out", str(out), "--max-frames", "4"]) == 0
    assert len(list((out / "clip").glob("*.jpg"))) == 4  # 00005..00012 of the first run are gone
    tasks = json.loads((out / "tasks.json").read_text())
    assert [t["data"]["video_name"] for t in tasks] == ["clip.mp4", "second.mp4"]
    assert tasks[1]["data"]["frames"][0] == "/data/local-files/?d=frames/second/00001.jpg"


def test_frames_cli_missing_video_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    assert _run(["frames", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert f"video not found: {missing}" in capsys.readouterr().err
    assert not (tmp_path / "out" / "tasks.json").exists()


def test_frames_cli_undecodable_video_exits_2(tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_text("this is not a video")
    assert run_frames(argparse.Namespace(videos=[broken], out=tmp_path / "out", every=1, max_frames=None,
                                         url_prefix=None, data_key="frames")) == 2
    assert "broken.mp4" in capsys.readouterr().err


def test_frames_cli_refuses_colliding_stems(video, tmp_path, capsys):
    other = tmp_path / "clip.mkv"
    other.write_bytes(video.read_bytes())
    assert _run(["frames", str(video), str(other), "--out", str(tmp_path / "out")]) == 2
    assert "share the name stem ['clip']" in capsys.readouterr().err


def test_frames_cli_rejects_every_zero(video, tmp_path):
    with pytest.raises(SystemExit):
        _run(["frames", str(video), "--out", str(tmp_path), "--every", "0"])
