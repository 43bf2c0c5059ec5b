"""A facility on a bad day, on loopback: a raw-socket server that fails in one chosen way, for the fault
tests and ``bench/load.py``. Simulated; listens on 127.0.0.1 only.

Modes: ``refuse`` (nothing listens), ``hang`` (accepts, reads the request, never answers), ``5xx`` (503
with a JSON error), ``garbage`` (200 application/json that is not JSON), ``oversize`` (200 with a body of
``size`` bytes, no Content-Length), ``drip`` (status line, headers and a 1 kB body at ``rate`` bytes per second),
``redirect`` (302 to another origin, with a body that looks like an answer), ``empty`` (200 ``[]`` for
lists, ``{"count": 0}`` for counts).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

MODES = ("refuse", "hang", "5xx", "garbage", "oversize", "drip", "redirect", "empty")


class FaultServer:
    def __init__(self, mode: str, *, size: int = 11 * 1024 * 1024, rate: float = 1.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
        self.mode, self.size, self.rate = mode, size, rate
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        if mode == "refuse":
            self._listener.close()  # the port was free a moment ago and nothing listens on it now
        else:
            self._listener.listen(256)
            threading.Thread(target=self._accept, name=f"fault-{mode}", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "FaultServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                request = _read_request(client)
                if request is None:
                    return
                with self._lock:
                    self.requests += 1
                if not self._answer(client, request):
                    return
        except OSError:
            return
        finally:
            try:
                client.close()
            except OSError:
                pass

    def _answer(self, client: socket.socket, path: str) -> bool:
        """Answer one request; False when the connection is to be closed."""
        if self.mode == "hang":
            self._stop.wait()
            return False
        if self.mode == "5xx":
            client.sendall(_response(503, b'{"error": {"statusCode": 503, "message": "maintenance"}}'))
        elif self.mode == "garbage":
            client.sendall(_response(200, b"<html><body>Service Unavailable</body></html>\x00\xff"))
        elif self.mode == "empty":
            client.sendall(_response(200, b'{"count": 0}' if "count" in path else b"[]"))
        elif self.mode == "redirect":
            body = json.dumps([{"pid": "10.5072/not-from-this-facility", "title": "Planted"}]).encode()
            client.sendall(_response(302, body, extra=b"Location: http://127.0.0.2:9/elsewhere\r\n"))
        elif self.mode == "oversize":
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
            chunk = b'"' + b"x" * 65534 + b'",'
            sent = 1
            while sent < self.size and not self._stop.is_set():
                client.sendall(chunk)
                sent += len(chunk)
            return False
        elif self.mode == "drip":
            for byte in _response(200, b"[" + b" " * 1000 + b"]"):
                if self._stop.wait(1 / self.rate):
                    return False
                client.sendall(bytes([byte]))
            return False
        return True


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    reason = {200: b"OK", 302: b"Found", 503: b"Service Unavailable"}[status]
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (status, reason, len(body), extra)) + body


def _read_request(client: socket.socket) -> str | None:
    """The path of the next request on the connection (its body skipped), or None once it closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:")), 0)
    while len(rest) < length:
        chunk = client.recv(65536)
        if not chunk:
            return None
        rest += chunk
    parts = lines[0].split(" ")
    return parts[1] if len(parts) > 1 else "/"


def serve_forever(mode: str, **options: Any) -> None:  # pragma: no cover - a manual tool
    """Run one fault server in the foreground (``python -m demo.faults drip``)."""
    with FaultServer(mode, **options) as server:
        print(f"{mode} facility (simulated) at {server.url}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":  # pragma: no cover
    import sys

    serve_forever(sys.argv[1] if len(sys.argv) > 1 else "hang")
