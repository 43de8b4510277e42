"""Which object a new click goes to (backend/targeting.py), on tracks with known masks (no model)."""

from __future__ import annotations

import torch

from backend.converters.annotation import MediaShape
from backend.sessions import TaskSession, TrackedObject
from backend.targeting import target_object
from unipixel_model.types import MaskTrack, PointPrompt

H = W = 64  # frames are 64x64 px; logits are stored at 16x16 (4 px per cell)


def _track(obj_id: int, boxes: dict[int, tuple[int, int, int, int] | None], frames: int = 4) -> MaskTrack:
    """A track whose mask on frame f is the box (x1, y1, x2, y2) in 16x16 cells, or absent (None)."""
    logits = torch.full((frames, 16, 16), -10.0)
    scores = torch.full((frames,), float("nan"))
    for f, box in boxes.items():
        scores[f] = -1.0 if box is None else 1.0
        if box is not None:
            x1, y1, x2, y2 = box
            logits[f, y1:y2, x1:x2] = 10.0
    return MaskTrack(obj_id, (H, W), logits, scores, torch.ones(frames), [0])


class _Tracks:
    """The read side of an ``InferenceSession`` that targeting uses, over known tracks."""

    def __init__(self, tracks: dict[int, MaskTrack]) -> None:
        self.tracks = tracks

    def has(self, obj_id: int) -> bool:
        return obj_id in self.tracks

    def track(self, obj_id: int) -> MaskTrack:
        return self.tracks[obj_id]


def _session(*tracks: MaskTrack) -> TaskSession:
    ts = TaskSession(1, "key", _Tracks({t.obj_id: t for t in tracks}), MediaShape(4, H, W, 25.0))
    for t in tracks:
        ts.objects[f"r{t.obj_id}"] = TrackedObject(t.obj_id, f"r{t.obj_id}", None)
    return ts


def test_negative_click_on_a_mask_corrects_that_object_and_positive_click_there_is_new():
    ts = _session(_track(1, {0: (0, 0, 6, 6)}), _track(2, {0: (8, 8, 14, 14)}))
    assert target_object(ts, PointPrompt(44, 44, 0, positive=False)).region_id == "r2"
    assert target_object(ts, PointPrompt(10, 10, 0, positive=False)).region_id == "r1"
    assert target_object(ts, PointPrompt(44, 44, 0, positive=True)) is None  # something the mask swallowed


def test_positive_click_on_a_mask_on_a_page_the_object_has_no_click_on_anchors_that_object():
    """Frame lists: clicking the object again on page k (where only its track is) corrects the same object there with
    a conditioning click, never a new one. On a page it was clicked on, a click inside the mask is still new."""
    ts = _session(_track(1, {0: (4, 4, 8, 8), 1: (5, 4, 9, 8), 2: (6, 4, 10, 8), 3: (7, 4, 11, 8)}))
    assert target_object(ts, PointPrompt(34, 24, 2)).region_id == "r1"  # inside the tracked mask on frame 2
    assert target_object(ts, PointPrompt(24, 24, 0)) is None  # frame 0 carried its click: something swallowed
    other = _track(2, {0: (12, 12, 16, 16), 2: (12, 12, 16, 16)})
    ts = _session(_track(1, {0: (4, 4, 8, 8), 2: (6, 4, 10, 8)}), other)
    assert target_object(ts, PointPrompt(56, 56, 2)).region_id == "r2"  # on object 2's mask: object 2, not 1


def test_positive_click_next_to_an_object_adds_to_it_and_far_away_starts_a_new_one():
    ts = _session(_track(1, {0: (4, 4, 8, 8)}))  # 16..32 px; grown by 15% of 16 px + 3 px
    assert target_object(ts, PointPrompt(34, 20, 0)).region_id == "r1"
    assert target_object(ts, PointPrompt(60, 60, 0)) is None


def test_click_where_the_track_is_missing_fixes_that_track_from_the_nearest_frame():
    ts = _session(_track(1, {0: (4, 4, 8, 8), 1: (5, 4, 9, 8), 2: None, 3: None}))
    assert target_object(ts, PointPrompt(24, 24, 3)).region_id == "r1"  # footprint of frame 1
    assert target_object(ts, PointPrompt(60, 4, 3)) is None


def test_a_lone_negative_click_goes_to_the_nearest_object_never_nowhere():
    ts = _session(_track(1, {0: (0, 0, 3, 3)}), _track(2, {0: (12, 12, 16, 16)}))
    assert target_object(ts, PointPrompt(40, 40, 0, positive=False)).region_id == "r2"
    assert target_object(_session(), PointPrompt(40, 40, 0, positive=False)) is None  # nothing to correct


def test_pending_objects_win_over_older_ones():
    ts = _session(_track(1, {0: (4, 4, 12, 12)}), _track(2, {0: (4, 4, 12, 12)}))
    assert target_object(ts, PointPrompt(30, 30, 0, positive=False)).region_id == "r2"  # newest first
    assert target_object(ts, PointPrompt(30, 30, 0, positive=False), prefer={"r1"}).region_id == "r1"


def test_a_frame_scored_visible_with_an_empty_mask_is_no_footprint():
    # Found by the fuzzer (a 500): the nearest "visible" frame had an object score > 0 but no pixel on.
    track = _track(1, {0: None, 1: (0, 0, 0, 0)})
    track.object_scores[1] = 1.0
    ts = _session(track)
    assert target_object(ts, PointPrompt(1, 1, 0, positive=True)) is None
    assert target_object(ts, PointPrompt(1, 1, 0, positive=False)).region_id == "r1"
