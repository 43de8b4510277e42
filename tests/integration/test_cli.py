"""``python -m unipixel_model predict`` on the tiny model."""

import numpy as np
import pytest
from PIL import Image

from finetune.world import writers
from unipixel_model.__main__ import main


def _video(path, frames=6):
    """A red disc moving right, as MPEG-4 Part 2 (OpenCV's ``mp4v``, a second codec to decode)."""
    yy, xx = np.mgrid[:64, :96]
    clip = np.full((frames, 64, 96, 3), 40, np.uint8)
    for t in range(frames):
        clip[t][(xx - 20 - 8 * t) ** 2 + (yy - 32) ** 2 <= 100] = (255, 0, 0)
    return writers.write_mp4(clip, path, 10, codec="mpeg4")


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
    writers.write_image(np.full((50, 70, 3), 128, np.uint8), image)
    assert main(["predict", "--model", str(tiny_checkpoint), "--media", str(image),
                 "--text", "Please segment the ball.", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "overlay.png").is_file()
    assert main(["predict", "--model", str(tiny_checkpoint), "--media", str(image), "--point", "500,5,0",
                 "--out", str(tmp_path / "o2")]) == 2
    assert "outside the 70x50 frame" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "--media", str(image), "--out", str(tmp_path / "o3")])
