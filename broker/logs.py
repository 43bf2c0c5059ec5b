"""Logging for every broker process, set up once: plain lines, or one JSON object per line
(``PANBROKER_LOG_FORMAT=json``) carrying the id of the request being answered; quiet by default (the
scheduler's per-run lines only at DEBUG)."""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid

REQUEST_ID = contextvars.ContextVar("panbroker_request_id", default=None)
HEADER = "X-Request-Id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def request_id(offered: str | None = None) -> str:
    """The client's request id when it is a sane one, else a new one."""
    return offered if offered and _VALID_ID.match(offered) else uuid.uuid4().hex


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> None:
    """Route the root logger's output through one handler in the chosen format (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = next((h for h in root.handlers if getattr(h, "panbroker", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.panbroker = True  # type: ignore[attr-defined]
        handler.addFilter(_WithRequestId())
        root.addHandler(handler)
    handler.stream = sys.stderr  # the stderr of now (a test runner or click may have replaced it)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("apscheduler", "uvicorn.access"):  # a line per scheduler run every 2 s is noise
        logging.getLogger(name).setLevel(quiet)
