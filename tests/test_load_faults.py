"""Load and faults on a live loopback server (uvicorn on 127.0.0.1, fake GAR): concurrent clients,
stalled request bodies, clients that vanish mid-request, a restart on the same port. The server
keeps serving and answers only 2xx / 4xx / 429 — never a 5xx, and never a traceback in its log."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from gar_tool.integrations.http.server import create_app
from gar_tool.tools import GARToolkit, ImageInputConfig
from server_support import LiveServer, SlowGAR
from tools_support import FakeGAR, b64, png_bytes, rgb

IMAGE = b64(png_bytes(rgb(48, 64, 7)))
BOX = {"box": [4, 4, 30, 30]}


class Records(logging.Handler):
    """Collects the records of the server's loggers (uvicorn's do not propagate to the root)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "Records":
        for name in ("uvicorn.error", "gar_tool", "fastapi"):
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        for name in ("uvicorn.error", "gar_tool", "fastapi"):
            logging.getLogger(name).removeHandler(self)

    def errors(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.ERROR or r.exc_info]


def _stall(port: int, body_bytes: int = 1000, sent: int = 10) -> socket.socket:
    """A connection that sends the headers and ``sent`` bytes of a ``body_bytes`` body, then stops."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/measure HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {body_bytes}\r\n\r\n".encode() + b"{" * sent)
    return s


def test_stalled_bodies_hold_no_slot_and_time_out():
    app = create_app(GARToolkit(FakeGAR(), inputs=ImageInputConfig(allowed_roots=[])), max_concurrency=4,
                     body_timeout=1.5)
    with LiveServer(app) as srv, Records() as logs:  # (uvicorn configures its loggers at start: attach after)
        stalled = [_stall(srv.port) for _ in range(16)]  # 4x the slots
        time.sleep(0.3)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            during = [c.post("/v1/measure", json={"image": IMAGE, "regions": [BOX]}).status_code for _ in range(6)]
        answers = []
        for s in stalled:
            s.settimeout(10)
            answers.append(s.recv(4096).split(b"\r\n", 1)[0])
            s.close()
    assert during == [200] * 6  # nobody got 429 because of the stalled uploads
    assert answers == [b"HTTP/1.1 408 Request Timeout"] * 16
    assert logs.errors() == []


def test_concurrent_clients_vanishing_clients_and_a_restart():
    gar = SlowGAR()
    kit = GARToolkit(gar, inputs=ImageInputConfig(allowed_roots=[]))
    app = create_app(kit, max_concurrency=3, body_timeout=2.0)
    statuses: list[int] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for j in range(4):
                if (i + j) % 2:
                    r = c.post("/v1/describe", json={"image": IMAGE, "region": {"box": [i % 5, 1, 20 + j, 25]}})
                elif j == 3:
                    r = c.post("/v1/measure", json={"image": IMAGE, "regions": [{"box": [1, 2, 3]}]})  # bad input
                else:
                    r = c.post("/v1/measure", json={"image": IMAGE, "regions": [BOX]})
                with lock:
                    statuses.append(r.status_code)

    logs = Records()
    with LiveServer(app) as srv, logs:
        port = srv.port
        gar.release.set()  # describe answers at once here
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(client, range(16)))
        # a client that sends half its body and disconnects, and one that disconnects while GAR runs
        half = _stall(port, body_bytes=5000, sent=100)
        half.close()
        gar.release.clear()
        gar.entered.clear()
        waiting = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = (b'{"image": "%s", "region": {"box": [1, 1, 9, 9]}}' % IMAGE.encode())
        waiting.sendall(b"POST /v1/describe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert gar.entered.wait(10)
        waiting.close()
        gar.release.set()
        time.sleep(0.3)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            health = c.get("/health").json()
            uploaded = c.post("/v1/images", json={"image": IMAGE}).json()["image_id"]
    # restart on the same port: the server answers again; ids of the old process are unknown (422)
    with LiveServer(create_app(GARToolkit(FakeGAR(), inputs=ImageInputConfig(allowed_roots=[]))), port=port) as srv2, \
            logs:
        with httpx.Client(base_url=srv2.url, timeout=30) as c:
            after = [c.get("/health").status_code,
                     c.post("/v1/describe", json={"image": uploaded, "region": BOX}).status_code,
                     c.post("/v1/describe", json={"image": IMAGE, "region": BOX}).status_code]
    assert len(statuses) == 64 and set(statuses) <= {200, 422, 429} and 1 <= statuses.count(422) <= 8, statuses
    assert 200 in statuses and all(s < 500 for s in statuses)
    assert health["status"] == "ok" and health["limits"]["in_flight"] == 0  # every slot came back
    assert after == [200, 422, 200]
    assert logs.errors() == [], logs.errors()
