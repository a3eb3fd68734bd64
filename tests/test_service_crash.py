"""A served store survives SIGKILL while events are being posted: after a restart every event that got
a 2xx is there, and posting again what was in flight stores nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from http_servers import free_port, wait_for

from tasteprint import Tasteprint
from tasteprint.cli.demo import BUILT_IN

pytestmark = pytest.mark.slow
ADMIN = "admin-for-the-crash-test"


def start(store, port) -> subprocess.Popen:
    command = [sys.executable, "-m", "tasteprint.cli", "serve", "--store", str(store), "--port", str(port)]
    env = dict(os.environ, TASTEPRINT_ADMIN_TOKEN=ADMIN)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(f"http://127.0.0.1:{port}/healthz", process, 300)
    return process


def test_events_acknowledged_before_a_sigkill_are_kept_once(tmp_path):
    store = tmp_path / "store"
    tp = Tasteprint(store=store)
    tp.ingest(BUILT_IN)
    tp.fit(progress=False)
    items = sorted(tp.db.items())
    tp.close()
    port = free_port()
    server = start(store, port)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {ADMIN}"}
    base = int(time.time()) - 1_000_000
    users = [f"crash-{n}" for n in range(4)]
    acknowledged: dict[str, int] = dict.fromkeys(users, 0)
    batches: dict[str, list[str]] = {user: [] for user in users}
    stop = threading.Event()

    def post(user: str) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                rows = [
                    {
                        "user_id": user,
                        "item_id": items[(5 * n + j) % len(items)],
                        "kind": "rating",
                        "rating": 4,
                        "timestamp": base + 5 * n + j,
                    }
                    for j in range(5)
                ]
                body = "\n".join(json.dumps(r) for r in rows)
                batches[user].append(body)
                try:
                    response = client.post("/v1/events", content=body)
                except httpx.HTTPError:
                    return  # the server died under this request: not acknowledged
                assert response.status_code == 200, response.text
                acknowledged[user] += response.json()["accepted"]

    posters = [threading.Thread(target=post, args=(user,)) for user in users]
    for thread in posters:
        thread.start()
    deadline = time.time() + 120  # kill once some batches were acknowledged, however loaded the machine is
    while sum(acknowledged.values()) < 40 and time.time() < deadline:
        time.sleep(0.1)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    stop.set()
    for thread in posters:
        thread.join()
    assert sum(acknowledged.values()) > 0

    server = start(store, port)
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for user, count in acknowledged.items():
                total = client.get(f"/v1/users/{user}/events", params={"limit": 1}).json().get("total", 0)
                assert total >= count  # every 2xx is there (the batch in flight may be too)
            for user, bodies in batches.items():  # a client retries what it sent; duplicates are counted, not stored
                for body in bodies:
                    assert client.post("/v1/events", content=body).status_code == 200
                total = client.get(f"/v1/users/{user}/events", params={"limit": 1}).json()["total"]
                assert total == 5 * len(bodies)
    finally:
        server.terminate()
        server.wait(timeout=30)
