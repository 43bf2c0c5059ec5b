"""Tiny loopback HTTP servers for tests, one per failure mode a facility can show."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import requests
from werkzeug.wrappers import Request, Response

from demo.federation import serve_app, stop_app


def answers_within(url: str, seconds: float) -> bool:
    """Whether ``url`` answers with a success before ``seconds`` pass (a server starting up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    return False


class Recorder:
    """Counts the requests a server received."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def hit(self, request: Request) -> None:
        with self._lock:
            self.paths.append(request.full_path.rstrip("?"))

    @property
    def count(self) -> int:
        return len(self.paths)


@contextmanager
def serve(handler: Callable[[Request], Response]) -> Iterator[tuple[str, Recorder]]:
    """Run ``handler`` on 127.0.0.1 (a free port); yields the base URL and a request recorder."""
    recorder = Recorder()

    @Request.application
    def app(request: Request) -> Response:
        recorder.hit(request)
        return handler(request)

    server, _ = serve_app(app, "loopback")
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorder
    finally:
        stop_app(server)


def ok_json(body: str = '{"version": "5.2.1"}', status: int = 200) -> Callable[[Request], Response]:
    return lambda request: Response(body, status=status, content_type="application/json")


def slow(seconds: float, body: str = '{"version": "5.2.1"}') -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return Response(body, content_type="application/json")

    return handler


def dribble(chunks: int, pause: float) -> Callable[[Request], Response]:
    """Sends a byte at a time, each within the read timeout, so only a total deadline stops it."""

    def generate() -> Iterator[bytes]:
        for _ in range(chunks):
            time.sleep(pause)
            yield b" "

    return lambda request: Response(generate(), content_type="application/json")


@contextmanager
def panbroker_serving(data_dir, probe: str = "/healthz") -> Iterator[str]:  # noqa: ANN001 - a Path
    """``panbroker serve`` (no worker) on a free loopback port over ``data_dir``; yields its base URL once
    ``probe`` answers, and stops it after (for the benchmarks, which measure a real server)."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PANBROKER_DATA_DIR": str(data_dir), "PANBROKER_LOG_LEVEL": "WARNING",
           "PANBROKER_EMBEDDED_WORKER": "false"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("panbroker")), "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(base + probe, timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a server still busy on a loaded machine: stopped all the same
            server.kill()
            server.wait()
