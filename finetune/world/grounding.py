"""Phase 7 of ``python -m finetune toy``: train the toy's text-grounding head (:mod:`unipixel_model.toy_grounding`).

The head reads SAM 2's frozen stride-8 features, so they are computed once per sample and the head alone trains over
them: 30,000 steps take about 3 minutes on 2 CPU cores. The stage-3 trainer would encode every sample's frames again
at every step (about 0.1 s), 50 minutes for the same steps; it trains every other part of the toy (phases 1-6).

The samples are the world's text queries (``seg`` samples: "Please segment the red circle." -> the object's mask).
The loss is :func:`~unipixel_model.toy_grounding.grounding_loss`: the softmax mass, over every cell of the sample's
frames, on the named object.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from unipixel_model.loading import load_checkpoint_weights, read_config, save_checkpoint
from unipixel_model.modeling import UniPixelModel
from unipixel_model.tokenization import load_tokenizer
from unipixel_model.toy_grounding import FEATURE_LEVEL, TextGrounding, grounding_loss

logger = logging.getLogger(__name__)

GROUNDING_WIDTH = 64  # the toy preset's toy_text_grounding


@dataclass(frozen=True)
class EncodedQuery:
    """A text query with what the head reads: SAM 2 features [T, C, h, w], normalised frames [T, 3, S, S], and the
    named object's share of each cell [T, h, w]."""

    question: str
    features: torch.Tensor
    frames: torch.Tensor
    share: torch.Tensor


# Frames per call of SAM 2's image encoder: 513 queries took 6.0 s one call each and 4.7 s in calls of 32 frames; the
# shipped toy's 5,058 took 69 s and take 59 s (2 CPU cores, 2026-12-07).
ENCODE_FRAMES = 32


@torch.no_grad()
def encode_queries(model, tokenizer, samples: list) -> list[EncodedQuery]:
    """The ``seg`` samples among ``samples`` (:class:`~finetune.sample.TrainSample`), with SAM 2's features of their
    frames (the first target object is the named one), in the order of ``samples``."""
    from finetune.batch import BatchBuilder
    from finetune.recipe import load_recipe

    builder = BatchBuilder(tokenizer, model.config, load_recipe("toy_tracks"))  # the toy's frame sizes
    out, pending = [], []
    for sample in samples:
        if sample.kind != "seg" or sample.target_masks is None:
            continue
        pending.append((sample.question, builder.build(sample)))
        if sum(batch.num_frames for _, batch in pending) >= ENCODE_FRAMES:
            out += _encode(model, pending)
            pending = []
    return out + _encode(model, pending)


def _encode(model, built: list) -> list[EncodedQuery]:
    """One image-encoder call for the frames of every (question, batch) in ``built``."""
    if not built:
        return []
    frames = torch.cat([batch.sam2_frames for _, batch in built])
    features = model.sam2.forward_image(frames.to(model.sam2.dtype))["backbone_fpn"][FEATURE_LEVEL].float()
    out = []
    for (question, batch), own in zip(built, features.split([batch.num_frames for _, batch in built])):
        share = F.adaptive_avg_pool2d(batch.target_masks[:, :1].float(), own.shape[-2:])[:, 0]
        out.append(EncodedQuery(question, own, batch.sam2_frames, share))
    return out


def train_head(head: TextGrounding, queries: list[EncodedQuery], steps: int, lr: float = 1e-3, seed: int = 0,
               progress: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``head`` on queries drawn at random (one per step, AdamW, cosine decay). Returns the loss per step."""
    if not queries:
        raise ValueError("no text queries to train the grounding head on: the phase's samples hold no 'seg' sample")
    order = random.Random(seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0, fused=True)  # one kernel: as the trainer
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    head.train()
    losses = []
    for step in range(steps):
        query = queries[order.randrange(len(queries))]
        loss = grounding_loss(head(query.question, query.features, query.frames), query.share)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress is not None and (step + 1) % 1000 == 0:
            progress(step + 1, sum(losses[-1000:]) / 1000)
    head.eval()
    return losses


@torch.no_grad()
def picked(head: TextGrounding, queries: list[EncodedQuery]) -> list[bool]:
    """Per query: the head's best cell (over every frame) lies on the named object (more than half of the cell)."""
    out = []
    for query in queries:
        logits = head(query.question, query.features, query.frames)
        out.append(bool(query.share.flatten()[int(logits.flatten().argmax())] > 0.5))
    return out


def train_grounding_phase(checkpoint: Path, out: Path, samples: list, steps: int,
                          dtype: torch.dtype = torch.float16) -> dict:
    """Add a trained grounding head to ``checkpoint`` and write the result to ``out`` (weights cast to ``dtype``,
    the tokenizer with them). Every other tensor is copied, rounded to fp16 as the shipped checkpoint is.

    Returns:
        The phase's summary: samples, steps, seconds, the loss per step (``losses``).
    """
    started = time.time()
    config = read_config(checkpoint)
    head_only = config.toy_text_grounding == 0  # a checkpoint from before the head: build it, load the rest
    config.toy_text_grounding = config.toy_text_grounding or GROUNDING_WIDTH
    torch.manual_seed(0)  # a new head's initialisation: the same bytes in every run
    model = UniPixelModel(config, (Path(checkpoint),)).eval()
    _load(model, checkpoint, head_only)
    # The shipped weights are fp16: round to it, so that this phase reads the same features whether it follows phase 6
    # (whose output is kept in fp32) or starts from a shipped checkpoint.
    model.to(torch.float16).float()
    tokenizer = load_tokenizer(checkpoint)
    queries = encode_queries(model, tokenizer, samples)
    logger.info("toy_grounding: %d text queries encoded in %.0f s", len(queries), time.time() - started)
    losses = train_head(model.toy_grounding, queries, steps, progress=lambda step, loss: logger.info(
        "toy_grounding step %d/%d loss %.3f", step, steps, loss))
    model.to(dtype)
    save_checkpoint(model, out)
    tokenizer.save_pretrained(str(out))
    return {"recipe": "toy_grounding", "samples": len(queries), "steps": steps,
            "seconds": round(time.time() - started), "skipped": 0, "losses": losses}


def _load(model: UniPixelModel, checkpoint: Path, head_only: bool) -> None:
    """Load the checkpoint's tensors; one without a head keeps the freshly initialised one."""
    if not head_only:
        load_checkpoint_weights(model, checkpoint)
        return
    head = model.toy_grounding
    model.toy_grounding = None  # the checkpoint has no toy_grounding.* tensors: check the rest strictly
    try:
        load_checkpoint_weights(model, checkpoint)
    finally:
        model.toy_grounding = head

