"""Settings come from the environment only through backend.settings; the README documents every name."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.settings import ENV_NAMES, Settings, SettingsError

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
])
def test_settings_bad_values_say_which_variable(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_readme_configuration_table_lists_every_env_var():
    text = README.read_text()
    missing = [name for name in ENV_NAMES if f"`{name}`" not in text]
    assert not missing, f"README configuration table lacks {missing}"


def test_every_settings_field_has_exactly_one_environment_entry():
    # (was an import-time assert: a checked invariant belongs in the tests, not in every process start)
    import dataclasses

    from backend import settings

    assert {f.name for f in dataclasses.fields(settings.Settings)} == set(settings._ENV)
    assert len(settings.ENV_NAMES) == len(set(settings.ENV_NAMES))  # each variable's name is written once
