"""Stage-3 LoRA fine-tuning of UniPixel on :class:`TrainSample` s (the recipe of spec §5).

Typical use (what the RQ job does)::

    trainer = Trainer.from_recipe(load_recipe("3b"))
    result = trainer.train(samples, progress=lambda step, total, loss, eta_s: ...)
    trainer.save_adapter(model_dir / version)

Features, each a :class:`TrainRecipe` field (what is trained, and how, is :mod:`finetune.trainable`):

* LoRA (peft, injected in place so the model stays a :class:`UniPixelModel`) on the anchored
  attention targets of ``LORA_TARGET_REGEX``; the run fails if a SAM 2 module would be wrapped.
* ``train_heads`` / ``train_sam2`` / ``train_embeddings``: full training of the UniPixel heads, of
  SAM 2 (LR ``sam2_lr``; frozen SAM 2 stays in eval mode) and of the embeddings.
* AdamW with one parameter group per LR, linear warm-up then cosine decay, gradient accumulation,
  global-norm clipping. Trainable parameters are float32; bf16 autocast on CUDA only (``bf16``).
* ``gradient_checkpointing`` of the ViT and LLM layers: much less activation memory, ~30 % slower.
* ``torch.distributed``: with ``WORLD_SIZE`` > 1 (``torchrun``), DDP with unused-parameter detection
  (samples of different kinds use different modules), per-rank sample shards, rank-0-only saving.
  Only world size 1 is exercised by the tests.

Deviation from the official code: SAM 2's ``num_objects`` is the sample's own object count, not an
all-reduced average over ranks (ranks may hold samples of different kinds, and a collective call
on only some ranks would hang). With world size 1 the two are identical.

The trainer mutates the model it is given (LoRA layers, trained weights); load a fresh model per run.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from finetune.adapter_io import save_adapter
from finetune.batch import BatchBuilder, TrainBatch
from finetune.distributed import init_distributed
from finetune.losses import SegLossWeights
from finetune.objective import UniPixelObjective
from finetune.recipe import TrainRecipe
from finetune.sample import SampleError, TrainSample
from finetune.train_results import EvalResult, TrainResult
from finetune.trainable import ADAPTER_NAME, build_optimizer, cosine_with_warmup, inject_lora, mark_trainable
from unipixel_model.errors import MediaDecodeError, TokenCountError, UniPixelInputError

logger = logging.getLogger(__name__)

_SAMPLE_ERRORS = (SampleError, UniPixelInputError, MediaDecodeError, TokenCountError)

ProgressCallback = Callable[[int, int, float, float], None]  # (step, total_steps, loss, eta_s)


class Trainer:
    """Fine-tunes a :class:`UniPixelModel` in place with the given recipe.

    Args:
        model: the model to train (on its target device; float32 or bf16 weights).
        tokenizer: its tokenizer.
        recipe: the :class:`TrainRecipe`.
    Raises:
        RuntimeError: when the LoRA targets match no module or would wrap a SAM 2 module.
    """

    def __init__(self, model: nn.Module, tokenizer, recipe: TrainRecipe, frame_max_side: int | None = None) -> None:
        self.model, self.tokenizer, self.recipe = model, tokenizer, recipe
        self.dist = init_distributed()
        self.device = model.lm_head.weight.device
        _seed_everything(recipe.seed + self.dist.rank)
        self.lora_modules = [] if recipe.full_model else inject_lora(model, recipe)
        self.module_params = mark_trainable(model, recipe)
        if recipe.gradient_checkpointing:  # non-reentrant: works with frozen inputs and DDP's unused params
            model.model.activation_checkpointing_enable({"use_reentrant": False})
        autocast = torch.bfloat16 if recipe.bf16 and self.device.type == "cuda" else None
        self.objective = UniPixelObjective(model, train_backbone=recipe.trains_sam2_encoder, autocast_dtype=autocast,
                                           train_llm_on_prompts=recipe.train_llm_on_prompts,
                                           weights=SegLossWeights(pairwise=recipe.box_pairwise_weight),
                                           correction_point=recipe.correction_point)
        self.module: nn.Module = self.objective
        if self.dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = DistributedDataParallel(self.objective, device_ids=ids, find_unused_parameters=True)
        self.builder = BatchBuilder(tokenizer, model.config, recipe, max_side=frame_max_side)

    @classmethod
    def from_recipe(cls, recipe: TrainRecipe, checkpoint: str | Path | None = None,
                    device: str | torch.device | None = None, frame_max_side: int | None = None) -> "Trainer":
        """Load ``checkpoint`` (default ``recipe.base_model``) and its tokenizer, and build a trainer.

        ``frame_max_side``: media with a longer side are decoded with this one, in pixels (None or 0: their own size;
        see :class:`BatchBuilder`).

        The device defaults to ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU. Frozen weights
        are bf16 on CUDA when ``recipe.bf16``; trained ones are always float32.
        """
        from unipixel_model.loading import from_pretrained, resolve_checkpoint
        from unipixel_model.tokenization import load_tokenizer

        if device is None:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        path = resolve_checkpoint(checkpoint or recipe.base_model)
        dtype = torch.bfloat16 if recipe.bf16 and device.type == "cuda" else torch.float32
        model = from_pretrained(path, device=device, dtype=dtype, sam2_image_size=recipe.sam2_image_size)
        return cls(model, load_tokenizer(path), recipe, frame_max_side)

    # ---- training ------------------------------------------------------------------------
    def total_steps(self, num_samples: int) -> int:
        """Optimizer steps for ``num_samples``: ``max_steps``, else ``epochs`` over this rank's shard."""
        if self.recipe.max_steps is not None:
            return self.recipe.max_steps
        per_rank = num_samples // self.dist.world_size
        return max(1, math.ceil(self.recipe.epochs * per_rank / self.recipe.grad_accum))

    def train(self, samples: list[TrainSample], progress: ProgressCallback | None = None) -> TrainResult:
        """Run the recipe over ``samples`` (batch size 1 per process, ``grad_accum`` per step).

        Args:
            progress: called on rank 0 every ``log_every`` steps with (step, total_steps, loss, eta_s).
        Raises:
            ValueError: when there are fewer samples than processes, or no sample can be built.
        """
        if len(samples) < self.dist.world_size:
            raise ValueError(f"{len(samples)} samples for {self.dist.world_size} processes")
        recipe, total = self.recipe, self.total_steps(len(samples))
        optimizer = build_optimizer(self.model, recipe)
        warmup = math.ceil(total * recipe.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_with_warmup(s, total, warmup))
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        result = TrainResult(0, [], world_size=self.dist.world_size)
        stream = self._batches(samples, result)
        start = time.monotonic()
        self.model.train()
        self.model.sam2.train(recipe.trains_sam2)
        try:
            with self.model.sam2_gating(False):  # training sees ungated logits (spec §2.6)
                for step in range(1, total + 1):
                    parts = self._accumulate(stream, recipe.grad_accum)
                    if recipe.max_grad_norm > 0:
                        torch.nn.utils.clip_grad_norm_(trainable, recipe.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    self._record(result, parts, step)
                    elapsed = time.monotonic() - start
                    if progress is not None and self.dist.is_main and (step % recipe.log_every == 0 or step == total):
                        progress(step, total, result.losses[-1], elapsed / step * (total - step))
        finally:
            self.model.eval()
        result.seconds = time.monotonic() - start
        return result

    def _accumulate(self, stream: Iterator[TrainBatch], grad_accum: int) -> list[dict[str, float]]:
        """Forward/backward ``grad_accum`` samples; gradients sync (DDP) only on the last."""
        parts = []
        for micro in range(grad_accum):
            batch = next(stream)
            sync = micro == grad_accum - 1 or not hasattr(self.module, "no_sync")
            with nullcontext() if sync else self.module.no_sync():
                out = self.module(batch)
                loss = out["total"] / grad_accum
                if not loss.requires_grad and self.dist.world_size > 1:
                    # no graph: the sample trains nothing (a prompt sample with the LLM left alone and no mask loss, as
                    # a mask prompt on a still); every DDP rank must still run a backward, so a zero one
                    loss = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
                if loss.requires_grad:  # a single process just skips such a sample's backward
                    loss.backward()
            parts.append({k: float(v.detach()) for k, v in out.items()})
        return parts

    def _record(self, result: TrainResult, parts: list[dict[str, float]], step: int) -> None:
        seg = [p["seg"] for p in parts if "seg" in p]
        stats = torch.tensor([np.mean([p["total"] for p in parts]), np.mean([p["lm"] for p in parts])],
                             dtype=torch.float64)
        if self.dist.world_size > 1:  # every rank reaches this point once per step
            stats = stats.to(self.device)
            dist.all_reduce(stats)
            stats = stats.cpu() / self.dist.world_size
        result.steps = step
        result.losses.append(float(stats[0]))
        result.lm_losses.append(float(stats[1]))
        result.seg_losses.append(float(np.mean(seg)) if seg else float("nan"))
        result.samples_seen += len(parts)

    def _batches(self, samples: list[TrainSample], result: TrainResult) -> Iterator[TrainBatch]:
        """Endless stream of built batches: a seeded shuffle per epoch, this rank's shard of it.

        Samples that fail to build are reported in ``result.skipped`` and left out from then on.
        """
        bad: set[int] = set()
        epoch = 0
        while True:
            order = list(range(len(samples)))
            random.Random(self.recipe.seed + epoch).shuffle(order)
            shard = order[self.dist.rank::self.dist.world_size][:len(samples) // self.dist.world_size]
            built_any = False
            for index in shard:
                if index in bad:
                    continue
                rng = random.Random(f"{self.recipe.seed}-{epoch}-{index}")  # str seeds are stable across runs
                try:
                    batch = self.builder.build(samples[index], rng)
                except _SAMPLE_ERRORS as exc:
                    bad.add(index)
                    result.skipped.append(f"{index}: {exc}")
                    logger.warning("skipping training sample %d: %s", index, exc)
                    continue
                built_any = True
                yield batch.to(self.device)
            if not built_any:
                raise ValueError(f"none of this process's {len(shard)} samples could be built: {result.skipped[:3]}")
            epoch += 1

    # ---- evaluation and saving -----------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, samples: list[TrainSample]) -> EvalResult:
        """Mean teacher-forced loss over ``samples`` in eval mode (every process evaluates all of them).

        Samples that cannot be built are left out.
        """
        self.model.eval()
        totals, lms, segs = [], [], []
        with self.model.sam2_gating(False):
            for index, sample in enumerate(samples):
                try:
                    batch = self.builder.build(sample, random.Random(index)).to(self.device)
                except _SAMPLE_ERRORS as exc:
                    logger.warning("evaluation skips sample %d: %s", index, exc)
                    continue
                out = self.objective(batch)
                totals.append(float(out["total"]))
                lms.append(float(out["lm"]))
                if "seg" in out:
                    segs.append(float(out["seg"]))
        if not totals:
            raise ValueError(f"none of the {len(samples)} evaluation samples could be built")
        return EvalResult(float(np.mean(totals)), float(np.mean(lms)),
                          float(np.mean(segs)) if segs else float("nan"), len(totals))

    def save_checkpoint(self, out_dir: str | Path, dtype: torch.dtype = torch.float16) -> Path | None:
        """Write the whole model (``full_model`` recipes) as a checkpoint in the official layout, with
        its tokenizer, weights cast to ``dtype`` (rank 0 only)."""
        from unipixel_model.loading import save_checkpoint

        path = None
        if self.dist.is_main:
            path = Path(out_dir)
            original = {k: v.dtype for k, v in self.model.state_dict().items()}
            self.model.to(dtype)
            try:
                save_checkpoint(self.model, path)
            finally:
                for k, v in self.model.state_dict().items():
                    v.data = v.data.to(original[k])
            self.tokenizer.save_pretrained(str(path))
        if self.dist.world_size > 1:
            dist.barrier()
        return path

    def save_adapter(self, out_dir: str | Path) -> Path | None:
        """Write the adapter directory (rank 0 only; other ranks wait and get None)."""
        path = None
        if self.dist.is_main:
            path = save_adapter(self.model, out_dir, self.recipe, self.module_params, ADAPTER_NAME)
        if self.dist.world_size > 1:
            dist.barrier()
        return path


def main(argv: list[str] | None = None) -> int:
    """``[torchrun --nproc_per_node N] python -m finetune.trainer --recipe R --samples S.jsonl --out DIR``:
    train on a JSONL of samples (``finetune.sample.write_samples``) and save the adapter."""
    import argparse
    import json

    from finetune.recipe import load_recipe
    from finetune.sample import read_samples

    parser = argparse.ArgumentParser(prog="python -m finetune.trainer", description=main.__doc__)
    parser.add_argument("--recipe", required=True, help="recipe name (tiny, 3b, 3b_multi_gpu) or YAML path")
    parser.add_argument("--samples", required=True, help="JSONL of TrainSample objects")
    parser.add_argument("--out", required=True, help="adapter directory to create")
    parser.add_argument("--checkpoint", default=None, help="base checkpoint (default: the recipe's base_model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    trainer = Trainer.from_recipe(load_recipe(args.recipe), checkpoint=args.checkpoint)
    def report(step: int, total: int, loss: float, eta_s: float) -> None:
        print(json.dumps({"step": step, "total_steps": total, "loss": loss, "eta_s": round(eta_s, 1)}), flush=True)

    result = trainer.train(read_samples(args.samples), progress=report)
    path = trainer.save_adapter(args.out)
    if trainer.dist.is_main:
        print(json.dumps({"adapter": str(path), "steps": result.steps, "final_loss": result.losses[-1],
                          "seconds": round(result.seconds, 1), "skipped": result.skipped}))
    return 0


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


if __name__ == "__main__":
    raise SystemExit(main())
