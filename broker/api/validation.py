"""Request checks that run before a handler: body size, and schema errors that name every field."""
from __future__ import annotations

import asyncio
import json
import re
import typing as t

from connexion.exceptions import BadRequestProblem, ProblemException
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match
from starlette.types import ASGIApp, Receive, Scope, Send

from broker import logs
from broker.api.problems import ALLOWED_METHODS_KEY, TYPE_PREFIX
from broker.api.security import SCOPE_KEY
from broker.api.serving import ServingLimits

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _field(error: ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ".".join(filter(None, [path, extra[0] if extra else ""])) or "(body)"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return ".".join(filter(None, [path, missing])) or "(body)"
    return path or "(body)"


def _message(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        return "unknown field; remove it"
    if error.validator == "required":
        return "required"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    if error.validator == "enum":
        return "must be one of: " + ", ".join(map(str, error.validator_value))
    if error.validator in ("minimum", "maximum"):
        return f"must be {'at least' if error.validator == 'minimum' else 'at most'} {error.validator_value}"
    if error.validator in ("maxLength", "maxItems"):
        return f"too long: at most {error.validator_value}"
    return error.message


MAX_JSON_DEPTH = 32  # no operation's body nests deeper than a few levels
MAX_NUMBER_DIGITS = 40  # beyond any count, port or size; Python refuses int() of 4,300 digits anyway


class _BadJson(ValueError):
    pass


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _BadJson(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _constant(name: str) -> t.NoReturn:
    raise _BadJson(f"{name} is not a JSON number")


def decode_json(raw: bytes) -> t.Any:
    """A request body read strictly: UTF-8 only, standard JSON only (no NaN), numbers of at most
    ``MAX_NUMBER_DIGITS`` digits, nesting at most ``MAX_JSON_DEPTH`` deep, no lone surrogates in any
    string. Anything else is a ``BadRequestProblem`` that names what to fix."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestProblem(detail=f"The body is not UTF-8 (byte {exc.start} is 0x{raw[exc.start]:02x}): "
                                       "send JSON encoded as UTF-8") from exc
    if not text:
        return None
    try:
        body = json.loads(text, parse_int=_integer, parse_constant=_constant)
    except RecursionError as exc:
        raise BadRequestProblem(detail=f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels") from exc
    except _BadJson as exc:
        raise BadRequestProblem(detail=f"The JSON body is refused: {exc}") from exc
    except ValueError as exc:
        raise BadRequestProblem(detail=f"The body is not valid JSON: {exc}") from exc
    _check_structure(body)
    return body


def _check_structure(body: t.Any) -> None:
    pending = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequestProblem(detail=f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key)
                pending.append((item, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequestProblem(detail="A string holds a lone surrogate escape (such as \\ud800), which is "
                                       "no character: send valid Unicode") from exc


class FieldNamingBodyValidator(JSONRequestBodyValidator):
    """Decodes a JSON body strictly (``decode_json``) and reports every schema violation as
    ``errors: [{field, message}]``."""

    async def _parse(self, stream: t.AsyncGenerator[bytes, None], scope: Scope) -> t.Any:
        return decode_json(b"".join([message async for message in stream]))

    def _validate(self, body: t.Any) -> dict | None:
        if not self._nullable and body is None:
            raise BadRequestProblem("Send a JSON object as the request body")
        errors = sorted(self._validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
        if not errors:
            return body
        fields = [{"field": _field(e), "message": _message(e)} for e in errors]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        raise ProblemException(status=400, title="Bad Request", detail=f"Fix these fields: {summary}",
                               ext={"errors": fields})


class FieldNamingParameterValidator(ParameterValidator):
    """Reports every invalid parameter by name, in a short message, as ``errors: [{field, message}]``."""

    def validate_request(self, request: t.Any) -> None:
        fields = []
        if self.strict_validation:
            extra = self.validate_query_parameter_list(request, security_params=self.security_query_params)
            fields.extend({"field": name, "message": "unknown parameter; remove it"} for name in sorted(extra))
        sources = {"query": request.query_params, "path": request.path_params, "header": request.headers}
        for location, values in sources.items():
            for param in self.parameters.get(location, []):
                name = param["name"]
                value = values.get(name.replace("-", "_") if location == "path" else name)
                message = _parameter_error(value, param)
                if message:
                    fields.append({"field": name, "message": message})
        if fields:
            summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
            raise ProblemException(status=400, title="Bad Request", detail=f"Fix these parameters: {summary}",
                                   ext={"errors": fields})


def _parameter_error(value: t.Any, param: dict) -> str | None:
    if value is None:
        return "required" if param.get("required") else None
    schema = param.get("schema", param)
    error = best_match(Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER).iter_errors(value))
    return _message(error) if error else None


VALIDATORS = {**VALIDATOR_MAP, "parameter": FieldNamingParameterValidator,
              "body": {**VALIDATOR_MAP["body"], "application/json": FieldNamingBodyValidator}}


class BrokerScope:
    """Outermost ASGI middleware: puts the broker in the request scope (for the security check), and
    reads a request's body whole before anything else sees it: over the size limit is a 413, a body
    that does not arrive within ``body_timeout_seconds`` (a slow drip, or a Content-Length never
    filled) is a 408, so no handler thread ever waits on a client."""

    def __init__(self, app: ASGIApp, broker: t.Any, allowed_methods: t.Callable[[str], list[str]] | None = None):
        self.app = app
        self.broker = broker
        self.allowed_methods = allowed_methods
        self.limits = ServingLimits(broker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = self.broker
        scope[ALLOWED_METHODS_KEY] = self.allowed_methods
        rid = logs.request_id(dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1"))
        scope["headers"] = [*(h for h in scope.get("headers") or [] if h[0] != b"x-request-id"),
                            (b"x-request-id", rid.encode())]
        logs.REQUEST_ID.set(rid)
        send = _with_request_id(send, rid)
        if CONTROL_CHARACTERS.search(scope.get("path", "")):
            # no id holds one; connexion's router and Flask's disagree on such paths, so stop them here
            await _problem(send, 404, "not-found", "Not found", "no such resource (the path holds control characters)")
            return
        settings = self.broker.settings
        limit = settings.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _problem(send, 413, "payload-too-large", "Request body too large", f"Send at most {limit} bytes")
            return
        if not (declared.isdigit() and int(declared) > 0) and b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.limits(self.app, scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(_read_body(receive, limit), settings.body_timeout_seconds)
        except asyncio.TimeoutError:
            await _problem(send, 408, "request-timeout", "Request body too slow",
                           f"The body did not arrive within {settings.body_timeout_seconds:g} s: send it whole")
            return
        except _TooLarge:
            await _problem(send, 413, "payload-too-large", "Request body too large", f"Send at most {limit} bytes")
            return
        except _ClientGone:
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, for streams

        await self.limits(self.app, scope, replay, send)


def _with_request_id(send: Send, rid: str) -> Send:
    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
        await send(message)

    return sending


class _TooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _problem(send: Send, status: int, suffix: str, title: str, detail: str) -> None:
    body = json.dumps({"type": TYPE_PREFIX + suffix, "title": title, "status": status, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
