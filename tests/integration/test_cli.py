"""``python -m unipixel_model predict`` on the tiny model."""

import numpy as np
import pytest
from PIL import Image

from unipixel_model.__main__ import main


def _video(path, frames=6):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for t in range(frames):
        frame = np.full((64, 96, 3), 40, np.uint8)
        cv2.circle(frame, (20 + 8 * t, 32), 10, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def test_cli_predict_video_with_point_writes_masks_and_overlay(tmp_path, tiny_checkpoint, capsys):
    media = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    code = main(["predict", "--model", str(tiny_checkpoint), "--media", str(media), "--text", "What is [1]?",
                 "--point", "36,32,2", "--out", str(out)])
    assert code == 0
    pngs = sorted(p.name for p in out.glob("obj1_frame*.png"))
    assert pngs == [f"obj1_frame{i:05d}.png" for i in range(6)]
    assert (out / "overlay.mp4").stat().st_size > 0
    assert np.asarray(Image.open(out / pngs[0])).shape == (64, 96)


def test_cli_predict_image_text_and_bad_point(tmp_path, tiny_checkpoint, capsys):
    image = tmp_path / "img.png"
    Image.fromarray(np.full((50, 70, 3), 128, np.uint8)).save(image)
    assert main(["predict", "--model", str(tiny_checkpoint), "--media", str(image),
                 "--text", "Please segment the ball.", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "overlay.png").is_file()
    assert main(["predict", "--model", str(tiny_checkpoint), "--media", str(image), "--point", "500,5,0",
                 "--out", str(tmp_path / "o2")]) == 2
    assert "outside the 70x50 frame" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "--media", str(image), "--out", str(tmp_path / "o3")])
