"""The process-wide model: loaded lazily and once, GPU work serialised, versions hot-swapped.

Label Studio's protocol builds a new backend object per request (the ``LabelStudioMLBase``
contract), so the weights live here, in one :class:`Engine` per process. Requests take an
admission slot (at most ``max_queued_requests`` wait; more get 503 + ``Retry-After``) and then
the GPU lock. Background propagation takes the GPU lock one chunk of frames at a time, so an
annotator's click is never stuck behind a long video.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from backend.errors import Busy
from backend.ls_client import LabelStudioClient
from backend.media_cache import shared_cache
from backend.pending import HOW_TO_GET_IT_BACK, PendingTracks
from backend.sessions import SessionRegistry
from backend.settings import Settings
from backend.versions import VersionStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """The loaded weights and the ``<model>@<version>`` name of exactly these weights."""

    model: object
    tokenizer: object
    version: str


class Engine:
    """Holds the model, tokenizer, sessions and the background worker of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions = SessionRegistry(settings.max_sessions, settings.session_ttl_s)
        self.versions = VersionStore(Path(settings.model_dir))
        self.gpu = threading.Lock()
        self._admission = threading.BoundedSemaphore(settings.max_queued_requests + 1)
        self._load_lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._switcher = None
        self._active_version: str | None = None
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unipixel-propagate")
        self._jobs: dict[Future, tuple[int, str, str]] = {}  # submitted job -> (task id, what it makes, recover)
        self.stopping = threading.Event()  # set by stop(): background work ends at its next chunk
        self._jobs_lock = threading.Lock()
        self.pending = PendingTracks(Path(settings.data_dir))
        self.pending.report_dropped()  # what a killed predecessor left half done
        media = settings.media_policy()  # the cache every request's MediaFetcher shares: first pruned here, at start
        shared_cache(media.cache_dir, media.cache_max_bytes, media.cache_max_age_s)
        self.ls_client: LabelStudioClient | None = None
        if settings.label_studio_url:  # one client per process: a PAT's access token is refreshed once, not per call
            self.ls_client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key)

    # ---- model -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model_name(self) -> str:
        name = self.settings.model.rstrip("/").split("/")[-1]
        return name or "unipixel"

    def model_version(self) -> str:
        """``<model>@<version>``: the published fine-tune ``MODEL_DIR/latest`` points at, or ``base``.
        Cheap (one small file read): ``/setup`` calls it without loading the model."""
        version = self.versions.latest()
        if self.versions.is_broken(version):  # it failed to load: the previous version keeps serving
            version = self._active_version
        return f"{self.model_name()}@{version or 'base'}"

    def model(self) -> tuple:
        """(model, tokenizer), loading them on first use and activating the latest published adapter.
        Call with ``self.gpu`` held."""
        loaded = self.serving()
        return loaded.model, loaded.tokenizer

    def serving(self) -> "Serving":
        """The weights to use now and the version name they carry, resolved together once (a reply
        names the weights that made its masks). Call with ``self.gpu`` held."""
        with self._load_lock:
            if self._model is None:
                self._load()
            wanted = self.versions.latest()
            if wanted != self._active_version and not self.versions.is_broken(wanted):
                self._activate(wanted)
            return Serving(self._model, self._tokenizer, f"{self.model_name()}@{self._active_version or 'base'}")

    def share_model(self, other: "Engine") -> None:
        """Serve ``other``'s already loaded weights (one model, several configurations: tests, benchmarks)."""
        self._model, self._tokenizer = other.model()
        self._switcher, self._active_version = other._switcher, other._active_version

    def _load(self) -> None:
        import torch

        from unipixel_model.loading import from_pretrained, resolve_checkpoint
        from unipixel_model.tokenization import load_tokenizer

        device = self.settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        logger.info("loading %s on %s", self.settings.model, device)
        path = resolve_checkpoint(self.settings.model)
        self._model = from_pretrained(path, device=device, sam2_image_size=self.settings.sam2_image_size or None)
        logger.info("SAM 2 reads %d px frames", self._model.config.sam2_image_size)
        self._tokenizer = load_tokenizer(path)

    def _activate(self, version: str | None) -> None:
        from unipixel_model.adapters import AdapterSwitcher
        from unipixel_model.errors import CheckpointError

        if self._switcher is None:
            self._switcher = AdapterSwitcher(self._model)
        adapter_dir = self.versions.adapter_dir(version) if version else None
        try:  # a broken version must not take serving down: keep the previous one
            self._switcher.activate(adapter_dir)
        except CheckpointError as err:  # its files do not fit this model: the message says which (no traceback)
            reason = f"{err}{self._other_base(version)}"
            logger.error("cannot activate model version %s: %s; serving %s", version, reason,
                         self._active_version or "base")
            self.versions.mark_broken(version, reason)
            return
        except Exception as err:
            logger.exception("cannot activate model version %s; serving %s", version, self._active_version or "base")
            self.versions.mark_broken(version, f"{type(err).__name__}: {err}")
            return
        logger.info("serving model version %s", version or "base")
        self._active_version = version
        self.sessions.clear()  # features and memory came from the previous weights

    def _other_base(self, version: str | None) -> str:
        """What to do when ``version`` was trained on another base model than this backend serves, else ""."""
        base = self.versions.info(version).get("base_model") if version else None
        if not base or base == self.settings.model:
            return ""
        return (f" (it was trained on {base!r}, and this backend serves {self.settings.model!r}: give each base "
                f"model a MODEL_DIR of its own, or serve {base!r} with UNIPIXEL_MODEL)")

    # ---- concurrency ----------------------------------------------------------------------
    @contextlib.contextmanager
    def admitted(self):
        """Hold an admission slot for one request, or raise :class:`Busy` (503 + Retry-After)."""
        if not self._admission.acquire(blocking=False):
            raise Busy(f"{self.settings.max_queued_requests} requests are already waiting for the model; "
                       "retry shortly", retry_after_s=5)
        try:
            yield
        finally:
            self._admission.release()

    def submit(self, fn, *args, task_id: int, what: str, recover: str = HOW_TO_GET_IT_BACK) -> Future:
        """Run ``fn(*args)`` on the background thread (propagation of long videos, batch text queries). If a stop
        cuts it off, the log names ``what`` it makes for Label Studio task ``task_id`` and how an annotator can
        ``recover`` it. After :meth:`stop`, it is not started (the returned future is cancelled)."""
        with self._jobs_lock:  # request threads submit concurrently
            if self.stopping.is_set():
                log_cut_off(task_id, what, "is not started", recover)
                future = Future()
                future.cancel()
                return future
            future = self._background.submit(_logged, fn, *args)
            self._jobs = {f: name for f, name in self._jobs.items() if not f.done()}
            self._jobs[future] = (task_id, what, recover)
        return future

    def stop(self) -> None:
        """The process is stopping (SIGTERM: ``docker stop``, a deploy; gunicorn's ``worker_exit`` hook calls this).
        Queued background jobs are cancelled and the running one ends at its next chunk, instead of holding the exit
        until the last frame of every queued track (gunicorn kills the worker after 30 s, Docker after 10 s). What is
        cut off is logged here and, for tracks, again at the next start (``backend.pending``)."""
        with self._jobs_lock:
            self.stopping.set()
            self._background.shutdown(wait=False, cancel_futures=True)
            cancelled = [name for f, name in self._jobs.items() if f.cancelled()]
        for task_id, what, recover in cancelled:
            log_cut_off(task_id, what, "is cut off (it was queued) and not posted to Label Studio", recover)

    @property
    def background_jobs(self) -> list[Future]:
        """Background jobs submitted and not pruned yet, finished or not (a copy: tests and benchmarks wait on it)."""
        with self._jobs_lock:
            return list(self._jobs)

    def running_jobs(self) -> list[Future]:
        """Background jobs not finished yet (a copy)."""
        return [f for f in self.background_jobs if not f.done()]


def log_cut_off(task_id: int, what: str, how: str, recover: str = HOW_TO_GET_IT_BACK) -> None:
    """The one warning for background work a stop cuts off: ``task 42: the backend is stopping: the full track of vr7
    is cut off and not posted to Label Studio; select the region and press its label again ...``."""
    logger.warning("task %s: the backend is stopping: %s %s; %s", task_id, what, how, recover)


def _logged(fn, *args):
    try:
        return fn(*args)
    except Exception:
        logger.exception("background job %s failed", getattr(fn, "__name__", fn))
        raise
