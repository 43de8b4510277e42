"""An annotation session over one image or video: decode once, cache features, remember objects.

Typical use::

    session = InferenceSession.open(model, tokenizer, "clip.mp4")
    result = session.segment("Please segment the man in the red jacket.")   # text -> masks
    result = session.refer({1: PointPrompt(320, 200, frame_idx=40)})        # click -> object [1]
    session.refine(1, [PointPrompt(300, 210, 55, positive=False)])             # negative click
    answer = session.ask("What is [1] doing?")                               # memory injection

The LLM reads up to 16 frames (prompt frames always among them) while SAM 2 tracks every
frame. ``official=True`` reproduces the official inference exactly (SAM 2 seeded on frame 0 by
the ``<|seg|>`` tokens alone, forward only); the default seeds SAM 2 on the prompt's own frame
with the click or box as well and propagates both ways.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from unipixel_model import templates
from unipixel_model.errors import UniPixelInputError
from unipixel_model.feature_cache import SAM2FeatureCache, VisionCache, llm_frame_indices, to_numpy_mask
from unipixel_model.heap import limit_heap_retention, release_free_memory
from unipixel_model.llm_turn import LLMTurn, llm_turn
from unipixel_model.mask_decoder import BACKWARD, FORWARD, ConditioningPrompt, track_object
from unipixel_model.media import Frames, load_frames
from unipixel_model.memory_bank import build_refer_mask, mem_prefix
from unipixel_model.modeling import UniPixelModel
from unipixel_model.prompt_checks import check_clicks, check_prompt
from unipixel_model.prompt_encoder import RefPrompt, mask_input, ref_prompt_px, sam_input_px
from unipixel_model.refinement import refined_prompts, stretch_around
from unipixel_model.seg_seeding import ref_seeds, seg_seeds
from unipixel_model.track_store import PendingTrack, empty_track, fill, prompt_to, resume, stretch_track
from unipixel_model.types import MaskPrompt, MaskTrack, PointPrompt, SegmentationResult, VisualPrompt

DEFAULT_FEATURE_CACHE_BYTES = 1 << 30
_OBJ_REF = re.compile(r"\[(\d+)\]")


@dataclass
class SessionObject:
    """An entry of the object memory bank: its SAM 2 prompts and current track."""

    obj_id: int
    prompts: list[ConditioningPrompt]
    track: MaskTrack
    directions: tuple[str, ...]


@dataclass
class InferenceSession:
    """State of one annotation session. Create with :meth:`open`."""

    model: UniPixelModel
    tokenizer: object
    frames: Frames
    features: SAM2FeatureCache
    vision_cache: VisionCache = field(default_factory=VisionCache)
    objects: dict[int, SessionObject] = field(default_factory=dict)
    max_new_tokens: int = 256
    # Seconds one call may spend propagating an object; the rest waits for continue_tracking().
    # None tracks every frame before returning.
    track_budget_s: float | None = None
    # Or one deadline (time.monotonic()) shared by every object of a call; it wins over the budget.
    track_deadline: float | None = None
    pending: dict[int, PendingTrack] = field(default_factory=dict)

    @classmethod
    def open(cls, model: UniPixelModel, tokenizer, media, *, feature_cache_bytes: int = DEFAULT_FEATURE_CACHE_BYTES,
             max_frames: int | None = None, max_side: int | None = None) -> "InferenceSession":
        """Decode ``media`` (path, frame folder, uint8 array, or decoded :class:`Frames`) once and start a session.

        ``max_side``: frames of files with a longer side are stored with this one, in pixels (see
        :func:`~unipixel_model.media.load_frames`); prompts and masks stay in the media's own pixels.
        """
        limit_heap_retention()  # two malloc arenas: memory flat in video length (see heap.py)
        frames = load_frames(media, max_frames=max_frames, max_side=max_side)
        vision = VisionCache(min_pixels=model.config.llm_min_pixels, base_max_pixels=model.config.llm_max_pixels)
        return cls(model, tokenizer, frames, SAM2FeatureCache(model.sam2, frames, feature_cache_bytes), vision)

    # ---- public API ----------------------------------------------------------------------
    @torch.no_grad()
    def segment(self, text: str, *, forced_answer: str | None = None, official: bool = False) -> SegmentationResult:
        """Text query -> answer + one track per ``<|seg|>`` over every frame.

        Where each ``<|seg|>`` seeds SAM 2 (the frame its tokens find the object on, both ways; ``official=True``:
        frame 0, forward, as the official inference does): :mod:`unipixel_model.seg_seeding`.
        """
        indices = llm_frame_indices(self.frames.num_frames, [])
        turn = self._llm(text, indices, [], None, forced_answer)
        return SegmentationResult(turn.answer, self._seg_tracks(turn, indices, official, text))

    def _seg_tracks(self, turn: LLMTurn, indices: tuple[int, ...], official: bool,
                    query: str | None = None) -> list[MaskTrack]:
        tokens = self.model.seg_tokens(turn.seg_hidden)
        seeds = seg_seeds(self.model, self.features, self.frames, tokens, indices, official, query)
        return [self._new_object(seed.prompts, seed.directions) for seed in seeds]

    @torch.no_grad()
    def refer(self, prompts: Mapping[int, VisualPrompt], question: str | None = None, *,
              forced_answer: str | None = None, official: bool = False, ask: bool = True) -> SegmentationResult:
        """Visual prompts -> objects saved as ``[id]`` -> (optionally) an answer about them.

        Args:
            prompts: object id -> point, box or mask prompt (any frame).
            question: may contain ``[id] <|ref|>``; without ``<|ref|>`` the references are
                prepended. When given and ``ask``, a second pass answers it from the saved masks.
            forced_answer: teacher-forced answer of that second pass.
            official: seed SAM 2 on frame 0 with the hidden tokens only, forward only.
        """
        if not prompts:
            raise UniPixelInputError("refer() needs at least one prompt")
        for obj_id, prompt in prompts.items():
            check_prompt(obj_id, prompt, self.frames)
        ids = list(prompts)
        tracks = [self._mask_object(i, p) for i, p in prompts.items() if isinstance(p, MaskPrompt)]
        ref_ids = [i for i in ids if not isinstance(prompts[i], MaskPrompt)]
        if ref_ids:
            tracks += self._prefill_memory(ref_ids, prompts, question, official)
        answer = ""
        if question is not None and ask:
            plain = re.sub(r"\s*<\|ref\|>", "", question)
            answer = self.ask(plain, ids, forced_answer=forced_answer).text
        order = {i: n for n, i in enumerate(ids)}
        return SegmentationResult(answer, sorted(tracks, key=lambda t: order[t.obj_id]))

    @torch.no_grad()
    def ask(self, question: str, obj_ids: list[int] | None = None, *,
            forced_answer: str | None = None, official: bool = False) -> SegmentationResult:
        """Answer about saved objects (memory injection). ``obj_ids`` default: the ``[n]`` in the question.
        A ``<|seg|>`` in the answer becomes a track as in :meth:`segment`."""
        text, refer_mask = self.memory_prompt(question, obj_ids)
        indices = llm_frame_indices(self.frames.num_frames, [])
        turn = self._llm(text, indices, [], refer_mask, forced_answer)
        return SegmentationResult(turn.answer, self._seg_tracks(turn, indices, official))

    def memory_prompt(self, question: str, obj_ids: list[int] | None = None) -> tuple[str, torch.Tensor | None]:
        """The memory-injection question and its ``refer_mask`` [T_grid, O, h, w] built from the
        saved tracks on the frames the LLM reads (None when no object is referenced)."""
        ids = obj_ids if obj_ids is not None else sorted({int(n) for n in _OBJ_REF.findall(question)})
        for obj_id in ids:
            self._object(obj_id)
        if not ids:
            return question, None
        indices = llm_frame_indices(self.frames.num_frames, [])
        video = self.vision_cache.video(self.frames, indices)
        masks = torch.from_numpy(np.stack([np.stack([self.objects[i].track.mask(f) for i in ids]) for f in indices]))
        refer_mask = build_refer_mask(masks, video.grid_hw)
        prefix = mem_prefix(ids, refer_mask, None if self.frames.is_image else len(indices))
        return prefix + question, refer_mask

    @torch.no_grad()
    def refine(self, obj_id: int, clicks: Sequence[PointPrompt], *, stretch_only: bool = False) -> MaskTrack:
        """Clicks sent straight to SAM 2 on their frame (positive adds, negative removes), then re-propagate.

        Args:
            obj_id: a saved object.
            clicks: one or more clicks, all on the same 0-based frame (pixels of the original frame).
            stretch_only: re-track only the frames between the nearest other prompted frames on
                each side (or the ends); every other frame keeps its mask. ``track.updated``
                says which frames changed.
        Returns:
            The object's new :class:`MaskTrack` (also stored in the memory bank).
        """
        entry = self._object(obj_id)
        frame_idx = check_clicks(clicks, self.frames)
        coords = self._to_sam(torch.tensor([(c.x_px, c.y_px) for c in clicks], dtype=torch.float32))[None]
        labels = torch.tensor([[int(c.positive) for c in clicks]], dtype=torch.int32)
        prev_logits = None  # a frame never tracked: clicks alone
        if frame_idx in entry.track.frame_idx:
            prev_logits = entry.track.low_res_logits[frame_idx][None, None].clone()
        prompts = refined_prompts(entry.prompts, frame_idx, coords, labels, prev_logits)
        stretch = None
        if stretch_only:
            stretch = stretch_around(frame_idx, [p.frame_idx for p in prompts], self.frames.num_frames)
        entry.prompts, entry.directions = prompts, (FORWARD, BACKWARD)
        entry.track = self._track(obj_id, prompts, entry.directions, stretch, entry.track if stretch else None)
        return entry.track

    def has(self, obj_id: int) -> bool:
        """True while object ``obj_id`` is in the memory bank (from :meth:`refer` until :meth:`forget`)."""
        return obj_id in self.objects

    def track(self, obj_id: int) -> MaskTrack:
        """The current track of object ``obj_id``: what the last :meth:`refer` / :meth:`refine` returned,
        filled in place by :meth:`continue_tracking` since.

        Raises:
            UniPixelInputError: no such object (says which ids exist).
        """
        return self._object(obj_id).track

    def object_ids(self) -> list[int]:
        """Ids of the objects in the memory bank, ascending."""
        return sorted(self.objects)

    @property
    def cache_bytes(self) -> int:
        """Bytes the session's SAM 2 feature cache holds now: at most ``feature_cache_bytes``, or the one frame being
        read when a single frame's features are larger than that."""
        return self.features.nbytes

    def new_object_id(self) -> int:
        """An id no object in the memory bank has (what :meth:`refer` picks when given none)."""
        return max(self.objects, default=0) + 1

    def forget(self, obj_id: int) -> None:
        """Remove an object from the memory bank."""
        self._object(obj_id)
        del self.objects[obj_id]
        self.pending.pop(obj_id, None)

    @torch.no_grad()
    def continue_tracking(self, obj_id: int, max_frames: int | None = None) -> bool:
        """Propagate a track cut short by ``track_budget_s`` by up to ``max_frames`` more frames
        (all when None), filling its :class:`MaskTrack` in place. Returns True when it is complete."""
        job = self.pending.get(obj_id)
        if job is None:
            return True
        try:
            if not resume(job, max_frames):
                return False
            del self.pending[obj_id]
            return True
        finally:
            release_free_memory()  # before another thread (another arena) propagates: see heap.py

    @contextmanager
    def deadline(self, deadline: float | None) -> Iterator[None]:
        """Calls inside share one propagation deadline (``time.monotonic()`` seconds; None: no
        limit); frames past it wait for :meth:`continue_tracking`."""
        previous, self.track_deadline = self.track_deadline, deadline
        try:
            yield
        finally:
            self.track_deadline = previous

    def incomplete(self) -> list[int]:
        """Objects whose propagation still has frames to go."""
        return sorted(self.pending)

    # ---- internals -----------------------------------------------------------------------
    def _prefill_memory(self, ids: list[int], prompts: Mapping[int, VisualPrompt], question: str | None,
                        official: bool) -> list[MaskTrack]:
        """Pass 1: ``[id] <|ref|>`` questions with the known ``[id] <|seg|>`` answer forced."""
        frames = [prompts[i].frame_idx for i in ids]
        indices = llm_frame_indices(self.frames.num_frames, frames)
        refs = [self._ref_prompt(prompts[i], indices.index(prompts[i].frame_idx)) for i in ids]
        text, answer = templates.memory_question(ids, question)
        turn = self._llm(text, indices, refs, None, answer)
        tokens = self.model.seg_tokens(turn.seg_hidden[:len(ids)])  # an extra <|seg|> after <|im_end|> is dropped
        seeds = ref_seeds(frames, refs, tokens, official)
        return [self._new_object(seed.prompts, seed.directions, obj_id) for obj_id, seed in zip(ids, seeds)]

    def _mask_object(self, obj_id: int, prompt: MaskPrompt) -> MaskTrack:
        mask = mask_input(torch.from_numpy(to_numpy_mask(prompt.mask)), self.model.config.sam2_image_size)
        return self._new_object([ConditioningPrompt(prompt.frame_idx, mask=mask)], (FORWARD, BACKWARD), obj_id)

    def _new_object(self, prompts: list[ConditioningPrompt], directions: tuple[str, ...],
                    obj_id: int | None = None) -> MaskTrack:
        obj_id = obj_id if obj_id is not None else self.new_object_id()
        track = self._track(obj_id, prompts, directions)
        self.objects[obj_id] = SessionObject(obj_id, prompts, track, directions)
        return track

    def _track(self, obj_id: int, prompts: list[ConditioningPrompt], directions: tuple[str, ...],
               stretch: tuple[int, int, int] | None = None, base: MaskTrack | None = None) -> MaskTrack:
        """Track ``obj_id`` from ``prompts``; with ``stretch`` (start, lo, hi), only frames
        lo < f < hi are re-tracked and the rest are kept from ``base``."""
        sam2 = self.model.sam2
        device = next(sam2.parameters()).device
        prompts = [prompt_to(p, device) for p in prompts]
        total = self.frames.num_frames
        side = sam2.image_size // 4
        if base is not None and stretch is not None:
            track = stretch_track(base, [p.frame_idx for p in prompts], stretch)
        else:
            track = empty_track(obj_id, self.frames.size_hw, total, side, [p.frame_idx for p in prompts])
        self.pending.pop(obj_id, None)  # a new track supersedes an unfinished one
        steps = track_object(sam2, self.features, total, prompts, directions, stretch=stretch)
        deadline = self.track_deadline
        if deadline is None and self.track_budget_s is not None:
            deadline = time.monotonic() + self.track_budget_s
        pending = fill(track, steps, deadline, stretch)
        if pending is not None:
            self.pending[obj_id] = pending
        release_free_memory()  # this call's freed temporaries go back before the next (see heap.py)
        return track

    def _llm(self, question: str, indices: tuple[int, ...], refs: list[RefPrompt],
             refer_mask: torch.Tensor | None, forced_answer: str | None) -> LLMTurn:
        return llm_turn(self.model, self.tokenizer, self.frames, self.vision_cache, question, indices, refs,
                        refer_mask, forced_answer, self.max_new_tokens)

    def _ref_prompt(self, prompt: VisualPrompt, llm_frame: int) -> RefPrompt:
        return ref_prompt_px(prompt, llm_frame, self.frames.size_hw, self.model.config.sam2_image_size)

    def _to_sam(self, xy_px: torch.Tensor) -> torch.Tensor:
        return sam_input_px(xy_px, self.frames.size_hw, self.model.config.sam2_image_size)

    def _object(self, obj_id: int) -> SessionObject:
        if obj_id not in self.objects:
            raise UniPixelInputError(f"unknown object id [{obj_id}]; this session knows {sorted(self.objects) or 'none'}")
        return self.objects[obj_id]
