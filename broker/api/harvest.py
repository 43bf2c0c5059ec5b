"""Handlers of the harvest API."""
from __future__ import annotations

from typing import Any

from broker.api.context import broker, principal
from broker.api.registry import JSON


def list_jobs(endpoint: str | None = None, limit: int = 50) -> tuple:
    return {"items": broker().harvest.jobs(endpoint, limit)}, 200, JSON


def get_job(job_id: int) -> tuple:
    return broker().harvest.job(job_id), 200, JSON


def run_job(body: dict[str, Any], token_info: dict | None = None) -> tuple:
    job = broker().harvest.run_as(principal(token_info), body["endpoint_id"], bool(body.get("confirm_deletions")))
    return job, 202 if job["state"] == "queued" else 201, {**JSON, "Location": f"/api/v1/harvest/jobs/{job['id']}"}
