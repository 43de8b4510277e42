"""Exporting the synthetic world, its evaluation sets, and the toy model's training plan (finetune/world/export.py,
evaluate.py, toy.py, render_cache.py, cli.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finetune.world.export import FORMATS, write_world
from finetune.world.ls_annotations import CONFIGS
from finetune.world.samples import SampleMix, clip_samples
from finetune.world.scene import WorldConfig, make_clip
from tests.unit.world_cases import label_config_spec, masks_touch


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
        spec = label_config_spec(config)
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
            touching += int(masks_touch(clip.masks[0, 0], clip.masks[1, 0]))
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
    from finetune.world.toy import PHASES
    from finetune.world.toy_plan import GROUNDING_SECONDS, plan_steps, planned_seconds, scaled_steps, trainer_recipes

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
    from finetune.world.toy import PHASES
    from finetune.world.toy_plan import plan_steps, training_log
    from unipixel_model.loading import TOY_DIR

    shipped = [p["recipe"] for p in training_log(TOY_DIR)["phases"]]
    assert shipped == [p.recipe for p in PHASES], shipped
    steps = plan_steps(PHASES, steps_from=TOY_DIR)
    assert steps["toy_grounding"] == PHASES[6].grounding_steps and steps["toy_clicks"] == 5000, steps
    assert steps["toy_stills"] == 3566, steps  # 0.59 of 6,000: the 42-minute run of phases 1-6 (README)


def test_toy_steps_from_refuses_minutes_and_a_log_without_the_phases(tmp_path):
    from finetune.world.toy import PHASES, select_phases
    from finetune.world.toy_plan import plan_steps

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


def test_toy_minutes_with_the_grounding_phase_alone_plans_no_recipe():
    """``--phases toy_grounding --minutes N``: phase 7 is not a recipe and is not scaled, so there is nothing to
    plan (it divided by zero)."""
    from finetune.world.toy import select_phases
    from finetune.world.toy_plan import scaled_steps, trainer_recipes

    assert trainer_recipes(select_phases("toy_grounding")) == []
    assert scaled_steps(trainer_recipes(select_phases("toy_grounding")), minutes=10) == {}
