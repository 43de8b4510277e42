"""Correction clicks in the stage-3 trainer, on the tiny model: where the recipe says they land."""

from __future__ import annotations

import dataclasses


from finetune.recipe import load_recipe


def test_the_trainer_places_correction_clicks_as_its_recipe_says(tiny_checkpoint):
    from finetune.trainer import Trainer

    recipe = dataclasses.replace(load_recipe("tiny"), correction_point="center")
    assert Trainer.from_recipe(recipe, checkpoint=tiny_checkpoint).objective.correction_point == "center"
    assert Trainer.from_recipe(load_recipe("tiny"), checkpoint=tiny_checkpoint).objective.correction_point == "uniform"
