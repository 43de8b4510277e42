"""One LLM turn of a session: the chat over the frames the LLM reads, prefilled, then answered greedily or forced.

The pre-norm states of the ``<|seg|>`` positions come back with the answer: they are what prompts SAM 2 (the seg
head maps them to its tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unipixel_model import processor
from unipixel_model.feature_cache import VisionCache
from unipixel_model.media import Frames
from unipixel_model.modeling import UniPixelInputs, UniPixelModel
from unipixel_model.prompt_encoder import RefPrompt


@dataclass
class LLMTurn:
    """Text in, text out, and the pre-norm states that feed SAM 2: float [N, C], one per ``<|seg|>``."""

    answer: str
    seg_hidden: torch.Tensor


def llm_turn(model: UniPixelModel, tokenizer, frames: Frames, vision_cache: VisionCache, question: str,
             indices: tuple[int, ...], refs: list[RefPrompt], refer_mask: torch.Tensor | None,
             forced_answer: str | None, max_new_tokens: int) -> LLMTurn:
    """Answer ``question`` over the LLM frames ``indices`` (0-based frames of ``frames``), their vision features
    encoded once per set of indices and kept in ``vision_cache``.

    Args:
        refs: one per ``<|ref|>`` of the question, in order.
        refer_mask: the memory-injection masks [T_grid, O, h, w] of the ``<|mem|>`` prefix, or None.
        forced_answer: teacher-forced answer (its ``<|seg|>`` states are read), or None to generate one.
    """
    video = vision_cache.video(frames, indices)
    device = model.lm_head.weight.device
    vision = vision_cache.vision(indices)
    if vision is None:
        vision = model.encode_video(video.pixel_values_videos.to(device), video.video_grid_thw.to(device))
        vision_cache.store_vision(indices, vision)
    text = processor.render_chat([(question, forced_answer)])
    ids = processor.tokenize(tokenizer, processor.expand_video_placeholder(text, video.num_tokens))
    inputs = UniPixelInputs(ids.to(device), video.pixel_values_videos, video.video_grid_thw.to(device),
                            video.second_per_grid_ts.to(device), refs, refer_mask, vision)
    out = model.prefill(inputs)
    if forced_answer is not None:
        positions = model.seg_positions(inputs.input_ids, out.logits)
        return LLMTurn(forced_answer, out.hidden_pre_norm[positions])
    return _generate(model, tokenizer, out, max_new_tokens)


def _generate(model: UniPixelModel, tokenizer, out, max_new_tokens: int) -> LLMTurn:
    """Greedy decoding; a predicted ``<|seg|>`` takes the state of the position that predicted it."""
    eos, seg = tokenizer.convert_tokens_to_ids("<|im_end|>"), model.config.seg_token_id
    logits, hidden, generated, seg_hidden = out.logits[-1], out.hidden_pre_norm[-1], [], []
    for _ in range(max_new_tokens):
        token = int(logits.argmax())
        if token == seg:
            seg_hidden.append(hidden)
        if token == eos:
            break
        generated.append(token)
        logits, hidden = model.decode_step(token, out.cache, out.rope_deltas)
    answer = tokenizer.decode(generated, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    dim = out.hidden_pre_norm.shape[-1]
    states = torch.stack(seg_hidden) if seg_hidden else out.hidden_pre_norm.new_zeros((0, dim))
    return LLMTurn(answer, states)
