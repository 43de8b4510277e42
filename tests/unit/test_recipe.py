"""Recipes: every shipped YAML validates; bad keys and values fail with a clear message."""

from pathlib import Path

import pytest
import yaml

from finetune.recipe import CONFIG_DIR, RecipeError, TrainRecipe, load_recipe
from unipixel_model.finetune_targets import LORA_TARGET_REGEX

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


def test_recipe_configs_exist():
    assert {p.stem for p in SHIPPED} >= {"tiny", "3b", "3b_multi_gpu"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_recipe_every_shipped_yaml_loads_and_sets_every_key(path):
    raw = yaml.safe_load(path.read_text())
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert set(raw) <= set(recipe.to_dict())
    assert load_recipe(path.stem) == recipe  # by name too


@pytest.mark.parametrize("name", ["3b", "3b_multi_gpu"])
def test_recipe_3b_follows_the_stage3_recipe(name):
    recipe = load_recipe(name)
    assert (recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout) == (128, 256, 0.1)
    assert (recipe.lr, recipe.sam2_lr, recipe.warmup_ratio, recipe.weight_decay) == (2e-5, 5e-6, 0.03, 0.0)
    assert recipe.frames_per_video == 8 and recipe.bf16 and recipe.train_sam2 and recipe.train_heads
    assert recipe.lora_target_regex == LORA_TARGET_REGEX


def test_recipe_yaml_round_trip(tmp_path: Path):
    recipe = load_recipe("tiny")
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(path) == recipe


def test_recipe_unknown_key_is_named(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora_r: 8\nlearning_rate: 0.1\n")
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['learning_rate'\]"):
        load_recipe(path)


@pytest.mark.parametrize("change, message", [
    ({"lora_dropout": 1.5}, "lora_dropout must be in"),
    ({"grad_accum": 0}, "grad_accum must be > 0"),
    ({"grad_accum": 2.5}, "grad_accum must be int"),
    ({"lr": "fast"}, "lr must be float"),
    ({"bf16": "yes"}, "bf16 must be bool"),
    ({"lora_r": True}, "lora_r must be int"),
    ({"max_steps": 0}, "max_steps must be > 0"),
    ({"warmup_ratio": 1.0}, "warmup_ratio must be in"),
    ({"llm_min_pixels": 20000, "llm_max_pixels": 10000}, "exceeds llm_max_pixels"),
    ({"frames_per_video": 32}, "frames_per_video must be <= 16"),
    ({"sam2_image_size": 100}, "sam2_image_size: SAM 2.s input side must be a positive multiple of 16 .* got 100"),
    ({"sam2_image_size": 0}, "got 0; or null for the checkpoint.s own"),
    ({"lora_target_regex": r".*sam2\..*q_proj$"}, "must not name sam2"),
    ({"sam2_encoder_lr": -1e-5}, "sam2_encoder_lr, weight_decay, max_grad_norm, box_pairwise_weight must be >= 0"),
    ({"box_pairwise_weight": -1.0}, "box_pairwise_weight must be >= 0, got .*-1.0"),
    ({"full_model_modules": ["msk_proj"]}, "full_model_modules needs full_model: true"),
    ({"full_model": True, "full_model_modules": []}, "at least one module name"),
    ({"full_model": True, "full_model_modules": "model"}, "full_model_modules must be list"),
    ({"full_model": True, "full_model_modules": ["model", 3]}, "full_model_modules must be list"),
])
def test_recipe_bad_values_raise(change, message):
    with pytest.raises(RecipeError, match=message):
        TrainRecipe.from_dict({**load_recipe("tiny").to_dict(), **change})


@pytest.mark.parametrize("change, lr, trains", [
    ({}, 5e-4, True),  # tiny: null falls back to sam2_lr
    ({"sam2_encoder_lr": 1e-5}, 1e-5, True),
    ({"sam2_encoder_lr": 0.0}, 0.0, False),  # 0 freezes the image encoder
    ({"sam2_lr": 0.0}, 0.0, False),
    ({"train_sam2": False, "sam2_encoder_lr": 1e-5}, 1e-5, False),  # SAM 2 frozen as a whole
])
def test_the_sam2_encoder_learning_rate_and_whether_the_encoder_trains(change, lr, trains):
    recipe = TrainRecipe.from_dict({**load_recipe("tiny").to_dict(), **change})
    assert (recipe.sam2_encoder_lr_or_default, recipe.trains_sam2_encoder) == (lr, trains)


@pytest.mark.parametrize("modules, trains, frozen, encoder", [
    (None, ["model", "sam2", "msk_proj"], [], True),  # full_model: every module
    (["model", "msk_proj", "lm_head"], ["model", "msk_proj", "lm_head"], ["sam2", "seg_head"], False),
    (["sam2"], ["sam2"], ["model", "lm_head"], True),
])
def test_full_model_modules_choose_what_a_full_model_run_trains(modules, trains, frozen, encoder):
    recipe = TrainRecipe.from_dict({**load_recipe("toy_stills").to_dict(), "full_model_modules": modules})
    assert [recipe.trains_module(m) for m in trains + frozen] == [True] * len(trains) + [False] * len(frozen)
    assert recipe.trains_sam2_encoder is encoder


def test_the_toy_description_phases_train_the_llm_alone():
    """README: The toy model. Phases 3 and 4 must leave SAM 2 (and so every mask from a click, box or brush) as it
    was."""
    for name in ("toy_describe", "toy_describe_text"):
        recipe = load_recipe(name)
        assert recipe.full_model and recipe.trains_module("model") and recipe.trains_module("msk_proj")
        assert not recipe.trains_module("sam2") and not recipe.trains_module("seg_head")
        assert not recipe.trains_sam2_encoder


def test_the_toy_mask_phases_train_sam2_and_the_seg_head_alone():
    """README: The toy model. Phases 5 and 6 must leave the LLM (and so the descriptions' language) as it was."""
    for name in ("toy_masks", "toy_tracks"):
        recipe = load_recipe(name)
        assert recipe.full_model and recipe.trains_sam2 and recipe.trains_module("seg_head")
        assert recipe.trains_sam2_encoder
        assert not any(recipe.trains_module(m) for m in ("model", "lm_head", "msk_proj", "ref_encoder", "ref_proj"))


def test_recipe_accepts_exponent_floats_that_yaml_reads_as_strings(tmp_path: Path):
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 2e-5\nsam2_lr: 5e-6\n")
    assert yaml.safe_load(path.read_text())["lr"] == "2e-5"  # the PyYAML quirk this guards against
    recipe = load_recipe(path)
    assert (recipe.lr, recipe.sam2_lr) == (2e-5, 5e-6)


def test_recipe_missing_name_lists_shipped_ones():
    with pytest.raises(FileNotFoundError, match="tiny"):
        load_recipe("no_such_recipe")


def test_recipe_non_mapping_yaml_fails(tmp_path: Path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(RecipeError, match="expected a mapping"):
        load_recipe(path)
