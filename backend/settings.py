"""Every environment variable the backend server reads, in one frozen dataclass.

The server reads everything the fine-tune worker reads (it queues the runs the worker trains, gathers the
same project and serves what the worker publishes): :class:`Settings` extends
:class:`finetune.settings.FinetuneSettings` with the server's own variables, so each name is written once.
This is the server's only reader of ``os.environ``. The README's configuration table lists the
same names; ``tests/unit/test_settings.py`` checks that the two stay in sync.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from backend.media import MediaPolicy
from finetune.settings import EnvTable, FinetuneSettings, SettingsError, as_bool, mebibytes, secret

__all__ = ["ENV_NAMES", "Settings", "SettingsError"]


@dataclass(frozen=True)
class Settings(FinetuneSettings):
    """Backend configuration: the fine-tune's (model, Label Studio access, media limits, training queue) and
    the server's own. Build with :meth:`from_env`; tests build it directly."""

    # security
    basic_auth_user: str = ""                  # BASIC_AUTH_USER
    basic_auth_pass: str = ""                  # BASIC_AUTH_PASS
    webhook_secret: str = ""                   # UNIPIXEL_WEBHOOK_SECRET
    # media
    media_cache_dir: Path = Path("data/media")             # UNIPIXEL_MEDIA_CACHE_DIR
    media_cache_bytes: int = 20 << 30                      # UNIPIXEL_MEDIA_CACHE_MB (0: no cap)
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
    port: int = 9090                                       # PORT (python -m backend serve)
    threads: int = 8                                       # THREADS (serve: request threads)

    ENV: ClassVar[EnvTable] = {
        **FinetuneSettings.ENV,
        "basic_auth_user": (("BASIC_AUTH_USER",), str),
        "basic_auth_pass": (("BASIC_AUTH_PASS",), secret),
        "webhook_secret": (("UNIPIXEL_WEBHOOK_SECRET", "WEBHOOK_SECRET"), secret),
        "media_cache_dir": (("UNIPIXEL_MEDIA_CACHE_DIR",), Path),
        "media_cache_bytes": (("UNIPIXEL_MEDIA_CACHE_MB",), mebibytes),
        "max_request_bytes": (("UNIPIXEL_MAX_REQUEST_MB",), mebibytes),
        "max_json_depth": (("UNIPIXEL_MAX_JSON_DEPTH",), int),
        "max_regions": (("UNIPIXEL_MAX_REGIONS",), int),
        "max_clicks": (("UNIPIXEL_MAX_CLICKS",), int),
        "max_query_chars": (("UNIPIXEL_MAX_QUERY_CHARS",), int),
        "max_sessions": (("UNIPIXEL_MAX_SESSIONS",), int),
        "session_ttl_s": (("UNIPIXEL_SESSION_TTL_S",), float),
        "feature_cache_bytes": (("UNIPIXEL_FEATURE_CACHE_MB",), mebibytes),
        "interactive_budget_s": (("UNIPIXEL_INTERACTIVE_BUDGET_S",), float),
        "batch_budget_s": (("UNIPIXEL_BATCH_BUDGET_S",), float),
        "max_queued_requests": (("UNIPIXEL_MAX_QUEUED",), int),
        "text_field": (("UNIPIXEL_TEXT_FIELD",), str),
        "describe_objects": (("UNIPIXEL_DESCRIBE",), as_bool),
        "port": (("PORT",), int),
        "threads": (("THREADS",), int),
    }
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = (*FinetuneSettings.SECRET_FIELDS, "basic_auth_pass", "webhook_secret")

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = {"max_sessions": self.max_sessions, "max_queued_requests": self.max_queued_requests,
                    "feature_cache_bytes": self.feature_cache_bytes, "max_request_bytes": self.max_request_bytes,
                    "max_json_depth": self.max_json_depth, "max_regions": self.max_regions,
                    "max_clicks": self.max_clicks, "max_query_chars": self.max_query_chars}
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"{name} must be > 0, got {value}")
        if self.media_cache_bytes < 0:
            raise SettingsError(f"UNIPIXEL_MEDIA_CACHE_MB must be >= 0 (0: no cap), got {self.media_cache_bytes >> 20}")
        if self.interactive_budget_s <= 0 or self.batch_budget_s <= 0:
            raise SettingsError("UNIPIXEL_INTERACTIVE_BUDGET_S and UNIPIXEL_BATCH_BUDGET_S must be > 0 seconds")
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            raise SettingsError("set both BASIC_AUTH_USER and BASIC_AUTH_PASS, or neither")

    def media_policy(self, cache_dir: Path | None = None) -> MediaPolicy:
        """As the fine-tune's; by default cached in ``UNIPIXEL_MEDIA_CACHE_DIR`` under ``UNIPIXEL_MEDIA_CACHE_MB``
        (another ``cache_dir``, the fine-tune's, has no cap: a run's samples refer to its files; unused files go
        after ``UNIPIXEL_TRAIN_MEDIA_DAYS`` there)."""
        if cache_dir is not None:
            return super().media_policy(cache_dir)
        return replace(super().media_policy(self.media_cache_dir), cache_max_bytes=self.media_cache_bytes,
                       cache_max_age_s=0.0)


ENV_NAMES: tuple[str, ...] = Settings.env_names()
