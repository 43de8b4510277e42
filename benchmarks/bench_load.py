"""Many annotators at once against the served backend, over real HTTP (a script, not a timed test).

Usage::

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_load.py [--annotators 8] [--seconds 120]
        [--model tiny] [--soak-after 60]

Starts ``python -m backend serve`` (gunicorn, the command users run) on a free port with the tiny model, media in a
temporary folder (the 320x240 PNG of ``bench_media.py``: a square on a textured background), a real
``redis-server`` for the webhooks' queue, no Label Studio. Each simulated annotator loops over a mix for
``--seconds``, pausing 0.5-2 s between actions and, after a 503, for its ``Retry-After`` (at most 10 s):

- ``first``: one smart click on a new image task (opens a session);
- ``second``: a negative click on one of its own open tasks (SAM 2 only);
- ``text``: a text query on an image task;
- ``batch``: "Retrieve predictions" for 4 image tasks with a ``query`` field;
- ``webhook``: an ANNOTATION_CREATED event.

Prints p50/p95/p99 latency per kind, errors by kind (anything but 200, and 503), 503s and whether each carried
``Retry-After``, the server's peak RSS, and its RSS at ``--soak-after`` seconds against the end (growth in a soak).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_media import HEIGHT, WIDTH, config, keypoint, write_image  # noqa: E402

KINDS = ("first", "second", "text", "batch", "webhook")
WEIGHTS = (3, 4, 1, 1, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: dict, timeout_s: float = 300.0) -> tuple[int, dict, float]:
    """(status, headers, seconds) of one JSON POST."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:
            reply.read()
            return reply.status, dict(reply.headers), time.perf_counter() - start
    except urllib.error.HTTPError as err:
        err.read()
        return err.code, dict(err.headers), time.perf_counter() - start
    except OSError:
        return 0, {}, time.perf_counter() - start


class Annotator(threading.Thread):
    """One simulated annotator: a loop over the mix until the deadline."""

    def __init__(self, n: int, url: str, image: Path, deadline: float, stats: dict, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.n, self.url, self.image, self.deadline = n, url, str(image), deadline
        self.stats, self.lock, self.rng = stats, lock, random.Random(n)
        self.open_tasks: list[int] = []
        self.next_task = 100_000 * (n + 1)

    def run(self) -> None:
        cfg = config("image_segmentation")
        while time.monotonic() < self.deadline:
            kind = self.rng.choices(KINDS, WEIGHTS)[0]
            if kind == "second" and not self.open_tasks:
                kind = "first"
            status, headers, seconds = self._send(kind, cfg)
            with self.lock:
                self.stats[kind].append((status, "Retry-After" in headers, seconds))
            # as Label Studio's users do: think between actions; after a 503, wait as told (at most 10 s)
            pause = min(float(headers.get("Retry-After", 1)), 10.0) if status == 503 else self.rng.uniform(0.5, 2.0)
            time.sleep(pause)

    def _task(self, task_id: int, query: str | None = None) -> dict:
        data = {"image": self.image} if query is None else {"image": self.image, "query": query}
        return {"id": task_id, "data": data}

    def _send(self, kind: str, cfg: str) -> tuple[int, dict, float]:
        x, y = self.rng.uniform(20, WIDTH - 20), self.rng.uniform(20, HEIGHT - 20)
        if kind == "webhook":
            return post(self.url + "/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 1},
                                                "annotation": {"id": self.next_task, "result": []}})
        if kind == "batch":
            tasks = [self._task(self.next_task + k, "the square") for k in range(4)]
            self.next_task += 4
            return post(self.url + "/predict", {"tasks": tasks, "label_config": cfg, "project": "1.1"})
        if kind == "second":
            task = self.rng.choice(self.open_tasks)
            click = keypoint(x, y, False, f"n{time.monotonic_ns()}", "image", None)
            return post(self.url + "/predict", {"tasks": [self._task(task)], "label_config": cfg, "project": "1.1",
                                                "params": {"context": {"result": [click]}}})
        self.next_task += 1
        if kind == "text":
            region = {"id": "q", "from_name": "prompt", "to_name": "image", "type": "textarea",
                      "value": {"text": ["the square"]}}
        else:
            region = keypoint(x, y, True, f"p{self.next_task}", "image", None)
            self.open_tasks = (self.open_tasks + [self.next_task])[-8:]
        return post(self.url + "/predict", {"tasks": [self._task(self.next_task)], "label_config": cfg,
                                            "project": "1.1", "params": {"context": {"result": [region]}}})


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children (gunicorn master + worker), MiB."""
    total = 0.0
    for p in [pid] + [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                       text=True).stdout.split()]:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines())
            total += int(fields["VmRSS"].split()[0]) / 1024
        except (OSError, KeyError, ValueError):
            continue
    return total


def start_server(args, work: Path, redis_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "UNIPIXEL_MODEL": args.model,
           "UNIPIXEL_LOCAL_ROOTS": str(work), "UNIPIXEL_DATA_DIR": str(work / "data"),
           "MODEL_DIR": str(work / "models"), "UNIPIXEL_MEDIA_CACHE_DIR": str(work / "cache"),
           "REDIS_URL": redis_url, "UNIPIXEL_TRAIN_QUEUE": "bench-load", "THREADS": str(args.threads), "OMP_NUM_THREADS": "2",
           "UNIPIXEL_DESCRIBE": "false"}
    for key in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
        env.pop(key, None)
    log = open(work / "backend.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--preload"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"backend did not start: {(work / 'backend.log').read_text()[-2000:]}")


def report(stats: dict, peak: float, soak: tuple[float, float] | None, annotators: int, seconds: float) -> None:
    print(f"\n{annotators} annotators, {seconds:.0f} s")
    print(f"{'kind':8} {'calls':>6} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'errors':>7} {'503':>5} {'503 w/o Retry-After':>20}")
    for kind in KINDS:
        rows = stats.get(kind, [])
        if not rows:
            continue
        times = np.array([s for _, _, s in rows])
        errors = sum(1 for status, _, _ in rows if status not in (200, 503))
        busy = [(status, retry) for status, retry, _ in rows if status == 503]
        p50, p95, p99 = np.percentile(times, [50, 95, 99])
        print(f"{kind:8} {len(rows):6d} {p50:7.2f} {p95:7.2f} {p99:7.2f} {errors:7d} {len(busy):5d} "
              f"{sum(1 for _, retry in busy if not retry):20d}")
    codes = defaultdict(int)
    for rows in stats.values():
        for status, _, _ in rows:
            codes[status] += 1
    print("status codes:", dict(sorted(codes.items())))
    print(f"server peak RSS {peak:.0f} MiB" + (f"; RSS at soak start {soak[0]:.0f} MiB, at the end {soak[1]:.0f} MiB "
                                                 f"(growth {soak[1] - soak[0]:+.0f} MiB)" if soak else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--soak-after", type=float, default=60, help="seconds after which the soak RSS is taken")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--threads", type=int, default=8, help="the server's request threads (THREADS)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unipixel-load-") as tmp:
        work = Path(tmp)
        from tests.services import RedisServer

        image = write_image(work / "square.png")
        redis = RedisServer().start()
        proc, url = start_server(args, work, redis.url)
        try:
            stats: dict = defaultdict(list)
            lock = threading.Lock()
            deadline = time.monotonic() + args.seconds
            threads = [Annotator(n, url, image, deadline, stats, lock) for n in range(args.annotators)]
            for thread in threads:
                thread.start()
            start, peak, soak_start = time.monotonic(), 0.0, None
            while any(t.is_alive() for t in threads):
                rss = rss_mib(proc.pid)
                peak = max(peak, rss)
                if soak_start is None and time.monotonic() - start >= args.soak_after:
                    soak_start = rss
                time.sleep(1.0)
            end = rss_mib(proc.pid)
            report(stats, max(peak, end), (soak_start, end) if soak_start else None, args.annotators,
                   time.monotonic() - start)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
