"""Shared fixtures: paths, the golden checkpoint, and a tiny random checkpoint built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import unipixel_model  # noqa: F401  (torchvision shim before anything imports transformers)

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_DIR = FIXTURES / "unipixel_parity"
GOLDEN_CHECKPOINT = PARITY_DIR / "checkpoint"


def pytest_collection_modifyitems(config, items):
    """Mark tests by folder so ``-m unit`` / ``-m integration`` / ``-m e2e`` select them."""
    for item in items:
        for kind in ("unit", "integration", "e2e"):
            if f"{kind}/" in str(item.fspath).replace("\\", "/").split("tests/")[-1]:
                item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def golden_model():
    """The golden fixture checkpoint loaded through the public loader (float32, CPU)."""
    from unipixel_model.loading import from_pretrained

    return from_pretrained(GOLDEN_CHECKPOINT)


@pytest.fixture(scope="session")
def golden_tokenizer():
    from unipixel_model.tokenization import load_tokenizer

    return load_tokenizer(GOLDEN_CHECKPOINT)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random ``tiny`` checkpoint written once per test session."""
    from unipixel_model.presets import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)
