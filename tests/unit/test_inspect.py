"""``python -m unipixel_model.inspect`` lists exactly the released checkpoints' tensors (spec §3)."""

import pytest

from unipixel_model.inspect import checkpoint_listing, main


@pytest.fixture(scope="module")
def listing_3b():
    return dict(line.split("\t") for line in checkpoint_listing("3b"))


def test_inspect_3b_counts_and_tied_head(listing_3b):
    assert len(listing_3b) == 1475
    assert "lm_head.weight" not in listing_3b  # tied to embed_tokens, not saved
    assert sum(k.startswith("sam2.") for k in listing_3b) == 615


def test_inspect_3b_shapes_and_legacy_names(listing_3b):
    expected = {
        "model.embed_tokens.weight": "151936,2048",
        "visual.patch_embed.proj.weight": "1280,3,2,14,14",
        "visual.blocks.31.attn.qkv.weight": "3840,1280",
        "visual.merger.mlp.0.weight": "5120,5120",
        "visual.merger.mlp.2.weight": "2048,5120",
        "seg_head.0.weight": "2048",
        "seg_head.3.weight": "512,2048",
        "ref_proj_single.weight": "768,512",
        "ref_proj_double.weight": "768,768",
        "ref_proj.1.weight": "2048,1536",
        "tem_pe.positional_encoding_gaussian_matrix": "1,128",
        "tem_emb.weight": "1,256",
        "tem_proj.weight": "768,256",
        "msk_proj.0.weight": "5120,5120",
        "msk_proj.2.weight": "2048,5120",
        "ref_encoder.pe_layer.positional_encoding_gaussian_matrix": "2,128",
        "sam2.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": "2,128",
        "sam2.memory_encoder.fuser.layers.0.weight": "256",
        "sam2.maskmem_tpos_enc": "7,1,1,64",
        "sam2.image_encoder.trunk.pos_embed": "1,112,14,14",
        "sam2.obj_ptr_tpos_proj.weight": "64,256",
        "model.layers.35.self_attn.q_proj.bias": "2048",
    }
    assert {k: listing_3b[k] for k in expected} == expected
    assert not any(".gamma" in k or k.startswith("model.language_model.") or k.startswith("model.visual.")
                   for k in listing_3b)
    assert sum(k.startswith("ref_encoder.") for k in listing_3b) == 17


def test_inspect_7b_counts_and_untied_head():
    listing = dict(line.split("\t") for line in checkpoint_listing("7b"))
    assert len(listing) == 1380
    assert listing["lm_head.weight"] == "151936,3584"
    assert listing["model.layers.27.mlp.down_proj.weight"] == "3584,18944"


def test_inspect_cli_output_format(capsys):
    assert main(["--preset", "tiny", "--keys"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert lines == sorted(lines)
    assert all(len(line.split("\t")) == 2 and " " not in line for line in lines)
    assert "tem_emb.weight\t1,256" in lines
