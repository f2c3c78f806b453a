"""The student page on loopback: its static files and a `config.json` for the local stack.

A small threaded HTTP server (GET/HEAD only, a fixed list of files, no directory listing). Its
Content-Security-Policy names the only places the page may reach: the WebSocket API and the
local S3 (uploads, answer audio).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from synapscribe.web import CONTENT_TYPES, read_static


def content_security_policy(websocket_url: str, s3_origin: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"connect-src 'self' {websocket_url} {s3_origin}",
            f"media-src {s3_origin} blob:",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


class PageServer:
    """Serves the page and `config` (as config.json) on host:port until `stop()`."""

    def __init__(self, host: str, port: int, config: dict[str, Any], csp: str) -> None:
        self.config_body = (json.dumps(config, indent=2) + "\n").encode()
        self.csp = csp
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="page", daemon=True)
        self.host, self.port = host, self._http.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def body(self, path: str) -> tuple[bytes, str] | None:
        name = urlsplit(path).path.lstrip("/") or "index.html"
        if name == "config.json":
            return self.config_body, "application/json"
        try:
            return read_static(name), CONTENT_TYPES[name]
        except KeyError:
            return None


def _handler(page: PageServer) -> type[BaseHTTPRequestHandler]:
    class PageHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "synapscribe-local-page"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the page's requests are not news

        def _send(self, head_only: bool) -> None:
            found = page.body(self.path)
            status, (data, kind) = (
                (HTTPStatus.OK, found) if found else (HTTPStatus.NOT_FOUND, (b"not found\n", "text/plain"))
            )
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Security-Policy", page.csp)
            self.end_headers()
            if not head_only:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(head_only=False)

        def do_HEAD(self) -> None:
            self._send(head_only=True)

    return PageHandler
