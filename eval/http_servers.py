"""Real OpenAI-compatible servers on 127.0.0.1, for benchmarks and tests: llama.cpp's server serving a
GGUF model, and a server that answers each request with a function of its body after a fixed latency
(the replay of recorded replies in `bench_hosted.py`, schema-following replies in tests)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tasteprint.config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def wait_for_workers(url: str, workers: int, timeout_s: float) -> None:
    """Wait until `workers` distinct worker processes have answered `url` (/healthz) on new connections:
    a worker listens only after its warm-up, and a benchmark that starts before then measures fewer."""
    answered: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(answered) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(answered)} of {workers} workers answered {url} after {timeout_s} s")
        with urllib.request.urlopen(url, timeout=5) as response:
            answered.add(json.load(response)["worker"])
        time.sleep(0.05)


@contextmanager
def tasteprint_server(store, admin_token: str, workers: int = 1, timeout_s: float = 300) -> Iterator[str]:
    """`tasteprint serve` over `store` on a free port with `admin_token` and `workers` processes; yields
    its base URL (stopped with SIGTERM after). Its stderr goes to `store/serve.log`."""
    port = free_port()
    env = dict(os.environ, TASTEPRINT_ADMIN_TOKEN=admin_token)
    command = [sys.executable, "-m", "tasteprint.cli", "serve", "--store", str(store), "--port", str(port)]
    command += ["--workers", str(workers)]
    with open(os.path.join(store, "serve.log"), "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", process, timeout_s)
        wait_for_workers(f"http://127.0.0.1:{port}/healthz", workers, timeout_s)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def llama_server(model_path, n_ctx: int = 4096, alias: str = "smollm2") -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server, serving `model_path`; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", alias]
    # The server's default is half the cores; the embedded model's setting (TASTEPRINT_N_THREADS), else all.
    threads = str(Settings.load().n_threads or os.cpu_count() or 1)
    command += ["--n_threads", threads, "--n_threads_batch", threads]
    # By default a new request interrupts the one being generated (which then fails with HTTP 500);
    # concurrent clients must queue instead.
    command += ["--interrupt_requests", "False"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


def chat_body(content: str | dict) -> dict:
    """An OpenAI chat-completion response carrying `content`: text, or a dict {"name", "arguments"} for
    a reply that calls that tool."""
    message: dict = {"role": "assistant", "content": content}
    if isinstance(content, dict):
        call = {"name": content["name"], "arguments": json.dumps(content["arguments"])}
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t", "type": "function", "function": call}],
        }
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def request_schema(body: dict) -> dict | None:
    """The JSON schema a chat request asks for, in either response_format the hosted backend sends."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    return response_format.get("schema")


@dataclass
class ServerLog:
    """What a reply server saw: how many requests, how many it could not answer, the most in flight."""

    requests: int = 0
    unanswered: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    request_queue_size = 64  # a burst of concurrent clients must not be refused at connect
    daemon_threads = True


@contextmanager
def reply_server(
    answer: Callable[[dict], str | dict | None], latency_s: float = 0.0
) -> Iterator[tuple[str, ServerLog]]:
    """Answers each chat request with `answer(body)` (see `chat_body`) after `latency_s`, many requests
    at once (one thread each, as a GPU server batches them). `answer` returning None is a 404. Yields
    (base URL, log)."""
    log = ServerLog()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            with log.lock:
                log.requests += 1
                log.in_flight += 1
                log.max_in_flight = max(log.max_in_flight, log.in_flight)
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                time.sleep(latency_s)
                content = answer(body)
                status, payload = (200, chat_body(content)) if content is not None else (404, {"error": "no reply"})
                if content is None:
                    with log.lock:
                        log.unanswered += 1
                send_json(self, status, payload)
            finally:
                with log.lock:
                    log.in_flight -= 1

        def log_message(self, *args):
            pass

    with serve(Handler) as base_url:
        yield base_url, log


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict | bytes, headers: dict | None = None) -> None:
    """Answer a request with `payload` (a dict as JSON, or bytes as they are), `status` and `headers`;
    a client that already hung up is not an error."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        handler.send_response(status)
        for key, value in {"content-type": "application/json", **(headers or {})}.items():
            handler.send_header(key, value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Run `handler` on a free port of 127.0.0.1 in a background thread; yields the /v1 base URL."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
