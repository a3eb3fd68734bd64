"""`tasteprint serve --workers 2` spreads connections over its workers: each listens on a socket of its
own (SO_REUSEPORT), so keep-alive clients that connect at once do not all land on one worker; and
/metrics counts every worker's requests, whichever worker answers."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from http_servers import tasteprint_server

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN

HEALTHZ_200 = 'tasteprint_requests_total{route="/healthz",status="200"}'
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux balances")]


def listening_sockets(port: int) -> int:
    """How many sockets listen on `port` (IPv4), from the kernel's table: state 0A is LISTEN."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "0A")


def healthz_answered(client: http.client.HTTPConnection) -> float:
    """The service's count of /healthz requests answered 200, from /metrics over `client`."""
    client.request("GET", "/metrics")
    text = client.getresponse().read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if HEALTHZ_200 in line)


def test_each_worker_listens_on_its_own_socket_and_connections_spread_over_them(tmp_path):
    store = tmp_path / "store"
    tp = Tasteprint(store=store)
    tp.ingest(BUILT_IN)
    tp.fit(progress=False)
    tp.close()
    with tasteprint_server(store, "admin-for-the-workers-test", workers=2) as url:
        address = urlsplit(url)
        assert listening_sockets(address.port) == 2  # uvicorn's shared socket would be one
        clients = [http.client.HTTPConnection(address.hostname, address.port, timeout=30) for _ in range(16)]
        for client in clients:  # all connected before any request, as a pool of keep-alive clients does
            client.connect()
        workers = []
        for client in clients:
            for _ in range(2):  # the same connection stays with its worker
                client.request("GET", "/healthz")
                workers.append(json.loads(client.getresponse().read())["worker"])
        assert all(workers[n] == workers[n + 1] for n in range(0, len(workers), 2))
        assert len(set(workers)) == 2  # all 16 on one worker: 2 in 65,536 with the ports hashed

        # /metrics adds up both workers' counts, whichever answers (each worker's own count differs).
        # A worker counts a request just after answering it, so a count may land a moment late.
        one_per_worker = [clients[workers.index(w) // 2] for w in sorted(set(workers))]
        deadline = time.monotonic() + 10
        while True:
            totals = [healthz_answered(client) for client in one_per_worker]
            if totals[0] == totals[1] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for client in clients:
            client.close()
    assert totals[0] == totals[1] >= len(workers)

    with socket.socket() as taken:  # a port some other program listens on: one clear error, exit 1
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = [sys.executable, "-m", "tasteprint.cli", "serve", "--store", str(store), "--workers", "2"]
        refused = subprocess.run([*command, "--port", port], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in refused.stderr
    assert "Traceback" not in refused.stderr
