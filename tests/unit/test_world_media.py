"""The synthetic world's writers (mp4, frame folders, images, DAVIS PNGs) and its Label Studio tasks and annotations
for every config in label_config/ (finetune/world/writers.py, ls_annotations.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.converters.geometry import mask_to_box_px, rect_pct_to_box_px
from backend.converters.annotation import MediaShape
from backend.converters.timeline import Timeline
from backend.label_config import parse_label_config
from finetune.export import davis_palette, read_davis_png
from finetune.world import writers
from finetune.world.expressions import describe, expressions
from finetune.world.ls_annotations import CONFIGS, annotation_result, task_data
from finetune.world.scene import Clip, WorldConfig, make_clip
from tests.unit.world_cases import (
    CROWDED, H, LABEL_CONFIGS, W, clip_of, first_frame, iou, label_config_spec, named, owner, present_objects,
)


# ---- writers -------------------------------------------------------------------------------------------------
def test_mp4_decodes_to_the_same_frames_within_h264_loss(tmp_path):
    import av
    import cv2

    clip = make_clip(1, WorldConfig(num_frames=6, resolutions_wh=((W, H),), fps=12.5))
    path = writers.write_mp4(clip.frames, tmp_path / "sub" / "clip.mp4", clip.fps)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and float(stream.average_rate) == 12.5
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    assert decoded.shape == clip.frames.shape  # frame count, height, width (not transposed)
    # crf 12 but yuv420p: chroma is halved, so every colour edge blurs over a pixel or two, and these tiny
    # frames are mostly edges. Bound: mean abs error <= 5 levels over the frames (measured 1.5-3.6 on seeds 0-3) ...
    error = np.abs(decoded.astype(int) - clip.frames.astype(int))
    assert error.mean() <= 5.0, error.mean()
    # ... and <= 6 levels per channel on average inside each object, 2 px away from its edges (measured <= 3).
    checked = 0
    for n, info in enumerate(clip.objects):
        for t in range(clip.num_frames):
            core = cv2.erode(clip.masks[n, t].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if core.sum() >= 4:
                assert np.abs(decoded[t][core].mean(axis=0) - info.rgb).max() <= 6, (n, t)
                checked += 1
    assert checked >= 6
    with pytest.raises(ValueError):
        writers.write_mp4(clip.frames[:, :47], tmp_path / "odd.mp4", 25.0)


def test_frame_folder_and_images_round_trip(tmp_path):
    clip = clip_of(1)
    paths = writers.write_frame_folder(clip.frames, tmp_path / "frames")
    assert [p.name for p in paths] == [f"{n:05d}.png" for n in range(1, clip.num_frames + 1)]
    for path, frame in zip(paths, clip.frames):
        np.testing.assert_array_equal(np.array(Image.open(path)), frame)
    jpeg = writers.write_image(clip.frames[0], tmp_path / "still.jpg")
    with Image.open(jpeg) as image:
        assert image.format == "JPEG" and image.size == (W, H)
        assert np.abs(np.array(image).astype(int) - clip.frames[0]).mean() <= 4.0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [p.name for p in paths]  # no .part left


def test_an_image_is_written_whole_or_not_at_all_and_only_as_png_or_jpeg(tmp_path, monkeypatch):
    """The render cache takes a frame file that exists for a finished one: a write killed half-way (Ctrl-C in a
    render process) must leave no file under the frame's name."""
    frame = clip_of(1).frames[0]

    def killed(self, fp, **options):
        Path(fp).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", killed)
        with pytest.raises(KeyboardInterrupt):
            writers.write_image(frame, tmp_path / "frames" / "00001.png")
    assert not (tmp_path / "frames" / "00001.png").exists()
    with pytest.raises(ValueError, match=r"written as .png or .jpg, not .bmp"):
        writers.write_image(frame, tmp_path / "still.bmp")


def test_davis_layout_holds_exact_object_ids(tmp_path):
    clips = {"a": clip_of(0), "b": clip_of(1, CROWDED)}
    root = writers.write_davis(clips, tmp_path / "davis")
    for name, clip in clips.items():
        jpgs = sorted((root / "JPEGImages" / "480p" / name).glob("*.jpg"))
        pngs = sorted((root / "Annotations" / "480p" / name).glob("*.png"))
        assert [p.stem for p in jpgs] == [p.stem for p in pngs] == [f"{t:05d}" for t in range(clip.num_frames)]
        for t, png in enumerate(pngs):
            with Image.open(png) as image:
                assert image.mode == "P"
                assert np.array_equal(np.array(image.getpalette()[:768], np.uint8).reshape(256, 3), davis_palette())
            expected = np.zeros(clip.size_hw, np.uint8)
            for n in range(len(clip.objects)):
                expected[clip.masks[n, t]] = n + 1
            np.testing.assert_array_equal(read_davis_png(png), expected)
        with Image.open(jpgs[0]) as image:
            assert image.size == clip.size_hw[::-1]


# ---- Label Studio annotations --------------------------------------------------------------------------------
def _obj_of(region_id: str, clip: Clip) -> int:
    m = re.fullmatch(rf"w{clip.seed}-(\d+)(-f\d+)?", region_id)
    assert m, region_id
    return int(m[1]) - 1


def _labeled(clip: Clip, spec, result: list[dict], media: str):
    from finetune.convert import LabeledTask  # imported here: a broken fine-tune import fails these tests only

    height, width = clip.size_hw
    if spec.mode == "video":
        shape = MediaShape(clip.num_frames, height, width, clip.fps, spec.framerate({}))
    elif spec.mode == "frames":
        shape = MediaShape(clip.num_frames, height, width, 0.0)
    else:
        shape = MediaShape(1, height, width, 0.0)
    return LabeledTask(clip.seed, {}, result, media, shape)


def task_objects(task, spec):
    """The fine-tune job's own grouping of an annotation's regions into objects (also used by the project export)."""
    from finetune.convert import task_objects as objects

    return objects(task, spec)


def _samples(task, spec):
    from finetune.convert import task_to_samples

    return task_to_samples(task, spec)


def test_configs_cover_every_label_config():
    assert sorted(CONFIGS) == sorted(p.stem for p in LABEL_CONFIGS.glob("*.xml"))


@pytest.mark.parametrize("fps", [25.0, 12.5])  # 12.5: LS (framerate 25) shows every decoded frame twice
def test_video_tracking_tracks_read_back_to_the_true_boxes_and_frames(fps):
    spec = label_config_spec("video_tracking")
    clip = make_clip(7, WorldConfig(num_frames=12, resolutions_wh=((W, H),), p_enter=0.5, p_leave=0.5, fps=fps))
    result = annotation_result(clip, spec, np.random.default_rng(0))
    timeline = Timeline(clip.num_frames, clip.fps, spec.framerate({}))
    tracks = [r for r in result if r["type"] == "videorectangle"]
    assert sorted(_obj_of(r["id"], clip) for r in tracks) == present_objects(clip)
    for region in tracks:
        obj = _obj_of(region["id"], clip)
        assert region["from_name"] == spec.output.name and region["to_name"] == spec.obj.name
        assert region["origin"] == "manual" and "score" not in region
        value = region["value"]
        assert value["framesCount"] == timeline.ls_frames_count
        frames = {}
        for key in value["sequence"]:
            assert key["frame"] >= 1  # LS frames are 1-based
            frames.setdefault(timeline.to_frame_idx(key["frame"]), []).append(key)
        assert sorted(frames) == clip.visible_frames(obj)  # exact frame indices
        for t, keys in frames.items():
            truth = mask_to_box_px(clip.masks[obj, t])
            for key in keys:
                box = rect_pct_to_box_px(key["x"], key["y"], key["width"], key["height"], W, H)
                assert np.allclose(box, truth, atol=1e-6), (t, box, truth)
        # A visible span ends with a disabled keyframe exactly where the object vanishes for good.
        sequence = value["sequence"]
        last_visible = clip.visible_frames(obj)[-1]
        assert (sequence[-1]["enabled"] is False) == (last_visible < clip.num_frames - 1)
    descriptions = {r["id"]: r["value"]["text"] for r in result if r["type"] == "textarea"}
    assert descriptions == {r["id"]: [describe(clip, _obj_of(r["id"], clip))] for r in tracks}
    # The fine-tune path reads them back: one ref sample per track, its box on the first visible frame.
    refs = [s for s in _samples(_labeled(clip, spec, result, "clip.mp4"), spec) if s.kind == "ref"]
    assert len(refs) == len(tracks)
    for sample, region in zip(refs, tracks):
        obj = _obj_of(region["id"], clip)
        (box,) = sample.prompts
        first = clip.visible_frames(obj)[0]
        assert box.frame_idx == first and sample.answer == describe(clip, obj)
        assert np.allclose((box.x1_px, box.y1_px, box.x2_px, box.y2_px), mask_to_box_px(clip.masks[obj, first]))


def test_video_masks_read_back_to_the_exact_masks_on_every_frame():
    spec = label_config_spec("video_masks")
    clip = make_clip(7, WorldConfig(num_frames=10, resolutions_wh=((W, H),), p_enter=0.5, p_leave=0.5))
    result = annotation_result(clip, spec, np.random.default_rng(0))
    brushes = [r for r in result if r["type"] == "brushlabels"]
    assert all(r["id"].endswith(f"-f{r['item_index'] + 1}") for r in brushes)  # LS frame = item_index + 1
    task = _labeled(clip, spec, result, "frames/")
    objects, _ = task_objects(task, spec)  # the parser the fine-tune job and the project export use
    present = present_objects(clip)
    assert sorted(_obj_of(key, clip) for key in objects) == present
    for key, parsed in objects.items():
        obj = _obj_of(key, clip)
        assert sorted(parsed.masks) == clip.visible_frames(obj)  # exact, 0-based
        for t, mask in parsed.masks.items():
            assert iou(mask, clip.masks[obj, t]) >= 0.95  # LS RLE is lossless: in practice exactly 1.0
            np.testing.assert_array_equal(mask, clip.masks[obj, t])
        assert parsed.description == describe(clip, obj) and parsed.label == spec.default_label
    samples = _samples(task, spec)
    regions = [s for s in samples if s.kind == "region"]
    assert sorted(s.answer for s in regions) == sorted(describe(clip, n) for n in present)
    for sample in regions:
        owner(clip, sample.region_masks[0], sample.frame_idx)


@pytest.mark.parametrize("config_name", ["image_segmentation", "referring_expressions"])
@pytest.mark.parametrize("seed", range(10))
def test_image_annotations_name_their_object_on_the_still(config_name, seed):
    """Image tasks show ``images/<name>.png``, frame 0: masks and texts must hold on that frame alone."""
    spec = label_config_spec(config_name)
    clip = clip_of(seed, CROWDED)
    still = first_frame(clip)
    result = annotation_result(clip, spec, np.random.default_rng(seed))
    task = _labeled(clip, spec, result, "still.png")
    objects, query = task_objects(task, spec)
    on_still = {(e.obj, e.text) for e in expressions(still)}
    for key, parsed in objects.items():
        obj = _obj_of(key, clip)
        assert sorted(parsed.masks) == [0]
        np.testing.assert_array_equal(parsed.masks[0], clip.masks[obj, 0])
        if config_name == "referring_expressions":
            text = parsed.description
            assert (obj, text) in on_still or (text == describe(clip, obj)), (seed, obj, text)
            if text != describe(clip, obj):
                assert named(still, text) == [obj], (seed, text)
    if config_name == "image_segmentation":
        if not objects:
            assert result == []
            return
        ((key, parsed),) = objects.items()
        obj = _obj_of(key, clip)
        assert (obj, query) in on_still and named(still, query) == [obj], (seed, query)
        (seg,) = [s for s in _samples(task, spec) if s.kind == "seg"]
        assert query[len("the "):] in seg.question
        np.testing.assert_array_equal(seg.target_masks[0, 0], clip.masks[obj, 0])
    else:
        assert sorted(_obj_of(k, clip) for k in objects) == \
            [n for n in present_objects(still) if clip.masks[n, 0].any()]


def test_task_data_puts_media_under_the_config_key():
    assert task_data(label_config_spec("video_tracking"), "/m/clip.mp4", 25.0) == {"video": "/m/clip.mp4"}
    assert task_data(label_config_spec("video_masks"), ["/a.png", "/b.png"]) == {"frames": ["/a.png", "/b.png"]}
    assert task_data(label_config_spec("image_segmentation"), "/m/x.png") == {"image": "/m/x.png"}
    fps_spec = parse_label_config('<View><Video name="v" value="$video" framerate="$fps"/>'
                                  '<VideoRectangle name="box" toName="v"/></View>')
    assert task_data(fps_spec, "/m/clip.mp4", 12.5) == {"video": "/m/clip.mp4", "fps": 12.5}
