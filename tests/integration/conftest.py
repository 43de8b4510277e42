"""Backend fixtures: real media files, one tiny model engine shared by the backend tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.backend_media import write_frames, write_image, write_video

CONFIGS = Path(__file__).parents[2] / "label_config"


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("media")
    write_image(root / "square.png")
    write_frames(root / "clip")
    write_video(root / "clip.mp4")
    return root


@pytest.fixture(scope="session")
def backend_settings(media_root, tiny_checkpoint, tmp_path_factory):
    from backend.settings import Settings

    work = tmp_path_factory.mktemp("backend")
    return Settings(model=str(tiny_checkpoint), local_roots=(media_root,), media_cache_dir=work / "media",
                    data_dir=work / "data", model_dir=work / "models", redis_url="redis://127.0.0.1:9/0")


@pytest.fixture(scope="session")
def shared_engine(backend_settings):
    from backend.engine import Engine

    engine = Engine(backend_settings)
    with engine.gpu:
        engine.model()
    return engine


@pytest.fixture
def make_client(shared_engine, backend_settings):
    """make_client(**settings overrides) -> Flask test client on the shared weights."""
    import dataclasses

    from backend.api import create_app
    from backend.engine import Engine

    def make(**overrides):
        settings = dataclasses.replace(backend_settings, **overrides)
        engine = Engine(settings)
        engine.share_model(shared_engine)
        app = create_app(settings, engine)
        client = app.test_client()
        client.engine = engine
        return client

    return make


def config(name: str) -> str:
    return (CONFIGS / f"{name}.xml").read_text()
