"""A SciCat backend's public dataset API (v3): ``/api/v3/datasets`` with a LoopBack ``filter`` (where
isPublished, ``limits`` with limit, skip and order) and ``/api/v3/datasets/count``."""
from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from demo.simulators import Peer

KIND = "scicat"


def records(count: int = 25) -> list[dict[str, Any]]:
    return [{"pid": f"20.500.12269/sim-scicat-{n:03d}", "datasetName": f"Simulated SciCat dataset {n}",
             "description": "Small-angle scattering of lysozyme (simulated)", "isPublished": n % 5 != 0,
             "creationTime": f"2024-01-{1 + n % 28:02d}T10:00:00.000Z", "keywords": ["SANS"], "size": 1000 * n,
             "numberOfFiles": n, "creationLocation": "/SIM/D22", "proposalId": f"SIM-{n}",
             "techniques": [{"pid": "http://purl.org/pan-science/PaNET/PaNET01188", "name": "small angle scattering"}],
             "scientificMetadata": {"sample_temperature": {"value": 295, "unit": "K"}}} for n in range(1, count + 1)]


def scicat(datasets: list[dict[str, Any]]) -> Any:
    def handle(request: Request) -> Response:
        flt = json.loads(request.args.get("filter") or "{}")
        public = sorted((d for d in datasets if d["isPublished"]), key=lambda d: d["pid"])
        if request.path == "/api/v3/datasets/count":
            return Response(json.dumps({"count": len(public)}), content_type="application/json")
        if request.path == "/api/v3/datasets":
            limits = flt.get("limits") or {}
            skip, limit = int(limits.get("skip", 0)), int(limits.get("limit", 100))
            return Response(json.dumps(public[skip:skip + limit]), content_type="application/json")
        return Response(json.dumps({"error": {"statusCode": 404}}), status=404, content_type="application/json")

    return handle


def peer() -> Peer:
    datasets = records()
    return Peer(scicat(datasets), config={"page_size": 7}, dataset_pid=datasets[0]["pid"])
