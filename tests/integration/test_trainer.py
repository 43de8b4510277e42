"""Fine-tuning on the tiny model: batches, the loss falling, adapters saved and hot-swapped.

One module-scoped run trains the ``tiny`` recipe (16 steps) on 16 synthetic samples (4 of each
kind) over moving-square videos, saves adapter A, trains 16 more cheap steps on the text-only
kinds and saves adapter B. The tests then check that run and swap A/B/base on a fresh model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from finetune.batch import BatchBuilder
from finetune.recipe import RecipeError, load_recipe
from finetune.sample import TrainSample
from finetune.train_results import EvalResult, TrainResult
from finetune.trainer import Trainer
from finetune.world import writers
from unipixel_model.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, MODULE_WEIGHTS, RECIPE_FILE, AdapterSwitcher
from unipixel_model.errors import CheckpointError, UniPixelInputError
from unipixel_model.feature_cache import VisionCache
from unipixel_model.finetune_targets import LORA_TARGET_REGEX
from unipixel_model.loading import from_pretrained, read_config
from unipixel_model.media import load_frames
from unipixel_model.session import InferenceSession
from unipixel_model.tokenization import load_tokenizer
from unipixel_model.types import BoxPrompt, PointPrompt

SIZE, FRAMES, SQUARE = 64, 4, 20
SEG_QUESTION, SEG_ANSWER = "Please segment the red square in this video.", "Sure, it is <|seg|>."


def _moving_square(directory: Path, seed: int) -> tuple[np.ndarray, tuple[int, int]]:
    """A 4-frame 64x64 PNG folder with a red square moving right; returns masks bool [T, H, W]."""
    directory.mkdir(parents=True)
    y0, x0 = (int(v) for v in np.random.default_rng(seed).integers(4, 24, 2))
    masks = np.zeros((FRAMES, SIZE, SIZE), dtype=bool)
    for t in range(FRAMES):
        frame = np.full((SIZE, SIZE, 3), 30, dtype=np.uint8)
        x = x0 + 5 * t
        frame[y0:y0 + SQUARE, x:x + SQUARE] = (220, 40, 40)
        masks[t, y0:y0 + SQUARE, x:x + SQUARE] = True
        writers.write_image(frame, directory / f"{t:03d}.png")
    return masks, (y0, x0)


def _dataset(root: Path) -> list[TrainSample]:
    samples = []
    for i in range(4):
        media = root / f"video{i}"
        masks, (y0, x0) = _moving_square(media, i)
        frames = [0, 1, 3]  # odd T: the LLM pads to 4 frames, the <|mem|> prefix counts 3
        targets = masks[frames][None]
        samples += [
            TrainSample("seg", str(media), frames, SEG_QUESTION, SEG_ANSWER, target_masks=targets, task_id=i),
            TrainSample("ref", str(media), frames, "What is [1] <|ref|>?", "A red square.",
                        prompts=[PointPrompt(x0 + 10.0, y0 + 10.0, 0)], task_id=i),
            TrainSample("mem", str(media), frames, "[1] <|ref|> Please localize the relevant objects with IDs.",
                        "[1] <|seg|>", prompts=[BoxPrompt(x0, y0, x0 + SQUARE, y0 + SQUARE, 3)],
                        target_masks=targets, task_id=i),
            TrainSample("region", str(media), frames, "What color is [1]?", "[1] is red.",
                        region_masks=targets, task_id=i),
        ]
    return samples


@dataclass
class Run:
    trainer: Trainer
    samples: list[TrainSample]
    before: EvalResult
    after: EvalResult
    result: TrainResult
    progress: list[tuple]
    adapter_a: Path
    adapter_b: Path


@pytest.fixture(scope="module")
def run(tiny_checkpoint, tmp_path_factory) -> Iterator[Run]:
    # The tiny model's ops are too small to gain from 2 threads, and 2 threads are several times
    # slower when other processes share the 2 cores; restored when the module's tests are done.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _train(tiny_checkpoint, tmp_path_factory.mktemp("finetune"))
    torch.set_num_threads(threads)


def _train(tiny_checkpoint: Path, root: Path) -> Run:
    samples = _dataset(root / "media")
    trainer = Trainer.from_recipe(load_recipe("tiny"), checkpoint=tiny_checkpoint, device="cpu")
    before = trainer.evaluate(samples)
    calls: list[tuple] = []
    result = trainer.train(samples, progress=lambda *args: calls.append(args))
    after = trainer.evaluate(samples)
    adapter_a = trainer.save_adapter(root / "adapters" / "a")
    trainer.train([s for s in samples if s.kind in ("ref", "region")])  # cheap steps: another adapter
    adapter_b = trainer.save_adapter(root / "adapters" / "b")
    return Run(trainer, samples, before, after, result, calls, adapter_a, adapter_b)


def test_batch_labels_supervise_only_the_response(tiny_checkpoint, tmp_path):
    samples = _dataset(tmp_path)
    model_config = read_config(tiny_checkpoint)
    tokenizer = load_tokenizer(tiny_checkpoint)
    builder = BatchBuilder(tokenizer, model_config, load_recipe("tiny"))
    for sample in samples[:4]:
        batch = builder.build(sample)
        ids, labels = batch.inputs.input_ids[0], batch.labels
        supervised = tokenizer.decode(ids[labels != -100].tolist(), skip_special_tokens=False)
        prompt = tokenizer.decode(ids[labels == -100].tolist(), skip_special_tokens=False)
        assert supervised == sample.answer + "<|im_end|>"
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert int((ids == model_config.qwen.video_token_id).sum()) == 32  # 3 frames padded to 2 pairs, 4x4 each
        if sample.kind in ("seg", "mem"):
            side = model_config.sam2_image_size
            assert tuple(batch.target_masks.shape) == (3, 1, side, side)
            assert tuple(batch.sam2_frames.shape) == (3, 3, side, side)
            assert batch.target_masks[1, 0].float().mean() == pytest.approx((SQUARE / SIZE) ** 2, rel=0.05)
        if sample.kind == "ref":
            x, y = sample.prompts[0].x_px, sample.prompts[0].y_px
            assert batch.inputs.ref_prompts[0].coords_sam.tolist() == [[x * 256 / SIZE, y * 256 / SIZE]]
        if sample.kind == "region":
            assert prompt.count("Here is a video with 3 frames denoted as <1> to <3>.") == 1
            assert "[1]: <1>-<2> <|mem|> <3>-<4> <|mem|>" in prompt
            assert int((ids == model_config.mem_token_id).sum()) == 2 == batch.inputs.refer_mask.shape[0]


def test_trainer_loss_goes_down(run: Run):
    assert run.result.steps == 16 and len(run.result.losses) == 16
    assert all(math.isfinite(x) for x in run.result.losses)
    assert run.result.samples_seen == 16 and not run.result.skipped
    # the same 16 samples, eval mode, before and after: the total, LM and mask losses all fall
    assert run.after.loss < 0.7 * run.before.loss, (run.before, run.after)
    assert run.after.lm_loss < run.before.lm_loss
    assert run.after.seg_loss < 0.7 * run.before.seg_loss
    assert [c[:2] for c in run.progress] == [(s, 16) for s in range(1, 17)]
    assert all(eta >= 0 for *_, eta in run.progress) and run.progress[-1][3] == 0


def test_trainer_lora_wraps_only_the_anchored_targets(run: Run):
    wrapped = run.trainer.lora_modules
    assert len(wrapped) == 2 * 2 + 2 * 4  # 2 ViT blocks (qkv, proj) + 2 LLM layers (q, k, v, o)
    assert all(re.fullmatch(LORA_TARGET_REGEX, name) for name in wrapped)
    assert not [n for n in wrapped if n.startswith("sam2.")]
    full = run.trainer.module_params
    assert "seg_head.1.weight" in full and "msk_proj.0.weight" in full
    assert any(n.startswith("sam2.image_encoder.") for n in full)
    assert not any("lora_" in n or n.startswith("model.") for n in full)


def test_a_zero_encoder_lr_freezes_sam2s_image_encoder_and_trains_the_rest_of_sam2(tiny_checkpoint, tmp_path):
    """``sam2_encoder_lr: 0`` (the toy's active-learning recipe): SAM 2's image encoder stays frozen (no gradient graph
    through it, not in the adapter), its decoder and memory still train at ``sam2_lr``."""
    recipe = dataclasses.replace(load_recipe("tiny"), sam2_encoder_lr=0.0, max_steps=2)
    trainer = Trainer.from_recipe(recipe, checkpoint=tiny_checkpoint, device="cpu")
    encoder = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
               if n.startswith("sam2.image_encoder.")}
    decoder = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
               if n.startswith("sam2.sam_mask_decoder.")}
    assert encoder and decoder
    assert not trainer.objective.train_backbone
    assert not [n for n in trainer.module_params if n.startswith("sam2.image_encoder.")]
    assert [n for n in trainer.module_params if n.startswith("sam2.sam_mask_decoder.")]
    trainer.train([s for s in _dataset(tmp_path / "media") if s.kind in ("seg", "mem")])
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(params[n].float(), p.float()) for n, p in encoder.items())
    assert any(not torch.equal(params[n], p.to(params[n].dtype)) for n, p in decoder.items())
    saved = load_file(str(trainer.save_adapter(tmp_path / "adapter") / MODULE_WEIGHTS))
    assert not [k for k in saved if k.startswith("sam2.image_encoder.")] and "sam2.no_mem_embed" in saved


def test_full_model_modules_train_the_listed_modules_and_nothing_else(tiny_checkpoint, tmp_path):
    """``full_model_modules`` (the toy's description phases): a full-model run trains the listed top-level modules;
    SAM 2 and every other module keep their weights, and SAM 2 runs in eval mode."""
    recipe = dataclasses.replace(load_recipe("tiny"), full_model=True, full_model_modules=["model", "msk_proj"],
                                 max_steps=2)
    trainer = Trainer.from_recipe(recipe, checkpoint=tiny_checkpoint, device="cpu")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    assert {n.split(".")[0] for n, p in trainer.model.named_parameters() if p.requires_grad} == {"model", "msk_proj"}
    assert not trainer.objective.train_backbone
    modes = []
    hook = trainer.model.sam2.sam_mask_decoder.register_forward_pre_hook(lambda m, _: modes.append(m.training))
    try:
        trainer.train([s for s in _dataset(tmp_path / "media") if s.kind in ("region", "seg")])
    finally:
        hook.remove()
    assert modes and not any(modes)  # SAM 2 decoded the seg samples in eval mode
    changed = {n.split(".")[0] for n, p in trainer.model.named_parameters()
               if not torch.equal(p.float(), before[n].float())}
    assert changed and changed <= {"model", "msk_proj"}


def test_prompt_samples_can_leave_the_llm_alone(tiny_checkpoint, tmp_path):
    """``train_llm_on_prompts: false`` (the toy's active-learning recipe): ``mem`` samples (clicks, boxes, masks and
    box tracks, answered by the fixed ``[1] <|seg|>``) train SAM 2 and the seg head, never the LLM's LoRA or the
    layers before it, so a run of box-only tracks cannot change how the model answers a text query (it made the toy
    answer "S" to every one). Their LM loss is still reported. A ``seg`` sample (a text query) trains the LoRA."""
    recipe = dataclasses.replace(load_recipe("tiny"), train_llm_on_prompts=False, max_steps=3)
    samples = _dataset(tmp_path / "media")
    trainer = Trainer.from_recipe(recipe, checkpoint=tiny_checkpoint, device="cpu")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    result = trainer.train([s for s in samples if s.kind == "mem"])
    params = dict(trainer.model.named_parameters())
    changed = {n for n, p in before.items() if not torch.equal(params[n], p)}
    assert changed and all(n.startswith(("sam2.", "seg_head.")) for n in changed), sorted(changed)[:5]
    assert any(n.startswith("seg_head.") for n in changed)
    assert all(math.isfinite(v) and v > 0 for v in result.lm_losses)
    trainer.train([s for s in samples if s.kind == "seg"])
    assert any("lora_" in n and not torch.equal(params[n], p) for n, p in before.items())
    # a mask prompt on its only frame has no mask loss: with the LLM left alone the sample trains nothing, and the
    # step goes on without a backward (it raised "element 0 of tensors does not require grad")
    masks, (y0, x0) = _moving_square(tmp_path / "still", 7)
    still = TrainSample("mem", str(tmp_path / "still"), [0], "[1] <|ref|> Please localize the relevant objects with IDs.",
                        "[1] <|seg|>", prompts=[BoxPrompt(x0, y0, x0 + SQUARE, y0 + SQUARE, 0)],
                        target_masks=masks[None, :1], task_id=9, sam_condition="mask")
    assert trainer.train([still]).steps == 3


def test_a_box_only_track_trains_through_the_projection_and_pairwise_terms(tiny_checkpoint, tmp_path, monkeypatch):
    """A box-only track (``box_supervised``, as ``video_tracking`` gives): its mask loss is BoxInst's, the projection
    term plus the pairwise one over the frame's colours, on every frame SAM 2 scored; the step trains SAM 2."""
    from finetune import losses

    masks, (y0, x0) = _moving_square(tmp_path / "video", 0)
    boxes = np.zeros_like(masks)
    for t in range(FRAMES):  # a loose box around the square, as an annotator draws it
        boxes[t, max(0, y0 - 3):y0 + SQUARE + 3, max(0, x0 + 5 * t - 3):x0 + 5 * t + SQUARE + 3] = True
    sample = TrainSample("mem", str(tmp_path / "video"), [0, 1, 2, 3],
                         "[1] <|ref|> Please localize the relevant objects with IDs.", "[1] <|seg|>",
                         prompts=[BoxPrompt(x0 - 3.0, y0 - 3.0, x0 + SQUARE + 3.0, y0 + SQUARE + 3.0, 0)],
                         target_masks=boxes[None], task_id=0, box_supervised=True)
    calls = []
    pairwise = losses.box_pairwise_loss
    monkeypatch.setattr(losses, "box_pairwise_loss", lambda *a: calls.append(a[2].shape) or pairwise(*a))
    trainer = Trainer.from_recipe(dataclasses.replace(load_recipe("tiny"), max_steps=1), checkpoint=tiny_checkpoint,
                                  device="cpu")
    decoder = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
               if n.startswith("sam2.sam_mask_decoder.")}
    result = trainer.train([sample])
    assert result.steps == 1 and math.isfinite(result.losses[0]) and not result.skipped
    assert len(calls) == FRAMES and len(set(calls)) == 1 and calls[0][0] == 8  # one affinity per scored frame
    params = dict(trainer.model.named_parameters())
    assert any(not torch.equal(params[n], p) for n, p in decoder.items())


def test_full_model_modules_naming_a_module_the_model_lacks_is_refused(tiny_checkpoint):
    recipe = dataclasses.replace(load_recipe("tiny"), full_model=True, full_model_modules=["model", "llm"])
    with pytest.raises(RecipeError, match=r"full_model_modules names \['llm'\].*top-level modules are"):
        Trainer.from_recipe(recipe, checkpoint=tiny_checkpoint, device="cpu")


def test_trainer_adapter_directory_layout(run: Run):
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, MODULE_WEIGHTS, RECIPE_FILE):
        assert (run.adapter_a / name).is_file()
    config = json.loads((run.adapter_a / ADAPTER_CONFIG).read_text())
    assert (config["r"], config["lora_alpha"], config["bias"]) == (8, 16, "none")
    assert config["target_modules"] == LORA_TARGET_REGEX
    lora = load_file(str(run.adapter_a / ADAPTER_WEIGHTS))
    assert len(lora) == 2 * len(run.trainer.lora_modules)
    assert all(k.startswith("base_model.model.") and ".lora_" in k for k in lora)
    assert set(load_file(str(run.adapter_a / MODULE_WEIGHTS))) == set(run.trainer.module_params)
    assert load_recipe(run.adapter_a / RECIPE_FILE) == run.trainer.recipe
    with pytest.raises(FileExistsError):
        run.trainer.save_adapter(run.adapter_a)


def test_a_frame_folder_sample_decodes_only_its_frames(tiny_checkpoint, tmp_path, monkeypatch):
    """A training sample uses 1-8 frames of a folder that may hold hundreds: the builder decodes those alone (a toy
    description step spent a third of its time decoding all 16 frames of its clip), and a frame past the folder's
    end is a clear error, not an IndexError."""
    from unipixel_model import media as media_module

    decoded = []
    read = media_module._read_image
    monkeypatch.setattr(media_module, "_read_image", lambda path: decoded.append(path.name) or read(path))
    builder = BatchBuilder(load_tokenizer(tiny_checkpoint), read_config(tiny_checkpoint), load_recipe("tiny"))
    sample, ref = _dataset(tmp_path)[:2]  # frames [0, 1, 3] of a 4-frame folder
    batch = builder.build(sample)
    assert decoded == ["000.png", "001.png", "003.png"] and tuple(batch.sam2_frames.shape[:1]) == (3,)
    with pytest.raises(UniPixelInputError, match="has 4 frames; the sample uses frame 4"):
        builder.build(dataclasses.replace(ref, frame_idx=[0, 4]))


def test_batches_from_media_stored_downscaled_match_the_full_size_ones(tiny_checkpoint, tmp_path):
    """UNIPIXEL_FRAME_MAX_SIDE in the worker: frames stored with a longer side of 16 px build the batches of the 64 px
    media (targets, prompts and region tokens in the media's own pixels; the model reads resized frames anyway), and
    the media are kept at 16 px (a 10-minute 1080p clip took 112 GB of the worker's TMPDIR at its own size)."""
    model_config, tokenizer, recipe = read_config(tiny_checkpoint), load_tokenizer(tiny_checkpoint), load_recipe("tiny")
    full, small = BatchBuilder(tokenizer, model_config, recipe), BatchBuilder(tokenizer, model_config, recipe,
                                                                          max_side=SIZE // 4)
    for sample in _dataset(tmp_path)[:4]:
        a, b = full.build(sample), small.build(sample)
        assert small.frames(sample.media).stored_hw == (SIZE // 4, SIZE // 4)
        assert small.frames(sample.media).size_hw == full.frames(sample.media).stored_hw == (SIZE, SIZE)
        assert torch.equal(a.inputs.input_ids, b.inputs.input_ids) and torch.equal(a.labels, b.labels)
        assert [r.coords_sam.tolist() for r in a.inputs.ref_prompts] == [r.coords_sam.tolist()
                                                                         for r in b.inputs.ref_prompts]
        if a.target_masks is not None:
            assert torch.equal(a.target_masks, b.target_masks) and a.sam2_frames.shape == b.sam2_frames.shape
        if sample.kind == "region":
            assert torch.equal(a.inputs.refer_mask, b.inputs.refer_mask)


def test_holdout_evaluation_on_media_stored_downscaled_scores_masks_at_the_media_size(tiny_checkpoint, tmp_path):
    """The fine-tune's held-out evaluation decodes its media with the worker's UNIPIXEL_FRAME_MAX_SIDE too: prompts
    and the annotated masks stay in the media's own pixels, so the session must answer in them."""
    from finetune.evaluate import evaluate_holdout

    model, tokenizer = from_pretrained(tiny_checkpoint).eval(), load_tokenizer(tiny_checkpoint)
    samples = [s for s in _dataset(tmp_path)[:4] if s.kind in ("seg", "mem")]
    report = evaluate_holdout(model, tokenizer, samples, max_new_tokens=4, max_side=SIZE // 4)
    assert [c.kind for c in report.calls] == ["text", "box"]
    assert all(len(c.j) == 3 for c in report.calls)  # the sample's 3 frames, scored against 64 px masks


def test_holdout_evaluation_decodes_each_media_once(tiny_checkpoint, tmp_path, monkeypatch):
    """A task's held-out samples share its media (a 10-minute video with 50 samples was decoded 50 times, before and
    after training): the evaluation decodes it once for all of them."""
    import finetune.evaluate as evaluate

    decoded = []

    def counting_load(media, **kwargs):
        decoded.append(str(media))
        return load_frames(media, **kwargs)

    monkeypatch.setattr(evaluate, "load_frames", counting_load)
    model, tokenizer = from_pretrained(tiny_checkpoint).eval(), load_tokenizer(tiny_checkpoint)
    samples = [s for s in _dataset(tmp_path)[:8] if s.kind in ("seg", "mem")]  # 2 media, 2 samples each
    report = evaluate.evaluate_holdout(model, tokenizer, samples, max_new_tokens=4)
    assert len(report.calls) == 4
    assert decoded == sorted({s.media for s in samples}), decoded


def test_evaluate_skips_samples_that_cannot_be_built(run: Run):
    broken = TrainSample("ref", str(run.adapter_a / "missing"), [0], "What is <|ref|>?", "x",
                         prompts=[PointPrompt(1, 1, 0)])
    assert run.trainer.evaluate([broken, run.samples[1]]).num_samples == 1


def _outputs(model, tokenizer, media: str) -> tuple[torch.Tensor, ...]:
    """Prefill logits of a fixed chat and the mask logits of a session segment() on the same video."""
    builder = BatchBuilder(tokenizer, model.config, load_recipe("tiny"))
    sample = TrainSample("region", media, [0, 2], "What color is [1]?", "[1] is red.",
                         region_masks=np.ones((1, 2, SIZE, SIZE), dtype=bool))
    with torch.no_grad():
        prefill = model.prefill(builder.build(sample).inputs)
        session = InferenceSession.open(model, tokenizer, media)
        session.vision_cache = VisionCache(min_pixels=112 * 112, base_max_pixels=112 * 112)  # small ViT input
        track = session.segment(SEG_QUESTION, forced_answer=SEG_ANSWER).tracks[0]
    return prefill.logits, prefill.hidden_pre_norm, track.low_res_logits


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_adapter_switcher_swaps_adapters_and_restores_the_base_bit_exactly(run: Run, tiny_checkpoint):
    model = from_pretrained(tiny_checkpoint)
    tokenizer = load_tokenizer(tiny_checkpoint)
    media = run.samples[0].media
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    base = _outputs(model, tokenizer, media)
    switcher = AdapterSwitcher(model)
    switcher.activate(run.adapter_a)
    assert switcher.active == str(run.adapter_a.resolve())
    out_a = _outputs(model, tokenizer, media)
    assert all((x - y).abs().max() > 1e-4 for x, y in zip(out_a, base))
    switcher.activate(run.adapter_b)
    out_b = _outputs(model, tokenizer, media)
    assert not _same(out_b, out_a)
    # the loaded adapter reproduces the trained model (which ends in state B)
    trained = _outputs(run.trainer.model, tokenizer, media)
    assert all(torch.allclose(x, y, atol=1e-5, rtol=1e-5) for x, y in zip(out_b, trained))
    switcher.activate(run.adapter_a)
    assert _same(_outputs(model, tokenizer, media), out_a)
    switcher.activate(None)
    assert switcher.active is None
    assert _same(_outputs(model, tokenizer, media), base)
    state = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora_" not in k}
    assert state.keys() == base_state.keys()
    assert all(torch.equal(state[k], base_state[k]) for k in base_state)


def test_adapter_switcher_evicts_old_adapters_and_rejects_bad_directories(run: Run, tiny_checkpoint, tmp_path):
    model = from_pretrained(tiny_checkpoint)
    tokenizer = load_tokenizer(tiny_checkpoint)
    media = run.samples[0].media
    switcher = AdapterSwitcher(model, max_loaded=1)
    switcher.activate(run.adapter_a)
    out_a = _outputs(model, tokenizer, media)
    switcher.activate(run.adapter_b)
    assert list(model.peft_config) == ["adapter_2"]  # A was deleted
    switcher.activate(run.adapter_a)  # injected again from disk
    assert _same(_outputs(model, tokenizer, media), out_a)
    with pytest.raises(CheckpointError, match="has no adapter_config.json"):
        switcher.activate(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(run.adapter_b, bad)
    save_file({"seg_head.1.weight": torch.zeros(3, 3)}, str(bad / MODULE_WEIGHTS))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        switcher.activate(bad)
    assert switcher.active == str(run.adapter_a.resolve())  # a failed switch changes nothing
    assert _same(_outputs(model, tokenizer, media), out_a)


def test_a_recipe_side_trains_sam2_at_it_and_the_checkpoint_serves_at_it(tiny_checkpoint, tmp_path):
    """``sam2_image_size`` (the toy's phases): the run feeds SAM 2 frames of that side, and the saved full-model
    checkpoint records it, so the session serves at the side the weights last trained at."""
    from unipixel_model.loading import read_config

    assert read_config(tiny_checkpoint).sam2_image_size == 256
    recipe = dataclasses.replace(load_recipe("tiny"), full_model=True, sam2_image_size=128, max_steps=1)
    trainer = Trainer.from_recipe(recipe, checkpoint=tiny_checkpoint, device="cpu")
    sides = []
    hook = trainer.model.sam2.image_encoder.register_forward_pre_hook(lambda m, args: sides.append(args[0].shape[-1]))
    try:
        result = trainer.train([s for s in _dataset(tmp_path / "media") if s.kind == "mem"][:1])
    finally:
        hook.remove()
    assert result.steps == 1 and sides and set(sides) == {128}
    assert read_config(trainer.save_checkpoint(tmp_path / "out")).sam2_image_size == 128
