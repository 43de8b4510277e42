"""A loopback HTTP server with canned answers that records what it was asked (media hosts, a hostile or
broken Label Studio). Only 127.0.0.1; stopped by the test that started it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# (status, headers, body) or a function of the request headers returning one
Answer = tuple[int, dict[str, str], bytes] | Callable[[dict[str, str]], tuple[int, dict[str, str], bytes]]


class StubServer:
    """``routes`` maps a path (no query) to an :data:`Answer`; anything else is a 404.

    Attributes:
        requests: ``(method, path with query, headers)`` of every request, in order.
    """

    def __init__(self, routes: dict[str, Answer] | None = None) -> None:
        self.routes: dict[str, Answer] = dict(routes or {})
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                headers = dict(self.headers.items())
                length = int(headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests.append((self.command, self.path, headers))
                answer = stub.routes.get(urlsplit(self.path).path, (404, {}, b"not found"))
                status, extra, body = answer(headers) if callable(answer) else answer
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **extra}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self) -> "StubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
