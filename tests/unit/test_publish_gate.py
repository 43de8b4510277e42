"""The fine-tune's publish gate (``finetune.jobs.publish_refusal``): what the held-out reports before and after
training must show for a version to be published, and the reason a run gives when it is not."""

from __future__ import annotations

from finetune.jobs import publish_refusal


def _report(score: float, share: float | None = None, media: int = 2) -> dict:
    report = {"score": score, "calls": 4}
    if share is not None:
        report["text_answers_with_mask"] = {"share": share, "media": media}
    return report


def test_a_run_no_better_on_its_held_out_tasks_is_not_published():
    reason = publish_refusal(_report(0.60, 1.0), _report(0.55, 1.0), min_improvement=0.0)
    assert reason == ("held-out score 0.5500 after training is not above 0.6000 before by the recipe's "
                      "min_improvement 0.0")
    assert publish_refusal(_report(0.60, 1.0), _report(0.61, 1.0), min_improvement=0.02) is not None


def test_a_run_that_stops_the_model_answering_text_queries_with_a_mask_is_not_published():
    """Box-only tracks train ``[1] <|seg|>`` answers only: a toy fine-tuned on 16 of them answered "S" to every text
    query, and its held-out box score said nothing against it."""
    reason = publish_refusal(_report(0.70, 1.0), _report(0.72, 0.0), min_improvement=0.0)
    assert reason is not None
    assert "answers a segmentation question with a mask on 0 of 2 held-out media, against 2 before" in reason
    assert "text queries" in reason
    assert "train_llm_on_prompts: false" in reason  # what to change: the recipe key that prevents it


def test_a_better_run_that_keeps_answering_text_queries_is_published():
    assert publish_refusal(_report(0.60, 1.0), _report(0.65, 1.0), min_improvement=0.0) is None
    assert publish_refusal(_report(0.60, 0.5), _report(0.65, 0.5), min_improvement=0.0) is None
    assert publish_refusal(_report(0.60, 0.0), _report(0.60, 0.5), min_improvement=0.0) is None
    assert publish_refusal(_report(0.0), _report(0.0), min_improvement=0.0) is None  # no held-out media: as before


def test_a_job_trains_at_the_side_the_server_serves_at_unless_the_recipe_names_one():
    """UNIPIXEL_SAM2_IMAGE_SIZE reaches the worker's recipe (so /versions scores the served model); a recipe's own
    sam2_image_size wins; unset, the checkpoint's own side stays (None)."""
    import dataclasses

    from finetune.jobs import served_recipe
    from finetune.recipe import load_recipe
    from finetune.settings import FinetuneSettings

    recipe = load_recipe("toy_active")
    assert recipe.sam2_image_size is None
    assert served_recipe(recipe, FinetuneSettings(sam2_image_size=192)).sam2_image_size == 192
    assert served_recipe(recipe, FinetuneSettings()).sam2_image_size is None
    own = dataclasses.replace(recipe, sam2_image_size=128)
    assert served_recipe(own, FinetuneSettings(sam2_image_size=192)).sam2_image_size == 128
