"""Memory flat in video length (issue 12): frames read back without a mapping, heap trimming, levers."""

from __future__ import annotations

import numpy as np
import pytest
from finetune.world import writers
from unipixel_model import heap
from unipixel_model.errors import MediaDecodeError
from unipixel_model.media import frame_folder_files, load_frames, read_frame_files
from unipixel_model.speed import SpeedLevers


def _frame_folder(folder, count: int = 5) -> np.ndarray:
    folder.mkdir()
    frames = np.random.default_rng(0).integers(0, 255, (count, 12, 16, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        writers.write_image(frame, folder / f"{i:03d}.png")
    return frames


def test_media_take_reads_the_decoded_frames_back_without_mapping_them(tmp_path):
    """Regression (issue 12): ``take`` read through the memmap, so every frame a session touched
    stayed mapped into the process (0.22 MiB of RSS per 320x240 frame until the session closed)."""
    expected = _frame_folder(tmp_path / "clip")
    frames = load_frames(tmp_path / "clip")
    assert frames.num_frames == 5 and frames.size_hw == (12, 16)
    assert np.array_equal(frames.take([3, 0, -1]), expected[[3, 0, 4]])
    assert np.array_equal(frames.take(list(range(5))), expected)
    with pytest.raises(IndexError):
        frames.take([5])


def test_media_a_few_frames_of_a_folder_decode_alone_as_load_frames_reads_them(tmp_path):
    """The trainer decodes only a sample's frames of a frame folder; they are the pixels ``load_frames`` gives, in
    the folder's numeric order (``10.png`` after ``9.png``), at the working size."""
    expected = _frame_folder(tmp_path / "clip", 11)
    (tmp_path / "clip" / "010.png").rename(tmp_path / "clip" / "10.png")
    files = frame_folder_files(tmp_path / "clip")
    assert [f.name for f in files][-2:] == ["009.png", "10.png"]
    few = read_frame_files([files[i] for i in (2, 10)])
    assert np.array_equal(few.pixels, load_frames(tmp_path / "clip").take([2, 10]))
    assert np.array_equal(few.pixels, expected[[2, 10]]) and not few.is_image and few.size_hw == (12, 16)
    small = read_frame_files(files[:1], max_side=8)
    assert small.stored_hw == (6, 8) and small.size_hw == (12, 16)
    writers.write_image(np.zeros((5, 5, 3), np.uint8), tmp_path / "clip" / "007.png")
    with pytest.raises(MediaDecodeError, match=r"007.png is \(5, 5\), the first frame is \(12, 16\)"):
        read_frame_files(files[:1] + files[7:8])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MediaDecodeError, match="no frame images"):
        frame_folder_files(tmp_path / "empty")


def test_media_take_of_an_array_is_a_copy():
    pixels = np.zeros((3, 4, 4, 3), np.uint8)
    taken = load_frames(pixels).take([1])
    taken[:] = 7
    assert pixels.max() == 0


def test_media_frame_size_change_is_refused(tmp_path):
    _frame_folder(tmp_path / "clip", 2)
    writers.write_image(np.zeros((5, 5, 3), np.uint8), tmp_path / "clip" / "002.png")
    with pytest.raises(MediaDecodeError, match="002.png"):
        load_frames(tmp_path / "clip")


@pytest.mark.parametrize("kind", ["video", "frame folder"])
def test_media_refuses_frames_that_do_not_fit_on_the_temporary_disk(tmp_path, monkeypatch, kind):
    """Frames are decoded once into a file under TMPDIR: frames x height x width x 3 bytes (a 10-minute 1080p clip at
    30 fps: 112 GB). Media that would leave less than the reserve free is refused before it fills the disk (which
    Label Studio's database and Redis may share), with the numbers and what to do."""
    import shutil

    from unipixel_model import media

    frames = _frame_folder(tmp_path / "clip", 6)
    source = tmp_path / "clip" if kind == "frame folder" else writers.write_mp4(frames, tmp_path / "clip.mp4", 10.0)
    usage = shutil.disk_usage(tmp_path)
    fits = media.DISK_RESERVE_BYTES + 6 * 12 * 16 * 3  # exactly what decoding needs: accepted
    monkeypatch.setattr(media.shutil, "disk_usage", lambda path: usage._replace(free=fits))
    assert load_frames(source).num_frames == 6
    monkeypatch.setattr(media.shutil, "disk_usage", lambda path: usage._replace(free=fits - 1))
    with pytest.raises(MediaDecodeError, match=r"needs 3456 bytes .* TMPDIR"):
        load_frames(source)


def test_media_a_disk_that_fills_up_while_decoding_is_a_clear_error(tmp_path, monkeypatch):
    """Another process may take the room after the check: the kernel's ENOSPC (here from /dev/full) becomes a
    MediaDecodeError that says what to do, not an OSError (a 500)."""
    from unipixel_model import media

    _frame_folder(tmp_path / "clip", 3)
    monkeypatch.setattr(media, "_frames_file", lambda: open("/dev/full", "wb", buffering=0))
    with pytest.raises(MediaDecodeError, match="filled up while decoding .* TMPDIR"):
        load_frames(tmp_path / "clip")


def test_heap_trims_when_the_resident_size_grew(monkeypatch):
    sizes = iter([100, 110, 100 + heap.TRIM_GROWTH_BYTES + 1, 105, 106])
    calls = []
    monkeypatch.setattr(heap, "resident_bytes", lambda: next(sizes))
    monkeypatch.setattr(heap, "_trimmed_at", None)
    libc = heap._glibc()
    if libc is None:  # not glibc: nothing to trim, nothing to test
        return
    monkeypatch.setattr(heap, "_libc", type("Libc", (), {"malloc_trim": lambda self, pad: calls.append(pad) or 1})())
    for _ in range(4):  # 100 (baseline), 110, 100+16Mi+1 -> trim (then 105 read back), 106
        heap.note_frame_done()
    assert calls == [0] and heap._trimmed_at == 105


def test_heap_settings_apply_on_glibc():
    assert heap.limit_heap_retention() in (True, False)
    assert heap.release_free_memory() in (True, False)
    assert heap.resident_bytes() is None or heap.resident_bytes() > 0


def test_speed_levers_parse_and_label():
    levers = SpeedLevers.parse("sam2_bf16, attn=eager,gpu_frames")
    assert (levers.sam2_bf16, levers.compile_sam2, levers.gpu_frames, levers.attn) == (True, False, True, "eager")
    assert levers.label == "sam2_bf16,gpu_frames,attn=eager"
    assert SpeedLevers.parse("").label == SpeedLevers.parse("none").label == "baseline"
    with pytest.raises(ValueError, match="compile_sam2"):
        SpeedLevers.parse("compile")


def _big_clip(count: int = 4) -> np.ndarray:
    """uint8 [count, 96, 128, 3]: a smooth gradient and a moving square (survives H.264 and resizing)."""
    yy, xx = np.mgrid[0:96, 0:128]
    frames = np.zeros((count, 96, 128, 3), np.uint8)
    for i in range(count):
        frames[i, ..., 0], frames[i, ..., 1] = xx * 2, yy * 2
        frames[i, 20:60, 10 + 10 * i:50 + 10 * i] = (255, 255, 0)
    return frames


@pytest.mark.parametrize("kind", ["video", "frame folder", "image"])
def test_media_larger_than_the_working_size_is_stored_downscaled_and_keeps_its_size(tmp_path, monkeypatch, kind):
    """Every frame was stored raw at its own size before the first mask (a 10-minute 1080p clip: 112 GB under
    TMPDIR). With ``max_side``, larger frames are stored with that longer side (SAM 2 sees 768-1024 px, the LLM
    less, and masks come from low-res logits anyway), while ``size_hw`` stays the media's own: prompts, masks and
    Label Studio's units keep the original pixels. The disk check counts what is stored."""
    import shutil

    import cv2

    from unipixel_model import media

    clip = _big_clip()
    if kind == "video":
        source = writers.write_mp4(clip, tmp_path / "clip.mp4", 10.0)
    else:
        (tmp_path / "clip").mkdir()
        for i, frame in enumerate(clip[:1] if kind == "image" else clip):
            writers.write_image(frame, tmp_path / "clip" / f"{i:03d}.png")
        source = tmp_path / "clip" / "000.png" if kind == "image" else tmp_path / "clip"
    count = 1 if kind == "image" else 4
    real_usage = shutil.disk_usage
    usage = real_usage(tmp_path)
    stored_bytes = count * 24 * 32 * 3
    monkeypatch.setattr(media.shutil, "disk_usage", lambda path: usage._replace(free=media.DISK_RESERVE_BYTES + stored_bytes))
    frames = load_frames(source, max_side=32)
    assert frames.size_hw == (96, 128) and frames.num_frames == count
    taken = frames.take(list(range(count)))
    assert taken.shape == (count, 24, 32, 3)
    expected = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in clip[:count]])
    assert np.abs(taken.astype(int) - expected).mean() < 6  # H.264 is lossy; a wrong resize or channel order is not
    if kind != "image":  # full-size frames would not fit in the room left: refused, not written
        with pytest.raises(MediaDecodeError, match=f"needs {count * 96 * 128 * 3} bytes"):
            load_frames(source)
    monkeypatch.setattr(media.shutil, "disk_usage", real_usage)
    within = load_frames(source, max_side=128)  # within the size: untouched
    assert within.take([0]).shape == (1, 96, 128, 3) and within.original_hw is None
    assert load_frames(source).stored_hw == (96, 128)


def test_media_a_negative_max_side_is_refused_not_a_one_pixel_store(tmp_path):
    """A negative ``max_side`` scaled every frame to 1x1 without a word; it is a ValueError naming the value."""
    _frame_folder(tmp_path / "clip", 2)
    with pytest.raises(ValueError, match=r"max_side must be None, 0 \(keep the size\) or > 0 pixels, got -16"):
        load_frames(tmp_path / "clip", max_side=-16)


@pytest.mark.parametrize("kind", ["video", "frame folder"])
def test_media_decoded_frames_leave_no_file_behind_when_the_process_is_killed(tmp_path, kind):
    """Regression: the decoded frames lived in a *named* file under TMPDIR, removed only when Python closed it, so
    every backend or worker killed with SIGKILL (the OOM killer, ``docker kill``, a stop past its grace period) left
    frames x height x width x 3 bytes there for good (11 files of 2.7 MB were found under /tmp after a day of test
    runs; a 1080p clip stored at 1024 px leaves about 1 GB). The file now has no name: the kernel frees it with the
    process, however it ends."""
    import os
    import subprocess
    import sys

    frames = _frame_folder(tmp_path / "clip", 4)
    source = tmp_path / "clip" if kind == "frame folder" else writers.write_mp4(frames, tmp_path / "clip.mp4", 10.0)
    temp = tmp_path / "tmp"
    temp.mkdir()
    script = ("import os, signal, sys\n"
              "from unipixel_model.media import load_frames\n"
              "frames = load_frames(sys.argv[1])\n"
              "assert frames.take([3]).shape[0] == 1\n"
              "print(sorted(os.listdir(sys.argv[2])), flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "TMPDIR": str(temp)}
    done = subprocess.run([sys.executable, "-c", script, str(source), str(temp)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert done.stdout.strip() == "[]", f"named while the frames were in use: {done.stdout}"
    assert sorted(os.listdir(temp)) == [], "left behind by the killed process"
