"""Real services for tests: ``redis-server`` and Label Studio 1.23.2, run as subprocesses on free loopback ports.

Both are installed by ``scripts/install_services.sh`` (called from ``scripts/install.sh``). Nothing here imports
pytest, so the helpers also work from a plain script. Every started server is registered for an ``atexit`` stop, and
both classes are context managers, so a failing test does not leak processes.

Example::

    with RedisServer() as redis_srv:
        queue = rq.Queue(connection=redis.Redis.from_url(redis_srv.url))

    with LabelStudioServer(files_root=tmp_dir) as ls:
        requests.get(f"{ls.url}/api/projects/", headers=ls.headers)
"""

from __future__ import annotations

import atexit
import ctypes
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LS_VERSION = "1.23.2"
LS_USERNAME = "admin@example.com"
LS_PASSWORD = "Secret_pass123"
INSTALL_HINT = "run `bash scripts/install_services.sh` (or `bash scripts/install.sh`)"

# Inherited variables that Label Studio reads and that would override our flags: LS falls back to bare
# USERNAME/PASSWORD/USER_TOKEN, and server.py only `setdefault`s HOST, DATABASE_NAME and LOG_LEVEL.
_LS_SCRUB_NAMES = {
    "USERNAME", "PASSWORD", "USER_TOKEN", "HOST", "PORT", "DATABASE_NAME", "DJANGO_DB", "DJANGO_SETTINGS_MODULE",
    "LOG_LEVEL", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "STORAGE_TYPE", "SENTRY_DSN",
    "FRONTEND_SENTRY_DSN", "LOCAL_FILES_SERVING_ENABLED", "LOCAL_FILES_DOCUMENT_ROOT", "ML_BLOCK_LOCAL_IP",
    "SSRF_PROTECTION_ENABLED", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
}  # fmt: skip
_LS_SCRUB_PREFIXES = ("LABEL_STUDIO_", "HEARTEX_", "POSTGRE_", "MYSQL_", "fflag", "ff_", "feat_")

_live: set[RedisServer | LabelStudioServer] = set()


@atexit.register
def _stop_all() -> None:
    """Stop every server still running when the interpreter exits (a crashed or interrupted test run)."""
    for server in list(_live):
        server.close()


def _die_with_parent() -> None:
    """``preexec_fn``: have Linux SIGTERM the child when the test process dies, even by SIGKILL (atexit cannot)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc Linux: atexit and the context managers still apply
        pass


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 50) -> str:
    """Return the last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ls_venv() -> Path:
    """Return the Label Studio venv: ``$UNIPIXEL_LS_VENV`` (relative to the repo root) or ``<repo>/venv-ls``."""
    return REPO_ROOT / os.environ.get("UNIPIXEL_LS_VENV", "venv-ls")


def ls_sample_video() -> Path:
    """Return the sample video shipped inside the label-studio wheel (``opossum_snow.mp4``).

    It is H.264, 1280x720, 29.97 fps, 1259 frames (42 s), 3.2 MB: real media to upload in e2e tests. A running
    LS also serves it, without auth, at ``/static/samples/opossum_snow.mp4``.

    Raises:
        RuntimeError: Label Studio is not installed in :func:`ls_venv`, or the wheel no longer ships the file.
    """
    site_packages = sorted(ls_venv().glob("lib/python3*/site-packages/label_studio"))
    if not site_packages:
        raise RuntimeError(f"Label Studio is not installed in {ls_venv()}: {INSTALL_HINT}")
    video = site_packages[0] / "core" / "static" / "samples" / "opossum_snow.mp4"
    if not video.is_file():
        raise RuntimeError(f"{video} is missing: the label-studio {LS_VERSION} wheel no longer ships its sample video")
    return video


class _Subprocess:
    """Shared start/stop/atexit plumbing: one child process in its own process group, output to a log file."""

    name = "service"

    def __init__(self, port: int | None) -> None:
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"unipixel-{self.name}-"))
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        with open(self.log_path, "ab") as log:
            # A new session = a new process group, so stop() also reaches anything the service spawns.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509  (prctl only; fixtures start from the main thread)
            )
        _live.add(self)

    def _failure(self, message: str) -> RuntimeError:
        """Stop the child and build an error carrying the last 50 log lines."""
        self.stop()
        return RuntimeError(f"{message}\n--- last lines of {self.log_path} ---\n{_tail(self.log_path)}")

    def _kill_group(self, grace_s: float) -> None:
        """SIGTERM the process group, then SIGKILL it if the leader is still alive after ``grace_s``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # a leader that exited first may leave children in its group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:  # overridden
        """Stop the process; the port and work dir are kept so that :meth:`start` can run it again."""
        self._kill_group(grace_s=15.0)

    def close(self) -> None:
        """Stop the process and delete the work dir (data, logs)."""
        self.stop()
        _live.discard(self)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Any:
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.close()


class RedisServer(_Subprocess):
    """A throw-away ``redis-server`` on 127.0.0.1 with persistence off, restartable on the same port.

    Args:
        port: TCP port; a free one by default. It stays fixed across :meth:`stop`/:meth:`start`.
        startup_timeout_s: how long :meth:`start` waits for ``PING``.

    Attributes:
        port: the TCP port.
        url: ``redis://127.0.0.1:<port>/0``.
        log_path: the server log.
    """

    name = "redis"

    def __init__(self, port: int | None = None, startup_timeout_s: float = 20.0) -> None:
        super().__init__(port)
        self.startup_timeout_s = startup_timeout_s

    @property
    def url(self) -> str:
        """Connection URL for ``redis.Redis.from_url`` and ``REDIS_URL``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> Any:
        """Return a ``redis.Redis`` (redis-py from the model venv) connected to this server."""
        import redis

        return redis.Redis.from_url(self.url, **kwargs)

    def start(self) -> RedisServer:
        """Start the server (no-op when running) and wait until it answers ``PING``.

        Returns:
            self, so ``with RedisServer() as r`` works.

        Raises:
            RuntimeError: ``redis-server`` is not installed, exits early (e.g. port taken) or never answers.
        """
        if self.running:
            return self
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH: install it with `apt-get install -y redis-server` or " + INSTALL_HINT
            )
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--daemonize", "no", "--logfile", ""]  # fmt: skip
        self._spawn(argv)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise self._failure(f"redis-server exited during start on port {self.port}")
            try:
                if self.client(socket_timeout=1.0).ping():
                    return self
            except Exception:  # noqa: BLE001  (connection refused while booting)
                time.sleep(0.05)
        raise self._failure(f"redis-server did not answer PING within {self.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        """``SHUTDOWN NOSAVE``, falling back to terminate/kill. The port is kept for :meth:`start`."""
        if self.running:
            try:
                self.client(socket_timeout=2.0).shutdown(nosave=True)
                self._proc.wait(timeout=10.0)  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001, S110  (already gone, or hung: the group kill below handles it)
                pass
        self._kill_group(grace_s=5.0)


class LabelStudioServer(_Subprocess):
    """Label Studio 1.23.2 from the ``venv-ls`` venv, with a fresh data dir and a known admin + legacy token.

    ML backends on 127.0.0.1 are allowed (``ML_BLOCK_LOCAL_IP=false``, ``SSRF_PROTECTION_ENABLED=false``) and local
    files under ``files_root`` are served at ``/data/local-files/?d=<path relative to files_root>``.

    Args:
        files_root: ``LOCAL_FILES_DOCUMENT_ROOT``; a ``files`` dir inside the work dir by default.
        port: TCP port; a free one by default.
        token: the legacy API token (40 hex chars); random by default.
        startup_timeout_s: how long :meth:`start` waits for ``GET /health`` → UP (first start takes ~46 s).

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        token: the admin's legacy API token. headers: ``{"Authorization": "Token <token>"}``.
        username, password: the admin's login. files_root: the local-files document root. log_path: the LS log.
    """

    name = "label-studio"

    def __init__(
        self,
        files_root: Path | str | None = None,
        port: int | None = None,
        token: str | None = None,
        startup_timeout_s: float = 240.0,
    ) -> None:
        super().__init__(port)
        self.files_root = Path(files_root) if files_root is not None else self.workdir / "files"
        self.files_root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.token = token or secrets.token_hex(20)
        self.username, self.password = LS_USERNAME, LS_PASSWORD
        self.startup_timeout_s = startup_timeout_s
        self._launched_at = 0.0

    @property
    def url(self) -> str:
        """Base URL, no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """Legacy-token auth headers for the LS REST API."""
        return {"Authorization": f"Token {self.token}"}

    def _env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in _LS_SCRUB_NAMES and not key.startswith(_LS_SCRUB_PREFIXES)
        }
        env.update(
            PATH=f"{ls_venv() / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            ML_BLOCK_LOCAL_IP="false",
            SSRF_PROTECTION_ENABLED="false",
            LOCAL_FILES_SERVING_ENABLED="true",
            LOCAL_FILES_DOCUMENT_ROOT=str(self.files_root.resolve()),
        )
        return env

    def start(self) -> LabelStudioServer:
        """Start Label Studio (no-op when running) and wait for ``GET /health`` → ``{"status": "UP"}``.

        Returns:
            self.

        Raises:
            RuntimeError: LS is not installed, exits early, or is not UP within ``startup_timeout_s``; the message
                carries the last 50 log lines.
        """
        if self.running:
            return self
        self.launch()
        return self.wait_up()

    def launch(self) -> LabelStudioServer:
        """Spawn Label Studio and return at once (it migrates its database for about a minute of one core; the test
        session launches it before the first test and :meth:`wait_up` s when a test needs it). Call it from the main
        thread: the child is stopped when the thread that spawned it ends.

        Raises:
            RuntimeError: LS is not installed (with the install hint).
        """
        binary = ls_venv() / "bin" / "label-studio"
        if not binary.exists():
            raise RuntimeError(f"Label Studio {LS_VERSION} is not installed at {ls_venv()}: {INSTALL_HINT}")
        # Always `start` with explicit flags: a bare `label-studio` serves 0.0.0.0:8080 from the home data dir.
        argv = [str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(self.port),
                "--host", self.url, "--username", self.username, "--password", self.password,
                "--user-token", self.token, "--enable-legacy-api-token"]  # fmt: skip
        self._spawn(argv, env=self._env())
        self._launched_at = time.monotonic()
        return self

    def wait_up(self) -> LabelStudioServer:
        """Wait until the launched Label Studio answers ``GET /health`` → UP, at most ``startup_timeout_s`` after
        :meth:`launch`.

        Raises:
            RuntimeError: it exited, or is not UP in time; the message carries the last 50 log lines.
        """
        deadline = self._launched_at + self.startup_timeout_s
        while True:  # asks at least once: the first test that needs it may come long after the launch
            if not self.running:
                raise self._failure(f"Label Studio exited during start on port {self.port}")
            try:
                if self.request("GET", "/health", auth=False).get("status") == "UP":
                    return self
            except (OSError, ValueError):  # refused / reset / not JSON yet while migrating
                pass
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        raise self._failure(f"Label Studio was not UP within {self.startup_timeout_s:.0f} s at {self.url}/health")

    def request(self, method: str, path: str, body: Any = None, auth: bool | str = True, timeout_s: float = 30.0) -> Any:
        """Call the LS REST API with the standard library (no ``requests`` needed) and decode the JSON reply.

        Args:
            method: HTTP method. path: path starting with ``/``. body: JSON-serialisable payload or None.
            auth: True for the legacy token, False for none, or a full ``Authorization`` header value.
            timeout_s: socket timeout.

        Returns:
            The decoded JSON (None for an empty body).

        Raises:
            urllib.error.HTTPError: a non-2xx status (``.code``, ``.read()`` for the body).
        """
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = auth if isinstance(auth, str) else self.headers["Authorization"]
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:  # re-raise with the body in the message: LS explains its 4xx there
            detail = err.read()
            message = f"{method} {path}: {err.reason}: {detail.decode(errors='replace')[:2000]}"
            raise urllib.error.HTTPError(err.url, err.code, message, err.headers, io.BytesIO(detail)) from None
        return json.loads(raw) if raw else None

    def personal_access_token(self) -> str:
        """Create a Personal Access Token (a JWT refresh token) for the admin via ``POST /api/token/``.

        Exchange it at ``POST /api/token/refresh/`` ``{"refresh": pat}`` → ``{"access": jwt}`` and send
        ``Authorization: Bearer <access>``; label-studio-sdk 2.1.2 does that itself when given the PAT as api_key.

        Returns:
            The PAT string.
        """
        # LS allows one PAT per user (a second POST is 409): create it once, hand out the same one.
        if getattr(self, "_pat", None) is None:
            self._pat = self.request("POST", "/api/token/", body={})["token"]
        return self._pat

    def local_files_url(self, path: Path | str) -> str:
        """Return the ``/data/local-files/?d=...`` URL of a file under :attr:`files_root`, for task data.

        LS serves it only to users of a project that has a Local Files storage whose path contains the file
        (:meth:`add_local_storage`).

        Raises:
            ValueError: ``path`` is not inside ``files_root``.
        """
        rel = Path(path).resolve().relative_to(self.files_root.resolve())
        return f"/data/local-files/?d={urllib.request.quote(rel.as_posix())}"

    def add_local_storage(self, project_id: int, directory: Path | str) -> dict[str, Any]:
        """Connect a Local Files import storage (no sync) so that :meth:`local_files_url` URLs under it resolve.

        Args:
            project_id: LS project id.
            directory: a sub-directory of ``files_root`` (LS refuses the document root itself).

        Returns:
            The created storage as JSON.

        Raises:
            ValueError: ``directory`` is not strictly inside ``files_root``.
        """
        directory = Path(directory).resolve()
        if self.files_root.resolve() not in directory.parents:
            raise ValueError(f"{directory} must be a sub-directory of files_root {self.files_root}")
        body = {"project": project_id, "path": str(directory), "use_blob_urls": True, "title": "tests"}
        return self.request("POST", "/api/storages/localfiles/", body=body)
