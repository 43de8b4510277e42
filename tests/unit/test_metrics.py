"""Metrics against the golden values of the official DAVIS 2017 and UniPixel code (tests/fixtures/metrics).

Tolerances follow the fixture README §9: integer counts and per-frame J/F must be equal (==, single
divisions); means, decays and aggregates are compared with abs=1e-12 (summation order may move the last bits).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from finetune.metrics import (
    FrameStatistics,
    MetricInputError,
    boundary_radius_px,
    db_eval_boundary,
    db_eval_iou,
    frame_statistics,
    j_and_f,
    match_boundaries,
    mean_over_expressions,
)
from finetune.refer_metrics import ReferAccumulator, ciou_giou, refer_iou
from finetune.text_metrics import corpus_text_score, text_similarity

FIXTURE_DIR = Path(__file__).parents[1] / "fixtures" / "metrics"
EXPECTED = json.loads((FIXTURE_DIR / "expected.json").read_text())
CASES = np.load(FIXTURE_DIR / "cases.npz")
VIDEO_CASES = EXPECTED["video_cases"]
IMAGE_CASES = EXPECTED["image_cases"]
MEAN_ABS = 1e-12


def _video(case: dict) -> tuple[np.ndarray, np.ndarray]:
    return CASES[case["npz_keys"]["gt"]], CASES[case["npz_keys"]["pred"]]


def _frame_records() -> list:
    """(case id, record name, gt bool[T,H,W], pred, void or None, expected frame record) for every record."""
    records = []
    for case in VIDEO_CASES:
        gt, pred = _video(case)
        expected = case["expected"]
        if case["kind"] == "binary":
            records.append((case["id"], "binary", gt, pred, None, expected["binary"]))
        else:
            for obj_id, record in expected["per_object"].items():
                records.append((case["id"], f"obj{obj_id}", gt == int(obj_id), pred == int(obj_id), None, record))
            records.append((case["id"], "merged", gt > 0, pred > 0, None, expected["merged_foreground"]))
        if "with_void" in expected:
            void = CASES[case["npz_keys"]["void"]]
            records.append((case["id"], "with_void", gt, pred, void, expected["with_void"]))
    return records


FRAME_RECORDS = _frame_records()
RECORD_IDS = [f"{r[0]}-{r[1]}" for r in FRAME_RECORDS]


def _stats_dict(j: FrameStatistics, f: FrameStatistics) -> dict[str, float]:
    return {
        "J_mean": j.mean,
        "F_mean": f.mean,
        "JF_mean": (j.mean + f.mean) / 2,
        "J_recall": j.recall,
        "J_decay": j.decay,
        "F_recall": f.recall,
        "F_decay": f.decay,
    }


@pytest.mark.parametrize(("case_id", "name", "gt", "pred", "void", "record"), FRAME_RECORDS, ids=RECORD_IDS)
def test_metrics_per_frame_j_f_match_official(case_id, name, gt, pred, void, record):
    assert db_eval_iou(gt, pred, void).tolist() == record["J_per_frame"]
    assert db_eval_boundary(gt, pred, void).tolist() == record["F_per_frame"]


@pytest.mark.parametrize(("case_id", "name", "gt", "pred", "void", "record"), FRAME_RECORDS, ids=RECORD_IDS)
def test_metrics_boundary_counts_match_diagnostics(case_id, name, gt, pred, void, record):
    matches = [match_boundaries(gt[t], pred[t], None if void is None else void[t]) for t in range(len(gt))]
    diag = record["diagnostics"]
    assert [m.n_pred for m in matches] == diag["n_boundary_pred"]
    assert [m.n_gt for m in matches] == diag["n_boundary_gt"]
    assert [m.matched_pred for m in matches] == diag["matched_pred"]
    assert [m.matched_gt for m in matches] == diag["matched_gt"]
    assert [m.precision for m in matches] == diag["precision"]
    assert [m.recall for m in matches] == diag["recall"]
    keep = np.ones_like(gt) if void is None else ~void
    assert np.sum(gt & pred & keep, axis=(1, 2)).tolist() == diag["inter"]
    assert np.sum((gt | pred) & keep, axis=(1, 2)).tolist() == diag["union"]


@pytest.mark.parametrize(("case_id", "name", "gt", "pred", "void", "record"), FRAME_RECORDS, ids=RECORD_IDS)
@pytest.mark.parametrize("scope", ["all_frames", "inner_frames"])
def test_metrics_frame_statistics_match_db_statistics(case_id, name, gt, pred, void, record, scope):
    frames = slice(None) if scope == "all_frames" else slice(1, -1)  # DAVIS semi-supervised drops first/last
    j = frame_statistics(np.asarray(record["J_per_frame"])[frames])
    f = frame_statistics(np.asarray(record["F_per_frame"])[frames])
    assert _stats_dict(j, f) == pytest.approx(record[scope], abs=MEAN_ABS)


@pytest.mark.parametrize("case", VIDEO_CASES, ids=[c["id"] for c in VIDEO_CASES])
def test_metrics_j_and_f_matches_unipixel_eval_seg(case):
    gt, pred = _video(case)
    score = j_and_f(gt > 0, pred > 0)  # UniPixel merges all referred objects into one foreground
    expected = case["expected"]["unipixel"]
    assert (score.j, score.f, score.jf) == pytest.approx((expected["J"], expected["F"], expected["JF"]), abs=MEAN_ABS)
    assert boundary_radius_px(*gt.shape[1:]) == case["bound_pix"]


@pytest.mark.parametrize("case", [c for c in VIDEO_CASES if c["kind"] == "labels"], ids=lambda c: c["id"])
def test_metrics_label_cases_match_object_mean_and_hungarian_matching(case):
    gt, pred = _video(case)
    n_obj = int(max(gt.max(), pred.max()))
    ids = range(1, n_obj + 1)
    pair_j = np.array([[db_eval_iou(gt == g, pred == p).mean() for g in ids] for p in ids])
    pair_f = np.array([[db_eval_boundary(gt == g, pred == p).mean() for g in ids] for p in ids])
    unsup = case["expected"]["davis_unsupervised_all_frames"]
    np.testing.assert_allclose(pair_j, unsup["pair_mean_J"], rtol=0, atol=MEAN_ABS)
    np.testing.assert_allclose(pair_f, unsup["pair_mean_F"], rtol=0, atol=MEAN_ABS)
    # The official helper runs a Hungarian assignment; with ≤ 3 objects brute force finds the same one.
    score = (pair_j + pair_f) / 2
    best = max(itertools.permutations(range(n_obj)), key=lambda perm: sum(score[i, perm[i]] for i in range(n_obj)))
    assert [(i + 1, g + 1) for i, g in enumerate(best)] == [(m["pred_id"], m["gt_id"]) for m in unsup["matching"]]
    for scope, frames in (("all_frames", slice(None)), ("inner_frames", slice(1, -1))):
        per_object = [
            _stats_dict(
                frame_statistics(db_eval_iou(gt == k, pred == k)[frames]),
                frame_statistics(db_eval_boundary(gt == k, pred == k)[frames]),
            )
            for k in ids
        ]
        mean = {key: float(np.mean([o[key] for o in per_object])) for key in per_object[0]}
        assert mean == pytest.approx(case["expected"]["sequence_mean_over_objects"][scope], abs=MEAN_ABS)


def _dataset_objects() -> list[tuple[np.ndarray, np.ndarray]]:
    """The aggregate's 19 objects: one per binary case, one per id in the label cases."""
    objects = []
    for case in VIDEO_CASES:
        gt, pred = _video(case)
        if case["kind"] == "binary":
            objects.append((gt, pred))
        else:
            objects += [(gt == k, pred == k) for k in range(1, int(gt.max()) + 1)]
    return objects


@pytest.mark.parametrize(
    ("key", "frames"), [("davis_global_all_frames", slice(None)), ("davis_global_inner_frames", slice(1, -1))]
)
def test_metrics_davis_global_table_matches_official(key, frames):
    rows = []
    for gt, pred in _dataset_objects():
        j = frame_statistics(db_eval_iou(gt, pred)[frames])
        f = frame_statistics(db_eval_boundary(gt, pred)[frames])
        rows.append((j, f))
    table = {
        "J-Mean": np.mean([j.mean for j, _ in rows]),
        "J-Recall": np.mean([j.recall for j, _ in rows]),
        "J-Decay": np.mean([j.decay for j, _ in rows]),
        "F-Mean": np.mean([f.mean for _, f in rows]),
        "F-Recall": np.mean([f.recall for _, f in rows]),
        "F-Decay": np.mean([f.decay for _, f in rows]),
        "n_objects": len(rows),
    }
    table["J&F-Mean"] = (table["J-Mean"] + table["F-Mean"]) / 2
    assert table == pytest.approx(EXPECTED["aggregate"][key], abs=MEAN_ABS)


def test_metrics_unipixel_dataset_score_and_percent_match_official():
    scores = [j_and_f(*(m > 0 for m in _video(case))) for case in VIDEO_CASES]
    total = mean_over_expressions(scores)
    expected = EXPECTED["aggregate"]["unipixel_eval_seg"]
    assert (total.j, total.f, total.jf) == pytest.approx((expected["J"], expected["F"], expected["JF"]), abs=MEAN_ABS)
    assert total.to_percent() == expected["reported_percent"]
    # ReVOS style: round each expression to 2 decimals of a percent first, then average.
    revos = EXPECTED["aggregate"]["unipixel_eval_revos_style"]
    j_pct = np.mean([round(100 * s.j, 2) for s in scores])
    f_pct = np.mean([round(100 * s.f, 2) for s in scores])
    assert (j_pct, f_pct, (j_pct + f_pct) / 2) == pytest.approx(
        (revos["J_percent"], revos["F_percent"], revos["JF_percent"]), abs=MEAN_ABS
    )


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c["id"] for c in IMAGE_CASES])
def test_metrics_refer_ciou_giou_match_unipixel(case):
    accumulator = ReferAccumulator()
    for image in case["images"]:
        keys = image["npz_keys"]
        ignore = ~CASES[keys["keep"]] if "keep" in keys else None
        sample = accumulator.add(CASES[keys["pred"]], CASES[keys["gt"]], ignore)
        assert (sample.inter, sample.union, sample.iou) == (image["inter"], image["union"], image["iou"])
    expected = case["expected"]
    assert accumulator.result() == (expected["cIoU"], expected["gIoU"])  # i07: cIoU None (0/0)
    assert sum(s.inter for s in accumulator.samples) == expected["cum_inter"]
    assert sum(s.union for s in accumulator.samples) == expected["cum_union"]


def test_metrics_refer_iou_minus_one_labels_equal_ignore_mask():
    case = next(c for c in IMAGE_CASES if c["id"] == "i06_keep_mask")
    with_labels, without_keep = [], []
    for image in case["images"]:
        keys = image["npz_keys"]
        gt_labels = CASES[keys["gt"]].astype(np.int8)
        gt_labels[~CASES[keys["keep"]]] = -1  # ReasonSeg-style "ignore" label
        with_labels.append(refer_iou(CASES[keys["pred"]], gt_labels))
        without_keep.append(refer_iou(CASES[keys["pred"]], CASES[keys["gt"]]))
    assert ciou_giou(with_labels) == (case["expected"]["cIoU"], case["expected"]["gIoU"])
    no_keep = case["expected_without_keep"]
    assert ciou_giou(without_keep) == (no_keep["cIoU"], no_keep["gIoU"])


def test_metrics_empty_masks_score_one():
    empty = np.zeros((3, 20, 30), dtype=bool)
    full = np.ones((3, 20, 30), dtype=bool)
    assert db_eval_iou(empty, empty).tolist() == [1.0, 1.0, 1.0]
    assert float(db_eval_iou(empty[0], empty[0])) == 1.0  # one frame → 0-d array
    assert db_eval_boundary(empty, empty).tolist() == [1.0, 1.0, 1.0]
    # A full-frame mask has no edge (the image border is not an edge): J = 0 but F = 1 vs empty.
    assert db_eval_iou(full, empty).tolist() == [0.0, 0.0, 0.0]
    assert db_eval_boundary(full, empty).tolist() == [1.0, 1.0, 1.0]
    assert j_and_f(empty, empty).jf == 1.0


def test_metrics_boundary_f_of_shifted_square():
    """10×10 square at rows/cols 10..19 in 40×40 (radius 1 px), prediction 3 columns to the right.

    Each edge map is the 11×11 loop rows 9..19 × cols 9..19 (40 px), the prediction's is cols 12..22.
    Matched within a 5-pixel plus: 9 + 9 on the top/bottom rows and 2 on the near side → 20/40 both ways.
    """
    gt = np.zeros((40, 40), dtype=bool)
    gt[10:20, 10:20] = True
    pred = np.roll(gt, 3, axis=1)
    match = match_boundaries(gt, pred)
    assert (match.n_pred, match.n_gt, match.matched_pred, match.matched_gt) == (40, 40, 20, 20)
    assert float(db_eval_boundary(gt, pred)) == 0.5
    assert float(db_eval_iou(gt, pred)) == 70 / 130


def test_metrics_boundary_radius_uses_exact_float64_diagonal():
    assert boundary_radius_px(75, 100) == 1.0  # 0.008 · 125 == 1.0 exactly
    assert boundary_radius_px(150, 200) == 2.0
    assert boundary_radius_px(200, 180) == 3.0
    assert boundary_radius_px(480, 854, bound_th=2) == 2.0  # ≥ 1 means pixels


def test_metrics_frame_statistics_decay_quarters():
    stats = frame_statistics(np.array([1.0, 0.5, 0.0]))  # quarters [0,1], [1,1], [1,2], [2,2]
    assert stats == FrameStatistics(mean=0.5, recall=1 / 3, decay=0.75)
    assert frame_statistics(np.array([0.7])).decay == 0.0


def test_metrics_bad_inputs_raise_value_errors_with_shapes():
    with pytest.raises(MetricInputError, match=r"\(2, 4, 4\).*\(2, 4, 5\)"):
        db_eval_iou(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 5), bool))
    with pytest.raises(ValueError, match="4 dims"):
        db_eval_boundary(np.zeros((1, 2, 4, 4), bool), np.zeros((1, 2, 4, 4), bool))
    with pytest.raises(MetricInputError, match="got 0"):
        ciou_giou([])
    with pytest.raises(MetricInputError, match="got 0"):
        mean_over_expressions([])


def test_metrics_text_similarity_token_f1():
    assert text_similarity("A red car, parked.", "the red car parked") == 1.0  # case, punctuation, articles
    assert text_similarity("red car", "red truck") == 0.5
    assert text_similarity("a dog", "the cat") == 0.0
    assert text_similarity("", "") == 1.0
    assert text_similarity("", "cat") == 0.0
    assert text_similarity("dog dog", "dog") == pytest.approx(2 / 3)  # multiset overlap: P = 1/2, R = 1
    assert corpus_text_score([("red car", "red truck"), ("cat", "cat")]) == 0.75
    with pytest.raises(MetricInputError):
        corpus_text_score([])
