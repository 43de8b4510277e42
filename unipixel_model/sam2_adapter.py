"""SAM 2.1 driven by UniPixel's hidden tokens, built on the PyPI ``sam2`` package.

UniPixel's fork of SAM 2 adds a third kind of sparse prompt: the ``<|seg|>`` hidden tokens,
concatenated after the (padded) point tokens. It also gates NO_OBJ low-res logits only in
inference mode, and stores memories in the feature dtype. :class:`UniPixelSAM2` extends the
stock ``SAM2Base`` with exactly those changes; everything else (Hiera, memory attention,
memory encoder, decoder) is the package's code with the package's module names.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from unipixel_model import _tv_shim  # noqa: F401  (sam2 imports torchvision)
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam2_base import NO_OBJ_SCORE, SAM2Base

from unipixel_model.toy_priors import box_pass_prompt, click_prior, track_prior

# Nodes that the official fork builds from kwargs (their `_target_` lines are commented out
# in its yaml); the PyPI package needs the targets back.
_FORK_NODE_TARGETS = {
    ("memory_attention", "layer"): "sam2.modeling.memory_attention.MemoryAttentionLayer",
    ("memory_attention", "layer", "self_attention"): "sam2.modeling.sam.transformer.RoPEAttention",
    ("memory_attention", "layer", "cross_attention"): "sam2.modeling.sam.transformer.RoPEAttention",
    ("memory_encoder", "fuser", "layer"): "sam2.modeling.memory_encoder.CXBlock",
}
# SAM 2's sine positional encodings (FPN neck, memory encoder), built as one shared copy per size.
_POSITION_ENCODING_NODES = (("image_encoder", "neck", "position_encoding"), ("memory_encoder", "position_encoding"))
_STOCK_POSITION_ENCODING = "sam2.modeling.position_encoding.PositionEmbeddingSine"
_PACKAGE_CONFIG_DIR = Path(__file__).parent / "configs"


class SharedPositionEmbeddingSine(PositionEmbeddingSine):
    """The stock sine encoding with one copy per feature size, handed to every batch item as an expanded view.

    The encoding depends on the feature size only, yet the stock ``_pe`` repeats it for each item of every call (a
    4-frame encoding chunk at 1024 px: 4 x 85 MiB made and freed each time; every tracked frame's memory kept its own
    copy) and caches a view into its first call's whole batch. Values are the stock ones, bit for bit. ``forward``
    returns the input's floating dtype (one cast copy per size), so the callers' ``.to(x.dtype)`` copies nothing when
    SAM 2 runs in bf16 either.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cast_cache: dict[tuple, torch.Tensor] = {}  # (H, W, dtype) -> [C, H, W], cast from the float32 copy

    @torch.no_grad()
    def _pe(self, B, device, *cache_key):  # noqa: N803 (the stock signature)
        if cache_key not in self.cache:
            super()._pe(1, device, *cache_key)  # one item: the cache keeps a [C, H, W] tensor of its own
        return self.cache[cache_key].to(device)[None].expand(B, -1, -1, -1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] encodings for features ``x`` [B, *, H, W]: float32, or ``x``'s floating dtype."""
        pos = self._pe(x.shape[0], x.device, x.shape[-2], x.shape[-1])
        if not x.dtype.is_floating_point or x.dtype == pos.dtype:
            return pos
        key = (x.shape[-2], x.shape[-1], x.dtype)
        if key not in self.cast_cache:
            self.cast_cache[key] = pos[0].to(x.dtype)
        return self.cast_cache[key].to(x.device)[None].expand(x.shape[0], -1, -1, -1)


@dataclass
class FrameFeatures:
    """Backbone features of one frame, flattened the way ``SAM2Base`` consumes them.

    Attributes:
        vision_feats: per level, float [H_l*W_l, 1, C_l] (levels: stride 4, 8, 16).
        vision_pos: per level, positional encodings of the same shapes.
        feat_sizes: per level, (H_l, W_l).
    """

    vision_feats: list[torch.Tensor]
    vision_pos: list[torch.Tensor]
    feat_sizes: list[tuple[int, int]]

    @property
    def feats_nbytes(self) -> int:
        """Bytes of the frame's own features, without the positional encodings (one copy serves every frame)."""
        return sum(t.numel() * t.element_size() for t in self.vision_feats)

    def to(self, device: torch.device | str) -> "FrameFeatures":
        return FrameFeatures([x.to(device) for x in self.vision_feats],
                             [x.to(device) for x in self.vision_pos], self.feat_sizes)


class UniPixelSAM2(SAM2Base):
    """``SAM2Base`` with the hidden-token prompt path of UniPixel's SAM 2 fork.

    Args:
        inference_mode: gate low-res logits to NO_OBJ_SCORE where the object score is <= 0
            (the fork does this only for inference; training must see ungated logits).
        **kwargs: ``SAM2Base`` arguments; training-only keys of the fork's yaml are ignored.
    """

    def __init__(self, inference_mode: bool = True, click_prior_logit: float = 0.0, track_prior_margin: float = 0.0,
                 box_pass_margin: float = 0.0, **kwargs) -> None:
        accepted = inspect.signature(SAM2Base.__init__).parameters
        super().__init__(**{k: v for k, v in kwargs.items() if k in accepted})
        self.inference_mode = inference_mode
        # Toy models only (0 = off, as in every released SAM 2.1 / UniPixel): clicks and boxes are also
        # drawn into the dense mask prompt, see :func:`click_prior`.
        self.click_prior_logit = float(click_prior_logit)
        # Toy models only (0 = off): a tracked frame is also prompted with the box of the neighbouring frame's mask,
        # grown by this share of its side, see :func:`track_prior`.
        self.track_prior_margin = float(track_prior_margin)
        # Toy models only (0 = off): when serving (inference_mode), a prompt without a box (clicks, hidden tokens) is
        # decoded again with the box of its first mask, grown by this share of its side, see :func:`box_pass_prompt`.
        self.box_pass_margin = float(box_pass_margin)

    def _forward_sam_heads(self, backbone_features, point_inputs=None, mask_inputs=None,
                           high_res_features=None, multimask_output=False, hidden_inputs=None):
        """Stock prompt encoding and mask decoding, plus ``hidden_inputs`` [B, K, C] appended
        after the sparse point tokens. Returns the same 7-tuple as ``SAM2Base``."""
        batch = backbone_features.size(0)
        device = backbone_features.device
        if point_inputs is not None:
            coords, labels = point_inputs["point_coords"], point_inputs["point_labels"]
        else:  # a zero point with label -1, exactly as the stock code pads
            coords = torch.zeros(batch, 1, 2, device=device)
            labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_inputs is not None:
            mask_prompt = mask_inputs
            if mask_inputs.shape[-2:] != self.sam_prompt_encoder.mask_input_size:
                mask_prompt = F.interpolate(mask_inputs.float(), size=self.sam_prompt_encoder.mask_input_size,
                                            align_corners=False, mode="bilinear", antialias=True)
        if self.click_prior_logit and point_inputs is not None:
            prior = click_prior(coords, labels, self.sam_prompt_encoder.mask_input_size, self.image_size,
                                self.click_prior_logit)
            mask_prompt = prior if mask_prompt is None else mask_prompt + prior
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
        if hidden_inputs is not None:
            sparse = torch.cat([sparse, hidden_inputs.to(sparse.dtype)], dim=1)
        low_res_multimasks, ious, sam_output_tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features, image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=multimask_output, repeat_image=False, high_res_features=high_res_features)
        is_obj_appearing = object_score_logits > 0
        if self.pred_obj_scores and self.inference_mode:
            low_res_multimasks = torch.where(is_obj_appearing[:, None, None], low_res_multimasks, NO_OBJ_SCORE)
        low_res_multimasks = low_res_multimasks.float()
        high_res_multimasks = F.interpolate(low_res_multimasks, size=(self.image_size, self.image_size),
                                            mode="bilinear", align_corners=False)
        sam_output_token = sam_output_tokens[:, 0]
        if multimask_output:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(batch, device=device)
            low_res_masks = low_res_multimasks[rows, best].unsqueeze(1)
            high_res_masks = high_res_multimasks[rows, best].unsqueeze(1)
            if sam_output_tokens.size(1) > 1:
                sam_output_token = sam_output_tokens[rows, best]
        else:
            low_res_masks, high_res_masks = low_res_multimasks, high_res_multimasks
        obj_ptr = self.obj_ptr_proj(sam_output_token)
        if self.pred_obj_scores:
            appearing = object_score_logits.sigmoid() if self.soft_no_obj_ptr else is_obj_appearing.float()
            if self.fixed_no_obj_ptr:
                obj_ptr = appearing * obj_ptr
            obj_ptr = obj_ptr + (1 - appearing) * self.no_obj_ptr
        return (low_res_multimasks, high_res_multimasks, ious, low_res_masks, high_res_masks,
                obj_ptr, object_score_logits)

    def track_step(self, frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
                   feat_sizes, point_inputs, mask_inputs, output_dict, num_frames, track_in_reverse=False,
                   run_mem_encoder=True, prev_sam_mask_logits=None, hidden_inputs=None, keep_multimasks=False):
        """``SAM2Base.track_step`` with ``hidden_inputs`` [B, K, C] threaded to the SAM heads.

        Returns the stock output dict plus ``ious`` [B, M] (all candidate IoUs) and
        ``hidden_inputs``. With ``keep_multimasks`` (training: the loss scores every candidate)
        it also holds ``multimasks_high_res`` [B, M, S, S], the candidate logits upsampled to
        ``image_size``.
        """
        high_res_features = None
        if len(current_vision_feats) > 1:
            high_res_features = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
                                 for x, s in zip(current_vision_feats[:-1], feat_sizes[:-1])]
        if mask_inputs is not None and self.use_mask_input_as_output_without_sam:
            pix_feat = current_vision_feats[-1].permute(1, 2, 0).view(-1, self.hidden_dim, *feat_sizes[-1])
            sam_outputs = self._use_mask_as_output(pix_feat, high_res_features, mask_inputs)
        else:
            pix_feat = self._prepare_memory_conditioned_features(
                frame_idx=frame_idx, is_init_cond_frame=is_init_cond_frame,
                current_vision_feats=current_vision_feats[-1:], current_vision_pos_embeds=current_vision_pos_embeds[-1:],
                feat_sizes=feat_sizes[-1:], output_dict=output_dict, num_frames=num_frames,
                track_in_reverse=track_in_reverse)
            if prev_sam_mask_logits is not None:
                mask_inputs = prev_sam_mask_logits
            if self.track_prior_margin and not is_init_cond_frame and point_inputs is None and mask_inputs is None:
                point_inputs = track_prior(output_dict, frame_idx, track_in_reverse, self.image_size,
                                           self.track_prior_margin)
            sam_outputs = self._forward_sam_heads(
                backbone_features=pix_feat, point_inputs=point_inputs, mask_inputs=mask_inputs,
                high_res_features=high_res_features,
                multimask_output=self._use_multimask(is_init_cond_frame, point_inputs),
                hidden_inputs=hidden_inputs)
            # Served only: in training the first decoding is the one that must learn (the box is not differentiable).
            boxed = None if not (self.box_pass_margin and self.inference_mode) or mask_inputs is not None else \
                box_pass_prompt(point_inputs, hidden_inputs is not None, sam_outputs[3], self.image_size,
                                self.box_pass_margin)
            if boxed is not None:  # decoded as a box prompt is: one mask
                sam_outputs = self._forward_sam_heads(
                    backbone_features=pix_feat, point_inputs=boxed, mask_inputs=None,
                    high_res_features=high_res_features, multimask_output=False, hidden_inputs=hidden_inputs)
        _, high_res_multimasks, ious, low_res_masks, high_res_masks, obj_ptr, object_score_logits = sam_outputs
        current_out = {"point_inputs": point_inputs, "mask_inputs": mask_inputs, "pred_masks": low_res_masks,
                       "pred_masks_high_res": high_res_masks, "obj_ptr": obj_ptr,
                       "object_score_logits": object_score_logits, "ious": ious,
                       "hidden_inputs": hidden_inputs}
        if keep_multimasks:
            current_out["multimasks_high_res"] = high_res_multimasks
        self._encode_memory_in_output(current_vision_feats, feat_sizes, point_inputs, run_mem_encoder,
                                      high_res_masks, object_score_logits, current_out)
        return current_out

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> list[FrameFeatures]:
        """Run Hiera + FPN on normalised frames.

        Args:
            frames: float [N, 3, S, S], already resized to ``image_size`` and normalised.
        Returns:
            One :class:`FrameFeatures` per frame.
        """
        backbone_out = self.forward_image(frames.to(self.dtype))
        _, feats, pos, sizes = self._prepare_backbone_features(backbone_out)
        return [FrameFeatures([f[:, i:i + 1] for f in feats], [p[:, i:i + 1] for p in pos], sizes)
                for i in range(frames.shape[0])]

    @property
    def dtype(self) -> torch.dtype:
        return self.image_encoder.trunk.patch_embed.proj.weight.dtype


def resolve_sam2_yaml(name: str, search_dirs: list[Path] | tuple[Path, ...] = ()) -> Path:
    """Find the yaml for a ``sam2_config`` name such as ``configs/sam2.1_hiera_b+``.

    Looked up in order: the given directories (a checkpoint dir may ship its own yaml),
    this package's ``configs/``, and the ``sam2`` package's ``configs/sam2.1/``.

    Raises:
        FileNotFoundError: listing every place that was searched.
    """
    stem = Path(name).name.removesuffix(".yaml")
    sam2_root = Path(str(resources.files("sam2")))
    candidates = [Path(d) / f"{stem}.yaml" for d in search_dirs]
    candidates += [_PACKAGE_CONFIG_DIR / f"{stem}.yaml", sam2_root / "configs" / "sam2.1" / f"{stem}.yaml",
                   sam2_root / f"{name.removesuffix('.yaml')}.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"SAM 2 config {name!r} not found; looked at: " + ", ".join(map(str, candidates)))


def build_sam2(yaml_path: Path, image_size: int, inference_mode: bool) -> UniPixelSAM2:
    """Instantiate :class:`UniPixelSAM2` from a SAM 2 yaml (official or fork layout).

    Args:
        yaml_path: a hydra yaml with a top-level ``model`` node.
        image_size: SAM 2 input side in pixels (overrides the yaml's 1024).
        inference_mode: see :class:`UniPixelSAM2`.
    """
    from hydra.utils import instantiate

    cfg = OmegaConf.load(yaml_path)
    model_cfg: DictConfig = cfg.model
    for path, target in _FORK_NODE_TARGETS.items():
        node = OmegaConf.select(model_cfg, ".".join(path))
        if node is not None and "_target_" not in node:
            node["_target_"] = target
    for path in _POSITION_ENCODING_NODES:
        node = OmegaConf.select(model_cfg, ".".join(path))
        if node is not None and node.get("_target_") == _STOCK_POSITION_ENCODING:
            node["_target_"] = f"{SharedPositionEmbeddingSine.__module__}.{SharedPositionEmbeddingSine.__name__}"
    model_cfg["_target_"] = f"{UniPixelSAM2.__module__}.{UniPixelSAM2.__name__}"
    model_cfg["image_size"] = image_size
    model_cfg["inference_mode"] = inference_mode
    # The fork's yaml carries training-only keys; UniPixelSAM2 drops what SAM2Base does not take.
    # Hiera calls .item() while building, so SAM 2 (81 M parameters) is always built on the CPU,
    # even inside a meta-device context (``inspect``); callers move it afterwards.
    with torch.device("cpu"):
        return instantiate(model_cfg, _recursive_=True)
