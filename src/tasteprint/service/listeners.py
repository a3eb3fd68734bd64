"""Worker processes that each listen on a socket of their own, so the kernel spreads connections over
them. uvicorn's workers share one listening socket, and the worker that wakes first accepts every
connection waiting: 16 keep-alive clients that connected at once all went to one of two workers in
one of three tries (177 requests/s, against 302 with 8 on each; ml-latest-small, 2 cores). Here each
worker binds its own socket to the address with SO_REUSEPORT, and Linux hands each new connection to
one of the listening sockets by a hash of its addresses. A worker joins only once it listens, after
its warm-up, so no connection waits on a worker that is still loading."""

from __future__ import annotations

import socket
import sys

from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from tasteprint.errors import ConfigError


def own_listeners_supported(workers: int) -> bool:
    """Whether `serve_with_own_listeners` applies: more than one worker, on a platform that balances a
    SO_REUSEPORT group's connections (Linux; elsewhere every connection goes to one socket)."""
    return workers > 1 and sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) in the address's SO_REUSEPORT group, not yet listening."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class OwnListener:
    """Stands in uvicorn's list of sockets for its workers: uvicorn hands the list to each worker process
    by pickling it, and this unpickles there into a new socket (`reuse_port_socket`), one per worker."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def __reduce__(self):
        return reuse_port_socket, (self.host, self.port)


def serve_with_own_listeners(config: Config) -> None:
    """Run `config.workers` workers under uvicorn's supervisor (restarts, signals, health checks), each
    listening on its own socket. The address is bound here first, so a taken port is one clear error
    rather than workers failing one after another; this socket never listens, so it gets no connections."""
    try:
        reserved = reuse_port_socket(config.host, config.port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror}", hint="choose another --port"
        ) from exc
    with reserved:
        Multiprocess(config, sockets=[OwnListener(config.host, reserved.getsockname()[1])]).run()
