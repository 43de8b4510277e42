"""What a training run reports: :class:`TrainResult` of :meth:`finetune.trainer.Trainer.train` and
:class:`EvalResult` of :meth:`~finetune.trainer.Trainer.evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` did.

    Attributes:
        steps: optimizer steps taken.
        losses: per step, the mean total loss of its samples (averaged over ranks).
        lm_losses / seg_losses: per step, the LM part and the mean ``core / T`` of its samples with
            masks (NaN when the step had none).
        seconds: wall time of the run.
        samples_seen: samples trained on by this process.
        skipped: "index: reason" for samples that could not be built (each reported once).
        world_size: processes in the run.
    """

    steps: int
    losses: list[float]
    lm_losses: list[float] = field(default_factory=list)
    seg_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples_seen: int = 0
    skipped: list[str] = field(default_factory=list)
    world_size: int = 1


@dataclass
class EvalResult:
    """Mean teacher-forced losses over samples (eval mode, no gradients)."""

    loss: float
    lm_loss: float
    seg_loss: float  # mean core / T over samples with masks (NaN if none)
    num_samples: int
