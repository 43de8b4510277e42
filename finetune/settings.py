"""Every environment variable the fine-tune worker and ``python -m finetune`` read, in one frozen dataclass.

This is the fine-tune process's only reader of ``os.environ``; it imports nothing from the Flask server. The
server reads the same variables (it queues the runs this process trains, and serves what it publishes), so its
``backend.settings.Settings`` extends this class with its own: each variable's name is written once, here or
there. The README's configuration table lists every name; ``tests/unit/test_settings.py`` checks it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from backend.media import MediaPolicy
from unipixel_model.sam2_side import check_sam2_image_size

DEFAULT_MODEL = "PolyU-ChenLab/UniPixel-3B"

# settings field -> (env names in priority order, converter)
EnvTable = dict[str, tuple[tuple[str, ...], Callable[[str], object]]]


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


def split(text: str) -> tuple[str, ...]:
    """A comma list -> its stripped, non-empty parts."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def as_bool(raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def mebibytes(raw: str) -> int:
    """A size in MiB (fractions allowed) -> bytes."""
    return int(float(raw) * (1 << 20))


def secret(raw: str) -> str:
    """A token or password without the whitespace a copy from a file brings: a trailing newline makes
    ``requests`` refuse the header with an error that quotes the token."""
    value = raw.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("contains control characters; paste the token alone")
    return value


def env_values(table: EnvTable, secret_fields: tuple[str, ...], env: dict[str, str] | None = None) -> dict:
    """The fields of ``table`` that ``env`` (default ``os.environ``) sets, converted.

    Raises:
        SettingsError: a value cannot be converted (the variable is named; secrets are not shown).
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    for name, (keys, convert) in table.items():
        for candidate in keys:
            raw = env.get(candidate)
            if raw not in (None, ""):
                try:
                    values[name] = convert(raw)
                except ValueError as err:
                    shown = "<hidden>" if name in secret_fields else repr(raw)
                    raise SettingsError(f"{candidate}={shown}: {err}") from None
                break
    return values


@dataclass(frozen=True)
class FinetuneSettings:
    """Fine-tune configuration. Build with :meth:`from_env`; tests build it directly."""

    # model
    model: str = DEFAULT_MODEL                 # UNIPIXEL_MODEL: checkpoint dir, hub id, or "tiny"
    device: str = "auto"                       # DEVICE: auto | cpu | cuda | cuda:N
    sam2_image_size: int = 0                   # UNIPIXEL_SAM2_IMAGE_SIZE: SAM 2's input side, px (0: the checkpoint's)
    model_dir: Path = Path("data/models")      # MODEL_DIR: published fine-tuned versions
    keep_versions: int = 10                    # UNIPIXEL_KEEP_VERSIONS: newest versions kept (0: every one)
    # Label Studio access (media downloads, posting background predictions, gathering annotations)
    label_studio_url: str = ""                 # LABEL_STUDIO_URL (fallback LABEL_STUDIO_HOST)
    label_studio_api_key: str = ""             # LABEL_STUDIO_API_KEY (fallback LABEL_STUDIO_ACCESS_TOKEN)
    # media
    allowed_hosts: tuple[str, ...] = ()                    # UNIPIXEL_ALLOWED_HOSTS (comma list)
    local_roots: tuple[Path, ...] = ()                     # UNIPIXEL_LOCAL_ROOTS (comma list of dirs)
    max_media_bytes: int = 2 << 30                         # UNIPIXEL_MAX_MEDIA_MB
    max_frames: int = 18000                                # UNIPIXEL_MAX_FRAMES
    max_pixels: int = 3840 * 2160                          # UNIPIXEL_MAX_PIXELS (per frame)
    frame_max_side: int = 1024                             # UNIPIXEL_FRAME_MAX_SIDE (px; 0: store frames as they are)
    # training queue
    redis_url: str = "redis://127.0.0.1:6379/0"            # REDIS_URL
    train_queue: str = "unipixel-train"                    # UNIPIXEL_TRAIN_QUEUE
    train_every_n: int = 0                                 # UNIPIXEL_TRAIN_EVERY_N (0 = off)
    train_every_minutes: float = 0.0                       # UNIPIXEL_TRAIN_EVERY_MINUTES (0 = off)
    train_recipe: str = "3b"                               # UNIPIXEL_TRAIN_RECIPE (name or YAML path)
    train_job_timeout_s: int = 6 * 3600                    # UNIPIXEL_TRAIN_TIMEOUT_S
    data_dir: Path = Path("data/finetune")                 # UNIPIXEL_DATA_DIR (gathered labels, media cache)
    train_media_days: float = 7.0                          # UNIPIXEL_TRAIN_MEDIA_DAYS (0: keep every file)
    log_level: str = "INFO"                                # LOG_LEVEL

    ENV: ClassVar[EnvTable] = {
        "model": (("UNIPIXEL_MODEL",), str),
        "device": (("DEVICE",), str),
        "sam2_image_size": (("UNIPIXEL_SAM2_IMAGE_SIZE",), int),
        "model_dir": (("MODEL_DIR",), Path),
        "keep_versions": (("UNIPIXEL_KEEP_VERSIONS",), int),
        "label_studio_url": (("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST"), lambda raw: raw.rstrip("/")),
        "label_studio_api_key": (("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN"), secret),
        "allowed_hosts": (("UNIPIXEL_ALLOWED_HOSTS",), split),
        "local_roots": (("UNIPIXEL_LOCAL_ROOTS",), lambda raw: tuple(Path(p) for p in split(raw))),
        "max_media_bytes": (("UNIPIXEL_MAX_MEDIA_MB",), mebibytes),
        "max_frames": (("UNIPIXEL_MAX_FRAMES",), int),
        "max_pixels": (("UNIPIXEL_MAX_PIXELS",), int),
        "frame_max_side": (("UNIPIXEL_FRAME_MAX_SIDE",), int),
        "redis_url": (("REDIS_URL",), str),
        "train_queue": (("UNIPIXEL_TRAIN_QUEUE",), str),
        "train_every_n": (("UNIPIXEL_TRAIN_EVERY_N",), int),
        "train_every_minutes": (("UNIPIXEL_TRAIN_EVERY_MINUTES",), float),
        "train_recipe": (("UNIPIXEL_TRAIN_RECIPE",), str),
        "train_job_timeout_s": (("UNIPIXEL_TRAIN_TIMEOUT_S",), int),
        "data_dir": (("UNIPIXEL_DATA_DIR",), Path),
        "train_media_days": (("UNIPIXEL_TRAIN_MEDIA_DAYS",), float),
        "log_level": (("LOG_LEVEL",), str),
    }
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("label_studio_api_key",)

    def __post_init__(self) -> None:
        if self.keep_versions < 0 or self.keep_versions == 1:
            raise SettingsError(f"UNIPIXEL_KEEP_VERSIONS must be 0 (keep every version) or at least 2 (the served one "
                                f"and the one before, which a backend may still be loading), got {self.keep_versions}")
        if self.train_media_days < 0 or 0 < self.train_media_days * 86400 <= self.train_job_timeout_s:
            raise SettingsError(f"UNIPIXEL_TRAIN_MEDIA_DAYS must be 0 (keep every file) or longer than a run may take "
                                f"(UNIPIXEL_TRAIN_TIMEOUT_S={self.train_job_timeout_s} s, "
                                f"{self.train_job_timeout_s / 86400:.2f} days), got {self.train_media_days:g}")
        for name in ("max_media_bytes", "max_frames", "max_pixels"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.sam2_image_size:
            try:
                check_sam2_image_size(self.sam2_image_size)
            except ValueError as err:
                raise SettingsError(f"UNIPIXEL_SAM2_IMAGE_SIZE: {err}; 0 or unset for the checkpoint's own") from None
        if self.frame_max_side < 0:
            raise SettingsError(f"UNIPIXEL_FRAME_MAX_SIDE must be >= 0 pixels (0 keeps frames as they are), got "
                                f"{self.frame_max_side}")
        if self.label_studio_url and not self.label_studio_url.startswith(("http://", "https://")):
            raise SettingsError(f"LABEL_STUDIO_URL must start with http:// or https://, got {self.label_studio_url!r}")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None):
        """Read the environment (``env`` defaults to ``os.environ``).

        Raises:
            SettingsError: a variable has a value that cannot be used (it is named).
        """
        return cls(**env_values(cls.ENV, cls.SECRET_FIELDS, env))

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """Every environment variable this class reads, fallbacks included."""
        return tuple(name for keys, _ in cls.ENV.values() for name in keys)

    def secrets(self) -> tuple[str, ...]:
        """The configured tokens and passwords (never logged, never in an error body)."""
        return tuple(value for value in (getattr(self, name) for name in self.SECRET_FIELDS) if value)

    def media_policy(self, cache_dir: Path | None = None) -> MediaPolicy:
        """What :class:`backend.media.MediaFetcher` may fetch, and where it caches (default: the data dir's
        ``media/``, the fine-tune's own cache, whose files go when unused for ``UNIPIXEL_TRAIN_MEDIA_DAYS``)."""
        return MediaPolicy(Path(cache_dir or self.data_dir / "media"), self.label_studio_url, self.allowed_hosts,
                           self.local_roots, self.max_media_bytes, self.max_frames,
                           cache_max_age_s=self.train_media_days * 86400)
