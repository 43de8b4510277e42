"""InferenceSession behaviour on real (golden and tiny) models."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import PARITY_DIR
from unipixel_model.errors import MediaDecodeError, UniPixelInputError
from unipixel_model.feature_cache import VisionCache, encode_chunk, llm_frame_indices
from unipixel_model.session import InferenceSession
from unipixel_model.types import BoxPrompt, MaskPrompt, PointPrompt


def _case(name):
    meta = json.loads((PARITY_DIR / f"{name}.json").read_text())
    return meta, load_file(str(PARITY_DIR / f"{name}.safetensors"))


def _golden_session(model, tokenizer, name):
    meta, tensors = _case(name)
    frames = tensors["frames_raw"].numpy()
    session = InferenceSession.open(model, tokenizer, frames if frames.shape[0] > 1 else frames[0])
    session.vision_cache = VisionCache(min_pixels=meta["vision_element"]["min_pixels"])  # the fixtures' budget
    return session, meta, tensors


def _prompts(meta, size_hw):
    height, width = size_hw
    prompts = {}
    for p in meta["prompts"]:
        xy = [(x * width / 768, y * height / 768) for x, y in p["coords_768"]]
        prompts[p["object_id"]] = (PointPrompt(*xy[0], p["frame_index"]) if p["type"] == "point"
                                   else BoxPrompt(*xy[0], *xy[1], p["frame_index"]))
    return prompts


@pytest.mark.parametrize("case", ["a_image_text_seg", "b_video_point_ref_seg", "c_video_box_point_two_objects"])
def test_session_official_mode_reproduces_golden_cases(golden_model, golden_tokenizer, case):
    """From raw frames, prompt text and pixel prompts (not stored tensors) to identical masks."""
    session, meta, tensors = _golden_session(golden_model, golden_tokenizer, case)
    if meta["kind"] == "text_seg":
        result = session.segment(meta["question"], forced_answer=meta["response"], official=True)
    else:
        result = session.refer(_prompts(meta, session.frames.size_hw), meta["mem_question"], official=True, ask=False)
    assert len(result.tracks) == tensors["masks"].shape[0]
    for i, track in enumerate(result.tracks):
        assert torch.allclose(track.low_res_logits, tensors["sam_low_res_masks"][i], atol=1e-4, rtol=1e-4)
        assert np.array_equal(track.masks(), tensors["masks"][i].numpy())
        assert track.frame_idx == list(range(session.frames.num_frames))
        assert 0.0 <= track.score() <= 1.0


def test_session_point_on_later_frame_tracks_both_directions(golden_model, golden_tokenizer):
    session, meta, _ = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    prompts = _prompts(meta, session.frames.size_hw)
    result = session.refer({2: prompts[2]}, ask=False)  # point on frame 4 of 6
    track = result.tracks[0]
    assert track.prompt_frames == [4]
    assert track.frame_idx == list(range(6))          # frames 0-3 come from the backward pass
    assert track.mask(4).any() and track.mask(0).any()
    assert sorted(session.objects) == [2]


def test_session_box_and_mask_prompts_and_memory_turn(golden_model, golden_tokenizer):
    session, meta, tensors = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    prompts = _prompts(meta, session.frames.size_hw)
    gt_mask = tensors["gt_object_masks"][3, 1].numpy()
    result = session.refer({1: prompts[1], 2: MaskPrompt(gt_mask, frame_idx=3)}, ask=False)
    assert [t.obj_id for t in result.tracks] == [1, 2]
    assert np.array_equal(result.tracks[1].mask(3), gt_mask)  # a mask prompt is its own frame's output
    text, refer_mask = session.memory_prompt("What is the relation between [1] and [2]?")
    assert text.startswith("Here is a video with 6 frames denoted as <1> to <6>.")
    assert text.count("<|mem|>") == int(refer_mask.flatten(2).any(-1).sum())
    assert refer_mask.shape[:2] == (3, 2)
    answer = session.ask("What is the relation between [1] and [2]?", forced_answer="[1] is chasing [2].")
    assert answer.text == "[1] is chasing [2]."


def test_session_refine_negative_click_changes_mask(golden_model, golden_tokenizer):
    session, meta, _ = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    prompts = _prompts(meta, session.frames.size_hw)
    before = session.refer({2: prompts[2]}, ask=False).tracks[0]
    frame = 4
    ys, xs = np.nonzero(before.mask(frame))
    x, y = float(xs.mean()), float(ys.mean())
    after = session.refine(2, [PointPrompt(x, y, frame, positive=False)])
    assert not np.array_equal(after.mask(frame), before.mask(frame))
    assert after.mask(frame).sum() < before.mask(frame).sum()
    assert session.objects[2].track is after


def test_session_correction_re_tracks_only_up_to_the_nearest_prompted_frames(golden_model, golden_tokenizer):
    session, meta, _ = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    height, width = session.frames.size_hw
    last = session.frames.num_frames - 1
    session.refer({1: PointPrompt(width / 2, height / 2, 0)}, ask=False)
    session.refine(1, [PointPrompt(width / 3, height / 3, last)])  # a second prompted frame at the end
    before = session.objects[1].track.low_res_logits.clone()
    corrected = session.refine(1, [PointPrompt(width / 4, height / 4, 1, positive=False)], stretch_only=True)
    assert corrected.updated == (1, last - 1)
    assert torch.equal(corrected.low_res_logits[0], before[0])  # prompted frames are never overwritten
    assert torch.equal(corrected.low_res_logits[last], before[last])
    assert not torch.equal(corrected.low_res_logits[1], before[1])
    assert corrected.prompt_frames == [0, 1, last]


def test_session_second_call_reuses_features(golden_model, golden_tokenizer):
    session, meta, _ = _golden_session(golden_model, golden_tokenizer, "b_video_point_ref_seg")
    prompts = _prompts(meta, session.frames.size_hw)
    session.refer(prompts, ask=False)
    encoded = session.features.encoded_frames
    assert encoded == 4
    session.refer({3: prompts[1]}, ask=False)
    assert session.features.encoded_frames == encoded  # no frame encoded twice


@pytest.mark.parametrize("cap_bytes", [1, 1 << 20])
def test_session_tracks_with_a_feature_cache_smaller_than_one_encoding_chunk(golden_model, golden_tokenizer,
                                                                             cap_bytes):
    """UNIPIXEL_FEATURE_CACHE_MB below 4 frames' features (1 MiB: 16 MiB per frame at 1024 px) once evicted the frame
    just encoded before returning it: a KeyError, a 500 on /predict. The frame asked for is always served, and the
    masks are those of an uncapped session."""
    reference, meta, tensors = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    prompts = _prompts(meta, reference.frames.size_hw)
    expected = reference.refer({2: prompts[2]}, ask=False).tracks[0]
    capped = InferenceSession.open(golden_model, golden_tokenizer, tensors["frames_raw"].numpy(),
                                   feature_cache_bytes=cap_bytes)
    capped.vision_cache = VisionCache(min_pixels=meta["vision_element"]["min_pixels"])
    track = capped.refer({2: prompts[2]}, ask=False).tracks[0]
    assert torch.equal(track.low_res_logits, expected.low_res_logits)
    assert 0 < capped.cache_bytes < reference.cache_bytes  # the cap holds: the last frame read, not the video
    # chunks never run ahead of the cap (they were evicted unread: 4x the encodings); the prompt frame, read again
    # when the backward pass starts from it, is the one frame encoded twice
    assert capped.features.encoded_frames <= reference.features.encoded_frames + 1


def test_on_a_cpu_the_backbone_encodes_one_frame_per_call(golden_model, golden_tokenizer, monkeypatch):
    """Chunks of 4 frames buy nothing on a CPU but hold 4 frames' backbone activations at once, the peak of a
    propagation: Hiera-B+ at 768 px, float32, 2 threads, measured 2026-12-05: 693-756 MiB above the model for a chunk
    of 4 against 157-205 MiB for one frame, and 2.9-3.1 s against 2.6 s per frame. On CUDA chunks of 4 keep the GPU
    busy. The masks do not depend on the chunk."""
    reference, meta, _ = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    prompts = _prompts(meta, reference.frames.size_hw)
    batches = []
    encode = golden_model.sam2.encode_frames
    monkeypatch.setattr(golden_model.sam2, "encode_frames", lambda frames: batches.append(len(frames)) or encode(frames))
    track = reference.refer({2: prompts[2]}, ask=False).tracks[0]
    assert batches and set(batches) == {1}, f"frames per backbone call: {batches}"
    batches.clear()
    chunked, _, _ = _golden_session(golden_model, golden_tokenizer, "c_video_box_point_two_objects")
    chunked.features.chunk = 4  # what CUDA uses
    assert torch.equal(chunked.refer({2: prompts[2]}, ask=False).tracks[0].low_res_logits, track.low_res_logits)
    assert max(batches) > 1  # frames 4-5 forward, then 3-1 backward: [2, 1, 3]


def test_the_encoding_chunk_is_one_frame_on_a_cpu_and_four_elsewhere():
    assert encode_chunk(torch.device("cpu")) == 1
    assert encode_chunk(torch.device("cuda", 1)) == 4


def test_session_bad_inputs_raise_clear_errors(golden_model, golden_tokenizer, tmp_path):
    session, meta, _ = _golden_session(golden_model, golden_tokenizer, "b_video_point_ref_seg")
    with pytest.raises(UniPixelInputError, match=r"point \(500, 10\) is outside the 160x120 frame"):
        session.refer({1: PointPrompt(500, 10, 0)})
    with pytest.raises(UniPixelInputError, match="frame_idx 9 is out of range: the media has 4 frames"):
        session.refer({1: PointPrompt(5, 5, 9)})
    with pytest.raises(UniPixelInputError, match="is empty"):
        session.refer({1: MaskPrompt(np.zeros((120, 160), bool), 1)})
    with pytest.raises(UniPixelInputError, match=r"unknown object id \[7\]"):
        session.refine(7, [PointPrompt(1, 1, 0)])
    session.refer({1: PointPrompt(50, 50, 1)}, ask=False)
    with pytest.raises(UniPixelInputError, match="takes one or more PointPrompt clicks"):
        session.refine(1, [(1, 1)])
    with pytest.raises(UniPixelInputError, match=r"must share one frame, got frames \[0, 1\]"):
        session.refine(1, [PointPrompt(1, 1, 0), PointPrompt(2, 2, 1)])
    with pytest.raises(UniPixelInputError, match=r"unknown object id \[7\]"):
        session.ask("What is [7]?")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(MediaDecodeError, match="broken.mp4"):
        InferenceSession.open(golden_model, golden_tokenizer, broken)


def test_llm_frame_indices_keep_prompt_frames():
    picked = llm_frame_indices(100, [37, 38])
    assert len(picked) == 16 and {37, 38} <= set(picked)
    assert llm_frame_indices(5, [3]) == (0, 1, 2, 3, 4)
    with pytest.raises(UniPixelInputError, match="17 distinct prompt frames; the LLM sees at most 16"):
        llm_frame_indices(100, list(range(17)))


def _one_copy(tensor: torch.Tensor) -> bool:
    """True when ``tensor``'s storage holds just its own elements (not a batch it was repeated into or sliced from)."""
    return tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()


def test_sam2_positional_encodings_are_one_copy_shared_by_every_frame_and_object(golden_model):
    """SAM 2's sine encodings are the same for every frame of an encoding chunk and every object of a memory. The stock
    module repeats them per item at every call (a 4-frame chunk at 1024 px: 4 x 85 MiB) and its cache keeps a view into
    the first call's whole batch. Ours hand out one shared copy per feature size, with the stock values."""
    from sam2.modeling.position_encoding import PositionEmbeddingSine

    sam2 = golden_model.sam2
    side = sam2.image_size
    frames = sam2.encode_frames(torch.zeros(4, 3, side, side))
    assert [_one_copy(pos) for pos in frames[0].vision_pos] == [True] * len(frames[0].vision_pos)
    modules = [m for m in sam2.modules() if isinstance(m, PositionEmbeddingSine)]
    assert len(modules) == 2  # the image encoder's FPN neck and the memory encoder
    for module in modules:
        stock = PositionEmbeddingSine(2 * module.num_pos_feats, module.temperature, module.normalize, module.scale,
                                      warmup_cache=False)
        batch = torch.zeros(3, 8, 7, 9)  # a size no cache holds yet: the first call for it has 3 items
        ours = module(batch)
        assert torch.equal(ours, stock(batch))
        assert _one_copy(ours[0]) and ours.shape == (3, 2 * module.num_pos_feats, 7, 9)
        half = batch.to(torch.bfloat16)  # SAM 2 in bf16 (the autocast lever): callers cast with .to(x.dtype)
        assert module(half).dtype == torch.bfloat16 and _one_copy(module(half).to(half.dtype)[0])
        assert torch.equal(module(half), stock(half).to(torch.bfloat16))
        assert [_one_copy(cached) for cached in module.cache.values()] == [True] * len(module.cache)


def _rss_file_mib() -> float:
    """File-backed resident memory of this process (MiB): where a disk-backed track's touched pages show."""
    line = next(l for l in open("/proc/self/status").read().splitlines() if l.startswith("RssFile:"))
    return int(line.split()[1]) / 1024


def test_a_long_video_track_holds_only_the_frames_tracked_so_far(golden_model, golden_tokenizer):
    """Beyond 32 MiB a track's low-res logits live in a temporary file. Marking every frame untracked by filling it
    with -inf wrote the whole file when the object was created: for 18,000 frames at 768 px, 2.5 GiB resident and
    seconds before the first frame, for every new object. Untracked frames now read as empty masks without a write
    (the track's ``frame_idx`` says which frames were tracked), and a correction on one still uses clicks alone."""
    frames = np.zeros((600, 48, 64, 3), np.uint8)  # 600 x 192 x 192 float32 logits: 84 MiB, disk-backed
    frames[:, 10:30, 20:40] = 200
    box = BoxPrompt(20.0, 10.0, 40.0, 30.0, 0)
    InferenceSession.open(golden_model, golden_tokenizer, frames[:8]).refer({1: box}, ask=False)  # code paged in
    session = InferenceSession.open(golden_model, golden_tokenizer, frames)
    session.track_budget_s = 0.0  # the prompted frame and one more, then the call returns
    before = _rss_file_mib()
    track = session.refer({1: box}, ask=False).tracks[0]
    grown = _rss_file_mib() - before
    store_mib = track.low_res_logits.numel() * track.low_res_logits.element_size() / 2 ** 20
    assert store_mib > 32 and grown < store_mib / 8, (grown, store_mib)
    untracked = [f for f in range(600) if f not in track.frame_idx]
    assert len(untracked) > 590 and not track.mask(untracked[-1]).any()
    corrected = session.refine(1, [PointPrompt(x_px=30.0, y_px=20.0, frame_idx=untracked[-1])])
    assert untracked[-1] in corrected.frame_idx
