"""Check this port against golden cases produced by the official UniPixel code.

Usage: ``python -m unipixel_model.parity DIR [--case NAME ...]``

``DIR`` is laid out like ``tests/fixtures/unipixel_parity/``: a ``checkpoint/`` in the official
layout and, per case, ``<case>.json`` (question, response, prompts, vision settings) plus
``<case>.safetensors`` (raw frames, masks, expected tensors). Every input is rebuilt from the raw
frames and the JSON through this package's own processor; nothing but the raw media is taken
from the stored tensors. Prints one row per compared tensor and exits 0 only if every case is
within the tolerances of the fixture README (§6).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from unipixel_model import loading, processor
from unipixel_model.mask_decoder import FORWARD, ConditioningPrompt, track_object
from unipixel_model.memory_bank import build_refer_mask, mem_prefix, time_pool_masks
from unipixel_model.modeling import UniPixelInputs, UniPixelModel
from unipixel_model.prompt_encoder import RefPrompt

EXACT = "exact"
MASK_IOU = 0.999
# name -> (atol, rtol) or EXACT; from the fixture README's suggested tolerances.
TOLERANCES: dict[str, tuple[float, float] | str] = {
    **{k: EXACT for k in ("input_ids", "position_ids", "rope_deltas", "window_index", "seg_positions",
                          "ref_positions", "mem_positions", "refer_mask", "refer_mask_time_pooled",
                          "llm_frames_resized", "video_grid_thw")},
    "pixel_values_videos": (1e-5, 0.0), "sam2_frames_rows": (1e-5, 0.0),
    "sam2_frames_sum": (1e-2, 1e-6), "sam2_frames_sumsq": (1e-2, 1e-6),
    **{k: (5e-5, 1e-4) for k in ("vision_embeds", "merger_mlp_input_window_order", "inputs_embeds",
                                 "ref_embeds", "ref_proj_input", "ref_temporal_in", "ref_temporal_768",
                                 "mem_pooled", "mem_embeds", "seg_tokens", "sam_sparse_prompt_frame0")},
    **{k: (1e-4, 1e-4) for k in ("logits", "hidden_pre_norm", "seg_hidden_pre_norm", "sam_low_res_masks")},
    **{k: (1e-4, 0.0) for k in ("sam_ious", "sam_object_score_logits", "sam_obj_ptr")},
}


@dataclass
class Comparison:
    """One tensor of one case: its worst difference and whether it is within tolerance."""

    case: str
    name: str
    max_diff: float
    ok: bool
    note: str = ""


def compare(case: str, name: str, actual: torch.Tensor, expected: torch.Tensor) -> Comparison:
    """Compare one tensor with its golden value using :data:`TOLERANCES`."""
    if tuple(actual.shape) != tuple(expected.shape):
        return Comparison(case, name, float("inf"), False, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if name == "masks":
        return _compare_masks(case, actual.bool(), expected.bool())
    diff = (actual.double() - expected.double()).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    rule = TOLERANCES.get(name, (1e-4, 1e-4))
    if rule == EXACT:
        return Comparison(case, name, max_diff, max_diff == 0.0)
    atol, rtol = rule
    ok = bool((diff <= atol + rtol * expected.double().abs()).all())
    if name == "sam_low_res_masks":  # gated frames must be exactly NO_OBJ (-1024)
        gated = (expected == -1024.0).flatten(2).all(-1)
        ok = ok and bool((actual[gated] == -1024.0).all())
    return Comparison(case, name, max_diff, ok)


def _compare_masks(case: str, actual: torch.Tensor, expected: torch.Tensor) -> Comparison:
    inter = (actual & expected).flatten(2).sum(-1).double()
    union = (actual | expected).flatten(2).sum(-1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    differing = int((actual != expected).sum())
    return Comparison(case, "masks", differing, bool((iou >= MASK_IOU).all()),
                      f"min IoU {float(iou.min()):.6f}, {differing} pixels differ")


def build_case_inputs(meta: dict, tensors: dict, tokenizer, sam_size: int) -> tuple[UniPixelInputs, dict]:
    """Rebuild the model inputs of a golden case from its raw frames and JSON."""
    frames = tensors["frames_raw"].numpy()
    frames = frames[processor.sample_frame_indices(frames.shape[0])]
    vision = meta["vision_element"]
    video = processor.prepare_llm_video(frames, vision["min_pixels"], vision["max_pixels"])
    produced = {"llm_frames_resized": torch.from_numpy(video.resized_frames),
                "pixel_values_videos": video.pixel_values_videos, "video_grid_thw": video.video_grid_thw}
    question, refer_mask = meta["question"], None
    if meta["kind"] == "mem":
        masks = tensors["gt_object_masks"]
        refer_mask = build_refer_mask(masks, video.grid_hw)
        produced["refer_mask_time_pooled"] = time_pool_masks(masks)
        num_frames = None if meta["media"] == "image" else video.num_frames
        prefix = mem_prefix(meta["object_ids"], refer_mask, num_frames)
        if not question.startswith(prefix):
            raise ValueError(f"{meta['name']}: rebuilt memory prefix {prefix!r} does not start the question")
        produced["refer_mask"] = refer_mask
    text = processor.render_chat([(question, meta["response"])])
    ids = processor.tokenize(tokenizer, processor.expand_video_placeholder(text, video.num_tokens))
    produced["input_ids"] = ids
    prompts = [RefPrompt(torch.tensor(p["coords_768"], dtype=torch.float32), torch.tensor(p["labels"]),
                         p["frame_index"]) for p in meta.get("prompts", [])]
    sam_frames = processor.sam2_transform(frames, sam_size)
    produced["sam2_frames_rows"] = sam_frames[:, :, ::96]
    produced["sam2_frames_sum"] = sam_frames.double().sum(dim=(2, 3))
    produced["sam2_frames_sumsq"] = sam_frames.double().square().sum(dim=(2, 3))
    produced["_sam_frames"] = sam_frames
    return UniPixelInputs(ids, video.pixel_values_videos, video.video_grid_thw, video.second_per_grid_ts,
                          prompts, refer_mask), produced


@torch.no_grad()
def run_case(model: UniPixelModel, tokenizer, case_dir: Path, name: str) -> list[Comparison]:
    """Run one golden case end to end and compare every stored tensor we produce."""
    meta = json.loads((case_dir / f"{name}.json").read_text())
    expected = load_file(str(case_dir / f"{name}.safetensors"))
    inputs, produced = build_case_inputs(meta, expected, tokenizer, model.config.sam2_image_size)
    sam_frames = produced.pop("_sam_frames")
    out = model.prefill(inputs, keep_intermediates=True)
    ids = inputs.input_ids[0]
    produced.update({"logits": out.logits, "hidden_pre_norm": out.hidden_pre_norm,
                     "inputs_embeds": out.inputs_embeds, "position_ids": out.position_ids,
                     "rope_deltas": out.rope_deltas.flatten(),
                     "vision_embeds": out.intermediates.vision_embeds,
                     "merger_mlp_input_window_order": out.intermediates.merger_input_window_order,
                     "window_index": _window_index(model, inputs.video_grid_thw)})
    _add_prompt_tensors(model, out, ids, produced)
    if "seg_positions" in expected:
        produced.update(_decode_masks(model, out, inputs, sam_frames, meta["raw_frame_size_hw"]))
    return [compare(name, key, produced[key], expected[key]) for key in sorted(expected) if key in produced]


def _window_index(model: UniPixelModel, grid_thw: torch.Tensor) -> torch.Tensor:
    from transformers.vision_utils import get_vision_window_index

    vision = model.config.qwen.vision_config
    index, _ = get_vision_window_index(grid_thw, vision.spatial_merge_size, vision.window_size,
                                       vision.patch_size, kwargs={})
    return index


def _add_prompt_tensors(model: UniPixelModel, out, ids: torch.Tensor, produced: dict) -> None:
    kept = out.intermediates
    if kept.ref_encoding is not None:
        enc = kept.ref_encoding
        produced.update({"ref_embeds": enc.embeds, "ref_proj_input": enc.proj_input,
                         "ref_temporal_in": enc.temporal_in, "ref_temporal_768": enc.temporal,
                         "ref_positions": torch.nonzero(ids == model.config.ref_token_id).flatten()})
        produced.update({f"ref_sparse_tokens_{j}": t for j, t in enumerate(enc.sparse_tokens)})
    if kept.mem_pooled is not None:
        produced.update({"mem_pooled": kept.mem_pooled, "mem_embeds": kept.mem_embeds,
                         "mem_positions": torch.nonzero(ids == model.config.mem_token_id).flatten()})


def _decode_masks(model: UniPixelModel, out, inputs: UniPixelInputs, sam_frames: torch.Tensor,
                  frame_size_hw: list[int]) -> dict:
    """Official mode: each ``<|seg|>`` seeds its own SAM 2 session on frame 0, tracked forward."""
    positions = model.seg_positions(inputs.input_ids, out.logits)
    hidden = out.hidden_pre_norm[positions]
    tokens = model.seg_tokens(hidden)
    features = model.sam2.encode_frames(sam_frames)
    sam = model.sam2
    pad_coords, pad_labels = torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32)
    sparse_pad, _ = sam.sam_prompt_encoder(points=(pad_coords, pad_labels), boxes=None, masks=None)
    low_res, ious, scores, ptrs, masks, sparse = [], [], [], [], [], []
    for i in range(tokens.shape[0]):
        sparse.append(torch.cat([sparse_pad, tokens[i:i + 1]], dim=1)[0])
        preds = list(track_object(sam, features.__getitem__, len(features),
                                  [ConditioningPrompt(0, hidden=tokens[i:i + 1])], (FORWARD,)))
        low_res.append(torch.stack([p.low_res_logits for p in preds]))
        ious.append(torch.stack([p.ious for p in preds]))
        scores.append(torch.tensor([p.object_score for p in preds]))
        ptrs.append(torch.stack([p.obj_ptr for p in preds]))
        masks.append(torch.stack([p.mask_at(*frame_size_hw) for p in preds]))
    return {"seg_positions": torch.tensor(positions), "seg_hidden_pre_norm": hidden, "seg_tokens": tokens,
            "sam_sparse_prompt_frame0": torch.stack(sparse), "sam_low_res_masks": torch.stack(low_res),
            "sam_ious": torch.stack(ious), "sam_object_score_logits": torch.stack(scores),
            "sam_obj_ptr": torch.stack(ptrs), "masks": torch.stack(masks)}


def case_names(case_dir: Path) -> list[str]:
    """Every ``<case>.json`` with a matching ``<case>.safetensors``, sorted."""
    return sorted(p.stem for p in case_dir.glob("*.json")
                  if (case_dir / f"{p.stem}.safetensors").is_file())


def run_all(case_dir: Path, names: list[str] | None = None) -> list[Comparison]:
    """Load ``case_dir/checkpoint`` and run the named cases (all by default)."""
    from unipixel_model.tokenization import load_tokenizer

    checkpoint = case_dir / "checkpoint"
    model = loading.from_pretrained(checkpoint, dtype=torch.float32, device="cpu")
    tokenizer = load_tokenizer(checkpoint)
    results = []
    for name in names or case_names(case_dir):
        try:
            results += run_case(model, tokenizer, case_dir, name)
        except Exception as exc:  # a broken case is a failed case, reported with the rest
            results.append(Comparison(name, "<run>", float("inf"), False, f"{type(exc).__name__}: {exc}"))
    return results


def format_table(results: list[Comparison]) -> str:
    """A fixed-width table: case, tensor, max |diff|, OK/FAIL, note."""
    rows = [f"{'case':34} {'tensor':32} {'max_abs_diff':>12}  result"]
    for r in results:
        rows.append(f"{r.case:34} {r.name:32} {r.max_diff:12.3e}  {'ok' if r.ok else 'FAIL'}  {r.note}".rstrip())
    failed = sorted({r.case for r in results if not r.ok})
    cases = sorted({r.case for r in results})
    rows.append(f"{len(cases) - len(failed)} of {len(cases)} cases within tolerance"
                + (f"; failed: {', '.join(failed)}" if failed else ""))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipixel_model.parity", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="golden-case directory (with checkpoint/)")
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    args = parser.parse_args(argv)
    if not (args.directory / "checkpoint").is_dir():
        parser.error(f"{args.directory} has no checkpoint/ directory")
    names = args.case or case_names(args.directory)
    if not names:
        parser.error(f"no <case>.json + <case>.safetensors pairs in {args.directory}")
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    results = run_all(args.directory, names)
    print(format_table(results))
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
