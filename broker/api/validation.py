"""Request checks that run before a handler: body size, and schema errors that name every field."""
from __future__ import annotations

import json
import re
import typing as t

from connexion.exceptions import BadRequestProblem, ProblemException
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.problems import TYPE_PREFIX
from broker.api.security import SCOPE_KEY

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


class FieldNamingBodyValidator(JSONRequestBodyValidator):
    """Reports every schema violation of a JSON body as ``errors: [{field, message}]``."""

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
    """Outermost ASGI middleware: puts the broker in the request scope (for the security check) and
    refuses bodies over the limit with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, broker: t.Any):
        self.app = app
        self.broker = broker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = self.broker
        if CONTROL_CHARACTERS.search(scope.get("path", "")):
            # no id holds one; connexion's router and Flask's disagree on such paths, so stop them here
            await _problem(send, 404, "not-found", "Not found", "no such resource (the path holds control characters)")
            return
        limit = self.broker.settings.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _problem(send, 413, "payload-too-large", "Request body too large", f"Send at most {limit} bytes")
            return
        received = 0

        async def capped_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise ProblemException(status=413, title="Request body too large",
                                       detail=f"Send at most {limit} bytes")
            return message

        await self.app(scope, capped_receive, send)


async def _problem(send: Send, status: int, suffix: str, title: str, detail: str) -> None:
    body = json.dumps({"type": TYPE_PREFIX + suffix, "title": title, "status": status, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
