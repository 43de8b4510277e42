"""The real-service helpers in tests/services.py: redis-server fixture, restart on the same port, install hints."""

import socket
import time

import pytest
import redis

from tests.services import LabelStudioServer, RedisServer, free_port, ls_sample_video


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_redis_server_answers_ping_and_stores_values(redis_server):
    client = redis_server.client()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert client.ping()
    client.set("test_services:key", "value")
    assert client.get("test_services:key") == b"value"
    client.delete("test_services:key")


def test_redis_server_restarts_on_same_port_without_persistence(redis_server):
    """The fault-injection path: stop the shared server, see clients fail, start it again on the same URL."""
    url, port = redis_server.url, redis_server.port
    redis_server.client().set("test_services:volatile", "1")
    redis_server.stop()
    try:
        assert not redis_server.running
        with pytest.raises(redis.exceptions.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    finally:
        redis_server.start()
    assert (redis_server.port, redis_server.url) == (port, url)
    client = redis.Redis.from_url(url)
    assert client.ping()
    # --save "" and --appendonly no: a restart starts empty, so tests never see an earlier run's keys.
    assert client.get("test_services:volatile") is None


def test_redis_server_close_frees_port_and_workdir():
    server = RedisServer().start()
    workdir, port = server.workdir, server.port
    server.close()
    assert not workdir.exists()
    with socket.socket() as sock:  # nothing listens any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_redis_server_missing_binary_raises_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    server = RedisServer()
    with pytest.raises(RuntimeError, match="apt-get install -y redis-server"):
        server.start()
    server.close()


def test_label_studio_missing_venv_raises_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIPIXEL_LS_VENV", str(tmp_path / "no-venv"))
    server = LabelStudioServer()
    with pytest.raises(RuntimeError, match="install_services.sh"):
        server.start()
    server.close()
    with pytest.raises(RuntimeError, match="not installed"):
        ls_sample_video()


def test_label_studio_launched_long_ago_and_up_is_waited_for_without_a_timeout(monkeypatch):
    """The session launches Label Studio at collection; its first test may come after ``startup_timeout_s``."""
    server = LabelStudioServer(startup_timeout_s=5.0)
    try:
        monkeypatch.setattr(LabelStudioServer, "running", property(lambda self: True))
        monkeypatch.setattr(server, "request", lambda *a, **k: {"status": "UP"})
        server._launched_at = time.monotonic() - 600  # launched 10 minutes ago, UP since
        assert server.wait_up() is server
    finally:
        server.close()
