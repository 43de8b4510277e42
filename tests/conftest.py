"""Shared fixtures: paths, the golden checkpoint, and a tiny random checkpoint built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

import unipixel_model  # noqa: F401  (torchvision shim before anything imports transformers)

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_DIR = FIXTURES / "unipixel_parity"
GOLDEN_CHECKPOINT = PARITY_DIR / "checkpoint"

# Property-based tests (hypothesis). "ci" is the default: bounded so the fuzz tests take under 3 minutes
# together on a 2-core machine; `pytest --hypothesis-profile=long` runs 10,000 examples per test. Model
# calls make examples slow and uneven, hence no deadline; no example database (CI clones are fresh).
_HYPOTHESIS_COMMON = dict(deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
hypothesis_settings.register_profile("ci", max_examples=30, derandomize=True, **_HYPOTHESIS_COMMON)
hypothesis_settings.register_profile("long", max_examples=10_000, **_HYPOTHESIS_COMMON)
if hypothesis_settings.get_current_profile_name() == "default":  # --hypothesis-profile=... loads after this
    hypothesis_settings.load_profile("ci")


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


# --- Real services (tests/services.py). A selected test whose service cannot start FAILS, never skips. ---


def _start_or_fail(server, fixture_name: str):
    """Start ``server`` or fail the requesting test with the helper's message (install hint, log tail)."""
    try:
        return server.start()
    except RuntimeError as err:
        message = f"{fixture_name} fixture: {err}"
    server.close()
    pytest.fail(message, pytrace=False)  # outside the except: the report shows only this message


@pytest.fixture(scope="session")
def redis_server():
    """A real ``redis-server`` on a free loopback port for the whole session (``.url``, ``.client()``).

    A test that calls ``.stop()`` must ``.start()`` it again (same port) in a ``finally``.
    """
    from tests.services import RedisServer

    server = _start_or_fail(RedisServer(), "redis_server")
    yield server
    server.close()


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio 1.23.2 (fresh data dir, legacy token in ``.headers``) for the whole session.

    ``.files_root`` is its ``LOCAL_FILES_DOCUMENT_ROOT``; see ``local_files_url``/``add_local_storage``.
    """
    from tests.services import LabelStudioServer

    server = _start_or_fail(LabelStudioServer(files_root=tmp_path_factory.mktemp("ls-files")), "label_studio")
    yield server
    server.close()
