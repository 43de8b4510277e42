"""Our backend as users run it, in a subprocess: ``python -m backend serve`` (or the Docker image's ``CMD``), for the
browser tests and for what only a real server process shows (how it stops on SIGTERM or SIGKILL, what its next start
says)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.services import free_port

REPO = Path(__file__).parents[1]


def docker_command(dockerfile: str = "docker/Dockerfile.cpu") -> list[str]:
    """The ``CMD`` of a Docker image (``sh -c "exec gunicorn ..."``, reading ``PORT`` and ``THREADS``), to run as is
    from the repository root (the image's ``WORKDIR``) with this venv's ``bin`` on ``PATH``."""
    (line,) = [line for line in (REPO / dockerfile).read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line[len("CMD "):])


class ServedBackend:
    """One backend process logging to ``log_path``, on ``port`` (default: a fresh one, as a killed process's socket
    may linger). ``python -m backend serve`` (``--preload``: the model loads before ``/health`` answers) or, with
    ``docker=True``, the Docker image's command. Call :meth:`wait` for it to be healthy."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None, preload: bool = False,
                 docker: bool = False) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   *(["--preload"] if preload else [])]
        if docker:
            command = docker_command()
            env = dict(env, PORT=str(self.port), THREADS="4",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
        self._log = open(log_path, "w")  # noqa: SIM115 (the process writes it until stop() or kill() closes it)
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait(self, timeout_s: float = 120) -> ServedBackend:
        """Return self once ``/health`` answers; RuntimeError with the log's tail if it exits or is not up in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"backend exited: {self.text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"backend not healthy in {timeout_s} s: {self.text()[-3000:]}")

    def predict(self, body: dict) -> dict:
        """POST ``body`` to ``/predict``; the JSON answer."""
        request = urllib.request.Request(self.url + "/predict", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            return json.loads(reply.read())

    def text(self) -> str:
        return self.log_path.read_text()

    def terminate(self, timeout_s: float) -> float:
        """SIGTERM (what ``docker stop`` sends) to the server's process group; seconds until it exited. Raises
        ``subprocess.TimeoutExpired`` (after a SIGKILL) when it is still running after ``timeout_s``."""
        started = time.monotonic()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._log.close()
        return time.monotonic() - started

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still running after 20 s (a fixture's teardown)."""
        try:
            self.terminate(timeout_s=20)
        except subprocess.TimeoutExpired:
            pass  # killed

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a crash or an out-of-memory kill would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()
