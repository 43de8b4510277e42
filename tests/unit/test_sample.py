"""TrainSample validation, JSON/JSONL round trips and held-out splits."""

from pathlib import Path

import numpy as np
import pytest

from finetune.sample import SampleError, TrainSample, read_samples, write_samples
from finetune.split import split_by_task
from unipixel_model.types import BoxPrompt, PointPrompt


def _masks(objects=1, frames=2, size=(12, 16)):
    masks = np.zeros((objects, frames, *size), dtype=bool)
    for o in range(objects):
        masks[o, :, 2 + o:6 + o, 3:9] = True
    return masks


def _samples():
    return [
        TrainSample("seg", "clip.mp4", [0, 4], "Please segment the car.", "Sure, it is <|seg|>.",
                    target_masks=_masks(), task_id=1),
        TrainSample("ref", "frames/", [2, 3], "What is [1] <|ref|>?", "A car.",
                    prompts=[PointPrompt(4.5, 3.0, 3)], task_id=2),
        TrainSample("mem", "clip.mp4", [0, 1], "[1] <|ref|> [2] <|ref|> Please localize the relevant objects with IDs.",
                    "[1] <|seg|> [2] <|seg|>", prompts=[BoxPrompt(1, 2, 8, 9, 0), PointPrompt(5, 5, 1)],
                    target_masks=_masks(objects=2), task_id=3),
        TrainSample("region", "photo.jpg", [0], "What is [1] doing?", "[1] is parked.",
                    region_masks=_masks(frames=1), task_id=None),
    ]


def test_sample_json_round_trip_is_exact(tmp_path: Path):
    samples = _samples()
    path = write_samples(samples, tmp_path / "samples.jsonl")
    restored = read_samples(path)
    assert len(restored) == len(samples)
    for a, b in zip(samples, restored):
        for name in ("kind", "media", "frame_idx", "question", "answer", "prompts", "task_id"):
            assert getattr(a, name) == getattr(b, name)
        for name in ("target_masks", "region_masks"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None and y is None) or (x.dtype == y.dtype == bool and np.array_equal(x, y))


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="seg", answer="It is <|seg|> and <|seg|>."), "holds 1 objects but the answer has 2 <|seg|>"),
    (dict(kind="ref", question="What is <|ref|> and <|ref|>?", answer="cars", prompts=[PointPrompt(1, 1, 0)],
          target_masks=None), "2 <|ref|> tokens but 1 prompts"),
    (dict(kind="mem", question="[1] <|ref|>", answer="[1] <|seg|>", prompts=[], target_masks=None),
     "1 <|ref|> tokens but 0 prompts"),
    (dict(kind="seg", frame_idx=[4, 0]), "sorted, unique"),
    (dict(kind="seg", frame_idx=list(range(9)), target_masks=_masks(frames=9)), "1 to 8 frames, got 9"),
    (dict(kind="seg", target_masks=_masks(frames=3)), "has 3 frames, frame_idx has 2"),
    (dict(kind="seg", target_masks=None), "needs target_masks"),
    (dict(kind="seg", region_masks=_masks()), "takes no region_masks"),
    (dict(kind="region", answer="A car.", target_masks=None, region_masks=np.zeros((1, 2, 4, 4), bool)),
     r"object\(s\) \[1\] are empty"),
    (dict(kind="ref", question="What is <|ref|>?", answer="A car.", target_masks=None,
          prompts=[PointPrompt(1, 1, 7)]), "on frame 7, not one of frame_idx"),
    (dict(kind="ref", question="What is <|ref|>?", answer="A car.", target_masks=None,
          prompts=[BoxPrompt(5, 5, 2, 9, 0)]), "x2 > x1"),
    (dict(kind="seg", question="Segment <|seg|>."), "<|seg|> in the question"),
    (dict(kind="seg", media="photo.png"), "image sample uses frame_idx"),
    (dict(kind="track"), "kind must be one of"),
])
def test_sample_validation_errors_give_numbers(kwargs, message):
    base = dict(kind="seg", media="clip.mp4", frame_idx=[0, 1], question="Segment the car.",
                answer="Sure, it is <|seg|>.", target_masks=_masks())
    with pytest.raises(SampleError, match=message):
        TrainSample(**{**base, **kwargs})


def test_sample_prompt_outside_the_frame_is_rejected():
    with pytest.raises(SampleError, match="outside the 16x12 frame"):
        TrainSample("mem", "clip.mp4", [0, 1], "[1] <|ref|>", "[1] <|seg|>", prompts=[PointPrompt(20, 3, 0)],
                    target_masks=_masks())


def test_read_samples_names_the_bad_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kind": "seg"}\n')
    with pytest.raises(SampleError, match="bad.jsonl:1: .*missing keys"):
        read_samples(path)


def test_split_by_task_keeps_tasks_on_one_side():
    samples = [TrainSample("ref", "v.mp4", [0], "What is <|ref|>?", "x", prompts=[PointPrompt(1, 1, 0)], task_id=t)
               for t in (1, 1, 2, 2, 3, 3, 4, 4)]
    train, held = split_by_task(samples, 0.25, seed=3)
    assert held and train and len(held) % 2 == 0  # whole tasks, at least one each side
    assert not {s.task_id for s in train} & {s.task_id for s in held}
    assert split_by_task(samples, 0.25, seed=3) == (train, held)  # deterministic
    # Stable as the project grows: a held-out task stays held out when more tasks arrive.
    more = samples + [TrainSample("ref", "v.mp4", [0], "What is <|ref|>?", "x", prompts=[PointPrompt(1, 1, 0)],
                                  task_id=t) for t in range(5, 40)]
    assert {s.task_id for s in held} <= {s.task_id for s in split_by_task(more, 0.25, seed=3)[1]}
    assert 0.1 < len({s.task_id for s in split_by_task(more, 0.25, seed=3)[1]}) / 39 < 0.45
    assert split_by_task(samples, 0.0) == (samples, [])
    assert len(split_by_task(samples[:2], 0.9)[1]) == 0  # a single task is never held out entirely
