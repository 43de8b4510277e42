"""Settings come from the environment only through the settings module of each process (``finetune.settings``
for the worker, ``backend.settings`` for the server); the README's table is checked against them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from backend.settings import ENV_NAMES, Settings, SettingsError
from finetune.settings import FinetuneSettings, as_bool, mebibytes

README = Path(__file__).parents[2] / "README.md"


def test_settings_from_env_reads_names_and_fallbacks():
    s = Settings.from_env({"UNIPIXEL_MODEL": "tiny", "LABEL_STUDIO_HOST": "http://ls:8080/",
                           "LABEL_STUDIO_ACCESS_TOKEN": "abc", "UNIPIXEL_ALLOWED_HOSTS": "a.com, b.org",
                           "UNIPIXEL_MAX_MEDIA_MB": "1.5", "UNIPIXEL_DESCRIBE": "false", "PORT": "9191"})
    assert s.model == "tiny" and s.label_studio_url == "http://ls:8080" and s.label_studio_api_key == "abc"
    assert s.allowed_hosts == ("a.com", "b.org") and s.max_media_bytes == int(1.5 * 2**20)
    assert s.describe_objects is False and s.port == 9191


@pytest.mark.parametrize("env, words", [
    ({"UNIPIXEL_MAX_FRAMES": "many"}, "UNIPIXEL_MAX_FRAMES"),
    ({"UNIPIXEL_MAX_FRAMES": "0"}, "max_frames must be > 0"),
    ({"BASIC_AUTH_USER": "u"}, "BASIC_AUTH_PASS"),
    ({"LABEL_STUDIO_URL": "ls:8080"}, "http://"),
    ({"UNIPIXEL_DESCRIBE": "maybe"}, "true/false"),
    ({"UNIPIXEL_FRAME_MAX_SIDE": "-1"}, "UNIPIXEL_FRAME_MAX_SIDE must be >= 0 pixels"),
    ({"UNIPIXEL_SAM2_IMAGE_SIZE": "200"}, "UNIPIXEL_SAM2_IMAGE_SIZE: .*multiple of 16 pixels.*got 200"),
    ({"UNIPIXEL_SAM2_IMAGE_SIZE": "-16"}, "UNIPIXEL_SAM2_IMAGE_SIZE: .*got -16; 0 or unset"),
])
def test_settings_bad_values_say_which_variable(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_the_worker_stores_frames_at_the_same_size_as_the_server():
    """UNIPIXEL_FRAME_MAX_SIDE is read by the fine-tune worker too: it decodes the media it trains on."""
    assert FinetuneSettings().frame_max_side == Settings().frame_max_side == 1024
    assert FinetuneSettings.from_env({"UNIPIXEL_FRAME_MAX_SIDE": "512"}).frame_max_side == 512
    with pytest.raises(SettingsError, match="UNIPIXEL_FRAME_MAX_SIDE must be >= 0 pixels"):
        FinetuneSettings.from_env({"UNIPIXEL_FRAME_MAX_SIDE": "-1"})


def _readme_rows() -> dict[str, tuple[str, str]]:
    """README configuration table: every variable named in a row's first cell -> (default, read by)."""
    text = README.read_text()
    table = text[text.index("| variable | default | read by |"):].split("\n\n")[0].splitlines()[2:]
    rows = {}
    for line in table:
        names, default, readers = line.split(" | ")[:3]
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", names):
            rows[name] = (default.strip("`"), readers)
    return rows


def _shown(cls, field: str) -> str:
    """A field's default as the README writes it."""
    value = next(f.default for f in dataclasses.fields(cls) if f.name == field)
    convert = cls.ENV[field][1]
    if value in ("", ()):
        return "—"
    if convert is mebibytes:
        return f"{value >> 20}"
    if convert is as_bool:
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def test_readme_configuration_table_matches_the_settings_modules():
    rows = _readme_rows()
    assert set(rows) == set(ENV_NAMES), f"README lacks {set(ENV_NAMES) - set(rows)}, has stale {set(rows) - set(ENV_NAMES)}"
    for field, (names, _) in Settings.ENV.items():
        readers = "server, worker" if field in FinetuneSettings.ENV else "server"
        for name in names:
            assert rows[name] == (_shown(Settings, field), readers), f"README row of {name}"


def test_every_settings_field_has_exactly_one_environment_entry():
    # (was an import-time assert: a checked invariant belongs in the tests, not in every process start)
    for cls in (FinetuneSettings, Settings):
        assert {f.name for f in dataclasses.fields(cls)} == set(cls.ENV), cls
    assert len(ENV_NAMES) == len(set(ENV_NAMES))  # each variable's name is written once


def test_the_worker_reads_its_variables_without_the_server():
    worker = FinetuneSettings.from_env({"REDIS_URL": "redis://q:1/2", "LABEL_STUDIO_URL": "http://ls/", "PORT": "x"})
    assert worker.redis_url == "redis://q:1/2" and worker.label_studio_url == "http://ls"  # PORT is not its business
    assert worker.media_policy().cache_dir == worker.data_dir / "media"
    with pytest.raises(SettingsError, match="UNIPIXEL_MAX_FRAMES"):
        FinetuneSettings.from_env({"UNIPIXEL_MAX_FRAMES": "many"})
