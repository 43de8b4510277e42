"""A correction click the model does not follow is said, not silent (backend/annotate.py): on tracks with known masks
(no model), a session whose ``refine`` returns the mask it is told to."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from backend.annotate import run_prompts
from backend.converters.annotation import MediaShape
from backend.converters.prompts import Click, ContextPrompts
from backend.sessions import TaskSession, TrackedObject
from unipixel_model.types import MaskTrack, PointPrompt

H = W = 64  # frames are 64x64 px; logits are stored at 16x16 (4 px per cell)


def _track(box: tuple[int, int, int, int]) -> MaskTrack:
    """Object [1] on one frame: the box (x1, y1, x2, y2) in 16x16 cells."""
    logits = torch.full((1, 16, 16), -10.0)
    x1, y1, x2, y2 = box
    logits[0, y1:y2, x1:x2] = 10.0
    return MaskTrack(1, (H, W), logits, torch.ones(1), torch.ones(1), [0])


class _Refines:
    """The part of an ``InferenceSession`` that a correction uses; ``refine`` answers ``after``."""

    def __init__(self, before: MaskTrack, after: MaskTrack) -> None:
        self.current, self.after = before, after

    def has(self, obj_id: int) -> bool:
        return obj_id == 1

    def track(self, obj_id: int) -> MaskTrack:
        return self.current

    def refine(self, obj_id: int, clicks: list[PointPrompt], stretch_only: bool = False) -> MaskTrack:
        self.current = self.after
        return self.after

    def new_object_id(self) -> int:
        return 1

    def refer(self, prompts: dict) -> SimpleNamespace:
        self.current = self.after
        return SimpleNamespace(tracks=[self.after])

    def segment(self, question: str, forced_answer: str | None = None) -> SimpleNamespace:
        self.current = self.after
        return SimpleNamespace(tracks=[self.after], text="")

    def incomplete(self) -> list[int]:
        return []

    frames = SimpleNamespace(is_image=True)


def _correct(before: tuple, after: tuple, x_px: float, y_px: float, positive: bool) -> list[str]:
    ts = TaskSession(1, "key", _Refines(_track(before), _track(after)), MediaShape(1, H, W, 0.0))
    ts.objects["r1"] = TrackedObject(1, "r1", "Object")
    ts.clicks["k0"] = "r1"  # the object's first click, applied earlier
    prompts = ContextPrompts(clicks=[Click("k1", "Object", PointPrompt(x_px, y_px, 0, positive=positive))])
    return run_prompts(ts, prompts, "Object", describe=False).skipped


def test_a_negative_click_the_model_keeps_in_the_mask_is_said_with_what_to_do():
    skipped = _correct((0, 0, 12, 12), (0, 0, 12, 12), 40, 40, positive=False)  # the model ignores it
    assert any("kept the part under the negative click at (40, 40) px on frame 0 in r1" in w and "Eraser" in w
               for w in skipped), skipped


def test_a_negative_click_that_removes_the_part_says_nothing():
    assert _correct((0, 0, 12, 12), (0, 0, 8, 12), 40, 40, positive=False) == []


def test_a_positive_click_the_model_leaves_out_of_the_mask_is_said_with_what_to_do():
    skipped = _correct((0, 0, 8, 8), (0, 0, 8, 8), 36, 10, positive=True)  # beside the mask, still out of it
    assert any("left the part under the click at (36, 10) px on frame 0 out of r1" in w and "Brush" in w
               for w in skipped), skipped


def test_a_positive_click_that_adds_the_part_says_nothing():
    assert _correct((0, 0, 8, 8), (0, 0, 12, 8), 36, 10, positive=True) == []


def test_a_click_on_the_last_pixel_row_and_column_is_looked_up_inside_the_frame():
    """Clicks on the frame's far edge (x = W, y = H in LS's percent) are read from its last pixel."""
    skipped = _correct((0, 0, 16, 16), (0, 0, 16, 16), W, H, positive=False)
    assert any("kept the part under the negative click at (64, 64) px" in w for w in skipped), skipped


def test_a_new_object_whose_mask_leaves_out_its_click_is_said():
    """A first click far from every object starts one; the model's mask lies elsewhere (it found another object)."""
    ts = TaskSession(1, "key", _Refines(_track((0, 0, 1, 1)), _track((0, 0, 4, 4))), MediaShape(1, H, W, 0.0))
    prompts = ContextPrompts(clicks=[Click("k1", "Object", PointPrompt(50, 50, 0))])
    result = run_prompts(ts, prompts, "Object", describe=False)
    (update,) = result.updates
    assert any(f"left the part under the click at (50, 50) px on frame 0 out of {update.tracked.region_id}, the new "
               "object's mask lies elsewhere; draw a box" in w for w in result.skipped), result.skipped


def test_a_text_query_whose_object_is_found_on_no_frame_is_said():
    nowhere = MaskTrack(1, (H, W), torch.full((1, 16, 16), -10.0), torch.full((1,), -1.0), torch.ones(1), [0])
    ts = TaskSession(1, "key", _Refines(nowhere, nowhere), MediaShape(1, H, W, 0.0))
    result = run_prompts(ts, ContextPrompts(text="the purple bar"), "Object", describe=False)
    (update,) = result.updates
    assert result.skipped == [f"{update.tracked.region_id}: the model finds the object of the text query 'the purple "
                              "bar' on no frame, so Label Studio gets nothing to draw; click inside the object or draw "
                              "a box around it"]
