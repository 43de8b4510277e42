"""The synthetic world's scenes (with touching twins and striped objects) and referring expressions
(finetune/world/scene.py, geometry.py, motion.py, expressions.py)."""

from __future__ import annotations


import numpy as np
import pytest

from backend.converters.geometry import mask_to_box_px
from finetune.world.expressions import describe, expressions, motion_direction
from finetune.world.scene import COLOURS, WorldConfig, make_clip, shape_mask_px
from tests.unit.world_cases import (
    CROWDED, H, MOVES, SEEDS, SMALL, W, centroid, clip_of, masks_touch, named, present_objects,
)


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
    clip = clip_of(seed)
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
        clip = clip_of(seed, CROWDED)
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
                assert masks_touch(clip.masks[0, t], clip.masks[1, t]), (seed, t)
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


# ---- expressions ---------------------------------------------------------------------------------------------
def test_every_expression_names_exactly_its_object():
    kinds: dict[str, int] = {}
    for seed in range(20):
        clip = clip_of(seed, CROWDED)
        for expr in expressions(clip):
            assert named(clip, expr.text) == [expr.obj], (seed, expr)
            kinds[expr.kind] = kinds.get(expr.kind, 0) + 1
            if expr.kind == "motion":  # the named object's pixels really travel that way
                frames = clip.visible_frames(expr.obj, min_pixels=16)
                axis, sign = MOVES[expr.text.split()[-1]]
                travel = centroid(clip.masks[expr.obj, frames[-1]]) - centroid(clip.masks[expr.obj, frames[0]])
                assert sign * travel[axis] > 0, (seed, expr, travel)
    assert set(kinds) == {"category", "colour", "shape", "position", "motion"}, kinds


def test_objects_with_a_twin_get_no_category_colour_or_shape_expression():
    for seed in range(20):
        clip = clip_of(seed, CROWDED)
        present = present_objects(clip)
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
    clip = clip_of(0)
    for n, info in enumerate(clip.objects):
        article = "an" if info.colour == "orange" else "a"
        assert describe(clip, n) == f"{article} {info.colour} {info.shape}"
