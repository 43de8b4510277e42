"""The synthetic world (finetune/world/): scenes, expressions, prompts, samples, media writers, LS tasks, export.

Clips are tiny (a few frames, 96x48 or smaller) so the whole file runs in a few seconds. Frames are
deliberately not square (width 96, height 48): a swapped x/y indexes out of range or lands elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.converters.geometry import mask_to_box_px, rect_pct_to_box_px
from backend.converters.annotation import MediaShape
from backend.converters.timeline import Timeline
from backend.label_config import parse_label_config
from finetune.export import davis_palette, read_davis_png
from finetune.world import sampling, writers
from finetune.world.export import FORMATS, write_world
from finetune.world.expressions import describe, expressions, motion_direction
from finetune.world.ls_annotations import CONFIGS, annotation_result, task_data
from finetune.world.samples import SampleMix, clip_samples, window
from finetune.world.scene import COLOURS, Clip, WorldConfig, make_clip, shape_mask_px
from unipixel_model.types import BoxPrompt, PointPrompt

LABEL_CONFIGS = Path(__file__).parents[2] / "label_config"
W, H = 96, 48  # not square on purpose
SMALL = WorldConfig(num_frames=8, resolutions_wh=((W, H),))
# Few shapes and colours, every new object a distractor: same-category twins, occlusions, every expression kind.
CROWDED = WorldConfig(num_frames=12, resolutions_wh=((128, 64),), objects=(3, 4), shapes=("circle", "square"),
                      colours=("red", "blue"), p_distractor=1.0, size_range=(0.15, 0.3), speed_range=(0.02, 0.05))
SEEDS = range(12)


@lru_cache(maxsize=None)
def _clip(seed: int, config: WorldConfig = SMALL) -> Clip:
    return make_clip(seed, config)


def _present(clip: Clip) -> list[int]:
    """Objects showing at least 16 pixels on some frame (what expressions and annotations consider)."""
    return [n for n in range(len(clip.objects)) if clip.visible_frames(n, min_pixels=16)]


def _first_frame(clip: Clip) -> Clip:
    """Frame 0 of ``clip`` as a one-frame clip: what ``images/<name>.png`` shows."""
    objects = [dataclasses.replace(o, centres_px=o.centres_px[:1], angles_deg=o.angles_deg[:1]) for o in clip.objects]
    return Clip(clip.seed, clip.frames[:1], clip.masks[:, :1], objects, clip.fps, clip.background)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether masks ``a`` and ``b`` (bool [H, W]) overlap or have pixels side by side (8-neighbours)."""
    import cv2

    return bool((cv2.dilate(a.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & b).any())


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean() + 0.5, ys.mean() + 0.5])


# ---- scene ---------------------------------------------------------------------------------------------------
def test_make_clip_is_deterministic_from_its_seed():
    a, b, other = make_clip(5, SMALL), make_clip(5, SMALL), make_clip(6, SMALL)
    assert a.seed == 5
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert [o.category for o in a.objects] == [o.category for o in b.objects]
    for oa, ob in zip(a.objects, b.objects):
        np.testing.assert_array_equal(oa.centres_px, ob.centres_px)
    assert a.frames.shape != other.frames.shape or not np.array_equal(a.frames, other.frames)
    assert a.masks.shape != other.masks.shape or not np.array_equal(a.masks, other.masks)


@pytest.mark.parametrize("width,height", [(96, 48), (48, 96), (64, 64), (130, 74)])
def test_frames_and_masks_have_the_configured_resolution(width, height):
    config = WorldConfig(num_frames=3, resolutions_wh=((width, height),))
    clip = make_clip(1, config)
    objects = len(clip.objects)
    assert 1 <= objects <= 4
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (3, height, width, 3)
    assert clip.masks.dtype == np.bool_ and clip.masks.shape == (objects, 3, height, width)
    assert clip.size_hw == (height, width) and clip.num_frames == 3 and clip.fps == config.fps


def test_resolution_is_drawn_from_the_configured_list():
    sizes = {(W, H), (64, 32), (40, 80)}
    config = WorldConfig(num_frames=1, resolutions_wh=tuple(sizes))
    seen = {make_clip(seed, config).size_hw[::-1] for seed in range(20)}
    assert seen == sizes


@pytest.mark.parametrize("seed", SEEDS)
def test_visible_pixels_have_their_object_colour_and_masks_cover_every_drawn_pixel(seed):
    clip = _clip(seed)
    # Visible masks never overlap: each pixel belongs to at most one object.
    assert clip.masks.sum(axis=0).max() <= 1
    for n, info in enumerate(clip.objects):
        assert clip.frames[clip.masks[n]].reshape(-1, 3).tolist() == [list(info.rgb)] * int(clip.masks[n].sum())
        assert np.abs(np.array(info.rgb) - COLOURS[info.colour]).max() <= 12
    # Outside every mask lies background only: on a plain background one colour that is no object's colour.
    outside = clip.frames[~clip.masks.any(axis=0)].reshape(-1, 3)
    if clip.background == "plain":
        assert len(np.unique(outside, axis=0)) == 1
        assert tuple(outside[0]) not in {o.rgb for o in clip.objects}


def test_backgrounds_are_plain_textured_and_noisy():
    """Plain: one colour. Textured: sharp stripes or checks of two colours, the same on every frame. Noisy: fresh
    noise on every frame. (A textured background may draw the same colour twice and look plain.)"""
    colours: dict[str, list[int]] = {}
    for seed in range(30):
        clip = make_clip(seed, WorldConfig(num_frames=2, resolutions_wh=((W, H),), objects=(1, 1)))
        outside = ~clip.masks.any(axis=0)
        both = outside[0] & outside[1]
        colours.setdefault(clip.background, []).append(len(np.unique(clip.frames[outside].reshape(-1, 3), axis=0)))
        if clip.background == "noisy":
            assert not np.array_equal(clip.frames[0][both], clip.frames[1][both])
        else:
            np.testing.assert_array_equal(clip.frames[0][both], clip.frames[1][both])
    assert set(colours["plain"]) == {1}
    assert set(colours["textured"]) <= {1, 2} and 2 in colours["textured"]
    assert min(colours["noisy"]) > 100


def test_nearer_objects_hide_farther_ones():
    """visible(n) == drawn(n) minus everything drawn by nearer objects (higher depth)."""
    overlaps = 0
    for seed in range(8):
        clip = _clip(seed, CROWDED)
        height, width = clip.size_hw
        assert sorted(o.depth for o in clip.objects) == list(range(len(clip.objects)))
        for t in range(clip.num_frames):
            drawn = [shape_mask_px(o, t, height, width) for o in clip.objects]
            for n, info in enumerate(clip.objects):
                nearer = np.zeros((height, width), bool)
                for m, other in enumerate(clip.objects):
                    if other.depth > info.depth:
                        nearer |= drawn[m]
                np.testing.assert_array_equal(clip.masks[n, t], drawn[n] & ~nearer)
                overlaps += int((drawn[n] & nearer).any())
    assert overlaps >= 5  # the check above saw real occlusions


def test_object_sizes_stay_in_the_configured_range():
    config = WorldConfig(num_frames=4, resolutions_wh=((128, 64),), size_range=(0.2, 0.3))
    checked = 0
    for seed in range(10):
        clip = make_clip(seed, config)
        for info in clip.objects:
            assert 0.2 * 64 <= info.size_px <= 0.3 * 64
            for t in range(clip.num_frames):
                box = mask_to_box_px(shape_mask_px(info, t, 64, 128))
                if box is None or box[0] == 0 or box[1] == 0 or box[2] == 128 or box[3] == 64:
                    continue  # cut by the border
                extent = max(box[2] - box[0], box[3] - box[1])
                assert 0.3 * info.size_px <= extent <= info.size_px + 2, (seed, info.shape, extent, info.size_px)
                checked += 1
    assert checked > 20


def test_entering_objects_start_outside_the_frame_then_show():
    # Circles and rings never rotate, so "beyond the border" is exact for them on frame 0.
    config = WorldConfig(num_frames=16, resolutions_wh=((W, H),), shapes=("circle", "ring"), p_enter=1.0,
                         p_leave=0.0)
    for seed in range(8):
        clip = make_clip(seed, config)
        for n in range(len(clip.objects)):
            areas = clip.masks[n].reshape(clip.num_frames, -1).sum(1)
            assert areas[0] == 0 and areas.max() > 0, (seed, n, areas)


def test_leaving_objects_are_gone_by_the_last_frame():
    config = WorldConfig(num_frames=16, resolutions_wh=((W, H),), p_enter=0.0, p_leave=1.0, p_turn=1.0)
    for seed in range(12):
        clip = make_clip(seed, config)
        for n in range(len(clip.objects)):
            areas = clip.masks[n].reshape(clip.num_frames, -1).sum(1)
            assert areas[0] > 0 and areas[-1] == 0, (seed, n, areas)


def test_visible_frames_counts_pixels():
    clip = make_clip(2, WorldConfig(num_frames=16, resolutions_wh=((W, H),), p_enter=1.0, p_leave=0.0,
                                    shapes=("circle",)))
    areas = clip.masks[0].reshape(16, -1).sum(1)
    assert clip.visible_frames(0) == [t for t in range(16) if areas[t] >= 1]
    assert clip.visible_frames(0, min_pixels=20) == [t for t in range(16) if areas[t] >= 20]
    assert 0 not in clip.visible_frames(0)


def test_still_images_have_one_frame():
    clip = make_clip(3, WorldConfig(num_frames=1, resolutions_wh=((W, H),)))
    assert clip.frames.shape == (1, H, W, 3) and clip.masks.shape[1] == 1


@pytest.mark.parametrize("options", [
    {"shapes": ("hexagon",)}, {"colours": ("magenta",)}, {"resolutions_wh": ((97, 48),)}, {"num_frames": 0},
    {"objects": (0, 2)}, {"objects": (3, 2)}, {"size_range": (0.0, 0.2)}, {"size_range": (0.5, 0.2)},
])
def test_world_config_refuses_impossible_settings(options):
    with pytest.raises(ValueError):
        WorldConfig(**options)


# ---- expressions ---------------------------------------------------------------------------------------------
_SIDE = {"on the left": (0, -1), "on the right": (0, 1), "at the top": (1, -1), "at the bottom": (1, 1)}
_MOVE = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}


def _mean_centroid(clip: Clip, n: int) -> np.ndarray:
    return np.mean([_centroid(clip.masks[n, t]) for t in clip.visible_frames(n, min_pixels=16)], axis=0)


def _named(clip: Clip, text: str) -> list[int]:
    """Objects of ``clip`` (showing >= 16 pixels somewhere) that ``text`` fits, read independently of the module."""
    present = _present(clip)
    objs = clip.objects
    if m := re.fullmatch(r"the object moving (\w+)", text):
        return [n for n in present if motion_direction(clip, n) == m[1]]
    if m := re.fullmatch(r"the (\w+) (\w+) moving (\w+)", text):
        return [n for n in present if objs[n].category == f"{m[1]} {m[2]}" and motion_direction(clip, n) == m[3]]
    if m := re.fullmatch(r"the (\w+) (\w+) (on the left|on the right|at the top|at the bottom)", text):
        same = [n for n in present if objs[n].category == f"{m[1]} {m[2]}"]
        axis, sign = _SIDE[m[3]]
        pos = {n: sign * _mean_centroid(clip, n)[axis] for n in same}  # where its pixels are, not its path
        return [n for n in same if all(pos[n] > pos[k] for k in same if k != n)]
    if m := re.fullmatch(r"the (\w+) object", text):
        return [n for n in present if objs[n].colour == m[1]]
    if m := re.fullmatch(r"the (\w+) (\w+)", text):
        return [n for n in present if objs[n].category == f"{m[1]} {m[2]}"]
    if m := re.fullmatch(r"the (\w+)", text):
        return [n for n in present if objs[n].shape == m[1]]
    raise AssertionError(f"unexpected expression {text!r}")


def test_every_expression_names_exactly_its_object():
    kinds: dict[str, int] = {}
    for seed in range(20):
        clip = _clip(seed, CROWDED)
        for expr in expressions(clip):
            assert _named(clip, expr.text) == [expr.obj], (seed, expr)
            kinds[expr.kind] = kinds.get(expr.kind, 0) + 1
            if expr.kind == "motion":  # the named object's pixels really travel that way
                frames = clip.visible_frames(expr.obj, min_pixels=16)
                axis, sign = _MOVE[expr.text.split()[-1]]
                travel = _centroid(clip.masks[expr.obj, frames[-1]]) - _centroid(clip.masks[expr.obj, frames[0]])
                assert sign * travel[axis] > 0, (seed, expr, travel)
    assert set(kinds) == {"category", "colour", "shape", "position", "motion"}, kinds


def test_objects_with_a_twin_get_no_category_colour_or_shape_expression():
    for seed in range(20):
        clip = _clip(seed, CROWDED)
        present = _present(clip)
        for expr in expressions(clip):
            info = clip.objects[expr.obj]
            twins = [m for m in present if m != expr.obj and clip.objects[m].category == info.category]
            if twins:
                assert expr.kind in ("position", "motion"), (seed, expr)


def test_still_images_get_no_motion_expressions():
    for seed in range(20):
        clip = make_clip(seed, WorldConfig(num_frames=1, resolutions_wh=((128, 64),), objects=(3, 4),
                                           shapes=("circle", "square"), colours=("red", "blue"), p_distractor=1.0))
        assert all(e.kind != "motion" for e in expressions(clip))
        assert all(motion_direction(clip, n) is None for n in range(len(clip.objects)))


def test_describe_uses_the_right_article():
    clip = _clip(0)
    for n, info in enumerate(clip.objects):
        article = "an" if info.colour == "orange" else "a"
        assert describe(clip, n) == f"{article} {info.colour} {info.shape}"


# ---- sampling ------------------------------------------------------------------------------------------------
def test_clicks_land_inside_the_object_on_a_frame_where_it_shows_well():
    rng = np.random.default_rng(0)
    clicks = 0
    for seed in SEEDS:
        clip = _clip(seed)
        areas_of = clip.masks.reshape(len(clip.objects), clip.num_frames, -1).sum(2)
        for n in _present(clip):
            frame = sampling.prompt_frame(clip, n, rng)
            assert areas_of[n, frame] >= 0.6 * areas_of[n].max()
            for _ in range(5):
                point = sampling.click(clip, n, frame, rng)
                assert point.frame_idx == frame and point.positive
                assert 0 <= point.x_px < W and 0 <= point.y_px < H
                assert clip.masks[n, frame][int(point.y_px), int(point.x_px)], (seed, n, point)
                clicks += 1
    assert clicks > 50


def test_clicks_prefer_the_inside_over_the_border():
    mask = np.zeros((H, W), bool)
    mask[10:40, 5:85] = True  # 30 rows: the deepest pixels are 15 px from the border, so clicks stay >= 7.5 px in
    rng = np.random.default_rng(1)
    for _ in range(50):
        x, y = sampling.click_in(mask, rng)
        assert 17 <= y <= 33 and 12 <= x <= 78, (x, y)
        assert x % 1 == 0.5 and y % 1 == 0.5  # a pixel centre
    with pytest.raises(ValueError):
        sampling.click_in(np.zeros((H, W), bool), rng)


def test_boxes_are_the_mask_bounding_box_in_pixels():
    rng = np.random.default_rng(0)
    for seed in SEEDS:
        clip = _clip(seed)
        for n in _present(clip):
            frame = clip.visible_frames(n)[0]
            ys, xs = np.nonzero(clip.masks[n, frame])
            exact = sampling.box(clip, n, frame, rng, jitter=0.0)
            assert isinstance(exact, BoxPrompt) and exact.frame_idx == frame
            assert (exact.x1_px, exact.y1_px, exact.x2_px, exact.y2_px) == \
                (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == mask_to_box_px(clip.masks[n, frame])
            jittered = sampling.box(clip, n, frame, rng, jitter=0.1)
            w, h = xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()
            for got, want, size in ((jittered.x1_px, exact.x1_px, w), (jittered.x2_px, exact.x2_px, w),
                                    (jittered.y1_px, exact.y1_px, h), (jittered.y2_px, exact.y2_px, h)):
                assert abs(got - want) <= 0.1 * size + 1e-9
            assert 0 <= jittered.x1_px < jittered.x2_px <= W and 0 <= jittered.y1_px < jittered.y2_px <= H


def test_a_box_on_a_frame_without_the_object_is_refused():
    clip = make_clip(2, WorldConfig(num_frames=16, resolutions_wh=((W, H),), p_enter=1.0, p_leave=0.0,
                                    shapes=("circle",)))
    with pytest.raises(ValueError):
        sampling.box(clip, 0, 0, np.random.default_rng(0))


def test_a_never_visible_object_has_no_prompt_frame():
    clip = _clip(0)
    hidden = Clip(clip.seed, clip.frames, np.zeros_like(clip.masks), clip.objects, clip.fps, clip.background)
    with pytest.raises(ValueError):
        sampling.prompt_frame(hidden, 0, np.random.default_rng(0))


def test_mask_prompt_is_an_exact_copy():
    clip = make_clip(1, SMALL)
    prompt = sampling.mask(clip, 0, 3)
    assert prompt.frame_idx == 3
    np.testing.assert_array_equal(prompt.mask, clip.masks[0, 3])
    prompt.mask[:] = ~prompt.mask
    assert not np.array_equal(prompt.mask, clip.masks[0, 3])  # the clip's truth is untouched


def test_correction_clicks_land_in_the_larger_error():
    truth = np.zeros((H, W), bool)
    truth[10:30, 10:40] = True
    leaky = truth.copy()
    leaky[10:30, 40:60] = True     # a 400-pixel leak on the right
    leaky[40:42, 0:4] = True       # and a small stray blob
    leaky[10:13, 10:20] = False    # a 30-pixel miss
    rng = np.random.default_rng(0)
    for _ in range(20):
        point = sampling.correction_click(truth, leaky, rng)
        assert isinstance(point, PointPrompt) and not point.positive and point.frame_idx == 0
        assert 40 <= point.x_px < 60 and 10 <= point.y_px < 30, point  # inside the largest leak
    short = truth.copy()
    short[10:30, 25:40] = False    # a 300-pixel miss
    short[35:38, 60:70] = True     # a 30-pixel leak
    for _ in range(20):
        point = sampling.correction_click(truth, short, rng)
        assert point.positive
        assert truth[int(point.y_px), int(point.x_px)] and not short[int(point.y_px), int(point.x_px)], point
    assert sampling.correction_click(truth, truth.copy(), rng) is None


# ---- samples -------------------------------------------------------------------------------------------------
def test_window_holds_the_anchor_and_a_second_frame_at_one_stride():
    rng = np.random.default_rng(0)
    lengths = set()
    for frames_in_clip in (2, 5, 8):
        clip = make_clip(0, WorldConfig(num_frames=frames_in_clip, resolutions_wh=((W, H),)))
        for anchor, _ in np.ndindex(frames_in_clip, 20):
            frames = window(clip, anchor, rng, max_window=6)
            assert anchor in frames and 2 <= len(frames) <= 6, (frames_in_clip, anchor, frames)
            assert all(0 <= f < frames_in_clip for f in frames)
            steps = set(np.diff(frames).tolist())
            assert len(steps) == 1 and steps <= {1, 2, 3}
            lengths.add(len(frames))
    assert lengths == {2, 3, 4, 5, 6}
    assert window(make_clip(0, WorldConfig(num_frames=1, resolutions_wh=((W, H),))), 0, rng, 8) == [0]


def _owner(clip: Clip, masks: np.ndarray, frames: list[int]) -> int:
    """The object whose masks over ``frames`` are exactly ``masks`` [T, H, W]."""
    owners = [n for n in range(len(clip.objects)) if np.array_equal(clip.masks[n][frames], masks)]
    assert len(owners) == 1, owners
    return owners[0]


def _on(prompt, mask: np.ndarray) -> bool:
    if isinstance(prompt, PointPrompt):
        return bool(mask[int(prompt.y_px), int(prompt.x_px)])
    ys, xs = np.nonzero(mask)  # a box overlaps most of the mask's bounding box
    x1, x2 = max(prompt.x1_px, xs.min()), min(prompt.x2_px, xs.max() + 1)
    y1, y2 = max(prompt.y1_px, ys.min()), min(prompt.y2_px, ys.max() + 1)
    return (x2 - x1) * (y2 - y1) >= 0.7 * (xs.max() + 1 - xs.min()) * (ys.max() + 1 - ys.min())


@pytest.mark.parametrize("num_frames", [1, 8])
def test_clip_samples_target_the_prompted_or_named_object(num_frames):
    config = WorldConfig(num_frames=num_frames, resolutions_wh=((W, H),), objects=(2, 4), size_range=(0.2, 0.4))
    mix = SampleMix(mem_prompt=2, mem_mask=1, seg=2, region=1, ref=1, max_window=5, p_corrections=0.5)
    kinds: dict[str, int] = {}
    for seed in range(6):
        clip = make_clip(seed, config)
        samples = clip_samples(clip, "world/clip", np.random.default_rng(seed), mix, task_id=seed)
        texts = {e.text[len("the "):]: e.obj for e in expressions(clip)}
        for sample in samples:
            kinds[sample.kind] = kinds.get(sample.kind, 0) + 1
            frames = sample.frame_idx
            assert sample.media == "world/clip" and sample.task_id == seed and len(frames) <= 5
            if sample.kind == "mem":
                assert len(sample.prompts) == sample.target_masks.shape[0]
                for prompt, masks in zip(sample.prompts, sample.target_masks):
                    obj = _owner(clip, masks, frames)
                    assert _on(prompt, clip.masks[obj, prompt.frame_idx]), (seed, sample.sam_condition, prompt)
                    assert prompt.frame_idx in frames
                if sample.sam_condition == "mask":
                    assert isinstance(sample.prompts[0], BoxPrompt) and sample.corrections == 0
            elif sample.kind == "seg":
                named = [obj for text, obj in texts.items() if f" {text} " in f" {sample.question} "]
                assert _owner(clip, sample.target_masks[0], frames) in named, (seed, sample.question)
            elif sample.kind == "region":
                obj = _owner(clip, sample.region_masks[0], frames)
                assert sample.answer == describe(clip, obj)
            else:
                (prompt,) = sample.prompts
                assert frames == [prompt.frame_idx]
                named = [n for n in range(len(clip.objects)) if describe(clip, n) == sample.answer]
                assert any(_on(prompt, clip.masks[n, prompt.frame_idx]) for n in named), (seed, prompt)
    assert set(kinds) == {"mem", "seg", "region", "ref"}, kinds


def test_a_still_prompts_every_visible_object_at_once():
    config = WorldConfig(num_frames=1, resolutions_wh=((W, H),), objects=(3, 4), size_range=(0.25, 0.4))
    mix = SampleMix(mem_prompt=1, mem_mask=1, seg=0, region=0, ref=0, prompts_per_object=2)
    clip = make_clip(4, config)
    (sample,) = clip_samples(clip, "still.png", np.random.default_rng(0), mix)  # no mask prompt on a still
    big = [n for n in range(len(clip.objects)) if clip.masks[n, 0].sum() >= 16]
    assert len(big) >= 2
    assert sample.kind == "mem" and sample.frame_idx == [0] and len(sample.prompts) == 2 * len(big)
    assert [_owner(clip, m, [0]) for m in sample.target_masks] == [n for n in big for _ in range(2)]


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
    clip = _clip(1)
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
    frame = _clip(1).frames[0]

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
    clips = {"a": _clip(0), "b": _clip(1, CROWDED)}
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
def _spec(name: str):
    return parse_label_config((LABEL_CONFIGS / f"{name}.xml").read_text())


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
    spec = _spec("video_tracking")
    clip = make_clip(7, WorldConfig(num_frames=12, resolutions_wh=((W, H),), p_enter=0.5, p_leave=0.5, fps=fps))
    result = annotation_result(clip, spec, np.random.default_rng(0))
    timeline = Timeline(clip.num_frames, clip.fps, spec.framerate({}))
    tracks = [r for r in result if r["type"] == "videorectangle"]
    assert sorted(_obj_of(r["id"], clip) for r in tracks) == _present(clip)
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
    spec = _spec("video_masks")
    clip = make_clip(7, WorldConfig(num_frames=10, resolutions_wh=((W, H),), p_enter=0.5, p_leave=0.5))
    result = annotation_result(clip, spec, np.random.default_rng(0))
    brushes = [r for r in result if r["type"] == "brushlabels"]
    assert all(r["id"].endswith(f"-f{r['item_index'] + 1}") for r in brushes)  # LS frame = item_index + 1
    task = _labeled(clip, spec, result, "frames/")
    objects, _ = task_objects(task, spec)  # the parser the fine-tune job and the project export use
    present = _present(clip)
    assert sorted(_obj_of(key, clip) for key in objects) == present
    for key, parsed in objects.items():
        obj = _obj_of(key, clip)
        assert sorted(parsed.masks) == clip.visible_frames(obj)  # exact, 0-based
        for t, mask in parsed.masks.items():
            assert _iou(mask, clip.masks[obj, t]) >= 0.95  # LS RLE is lossless: in practice exactly 1.0
            np.testing.assert_array_equal(mask, clip.masks[obj, t])
        assert parsed.description == describe(clip, obj) and parsed.label == spec.default_label
    samples = _samples(task, spec)
    regions = [s for s in samples if s.kind == "region"]
    assert sorted(s.answer for s in regions) == sorted(describe(clip, n) for n in present)
    for sample in regions:
        _owner(clip, sample.region_masks[0], sample.frame_idx)


@pytest.mark.parametrize("config_name", ["image_segmentation", "referring_expressions"])
@pytest.mark.parametrize("seed", range(10))
def test_image_annotations_name_their_object_on_the_still(config_name, seed):
    """Image tasks show ``images/<name>.png``, frame 0: masks and texts must hold on that frame alone."""
    spec = _spec(config_name)
    clip = _clip(seed, CROWDED)
    still = _first_frame(clip)
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
                assert _named(still, text) == [obj], (seed, text)
    if config_name == "image_segmentation":
        if not objects:
            assert result == []
            return
        ((key, parsed),) = objects.items()
        obj = _obj_of(key, clip)
        assert (obj, query) in on_still and _named(still, query) == [obj], (seed, query)
        (seg,) = [s for s in _samples(task, spec) if s.kind == "seg"]
        assert query[len("the "):] in seg.question
        np.testing.assert_array_equal(seg.target_masks[0, 0], clip.masks[obj, 0])
    else:
        assert sorted(_obj_of(k, clip) for k in objects) == \
            [n for n in _present(still) if clip.masks[n, 0].any()]


def test_task_data_puts_media_under_the_config_key():
    assert task_data(_spec("video_tracking"), "/m/clip.mp4", 25.0) == {"video": "/m/clip.mp4"}
    assert task_data(_spec("video_masks"), ["/a.png", "/b.png"]) == {"frames": ["/a.png", "/b.png"]}
    assert task_data(_spec("image_segmentation"), "/m/x.png") == {"image": "/m/x.png"}
    fps_spec = parse_label_config('<View><Video name="v" value="$video" framerate="$fps"/>'
                                  '<VideoRectangle name="box" toName="v"/></View>')
    assert task_data(fps_spec, "/m/clip.mp4", 12.5) == {"video": "/m/clip.mp4", "fps": 12.5}


# ---- export --------------------------------------------------------------------------------------------------
TINY = WorldConfig(num_frames=3, resolutions_wh=((32, 24),))


def test_write_world_writes_the_documented_layout(tmp_path):
    out = tmp_path / "world"
    written = write_world(out, range(2), TINY, set(FORMATS))
    names = ["clip0", "clip1"]
    for name, seed in zip(names, range(2)):
        clip = make_clip(seed, TINY)
        assert (out / "videos" / f"{name}.mp4").is_file()
        assert [p.name for p in sorted((out / "frames" / name).iterdir())] == ["00001.png", "00002.png", "00003.png"]
        np.testing.assert_array_equal(np.array(Image.open(out / "images" / f"{name}.png")), clip.frames[0])
        assert len(list((out / "davis" / "JPEGImages" / "480p" / name).glob("*.jpg"))) == 3
        assert len(list((out / "davis" / "Annotations" / "480p" / name).glob("*.png"))) == 3
        truth = np.load(out / "truth" / f"{name}.npz")
        np.testing.assert_array_equal(truth["masks"], clip.masks)
        assert list(truth["shapes"]) == [o.shape for o in clip.objects] and int(truth["seed"]) == seed
    for config in CONFIGS:
        tasks = json.loads((out / "ls" / f"{config}.json").read_text())
        spec = _spec(config)
        assert len(tasks) == 2
        for task in tasks:
            media = task["data"][spec.obj.value_key]
            for path in media if isinstance(media, list) else [media]:
                assert Path(path).is_absolute() and Path(path).is_file() and Path(path).is_relative_to(out.resolve())
    assert set(written) >= {out / "videos" / "clip0.mp4", out / "davis", out / "ls" / "video_masks.json"}
    with pytest.raises(ValueError):
        write_world(out, range(1), TINY, {"mp4", "gif"})


def test_write_world_url_prefix_and_stills(tmp_path):
    out = tmp_path / "w"
    write_world(out, range(3, 5), WorldConfig(num_frames=1, resolutions_wh=((32, 24),)), {"images", "frames", "ls"},
                url_prefix="http://host/data/")
    assert not (out / "videos").exists()  # a still makes no video
    assert json.loads((out / "ls" / "video_tracking.json").read_text()) == []
    tasks = json.loads((out / "ls" / "image_segmentation.json").read_text())
    assert [t["data"]["image"] for t in tasks] == [f"http://host/data/images/clip{seed}.png" for seed in (3, 4)]
    frames = json.loads((out / "ls" / "video_masks.json").read_text())
    assert frames[0]["data"]["frames"] == ["http://host/data/frames/clip3/00001.png"]


def test_write_mp4_without_frames_says_so(tmp_path):
    from finetune.world import writers

    with pytest.raises(ValueError, match="no frames to write"):
        writers.write_mp4(iter(()), tmp_path / "empty.mp4", 10)


@pytest.mark.parametrize("motion", ["entering", "leaving"])
def test_evaluate_motion_sets_give_clips_of_that_motion(motion):
    """``python -m finetune evaluate --motion entering`` scores only clips whose objects enter the frame (leaving:
    leave it): the first (last) frames miss every object that the middle of the clip shows."""
    import argparse

    from finetune.world.cli import world_config

    args = argparse.Namespace(frames=24, shapes=None, colours=None, resolution=None, objects="1,1", motion=motion,
                              touching=False, striped=False)
    config = world_config(args)
    clips = [make_clip(seed, config) for seed in range(930000, 930006)]
    edge = 0 if motion == "entering" else -1
    hidden = [clip.masks[0, edge].sum() < 0.5 * clip.masks[0].reshape(24, -1).sum(1).max() for clip in clips]
    assert sum(hidden) >= 5, hidden


def test_evaluate_touching_set_puts_same_colour_twins_against_each_other():
    """``python -m finetune evaluate --touching``: every new object repeats an earlier one's colour or shape, and
    those of the same colour touch it: the clicks that leaked onto a twin in the behaviour tests, as a set of their
    own."""
    import argparse

    from finetune.world.cli import world_config

    args = argparse.Namespace(frames=1, shapes=None, colours=None, resolution=None, objects="2,2", motion=None,
                              touching=True, striped=False)
    config = world_config(args)
    assert (config.p_distractor, config.p_touch) == (1.0, 1.0)
    touching = 0
    for seed in range(930000, 930020):
        clip = make_clip(seed, config)
        if clip.objects[0].colour == clip.objects[1].colour:
            touching += int(_touch(clip.masks[0, 0], clip.masks[1, 0]))
    assert touching >= 6, touching
    args.touching = False
    assert world_config(args).p_touch == 0.0


def test_a_toy_phase_draws_samples_from_its_stills_and_its_clips(tmp_path):
    """The description phases of ``python -m finetune toy`` train on stills and videos together."""
    from finetune.world.toy import ToyPhase, render_phase

    phase = ToyPhase("toy_describe", clips=2, num_frames=4, first_seed=5, still_clips=3, still_first_seed=50,
                     mix=SampleMix(mem_prompt=0.0, mem_mask=0.0, seg=0.0, region=2.0, ref=0.0, max_window=3))
    samples = render_phase(phase, tmp_path)
    media = {Path(s.media).relative_to(tmp_path).as_posix() for s in samples}
    assert media == {"stills/50.png", "stills/51.png", "stills/52.png", "videos/5", "videos/6"}
    assert {s.kind for s in samples} == {"region"}
    assert (tmp_path / "videos" / "5" / "00004.png").is_file()


def test_a_pool_of_render_processes_writes_and_samples_what_one_process_does(tmp_path):
    """``render_clips`` forks a process per core to draw and write the toy's training clips; the clips come back in
    seed order, so the phase draws the same samples from the same bytes as a single process would."""
    from finetune.world.render_cache import MIN_CLIPS_FOR_POOL, render_clips

    config = WorldConfig(num_frames=3)
    seeds = range(700, 700 + MIN_CLIPS_FOR_POOL + 3)
    alone = list(render_clips(seeds, config, tmp_path / "one", workers=1))
    pooled = list(render_clips(seeds, config, tmp_path / "two", workers=2))
    assert [c.seed for c, _ in pooled] == list(seeds)
    for (clip, media), (again, pooled_media) in zip(alone, pooled):
        assert np.array_equal(clip.masks, again.masks) and np.array_equal(clip.frames, again.frames)
        assert pooled_media == tmp_path / "two" / media.relative_to(tmp_path / "one")
        written = [f.read_bytes() for f in sorted(media.iterdir())]
        assert written == [f.read_bytes() for f in sorted(pooled_media.iterdir())]
    mix = SampleMix(region=1.0, ref=0.5, max_window=3)
    draw = lambda rendered: [(s.kind, s.question, s.answer, s.frame_idx) for clip, media in rendered  # noqa: E731
                             for s in clip_samples(clip, media, np.random.default_rng(0), mix)]
    assert draw(alone) == draw(pooled)
    with pytest.raises(ValueError, match="render workers must be at least 1, not 0"):
        list(render_clips(seeds, config, tmp_path / "none", workers=0))


def test_the_toy_mask_phases_draw_only_what_trains_sam2(tmp_path):
    """Phases 5-6 freeze the LLM: a description sample there would cost a forward pass and train nothing."""
    from finetune.world.toy import render_phase, select_phases

    for phase in select_phases("toy_masks,toy_tracks"):
        small = dataclasses.replace(phase, clips=3, num_frames=4, still_clips=min(phase.still_clips, 3))
        kinds = {s.kind for s in render_phase(small, tmp_path / phase.recipe)}
        assert kinds and kinds <= {"mem", "seg"}, (phase.recipe, kinds)


def test_toy_phases_are_chosen_by_name_in_training_order():
    from finetune.world.toy import PHASES, select_phases

    assert select_phases(None) == PHASES
    assert [p.recipe for p in select_phases("toy_describe_text, toy_describe")] == ["toy_describe",
                                                                                   "toy_describe_text"]
    with pytest.raises(ValueError, match=r"unknown toy phases \['toy_colours'\]; the phases are \['toy_stills'"):
        select_phases("toy_describe,toy_colours")


@pytest.mark.parametrize("args, message", [
    (["--phases", "toy_describe,toy_colours"], "unknown toy phases ['toy_colours']"),
    (["--init", "no-such-checkpoint", "--phases", "toy_describe"], "is not a checkpoint folder (no config.json)"),
    (["--phases", "toy_describe"], "give --init with the checkpoint of the phases before"),
    (["--minutes", "5"], "--minutes 5 leaves no time to train"),
    (["--minutes", "nan"], "--minutes nan is not a number of minutes"),
    (["--minutes", "inf"], "--minutes inf is not a number of minutes"),
    (["--minutes", "45", "--steps-from", "unipixel_model/toy"], "give --minutes or --steps-from, not both"),
    (["--steps-from", "no-such-checkpoint"], "no-such-checkpoint/toy_training.json does not exist"),
])
def test_toy_command_refuses_bad_phases_and_a_bad_or_absent_init_before_training(tmp_path, capsys, args, message):
    from finetune.__main__ import main

    assert main(["toy", "--out", str(tmp_path / "toy"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "toy").exists()


def test_toy_command_refuses_an_init_whose_training_log_is_unreadable(tmp_path, capsys):
    """--init carries the checkpoint's toy_training.json over; a broken one must stop the run before training, with
    the file named, not as a JSON traceback after the clips are rendered."""
    from finetune.__main__ import main

    init = tmp_path / "init"
    init.mkdir()
    (init / "config.json").write_text("{}")
    (init / "toy_training.json").write_text('{"phases": [')
    assert main(["toy", "--out", str(tmp_path / "toy"), "--init", str(init), "--phases", "toy_masks"]) == 2
    err = capsys.readouterr().err
    assert f"{init / 'toy_training.json'} is not readable JSON" in err and "move it away" in err
    assert not (tmp_path / "toy").exists()


def test_toy_minutes_scale_every_phase_by_one_factor_to_fit_the_budget():
    """--minutes 45 must shrink every trainer phase alike (it gave each phase an equal share of the time, so the short
    description phases trained longer than in a full run), and the whole run, the grounding head's phase included,
    must fit the budget: --minutes 45 took an hour while phases 7 and 8 were left out of the plan."""
    from finetune.world.toy import (GROUNDING_SECONDS, PHASES, planned_seconds, plan_steps, scaled_steps,
                                    trainer_recipes)

    recipes = trainer_recipes(PHASES)  # every phase but the grounding head's (7), whose time is fixed
    assert [r.name for r in recipes] == [p.recipe for p in PHASES if p.recipe != "toy_grounding"]
    full = planned_seconds(recipes)
    # a full run: 70 minutes for phases 1-6 and 11 for phase 8 before fused AdamW and the render pool (README), 66
    # planned after them, 55 with jemalloc
    assert 45 * 60 <= full <= 70 * 60, full
    steps = plan_steps(PHASES, minutes=45)
    factors = [steps[r.name] / r.max_steps for r in recipes]
    assert max(factors) - min(factors) < 0.01 and max(factors) < 1, factors
    scaled = [dataclasses.replace(r, max_steps=steps[r.name]) for r in recipes]
    assert 40 * 60 <= planned_seconds(scaled) + GROUNDING_SECONDS <= 45 * 60, planned_seconds(scaled)
    assert scaled_steps(recipes, minutes=1000) == {r.name: r.max_steps for r in recipes}  # never more than planned
    with pytest.raises(ValueError, match="--minutes 5 leaves no time to train"):
        scaled_steps(recipes, minutes=5)


def test_the_shipped_toy_is_what_steps_from_reproduces():
    """README: ``python -m finetune toy --steps-from unipixel_model/toy`` reproduces the shipped checkpoint. Its
    training log must record every phase of the command, in order, once, so that from random weights that command runs
    them all with the shipped steps; the grounding head's steps are its phase's own."""
    from finetune.world.toy import PHASES, plan_steps, training_log
    from unipixel_model.loading import TOY_DIR

    shipped = [p["recipe"] for p in training_log(TOY_DIR)["phases"]]
    assert shipped == [p.recipe for p in PHASES], shipped
    steps = plan_steps(PHASES, steps_from=TOY_DIR)
    assert steps["toy_grounding"] == PHASES[6].grounding_steps and steps["toy_clicks"] == 5000, steps
    assert steps["toy_stills"] == 3566, steps  # 0.59 of 6,000: the 42-minute run of phases 1-6 (README)


def test_toy_steps_from_refuses_minutes_and_a_log_without_the_phases(tmp_path):
    from finetune.world.toy import PHASES, plan_steps, select_phases

    with pytest.raises(ValueError, match="give --minutes or --steps-from, not both"):
        plan_steps(PHASES, minutes=45, steps_from=tmp_path)
    (tmp_path / "toy_training.json").write_text('{"phases": [{"recipe": "toy_stills", "steps": 10}]}')
    assert plan_steps(select_phases("toy_stills"), steps_from=tmp_path) == {"toy_stills": 10}
    with pytest.raises(ValueError, match=r"records no steps for \['toy_videos'\]"):
        plan_steps(select_phases("toy_stills,toy_videos"), steps_from=tmp_path)
    # an entry without whole-number steps (a hand-edited log) counts as no steps, named, never a KeyError
    for entry in ('{"recipe": "toy_stills"}', '{"recipe": "toy_stills", "steps": "ten"}', '"toy_stills"'):
        (tmp_path / "toy_training.json").write_text(f'{{"phases": [{entry}]}}')
        with pytest.raises(ValueError, match=r"records no steps for \['toy_stills'\]"):
            plan_steps(select_phases("toy_stills"), steps_from=tmp_path)


def test_the_held_out_sets_are_drawn_as_before():
    """The README's evaluation sets and the shipped toy's training clips come from these seeds: a new world option
    must not move a pixel of the default world (sha256 of frames and masks, recorded 2026-12-06)."""
    import hashlib

    from finetune.world.evaluate import EVAL_SEED_START

    for seed, config, digest in ((EVAL_SEED_START, WorldConfig(num_frames=12), "1ad6f90ad0c53837"),
                                 (7, WorldConfig(num_frames=1), "2a5aa38c895bb6d1")):
        clip = make_clip(seed, config)
        assert hashlib.sha256(clip.frames.tobytes() + clip.masks.tobytes()).hexdigest()[:16] == digest, seed


def test_touching_twins_share_a_colour_and_a_border_on_every_frame():
    """``p_touch``: a same-colour distractor is placed against the object it repeats and moves with it, so the two
    read as one blob, as two red squares side by side do: what a negative click has to split."""
    config = WorldConfig(num_frames=6, resolutions_wh=((160, 120),), objects=(2, 2), p_distractor=1.0, p_touch=1.0,
                         p_enter=0.0, p_leave=0.0, size_range=(0.2, 0.3))
    touching = 0
    for seed in range(40):
        clip = make_clip(seed, config)
        first, second = clip.objects
        if first.colour != second.colour:
            continue  # the distractor repeated the shape
        touching += 1
        for t in range(clip.num_frames):
            if clip.masks[0, t].any() and clip.masks[1, t].any():
                assert _touch(clip.masks[0, t], clip.masks[1, t]), (seed, t)
                whole = [shape_mask_px(o, t, *clip.size_hw).sum() for o in clip.objects]
                assert clip.masks[:, t].sum((1, 2)).min() >= 0.8 * min(whole), (seed, t)  # hardly hide each other
    assert touching >= 10, touching
    with pytest.raises(ValueError, match="p_touch"):
        WorldConfig(p_touch=1.5)


def test_striped_objects_show_their_colour_and_another_and_their_masks_cover_both():
    """``p_striped`` (``--striped``): every object is drawn in its colour with stripes of another world colour, and
    its mask is the whole object, both colours: the active-learning check's new kind of object."""
    import argparse

    from finetune.world.cli import world_config

    args = argparse.Namespace(frames=4, shapes=None, colours=None, resolution="320x240", objects="1,3", motion=None,
                              touching=False, striped=True)
    config = world_config(args)
    assert config.p_striped == 1.0
    for seed in range(930000, 930010):
        clip = make_clip(seed, config)
        for n, info in enumerate(clip.objects):
            assert info.stripe_rgb in COLOURS.values() and info.stripe_rgb != COLOURS[info.colour], info
            pixels = {tuple(p) for p in clip.frames[clip.masks[n]].reshape(-1, 3).tolist()}
            assert pixels <= {info.rgb, info.stripe_rgb}, (seed, n, pixels)
            if clip.masks[n].sum() >= 400:  # big enough to show a stripe of each colour
                assert pixels == {info.rgb, info.stripe_rgb}, (seed, n)
    args.striped = False
    assert world_config(args).p_striped == 0.0
    assert all(o.stripe_rgb is None for o in make_clip(930000, world_config(args)).objects)
    with pytest.raises(ValueError, match="p_striped"):
        WorldConfig(p_striped=-0.1)


def test_toy_minutes_with_the_grounding_phase_alone_plans_no_recipe():
    """``--phases toy_grounding --minutes N``: phase 7 is not a recipe and is not scaled, so there is nothing to
    plan (it divided by zero)."""
    from finetune.world.toy import scaled_steps, select_phases, trainer_recipes

    assert trainer_recipes(select_phases("toy_grounding")) == []
    assert scaled_steps(trainer_recipes(select_phases("toy_grounding")), minutes=10) == {}
