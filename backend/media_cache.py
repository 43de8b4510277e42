"""The server's media cache kept under a size cap: the files used longest ago go first.

The backend keeps every downloaded task media file in ``UNIPIXEL_MEDIA_CACHE_DIR`` so that reopening a task does
not download it again. A team that annotates all day opens new videos all day, so without a cap that folder grows
until the disk is full (which Label Studio's database and Redis may share). A session decodes its media into a
store of its own right after the download, so a file removed here is at worst downloaded again.

Use is the file's modification time: :meth:`MediaCache.used` sets it on every cache hit. Files used in the last
``keep_recent_s`` are never removed (a request between its download and its decoding must find its file), so the
cap can be passed for a while; that is logged with what to do. Downloads cut by a killed process leave
``.part-*`` files; those untouched for ``stale_part_s`` are removed too. Only names the fetcher writes are touched.
The fine-tune's cache also holds a ``frames-<key>/`` folder of links per frame-list task; one whose frames have all
been removed goes with them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
CACHED_NAME = re.compile(r"^[0-9a-f]{32}[A-Za-z0-9.]{0,8}$")  # sha256 prefix + suffix: MediaFetcher._download
PART_PREFIX = ".part-"  # MediaFetcher._stream's temporary download
FRAMES_FOLDER = re.compile(r"^frames-[0-9a-f]{24}$")  # FrameListMode.stable_folder: links to a task's frames


@dataclass(frozen=True)
class PruneResult:
    """What one :meth:`MediaCache.prune` did. Sizes in bytes."""

    removed: int           # cached media files removed to fit the cap
    removed_bytes: int
    stale_parts: int       # cut downloads removed
    kept_bytes: int        # cached media left, recent files included
    expired: int = 0       # cached media files removed as unused for ``max_age_s``
    frame_folders: int = 0  # frame-list link folders removed, every frame of theirs gone


class MediaCache:
    """The cache folder, its cap and the age past which an unused file goes; one per process and folder
    (:func:`shared_cache`), shared by its request threads.

    Args:
        folder: ``UNIPIXEL_MEDIA_CACHE_DIR`` (the server's), or the fine-tune's ``UNIPIXEL_DATA_DIR/media``.
        max_bytes: ``UNIPIXEL_MEDIA_CACHE_MB`` in bytes; 0: no cap (the fine-tune's cache: a run's samples refer to
            its files by path until it ends, so only age removes them).
        max_age_s: a file not used for this long goes (``UNIPIXEL_TRAIN_MEDIA_DAYS``); 0: no age limit.
        keep_recent_s: files used this recently stay, whatever the cap.
        stale_part_s: a ``.part-*`` file not written to for this long is a cut download.
    """

    def __init__(self, folder: Path, max_bytes: int, max_age_s: float = 0.0, keep_recent_s: float = 600.0,
                 stale_part_s: float = 3600.0) -> None:
        self.folder, self.max_bytes, self.max_age_s = Path(folder), max_bytes, max_age_s
        self.keep_recent_s, self.stale_part_s = keep_recent_s, stale_part_s
        self._lock = threading.Lock()
        self._since_prune = 0  # bytes downloaded since the last prune

    def downloaded(self, size: int) -> PruneResult | None:
        """Count a finished download of ``size`` bytes; prune once the downloads since the last prune reach 1 % of
        the cap, so a frame list of hundreds of images does not scan the folder per image (the cap is kept to
        within 1 %)."""
        with self._lock:
            self._since_prune += size
            due = self.max_bytes and self._since_prune >= max(self.max_bytes // 100, 1)
            if due:
                self._since_prune = 0
        return self.prune() if due else None

    def used(self, path: Path) -> None:
        """Mark a cached file as just used (a cache hit), so it is the last to go."""
        try:
            os.utime(path)
        except OSError:  # removed meanwhile by another process: the caller downloads it again
            pass

    def prune(self, now: float | None = None) -> PruneResult:
        """Remove stale cut downloads and files unused for ``max_age_s``, then the least recently used files until
        the cached media fit the cap."""
        now = time.time() if now is None else now
        files, stale = self._scan(now)
        unused = [bool(self.max_age_s) and now - used_at > self.max_age_s for _, _, used_at in files]
        expired = sum(_remove(path) for (path, _, _), gone in zip(files, unused) if gone)
        folders = self._sweep_frame_folders(now) if expired else 0
        files = [f for f, gone in zip(files, unused) if not gone]  # one pass: a cache may hold 100,000 frames
        total = sum(size for _, size, _ in files)
        removed, removed_bytes = 0, 0
        if self.max_bytes:
            for path, size, used_at in sorted(files, key=lambda f: f[2]):
                if total <= self.max_bytes or now - used_at < self.keep_recent_s:
                    break
                total -= size  # gone either way: removed here, or by another process first
                if _remove(path):
                    removed, removed_bytes = removed + 1, removed_bytes + size
        result = PruneResult(removed, removed_bytes, stale, total, expired, folders)
        self._log(result)
        return result

    def _scan(self, now: float) -> tuple[list[tuple[Path, int, float]], int]:
        """(cached media as (path, bytes, last use), count of stale cut downloads removed)."""
        files, stale = [], 0
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return [], 0
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:  # removed meanwhile
                continue
            if entry.name.startswith(PART_PREFIX):
                stale += int(now - info.st_mtime > self.stale_part_s and _remove(Path(entry.path)))
            elif CACHED_NAME.match(entry.name):
                files.append((Path(entry.path), info.st_size, info.st_mtime))
        return files, stale

    def _sweep_frame_folders(self, now: float) -> int:
        """Remove the frame-list link folders whose every link dangles; returns how many. One changed in the last
        ``keep_recent_s`` stays: another worker may be filling it."""
        removed = 0
        for folder in self.folder.glob("frames-*"):
            try:
                if (not FRAMES_FOLDER.match(folder.name) or folder.is_symlink() or not folder.is_dir()
                        or now - folder.stat().st_mtime < self.keep_recent_s):
                    continue
                links = list(folder.iterdir())
            except OSError:  # removed meanwhile
                continue
            if links and all(link.is_symlink() and not link.exists() for link in links):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def _log(self, result: PruneResult) -> None:
        mib = 1 << 20
        if result.stale_parts:
            logger.info("media cache %s: removed %d cut download(s) left by a stopped process", self.folder,
                        result.stale_parts)
        if result.expired:
            logger.info("media cache %s: removed %d file(s) not used for %g days (UNIPIXEL_TRAIN_MEDIA_DAYS)",
                        self.folder, result.expired, self.max_age_s / 86400)
        if result.frame_folders:
            logger.info("media cache %s: removed %d frame-list folder(s) whose frames were all removed", self.folder,
                        result.frame_folders)
        if result.removed:
            logger.info("media cache %s: removed %d file(s), %.1f MiB, used longest ago, to stay under "
                        "UNIPIXEL_MEDIA_CACHE_MB=%d", self.folder, result.removed, result.removed_bytes / mib,
                        self.max_bytes // mib)
        if self.max_bytes and result.kept_bytes > self.max_bytes:
            logger.warning("media cache %s holds %.1f MiB, over UNIPIXEL_MEDIA_CACHE_MB=%d, all of it used in the "
                           "last %d s; raise UNIPIXEL_MEDIA_CACHE_MB if the disk has room (older files are removed "
                           "as soon as they are not in use)", self.folder, result.kept_bytes / mib,
                           self.max_bytes // mib, int(self.keep_recent_s))


_SHARED: dict[tuple[Path, int, float], MediaCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(folder: Path, max_bytes: int, max_age_s: float = 0.0) -> MediaCache:
    """The process's one :class:`MediaCache` for ``folder`` and cap (the backend builds a fetcher per request; the
    count of bytes downloaded since the last prune must outlive it). Pruned once when first made: cut downloads of
    a stopped process, a cap lowered since the last start (the backend makes its cache when it starts, so no request
    pays for that scan)."""
    key = (Path(folder).resolve(), max_bytes, max_age_s)
    with _SHARED_LOCK:
        cache = _SHARED.get(key)
        if cache is None:
            cache = _SHARED[key] = MediaCache(Path(folder), max_bytes, max_age_s)
        else:
            return cache
    cache.prune()
    return cache


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:  # another process pruned it first
        return False
    return True
