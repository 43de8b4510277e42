"""Can a text query point at the named object? A grounding probe on held-out synthetic stills and videos.

``toy_text_probe`` shows that the toy's masks ignore the query. This probe asks where that is lost. A small head
(``GroundingHead``) scores every cell of the toy's SAM 2 features (stride 8, 16x16 cells at 128 px, with the cell's
mean colour) against a query vector, and is trained with a softmax over the cells whose target is the named object's
mask. Three query vectors are compared, each trained from the shipped toy for ``--steps`` steps:

* ``llm``: the toy LLM's ``<|seg|>`` state (the pre-norm state before ``<|seg|>``, what ``seg_head`` reads), with
  the LLM (byte-level tokens, 2 layers, 64 wide) trained along;
* ``words``: the mean of learned embeddings of the query's words, no LLM: what one token per word would give;
* ``colour``: a learned embedding of the named object's colour (an upper bound for colour queries).

It prints, per query vector and expression kind, the share of held-out queries whose best cell lies on the named
object (more than half of the cell), and chance: one over the objects visible on that frame.

    python -m benchmarks.toy_grounding_probe                  # every query vector, 2,000 steps each (8 min)
    python -m benchmarks.toy_grounding_probe --queries llm --steps 12000

Measured 2026-12-06 on the shipped toy, 2,000 steps (README: The toy model), share of 206 held-out queries picked:

| query vector | all | colour + shape | colour | shape | position | motion |
|---|---|---|---|---|---|---|
| chance (1 / objects) | 0.52 | 0.50 | 0.54 | 0.62 | 0.33 | 0.50 |
| ``llm`` | 0.55 | 0.58 | 0.61 | 0.55 | 0.28 | 0.50 |
| ``llm``, 12,000 steps | 0.51 | 0.56 | 0.56 | 0.47 | 0.28 | 0.50 |
| ``words`` | 0.71 | 0.79 | 0.93 | 0.53 | 0.28 | 0.50 |
| ``colour`` | 0.78 | 0.83 | 0.93 | 0.69 | 0.39 | 0.75 |

The image side finds the named object once the query's words arrive; the toy's ``<|seg|>`` state does not bring them.
The toy's text-grounding head (phase 7 of ``python -m finetune toy``, ``unipixel_model/toy_grounding.py``) grew out of
this finding: the ``words`` query, with the cells' motion and place added, picks 0.77 of the same held-out queries.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parents[1]))

from finetune.batch import BatchBuilder, TrainBatch  # noqa: E402
from finetune.objective import UniPixelObjective  # noqa: E402
from finetune.recipe import load_recipe  # noqa: E402
from finetune.sample import TrainSample  # noqa: E402
from finetune.world.evaluate import EVAL_SEED_START, TRAIN_SEED_START  # noqa: E402
from finetune.world.expressions import expressions  # noqa: E402
from finetune.world.samples import SampleMix, clip_samples  # noqa: E402
from finetune.world.scene import COLOURS, WorldConfig, make_clip  # noqa: E402
from finetune.world.render_cache import rendered  # noqa: E402
from unipixel_model import templates  # noqa: E402
from unipixel_model.loading import from_pretrained, resolve_checkpoint  # noqa: E402
from unipixel_model.tokenization import load_tokenizer  # noqa: E402

FEATURE_LEVEL = 1  # SAM 2's backbone_fpn level at stride 8 (16x16 cells at the toy's 128 px)
QUERIES = ("llm", "words", "colour")


@dataclass(frozen=True)
class Query:
    """One text query of the world: its sample, the kind of expression, the named object's colour, the query's words,
    and how many objects the frame where the named object is largest shows (for chance)."""

    sample: TrainSample
    kind: str
    colour: str
    words: list[str]
    visible: int


def world_queries(first_seed: int, stills: int, videos: int, seed: int, work: Path) -> list[Query]:
    """The ``seg`` samples (text query -> mask) of ``stills`` stills and ``videos`` 16-frame videos."""
    rng, out = np.random.default_rng(seed), []
    mix = SampleMix(mem_prompt=0, mem_mask=0, seg=1.5, region=0, ref=0, max_window=4)
    for num_frames, count, first in ((1, stills, first_seed), (16, videos, first_seed + 50_000)):
        for clip_seed in range(first, first + count):
            clip = make_clip(clip_seed, WorldConfig(num_frames=num_frames))
            asked = {templates.segmentation_question(e.text, num_frames == 1): e for e in expressions(clip)}
            for sample in clip_samples(clip, rendered(clip, work), rng, mix):
                expr = asked[sample.question]
                areas = sample.target_masks[0].reshape(len(sample.frame_idx), -1).sum(1)
                frame = sample.frame_idx[int(areas.argmax())]
                visible = int((clip.masks[:, frame].reshape(len(clip.objects), -1).sum(1) >= 16).sum())
                out.append(Query(sample, expr.kind, clip.objects[expr.obj].colour, expr.text.split(), max(visible, 1)))
    return out


class GroundingHead(nn.Module):
    """Scores cells of SAM 2 features against a query: logits [T, h, w] = <q(query), k(features, cell colour)> / 8."""

    def __init__(self, query_dim: int, feature_dim: int, width: int = 64) -> None:
        super().__init__()
        self.query = nn.Sequential(nn.LayerNorm(query_dim), nn.Linear(query_dim, width), nn.GELU(),
                                   nn.Linear(width, width))
        self.key = nn.Sequential(nn.Conv2d(feature_dim + 3, width, 1), nn.GELU(), nn.Conv2d(width, width, 1))

    def forward(self, query: torch.Tensor, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """query [D]; features [T, C, h, w]; frames [T, 3, S, S] normalised SAM 2 input."""
        keys = self.key(torch.cat([features, F.adaptive_avg_pool2d(frames, features.shape[-2:])], 1))
        return torch.einsum("d,tdhw->thw", self.query(query), keys) / 8.0


class Probe:
    """A fresh toy model, a grounding head and the query vector ``source`` (one of :data:`QUERIES`)."""

    def __init__(self, source: str, lr: float) -> None:
        path = resolve_checkpoint("toy")
        self.model, self.source = from_pretrained(path), source
        self.builder = BatchBuilder(load_tokenizer(path), self.model.config,
                                    load_recipe(Path(__file__).parents[1] / "finetune/configs/toy_describe_text.yaml"))
        self.objective = UniPixelObjective(self.model, train_backbone=False)
        dim = self.model.config.qwen.text_config.hidden_size
        channels = self.model.sam2.sam_mask_decoder.conv_s1.out_channels  # SAM 2's stride-8 features
        self.head, self.words, self.vocab = GroundingHead(dim, channels), nn.Embedding(256, dim), {}
        self.colours = nn.Embedding(len(COLOURS), dim)
        self.model.requires_grad_(False)
        heads = [*self.head.parameters(), *self.words.parameters(), *self.colours.parameters()]
        params = [{"params": heads, "lr": 1e-3}]
        if source == "llm":  # the LLM learns to carry the query, as it would in training
            llm = [p for n, p in self.model.named_parameters() if n.startswith(("model.", "lm_head"))]
            for p in llm:
                p.requires_grad_(True)
            params.append({"params": llm, "lr": lr})
        self.optimizer = torch.optim.AdamW(params, weight_decay=0.0)

    def logits(self, query: Query) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the LM loss, cell logits [T, h, w], the named object's share of each cell [T, h, w])."""
        batch: TrainBatch = self.builder.build(query.sample)
        lm = torch.zeros(())
        if self.source == "llm":
            last, pre_norm = self.objective.language(batch)
            lm = self.objective.lm_loss(last, batch.labels)
            ids = batch.inputs.input_ids[0]
            vector = pre_norm[torch.nonzero(ids[1:] == self.model.config.seg_token_id).flatten()[0]]
        elif self.source == "words":
            vector = self.words(torch.tensor([self.vocab.setdefault(w, len(self.vocab)) for w in query.words])).mean(0)
        else:
            vector = self.colours(torch.tensor(list(COLOURS).index(query.colour)))
        with torch.no_grad():
            features = self.model.sam2.forward_image(batch.sam2_frames)["backbone_fpn"][FEATURE_LEVEL]
        logits = self.head(vector, features, batch.sam2_frames)
        share = F.adaptive_avg_pool2d(batch.target_masks[:, :1].float(), logits.shape[-2:])[:, 0]
        return lm, logits, share

    def train(self, queries: list[Query], steps: int, seed: int = 0) -> None:
        order = random.Random(seed)
        for _ in range(steps):
            lm, logits, share = self.logits(queries[order.randrange(len(queries))])
            loss = lm + cell_loss(logits, share)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    @torch.no_grad()
    def picked(self, queries: list[Query]) -> list[bool]:
        """Per query: the best cell of the frame where the named object is largest lies on it (share > 0.5)."""
        out = []
        for query in queries:
            _, logits, share = self.logits(query)
            frame = int(share.flatten(1).sum(1).argmax())
            out.append(bool(share[frame].flatten()[int(logits[frame].flatten().argmax())] > 0.5))
        return out


def cell_loss(logits: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """-log of the softmax mass (over a frame's cells) on the named object, averaged over frames that show it.

    Args:
        logits: [T, h, w] cell scores; share: [T, h, w] the named object's share of each cell, 0..1.
    """
    shown = share.flatten(1).sum(1) > 0
    mass = (logits.flatten(1).softmax(1) * share.flatten(1)).sum(1).clamp_min(1e-6)
    return -mass.log()[shown].mean() if bool(shown.any()) else logits.sum() * 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", default=",".join(QUERIES), help=f"comma-separated, of {QUERIES}")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-3, help="the LLM's learning rate (query 'llm')")
    parser.add_argument("--work", type=Path, default=Path("/tmp/toy_grounding_probe"), help="rendered clips")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    train = world_queries(TRAIN_SEED_START + 59_000, 1500, 200, 1, args.work)
    held = world_queries(EVAL_SEED_START + 3000, 120, 20, 2, args.work)
    kinds = sorted({q.kind for q in held})
    print(f"{len(train)} training queries, {len(held)} held-out ({args.steps} steps each)")
    print("| query vector | all | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 2) + "|")
    chance = [1 / q.visible for q in held]
    _row("chance (1 / objects)", chance, held, kinds)
    for source in args.queries.split(","):
        probe = Probe(source, args.lr)
        probe.train(train, args.steps)
        _row(source, probe.picked(held), held, kinds)
    return 0


def _row(name: str, values: list[float], queries: list[Query], kinds: list[str]) -> None:
    per_kind = [np.mean([v for v, q in zip(values, queries) if q.kind == k]) for k in kinds]
    print(f"| {name} | {np.mean(values):.2f} | " + " | ".join(f"{v:.2f}" for v in per_kind) + " |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
