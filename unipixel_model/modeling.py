"""UniPixel: Qwen2.5-VL + ``<|ref|>`` prompt encoder + ``<|mem|>`` pooling + SAM 2 via ``<|seg|>``.

The model is stateless: :meth:`UniPixelModel.prefill` and :meth:`UniPixelModel.decode_step` take
typed inputs and return typed outputs (no masks stashed on the module). Mask decoding lives in
:mod:`unipixel_model.mask_decoder`; interaction state in :mod:`unipixel_model.session`.

Module names follow the official checkpoint (``seg_head``, ``ref_encoder``, ``msk_proj``, ...)
except the Qwen part, which uses transformers-5 names (``model.visual``,
``model.language_model``); :mod:`unipixel_model.loading` maps the legacy keys.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from unipixel_model import _tv_shim  # noqa: F401
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from transformers.cache_utils import DynamicCache
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel, Qwen2_5_VLRMSNorm

from unipixel_model.config import UniPixelConfig
from unipixel_model.errors import TokenCountError
from unipixel_model.memory_bank import pool_mem_features
from unipixel_model.prompt_encoder import PositionEmbedding1DRandom, RefPrompt, encode_ref_prompts
from unipixel_model.sam2_adapter import build_sam2, resolve_sam2_yaml
from unipixel_model.toy_grounding import TextGrounding

VIDEO_TOKEN_TYPE = 2  # mm_token_type_ids value transformers 5 uses for video tokens


@dataclass
class UniPixelInputs:
    """One sample ready for the model (batch size 1, the only size inference uses).

    Attributes:
        input_ids: long [1, L], ``<|video_pad|>`` already expanded to one token per merged patch.
        pixel_values_videos: float [4N, 3*2*14*14] Qwen patches (N = merged visual tokens).
        video_grid_thw: long [1, 3] = [T'/2, h/14, w/14].
        second_per_grid_ts: float [1] (1.0 at the 2 fps UniPixel uses).
        ref_prompts: one :class:`RefPrompt` per ``<|ref|>`` token, in order.
        refer_mask: bool [T_grid, O, h/28, w/28] for the ``<|mem|>`` tokens, or None.
        vision: a cached ``encode_video`` result for these pixels (skips the ViT), or None.
    """

    input_ids: torch.Tensor
    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor
    ref_prompts: list[RefPrompt] = field(default_factory=list)
    refer_mask: torch.Tensor | None = None
    vision: tuple[torch.Tensor, torch.Tensor] | None = None  # cached encode_video() output


@dataclass
class Intermediates:
    """Tensors the parity check compares; filled only when asked for."""

    vision_embeds: torch.Tensor | None = None
    merger_input_window_order: torch.Tensor | None = None
    ref_encoding: object | None = None
    mem_pooled: torch.Tensor | None = None
    mem_embeds: torch.Tensor | None = None


@dataclass
class PrefillOutput:
    """Result of the prompt forward.

    Attributes:
        logits: float [L, V].
        hidden_pre_norm: [L, D], input of the LLM's final RMSNorm (what ``seg_head`` reads).
        inputs_embeds: [L, D] after all injections.
        position_ids: long [3, L] M-RoPE positions; ``rope_deltas``: long [1, 1].
        cache: KV cache to continue decoding from.
    """

    logits: torch.Tensor
    hidden_pre_norm: torch.Tensor
    inputs_embeds: torch.Tensor
    position_ids: torch.Tensor
    rope_deltas: torch.Tensor
    cache: DynamicCache
    intermediates: Intermediates


@contextlib.contextmanager
def _capture_input(module: nn.Module, store: dict, key: str):
    """Temporarily record the first positional input of ``module`` into ``store[key]``."""
    handle = module.register_forward_pre_hook(lambda _m, args: store.__setitem__(key, args[0]))
    try:
        yield store
    finally:
        handle.remove()


class UniPixelModel(nn.Module):
    """The UniPixel network. Build with :func:`unipixel_model.loading.load_unipixel` or from a config.

    Args:
        config: the checkpoint's :class:`UniPixelConfig`.
        sam2_search_dirs: directories searched first for the SAM 2 yaml (the checkpoint dir).
    """

    def __init__(self, config: UniPixelConfig, sam2_search_dirs: tuple[Path, ...] = ()) -> None:
        super().__init__()
        self.config = config
        text = config.qwen.text_config
        dim = text.hidden_size
        self.model = Qwen2_5_VLModel(config.qwen)
        self.lm_head = nn.Linear(dim, text.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.language_model.embed_tokens.weight
        self.sam2 = build_sam2(resolve_sam2_yaml(config.sam2_config, sam2_search_dirs),
                               config.sam2_image_size, config.sam2_inference_mode)
        sam_dim, side = self.sam2.hidden_dim, config.sam2_image_size
        merger = config.merger_input_size
        self.seg_head = nn.Sequential(Qwen2_5_VLRMSNorm(dim, eps=1e-6), nn.Linear(dim, dim), nn.GELU(),
                                      nn.Linear(dim, sam_dim * config.sam2_hidden_tokens))
        self.ref_encoder = PromptEncoder(embed_dim=sam_dim, image_embedding_size=(side // 16, side // 16),
                                         input_image_size=(side, side), mask_in_chans=16)
        self.ref_proj_single = nn.Linear(sam_dim * 2, sam_dim * 3)
        self.ref_proj_double = nn.Linear(sam_dim * 3, sam_dim * 3)
        self.ref_proj = nn.Sequential(nn.GELU(), nn.Linear(sam_dim * 6, dim))
        self.tem_pe = PositionEmbedding1DRandom(sam_dim // 2)
        self.tem_emb = nn.Embedding(1, sam_dim)
        self.tem_proj = nn.Linear(sam_dim, sam_dim * 3)
        self.msk_proj = nn.Sequential(nn.Linear(merger, merger), nn.GELU(), nn.Linear(merger, dim))
        # toy models only (README: The toy model); released checkpoints have no such module
        self.toy_grounding = TextGrounding(self.sam2.sam_mask_decoder.conv_s1.out_channels,
                                           config.toy_text_grounding) if config.toy_text_grounding else None

    # ---- embeddings ----------------------------------------------------------------------

    @contextlib.contextmanager
    def sam2_gating(self, enabled: bool):
        """SAM 2's NO_OBJ gating of low-res logits on (inference) or off (training) inside the block,
        restored afterwards even on error."""
        previous = self.sam2.inference_mode
        self.sam2.inference_mode = enabled
        try:
            yield
        finally:
            self.sam2.inference_mode = previous

    def encode_video(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the ViT + merger.

        Returns:
            (vision_embeds [N, D] in raster order, merger-MLP input [N, M] in window order).
        """
        visual = self.model.visual
        store: dict = {}
        with _capture_input(visual.merger.mlp, store, "mlp_in"):
            out = visual(pixel_values_videos.to(visual.dtype), grid_thw=video_grid_thw)
        return out.pooler_output, store["mlp_in"]

    def embed_inputs(self, inputs: UniPixelInputs, keep: bool = False) -> tuple[torch.Tensor, Intermediates]:
        """Token embeddings with video features, ``<|ref|>`` and ``<|mem|>`` embeddings injected.

        Returns:
            (inputs_embeds [1, L, D], intermediates — filled when ``keep``).

        Raises:
            TokenCountError: when a special-token count differs from the number of features.
        """
        ids = inputs.input_ids
        embeds = self.model.language_model.embed_tokens(ids)
        vision, window_ordered = inputs.vision or self.encode_video(inputs.pixel_values_videos,
                                                                    inputs.video_grid_thw)
        embeds = _scatter(embeds, ids == self.config.qwen.video_token_id, vision, "<|video_pad|>")
        kept = Intermediates(vision, window_ordered) if keep else Intermediates()
        num_ref = int((ids == self.config.ref_token_id).sum())
        if num_ref or inputs.ref_prompts:
            if num_ref != len(inputs.ref_prompts):
                raise TokenCountError(f"expected one <|ref|> token per visual prompt: "
                                      f"{len(inputs.ref_prompts)} prompts, {num_ref} <|ref|> tokens")
            padded_frames = 2 * int(inputs.video_grid_thw[0, 0])
            encoding = encode_ref_prompts(self, inputs.ref_prompts, padded_frames)
            embeds = _scatter(embeds, ids == self.config.ref_token_id, encoding.embeds, "<|ref|>")
            kept.ref_encoding = encoding if keep else None
        num_mem = int((ids == self.config.mem_token_id).sum())
        if num_mem or inputs.refer_mask is not None:
            if inputs.refer_mask is None:
                raise TokenCountError(f"the text has {num_mem} <|mem|> tokens but no refer_mask was given")
            pooled = pool_mem_features(window_ordered, inputs.refer_mask)
            mem = self.msk_proj(pooled.to(self.msk_proj[0].weight.dtype))
            embeds = _scatter(embeds, ids == self.config.mem_token_id, mem, "<|mem|>")
            if keep:
                kept.mem_pooled, kept.mem_embeds = pooled, mem
        return embeds, kept

    def rope_index(self, inputs: UniPixelInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """M-RoPE positions [3, 1, L] and deltas [1, 1] for the prompt (official 3-D layout)."""
        ids = inputs.input_ids
        token_types = (ids == self.config.qwen.video_token_id).int() * VIDEO_TOKEN_TYPE
        return self.model.get_rope_index(ids, token_types, video_grid_thw=inputs.video_grid_thw,
                                         second_per_grid_ts=inputs.second_per_grid_ts)

    # ---- language model ------------------------------------------------------------------
    def run_language_model(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                           cache: DynamicCache) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder layers on [1, L, D] embeddings. Returns (logits [L, V], hidden_pre_norm [L, D])."""
        lm = self.model.language_model
        store: dict = {}
        with _capture_input(lm.norm, store, "pre_norm"):
            out = lm(inputs_embeds=inputs_embeds, position_ids=position_ids, past_key_values=cache, use_cache=True)
        return self.lm_head(out.last_hidden_state)[0], store["pre_norm"][0]

    def prefill(self, inputs: UniPixelInputs, keep_intermediates: bool = False) -> PrefillOutput:
        """Forward the whole prompt (teacher-forced answers included) and open a KV cache."""
        embeds, kept = self.embed_inputs(inputs, keep=keep_intermediates)
        position_ids, rope_deltas = self.rope_index(inputs)
        cache = DynamicCache(config=self.config.qwen.text_config)
        logits, hidden = self.run_language_model(embeds, position_ids, cache)
        return PrefillOutput(logits, hidden, embeds[0], position_ids[:, 0], rope_deltas, cache, kept)

    def decode_step(self, token_id: int, cache: DynamicCache, rope_deltas: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed one generated token. Returns (logits [V], hidden_pre_norm [D]) for its position."""
        embed_tokens = self.model.language_model.embed_tokens
        ids = torch.tensor([[token_id]], device=embed_tokens.weight.device)
        position = cache.get_seq_length() + rope_deltas.to(ids.device)
        position_ids = position.reshape(1, 1, 1).expand(3, 1, 1)
        logits, hidden = self.run_language_model(embed_tokens(ids), position_ids, cache)
        return logits[-1], hidden[-1]

    # ---- <|seg|> -------------------------------------------------------------------------
    def seg_positions(self, input_ids: torch.Tensor, logits: torch.Tensor) -> list[int]:
        """Positions whose state feeds SAM 2: each p with ``input_ids[p+1] == <|seg|>``, plus the
        last position when its argmax is ``<|seg|>`` (the next token would be one)."""
        seg = self.config.seg_token_id
        ids = input_ids[0]
        positions = torch.nonzero(ids[1:] == seg).flatten().tolist()
        if int(logits[-1].argmax()) == seg:
            positions.append(ids.shape[0] - 1)
        return positions

    def seg_tokens(self, hidden_pre_norm: torch.Tensor) -> torch.Tensor:
        """SAM 2 prompt tokens from pre-norm states: [n, D] -> [n, sam2_hidden_tokens, C]."""
        out = self.seg_head(hidden_pre_norm)
        return out.reshape(hidden_pre_norm.shape[0], self.config.sam2_hidden_tokens, self.sam2.hidden_dim)


def _scatter(embeds: torch.Tensor, where: torch.Tensor, values: torch.Tensor, token: str) -> torch.Tensor:
    """Write ``values`` [K, D] into the K positions marked by ``where`` [1, L], in order."""
    count = int(where.sum())
    if count != values.shape[0]:
        raise TokenCountError(f"expected {values.shape[0]} {token} tokens (one per feature), got {count}")
    return embeds.masked_scatter(where[..., None].to(embeds.device), values.to(embeds.dtype))
