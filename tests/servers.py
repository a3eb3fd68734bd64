"""Real servers on 127.0.0.1 for tests: those in eval/http_servers.py (llama.cpp's OpenAI-compatible server,
a reply server), and a scripted HTTP server that plays a fixed sequence of statuses and delays."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

from http_servers import chat_body, free_port, llama_server, reply_server, request_schema, send_json, serve, wait_for

__all__ = [
    "chat_body",
    "free_port",
    "llama_server",
    "reply_server",
    "request_schema",
    "scripted_http_server",
    "send_json",
    "serve",
    "wait_for",
]


@contextmanager
def scripted_http_server(responses):
    """Answers successive POSTs with (status, headers, body-or-dict, delay_s) tuples; records requests."""
    queue = list(responses)
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("content-length", 0))
            requests.append(json.loads(self.rfile.read(length) or b"{}"))
            status, headers, body, delay = queue.pop(0) if queue else (500, {}, {"error": "script exhausted"}, 0)
            time.sleep(delay)
            send_json(self, status, body, headers)

        def log_message(self, *args):
            pass

    with serve(Handler) as base_url:
        yield base_url, requests
