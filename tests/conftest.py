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


KINDS = ("unit", "integration", "e2e")  # also the order the suite runs them in
# The Label Studio launched at collection, and the error of its launch (None when it launched).
_EARLY_LABEL_STUDIO = pytest.StashKey[tuple]()


def _kind(item) -> int:
    path = str(item.fspath).replace("\\", "/").split("tests/")[-1]
    return next((n for n, kind in enumerate(KINDS) if f"{kind}/" in path), len(KINDS))


def pytest_collection_modifyitems(config, items):
    """Mark tests by folder so ``-m unit`` / ``-m integration`` / ``-m e2e`` select them, and run the fast ones first:
    unit, integration, then e2e, while the Label Studio launched below migrates its database."""
    kinds = {id(item): _kind(item) for item in items}
    for item in items:
        if kinds[id(item)] < len(KINDS):
            item.add_marker(getattr(pytest.mark, KINDS[kinds[id(item)]]))
    items.sort(key=lambda item: kinds[id(item)])  # stable: the order within a folder stays


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n 2`` (pytest-xdist, ``scripts/test.sh``): every e2e test on one worker, first and in order,
    with one Label Studio, one browser and one set of backends; the other worker runs the rest meanwhile. The e2e
    tests mostly wait on the browser and the servers (0.6 of a core on average). (xdist's ``--dist loadgroup`` would
    say the same with marks, but its marks change no node id under pytest 9.2.)"""
    from xdist.scheduler import LoadScopeScheduling

    class E2eOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:  # one scope: one worker; the largest scope goes out first
            return "tests/e2e" if nodeid.startswith("tests/e2e/") else nodeid

    return E2eOnOneWorker(config, log)


def pytest_collection_finish(session):
    """Launch Label Studio now when a selected test needs it: its first start takes about a minute of one core
    (database migrations), which the tests before the first that needs it overlap. The ``label_studio`` fixture
    waits for it; a failed launch fails that fixture, never the collection."""
    if session.config.option.collectonly or not any("label_studio" in getattr(item, "fixturenames", ())
                                                    for item in session.items):
        return
    if hasattr(session.config, "workerinput"):  # an xdist worker: only the one given the e2e tests starts it
        return
    from tests.services import LabelStudioServer

    server, error = LabelStudioServer(), None
    session.config.add_cleanup(server.close)
    try:
        server.launch()
    except RuntimeError as err:  # not installed: the fixture reports it
        error = err
    session.config.stash[_EARLY_LABEL_STUDIO] = (server, error)


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
def label_studio(request):
    """A real Label Studio 1.23.2 (fresh data dir, legacy token in ``.headers``) for the whole session, launched
    when the collection finished (``pytest_collection_finish``).

    ``.files_root`` is its ``LOCAL_FILES_DOCUMENT_ROOT``; see ``local_files_url``/``add_local_storage``.
    """
    from tests.services import LabelStudioServer

    server, error = request.config.stash.get(_EARLY_LABEL_STUDIO, (None, None))
    if server is None:  # not launched at collection (an xdist worker): start it here
        server = _start_or_fail(LabelStudioServer(), "label_studio")
    else:
        try:
            if error is not None:
                raise error
            server.wait_up()
        except RuntimeError as err:
            server.close()
            pytest.fail(f"label_studio fixture: {err}", pytrace=False)
    yield server
    server.close()
