"""gunicorn settings of the backend: ``gunicorn -c python:backend.gunicorn_conf ... backend._wsgi:app`` (the Docker
images); ``python -m backend serve`` applies them too.

Without this module gunicorn still serves, but a SIGTERM (``docker stop``, a deploy) waits for every queued
background track until its graceful timeout (30 s) or Docker (10 s) kills the worker, and nothing says what was cut.
"""

from __future__ import annotations

import gc

# No control socket (gunicorn >= 25): its one default path per user ($XDG_RUNTIME_DIR or ~/.gunicorn) is shared by
# every backend on a host, and the worker count it can change must stay 1 (each worker loads its own model copy).
control_socket_disable = True


def worker_exit(server, worker) -> None:
    """gunicorn's hook, in the worker after it stopped taking requests (in-flight ones have ended): stop the
    background work at once and log what it cuts off (:meth:`backend.engine.Engine.stop`)."""
    engine = getattr(getattr(worker, "wsgi", None), "config", {}).get("engine")
    if engine is not None:
        engine.stop()
    _skip_the_last_collection()


def on_exit(server) -> None:
    """gunicorn's hook, in the master just before it exits."""
    _skip_the_last_collection()


def _skip_the_last_collection() -> None:
    """Exit without the interpreter's last garbage collection over torch's, transformers' and the model's objects:
    2.3 s of every stop on 2 CPU cores, in the worker and again in the master, for memory the OS takes back anyway.
    Nothing of ours waits for a collection to clean up (frame folders are links, downloads are renamed or removed
    explicitly); objects made after this are still collected."""
    gc.freeze()
