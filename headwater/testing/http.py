"""Stand-ins at a REST boundary, for services with no emulator that runs here (BigQuery,
Cloud Logging and Monitoring, the Application Insights query API): a handler that speaks
JSON and a threaded server on a free port of 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["JsonHandler", "Server", "serve"]


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler with JSON in and out, and no log lines on stderr."""

    def log_message(self, *args: Any) -> None:
        pass

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def send_json(self, code: int, doc: Any, content_type: str = "application/json") -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server:
    """``handler`` served on a free port of 127.0.0.1 from a daemon thread until
    :meth:`close`; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` for the ``with`` block; yields its URL."""
    server = Server(handler)
    try:
        yield server.url
    finally:
        server.close()
