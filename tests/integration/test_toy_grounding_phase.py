"""Phase 7 of ``python -m finetune toy`` (finetune/world/grounding.py): a text-grounding head added to a checkpoint,
every other tensor kept, and served by the inference session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from finetune.world import grounding
from finetune.world.grounding import encode_queries, train_grounding_phase
from finetune.world.samples import SampleMix, clip_samples
from finetune.world.scene import WorldConfig, make_clip
from finetune.world.render_cache import rendered
from unipixel_model import processor, templates
from unipixel_model.loading import from_pretrained, resolve_checkpoint
from unipixel_model.session import InferenceSession
from unipixel_model.tokenization import load_tokenizer
from unipixel_model.toy_grounding import stride8_features

TEXT_ONLY = SampleMix(mem_prompt=0.0, mem_mask=0.0, seg=1.5, region=0.0, ref=0.0, max_window=4)


@pytest.fixture(scope="module")
def toy_path():
    try:
        return resolve_checkpoint("toy")
    except FileNotFoundError as err:
        pytest.fail(str(err), pytrace=False)


def _without_head(toy_path, tmp_path):
    """The shipped toy as it was before phase 7: every tensor but toy_grounding.*, width 0."""
    model = from_pretrained(toy_path)
    model.config.toy_text_grounding = 0
    model.toy_grounding = None
    from unipixel_model.loading import save_checkpoint

    save_checkpoint(model.to(torch.float16), tmp_path / "before")
    load_tokenizer(toy_path).save_pretrained(str(tmp_path / "before"))
    return tmp_path / "before"


def test_the_phase_adds_a_head_keeps_every_other_tensor_and_the_session_clicks_where_it_points(toy_path, tmp_path):
    """The 3-frame clip has 3 LLM frames (every frame), so the head scores all of them."""
    before = _without_head(toy_path, tmp_path)
    rng, samples = np.random.default_rng(0), []
    for seed in range(7_000_000, 7_000_020):  # stills outside every seed range of the world's sets
        clip = make_clip(seed, WorldConfig(num_frames=1))
        samples += clip_samples(clip, rendered(clip, tmp_path / "work"), rng, TEXT_ONLY)
    summary = train_grounding_phase(before, tmp_path / "after", samples, steps=20)
    assert summary["samples"] == len([s for s in samples if s.kind == "seg"]) > 0
    assert len(summary["losses"]) == 20

    old, new = load_file(before / "model.safetensors"), load_file(tmp_path / "after" / "model.safetensors")
    added = sorted(set(new) - set(old))
    assert added and all(k.startswith("toy_grounding.") for k in added), added
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert all(new[k].dtype == torch.float16 for k in added)

    model = from_pretrained(tmp_path / "after").eval()
    assert model.config.toy_text_grounding == 64 and model.toy_grounding is not None
    clip = make_clip(7_000_100, WorldConfig(num_frames=3))
    session = InferenceSession.open(model, load_tokenizer(tmp_path / "after"), clip.frames)
    with torch.no_grad(), model.sam2_gating(True):
        result = session.segment(templates.segmentation_question("the red circle", False))
    assert len(result.tracks) == 1
    prompt = session.objects[result.tracks[0].obj_id].prompts[0]
    assert prompt.hidden is not None and prompt.point_labels.tolist() == [[1]]  # a click beside <|seg|>
    # ... on the frame and at the cell the head itself scores best (SAM 2 input pixels, 128 px: cells of 8 px)
    question = templates.segmentation_question("the red circle", False)
    features = stride8_features([session.features(i) for i in range(clip.num_frames)])
    best = model.toy_grounding.point(question, features, processor.sam2_transform(clip.frames, 128))
    assert prompt.frame_idx == best.frame
    assert prompt.point_coords.tolist() == [[[best.x_px, best.y_px]]]


def test_queries_encoded_a_chunk_of_frames_per_call_get_the_features_of_one_call_per_query(toy_path, tmp_path,
                                                                                           monkeypatch):
    """Phase 7 encodes its queries ``ENCODE_FRAMES`` frames per SAM 2 call: each query still gets its own frames'
    features, in the order of the samples, whatever chunk it fell in."""
    from finetune.batch import BatchBuilder
    from finetune.recipe import load_recipe
    from unipixel_model.toy_grounding import FEATURE_LEVEL

    monkeypatch.setattr(grounding, "ENCODE_FRAMES", 5)  # chunks of 1-4-frame queries: some split, some share
    model, tokenizer = from_pretrained(toy_path).eval(), load_tokenizer(toy_path)
    rng, samples = np.random.default_rng(1), []
    for seed, frames in zip(range(7_000_200, 7_000_206), (1, 6, 1, 6, 6, 1)):
        clip = make_clip(seed, WorldConfig(num_frames=frames))
        samples += clip_samples(clip, rendered(clip, tmp_path / "work"), rng, TEXT_ONLY)
    queries = encode_queries(model, tokenizer, samples)
    asked = [s for s in samples if s.kind == "seg"]
    assert [q.question for q in queries] == [s.question for s in asked]
    assert sum(q.frames.shape[0] for q in queries) > 2 * grounding.ENCODE_FRAMES
    builder = BatchBuilder(tokenizer, model.config, load_recipe("toy_tracks"))
    with torch.no_grad():
        for sample, query in zip(asked, queries):
            frames = builder.build(sample).sam2_frames
            alone = model.sam2.forward_image(frames)["backbone_fpn"][FEATURE_LEVEL]
            assert torch.equal(query.frames, frames)
            torch.testing.assert_close(query.features, alone, atol=1e-4, rtol=1e-4)
