"""Evaluation metrics: DAVIS J / F / J&F (UniPixel's referring cIoU / gIoU: :mod:`finetune.refer_metrics`; the
text-overlap score of descriptions: :mod:`finetune.text_metrics`).

All mask metrics take pixel masks (``bool[H, W]`` or ``bool[T, H, W]``; any non-zero value counts as
foreground) and return fractions in [0, 1], never percentages; :meth:`JFScore.to_percent` gives the
×100, 2-decimal numbers that UniPixel prints.

* J and F reproduce ``davis2017/metrics.py`` of davisvideochallenge/davis2017-evaluation (commit
  ac7c43f) bit for bit, including its edge quirks: the boundary map has no edge along the image border,
  so a full-frame mask has an empty boundary, and two empty boundaries score F = 1. UniPixel's
  ``eval_seg.py`` uses copies of these functions and averages J and F over *all* frames of one
  expression (:func:`j_and_f`), then over expressions (:func:`mean_over_expressions`).
The golden values in ``tests/fixtures/metrics/`` were produced by the official code; see
``tests/unit/test_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np


class MetricInputError(ValueError):
    """Masks or samples given to a metric have the wrong shape or are missing."""


def as_bool_pair(annotation: np.ndarray, segmentation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check that both arrays are [H, W] or [T, H, W] of one shape and return them as bool."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    if annotation.shape != segmentation.shape:
        raise MetricInputError(
            f"annotation shape {annotation.shape} != segmentation shape {segmentation.shape}; "
            "resize the prediction to the ground-truth frame size first"
        )
    if annotation.ndim not in (2, 3):
        raise MetricInputError(f"masks must be [H, W] or [T, H, W], got {annotation.ndim} dims {annotation.shape}")
    return annotation.astype(bool), segmentation.astype(bool)


def void_or_none(void_pixels: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if void_pixels is None:
        return None
    void_pixels = np.asarray(void_pixels)
    if void_pixels.shape != shape:
        raise MetricInputError(f"void_pixels shape {void_pixels.shape} != mask shape {shape}")
    return void_pixels.astype(bool)


def db_eval_iou(annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None) -> np.ndarray:
    """Region similarity J (Jaccard index) per frame, as DAVIS ``db_eval_iou``.

    Args:
        annotation: ground truth, bool [T, H, W] or [H, W] (non-zero = foreground).
        segmentation: prediction, same shape.
        void_pixels: optional bool mask of the same shape; True pixels count in neither set.

    Returns:
        float64 array of shape ``annotation.shape[:-2]`` ([T], or 0-d for one frame). A frame whose
        union is empty (both masks empty) scores 1.

    Raises:
        MetricInputError: shapes differ or are not 2-D / 3-D.
    """
    annotation, segmentation = as_bool_pair(annotation, segmentation)
    void = void_or_none(void_pixels, annotation.shape)
    keep = np.ones_like(annotation) if void is None else ~void
    inters = np.sum(annotation & segmentation & keep, axis=(-2, -1))
    union = np.sum((annotation | segmentation) & keep, axis=(-2, -1))
    # Same division as the official code (int / int -> float64), without its 0/0 RuntimeWarning.
    j = np.divide(inters, union, out=np.ones(union.shape, dtype=np.float64), where=union != 0)
    return j


def seg_to_boundary_map(seg: np.ndarray) -> np.ndarray:
    """One-pixel edge map of a mask, exactly DAVIS ``_seg2bmap`` at the mask's own size.

    A pixel is an edge if it differs from its right, lower or lower-right neighbour inside the image.
    Nothing is padded, so the image border never produces an edge: a full-frame mask gives an empty map.

    Args:
        seg: bool [H, W].

    Returns:
        bool [H, W] edge map.
    """
    seg = np.asarray(seg).astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    # Last row/column: compare only with the neighbour that exists (as the official code does).
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_radius_px(height: int, width: int, bound_th: float = 0.008) -> float:
    """Boundary tolerance in pixels: ``ceil(bound_th · diagonal)`` in float64, or ``bound_th`` if ≥ 1.

    ``np.linalg.norm`` is used, as officially: 0.008·125 is exactly 1.0 (75×100 → 1 px, not 2).
    """
    return float(bound_th) if bound_th >= 1 else float(np.ceil(bound_th * np.linalg.norm((height, width))))


def _disk_kernel(radius: float) -> np.ndarray:
    """``skimage.morphology.disk(radius)`` as uint8: offsets with dy² + dx² ≤ r² (r=1 is a 5-pixel plus)."""
    offsets = np.arange(-radius, radius + 1)
    x, y = np.meshgrid(offsets, offsets)
    return ((x**2 + y**2) <= radius**2).astype(np.uint8)


@dataclass(frozen=True)
class BoundaryMatch:
    """Boundary F-measure of one frame with its integer counts (for debugging)."""

    n_pred: int  # predicted edge pixels
    n_gt: int  # ground-truth edge pixels
    matched_pred: int  # predicted edge pixels within the radius of a GT edge pixel
    matched_gt: int  # GT edge pixels within the radius of a predicted edge pixel
    precision: float
    recall: float
    f: float


def match_boundaries(
    gt_mask: np.ndarray, pred_mask: np.ndarray, void_pixels: np.ndarray | None = None, bound_th: float = 0.008
) -> BoundaryMatch:
    """DAVIS ``f_measure`` on one frame, returning the counts as well as F.

    Args:
        gt_mask: bool [H, W] ground truth.
        pred_mask: bool [H, W] prediction.
        void_pixels: optional bool [H, W]; both masks are set to background there *before* edges are found.
        bound_th: tolerance as a fraction of the diagonal (< 1) or in pixels (≥ 1).

    Returns:
        BoundaryMatch. With no predicted edge P = 1, with no GT edge R = 1; F = 2PR / (P + R) or 0.
    """
    gt_mask, pred_mask = as_bool_pair(gt_mask, pred_mask)
    if gt_mask.ndim != 2:
        raise MetricInputError(f"match_boundaries takes one frame [H, W], got shape {gt_mask.shape}")
    void = void_or_none(void_pixels, gt_mask.shape)
    if void is not None:
        gt_mask, pred_mask = gt_mask & ~void, pred_mask & ~void
    kernel = _disk_kernel(boundary_radius_px(*gt_mask.shape, bound_th=bound_th))
    pred_b, gt_b = seg_to_boundary_map(pred_mask), seg_to_boundary_map(gt_mask)
    pred_dil = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    matched_pred, matched_gt = int((pred_b & gt_dil).sum()), int((gt_b & pred_dil).sum())
    if n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    elif n_pred == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision, recall = matched_pred / n_pred, matched_gt / n_gt
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return BoundaryMatch(n_pred, n_gt, matched_pred, matched_gt, precision, recall, f)


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = 0.008,
) -> np.ndarray:
    """Contour accuracy F (boundary F-measure) per frame, as DAVIS ``db_eval_boundary``.

    Args:
        annotation: ground truth, bool [T, H, W] or [H, W].
        segmentation: prediction, same shape.
        void_pixels: optional bool mask of the same shape (see :func:`match_boundaries`).
        bound_th: tolerance, fraction of the frame diagonal (default 0.008) or pixels if ≥ 1.

    Returns:
        float64 array of shape ``annotation.shape[:-2]``.

    Raises:
        MetricInputError: shapes differ or are not 2-D / 3-D.
    """
    annotation, segmentation = as_bool_pair(annotation, segmentation)
    void = void_or_none(void_pixels, annotation.shape)
    if annotation.ndim == 2:
        return np.asarray(match_boundaries(annotation, segmentation, void, bound_th).f, dtype=np.float64)
    frames = [
        match_boundaries(annotation[t], segmentation[t], None if void is None else void[t], bound_th).f
        for t in range(annotation.shape[0])
    ]
    return np.asarray(frames, dtype=np.float64)


@dataclass(frozen=True)
class FrameStatistics:
    """DAVIS ``db_statistics`` of one object's per-frame values: mean, recall (> 0.5) and decay."""

    mean: float
    recall: float
    decay: float


def frame_statistics(per_frame: np.ndarray) -> FrameStatistics:
    """Mean, recall and decay of a per-frame J or F vector (float [T], T ≥ 1), as DAVIS computes them.

    Decay = mean of the first quarter − mean of the last quarter, with quarters from
    ``round(linspace(1, T, 5) + 1e-10) - 1`` that share their endpoint frames.
    """
    values = np.asarray(per_frame, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise MetricInputError(f"per_frame must be a non-empty 1-D array, got shape {values.shape}")
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
    bins = [values[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return FrameStatistics(
        mean=float(np.nanmean(values)),
        recall=float(np.nanmean(values > 0.5)),
        decay=float(np.nanmean(bins[0]) - np.nanmean(bins[3])),
    )


@dataclass(frozen=True)
class JFScore:
    """J, F and J&F = (J + F) / 2 as fractions in [0, 1] (UniPixel reports them ×100)."""

    j: float
    f: float
    jf: float

    def to_percent(self) -> dict[str, float]:
        """``{"J", "F", "JF"}`` ×100, rounded to 2 decimals as UniPixel's ``eval_seg.py`` prints them."""
        return {"J": round(100 * self.j, 2), "F": round(100 * self.f, 2), "JF": round(100 * self.jf, 2)}


def j_and_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> JFScore:
    """UniPixel's per-expression score: J and F averaged over *all* frames (none dropped).

    Args:
        gt: bool [T, H, W]; for several referred objects pass their union (UniPixel sums them).
        pred: bool [T, H, W].
        bound_th: boundary tolerance, see :func:`db_eval_boundary`.

    Returns:
        JFScore with fractions in [0, 1].
    """
    j = float(db_eval_iou(gt, pred).mean())
    f = float(db_eval_boundary(gt, pred, bound_th=bound_th).mean())
    return JFScore(j=j, f=f, jf=(j + f) / 2)


def mean_over_expressions(scores: Sequence[JFScore]) -> JFScore:
    """Dataset score: the mean J and mean F over expressions, J&F = (J + F) / 2 (fractions)."""
    if not scores:
        raise MetricInputError("mean_over_expressions needs at least 1 score, got 0")
    j = float(np.mean([s.j for s in scores]))
    f = float(np.mean([s.f for s in scores]))
    return JFScore(j=j, f=f, jf=(j + f) / 2)
