"""Task media -> local files, safely: Label Studio URLs with auth, allow-listed hosts, local roots.

- ``/data/upload/...``, ``/data/local-files/?d=...``, ``/storage-data/...`` and absolute URLs on
  ``LABEL_STUDIO_URL`` are downloaded with the Label Studio token;
- ``s3://``, ``gs://``, ``azure-blob://`` go through the task's presign endpoint in Label Studio;
- other ``http(s)`` hosts only when listed in ``UNIPIXEL_ALLOWED_HOSTS`` (no SSRF by default);
- local paths (and ``/data/local-files`` files under a configured root) only under ``UNIPIXEL_LOCAL_ROOTS``.

Downloads stream to a temporary file under the size limit and are renamed into the cache only
when complete, so a cut download is never served from cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import requests

from backend.errors import MediaError, MediaUnavailable
from backend.ls_client import LabelStudioClient
from backend.settings import Settings

logger = logging.getLogger(__name__)
LS_PREFIXES = ("/data/upload/", "/data/local-files", "/storage-data/", "/tasks/")
CLOUD_SCHEMES = ("s3", "gs", "azure-blob", "gcs")


class MediaFetcher:
    """Resolve task URLs to readable local files (cached by URL)."""

    def __init__(self, settings: Settings, client: LabelStudioClient | None = None) -> None:
        self.settings = settings
        self.client = client
        self.cache_dir = Path(settings.media_cache_dir)

    def fetch(self, url: str, task_id: int | None = None) -> Path:
        """A local path for ``url``.

        Raises:
            MediaError: the URL is not allowed, too large or missing; the message says which setting to change.
            MediaUnavailable: the server could not be reached or refused the download.
        """
        if not isinstance(url, str) or not url.strip():
            raise MediaError(f"task {task_id} has no media URL in its data")
        url = url.strip()
        parsed = urlparse(url)
        if parsed.scheme in CLOUD_SCHEMES:
            if task_id is None:
                raise MediaError(f"{url}: cloud storage URIs need the task id to be presigned by Label Studio")
            return self._download(self._ls().presign_url(url, task_id), url, auth=True)
        if parsed.scheme in ("", "file") and not url.startswith(LS_PREFIXES):
            return self._local(Path(unquote(parsed.path)))
        if url.startswith("/data/local-files"):
            local = self._local_files_path(url)
            if local is not None:
                return local
        if url.startswith(LS_PREFIXES):
            return self._download(self._ls().url + url, url, auth=True)
        if parsed.scheme in ("http", "https"):
            ls_url = self.settings.label_studio_url
            if ls_url and url.startswith(ls_url + "/"):
                return self._download(url, url, auth=True)
            if parsed.hostname in self.settings.allowed_hosts:
                return self._download(url, url, auth=False)
            raise MediaError(f"{url}: host {parsed.hostname!r} is not allowed; add it to UNIPIXEL_ALLOWED_HOSTS "
                             "(comma list) or serve the media through Label Studio")
        raise MediaError(f"{url}: unsupported URL scheme {parsed.scheme!r}")

    def fetch_many(self, urls: list[str], task_id: int | None = None) -> list[Path]:
        """Local paths for a frame list (``<Image valueList>``), in order."""
        if not isinstance(urls, list) or not urls:
            raise MediaError(f"task {task_id}: the frame list is empty or not a list")
        if len(urls) > self.settings.max_frames:
            raise MediaError(f"task {task_id} has {len(urls)} frames; the limit is {self.settings.max_frames} "
                             "(UNIPIXEL_MAX_FRAMES)")
        return [self.fetch(u, task_id) for u in urls]

    # ---- sources -------------------------------------------------------------------------
    def _ls(self) -> LabelStudioClient:
        if self.client is None:
            raise MediaError("this media is hosted by Label Studio: set LABEL_STUDIO_URL (e.g. http://label-studio:8080, "
                             "not localhost inside Docker) and LABEL_STUDIO_API_KEY")
        return self.client

    def _local(self, path: Path) -> Path:
        resolved = path.expanduser().resolve()
        roots = [Path(r).expanduser().resolve() for r in self.settings.local_roots]
        if not any(resolved.is_relative_to(root) for root in roots):
            raise MediaError(f"{path}: local files are only read under UNIPIXEL_LOCAL_ROOTS "
                             f"({', '.join(map(str, roots)) or 'none configured'})")
        if not resolved.is_file():
            raise MediaError(f"{path}: no such file")
        self._check_size(resolved.stat().st_size, str(path))
        return resolved

    def _local_files_path(self, url: str) -> Path | None:
        """A ``/data/local-files/?d=rel`` file read straight from a local root that holds it."""
        rel = parse_qs(urlparse(url).query).get("d", [""])[-1]
        for root in self.settings.local_roots:
            candidate = (Path(root) / rel).resolve()
            if candidate.is_relative_to(Path(root).resolve()) and candidate.is_file():
                return candidate
        return None

    def _download(self, url: str, key: str, auth: bool) -> Path:
        suffix = Path(urlparse(key).path).suffix[:8] or Path(parse_qs(urlparse(key).query).get("d", [""])[-1]).suffix
        target = self.cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + suffix)
        if target.is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            reply = self._ls().get(url, stream=True) if auth else requests.get(url, stream=True, timeout=(5, 60))
        except requests.RequestException as err:
            raise MediaUnavailable(f"cannot download {key}: {err.__class__.__name__}: {err}; check that the backend "
                                   "can reach that host (LABEL_STUDIO_URL)") from None
        with reply:
            self._check_status(reply, key)
            self._check_size(int(reply.headers.get("Content-Length") or 0), key)
            self._stream(reply, key, target)
        return target

    def _stream(self, reply: requests.Response, key: str, target: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".part-")
        try:
            written = 0
            with os.fdopen(fd, "wb") as out:
                for chunk in reply.iter_content(1 << 20):
                    written += len(chunk)
                    self._check_size(written, key)
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _check_status(reply: requests.Response, key: str) -> None:
        if reply.status_code in (401, 403):
            raise MediaUnavailable(f"Label Studio refused {key} ({reply.status_code}); set LABEL_STUDIO_API_KEY to a "
                                   "personal access token (or a legacy token) of a user who can see the project")
        if reply.status_code == 404:
            raise MediaError(f"{key} was not found (404)")
        if reply.status_code >= 300:
            raise MediaUnavailable(f"downloading {key} failed with HTTP {reply.status_code}")

    def _check_size(self, size: int, key: str) -> None:
        if size > self.settings.max_media_bytes:
            raise MediaError(f"{key} is larger than {self.settings.max_media_bytes >> 20} MiB "
                             "(UNIPIXEL_MAX_MEDIA_MB)")
