"""Task media -> local files, safely: Label Studio URLs with auth, allow-listed hosts, local roots.

- Label Studio media paths (``/data/upload/...``, ``/data/local-files/?d=...``, ``/storage-data/...``,
  ``/tasks/<id>/presign|resolve/?fileuri=...``), relative or absolute on ``LABEL_STUDIO_URL``, are
  normalised first (dot segments resolved, double encoding refused) and refused when they leave those
  prefixes; only then are they downloaded with the Label Studio token;
- ``s3://``, ``gs://``, ``azure-blob://`` go through the task's presign endpoint in Label Studio;
- other ``http(s)`` hosts only when listed in ``UNIPIXEL_ALLOWED_HOSTS`` (no SSRF by default);
- local paths (and ``/data/local-files`` files under a configured root) only under ``UNIPIXEL_LOCAL_ROOTS``.

Redirects are followed by hand, each hop checked: to Label Studio media paths (with the token), to
allow-listed hosts (without it), and anywhere (without it) only from Label Studio's presign endpoint,
whose redirect is the cloud's presigned URL. Downloads stream to a temporary file under the size
limit and are renamed into the cache only when complete, so a cut download is never served from cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urljoin, urlparse, urlsplit

import requests

from backend.errors import MediaError, MediaUnavailable
from backend.ls_client import LabelStudioClient, describe_request_error
from backend.media_cache import PART_PREFIX, shared_cache

logger = logging.getLogger(__name__)
LS_PREFIXES = ("/data/upload/", "/data/local-files", "/storage-data/", "/tasks/")  # task paths sent to LS
LS_FILE_PREFIXES = ("/data/upload/", "/storage-data/")     # a file path follows
LS_LOCAL_FILES = ("/data/local-files", "/data/local-files/")  # the file is in ?d=
LS_PRESIGN = re.compile(r"^/(tasks|projects)/\d+/(presign|resolve)/?$")
CLOUD_SCHEMES = ("s3", "gs", "azure-blob", "gcs")
MAX_REDIRECTS = 5
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def normalise_ls_media_path(url: str) -> str:
    """A Label Studio media path (with its query) with dot segments resolved, or :class:`MediaError`.

    Args:
        url: ``/data/upload/1/a.mp4``, ``/data/local-files/?d=x.mp4``, ``/tasks/7/presign/?fileuri=...``
            (a path relative to ``LABEL_STUDIO_URL``).

    Returns:
        The path to request, percent-encoded once, plus its query.

    Raises:
        MediaError: the path leaves Label Studio's media prefixes (``/data/upload/../../api/``), hides a
            separator or a dot segment under a second encoding (``%252e%252e``), or holds a backslash.
    """
    parts = urlsplit(url)
    segments: list[str] = []
    for raw in parts.path.split("/")[1:]:
        segment = unquote(raw)
        twice = unquote(segment)
        if any(bad in twice for bad in ("/", "\\", "\x00")) or (twice in (".", "..") and segment not in (".", "..")):
            raise MediaError(f"{_shown(url)}: the path hides a separator or a dot segment in its encoding; "
                             "Label Studio media paths are plain /data/upload/... paths")
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in (".", ""):
            segments.append(segment)
    path = "/" + "/".join(segments) + ("/" if parts.path.endswith("/") and segments else "")
    inside = any(path.startswith(prefix) and len(path) > len(prefix) for prefix in LS_FILE_PREFIXES) \
        or path in LS_LOCAL_FILES or LS_PRESIGN.match(path) is not None
    if not inside:
        raise MediaError(f"{_shown(url)} resolves to {_shown(path)}, outside Label Studio's media paths "
                         "(/data/upload/, /data/local-files/, /storage-data/, /tasks/<id>/presign/); refused "
                         "before sending the Label Studio token")
    quoted = "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in path.split("/"))
    return quoted + (f"?{parts.query}" if parts.query else "")


def _shown(url: str) -> str:
    """``url`` for a message: no query (presigned URLs carry signatures), at most 200 characters."""
    text = url.split("?", 1)[0]
    return repr(text if len(text) <= 200 else text[:197] + "...")


@dataclass(frozen=True)
class MediaPolicy:
    """What may be fetched and where it is cached; built by the settings of the process
    (``Settings.media_policy()``), which name the variables behind each field."""

    cache_dir: Path
    label_studio_url: str           # LABEL_STUDIO_URL: its media paths are fetched with the token
    allowed_hosts: tuple[str, ...]  # UNIPIXEL_ALLOWED_HOSTS
    local_roots: tuple[Path, ...]   # UNIPIXEL_LOCAL_ROOTS
    max_media_bytes: int            # UNIPIXEL_MAX_MEDIA_MB
    max_frames: int                 # UNIPIXEL_MAX_FRAMES (frame lists)
    cache_max_bytes: int = 0        # UNIPIXEL_MEDIA_CACHE_MB (the server's cache); 0: no cap
    cache_max_age_s: float = 0.0    # UNIPIXEL_TRAIN_MEDIA_DAYS (the fine-tune's cache); 0: no age limit


class MediaFetcher:
    """Resolve task URLs to readable local files (cached by URL)."""

    def __init__(self, policy: MediaPolicy, client: LabelStudioClient | None = None) -> None:
        self.policy = policy
        self.client = client
        self.cache_dir = Path(policy.cache_dir)
        self.cache = shared_cache(self.cache_dir, policy.cache_max_bytes, policy.cache_max_age_s)

    def fetch(self, url: str, task_id: int | None = None) -> Path:
        """A local path for ``url``.

        Raises:
            MediaError: the URL is not allowed, too large or missing; the message says which setting to change.
            MediaUnavailable: the server could not be reached or refused the download.
        """
        if not isinstance(url, str) or not url.strip():
            raise MediaError(f"task {task_id} has no media URL in its data")
        url = url.strip()
        try:
            parsed = urlparse(url)
            parsed.port  # noqa: B018  (raises for a port that is not a number)
        except ValueError as err:
            raise MediaError(f"{_shown(url)} is not a valid URL ({err})") from None
        if parsed.scheme in CLOUD_SCHEMES:
            if task_id is None:
                raise MediaError(f"{_shown(url)}: cloud storage URIs need the task id to be presigned by Label Studio")
            return self._download(self._ls().presign_url(url, task_id), url, auth=True)
        if parsed.scheme in ("", "file") and not url.startswith(LS_PREFIXES):
            return self._local(Path(unquote(parsed.path)))
        if url.startswith("/data/local-files"):
            local = self._local_files_path(url)
            if local is not None:
                return local
        if url.startswith(LS_PREFIXES):
            return self._download(self._ls().url + normalise_ls_media_path(url), url, auth=True)
        if parsed.scheme in ("http", "https"):
            ls_path = self._ls_path(url)
            if ls_path is not None:
                return self._download(self._ls().url + normalise_ls_media_path(ls_path), url, auth=True)
            if parsed.hostname in self.policy.allowed_hosts:
                return self._download(url, url, auth=False)
            raise MediaError(f"{_shown(url)}: host {parsed.hostname!r} is not allowed; add it to "
                             "UNIPIXEL_ALLOWED_HOSTS (comma list) or serve the media through Label Studio")
        raise MediaError(f"{_shown(url)}: unsupported URL scheme {parsed.scheme!r}")

    def fetch_many(self, urls: list[str], task_id: int | None = None) -> list[Path]:
        """Local paths for a frame list (``<Image valueList>``), in order."""
        if not isinstance(urls, list) or not urls:
            raise MediaError(f"task {task_id}: the frame list is empty or not a list")
        if len(urls) > self.policy.max_frames:
            raise MediaError(f"task {task_id} has {len(urls)} frames; the limit is {self.policy.max_frames} "
                             "(UNIPIXEL_MAX_FRAMES)")
        return [self.fetch(u, task_id) for u in urls]

    # ---- sources -------------------------------------------------------------------------
    def _ls(self) -> LabelStudioClient:
        if self.client is None:
            raise MediaError("this media is hosted by Label Studio: set LABEL_STUDIO_URL (e.g. http://label-studio:8080, "
                             "not localhost inside Docker) and LABEL_STUDIO_API_KEY")
        return self.client

    def _ls_path(self, url: str) -> str | None:
        """The path (+ query) of an absolute URL on ``LABEL_STUDIO_URL`` below its base path, else None."""
        ls_url = self.policy.label_studio_url
        if not ls_url:
            return None
        ls, target = urlsplit(ls_url), urlsplit(url)
        same_origin = (ls.scheme, ls.hostname, ls.port) == (target.scheme, target.hostname, target.port)
        base = ls.path.rstrip("/")
        if not same_origin or not target.path.startswith(base + "/"):
            return None
        return target.path[len(base):] + (f"?{target.query}" if target.query else "")

    def _local(self, path: Path) -> Path:
        """A file under ``UNIPIXEL_LOCAL_ROOTS`` (task paths get no ``~`` expansion: that reads the environment)."""
        try:
            resolved = path.resolve()
            roots = [Path(r).expanduser().resolve() for r in self.policy.local_roots]
            if not any(resolved.is_relative_to(root) for root in roots):
                raise MediaError(f"{_shown(str(path))}: local files are only read under UNIPIXEL_LOCAL_ROOTS "
                                 f"({', '.join(map(str, roots)) or 'none configured'})")
            if not resolved.is_file():
                raise MediaError(f"{_shown(str(path))}: no such file")
            self._check_size(resolved.stat().st_size, str(path))
        except (OSError, ValueError) as err:  # NUL bytes, names too long, unreadable folders
            raise MediaError(f"{_shown(str(path))}: cannot read it ({err.__class__.__name__})") from None
        return resolved

    def _local_files_path(self, url: str) -> Path | None:
        """A ``/data/local-files/?d=rel`` file read straight from a local root that holds it."""
        rel = parse_qs(urlparse(url).query).get("d", [""])[-1]
        for root in self.policy.local_roots:
            try:
                candidate = (Path(root) / rel).resolve()
                if candidate.is_relative_to(Path(root).resolve()) and candidate.is_file():
                    return candidate
            except (OSError, ValueError):  # NUL bytes, names too long: not a local file
                continue
        return None

    def _download(self, url: str, key: str, auth: bool) -> Path:
        suffix = Path(urlparse(key).path).suffix or Path(parse_qs(urlparse(key).query).get("d", [""])[-1]).suffix
        suffix = re.sub(r"[^A-Za-z0-9.]", "", suffix)[:8]  # part of a cache file name: no NUL, no separator
        target = self.cache_dir / (hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32] + suffix)
        if target.is_file():
            self.cache.used(target)
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            reply = self._get(url, key, auth)
        except requests.RequestException as err:
            raise MediaUnavailable(f"cannot download {_shown(key)}: {describe_request_error(err)}; check that the "
                                   "backend can reach that host (LABEL_STUDIO_URL)") from None
        with reply:
            self._check_status(reply, key)
            declared = reply.headers.get("Content-Length") or "0"
            self._check_size(int(declared) if declared.isdigit() else 0, key)
            size = self._stream(reply, key, target)
        self.cache.downloaded(size)
        return target

    def _get(self, url: str, key: str, auth: bool) -> requests.Response:
        """GET ``url``, following at most ``MAX_REDIRECTS`` redirects, each one checked by :meth:`_next_hop`."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                if auth:
                    reply = self._ls().get(url, stream=True, allow_redirects=False)
                else:
                    reply = requests.get(url, stream=True, timeout=(5, 60), allow_redirects=False)
            except requests.RequestException:
                raise
            except ValueError:  # requests parses a Location even when not following it (bad IPv6 literal)
                raise MediaUnavailable(f"{_shown(key)} redirects to an invalid URL") from None
            if not reply.is_redirect:
                return reply
            reply.close()
            try:
                url, auth = self._next_hop(url, urljoin(url, reply.headers["Location"]), key)
            except ValueError:  # urllib's parsers refuse the Location (bad IPv6 literal, bad port)
                raise MediaUnavailable(f"{_shown(key)} redirects to an invalid URL") from None
        raise MediaUnavailable(f"{_shown(key)} redirects more than {MAX_REDIRECTS} times")

    def _next_hop(self, current: str, target: str, key: str) -> tuple[str, bool]:
        """Where a redirect from ``current`` may go: (url, send the LS token), or :class:`MediaError`."""
        parsed = urlparse(target)
        parsed.port  # noqa: B018  (raises ValueError for a port that is not a number)
        if parsed.scheme not in ("http", "https"):
            raise MediaError(f"{_shown(key)} redirects to a {parsed.scheme!r} URL; only http(s) is followed")
        ls_path = self._ls_path(target)
        if ls_path is not None:  # Label Studio to its own media: checked like a task URL
            return self._ls().url + normalise_ls_media_path(ls_path), True
        from_presign = (self._ls_path(current) or "").split("?")[0]
        if LS_PRESIGN.match(from_presign):  # Label Studio hands out the cloud's presigned URL: no token
            return target, False
        if parsed.hostname in self.policy.allowed_hosts:
            return target, False
        raise MediaError(f"{_shown(key)} redirects to host {parsed.hostname!r}, which is not allowed; add it to "
                         "UNIPIXEL_ALLOWED_HOSTS (comma list) or serve the media through Label Studio")

    def _stream(self, reply: requests.Response, key: str, target: Path) -> int:
        """Write the body to ``target`` through a ``.part-`` file renamed when complete; its size in bytes."""
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=PART_PREFIX)
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
        return written

    @staticmethod
    def _check_status(reply: requests.Response, key: str) -> None:
        if reply.status_code in (401, 403):
            raise MediaUnavailable(f"Label Studio refused {_shown(key)} ({reply.status_code}); set LABEL_STUDIO_API_KEY "
                                   "to a personal access token (or a legacy token) of a user who can see the project")
        if reply.status_code == 404:
            raise MediaError(f"{_shown(key)} was not found (404)")
        if reply.status_code >= 300:
            raise MediaUnavailable(f"downloading {_shown(key)} failed with HTTP {reply.status_code}")

    def _check_size(self, size: int, key: str) -> None:
        if size > self.policy.max_media_bytes:
            raise MediaError(f"{_shown(key)} is {size} bytes or more; the limit is "
                             f"{self.policy.max_media_bytes >> 20} MiB (UNIPIXEL_MAX_MEDIA_MB)")
