"""Behaviour of the shipped ``toy`` model on held-out synthetic clips, where the right answer is known.

These tests fail on the bugs random weights hide: a transposed x/y, a frame off by one, propagation in the wrong
direction, a mask upsampled to the wrong place, a description of the wrong object. The clips come from seeds the toy
model never trained on (``EVAL_SEED_START`` and up); the bars are the ones of README "The toy model". The toy
checkpoint is shipped in ``unipixel_model/toy/``: a missing one fails (never skips), with the command that builds it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetune.evaluate import describe_object
from finetune.world import sampling, writers
from finetune.world.evaluate import EVAL_SEED_START, evaluate_world
from finetune.world.expressions import expressions
from finetune.world.scene import WorldConfig, make_clip
from unipixel_model import templates
from unipixel_model.prompts import BoxPrompt, PointPrompt
from unipixel_model.session import InferenceSession

# Held-out clips for these tests: 12 frames, every shape, colour, background and resolution of the world.
SEEDS = range(EVAL_SEED_START + 500, EVAL_SEED_START + 510)
CLIPS = WorldConfig(num_frames=12)


def short_of_the_bar(measured: str):
    """The shipped toy model does not reach this test's bar yet. The bar is the issue's and stays; the test runs on
    every CI run and turns red (strict) the day a retrained toy model passes it, so the marker must then go."""
    return pytest.mark.xfail(strict=True, reason=f"toy model short of the bar, measured {measured} "
                                                 "(README: The toy model)")


@pytest.fixture(scope="module")
def toy():
    from unipixel_model.loading import from_pretrained, resolve_checkpoint
    from unipixel_model.tokenization import load_tokenizer

    try:
        path = resolve_checkpoint("toy")
    except FileNotFoundError as err:
        pytest.fail(str(err), pytrace=False)
    model = from_pretrained(path).eval()
    with torch.no_grad(), model.sam2_gating(True):
        yield model, load_tokenizer(path)


@pytest.fixture(scope="module")
def world_table(toy):
    """The README's evaluation table: 12 held-out 12-frame clips from ``EVAL_SEED_START`` (``python -m finetune
    evaluate --model toy --clips 12 --frames 12``)."""
    return evaluate_world(*toy, range(EVAL_SEED_START, EVAL_SEED_START + 12), CLIPS, describe_objects=False)


@pytest.mark.parametrize("kind", ["click", "box", "mask"])
def test_world_table_tracks_every_prompt_kind_over_all_frames(world_table, kind):
    assert world_table.mean(kind, "all") >= 0.6, world_table.table()


@pytest.mark.parametrize("kind", ["click", "box", "mask"])
def test_world_table_segments_the_prompt_frame(world_table, kind):
    assert world_table.mean(kind, "prompt") >= 0.75, world_table.table()


def test_world_table_follows_text_queries(world_table):
    assert world_table.mean("text", "all") >= 0.6, world_table.table()


def test_served_at_192_px_the_masks_come_closer_to_the_truth(world_table, tmp_path):
    """``UNIPIXEL_SAM2_IMAGE_SIZE=192``: the server loads the toy with SAM 2 reading 192 px frames instead of the 128
    it trained at, and mask prompts on the README table's clips come back closer to the truth (J&F on the prompt
    frame 0.76 at 128, 0.91 at 192: README, The toy model)."""
    from backend.engine import Engine
    from backend.settings import Settings

    engine = Engine(Settings(model="toy", device="cpu", sam2_image_size=192, model_dir=tmp_path / "models",
                             data_dir=tmp_path / "data", media_cache_dir=tmp_path / "media"))
    with engine.gpu:
        model, tokenizer = engine.model()
    assert model.config.sam2_image_size == 192
    with torch.no_grad(), model.sam2_gating(True):
        sharp = evaluate_world(model, tokenizer, range(EVAL_SEED_START, EVAL_SEED_START + 12), CLIPS, kinds=("mask",),
                               describe_objects=False)
    assert sharp.mean("mask", "prompt") >= world_table.mean("mask", "prompt") + 0.1, (sharp.table(), world_table.table())


def _means(report, kind: str) -> dict[str, float]:
    return {group: report.mean(kind, group, "j") for group in ("prompt", "before", "after")}


@short_of_the_bar("IoU 0.56 on the prompt frame, 0.55 before, 0.56 after")
def test_a_click_segments_the_object_and_tracks_it_both_ways(toy):
    report = evaluate_world(*toy, SEEDS, CLIPS, kinds=("click",), describe_objects=False)
    iou = _means(report, "click")
    print("click IoU per clip (prompt frame):", [round(float(c.j[c.prompt_frame]), 2) for c in report.calls])
    assert iou["prompt"] >= 0.7, iou
    assert iou["before"] >= 0.5 and iou["after"] >= 0.5, iou


def test_a_box_segments_the_object_and_tracks_it_both_ways(toy):
    report = evaluate_world(*toy, SEEDS, CLIPS, kinds=("box",), describe_objects=False)
    iou = _means(report, "box")
    assert iou["prompt"] >= 0.7, iou
    assert iou["before"] >= 0.5 and iou["after"] >= 0.5, iou


def test_a_text_query_picks_the_named_object_among_distractors(toy):
    model, tokenizer = toy
    picked, asked = 0, 0
    for seed in SEEDS:
        clip = make_clip(seed, CLIPS)
        exprs = [e for e in expressions(clip) if e.kind == "category"]
        if len(clip.objects) < 2 or not exprs:
            continue  # no distractor, or no colour+shape expression to ask
        expr = exprs[0]
        session = InferenceSession.open(model, tokenizer, clip.frames)
        result = session.segment(templates.segmentation_question(expr.text, False))
        track = result.tracks[0] if result.tracks else None
        ious = [_track_iou(track, clip.masks[o]) for o in range(len(clip.objects))]
        asked += 1
        picked += int(np.argmax(ious) == expr.obj and ious[expr.obj] >= 0.5)
    assert asked >= 5, f"only {asked} clips with distractors among {list(SEEDS)}"
    assert picked / asked >= 0.7, f"the named object was found in {picked} of {asked} clips"


def test_a_box_over_two_touching_twins_leaks_onto_the_second(toy):
    """The precondition of the negative-click test below: the leak it corrects is real."""
    model, tokenizer = toy
    frames, left, right = _touching_twins()
    track = InferenceSession.open(model, tokenizer, frames).refer({1: _BOTH}, ask=False).tracks[0]
    assert _share(track.mask(2), right) >= 0.3 and _share(track.mask(2), left) >= 0.7


@pytest.mark.parametrize("name", ["stills", "touching twins", "videos"])
def test_correction_clicks_raise_the_iou_against_the_truth(toy, name):
    """``python -m benchmarks.toy_corrections`` on its first 10 clips of a set: a click, then three corrections where
    an annotator puts them (negative in the largest leak, positive in the largest miss), each through ``refine``. The
    mean IoU on the clicked frame rises by at least 0.03 (the toy before its clicks phase: +0.01 on stills and
    videos over 30 clips; the shipped one +0.06 to +0.08)."""
    from benchmarks.toy_corrections import SETS, corrections_on

    config, offset = next((c, o) for n, c, o in SETS if n == name)
    curves, changes = corrections_on(*toy, config, range(EVAL_SEED_START + offset, EVAL_SEED_START + offset + 10), 3)
    assert len(changes) >= 20, f"only {len(changes)} corrections were needed: nothing to test"
    before, after = curves[:, 0].mean(), curves[:, -1].mean()
    assert after >= before + 0.03, f"IoU {before:.3f} -> {after:.3f} after three corrections ({name})"


@short_of_the_bar("the right twin stays in the mask after the negative click (share 1.00 before, 0.99 after)")
def test_a_negative_click_removes_a_leak_onto_a_touching_twin(toy):
    """Two red squares side by side, a box over both: the mask leaks onto the right one; a negative click on the
    right one removes the leak and keeps the left one."""
    model, tokenizer = toy
    frames, left, right = _touching_twins()
    session = InferenceSession.open(model, tokenizer, frames)
    leaked = _share(session.refer({1: _BOTH}, ask=False).tracks[0].mask(2), right)
    corrected = session.refine(1, [PointPrompt(x_px=80.0, y_px=64.0, positive=False, frame_idx=2)])
    assert _share(corrected.mask(2), right) <= 0.1 * leaked
    assert _iou(corrected.mask(2), left) >= 0.7


def test_a_description_names_the_colour_or_the_shape(toy):
    model, tokenizer = toy
    named, answers = 0, []
    for seed in SEEDS:
        clip = make_clip(seed, CLIPS)
        obj = int(np.argmax([m.sum() for m in clip.masks[:, 0]]))  # the largest object on frame 0
        frame = int(np.argmax(clip.masks[obj].reshape(clip.num_frames, -1).sum(1)))
        answer = describe_object(InferenceSession.open(model, tokenizer, clip.frames), clip.masks[obj, frame], frame)
        words = set(answer.lower().replace(".", " ").split())
        named += int(clip.objects[obj].colour in words or clip.objects[obj].shape in words)
        answers.append((clip.objects[obj].colour, clip.objects[obj].shape, answer))
    print(f"{named} of {len(answers)} descriptions name the colour or shape:", answers)
    assert named >= 0.7 * len(answers), answers


_BOTH = BoxPrompt(x1_px=30.0, y1_px=46.0, x2_px=98.0, y2_px=82.0, frame_idx=2)  # a box over both twins


def _touching_twins() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [6, 128, 128, 3] grey frames with two red 32 px squares touching at x = 64, and their masks."""
    frames = np.full((6, 128, 128, 3), 128, np.uint8)
    left, right = np.zeros((128, 128), bool), np.zeros((128, 128), bool)
    left[48:80, 32:64], right[48:80, 64:96] = True, True
    frames[:, left | right] = (220, 30, 30)
    return frames, left, right


def _share(mask: np.ndarray, part: np.ndarray) -> float:
    return float((mask & part).sum() / part.sum())


def _iou(mask: np.ndarray, truth: np.ndarray) -> float:
    union = (mask | truth).sum()
    return float((mask & truth).sum() / union) if union else 1.0


def _track_iou(track, truth: np.ndarray) -> float:
    """Mean IoU over the frames where ``truth`` (bool [T, H, W]) shows the object; 0 without a track."""
    frames = [t for t in range(len(truth)) if truth[t].any()]
    if track is None:
        return 0.0
    return float(np.mean([_iou(track.mask(t), truth[t]) for t in frames]))


def test_the_box_pass_serves_clicks_and_stays_out_of_training(toy, monkeypatch):
    """The toy's box pass (``box_pass_margin``) decodes a click again with the box of its first mask when the model
    serves. Training (SAM 2 ungated) must see one decoding: with the pass there, only the second would get a gradient
    and ``python -m finetune toy`` would no longer reproduce the shipped checkpoint."""
    model, tokenizer = toy
    clip = make_clip(EVAL_SEED_START + 530, WorldConfig(num_frames=1))
    click = sampling.click(clip, 0, 0, np.random.default_rng(0))
    decodings: list[list[int]] = []
    heads = model.sam2._forward_sam_heads

    def counted(*args, **kwargs):
        points = kwargs.get("point_inputs")
        decodings.append([] if points is None else points["point_labels"][0].tolist())
        return heads(*args, **kwargs)

    monkeypatch.setattr(model.sam2, "_forward_sam_heads", counted)
    InferenceSession.open(model, tokenizer, clip.frames[0]).refer({1: click}, ask=False)
    assert decodings == [[1], [1, 2, 3]]  # the click, then the click and its mask's box
    decodings.clear()
    with model.sam2_gating(False):  # as the trainer runs SAM 2
        InferenceSession.open(model, tokenizer, clip.frames[0]).refer({1: click}, ask=False)
    assert decodings == [[1]]


def test_a_large_video_stored_downscaled_is_segmented_and_tracked_at_its_own_size(toy, tmp_path):
    """UNIPIXEL_FRAME_MAX_SIDE: frames of larger media are stored with that longer side (raw frames at their own
    size took 112 GB of TMPDIR for a 10-minute 1080p clip). Prompts and masks stay in the video's own pixels: a box
    on a 640x480 clip stored at 160x120 segments and tracks the object as the full-size store does, at 640x480 (a
    prompt or mask taken in stored pixels would land in the top-left sixteenth)."""
    model, tokenizer = toy
    config = WorldConfig(num_frames=8, resolutions_wh=((640, 480),), objects=(1, 1), size_range=(0.25, 0.35),
                         p_enter=0.0, p_leave=0.0)
    clip = make_clip(EVAL_SEED_START + 520, config)
    video = writers.write_mp4(clip.frames, tmp_path / "large.mp4", clip.fps)
    prompt = sampling.box(clip, 0, 3, np.random.default_rng(0))
    masks = {}
    for side in (None, 160):
        session = InferenceSession.open(model, tokenizer, video, max_side=side)
        assert session.frames.size_hw == (480, 640)
        masks[side] = session.refer({1: prompt}, ask=False).tracks[0].masks()
    small, full, truth = masks[160], masks[None], clip.masks[0]
    assert small.shape == full.shape == truth.shape == (8, 480, 640)

    def iou(a, b):
        return float((a & b).sum() / max(1, (a | b).sum()))

    print("IoU downscaled/full, prompt frame vs truth (downscaled, full):", round(iou(small, full), 3),
          round(iou(small[3], truth[3]), 3), round(iou(full[3], truth[3]), 3))
    assert iou(small, full) >= 0.8
    assert iou(small[3], truth[3]) >= 0.7


@pytest.mark.parametrize("side", [[], ["--sam2-image-size", "192"]], ids=["checkpoint side", "192 px"])
def test_predict_cli_with_the_toy_model_follows_the_object_both_ways(tmp_path, side):
    """README offline smoke test: ``python -m unipixel_model predict --model toy`` on a synthetic clip, a click on its
    middle frame; the written masks follow the object on the frames before and after (also with SAM 2 at 192 px)."""
    from PIL import Image

    from finetune.world import writers
    from unipixel_model.__main__ import main

    clip = make_clip(EVAL_SEED_START + 600, CLIPS)
    middle = clip.num_frames // 2
    obj = int(np.argmax(clip.masks[:, middle].reshape(len(clip.objects), -1).sum(1)))
    point = sampling.click(clip, obj, middle, np.random.default_rng(0))
    media = writers.write_frame_folder(clip.frames, tmp_path / "clip")[0].parent
    code = main(["predict", "--model", "toy", "--media", str(media), "--point",
                 f"{point.x_px},{point.y_px},{middle}", "--out", str(tmp_path / "out"), *side])
    assert code == 0
    masks = np.stack([np.asarray(Image.open(tmp_path / "out" / f"obj1_frame{t:05d}.png")) > 0
                      for t in range(clip.num_frames)])
    ious = [_iou(masks[t], clip.masks[obj, t]) for t in range(clip.num_frames) if clip.masks[obj, t].any()]
    visible = [t for t in range(clip.num_frames) if clip.masks[obj, t].any()]
    before = [i for i, t in zip(ious, visible) if t < middle]
    after = [i for i, t in zip(ious, visible) if t > middle]
    assert before and after, f"object {obj} of seed {clip.seed} is not visible both ways"
    print(f"mean IoU before the clicked frame {np.mean(before):.2f}, after {np.mean(after):.2f}")
    assert np.mean(before) >= 0.5 and np.mean(after) >= 0.5, (before, after)


def test_a_held_out_box_only_track_is_scored_by_its_boxes(toy, tmp_path):
    """A fine-tune of a ``video_tracking`` project holds out box-only tracks. Its publish gate must see them: the
    first box is replayed as the backend serves it, and the box around the mask on each frame is scored against the
    annotated box (before, nothing was scored, so every such run published, whatever it had learned)."""
    from finetune.convert import MEM_ANSWER, MEM_QUESTION
    from finetune.evaluate import evaluate_holdout
    from finetune.sample import TrainSample

    model, tokenizer = toy
    clip = make_clip(EVAL_SEED_START + 540, WorldConfig(num_frames=8, objects=(1, 2), p_enter=0.0, p_leave=0.0))
    writers.write_frame_folder(clip.frames, tmp_path / "clip")
    boxes = np.zeros_like(clip.masks[:1])
    for t in range(clip.num_frames):
        ys, xs = np.nonzero(clip.masks[0, t])
        boxes[0, t, ys.min():ys.max() + 1, xs.min():xs.max() + 1] = True
    ys, xs = np.nonzero(boxes[0, 0])
    first = BoxPrompt(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1), 0)
    sample = TrainSample("mem", str(tmp_path / "clip"), list(range(clip.num_frames)), MEM_QUESTION, MEM_ANSWER,
                         [first], boxes, box_supervised=True)
    report = evaluate_holdout(model, tokenizer, [sample], max_new_tokens=16)
    assert [c.kind for c in report.calls] == ["box"] and report.calls[0].tag == "box track"
    print(report.table())
    assert report.mean("box", "all") >= 0.6, report.table()
    assert report.score > 0


def test_the_held_out_evaluation_asks_each_media_for_a_mask_by_text(toy, tmp_path):
    """A fine-tune that only ever sees ``[1] <|seg|>`` answers (box tracks) can make the LLM stop answering a text
    query with ``<|seg|>``: the held-out evaluation asks every held-out media one segmentation question, and counts
    the answers that gave a mask (the shipped toy answers every one)."""
    from finetune.convert import MEM_ANSWER, MEM_QUESTION
    from finetune.evaluate import evaluate_holdout
    from finetune.sample import TrainSample

    model, tokenizer = toy
    samples = []
    for n, seed in enumerate((EVAL_SEED_START + 541, EVAL_SEED_START + 542)):
        clip = make_clip(seed, WorldConfig(num_frames=4))
        writers.write_frame_folder(clip.frames, tmp_path / str(n))
        box = sampling.box(clip, 0, 0, np.random.default_rng(0))
        samples += [TrainSample("mem", str(tmp_path / str(n)), [0, 1, 2, 3], MEM_QUESTION, MEM_ANSWER, [box],
                                clip.masks[:1])] * 2
    report = evaluate_holdout(model, tokenizer, samples, max_new_tokens=16)
    assert report.seg_answers == [True, True]  # once per media, not per sample
    assert report.to_dict()["text_answers_with_mask"] == {"share": 1.0, "media": 2}
