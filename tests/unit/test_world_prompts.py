"""Prompts and training samples drawn from the synthetic world's ground truth (finetune/world/sampling.py,
samples.py)."""

from __future__ import annotations


import numpy as np
import pytest

from backend.converters.geometry import mask_to_box_px
from finetune.world import sampling
from finetune.world.expressions import describe, expressions
from finetune.world.samples import SampleMix, clip_samples, window
from finetune.world.scene import Clip, WorldConfig, make_clip
from unipixel_model.types import BoxPrompt, PointPrompt
from tests.unit.world_cases import H, SEEDS, SMALL, W, clip_of, owner, present_objects


# ---- sampling ------------------------------------------------------------------------------------------------
def test_clicks_land_inside_the_object_on_a_frame_where_it_shows_well():
    rng = np.random.default_rng(0)
    clicks = 0
    for seed in SEEDS:
        clip = clip_of(seed)
        areas_of = clip.masks.reshape(len(clip.objects), clip.num_frames, -1).sum(2)
        for n in present_objects(clip):
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
        clip = clip_of(seed)
        for n in present_objects(clip):
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
    clip = clip_of(0)
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
                    obj = owner(clip, masks, frames)
                    assert _on(prompt, clip.masks[obj, prompt.frame_idx]), (seed, sample.sam_condition, prompt)
                    assert prompt.frame_idx in frames
                if sample.sam_condition == "mask":
                    assert isinstance(sample.prompts[0], BoxPrompt) and sample.corrections == 0
            elif sample.kind == "seg":
                named = [obj for text, obj in texts.items() if f" {text} " in f" {sample.question} "]
                assert owner(clip, sample.target_masks[0], frames) in named, (seed, sample.question)
            elif sample.kind == "region":
                obj = owner(clip, sample.region_masks[0], frames)
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
    assert [owner(clip, m, [0]) for m in sample.target_masks] == [n for n in big for _ in range(2)]
