"""What a recipe trains (``finetune.trainable``): the LR schedule and the optimizer's groups, on a stand-in module."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from finetune.recipe import RecipeError, load_recipe
from finetune.trainable import build_optimizer, cosine_with_warmup, mark_trainable


def test_the_schedule_warms_up_linearly_then_decays_along_a_cosine_to_zero():
    assert [cosine_with_warmup(s, 110, 10) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert cosine_with_warmup(60, 110, 10) == pytest.approx(0.5)  # half way through the decay
    assert cosine_with_warmup(110, 110, 10) == pytest.approx(0.0, abs=1e-12)
    assert cosine_with_warmup(0, 100, 0) == 1.0  # no warm-up


class _Model(nn.Module):
    """Top-level names as in :class:`UniPixelModel`: an LLM, SAM 2 with an image encoder, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(2, 2)
        self.sam2 = nn.ModuleDict({"image_encoder": nn.Linear(2, 2), "sam_mask_decoder": nn.Linear(2, 2)})
        self.seg_head = nn.Linear(2, 2).to(torch.bfloat16)


def test_a_full_model_recipe_trains_its_modules_in_float32_with_one_lr_group_each():
    recipe = dataclasses.replace(load_recipe("toy_masks"), lr=1e-3, sam2_lr=2e-4, sam2_encoder_lr=5e-5,
                                 full_model_modules=["sam2", "seg_head"])
    model = _Model()
    full = mark_trainable(model, recipe)
    assert full == ["sam2.image_encoder.weight", "sam2.image_encoder.bias", "sam2.sam_mask_decoder.weight",
                    "sam2.sam_mask_decoder.bias", "seg_head.weight", "seg_head.bias"]
    assert not model.model.weight.requires_grad and model.seg_head.weight.dtype == torch.float32
    groups = {g["name"]: (g["lr"], len(g["params"])) for g in build_optimizer(model, recipe).param_groups}
    assert groups == {"modules": (1e-3, 2), "sam2": (2e-4, 2), "sam2_encoder": (5e-5, 2)}


def test_a_frozen_image_encoder_gets_no_gradient_and_no_group():
    recipe = dataclasses.replace(load_recipe("toy_clicks"), full_model_modules=["sam2"])
    assert recipe.sam2_encoder_lr == 0.0
    model = _Model()
    assert mark_trainable(model, recipe) == ["sam2.sam_mask_decoder.weight", "sam2.sam_mask_decoder.bias"]
    assert not model.sam2["image_encoder"].weight.requires_grad
    assert [g["name"] for g in build_optimizer(model, recipe).param_groups] == ["sam2"]


def test_a_module_the_model_lacks_is_named_with_the_ones_it_has():
    recipe = dataclasses.replace(load_recipe("toy_clicks"), full_model_modules=["llm"])
    with pytest.raises(RecipeError, match=r"names \['llm'\].*top-level modules are \['model', 'sam2', 'seg_head'\]"):
        mark_trainable(_Model(), recipe)
