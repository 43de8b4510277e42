"""``python -m backend serve`` in a subprocess, for tests of what only a real server process shows: how it stops
(SIGTERM from ``docker stop``, SIGKILL) and what its next start says."""

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

REPO = Path(__file__).parents[2]


def served_env(model: Path, media_root: Path, work: Path) -> dict[str, str]:
    """The environment of a served tiny backend whose propagation outlasts its interactive budget (0.01 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "UNIPIXEL_"))}
    env.update({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "UNIPIXEL_MODEL": str(model),
                "UNIPIXEL_LOCAL_ROOTS": str(media_root), "UNIPIXEL_DATA_DIR": str(work / "data"),
                "UNIPIXEL_MEDIA_CACHE_DIR": str(work / "media"), "MODEL_DIR": str(work / "models"),
                "UNIPIXEL_INTERACTIVE_BUDGET_S": "0.01", "UNIPIXEL_DESCRIBE": "false", "OMP_NUM_THREADS": "2"})
    return env


def docker_command(dockerfile: str = "docker/Dockerfile.cpu") -> list[str]:
    """The ``CMD`` of a Docker image (``sh -c "exec gunicorn ..."``, reading ``PORT`` and ``THREADS``), to run as is
    from the repository root (the image's ``WORKDIR``) with this venv's ``bin`` on ``PATH``."""
    (line,) = [line for line in (REPO / dockerfile).read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line[len("CMD "):])


class ServedBackend:
    """One backend process on a fresh port (a killed process's socket may linger), logging to ``log``; healthy when
    the constructor returns. By default ``python -m backend serve --preload``; ``docker=True`` runs the Docker image's
    command instead."""

    def __init__(self, env: dict[str, str], log: Path, docker: bool = False, timeout_s: float = 120) -> None:
        self.port, self.log = free_port(), log
        command = [sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--preload"]
        if docker:
            command = docker_command()
            env = dict(env, PORT=str(self.port), THREADS="4",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
        self._log = open(log, "w")  # noqa: SIM115 (the process writes it until kill() closes it)
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2)
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.3)
        self.kill()
        raise AssertionError(f"backend did not start: {self.text()[-3000:]}")

    def predict(self, body: dict) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/predict", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            return json.loads(reply.read())

    def text(self) -> str:
        return self.log.read_text()

    def terminate(self, timeout_s: float) -> float:
        """SIGTERM (what ``docker stop`` sends) to the server's process group; seconds until it exited. Raises
        ``subprocess.TimeoutExpired`` (after a SIGKILL) when it is still running after ``timeout_s``."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL to the whole process group, as a crash or an out-of-memory kill would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()
