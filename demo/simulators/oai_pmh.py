"""An OAI-PMH 2.0 repository: Identify, and ListRecords in oai_dc a page at a time with resumption tokens."""
from __future__ import annotations

from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from demo.simulators import Peer

KIND = "oai-pmh"
PAGE = 4
HEAD = ('<?xml version="1.0" encoding="UTF-8"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        "<responseDate>2026-01-01T00:00:00Z</responseDate>")


def _record(n: int) -> str:
    return (f"<record><header><identifier>oai:sim.invalid:{n}</identifier><datestamp>2024-01-01T00:00:00Z"
            "</datestamp></header><metadata><oai_dc:dc xmlns:oai_dc=\"http://www.openarchives.org/OAI/2.0/oai_dc/\" "
            "xmlns:dc=\"http://purl.org/dc/elements/1.1/\">"
            f"<dc:title>{escape(f'Simulated OAI record {n}')}</dc:title><dc:identifier>oai:sim.invalid:{n}</dc:identifier>"
            f"<dc:identifier>https://doi.org/10.5072/sim-oai-{n}</dc:identifier><dc:date>2024-01-0{1 + n % 9}</dc:date>"
            "<dc:rights>info:eu-repo/semantics/openAccess</dc:rights></oai_dc:dc></metadata></record>")


def repository(count: int = 10):  # noqa: ANN201 - a request handler
    def handle(request: Request) -> Response:
        verb = request.args.get("verb")
        if verb == "Identify":
            body = ("<Identify><repositoryName>Simulated repository</repositoryName><protocolVersion>2.0"
                    "</protocolVersion></Identify>")
        elif verb == "ListRecords":
            start = int(request.args.get("resumptionToken") or 0)
            end = min(start + PAGE, count)
            token = f"<resumptionToken>{end}</resumptionToken>" if end < count else "<resumptionToken/>"
            body = f"<ListRecords>{''.join(_record(n) for n in range(start, end))}{token}</ListRecords>"
        else:
            body = '<error code="badVerb">Illegal OAI verb</error>'
        return Response(HEAD + body + "</OAI-PMH>", content_type="text/xml")

    return handle


def peer() -> Peer:
    return Peer(repository(), dataset_pid="oai:sim.invalid:0")
