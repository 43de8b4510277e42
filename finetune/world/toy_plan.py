"""How long a ``python -m finetune toy`` run trains each phase: ``--minutes`` scales every trainer phase by one factor
to fit a budget on 2 CPU cores, ``--steps-from`` takes the steps a checkpoint's ``toy_training.json`` records, and
the log itself is read here (:func:`training_log`). The phases are :data:`finetune.world.toy.PHASES`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from finetune.recipe import load_recipe

if TYPE_CHECKING:
    from finetune.world.toy import ToyPhase


def trainer_recipes(phases: tuple["ToyPhase", ...]) -> list:
    """The recipes that ``--minutes`` scales: the phases the stage-3 trainer runs (every one but the grounding
    head's, whose time is planned as :data:`GROUNDING_SECONDS`)."""
    return [load_recipe(p.recipe) for p in phases if not p.grounding_steps]


def plan_steps(phases: tuple["ToyPhase", ...], minutes: float | None = None,
               steps_from: Path | None = None) -> dict[str, int]:
    """Phase (recipe name) -> steps to train, for :func:`train_toy`: the whole run scaled to ``minutes`` on 2 CPU
    cores (:func:`scaled_steps`), or the steps the checkpoint ``steps_from`` was trained with (its
    ``toy_training.json``: reproducing it), or {} (every recipe's own steps).

    Raises:
        ValueError: both given, a bad ``minutes``, or a phase ``steps_from``'s log has no steps for.
    """
    if minutes is not None and steps_from is not None:
        raise ValueError("give --minutes or --steps-from, not both: --steps-from already fixes every phase's steps")
    if steps_from is not None:
        if not (Path(steps_from) / "toy_training.json").is_file():
            raise ValueError(f"{Path(steps_from) / 'toy_training.json'} does not exist: --steps-from takes a checkpoint "
                             "that python -m finetune toy wrote, e.g. unipixel_model/toy")
        logged = {p["recipe"]: p["steps"] for p in training_log(steps_from)["phases"]  # the last run of each
                  if isinstance(p, dict) and isinstance(p.get("steps"), int) and not isinstance(p["steps"], bool)}
        missing = [p.recipe for p in phases if p.recipe not in logged]
        if missing:
            raise ValueError(f"{Path(steps_from) / 'toy_training.json'} records no steps for {missing} (it has "
                             f"{sorted(logged)}); give --minutes instead, or leave those phases out with --phases")
        return {p.recipe: logged[p.recipe] for p in phases}
    if minutes is not None:
        return scaled_steps(trainer_recipes(phases), minutes, GROUNDING_SECONDS * sum(1 for p in phases
                                                                                      if p.grounding_steps))
    return {}


def training_log(checkpoint: Path) -> dict:
    """The ``toy_training.json`` of a checkpoint: ``phases``, ``history`` (losses per step) and ``seconds``; empty
    when it has none.

    Raises:
        ValueError: the file is there but is not a JSON object (naming it and what to do).
    """
    path = Path(checkpoint) / "toy_training.json"
    try:
        log = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}); move it away to start the loss history anew") from err
    if not isinstance(log, dict):
        raise ValueError(f"{path} holds a {type(log).__name__}, not the object python -m finetune toy writes; move it "
                         "away to start the loss history anew")
    return {"phases": log.get("phases", []), "history": log.get("history", []), "seconds": log.get("seconds", 0)}


# What --minutes plans with: seconds per step on 2 idle CPU cores, the seconds each trainer phase spends besides its
# steps (rendering its clips, loading and saving the model) and the seconds of the grounding head's whole phase.
# Measured in one run of python -m finetune toy --steps-from unipixel_model/toy (2026-12-07, 42 min 55 s on idle
# cores with jemalloc preloaded: 1,901 s of trainer steps, 204 s for the grounding head's phase, 470 s besides).
# The plans before: 0.068, 0.230, 0.029, 0.035, 0.111, 0.236, 0.127 s a step, 66 s besides, 310 s for the head
# (51.5 minutes, before jemalloc and phase 7's batched encoding); 0.085, 0.292, 0.033, 0.044, 0.147, 0.303, 0.169,
# 105 s and 355 s before fused AdamW, the render pool and the frame-folder decode.
STEP_SECONDS = {"toy_stills": 0.058, "toy_videos": 0.177, "toy_describe": 0.024, "toy_describe_text": 0.029,
                "toy_masks": 0.092, "toy_tracks": 0.197, "toy_clicks": 0.103}
RENDER_SECONDS = 67.0
GROUNDING_SECONDS = 204.0


def planned_seconds(recipes: list) -> float:
    """Seconds the phases of these recipes take on 2 idle CPU cores, rendering included (:data:`STEP_SECONDS`; an
    unknown recipe is planned at 0.5 s a step)."""
    return sum(r.max_steps * STEP_SECONDS.get(r.name, 0.5) + RENDER_SECONDS for r in recipes)


def scaled_steps(recipes: list, minutes: float, fixed_seconds: float = 0.0) -> dict[str, int]:
    """Recipe name -> ``max_steps``, every phase's steps scaled by one factor (never above the recipe's own) so that
    :func:`planned_seconds` plus ``fixed_seconds`` (phases that are not scaled) fits ``minutes``.

    Raises:
        ValueError: ``minutes`` is not a finite number, or does not cover the rendering and the fixed phases (with
            the least that does).
    """
    if not math.isfinite(minutes):  # nan would plan the full run without a word (min(1.0, nan) is 1.0)
        raise ValueError(f"--minutes {minutes:g} is not a number of minutes; give e.g. --minutes 45")
    if not recipes:  # only the grounding head's phase
        return {}
    untrained = RENDER_SECONDS * len(recipes) + fixed_seconds
    train = planned_seconds(recipes) - RENDER_SECONDS * len(recipes)
    if minutes * 60 <= untrained:
        raise ValueError(f"--minutes {minutes:g} leaves no time to train: rendering, loading and saving "
                         f"{len(recipes)} phases{' and the grounding head' if fixed_seconds else ''} takes about "
                         f"{untrained / 60:.0f} minutes; give at least {untrained / 60 + 1:.0f}")
    factor = min(1.0, (minutes * 60 - untrained) / train)
    return {r.name: max(1, int(r.max_steps * factor)) for r in recipes}
