"""Every environment variable the backend and the fine-tune worker read, in one frozen dataclass.

This is the only module that reads ``os.environ``. The README's configuration table lists the
same names; ``tests/unit/test_settings.py`` checks that the two stay in sync.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "PolyU-ChenLab/UniPixel-3B"
SECRET_FIELDS = ("label_studio_api_key", "basic_auth_pass", "webhook_secret")


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Backend configuration. Build with :meth:`from_env`; tests build it directly."""

    # model
    model: str = DEFAULT_MODEL                 # UNIPIXEL_MODEL: checkpoint dir, hub id, or "tiny"
    device: str = "auto"                       # DEVICE: auto | cpu | cuda | cuda:N
    model_dir: Path = Path("data/models")      # MODEL_DIR: published fine-tuned versions
    # Label Studio access (media downloads, posting background predictions, gathering annotations)
    label_studio_url: str = ""                 # LABEL_STUDIO_URL (fallback LABEL_STUDIO_HOST)
    label_studio_api_key: str = ""             # LABEL_STUDIO_API_KEY (fallback LABEL_STUDIO_ACCESS_TOKEN)
    # security
    basic_auth_user: str = ""                  # BASIC_AUTH_USER
    basic_auth_pass: str = ""                  # BASIC_AUTH_PASS
    webhook_secret: str = ""                   # UNIPIXEL_WEBHOOK_SECRET
    # media
    media_cache_dir: Path = Path("data/media")             # UNIPIXEL_MEDIA_CACHE_DIR
    allowed_hosts: tuple[str, ...] = ()                    # UNIPIXEL_ALLOWED_HOSTS (comma list)
    local_roots: tuple[Path, ...] = ()                     # UNIPIXEL_LOCAL_ROOTS (comma list of dirs)
    max_media_bytes: int = 2 << 30                         # UNIPIXEL_MAX_MEDIA_MB
    max_frames: int = 18000                                # UNIPIXEL_MAX_FRAMES
    max_pixels: int = 3840 * 2160                          # UNIPIXEL_MAX_PIXELS (per frame)
    # request limits, checked before any work (backend/limits.py)
    max_request_bytes: int = 8 << 20                       # UNIPIXEL_MAX_REQUEST_MB (request body)
    max_json_depth: int = 64                               # UNIPIXEL_MAX_JSON_DEPTH (nesting of the JSON body)
    max_regions: int = 100                                 # UNIPIXEL_MAX_REGIONS (non-click items of a context)
    max_clicks: int = 200                                  # UNIPIXEL_MAX_CLICKS (keypoints of a context)
    max_query_chars: int = 2000                            # UNIPIXEL_MAX_QUERY_CHARS (a text query)
    # sessions and budgets
    max_sessions: int = 8                                  # UNIPIXEL_MAX_SESSIONS
    session_ttl_s: float = 1800.0                          # UNIPIXEL_SESSION_TTL_S
    feature_cache_bytes: int = 1 << 30                     # UNIPIXEL_FEATURE_CACHE_MB (per session)
    interactive_budget_s: float = 20.0                     # UNIPIXEL_INTERACTIVE_BUDGET_S
    batch_budget_s: float = 60.0                           # UNIPIXEL_BATCH_BUDGET_S
    max_queued_requests: int = 4                           # UNIPIXEL_MAX_QUEUED
    text_field: str = "query"                              # UNIPIXEL_TEXT_FIELD (task data key for batch text)
    describe_objects: bool = True                          # UNIPIXEL_DESCRIBE
    # training queue (see finetune/)
    redis_url: str = "redis://127.0.0.1:6379/0"            # REDIS_URL
    train_queue: str = "unipixel-train"                    # UNIPIXEL_TRAIN_QUEUE
    train_every_n: int = 0                                 # UNIPIXEL_TRAIN_EVERY_N (0 = off)
    train_every_minutes: float = 0.0                       # UNIPIXEL_TRAIN_EVERY_MINUTES (0 = off)
    train_recipe: str = "3b"                               # UNIPIXEL_TRAIN_RECIPE (name or YAML path)
    train_job_timeout_s: int = 6 * 3600                    # UNIPIXEL_TRAIN_TIMEOUT_S
    data_dir: Path = Path("data/finetune")                 # UNIPIXEL_DATA_DIR (gathered labels, media cache)
    log_level: str = "INFO"                                # LOG_LEVEL
    port: int = 9090                                       # PORT (python -m backend serve)
    threads: int = 8                                       # THREADS (serve: request threads)

    def __post_init__(self) -> None:
        positive = {"max_media_bytes": self.max_media_bytes, "max_frames": self.max_frames,
                    "max_pixels": self.max_pixels, "max_sessions": self.max_sessions,
                    "max_queued_requests": self.max_queued_requests, "feature_cache_bytes": self.feature_cache_bytes,
                    "max_request_bytes": self.max_request_bytes, "max_json_depth": self.max_json_depth,
                    "max_regions": self.max_regions, "max_clicks": self.max_clicks,
                    "max_query_chars": self.max_query_chars}
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"{name} must be > 0, got {value}")
        if self.interactive_budget_s <= 0 or self.batch_budget_s <= 0:
            raise SettingsError("UNIPIXEL_INTERACTIVE_BUDGET_S and UNIPIXEL_BATCH_BUDGET_S must be > 0 seconds")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise SettingsError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")
        if self.label_studio_url and not self.label_studio_url.startswith(("http://", "https://")):
            raise SettingsError(f"LABEL_STUDIO_URL must start with http:// or https://, got {self.label_studio_url!r}")

    def secrets(self) -> tuple[str, ...]:
        """The configured tokens and passwords (never logged, never in an error body)."""
        return tuple(value for value in (getattr(self, name) for name in SECRET_FIELDS) if value)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        """Read the environment (``env`` defaults to ``os.environ``)."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for name, (key, convert) in _ENV.items():
            for candidate in key:
                raw = env.get(candidate)
                if raw not in (None, ""):
                    try:
                        values[name] = convert(raw)
                    except ValueError as err:
                        shown = "<hidden>" if name in SECRET_FIELDS else repr(raw)
                        raise SettingsError(f"{candidate}={shown}: {err}") from None
                    break
        return cls(**values)


def _bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _mb(raw: str) -> int:
    return int(float(raw) * (1 << 20))


def _url(raw: str) -> str:
    return raw.rstrip("/")


def _secret(raw: str) -> str:
    """A token or password without the whitespace a copy from a file brings: a trailing newline makes
    ``requests`` refuse the header with an error that quotes the token."""
    secret = raw.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise ValueError("contains control characters; paste the token alone")
    return secret


# settings field -> (env names in priority order, converter)
_ENV: dict[str, tuple[tuple[str, ...], object]] = {
    "model": (("UNIPIXEL_MODEL",), str),
    "device": (("DEVICE",), str),
    "model_dir": (("MODEL_DIR",), Path),
    "label_studio_url": (("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST"), _url),
    "label_studio_api_key": (("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN"), _secret),
    "basic_auth_user": (("BASIC_AUTH_USER",), str),
    "basic_auth_pass": (("BASIC_AUTH_PASS",), _secret),
    "webhook_secret": (("UNIPIXEL_WEBHOOK_SECRET", "WEBHOOK_SECRET"), _secret),
    "media_cache_dir": (("UNIPIXEL_MEDIA_CACHE_DIR",), Path),
    "allowed_hosts": (("UNIPIXEL_ALLOWED_HOSTS",), _split),
    "local_roots": (("UNIPIXEL_LOCAL_ROOTS",), lambda raw: tuple(Path(p) for p in _split(raw))),
    "max_media_bytes": (("UNIPIXEL_MAX_MEDIA_MB",), _mb),
    "max_frames": (("UNIPIXEL_MAX_FRAMES",), int),
    "max_pixels": (("UNIPIXEL_MAX_PIXELS",), int),
    "max_request_bytes": (("UNIPIXEL_MAX_REQUEST_MB",), _mb),
    "max_json_depth": (("UNIPIXEL_MAX_JSON_DEPTH",), int),
    "max_regions": (("UNIPIXEL_MAX_REGIONS",), int),
    "max_clicks": (("UNIPIXEL_MAX_CLICKS",), int),
    "max_query_chars": (("UNIPIXEL_MAX_QUERY_CHARS",), int),
    "max_sessions": (("UNIPIXEL_MAX_SESSIONS",), int),
    "session_ttl_s": (("UNIPIXEL_SESSION_TTL_S",), float),
    "feature_cache_bytes": (("UNIPIXEL_FEATURE_CACHE_MB",), _mb),
    "interactive_budget_s": (("UNIPIXEL_INTERACTIVE_BUDGET_S",), float),
    "batch_budget_s": (("UNIPIXEL_BATCH_BUDGET_S",), float),
    "max_queued_requests": (("UNIPIXEL_MAX_QUEUED",), int),
    "text_field": (("UNIPIXEL_TEXT_FIELD",), str),
    "describe_objects": (("UNIPIXEL_DESCRIBE",), _bool),
    "redis_url": (("REDIS_URL",), str),
    "train_queue": (("UNIPIXEL_TRAIN_QUEUE",), str),
    "train_every_n": (("UNIPIXEL_TRAIN_EVERY_N",), int),
    "train_every_minutes": (("UNIPIXEL_TRAIN_EVERY_MINUTES",), float),
    "train_recipe": (("UNIPIXEL_TRAIN_RECIPE",), str),
    "train_job_timeout_s": (("UNIPIXEL_TRAIN_TIMEOUT_S",), int),
    "data_dir": (("UNIPIXEL_DATA_DIR",), Path),
    "log_level": (("LOG_LEVEL",), str),
    "port": (("PORT",), int),
    "threads": (("THREADS",), int),
}

ENV_NAMES: tuple[str, ...] = tuple(name for keys, _ in _ENV.values() for name in keys)
