"""A simulated PaNOSC Search API as large as wanted (millions of datasets), for harvest benchmarks and the
harvest-resumption test: loopback only, labelled simulated.

Records have the shape the reference implementation (panosc-eu/search-api) answers with: ``instrumentId``
beside the included ``instrument``, techniques with the facility's own ``pid`` and the PaNET IRI in
``panetId``, parameters and files with numeric ``id``s and ``datasetId``, ``score``; and a ``documents``
relation as the data model's drawing and the SciCat adapter have it (the reference reaches documents
through ``Documents?include=datasets``, which reads every document per page). An include of a relation
the model lacks is LoopBack's bare HTTP 500. Nothing of the broker is used to read requests: the filter
is read here, for the little this server answers (limit, skip, ``pid ASC`` order, include).

Datasets are made on the fly from a few hundred generated ones (``demo.catalogue``) given new pids,
so the server holds no list of them; every served page's ``skip`` is noted in ``served``.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from demo.catalogue import generate

RELATIONS = ("techniques", "instrument", "parameters", "files", "samples", "documents")
BASES = 500


def _templates(record: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """``record`` as JSON text to fill in per dataset (``@N@``: its number; ``"@Ik@"``: a child's id): its
    own fields without braces, and each relation's."""
    pid = f"{record['pid']}-@N@"
    own = {"pid": pid, "title": record["title"], "isPublic": record["isPublic"],
           "creationDate": record["creationDate"], "size": record["size"], "score": 0,
           "instrumentId": record["instrument"]["pid"]}
    relations = {
        "instrument": record["instrument"],
        "techniques": [{"pid": f"t-{t['pid'][-5:]}", "name": t["name"], "panetId": t["pid"]}
                       for t in record["techniques"]],
        "parameters": [{**p, "id": f"@I{i}@", "datasetId": pid} for i, p in enumerate(record["parameters"])],
        "files": [{**f, "id": f"@I{i}@", "datasetId": pid} for i, f in enumerate(record["files"])],
        "samples": record["samples"],
        "documents": record["documents"],
    }
    return json.dumps(own)[1:-1], {name: json.dumps(value) for name, value in relations.items()}


def _filled(template: str, n: int) -> str:
    text = template.replace("@N@", f"{n:09d}")
    for i in range(8):
        if f'"@I{i}@"' not in text:
            break
        text = text.replace(f'"@I{i}@"', str(n * 8 + i))
    return text


class PanoscSource:
    """``count`` datasets of ``facility`` behind ``/api/Datasets`` on 127.0.0.1, each page after ``delay`` s."""

    def __init__(self, count: int, facility: str = "sim-ill", delay: float = 0.0):
        self.count, self.delay = count, delay
        self.served: list[int] = []  # the skip of every page served, in order
        self._bases = [_templates(record) for record in generate(facility, BASES, seed=11)]
        self._rendered: dict[tuple[int, int, frozenset[str]], bytes] = {}  # see ``prerender``
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="panosc-source", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def prerender(self, limit: int, relations: list[str]) -> "PanoscSource":
        """Make every page of ``limit`` with ``relations`` now and answer them from memory, as a static file
        server would: a benchmark on this machine then measures the harvester, not this server's CPU (a
        facility's server runs elsewhere). About 1.8 KB a dataset of memory."""
        for skip in range(0, self.count, limit):
            self._rendered[(skip, limit, frozenset(relations))] = self.page(skip, limit, relations)
        return self

    def page(self, skip: int, limit: int, relations: list[str]) -> bytes:
        rendered = self._rendered.get((skip, limit, frozenset(relations)))
        if rendered is not None:
            return rendered
        parts = []
        for n in range(skip, min(self.count, skip + limit)):
            own, related = self._bases[n % BASES]
            parts.append(_filled("{" + ",".join([own, *(f'"{r}":{related[r]}' for r in relations)]) + "}", n))
        return ("[" + ",".join(parts) + "]").encode()

    def _answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/Datasets/count":
            return 200, json.dumps({"count": self.count}).encode()
        if path != "/api/Datasets":
            return 404, {"error": {"statusCode": 404, "name": "Error", "message": f"Shared class not found for {path}"}}
        flt = json.loads(query.get("filter", ["{}"])[0] or "{}")
        asked = [i if isinstance(i, str) else i.get("relation") for i in flt.get("include") or []]
        unknown = [r for r in asked if r not in RELATIONS]
        if unknown:
            return 500, {"error": {"statusCode": 500, "name": "Error",
                                   "message": f'Relation "{unknown[0]}" is not defined for Dataset model'}}
        if flt.get("order") not in (None, "pid ASC"):
            return 500, {"error": {"statusCode": 500, "name": "Error", "message": "simulated: only pid ASC"}}
        skip, limit = int(flt.get("skip") or 0), min(int(flt.get("limit") or 100), 1000)
        if flt.get("order"):  # a harvest page, not a probe
            self.served.append(skip)
        if self.delay:
            time.sleep(self.delay)
        return 200, self.page(skip, limit, asked)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                parts = urlsplit(self.path)
                status, body = source._answer(parts.path.rstrip("/"), parse_qs(parts.query))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> "PanoscSource":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "PanoscSource":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Serve ``--count`` datasets until stopped; prints the URL on the first line."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--prerender", type=int, metavar="LIMIT",
                        help="make every page of LIMIT datasets (all relations) before serving (PanoscSource.prerender)")
    args = parser.parse_args()
    source = PanoscSource(args.count, delay=args.delay)
    if args.prerender:
        source.prerender(args.prerender, list(RELATIONS))
    print(source.url, flush=True)
    source._server.serve_forever()  # noqa: SLF001 - in the foreground


if __name__ == "__main__":
    main()
