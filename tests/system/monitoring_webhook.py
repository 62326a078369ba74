"""A local stand-in for a Slack incoming webhook: a real HTTP server on a random loopback port,
in a thread, that refuses the first ``failures`` posts (HTTP 500) and then answers ``ok``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookServer:
    def __init__(self, failures: int = 0) -> None:
        self.failures_left = failures
        self.attempts: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.attempts.append(body)
                    fail = owner.failures_left > 0
                    if fail:
                        owner.failures_left -= 1
                    else:
                        owner.delivered.append(body)
                answer = b"internal error" if fail else b"ok"
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.secret_path = "/services/T0SECRET/B0SECRET/abcdefSECRETtoken123"
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.secret_path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def messages(self, which: str = "delivered") -> list[str]:
        with self.lock:
            bodies = list(self.delivered if which == "delivered" else self.attempts)
        return [b["attachments"][0]["fallback"] for b in bodies]
