"""UniPixel's referring metrics: cIoU and gIoU, as ``infer_seg.py`` + ``eval_refcoco.py`` (spec §6).

Masks are pixel masks as in :mod:`finetune.metrics` (any non-zero value is foreground); the results are fractions in
[0, 1]. The golden values in ``tests/fixtures/metrics/`` were produced by the official code; see
``tests/unit/test_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from finetune.metrics import MetricInputError, as_bool_pair, void_or_none


@dataclass(frozen=True)
class ReferSample:
    """Pixel counts of one referring sample: ``iou`` is inter / union, or 1 when the union is empty."""

    inter: int
    union: int
    iou: float


def refer_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> ReferSample:
    """Intersection and union of one image (or volume), as UniPixel ``infer_seg.py``.

    Args:
        pred: bool [H, W] prediction (non-zero = foreground).
        gt: bool [H, W], or an integer label map where > 0 is foreground and −1 is ignored.
        ignore: optional bool [H, W]; True pixels are ignored (combined with the −1 pixels of ``gt``).

    Returns:
        ReferSample with inter = |G ∧ P ∧ keep| and union = |(G ∨ P) ∧ keep|.
    """
    gt_arr = np.asarray(gt)
    keep = np.ones(gt_arr.shape, dtype=bool) if gt_arr.dtype == bool else gt_arr != -1
    if ignore is not None:
        ignore = void_or_none(ignore, gt_arr.shape)
        keep &= ~ignore
    gt_fg, pred_fg = as_bool_pair(gt_arr > 0, pred)
    inter = int(np.count_nonzero(gt_fg & pred_fg & keep))
    union = int(np.count_nonzero((gt_fg | pred_fg) & keep))
    return ReferSample(inter=inter, union=union, iou=1.0 if union == 0 else inter / union)


def ciou_giou(samples: Iterable[ReferSample]) -> tuple[float | None, float]:
    """Dataset cIoU = Σinter / Σunion and gIoU = mean per-sample IoU (UniPixel ``eval_refcoco.py``).

    Returns:
        (ciou, giou). ``ciou`` is None when every union is empty (UniPixel divides by zero there).
        gIoU sums the IoUs in order with Python floats, then divides by N, as the official code does.

    Raises:
        MetricInputError: no samples.
    """
    samples = list(samples)
    if not samples:
        raise MetricInputError("ciou_giou needs at least 1 sample, got 0")
    cum_inter = sum(s.inter for s in samples)
    cum_union = sum(s.union for s in samples)
    ciou = None if cum_union == 0 else cum_inter / cum_union
    return ciou, sum(s.iou for s in samples) / len(samples)


@dataclass
class ReferAccumulator:
    """Collects :class:`ReferSample` s one prediction at a time; ``result()`` gives (cIoU, gIoU)."""

    samples: list[ReferSample] = field(default_factory=list)

    def add(self, pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> ReferSample:
        """Score one sample (see :func:`refer_iou`), keep it and return it."""
        sample = refer_iou(pred, gt, ignore)
        self.samples.append(sample)
        return sample

    def result(self) -> tuple[float | None, float]:
        """(cIoU, gIoU) over the samples added so far; see :func:`ciou_giou`."""
        return ciou_giou(self.samples)
