"""Held-out splits of training samples by Label Studio task (what a run scores before and after training)."""

from __future__ import annotations

import hashlib

from finetune.sample import TrainSample


def split_by_task(samples: list[TrainSample], holdout_fraction: float, seed: int = 0
                  ) -> tuple[list[TrainSample], list[TrainSample]]:
    """Split into (train, held-out) by Label Studio task, so no task is on both sides.

    A task is held out by a stable hash of its id (and ``seed``), so it stays on its side as the
    project grows and the held-out scores of successive runs compare. Samples without ``task_id``
    count as a task each. At least one task is held out when ``holdout_fraction`` > 0 and there
    are two or more tasks; never all of them.

    Raises:
        ValueError: when ``holdout_fraction`` is outside [0, 1).
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    groups: dict[object, list[int]] = {}
    for index, sample in enumerate(samples):
        key = ("task", sample.task_id) if sample.task_id is not None else ("sample", index)
        groups.setdefault(key, []).append(index)
    rank = {key: _stable_fraction(f"{seed}:{key}") for key in groups}
    held_keys = {key for key in groups if rank[key] < holdout_fraction}
    ordered = sorted(groups, key=rank.get)
    if holdout_fraction > 0 and len(groups) >= 2 and not held_keys:
        held_keys = {ordered[0]}
    if len(groups) >= 1 and len(held_keys) == len(groups):
        held_keys.discard(ordered[-1])
    held = {i for key in held_keys for i in groups[key]}
    return ([s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held])


def _stable_fraction(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (the same in every process and Python version)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2 ** 32
